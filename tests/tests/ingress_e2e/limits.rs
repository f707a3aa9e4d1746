//! Rate limits through the real controller and nginx: `limit-rps` and `limit-rpm` let the
//! first request and its burst (`limit-burst-multiplier` 1: one more) through, then answer
//! `503`; `limit-connections 1` answers `503` to a second request while a slow one is in
//! flight, and `200` again once it is done. Both spellings.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_tests::ingress_ctl::{EchoBackend, IngressCtl, ingress, local_service};
use berth_tests::proc::wait_until;

use super::{SERVED_WITHIN, get, served, started};

/// Statuses of `n` quick GETs on `host`, starting with the first answer of the new config
/// (the host answers 404 until it is live).
fn burst(ctl: &IngressCtl, host: &str, n: usize) -> Result<Vec<u16>> {
    let mut first = 0;
    wait_until(&format!("{host} live"), SERVED_WITHIN, || {
        first = get(ctl, host, "/x").0;
        first != 404 && first != 0
    })
    .with_context(|| ctl.log_text())?;
    let mut out = vec![first];
    out.extend((1..n).map(|_| get(ctl, host, "/x").0));
    Ok(out)
}

pub fn rate_and_connection_limits() -> Result<()> {
    let echo = EchoBackend::start()?;
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let ing = |name: &str, ann: &[(&str, &str)]| {
        ingress(
            "shop",
            name,
            &format!("{name}.test"),
            "/",
            ("echo", echo.port),
            ann,
            None,
        )
    };
    let one = [(n("limit-burst-multiplier"), "1")];
    let manifests = vec![
        ("echo", local_service("shop", "echo", echo.port)),
        (
            "rps",
            ing("rps", &[(&n("limit-rps"), "1"), (&one[0].0, one[0].1)]),
        ),
        (
            "rpm",
            ing(
                "rpm",
                &[
                    ("berth.dev/limit-rpm", "1"),
                    ("berth.dev/limit-burst-multiplier", "1"),
                ],
            ),
        ),
        ("conn", ing("conn", &[(&n("limit-connections"), "1")])),
        ("free", ing("free", &[])),
    ];
    let ctl = started(&manifests, &[])?;
    served(&ctl, "free.test", "/x", 200, Some("GET /x 0"))?;

    for host in ["rps.test", "rpm.test"] {
        let seen = burst(&ctl, host, 6)?;
        let ok = seen.iter().take_while(|s| **s == 200).count();
        ensure!(
            (1..=2).contains(&ok) && seen[ok..].iter().all(|s| *s == 503),
            "{host}: {seen:?} (want 200, at most one more 200 (burst), then 503)"
        );
    }
    // The unlimited host is not affected.
    for _ in 0..5 {
        ensure!(get(&ctl, "free.test", "/x").0 == 200);
    }

    let _ = burst(&ctl, "conn.test", 1)?;
    let addr = ctl.http_addr();
    let slow = std::thread::spawn(move || {
        berth_tests::nginx::http_get(&addr, "conn.test", "/slow").map(|r| r.status)
    });
    // While the slow request holds the one connection the limit allows: 503.
    std::thread::sleep(Duration::from_millis(500));
    let second = get(&ctl, "conn.test", "/x");
    let slow_status = slow.join().expect("slow request thread");
    ensure!(
        second.0 == 503 && matches!(slow_status, Ok(200)),
        "second request {second:?}, slow request {slow_status:?}"
    );
    served(&ctl, "conn.test", "/x", 200, Some("GET /x 0"))?;
    Ok(())
}
