//! Part of `bench ingress`: failed requests of a steady keep-alive load while 100 reloads
//! happen, counted by a client that retries like real clients do ([`crate::bench::load`]) and
//! by wrk (which never retries, so it also counts idle connections closed by old workers).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, ensure};

use super::{Controller, ingress, service};
use crate::proc::wait_until;

pub(super) const LOAD_RELOADS: usize = 100;

/// wrk's totals: (requests, failed = non-2xx/3xx + socket errors).
fn parse_wrk(out: &str) -> (f64, f64) {
    let mut requests = 0.0;
    let mut failed = 0.0;
    for l in out.lines().map(str::trim) {
        if let Some(n) = l
            .split(" requests in ")
            .next()
            .filter(|_| l.contains(" requests in "))
        {
            requests = n.trim().parse().unwrap_or(0.0);
        }
        if let Some(n) = l.strip_prefix("Non-2xx or 3xx responses:") {
            failed += n.trim().parse::<f64>().unwrap_or(0.0);
        }
        if let Some(rest) = l.strip_prefix("Socket errors:") {
            failed += rest
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<f64>().ok())
                .sum::<f64>();
        }
    }
    (requests, failed)
}

/// What a steady load saw while 100 reloads happened.
pub(super) struct LoadFigures {
    pub(super) reloads: f64,
    /// The retrying client (real-client behaviour): requests, failed, retried.
    pub(super) requests: f64,
    pub(super) failed: f64,
    pub(super) retried: f64,
    /// wrk (never retries): requests, and failures (mostly keep-alive read errors).
    pub(super) wrk_requests: f64,
    pub(super) wrk_failed: f64,
}

/// A steady keep-alive load (wrk and the retrying client side by side) while 100 reloads happen.
pub(super) fn load_during_reloads(port: u16) -> Result<LoadFigures> {
    ensure!(
        crate::proc::have("wrk"),
        "wrk not installed (apt-get install -y wrk)"
    );
    let ctl = Controller::start(|dir| {
        std::fs::write(dir.join("svc.json"), service(port).to_string())?;
        std::fs::write(
            dir.join("load.json"),
            ingress("load", "load.example.com", "/", port).to_string(),
        )?;
        Ok(())
    })?;
    let before = ctl.metric("berth_ingress_reloads_total")?;
    let url = format!("http://{}/", ctl.http_addr());
    let secs = 30;
    let wrk = std::thread::spawn(move || {
        Command::new("wrk")
            .args([
                "-t1",
                "-c8",
                &format!("-d{secs}s"),
                "-H",
                "Host: load.example.com",
            ])
            .arg(url)
            .output()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let client = crate::bench::load::run(&ctl.http_addr(), "load.example.com", 8, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let mut done = 0;
    while done < LOAD_RELOADS {
        let want = before + done as f64 + 1.0;
        ctl.write(
            "churn",
            &ingress("churn", &format!("churn-{done}.example.com"), "/", port),
        )?;
        wait_until("a reload", Duration::from_secs(5), || {
            ctl.metric("berth_ingress_reloads_total")
                .is_ok_and(|v| v >= want)
        })?;
        done += 1;
    }
    let out = wrk.join().map_err(|_| anyhow::anyhow!("wrk thread"))??;
    stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (wrk_requests, wrk_failed) = parse_wrk(&text);
    ensure!(wrk_requests > 0.0, "wrk made no requests:\n{text}");
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
    Ok(LoadFigures {
        reloads: ctl.metric("berth_ingress_reloads_total")? - before,
        requests: load(&client.requests),
        failed: load(&client.failed),
        retried: load(&client.retried),
        wrk_requests,
        wrk_failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_parsed() {
        let out = "Running 2s test\n  12345 requests in 2.00s, 1.2MB read\n  Socket errors: connect 0, read 3, write 1, timeout 0\n  Non-2xx or 3xx responses: 2\nRequests/sec: 6000\n";
        assert_eq!(parse_wrk(out), (12345.0, 6.0));
        assert_eq!(parse_wrk("  10 requests in 1.00s, 1KB read\n"), (10.0, 0.0));
    }
}
