//! Redirect and upstream-host annotations through the real controller and nginx:
//! `permanent-redirect` (301, or `permanent-redirect-code`), `temporal-redirect` (302),
//! `app-root` (302 for `/` only), `force-ssl-redirect` (308 to https on a host without TLS of
//! its own) with the right `Location`; `upstream-vhost` is the `Host` the backend gets; a
//! redirect URL with a variable refuses the Ingress (404, reported).

use anyhow::{Context, Result, ensure};
use berth_tests::ingress_ctl::{IngressCtl, ingress, local_service};
use berth_tests::nginx::http_request;
use berth_tests::proc::wait_until;

use super::external_auth::AuthAndApp;
use super::{SERVED_WITHIN, served, started};

/// Wait until GET `path` on `host` answers `status` with `Location: location`.
fn redirects(ctl: &IngressCtl, host: &str, path: &str, status: u16, location: &str) -> Result<()> {
    let mut last = (0, String::new());
    wait_until(
        &format!("{host}{path} -> {status} {location}"),
        SERVED_WITHIN,
        || {
            last = match http_request(&ctl.http_addr(), "GET", host, path, &[]) {
                Ok(r) => (
                    r.status,
                    r.header("location").unwrap_or_default().to_owned(),
                ),
                Err(e) => (0, format!("{e:#}")),
            };
            last.0 == status && last.1 == location
        },
    )
    .with_context(|| format!("last {last:?}; log:\n{}", ctl.log_text()))
}

pub fn redirects_and_upstream_vhost() -> Result<()> {
    let app = AuthAndApp::start()?;
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let ing = |name: &str, ann: &[(&str, &str)]| {
        ingress(
            "shop",
            name,
            &format!("{name}.test"),
            "/",
            ("app", app.port),
            ann,
            None,
        )
    };
    let manifests = vec![
        ("app", local_service("shop", "app", app.port)),
        (
            "perm",
            ing(
                "perm",
                &[(&n("permanent-redirect"), "https://new.example.com/shop")],
            ),
        ),
        (
            "perm-code",
            ing(
                "perm-code",
                &[
                    (&n("permanent-redirect"), "https://new.example.com"),
                    (&n("permanent-redirect-code"), "308"),
                ],
            ),
        ),
        (
            "temp",
            ing(
                "temp",
                &[(
                    "berth.dev/temporal-redirect",
                    "http://other.example.com:8080/x",
                )],
            ),
        ),
        ("root", ing("root", &[(&n("app-root"), "/app")])),
        ("force", ing("force", &[(&n("force-ssl-redirect"), "true")])),
        (
            "vhost",
            ing("vhost", &[(&n("upstream-vhost"), "internal.example:8080")]),
        ),
        (
            "bad",
            ing("bad", &[(&n("permanent-redirect"), "https://$host/x")]),
        ),
    ];
    let ctl = started(&manifests, &[])?;
    redirects(
        &ctl,
        "perm.test",
        "/any/path",
        301,
        "https://new.example.com/shop",
    )?;
    redirects(&ctl, "perm-code.test", "/", 308, "https://new.example.com/")?;
    redirects(
        &ctl,
        "temp.test",
        "/y",
        302,
        "http://other.example.com:8080/x",
    )?;
    redirects(&ctl, "root.test", "/", 302, "http://root.test/app")?;
    served(&ctl, "root.test", "/x", 200, Some("app /x user=- other=-"))?;
    let https = format!("https://force.test:{}/x?a=1", ctl.https_port);
    redirects(&ctl, "force.test", "/x?a=1", 308, &https)?;
    served(
        &ctl,
        "vhost.test",
        "/vhost",
        200,
        Some("host=internal.example:8080"),
    )?;
    served(&ctl, "bad.test", "/x", 404, None)?;
    wait_until("bad reported", SERVED_WITHIN, || {
        ctl.log_text().lines().any(|l| {
            l.contains("shop/bad")
                && l.contains("permanent-redirect")
                && l.contains("invalid_annotation")
        })
    })
    .with_context(|| ctl.log_text())?;
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(!conf.contains("$host/x"), "refused redirect in nginx.conf");
    Ok(())
}
