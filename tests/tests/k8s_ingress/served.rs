//! Traffic through nginx to backends in a network namespace, reached through a selector-less
//! Service and an EndpointSlice the test writes: first without the Gateway API CRDs (the
//! Ingress is served, the missing CRDs are said once), then with them (`gateway.rs`).

use super::*;

/// Backends in a network namespace behind a selector-less Service and an EndpointSlice the
/// test writes; the Ingress is served through nginx; change (the slice's port) -> served.
pub fn served() -> Result<()> {
    let cp = ControlPlane::start()?;
    let dir = cp.dir.clone();
    let ingress = repo().join("deploy/ingress");
    cp.kubectl(&["apply", "--server-side", "-k", &ingress.to_string_lossy()])?;
    let sa = cp.service_account_kubeconfig(NS, "berth-ingress")?;
    let mut ns = NetNs::create()?;
    ns.backend(&dir, 8081, "backend A")?;
    ns.backend(&dir, 8082, "backend B")?;
    cp.apply(
        &json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}})
        .to_string(),
    )?;
    let slice = |port: u16| {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "app-1", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "app",
                           "endpointslice.kubernetes.io/managed-by": "berth-tests"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ns.addr.to_string()], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]})
        .to_string()
    };
    cp.apply(&slice(8081))?;
    cp.apply(
        &berth_tests::ingress_ctl::ingress(
            "default",
            "app",
            "app.test",
            "/",
            ("app", 80),
            &[],
            None,
        )
        .to_string(),
    )?;
    let r = Replica::start_with(
        &dir,
        "replica",
        &sa,
        &[
            "--upstream=endpoints",
            "--trust-endpointslice-managers=berth-tests",
        ],
    )?;
    let get = || {
        berth_tests::proc::run(Command::new("curl").args([
            "-s",
            "--max-time",
            "2",
            "-H",
            "Host: app.test",
            &format!("http://127.0.0.1:{}/", r.http_port),
        ]))
        .unwrap_or_default()
    };
    wait_until("backend A served", Duration::from_secs(60), || {
        get() == "backend A"
    })?;
    let mut samples = Vec::new();
    for i in 0..12 {
        let (port, want) = if i % 2 == 0 {
            (8082, "backend B")
        } else {
            (8081, "backend A")
        };
        let t = Instant::now();
        cp.apply(&slice(port))?;
        wait_until(want, Duration::from_secs(30), || get() == want)?;
        samples.push(t.elapsed());
    }
    samples.sort();
    eprintln!(
        "change -> served (EndpointSlice applied -> the other backend answers), 12 samples: p50 {:.0?}, max {:.0?}",
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    );
    let log = r.log_text();
    ensure!(
        !log.to_lowercase().contains("forbidden"),
        "refused by RBAC:\n{log}"
    );
    // Without the Gateway API CRDs: said once, and no watch of theirs failing over and over.
    ensure!(
        log.matches("Gateway API CRDs not installed").count() == 1,
        "want one 'not installed' line:\n{log}"
    );
    ensure!(
        !log.contains("watch failed"),
        "a watch failed without the CRDs:\n{log}"
    );
    // Then the Gateway API, with its CRDs, through a new replica (SIGTERM hands the Lease on).
    let mut r = r;
    r.signal(nix::sys::signal::Signal::SIGTERM)?;
    super::gateway::gateway_api(&cp, &dir, &sa, "backend A")
}
