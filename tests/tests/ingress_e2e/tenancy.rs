//! Several namespaces on one controller (issue 12 item 1), through the real nginx with curl:
//! a host-less rule and a `spec.defaultBackend` of one namespace never receive requests for
//! another namespace's host, not even ones decrypted with that host's certificate.

use anyhow::{Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{TestCa, curl_https, ingress, local_service, tls_secret};
use serde_json::json;

use super::{served, started};

pub fn host_less_rules_and_default_backends_stay_in_the_catch_all() -> Result<()> {
    let (a, b, c) = (
        Backend::start("team-a")?,
        Backend::start("team-b")?,
        Backend::start("team-c")?,
    );
    let ca = TestCa::new()?;
    let (crt, key) = ca.leaf("shop.test", 7)?;
    let shop = ingress(
        "team-a",
        "shop",
        "shop.test",
        "/shop",
        ("web", a.port),
        &[],
        Some("shop-tls"),
    );
    let login = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "login", "namespace": "team-b"},
        "spec": {"ingressClassName": "berth", "rules": [{"http": {"paths": [
            {"path": "/login", "pathType": "Prefix",
             "backend": {"service": {"name": "login", "port": {"number": b.port}}}}]}}]}});
    let fallback = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "fallback", "namespace": "team-c"},
        "spec": {"ingressClassName": "berth",
                 "defaultBackend": {"service": {"name": "fallback", "port": {"number": c.port}}}}});
    let ctl = started(
        &[
            ("a-svc", local_service("team-a", "web", a.port)),
            ("a-secret", tls_secret("team-a", "shop-tls", &crt, &key)),
            ("a-ing", shop),
            ("b-svc", local_service("team-b", "login", b.port)),
            ("b-ing", login),
            ("c-svc", local_service("team-c", "fallback", c.port)),
            ("c-ing", fallback),
        ],
        &[],
    )?;
    let ca_path = ctl.dir.join("ca.pem");
    std::fs::write(&ca_path, &ca.pem)?;
    // The catch-all: team-b's host-less rule, team-c's default backend.
    served(&ctl, "other.test", "/login", 200, Some("team-b /login"))?;
    served(&ctl, "other.test", "/x", 200, Some("team-c /x"))?;
    // team-a's host, over HTTPS with team-a's certificate: only team-a's routes, else 404.
    let shop = |path: &str| curl_https("shop.test", ctl.https_port, &ca_path, path);
    let (code, body) = shop("/shop/cart")?;
    ensure!(
        code == 200 && body == "team-a /shop/cart",
        "{code} {body:?}"
    );
    for path in ["/login", "/login/form", "/other"] {
        let (code, body) = shop(path)?;
        ensure!(
            code == 404,
            "https://shop.test{path} answered {code} {body:?}: another namespace got team-a's traffic"
        );
    }
    ensure!(a.served() >= 1 && b.served() >= 1 && c.served() >= 1);
    Ok(())
}
