//! Canary Ingresses through the real controller and nginx: `canary-weight: 30` sends 30 % ± 10
//! of 1 000 requests to the canary backend; `canary-by-header` + `-value` sends exactly the
//! requests with that header value, `canary-by-header` alone `always` / `never`, and
//! `canary-by-cookie` `always` / `never`, the rest staying on the main backend (weight 0). A
//! canary without a main Ingress is not served (reported). Both spellings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use anyhow::{Context, Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{IngressCtl, ingress, local_service};
use berth_tests::nginx::http_request;

use super::{served, started};

/// The backend name answering GET `/x` on `host` with `headers`.
fn who(ctl: &IngressCtl, host: &str, headers: &[(&str, &str)]) -> Result<String> {
    let r = http_request(&ctl.http_addr(), "GET", host, "/x", headers)?;
    ensure!(r.status == 200, "{host}: {} {}", r.status, r.body);
    Ok(r.body.split(' ').next().unwrap_or_default().to_owned())
}

/// The first word of the bodies of `n` GETs of `/x` on `host` over one keep-alive connection.
fn many(ctl: &IngressCtl, host: &str, n: usize) -> Result<Vec<String>> {
    let mut s = TcpStream::connect(ctl.http_addr())?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        s.write_all(format!("GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())?;
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().context("content-length")?;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let body = String::from_utf8_lossy(&body);
        out.push(body.split(' ').next().unwrap_or_default().to_owned());
    }
    Ok(out)
}

pub fn canary_weight_header_and_cookie() -> Result<()> {
    let (main, canary) = (Backend::start("main")?, Backend::start("canary")?);
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let pair = |host: &str, ann: &[(&str, &str)]| {
        let name = host.trim_end_matches(".test");
        [
            (
                format!("{name}-main"),
                ingress(
                    "shop",
                    &format!("{name}-main"),
                    host,
                    "/",
                    ("main", main.port),
                    &[],
                    None,
                ),
            ),
            (
                format!("{name}-canary"),
                ingress(
                    "shop",
                    &format!("{name}-canary"),
                    host,
                    "/",
                    ("canary", canary.port),
                    ann,
                    None,
                ),
            ),
        ]
    };
    let (on, w) = (n("canary"), n("canary-weight"));
    let (hdr, hval) = (n("canary-by-header"), n("canary-by-header-value"));
    let mut manifests = vec![
        ("main".to_owned(), local_service("shop", "main", main.port)),
        (
            "canary".to_owned(),
            local_service("shop", "canary", canary.port),
        ),
    ];
    manifests.extend(pair("weight.test", &[(&on, "true"), (&w, "30")]));
    manifests.extend(pair(
        "header.test",
        &[(&on, "true"), (&hdr, "X-Canary"), (&hval, "v1.2")],
    ));
    manifests.extend(pair(
        "cookie.test",
        &[
            ("berth.dev/canary", "true"),
            ("berth.dev/canary-by-cookie", "beta"),
            ("berth.dev/canary-by-header", "X-Beta"),
        ],
    ));
    manifests.push((
        "orphan".to_owned(),
        ingress(
            "shop",
            "orphan",
            "orphan.test",
            "/",
            ("canary", canary.port),
            &[(&on, "true")],
            None,
        ),
    ));
    let manifests: Vec<(&str, serde_json::Value)> = manifests
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let ctl = started(&manifests, &[])?;
    for host in ["weight.test", "header.test", "cookie.test"] {
        served(&ctl, host, "/x", 200, None)?;
    }

    let seen = many(&ctl, "weight.test", 1000)?;
    let to_canary = seen.iter().filter(|b| *b == "canary").count();
    ensure!(
        seen.iter().all(|b| b == "canary" || b == "main"),
        "{seen:?}"
    );
    ensure!(
        (200..=400).contains(&to_canary),
        "canary-weight 30: {to_canary} of 1000 requests went to the canary"
    );

    for (headers, want) in [
        (&[("X-Canary", "v1.2")][..], "canary"),
        (&[("X-Canary", "v1x2")][..], "main"),
        (&[("X-Canary", "v1.2.3")][..], "main"),
        (&[("X-Canary", "always")][..], "main"),
        (&[][..], "main"),
    ] {
        for _ in 0..20 {
            let got = who(&ctl, "header.test", headers)?;
            ensure!(got == want, "header.test {headers:?}: {got}, want {want}");
        }
    }
    for (headers, want) in [
        (&[("Cookie", "beta=always")][..], "canary"),
        (&[("Cookie", "beta=never")][..], "main"),
        (&[("Cookie", "beta=yes")][..], "main"),
        (&[("X-Beta", "always")][..], "canary"),
        (
            &[("X-Beta", "never"), ("Cookie", "beta=always")][..],
            "main",
        ),
        (&[][..], "main"),
    ] {
        for _ in 0..20 {
            let got = who(&ctl, "cookie.test", headers)?;
            ensure!(got == want, "cookie.test {headers:?}: {got}, want {want}");
        }
    }
    served(&ctl, "orphan.test", "/x", 404, None)?;
    ensure!(
        ctl.log_text()
            .contains("no main (non-canary) Ingress serves that route"),
        "orphan canary not reported:\n{}",
        ctl.log_text()
    );
    Ok(())
}
