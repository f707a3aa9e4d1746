//! `bench ingress`: berth-ingress against the goals of issue 7, with the real binary (release
//! build next to this executable, or $BERTH_INGRESS_BIN), a real nginx and real backends.
//!
//! - render of 10 000 routes (10 000 Ingresses, one host each): best of 5, in process;
//! - RSS of berth-ingress holding 10 000 Ingresses (VmHWM and VmRSS from /proc);
//! - change -> served: an Ingress manifest written until the first 200 through nginx, and until
//!   the start of 20 consecutive 200s (each a new connection: from then on every new connection
//!   gets the new route), p50/p99; answers from the old config after the first 200 are counted;
//! - reloads caused by 100 manifest changes written within one second;
//! - failed requests of a steady keep-alive load while 100 reloads happen: a client that retries
//!   like real clients do ([`super::load`]), beside wrk's raw keep-alive read errors (wrk never
//!   retries, so it counts the race of idle connections closed by old workers; see load.rs).
//!
//! The controller runs with its default debounce (100 ms quiet, 1 s max), as in production.
//! Then the 10 000-host run (`ingress_scale.rs`, also alone as `bench ingress-scale`).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::{Figures, figure, percentile};
use crate::backend::Backend;
use crate::nginx::http_get;
use crate::proc::{free_port, spawn_tied, wait_until};

mod reloads;
use reloads::{LOAD_RELOADS, load_during_reloads};

const ROUTES: usize = 10_000;
const LATENCY_SAMPLES: usize = 50;
/// Consecutive right answers (new connections) that make a change "served".
pub(super) const STABLE_RUN: usize = 20;
const BURST: usize = 100;

/// A berth-ingress process (default tunables) on a manifests dir; Drop stops it.
pub(super) struct Controller {
    pub(super) dir: PathBuf,
    manifests: PathBuf,
    http: u16,
    metrics: u16,
    pub(super) child: Option<Child>,
}

impl Controller {
    pub(super) fn start(write: impl FnOnce(&std::path::Path) -> Result<()>) -> Result<Controller> {
        let dir = crate::new_state_dir("bench-ingress")?;
        let manifests = dir.join("manifests");
        std::fs::create_dir_all(&manifests)?;
        write(&manifests)?;
        let (http, metrics) = (free_port()?, free_port()?);
        let mut cmd = Command::new(crate::ingress_ctl::binary()?);
        cmd.args(["run", "--source", "files", "--listen-address", "127.0.0.1"])
            .args(["--worker-processes", "1"])
            .arg(format!("--manifests-dir={}", manifests.display()))
            .arg(format!("--nginx-prefix={}", dir.join("nginx").display()))
            .arg(format!(
                "--nginx-conf={}",
                dir.join("nginx/nginx.conf").display()
            ))
            .arg(format!("--http-port={http}"))
            .arg(format!("--https-port={}", free_port()?))
            .arg(format!("--metrics-address=127.0.0.1:{metrics}"))
            .env("RUST_LOG", "warn");
        let child = spawn_tied(&cmd, &dir.join("berth-ingress.log"))?;
        let c = Controller {
            dir,
            manifests,
            http,
            metrics,
            child: Some(child),
        };
        wait_until("berth-ingress ready", Duration::from_secs(120), || {
            http_get(&c.admin(), "localhost", "/readyz").is_ok_and(|r| r.status == 200)
                && std::net::TcpStream::connect(c.http_addr()).is_ok()
        })
        .with_context(|| c.log())?;
        Ok(c)
    }

    pub(super) fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http)
    }

    pub(super) fn admin(&self) -> String {
        format!("127.0.0.1:{}", self.metrics)
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("berth-ingress.log")).unwrap_or_default()
    }

    pub(super) fn write(&self, name: &str, v: &Value) -> Result<()> {
        let tmp = self.manifests.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, v.to_string())?;
        std::fs::rename(&tmp, self.manifests.join(format!("{name}.json")))?;
        Ok(())
    }

    pub(super) fn metric(&self, name: &str) -> Result<f64> {
        let text = http_get(&self.admin(), "localhost", "/metrics")?.body;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .with_context(|| format!("no {name}"))
    }

    /// (VmHWM, VmRSS) of berth-ingress in MiB.
    pub(super) fn rss_mib(&self) -> Result<(f64, f64)> {
        let pid = self.child.as_ref().context("not running")?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| -> Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(key))
                .context("no field")?;
            Ok(line
                .split_whitespace()
                .nth(1)
                .context("no value")?
                .parse::<f64>()?)
        };
        Ok((kib("VmHWM:")? / 1024.0, kib("VmRSS:")? / 1024.0))
    }

    /// Poll (a new connection each time) from `t` until `host` answered 200 with `body`
    /// [`STABLE_RUN`] times in a row: (ms to the first such answer, ms to the start of the
    /// run, wrong answers seen after the first right one).
    pub(super) fn await_stable(
        &self,
        t: Instant,
        host: &str,
        body: &str,
    ) -> Result<(f64, f64, u32)> {
        let deadline = t + Duration::from_secs(10);
        let (mut first, mut run_start, mut run, mut flaps) = (None, t, 0usize, 0u32);
        loop {
            let sent = Instant::now();
            let ok = http_get(&self.http_addr(), host, "/")
                .is_ok_and(|r| r.status == 200 && r.body == body);
            if ok {
                first.get_or_insert(sent);
                if run == 0 {
                    run_start = sent;
                }
                run += 1;
                if run == STABLE_RUN {
                    let ms = |i: Instant| (i - t).as_secs_f64() * 1000.0;
                    return Ok((ms(first.unwrap_or(sent)), ms(run_start), flaps));
                }
            } else {
                if first.is_some() {
                    flaps += 1;
                }
                run = 0;
                std::thread::sleep(Duration::from_millis(2));
            }
            if Instant::now() > deadline {
                bail!("{host} not served within 10 s:\n{}", self.log());
            }
        }
    }

    /// Poll until `host` answers 200 with `body`.
    pub(super) fn await_served(&self, host: &str, body: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if http_get(&self.http_addr(), host, "/")
                .is_ok_and(|r| r.status == 200 && r.body == body)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{host} not served within {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = wait_until("berth-ingress to exit", Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            let _ = child.kill();
            let _ = child.wait();
        }
        crate::sweep::directory(&self.dir);
    }
}

pub(super) fn service(port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "bench"},
           "spec": {"clusterIP": "127.0.0.1", "ports": [{"port": port}]}})
}

/// The Service and `count` Ingresses `ing-<i>` for `host-<i>.example.com`, in files of 100
/// (`kind: List`), into `dir`.
pub(super) fn write_hosts(dir: &std::path::Path, count: usize, port: u16) -> Result<()> {
    std::fs::write(dir.join("svc.json"), service(port).to_string())?;
    for f in 0..count.div_ceil(100) {
        let items: Vec<Value> = (f * 100..((f + 1) * 100).min(count))
            .map(|i| {
                ingress(
                    &format!("ing-{i}"),
                    &format!("host-{i}.example.com"),
                    "/",
                    port,
                )
            })
            .collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        std::fs::write(dir.join(format!("bulk-{f}.json")), list.to_string())?;
    }
    Ok(())
}

pub(super) fn ingress(name: &str, host: &str, path: &str, port: u16) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": "bench"},
           "spec": {"ingressClassName": "berth", "rules": [{"host": host, "http": {"paths": [
               {"path": path, "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": port}}}}]}}]}})
}

/// Best of 5 renders of 10 000 routes, in milliseconds (translation not included).
fn render_ms() -> Result<f64> {
    use berth_ingress::render::{RenderConfig, render};
    use berth_ingress::snapshot::Snapshot;
    use berth_ingress::source::files::parse_manifests;
    use berth_ingress::translate::{self, TranslateConfig};
    let mut snap = Snapshot::default();
    parse_manifests(&service(80).to_string(), "svc.json", &mut snap);
    let mut all = String::new();
    for i in 0..ROUTES {
        all.push_str(
            &ingress(
                &format!("ing-{i}"),
                &format!("host-{i}.example.com"),
                "/app",
                80,
            )
            .to_string(),
        );
        all.push_str("\n---\n");
    }
    parse_manifests(&all, "ing.yaml", &mut snap);
    let model = translate::build(&snap, &TranslateConfig::default());
    let locations: usize = model.servers.iter().map(|s| s.locations.len()).sum();
    ensure!(locations >= ROUTES, "only {locations} locations");
    let rc = RenderConfig::new("/run/berth", 80, 443)?;
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let text = render(&model, &rc);
        best = best.min(t.elapsed());
        std::hint::black_box(text);
    }
    Ok(best.as_secs_f64() * 1000.0)
}

/// RSS holding 10 000 Ingresses (100 files of 100, `kind: List`).
fn rss_10k(port: u16) -> Result<(f64, f64)> {
    let ctl = Controller::start(|dir| write_hosts(dir, ROUTES, port))?;
    ctl.await_served("host-9999.example.com", "rss /", Duration::from_secs(30))?;
    // One more change, so the figure includes a reload with 10 000 objects held.
    ctl.write("extra", &ingress("extra", "extra.example.com", "/", port))?;
    ctl.await_served("extra.example.com", "rss /", Duration::from_secs(30))?;
    ctl.rss_mib()
}

/// Change -> served samples.
#[derive(Default)]
struct Latency {
    /// ms to the first 200.
    first: Vec<f64>,
    /// ms to the start of [`STABLE_RUN`] consecutive 200s.
    stable: Vec<f64>,
    /// Wrong answers after the first right one, all samples together.
    flaps: u32,
}

/// Change -> served samples, and reloads for a burst of 100 changes within 1 s.
fn latency_and_burst(port: u16) -> Result<(Latency, f64, f64)> {
    let ctl = Controller::start(|dir| {
        Ok(std::fs::write(
            dir.join("svc.json"),
            service(port).to_string(),
        )?)
    })?;
    let mut lat = Latency::default();
    for i in 0..LATENCY_SAMPLES {
        let host = format!("lat-{i}.example.com");
        let t = Instant::now();
        ctl.write(
            &format!("lat-{i}"),
            &ingress(&format!("lat-{i}"), &host, "/", port),
        )?;
        let (first, stable, flaps) = ctl.await_stable(t, &host, "lat /")?;
        lat.first.push(first);
        lat.stable.push(stable);
        lat.flaps += flaps;
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = ctl.metric("berth_ingress_reloads_total")?;
    let t = Instant::now();
    for i in 0..BURST {
        ctl.write(
            &format!("burst-{i}"),
            &ingress(
                &format!("burst-{i}"),
                &format!("burst-{i}.example.com"),
                "/",
                port,
            ),
        )?;
        // Spread over (just under) one second.
        let next = Duration::from_millis(9 * (i as u64 + 1));
        if let Some(wait) = next.checked_sub(t.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let spread = t.elapsed().as_secs_f64() * 1000.0;
    ctl.await_served(
        &format!("burst-{}.example.com", BURST - 1),
        "lat /",
        Duration::from_secs(10),
    )?;
    std::thread::sleep(Duration::from_millis(1500));
    let reloads = ctl.metric("berth_ingress_reloads_total")? - before;
    Ok((lat, reloads, spread))
}

/// RSS holding 10 000 Ingresses only (`bench ingress-rss`: a quick look at memory alone).
pub fn run_rss() -> Result<Figures> {
    let backend = Backend::start("rss")?;
    let (hwm, rss) = rss_10k(backend.port)?;
    Ok(rss_figures(hwm, rss))
}

/// The two RSS figures of [`rss_10k`] against their goal.
fn rss_figures(hwm: f64, rss: f64) -> Figures {
    vec![
        figure(
            "rss_10k_ingresses_hwm_mib",
            hwm,
            "MiB",
            "<= 64",
            Some(hwm <= 64.0),
        ),
        figure(
            "rss_10k_ingresses_mib",
            rss,
            "MiB",
            "<= 64",
            Some(rss <= 64.0),
        ),
    ]
}

pub fn run() -> Result<Figures> {
    let render = render_ms()?;
    let rss_backend = Arc::new(Backend::start("rss")?);
    let (hwm, rss) = rss_10k(rss_backend.port)?;
    let lat = Backend::start("lat")?;
    let (samples, burst_reloads, spread) = latency_and_burst(lat.port)?;
    let (p50, p99) = (
        percentile(&samples.first, 50.0),
        percentile(&samples.first, 99.0),
    );
    let (s50, s99) = (
        percentile(&samples.stable, 50.0),
        percentile(&samples.stable, 99.0),
    );
    let load = Backend::start("load")?;
    let l = load_during_reloads(load.port)?;
    let scale = super::ingress_scale::run()?;
    let mut figures = vec![figure(
        "render_10k_routes_ms",
        render,
        "ms",
        "<= 50",
        Some(render <= 50.0),
    )];
    figures.extend(rss_figures(hwm, rss));
    figures.extend([
        figure(
            "change_to_served_p50_ms",
            p50,
            "ms",
            "<= 250",
            Some(p50 <= 250.0),
        ),
        figure(
            "change_to_served_p99_ms",
            p99,
            "ms",
            "<= 1000",
            Some(p99 <= 1000.0),
        ),
        figure(
            "change_to_20_consecutive_p50_ms",
            s50,
            "ms",
            "<= 250",
            Some(s50 <= 250.0),
        ),
        figure(
            "change_to_20_consecutive_p99_ms",
            s99,
            "ms",
            "<= 1000",
            Some(s99 <= 1000.0),
        ),
        figure(
            "old_route_after_first_200",
            f64::from(samples.flaps),
            "answers",
            "0",
            Some(samples.flaps == 0),
        ),
        figure(
            "burst_100_changes_spread_ms",
            spread,
            "ms",
            "< 1000",
            Some(spread < 1000.0),
        ),
        figure(
            "burst_100_changes_reloads",
            burst_reloads,
            "reloads",
            "<= 2",
            Some(burst_reloads <= 2.0),
        ),
        figure(
            "load_reloads",
            l.reloads,
            "reloads",
            ">= 100",
            Some(l.reloads >= LOAD_RELOADS as f64),
        ),
        figure("load_requests", l.requests, "requests", "", None),
        figure(
            "load_failed_requests",
            l.failed,
            "requests",
            "0",
            Some(l.failed == 0.0),
        ),
        figure("load_keepalive_retries", l.retried, "requests", "", None),
        figure("load_wrk_requests", l.wrk_requests, "requests", "", None),
        figure(
            "load_wrk_errors_no_retry",
            l.wrk_failed,
            "requests",
            "",
            None,
        ),
    ]);
    figures.extend(scale);
    Ok(figures)
}
