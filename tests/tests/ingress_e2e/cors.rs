//! CORS annotations and the HSTS flags through the real controller and nginx: `enable-cors`
//! answers a preflight `OPTIONS` with `204` and ingress-nginx's default `Access-Control-*`
//! headers (origin `*`), and adds `Access-Control-Allow-Origin` to normal answers; with an
//! origin list (berth.dev spelling) the request's `Origin` is echoed only when listed, with
//! the methods, credentials and max-age asked for. `--hsts --hsts-max-age 600` sends
//! `Strict-Transport-Security` on HTTPS answers only.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{IngressCtl, ingress, local_service};
use berth_tests::nginx::{Response, http_request};
use berth_tests::proc::{run, wait_until};

use super::{SERVED_WITHIN, started};

fn until(
    ctl: &IngressCtl,
    method: &str,
    host: &str,
    headers: &[(&str, &str)],
    status: u16,
) -> Result<Response> {
    let mut last = None;
    wait_until(
        &format!("{method} {host} -> {status}"),
        SERVED_WITHIN,
        || {
            last = http_request(&ctl.http_addr(), method, host, "/x", headers).ok();
            last.as_ref().is_some_and(|r| r.status == status)
        },
    )
    .with_context(|| format!("last {last:?}; log:\n{}", ctl.log_text()))?;
    last.context("no answer")
}

pub fn cors_preflight_and_hsts() -> Result<()> {
    let web = Backend::start("web")?;
    let ing = |name: &str, ann: &[(&str, &str)]| {
        ingress(
            "shop",
            name,
            &format!("{name}.test"),
            "/",
            ("web", web.port),
            ann,
            None,
        )
    };
    let manifests = vec![
        ("web", local_service("shop", "web", web.port)),
        (
            "any",
            ing(
                "any",
                &[("nginx.ingress.kubernetes.io/enable-cors", "true")],
            ),
        ),
        (
            "list",
            ing(
                "list",
                &[
                    ("berth.dev/enable-cors", "true"),
                    (
                        "berth.dev/cors-allow-origin",
                        "https://a.example.com, https://b.example.com",
                    ),
                    ("berth.dev/cors-allow-methods", "GET, POST"),
                    ("berth.dev/cors-allow-credentials", "false"),
                    ("berth.dev/cors-max-age", "600"),
                ],
            ),
        ),
    ];
    let ctl = started(
        &manifests,
        &["--hsts".into(), "--hsts-max-age".into(), "600".into()],
    )?;

    let pre = until(
        &ctl,
        "OPTIONS",
        "any.test",
        &[("Origin", "https://x.example.com")],
        204,
    )?;
    let h = |r: &Response, k: &str| r.header(k).unwrap_or_default().to_owned();
    ensure!(h(&pre, "access-control-allow-origin") == "*", "{pre:?}");
    ensure!(
        h(&pre, "access-control-allow-methods") == "GET, PUT, POST, DELETE, PATCH, OPTIONS",
        "{pre:?}"
    );
    ensure!(
        h(&pre, "access-control-allow-credentials") == "true",
        "{pre:?}"
    );
    ensure!(h(&pre, "access-control-max-age") == "1728000", "{pre:?}");
    ensure!(
        h(&pre, "access-control-allow-headers").contains("Authorization"),
        "{pre:?}"
    );
    ensure!(web.served() == 0, "the preflight reached the backend");
    let get = until(
        &ctl,
        "GET",
        "any.test",
        &[("Origin", "https://x.example.com")],
        200,
    )?;
    ensure!(
        get.body == "web /x" && h(&get, "access-control-allow-origin") == "*",
        "{get:?}"
    );
    // Plain HTTP: no HSTS.
    ensure!(get.header("strict-transport-security").is_none(), "{get:?}");

    let listed = until(
        &ctl,
        "OPTIONS",
        "list.test",
        &[("Origin", "https://b.example.com")],
        204,
    )?;
    ensure!(
        h(&listed, "access-control-allow-origin") == "https://b.example.com",
        "{listed:?}"
    );
    ensure!(
        h(&listed, "access-control-allow-methods") == "GET, POST",
        "{listed:?}"
    );
    ensure!(h(&listed, "access-control-max-age") == "600", "{listed:?}");
    ensure!(
        listed.header("access-control-allow-credentials").is_none(),
        "{listed:?}"
    );
    let other = until(
        &ctl,
        "OPTIONS",
        "list.test",
        &[("Origin", "https://evil.example.com")],
        204,
    )?;
    ensure!(
        other.header("access-control-allow-origin").is_none(),
        "{other:?}"
    );

    // HTTPS (the catch-all's self-signed certificate): HSTS with the flags' value.
    let out = run(Command::new("curl").args([
        "-sk",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "--max-time",
        "10",
        &format!("https://127.0.0.1:{}/", ctl.https_port),
    ]))?;
    ensure!(
        out.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=600; includesubdomains"),
        "{out}"
    );
    Ok(())
}
