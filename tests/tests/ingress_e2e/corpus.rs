//! Hostile input through the real controller: the injection corpus (hosts, paths, annotations,
//! names) never reaches the live nginx.conf, each carrier is reported by name, good objects
//! keep serving; and a candidate nginx itself refuses leaves the last good config serving.
//!
//! Every hostile value carries a unique marker `xq<N>` near its start, so "did it reach
//! nginx.conf" is an exact grep (the marker) and so is "was this object reported" (the marker
//! survives the escaped 40-character excerpt a report uses for hostile names).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{IngressCtl, local_service};
use berth_tests::proc::wait_until;
use serde_json::json;

use super::corpus_values::{RouteField, carrier, corpus, gateway_api_base, hostile_route};
use super::{SERVED_WITHIN, get, ingress_rule, served, started};

/// A line of the log that reports the object carrying marker / name `id`.
fn reported(log: &str, id: &str) -> bool {
    log.lines()
        .any(|l| l.contains("not served as written") && l.contains(id))
}

pub fn injection() -> Result<()> {
    let good = Backend::start("good")?;
    let [class, gw] = gateway_api_base();
    let ctl = started(
        &[
            class,
            gw,
            (
                "gwgood",
                hostile_route(
                    "gwgood",
                    "gwgood.test",
                    RouteField::Name,
                    "gwgood",
                    good.port,
                ),
            ),
            ("web", local_service("inj", "web", good.port)),
            (
                "good",
                ingress_rule(
                    "inj",
                    "good",
                    "good.test",
                    &[("/", "Prefix", "web", good.port)],
                ),
            ),
        ],
        &[],
    )?;
    served(&ctl, "good.test", "/", 200, Some("good /"))?;
    let cases = corpus();
    ensure!(cases.len() >= 30);
    for (i, (slot, value)) in cases.iter().enumerate() {
        ctl.write(&format!("inj-{i}"), &carrier(i, *slot, value, good.port))?;
    }
    // A canary written last proves the corpus was processed before we look.
    ctl.write(
        "canary",
        &ingress_rule(
            "inj",
            "canary",
            "canary.test",
            &[("/", "Prefix", "web", good.port)],
        ),
    )?;
    served(&ctl, "canary.test", "/c", 200, Some("good /c"))?;
    wait_until("every carrier reported", SERVED_WITHIN, || {
        let log = ctl.log_text();
        (0..cases.len())
            .all(|i| reported(&log, &format!("xq{i}z")) || reported(&log, &format!("inj-{i}")))
    })
    .with_context(|| {
        let log = ctl.log_text();
        let missing: Vec<_> = (0..cases.len())
            .filter(|i| !reported(&log, &format!("xq{i}z")) && !reported(&log, &format!("inj-{i}")))
            .map(|i| format!("{i}: {:?} {:.60?}", cases[i].0, cases[i].1))
            .collect();
        format!("not reported: {missing:#?}")
    })?;
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    for (i, (slot, value)) in cases.iter().enumerate() {
        let marker = format!("xq{i}z");
        ensure!(
            !conf.contains(&marker),
            "case {i} ({slot:?}) reached nginx.conf: {value:.80?}"
        );
        ensure!(
            !conf.contains(value.as_str()),
            "case {i} value in nginx.conf"
        );
    }
    for bad in [
        "pwned",
        "lua",
        "/etc/passwd",
        "listen 81",
        "X-Injected",
        "more_set_headers",
    ] {
        ensure!(!conf.contains(bad), "{bad:?} in nginx.conf");
    }
    // Every carrier is counted under some reason; the good objects still serve.
    let text = ctl.admin("/metrics")?.body;
    let rejected: f64 = text
        .lines()
        .filter(|l| l.starts_with("berth_ingress_rejected_objects{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    ensure!(
        rejected >= cases.len() as f64,
        "only {rejected} rejections counted:\n{text}"
    );
    served(&ctl, "good.test", "/still", 200, Some("good /still"))?;
    served(&ctl, "gwgood.test", "/still", 200, Some("good /still"))?;
    served(&ctl, "canary.test", "/", 200, Some("good /"))?;
    Ok(())
}

/// Requests in a loop from another thread: (ok, failed) counts and the first failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<(u16, String)>>>,
}

impl Load {
    fn start(ctl: &IngressCtl, host: &'static str, want: String) -> Load {
        let (stop, ok) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, k, addr) = (stop.clone(), ok.clone(), ctl.http_addr());
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !s.load(Ordering::Acquire) {
                match berth_tests::nginx::http_get(&addr, host, "/steady") {
                    Ok(r) if r.status == 200 && r.body == want => {
                        _ = k.fetch_add(1, Ordering::Relaxed)
                    }
                    Ok(r) => failures.push((r.status, r.body)),
                    Err(e) => failures.push((0, format!("{e:#}"))),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            failures
        });
        Load {
            stop,
            ok,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, Vec<(u16, String)>) {
        self.stop.store(true, Ordering::Release);
        let failures = self
            .thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

pub fn nginx_refuses() -> Result<()> {
    let good = Backend::start("good")?;
    let ctl = started(
        &[
            ("web", local_service("shop", "web", good.port)),
            (
                "good",
                ingress_rule(
                    "shop",
                    "good",
                    "good.test",
                    &[("/", "Prefix", "web", good.port)],
                ),
            ),
        ],
        // ExternalName backends are off by default (issue 12 item 6).
        &["--allow-external-name".to_owned()],
    )?;
    served(&ctl, "good.test", "/steady", 200, Some("good /steady"))?;
    let load = Load::start(&ctl, "good.test", "good /steady".into());
    // Valid by every grammar, but nginx -t cannot resolve the name: the candidate is refused.
    ctl.write(
        "ext",
        &json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "ext", "namespace": "bad"},
                "spec": {"type": "ExternalName", "externalName": "no-such-host.invalid",
                         "ports": [{"port": 80}]}}),
    )?;
    ctl.write(
        "ext-ing",
        &ingress_rule("bad", "ext", "ext.test", &[("/", "Prefix", "ext", 80)]),
    )?;
    wait_until("the refused object to be named", SERVED_WITHIN, || {
        ctl.metric("berth_ingress_nginx_rejected_objects_total")
            .is_ok_and(|v| v >= 1.0)
    })
    .with_context(|| ctl.log_text())?;
    ensure!(ctl.metric("berth_ingress_reload_failures_total")? >= 1.0);
    let log = ctl.log_text();
    ensure!(
        log.lines()
            .any(|l| l.contains("nginx refuses this object") && l.contains("/bad/ext")),
        "the refused object is not named in the log:\n{log}"
    );
    // The rest still goes live: a new good object after the refusal is served.
    ctl.write(
        "more",
        &ingress_rule(
            "shop",
            "more",
            "more.test",
            &[("/", "Prefix", "web", good.port)],
        ),
    )?;
    served(&ctl, "more.test", "/m", 200, Some("good /m"))?;
    let ext = get(&ctl, "ext.test", "/");
    ensure!(ext.0 == 404, "the refused object is served: {ext:?}");
    std::thread::sleep(Duration::from_millis(300));
    let (ok, failures) = load.finish();
    ensure!(
        failures.is_empty(),
        "{} failed requests during the refusal: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    ensure!(ok >= 5, "only {ok} requests made");
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(
        !conf.contains("no-such-host.invalid"),
        "the refused upstream is live"
    );
    Ok(())
}
