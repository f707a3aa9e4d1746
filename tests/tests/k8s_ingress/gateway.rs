//! Gateway API against the real API server, after the Ingress part of [`super::served`] ran
//! without the CRDs: deploy/ingress/gateway-api installed, the example passes a server-side
//! dry run, the `berth` GatewayClass from deploy, a Gateway and HTTPRoutes to the same
//! selector-less Service + EndpointSlice. Checked: the route served by real nginx; GatewayClass
//! Accepted, Gateway and its listener Programmed with the published address and
//! attachedRoutes, HTTPRoute and GRPCRoute Accepted/ResolvedRefs with our controllerName; a cross-namespace backendRef refused
//! (RefNotPermitted, not served) until a ReferenceGrant allows it; another controller's entry
//! in a route's status.parents survives our writes; an HTTPS listener whose certificate nginx
//! refuses (a P-192 CA in its chain: only `nginx -t` finds it) is not Programmed and its route
//! not Accepted (`NginxRejected`); nothing is rewritten at rest.

use super::*;

const CONTROLLER: &str = "berth.dev/gateway";

/// `kubectl get <what> -o json` (admin).
fn get(cp: &ControlPlane, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.push("-o=json");
    cp.kubectl(&args)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

/// The condition `type_` of `conditions`: (status, reason).
fn condition(conditions: &Value, type_: &str) -> Option<(String, String)> {
    conditions.as_array()?.iter().find_map(|c| {
        (c["type"] == type_).then(|| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
    })
}

/// Our entry in a route's status.parents.
fn our_parent(route: &Value) -> Value {
    route["status"]["parents"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["controllerName"] == CONTROLLER))
        .cloned()
        .unwrap_or(Value::Null)
}

fn route(ns: &str, name: &str, hosts: &[&str], backend_ns: Option<&str>) -> String {
    let mut backend = json!({"name": "app", "port": 80});
    if let Some(b) = backend_ns {
        backend["namespace"] = json!(b);
    }
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"parentRefs": [{"name": "gw", "namespace": "default", "sectionName": "http"}],
                 "hostnames": hosts,
                 "rules": [{"backendRefs": [backend]}]}})
    .to_string()
}

/// The Gateway API phase (the caller's replica has stopped; `sa` is its kubeconfig).
pub fn gateway_api(cp: &ControlPlane, dir: &Path, sa: &Path, want: &str) -> Result<()> {
    let t = Instant::now();
    let crds = repo().join("deploy/ingress/gateway-api");
    cp.kubectl(&["apply", "--server-side", "-k", &crds.to_string_lossy()])?;
    cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "gatewayclasses.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "grpcroutes.gateway.networking.k8s.io",
        "referencegrants.gateway.networking.k8s.io",
    ])?;
    let class = repo().join("deploy/ingress/components/gateway-api");
    cp.kubectl(&["apply", "--server-side", "-k", &class.to_string_lossy()])?;
    let example = repo().join("deploy/ingress/example-gateway");
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-k",
        &example.to_string_lossy(),
    ])?;
    eprintln!("Gateway API CRDs installed in {:.2?}", t.elapsed());

    let r = Replica::start_with(
        dir,
        "replica-gateway",
        sa,
        &[
            "--upstream=endpoints",
            "--trust-endpointslice-managers=berth-tests",
        ],
    )?;
    wait_until("replica ready", Duration::from_secs(60), || r.ready())?;
    let curl = |host: &str| {
        berth_tests::proc::run(Command::new("curl").args([
            "-s",
            "--max-time",
            "2",
            "-H",
            &format!("Host: {host}"),
            &format!("http://127.0.0.1:{}/", r.http_port),
        ]))
        .unwrap_or_default()
    };
    cp.apply(
        &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {"gatewayClassName": "berth",
                     "listeners": [{"name": "http", "protocol": "HTTP", "port": 80,
                                    "hostname": "*.gw.test",
                                    "allowedRoutes": {"namespaces": {"from": "All"}}}]}})
        .to_string(),
    )?;
    let t = Instant::now();
    cp.apply(&route("default", "web", &["web.gw.test"], None))?;
    wait_until("the HTTPRoute served", Duration::from_secs(30), || {
        curl("web.gw.test") == want
    })
    .with_context(|| r.log_text())?;
    eprintln!("HTTPRoute applied -> served by nginx: {:.0?}", t.elapsed());

    // Statuses, as the API server stores them.
    wait_until("GatewayClass Accepted", Duration::from_secs(30), || {
        let c = get(cp, &["gatewayclass", "berth"]);
        condition(&c["status"]["conditions"], "Accepted").is_some_and(|(s, _)| s == "True")
    })?;
    let mut last = Value::Null;
    wait_until("Gateway Programmed", Duration::from_secs(30), || {
        last = get(cp, &["gateway", "gw", "-n", "default"]);
        let s = &last["status"];
        condition(&s["conditions"], "Programmed").is_some_and(|(s, _)| s == "True")
            && s["listeners"][0]["attachedRoutes"] == 1
            && s["addresses"][0]["value"]
                .as_str()
                .is_some_and(|a| !a.is_empty())
    })
    .with_context(|| format!("last Gateway: {}", last["status"]))?;
    ensure!(
        condition(&last["status"]["conditions"], "Accepted").is_some_and(|(s, _)| s == "True"),
        "Gateway not Accepted: {}",
        last["status"]
    );
    for type_ in ["Accepted", "Programmed", "ResolvedRefs"] {
        ensure!(
            condition(&last["status"]["listeners"][0]["conditions"], type_)
                .is_some_and(|(s, _)| s == "True"),
            "listener not {type_}: {}",
            last["status"]
        );
    }
    // The address published as for Ingress status: deploy's --publish-service's ClusterIP.
    let published = get(cp, &["service", "berth-ingress", "-n", NS]);
    ensure!(
        last["status"]["addresses"][0]["value"] == published["spec"]["clusterIP"],
        "Gateway addresses {} are not the published Service's {}",
        last["status"]["addresses"],
        published["spec"]["clusterIP"]
    );
    wait_until(
        "HTTPRoute Accepted + ResolvedRefs",
        Duration::from_secs(30),
        || {
            last = our_parent(&get(cp, &["httproute", "web", "-n", "default"]));
            condition(&last["conditions"], "Accepted").is_some_and(|(s, _)| s == "True")
                && condition(&last["conditions"], "ResolvedRefs").is_some_and(|(s, _)| s == "True")
        },
    )
    .with_context(|| format!("last parent entry: {last}"))?;
    eprintln!(
        "HTTPRoute applied -> Accepted and ResolvedRefs in its status: {:.0?}",
        t.elapsed()
    );

    // A GRPCRoute on the same listener: its status too.
    cp.apply(
        &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
            "metadata": {"name": "grpc", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "gw", "sectionName": "http"}],
                     "hostnames": ["grpc.gw.test"],
                     "rules": [{"matches": [{"method": {"service": "echo.Echo"}}],
                                "backendRefs": [{"name": "app", "port": 80}]}]}})
        .to_string(),
    )?;
    wait_until(
        "GRPCRoute Accepted + ResolvedRefs",
        Duration::from_secs(30),
        || {
            last = our_parent(&get(cp, &["grpcroute", "grpc", "-n", "default"]));
            condition(&last["conditions"], "Accepted").is_some_and(|(s, _)| s == "True")
                && condition(&last["conditions"], "ResolvedRefs").is_some_and(|(s, _)| s == "True")
        },
    )
    .with_context(|| format!("last parent entry: {last}"))?;

    // Another controller's entry in status.parents is kept when we rewrite ours (a new
    // generation changes our observedGeneration).
    let foreign = json!([{"op": "add", "path": "/status/parents/-", "value": {
        "parentRef": {"name": "theirs", "namespace": "default"},
        "controllerName": "example.com/other",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}]);
    cp.kubectl(&[
        "patch",
        "httproute",
        "web",
        "-n",
        "default",
        "--subresource=status",
        "--type=json",
        "-p",
        &foreign.to_string(),
    ])?;
    let hosts = ["web.gw.test", "www.gw.test"];
    cp.apply(&route("default", "web", &hosts, None))?;
    wait_until(
        "our entry rewritten, theirs kept",
        Duration::from_secs(30),
        || {
            let route = get(cp, &["httproute", "web", "-n", "default"]);
            let parents = route["status"]["parents"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ours = our_parent(&route);
            parents
                .iter()
                .any(|p| p["controllerName"] == "example.com/other")
                && ours["conditions"][0]["observedGeneration"] == route["metadata"]["generation"]
        },
    )?;

    // Cross-namespace backendRef: refused without a ReferenceGrant, served with one.
    cp.apply(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
            .to_string(),
    )?;
    let t = Instant::now();
    cp.apply(&route(
        "other",
        "cross",
        &["cross.gw.test"],
        Some("default"),
    ))?;
    wait_until("RefNotPermitted", Duration::from_secs(30), || {
        last = our_parent(&get(cp, &["httproute", "cross", "-n", "other"]));
        condition(&last["conditions"], "ResolvedRefs")
            .is_some_and(|(s, reason)| s == "False" && reason == "RefNotPermitted")
    })
    .with_context(|| format!("last parent entry: {last}"))?;
    eprintln!(
        "cross-namespace HTTPRoute applied -> RefNotPermitted in its status: {:.0?}",
        t.elapsed()
    );
    ensure!(
        curl("cross.gw.test") != want,
        "a cross-namespace backendRef without a ReferenceGrant is served"
    );
    let t = Instant::now();
    cp.apply(
        &json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "from-other", "namespace": "default"},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                               "namespace": "other"}],
                     "to": [{"group": "", "kind": "Service"}]}})
        .to_string(),
    )?;
    wait_until(
        "served after the ReferenceGrant",
        Duration::from_secs(30),
        || curl("cross.gw.test") == want,
    )?;
    eprintln!(
        "ReferenceGrant applied -> cross-namespace route served: {:.0?}",
        t.elapsed()
    );
    wait_until(
        "ResolvedRefs after the grant",
        Duration::from_secs(30),
        || {
            last = our_parent(&get(cp, &["httproute", "cross", "-n", "other"]));
            condition(&last["conditions"], "ResolvedRefs").is_some_and(|(s, _)| s == "True")
        },
    )
    .with_context(|| format!("last parent entry: {last}"))?;
    refused_certificate(cp)?;

    // At rest nothing is rewritten: over two renewals (5 s each, a status sync at each) the
    // resourceVersions stay (server-side defaults or fresh timestamps would change them).
    let versions = || {
        [
            &["gatewayclass", "berth"][..],
            &["gateway", "gw", "-n", "default"],
            &["httproute", "web", "-n", "default"],
            &["httproute", "cross", "-n", "other"],
            &["grpcroute", "grpc", "-n", "default"],
            &["gateway", "p192", "-n", "default"],
            &["httproute", "p192", "-n", "default"],
        ]
        .map(|what| get(cp, what)["metadata"]["resourceVersion"].clone())
    };
    let before = versions();
    std::thread::sleep(Duration::from_secs(11));
    ensure!(
        versions() == before,
        "statuses rewritten at rest: {before:?} -> {:?}",
        versions()
    );
    let log = r.log_text();
    ensure!(
        !log.to_lowercase().contains("forbidden"),
        "refused by RBAC:\n{log}"
    );
    Ok(())
}

/// Statuses follow what nginx took: a Gateway whose HTTPS listener's certificate nginx refuses
/// (isolation drops it and the route served with it) says so, as does its route.
fn refused_certificate(cp: &ControlPlane) -> Result<()> {
    // A leaf signed by a P-192 CA, chain included: berth's checks pass it, nginx refuses it.
    let certs = berth_tests::new_state_dir("gateway-p192")?;
    let pair = berth_tests::refused_tls::refused_pair(
        &certs,
        berth_tests::refused_tls::Refused::TinyCaKey,
        "p192.gw.test",
    );
    berth_tests::sweep::directory(&certs);
    let (crt, key) = pair?;
    cp.apply(&berth_tests::ingress_ctl::tls_secret("default", "p192", &crt, &key).to_string())?;
    cp.apply(
        &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "p192", "namespace": "default"},
            "spec": {"gatewayClassName": "berth",
                     "listeners": [{"name": "https", "protocol": "HTTPS", "port": 443,
                                    "hostname": "p192.gw.test",
                                    "tls": {"certificateRefs": [{"name": "p192"}]}}]}})
        .to_string(),
    )?;
    let t = Instant::now();
    cp.apply(
        &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "p192", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "p192"}], "hostnames": ["p192.gw.test"],
                     "rules": [{"backendRefs": [{"name": "app", "port": 80}]}]}})
        .to_string(),
    )?;
    let mut last = (Value::Null, Value::Null);
    wait_until(
        "the refused certificate's listener not Programmed, its route not Accepted",
        Duration::from_secs(30),
        || {
            let gw = get(cp, &["gateway", "p192", "-n", "default"]);
            let route = our_parent(&get(cp, &["httproute", "p192", "-n", "default"]));
            let ok = condition(&gw["status"]["listeners"][0]["conditions"], "Programmed")
                == Some(("False".into(), "Invalid".into()))
                && condition(&gw["status"]["conditions"], "Programmed")
                    == Some(("False".into(), "Invalid".into()))
                && condition(&route["conditions"], "Accepted")
                    == Some(("False".into(), "NginxRejected".into()));
            last = (gw["status"].clone(), route);
            ok
        },
    )
    .with_context(|| {
        format!(
            "last Gateway status: {}\nlast route entry: {}",
            last.0, last.1
        )
    })?;
    let message = last.1["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        message.contains("nginx"),
        "the route's message names no refusal: {message}"
    );
    eprintln!(
        "refused certificate -> listener Programmed False, route NginxRejected: {:.0?}",
        t.elapsed()
    );
    Ok(())
}
