//! One object never freezes everyone's updates (issue 12 item 2), through the real nginx:
//! certificates nginx's OpenSSL refuses, in an Ingress whose only content is `spec.tls` or in
//! twenty Ingresses at once, and at start-up. Certificates are made with the openssl CLI:
//! - a leaf signed with SHA-1 by a private CA (`ca md too weak`): berth's certificate check
//!   refuses it before nginx sees it;
//! - a chain whose CA has a P-192 EC key (`ca key too small`): berth's check (digests, RSA
//!   size) accepts it, so only isolation (`nginx -t` + bisection) can find the object.

use anyhow::{Context, Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{IngressCtl, local_service, tls_secret};
use berth_tests::proc::wait_until;
use berth_tests::refused_tls::{Refused, refused_pair};
use serde_json::{Value, json};

use super::{SERVED_WITHIN, get, ingress_rule, served, started};

/// An Ingress whose only content is `spec.tls` for `host` with Secret `secret`.
fn tls_only(ns: &str, name: &str, host: &str, secret: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"ingressClassName": "berth",
                    "tls": [{"hosts": [host], "secretName": secret}]}})
}

/// A good team's Service + Ingress on `host`.
fn good(ctl: &IngressCtl, name: &str, host: &str, port: u16) -> Result<()> {
    ctl.write(
        name,
        &ingress_rule("good", name, host, &[("/", "Prefix", "web", port)]),
    )
}

fn nginx_rejected(ctl: &IngressCtl, object: &str) -> bool {
    ctl.log_text()
        .lines()
        .any(|l| l.contains("nginx refuses this object") && l.contains(object))
}

/// A TLS-only Ingress with a certificate nginx refuses: named and dropped; later changes of
/// other teams still go live. Once with the SHA-1 leaf (berth's check reports it), once with
/// the P-192 CA (only isolation can find it).
pub fn tls_only_refused_certificate_blocks_nobody() -> Result<()> {
    let b = Backend::start("good")?;
    let ctl = started(
        &[
            ("web", local_service("good", "web", b.port)),
            (
                "first",
                ingress_rule(
                    "good",
                    "first",
                    "first.test",
                    &[("/", "Prefix", "web", b.port)],
                ),
            ),
        ],
        &[],
    )?;
    served(&ctl, "first.test", "/", 200, Some("good /"))?;
    let (crt, key) = refused_pair(&ctl.dir, Refused::Sha1Signed, "refused.test")?;
    ctl.write("sha1-secret", &tls_secret("evil", "sha1", &crt, &key))?;
    ctl.write("sha1-ing", &tls_only("evil", "sha1", "sha1.test", "sha1"))?;
    good(&ctl, "second", "second.test", b.port)?;
    served(&ctl, "second.test", "/x", 200, Some("good /x"))?;
    wait_until("the SHA-1 certificate reported", SERVED_WITHIN, || {
        ctl.log_text().lines().any(|l| {
            l.contains("not served as written")
                && l.contains("Ingress/evil/sha1")
                && l.contains("SHA-1")
        })
    })
    .with_context(|| ctl.log_text())?;

    let (crt, key) = refused_pair(&ctl.dir, Refused::TinyCaKey, "refused.test")?;
    ctl.write("p192-secret", &tls_secret("evil", "p192", &crt, &key))?;
    ctl.write("p192-ing", &tls_only("evil", "p192", "p192.test", "p192"))?;
    good(&ctl, "third", "third.test", b.port)?;
    served(&ctl, "third.test", "/y", 200, Some("good /y"))?;
    wait_until("the P-192 chain isolated", SERVED_WITHIN, || {
        nginx_rejected(&ctl, "Ingress/evil/p192")
    })
    .with_context(|| ctl.log_text())?;
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(
        !conf.contains("p192.test") && !conf.contains("evil_p192"),
        "refused TLS is live"
    );
    Ok(())
}

/// Twenty Ingresses nginx refuses (each routes a path on a host whose certificate chain nginx
/// refuses) next to good ones: every refused one is named, the good ones serve.
pub fn twenty_refused_objects_do_not_block_the_rest() -> Result<()> {
    const BAD: usize = 20;
    let b = Backend::start("good")?;
    let ctl = started(&[("web", local_service("good", "web", b.port))], &[])?;
    let (crt, key) = refused_pair(&ctl.dir, Refused::TinyCaKey, "refused.test")?;
    for i in 0..BAD {
        let (ns, name, host) = (format!("bad{i}"), format!("bad{i}"), format!("bad{i}.test"));
        ctl.write(&format!("{name}-svc"), &local_service(&ns, "web", b.port))?;
        ctl.write(
            &format!("{name}-secret"),
            &tls_secret(&ns, "tls", &crt, &key),
        )?;
        let mut ing = ingress_rule(&ns, &name, &host, &[("/", "Prefix", "web", b.port)]);
        ing["spec"]["tls"] = json!([{"hosts": [host], "secretName": "tls"}]);
        ctl.write(&name, &ing)?;
    }
    for i in 0..5 {
        good(&ctl, &format!("good{i}"), &format!("good{i}.test"), b.port)?;
    }
    let written = std::time::Instant::now();
    for i in 0..5 {
        served(&ctl, &format!("good{i}.test"), "/", 200, Some("good /"))?;
    }
    eprintln!(
        "{BAD} refused + 5 good objects written -> every good one served in {:?}",
        written.elapsed()
    );
    wait_until("every refused object named", SERVED_WITHIN * 3, || {
        (0..BAD).all(|i| nginx_rejected(&ctl, &format!("Ingress/bad{i}/bad{i}")))
    })
    .with_context(|| ctl.log_text())?;
    for i in 0..BAD {
        let (status, _) = get(&ctl, &format!("bad{i}.test"), "/");
        ensure!(status == 404, "bad{i}.test answered {status}");
    }
    Ok(())
}

/// A refused object present at start-up: dropped and reported; nginx starts with the rest.
pub fn startup_with_a_refused_object_serves_the_rest() -> Result<()> {
    let b = Backend::start("good")?;
    let dir = berth_tests::new_state_dir("ingress-certs")?;
    let pair = refused_pair(&dir, Refused::TinyCaKey, "refused.test");
    berth_tests::sweep::directory(&dir);
    let (crt, key) = pair?;
    let ctl = started(
        &[
            ("web", local_service("good", "web", b.port)),
            ("secret", tls_secret("evil", "p192", &crt, &key)),
            ("bad", tls_only("evil", "p192", "p192.test", "p192")),
            (
                "good",
                ingress_rule(
                    "good",
                    "good",
                    "good.test",
                    &[("/", "Prefix", "web", b.port)],
                ),
            ),
        ],
        &[],
    )?;
    served(&ctl, "good.test", "/", 200, Some("good /"))?;
    ensure!(
        nginx_rejected(&ctl, "Ingress/evil/p192"),
        "not reported:\n{}",
        ctl.log_text()
    );
    Ok(())
}
