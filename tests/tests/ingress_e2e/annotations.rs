//! ingress-nginx annotations through the real controller and nginx (issue 16 item 1): an
//! Ingress that asked ingress-nginx for `auth-tls-verify-client` is not served (its host answers 404, never
//! the app without authentication) and is reported by name in the log and the metric, as is one
//! with a `configuration-snippet`; `--ignore-annotations auth-tls-verify-client` serves the first with a
//! report, the snippet stays refused and the flag refuses to name it; another Ingress's host
//! answers 200 throughout.

use anyhow::{Context, Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{IngressCtl, ingress, local_service};
use berth_tests::proc::wait_until;
use serde_json::Value;

use super::{SERVED_WITHIN, served, started};

const AUTH_TLS: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-client";
const SNIPPET: &str = "nginx.ingress.kubernetes.io/configuration-snippet";

fn manifests(port: u16) -> Vec<(&'static str, Value)> {
    let ing = |name: &str, ann: &[(&str, &str)]| {
        ingress(
            "shop",
            name,
            &format!("{name}.test"),
            "/",
            ("web", port),
            ann,
            None,
        )
    };
    vec![
        ("web", local_service("shop", "web", port)),
        ("open", ing("open", &[])),
        ("guarded", ing("guarded", &[(AUTH_TLS, "on")])),
        (
            "snip",
            ing("snip", &[(SNIPPET, "more_set_headers 'X-Snip: 1';")]),
        ),
    ]
}

/// The log has a report line naming `annotation` on Ingress shop/`name`.
fn reported(ctl: &IngressCtl, name: &str, annotation: &str, reason: &str) -> Result<()> {
    wait_until(&format!("{name} reported"), SERVED_WITHIN, || {
        ctl.log_text().lines().any(|l| {
            l.contains(&format!("shop/{name}")) && l.contains(annotation) && l.contains(reason)
        })
    })
    .with_context(|| ctl.log_text())
}

pub fn unsupported_annotation_is_refused_the_rest_serves() -> Result<()> {
    let web = Backend::start("web")?;
    let m = manifests(web.port);
    let manifests: Vec<(&str, Value)> = m.iter().map(|(n, v)| (*n, v.clone())).collect();

    let ctl = started(&manifests, &[])?;
    served(&ctl, "open.test", "/x", 200, Some("web /x"))?;
    served(&ctl, "guarded.test", "/x", 404, None)?;
    served(&ctl, "snip.test", "/x", 404, None)?;
    reported(&ctl, "guarded", AUTH_TLS, "unsupported_annotation")?;
    reported(&ctl, "snip", SNIPPET, "unsupported_annotation")?;
    let n = ctl.metric("berth_ingress_rejected_objects{reason=\"unsupported_annotation\"}")?;
    ensure!(n == 2.0, "unsupported_annotation gauge {n}");
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(!conf.contains("X-Snip") && !conf.contains("ssl_verify_client"));
    let out = std::process::Command::new(berth_tests::ingress_ctl::binary()?)
        .args(["check", "--from"])
        .arg(&ctl.manifests)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.code() == Some(1), "check exit {:?}", out.status);
    for line in [
        "Ingress/shop/open: served\n",
        "Ingress/shop/guarded: NOT SERVED\n",
        "  nginx.ingress.kubernetes.io/auth-tls-verify-client: REFUSED: not implemented by berth-ingress\n",
        "Ingress/shop/snip: NOT SERVED\n",
        "  nginx.ingress.kubernetes.io/configuration-snippet: REFUSED: snippets",
    ] {
        ensure!(text.contains(line), "check output lacks {line:?}:\n{text}");
    }
    drop(ctl);

    // The operator's decision: ignore auth-tls-verify-client. guarded is served (with a report); the snippet
    // stays refused, and the flag cannot name it.
    let ctl = started(
        &manifests,
        &[
            "--ignore-annotations".into(),
            "auth-tls-verify-client".into(),
        ],
    )?;
    served(&ctl, "guarded.test", "/x", 200, Some("web /x"))?;
    served(&ctl, "open.test", "/x", 200, Some("web /x"))?;
    served(&ctl, "snip.test", "/x", 404, None)?;
    reported(&ctl, "guarded", AUTH_TLS, "ignored_annotation")?;
    reported(&ctl, "snip", SNIPPET, "unsupported_annotation")?;
    drop(ctl);
    let out = std::process::Command::new(berth_tests::ingress_ctl::binary()?)
        .args([
            "--ignore-annotations",
            "configuration-snippet",
            "render",
            "--from",
            "/nonexistent",
        ])
        .output()?;
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("snippet"),
        "--ignore-annotations configuration-snippet accepted: {out:?}"
    );
    ensure!(web.served() >= 3);
    Ok(())
}
