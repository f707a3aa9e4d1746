//! Gateway API at scale (issue 15): render 10 000 HTTPRoutes (goal <= 50 ms, render only, best
//! of 5) and the RSS of berth-ingress holding them through the files source (goal <= 64 MiB).
//! One host per route (`gw-<i>.example.com`), a PathPrefix `/` rule; every tenth route also
//! has a header-matched rule, so the config carries condition maps and internal locations too.
//! Also the cost of the Gateway API statuses of those routes: computed (after a change) and a
//! status round at rest (reused).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use berth_ingress::snapshot::Snapshot;
use serde_json::{Value, json};

use super::ingress::{Controller, service};
use super::{Figures, figure};
use crate::backend::Backend;

const ROUTES: usize = 10_000;

fn base() -> [Value; 2] {
    [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "berth"}, "spec": {"controllerName": "berth.dev/gateway"}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "gw", "namespace": "bench"},
               "spec": {"gatewayClassName": "berth",
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
    ]
}

fn route(i: usize, port: u16) -> Value {
    let web = json!([{"name": "web", "port": port}]);
    let mut rules = vec![
        json!({"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": web}),
    ];
    if i.is_multiple_of(10) {
        rules.push(
            json!({"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                                       "headers": [{"name": "X-Canary", "value": "on"}]}],
                          "backendRefs": web}),
        );
    }
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": format!("r-{i}"), "namespace": "bench"},
           "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [format!("gw-{i}.example.com")],
                    "rules": rules}})
}

/// The class, the Gateway, the Service and `ROUTES` HTTPRoutes in files of 100 (`kind: List`).
fn write_routes(dir: &std::path::Path, port: u16) -> Result<()> {
    std::fs::write(dir.join("svc.json"), service(port).to_string())?;
    for (i, v) in base().iter().enumerate() {
        std::fs::write(dir.join(format!("base-{i}.json")), v.to_string())?;
    }
    for f in 0..ROUTES.div_ceil(100) {
        let items: Vec<Value> = (f * 100..((f + 1) * 100).min(ROUTES))
            .map(|i| route(i, port))
            .collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        std::fs::write(dir.join(format!("routes-{f}.json")), list.to_string())?;
    }
    Ok(())
}

/// The snapshot the files source reads from `ROUTES` HTTPRoutes (written to a state dir that
/// is gone again once read).
fn routes_snapshot() -> Result<Snapshot> {
    use berth_ingress::source::Source as _;
    use berth_ingress::source::files::FilesSource;
    let dir = crate::new_state_dir("bench-gateway")?;
    let written = write_routes(&dir, 80);
    let snap = FilesSource::new(&dir).snapshot();
    _ = std::fs::remove_dir_all(&dir);
    written?;
    Ok(snap)
}

/// Best of 5 renders of 10 000 HTTPRoutes in ms, and the config's size in bytes.
fn render_ms(snap: &Snapshot) -> Result<(f64, usize)> {
    use berth_ingress::render::{RenderConfig, render};
    use berth_ingress::translate::{TranslateConfig, build};
    let model = build(snap, &TranslateConfig::default());
    ensure!(
        model.gateway.len() == ROUTES,
        "{} Gateway API hosts: {:?}",
        model.gateway.len(),
        model.reports.first()
    );
    let rc = RenderConfig::new("/run/berth", 80, 443)?;
    let (mut best, mut size) = (Duration::MAX, 0);
    for _ in 0..5 {
        let t = Instant::now();
        let text = render(&model, &rc);
        best = best.min(t.elapsed());
        size = text.len();
        std::hint::black_box(text);
    }
    Ok((best.as_secs_f64() * 1000.0, size))
}

/// Best of 5 Gateway API status computations for 10 000 HTTPRoutes in ms (a status round
/// after a change), and best of 5 status rounds at rest in ms (every renewal, 5 s: the same
/// objects, another snapshot of them; `StatusCache` reuses the last computation).
fn statuses_ms(snap: &Snapshot) -> Result<(f64, f64)> {
    use berth_ingress::serving::Serving;
    use berth_ingress::status_gateway::{StatusCache, addresses};
    use berth_ingress::translate::{TranslateConfig, build};
    let config = TranslateConfig::default();
    let serving = Serving::of(&build(snap, &config));
    // A meta/v1 Time, without naming k8s-openapi (a dev-dependency here).
    let now = serde_json::from_value(json!("2026-01-01T00:00:00Z"))?;
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let s = berth_ingress::gateway::statuses(snap, &config, &[], &serving, &now);
        best = best.min(t.elapsed());
        ensure!(
            s.http_routes.len() == ROUTES,
            "{} route statuses",
            s.http_routes.len()
        );
        std::hint::black_box(s);
    }
    let serving = std::sync::Arc::new(serving);
    let addr = addresses(&["192.0.2.1".to_owned()]);
    let mut cache = StatusCache::default();
    cache.want(snap, &config, &serving, addr.clone(), &now);
    let mut rest = Duration::MAX;
    for _ in 0..5 {
        let again = snap.clone();
        let t = Instant::now();
        let s = cache.want(&again, &config, &serving, addr.clone(), &now);
        rest = rest.min(t.elapsed());
        std::hint::black_box(s);
    }
    ensure!(
        cache.computed == 1,
        "computed {} times at rest",
        cache.computed
    );
    Ok((best.as_secs_f64() * 1000.0, rest.as_secs_f64() * 1000.0))
}

pub fn run() -> Result<Figures> {
    let snap = routes_snapshot()?;
    let (ms, size) = render_ms(&snap)?;
    let (status_ms, rest_ms) = statuses_ms(&snap)?;
    drop(snap);
    let backend = Backend::start("rss")?;
    let ctl = Controller::start(|dir| write_routes(dir, backend.port))?;
    ctl.await_served("gw-9999.example.com", "rss /", Duration::from_secs(60))?;
    // One more change, so the figure includes a reload with 10 000 routes held.
    ctl.write("extra", &route(ROUTES, backend.port))?;
    ctl.await_served(
        &format!("gw-{ROUTES}.example.com"),
        "rss /",
        Duration::from_secs(60),
    )?;
    let (hwm, rss) = ctl.rss_mib()?;
    Ok(vec![
        figure(
            "render_10k_httproutes_ms",
            ms,
            "ms",
            "<= 50",
            Some(ms <= 50.0),
        ),
        figure(
            "gateway_statuses_10k_httproutes_ms",
            status_ms,
            "ms",
            "",
            None,
        ),
        figure(
            "gateway_status_round_at_rest_10k_httproutes_ms",
            rest_ms,
            "ms",
            "",
            None,
        ),
        figure(
            "config_10k_httproutes_mib",
            size as f64 / 1_048_576.0,
            "MiB",
            "",
            None,
        ),
        figure(
            "rss_10k_httproutes_hwm_mib",
            hwm,
            "MiB",
            "<= 64",
            Some(hwm <= 64.0),
        ),
        figure(
            "rss_10k_httproutes_mib",
            rss,
            "MiB",
            "<= 64",
            Some(rss <= 64.0),
        ),
    ])
}
