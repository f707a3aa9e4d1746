//! `bench ingress` at 10 000 hosts: the real berth-ingress (files source) with 10 000
//! Ingresses, one host each, all routed to one local backend on 127.0.0.1 (never a ClusterIP),
//! and the nginx it supervises.
//!
//! - time to first config: the manifests are written, the controller starts, until /readyz
//!   (nginx verified serving the first config) and the last host answers 200;
//! - change -> served over [`CHANGES`] new Ingresses written one after the other: to the first
//!   200 and to the start of 20 consecutive 200s (new connections), p50/p99;
//! - memory (RSS and PSS, MiB) of berth-ingress and of each nginx process (master, workers;
//!   the largest one and their sum) after start and after the changes' reloads;
//! - reload wall time (test, install, SIGHUP, verified serving): mean and max over the changes'
//!   reloads, from berth-ingress's own histogram;
//! - nginx warnings: `[warn]`/`[emerg]` lines in the controller's log (nginx's stderr) plus those
//!   of one `nginx -t` of the live config at the end.
//!
//! `BERTH_SHARED_MIN_HOSTS` in the environment reaches the controller (e.g. a huge value
//! renders one server block per host, the layout before shared servers).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::ingress::{Controller, ingress, write_hosts};
use super::memory::{self, Memory};
use super::{Figures, figure, percentile};
use crate::backend::Backend;

const HOSTS: usize = 10_000;
/// Changes measured (and reloads counted for the memory "after" reading).
const CHANGES: usize = 20;
/// Goal: a change served on every new connection within a second.
const SERVED_P99_MS: f64 = 1000.0;
/// Goal: nginx RSS per process.
const NGINX_RSS_MIB: f64 = 100.0;

/// Memory of the controller and of its nginx processes.
struct Readings {
    controller: Memory,
    /// The largest nginx process (by RSS) and the sum over all of them.
    nginx_max: Memory,
    nginx_sum: Memory,
    nginx_processes: usize,
}

fn readings(ctl: &Controller) -> Result<Readings> {
    let pid = ctl.child.as_ref().context("controller not running")?.id();
    let master: i32 = std::fs::read_to_string(ctl.dir.join("nginx/nginx.pid"))?
        .trim()
        .parse()?;
    let mut pids = vec![master];
    pids.extend(berth_ingress::live::children(master));
    let (mut max, mut sum) = (Memory::default(), Memory::default());
    for p in &pids {
        let m = memory::read(*p as u32)?;
        if m.rss > max.rss {
            max = m;
        }
        sum.rss += m.rss;
        sum.pss += m.pss;
        sum.private += m.private;
    }
    Ok(Readings {
        controller: memory::read(pid)?,
        nginx_max: max,
        nginx_sum: sum,
        nginx_processes: pids.len(),
    })
}

/// `[warn]` and `[emerg]` lines in `text`.
fn warnings(text: &str) -> usize {
    text.lines()
        .filter(|l| l.contains("[warn]") || l.contains("[emerg]"))
        .count()
}

pub fn run() -> Result<Figures> {
    let backend = Backend::start("scale")?;
    let body = backend.body_for("/");
    let mut started = Instant::now();
    let ctl = Controller::start(|dir| {
        write_hosts(dir, HOSTS, backend.port)?;
        started = Instant::now();
        Ok(())
    })?;
    let last = format!("host-{}.example.com", HOSTS - 1);
    ctl.await_served(&last, &body, Duration::from_secs(60))?;
    let first_config_s = started.elapsed().as_secs_f64();
    // Let the start settle (nginx's first workers up, allocator quiet) before reading.
    std::thread::sleep(Duration::from_millis(500));
    let at_start = readings(&ctl)?;

    let hist_sum = "berth_ingress_reload_duration_seconds_sum";
    let hist_count = "berth_ingress_reload_duration_seconds_count";
    let (sum0, count0) = (ctl.metric(hist_sum)?, ctl.metric(hist_count)?);
    let (mut first, mut stable) = (Vec::new(), Vec::new());
    let mut reload_max = 0f64;
    for i in 0..CHANGES {
        let host = format!("change-{i}.example.com");
        let (s, c) = (ctl.metric(hist_sum)?, ctl.metric(hist_count)?);
        let t = Instant::now();
        ctl.write(
            &format!("change-{i}"),
            &ingress(&format!("change-{i}"), &host, "/", backend.port),
        )?;
        let (f, st, _) = ctl.await_stable(t, &host, &body)?;
        first.push(f);
        stable.push(st);
        // The reload that served it is recorded just before the controller logs it.
        std::thread::sleep(Duration::from_millis(100));
        let (s2, c2) = (ctl.metric(hist_sum)?, ctl.metric(hist_count)?);
        if c2 > c {
            reload_max = reload_max.max((s2 - s) / (c2 - c));
        }
    }
    let reloads = ctl.metric(hist_count)? - count0;
    let reload_mean = (ctl.metric(hist_sum)? - sum0) / reloads.max(1.0);
    // Old workers drain (nothing keeps a connection open here) before the "after" reading.
    std::thread::sleep(Duration::from_secs(1));
    let after = readings(&ctl)?;

    let prefix = ctl.dir.join("nginx");
    let test = Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .arg("-t")
        .output()
        .context("nginx -t")?;
    let warned = warnings(&ctl.log()) + warnings(&String::from_utf8_lossy(&test.stderr));
    let conf_bytes = std::fs::metadata(prefix.join("nginx.conf"))?.len() as f64;

    let (f50, f99) = (percentile(&first, 50.0), percentile(&first, 99.0));
    let (s50, s99) = (percentile(&stable, 50.0), percentile(&stable, 99.0));
    let rss_ok = |r: &Readings| Some(r.nginx_max.rss <= NGINX_RSS_MIB);
    Ok(vec![
        figure("scale_hosts", HOSTS as f64, "hosts", "", None),
        figure("scale_conf_kib", conf_bytes / 1024.0, "KiB", "", None),
        figure("scale_first_config_s", first_config_s, "s", "", None),
        figure("scale_change_to_served_p50_ms", f50, "ms", "", None),
        figure(
            "scale_change_to_served_p99_ms",
            f99,
            "ms",
            "<= 1000",
            Some(f99 <= SERVED_P99_MS),
        ),
        figure("scale_change_to_20_consecutive_p50_ms", s50, "ms", "", None),
        figure(
            "scale_change_to_20_consecutive_p99_ms",
            s99,
            "ms",
            "<= 1000",
            Some(s99 <= SERVED_P99_MS),
        ),
        figure("scale_reloads", reloads, "reloads", "", None),
        figure("scale_reload_mean_ms", reload_mean * 1000.0, "ms", "", None),
        figure("scale_reload_max_ms", reload_max * 1000.0, "ms", "", None),
        figure(
            "scale_controller_rss_start_mib",
            at_start.controller.rss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_controller_pss_start_mib",
            at_start.controller.pss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_controller_rss_after_mib",
            after.controller.rss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_controller_pss_after_mib",
            after.controller.pss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_nginx_rss_max_start_mib",
            at_start.nginx_max.rss,
            "MiB",
            "<= 100",
            rss_ok(&at_start),
        ),
        figure(
            "scale_nginx_pss_max_start_mib",
            at_start.nginx_max.pss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_nginx_rss_sum_start_mib",
            at_start.nginx_sum.rss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_nginx_pss_sum_start_mib",
            at_start.nginx_sum.pss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_nginx_rss_max_after_mib",
            after.nginx_max.rss,
            "MiB",
            "<= 100",
            rss_ok(&after),
        ),
        figure(
            "scale_nginx_pss_max_after_mib",
            after.nginx_max.pss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_nginx_rss_sum_after_mib",
            after.nginx_sum.rss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_nginx_pss_sum_after_mib",
            after.nginx_sum.pss,
            "MiB",
            "",
            None,
        ),
        figure(
            "scale_nginx_processes_after",
            after.nginx_processes as f64,
            "processes",
            "",
            None,
        ),
        figure(
            "scale_nginx_warnings",
            warned as f64,
            "lines",
            "0",
            Some(warned == 0),
        ),
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn warnings_are_counted_by_level() {
        let log = "2026/12/01 [warn] 1#1: could not build optimal server_names_hash\nINFO ok\n[emerg] x\n[notice] y\n";
        assert_eq!(super::warnings(log), 2);
    }
}
