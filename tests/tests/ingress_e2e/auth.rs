//! Access control annotations through the real controller and nginx:
//! `auth-type: basic` + `auth-secret` + `auth-realm` in both spellings (401 with the realm
//! without or with wrong credentials, 200 with them; a rotated Secret changes who gets in; the
//! htpasswd file is 0600 under PREFIX/auth and its content is in no log and not in nginx.conf);
//! a missing Secret or an invalid htpasswd line refuses the Ingress (404, reported, never
//! served open); `denylist-source-range` / `deny-source-range` and `whitelist-source-range`
//! answer 403 to a listed / unlisted client and 200 otherwise. `berth-ingress check` on the
//! same manifests says which Ingress is served and names the refused annotation.

use std::os::unix::fs::PermissionsExt as _;

use anyhow::{Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{IngressCtl, ingress, local_service};
use berth_tests::nginx::http_request;
use serde_json::{Value, json};

use super::{answered, refused_in_log, served, started};

const NGINX: &str = "nginx.ingress.kubernetes.io/";
/// `openssl passwd -apr1 -salt abcdefgh s3cret`
const ALICE: &str = "alice:$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0";
/// `openssl passwd -apr1 -salt zyxwvuts n3w-pass`
const BOB: &str = "bob:$apr1$zyxwvuts$O6g3VuzM40NGCWN3jXWfc.";
/// base64 `alice:s3cret`, `alice:wrong`, `bob:n3w-pass`
const ALICE_OK: &str = "Basic YWxpY2U6czNjcmV0";
const ALICE_WRONG: &str = "Basic YWxpY2U6d3Jvbmc=";
const BOB_OK: &str = "Basic Ym9iOm4zdy1wYXNz";
/// In a refused Secret; must never appear in a log line or the config.
const MARKER: &str = "plaintext-marker-7d1";

fn htpasswd_secret(name: &str, auth: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": "shop"},
           "stringData": {"auth": auth}})
}

/// (status, WWW-Authenticate) of GET /x on `host` with an optional Authorization header.
fn ask(ctl: &IngressCtl, host: &str, authorization: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    match http_request(&ctl.http_addr(), "GET", host, "/x", &headers) {
        Ok(r) => (
            r.status,
            r.header("www-authenticate").unwrap_or_default().to_owned(),
        ),
        Err(e) => (0, format!("{e:#}")),
    }
}

fn answers(
    ctl: &IngressCtl,
    host: &str,
    authorization: Option<&str>,
    want: (u16, &str),
) -> Result<()> {
    answered(
        ctl,
        &format!("{host} {authorization:?} -> {want:?}"),
        || ask(ctl, host, authorization),
        |last| last.0 == want.0 && last.1 == want.1,
    )
}

pub fn basic_auth_and_source_ranges() -> Result<()> {
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
    let n = |k: &str| format!("{NGINX}{k}");
    let (ty, secret, realm) = (n("auth-type"), n("auth-secret"), n("auth-realm"));
    let manifests = vec![
        ("web", local_service("shop", "web", web.port)),
        ("basic", htpasswd_secret("basic", &format!("{ALICE}\n"))),
        (
            "plain",
            htpasswd_secret("plain", &format!("eve:{{PLAIN}}{MARKER}\n")),
        ),
        (
            "guarded",
            ing(
                "guarded",
                &[(&ty, "basic"), (&secret, "basic"), (&realm, "Shop staff")],
            ),
        ),
        (
            "berth",
            ing(
                "berth",
                &[
                    ("berth.dev/auth-type", "basic"),
                    ("berth.dev/auth-secret", "shop/basic"),
                ],
            ),
        ),
        (
            "nosecret",
            ing("nosecret", &[(&ty, "basic"), (&secret, "missing")]),
        ),
        (
            "badfile",
            ing("badfile", &[(&ty, "basic"), (&secret, "plain")]),
        ),
        (
            "denied",
            ing("denied", &[(&n("denylist-source-range"), "127.0.0.0/8")]),
        ),
        (
            "denied-other",
            ing(
                "denied-other",
                &[("berth.dev/deny-source-range", "10.0.0.0/8, fd00::/8")],
            ),
        ),
        (
            "allowed-other",
            ing(
                "allowed-other",
                &[(&n("whitelist-source-range"), "10.0.0.0/8")],
            ),
        ),
        (
            "allowed",
            ing("allowed", &[(&n("allowlist-source-range"), "127.0.0.1/32")]),
        ),
    ];
    let ctl = started(&manifests, &[])?;

    let realm_of = |r: &str| format!("Basic realm=\"{r}\"");
    answers(&ctl, "guarded.test", None, (401, &realm_of("Shop staff")))?;
    answers(
        &ctl,
        "guarded.test",
        Some(ALICE_WRONG),
        (401, &realm_of("Shop staff")),
    )?;
    answers(&ctl, "guarded.test", Some(ALICE_OK), (200, ""))?;
    let dflt = realm_of("Authentication Required");
    answers(&ctl, "berth.test", None, (401, &dflt))?;
    answers(&ctl, "berth.test", Some(ALICE_OK), (200, ""))?;
    served(&ctl, "nosecret.test", "/x", 404, None)?;
    refused_in_log(&ctl, "shop", "nosecret", &["Secret shop/missing not found"])?;
    served(&ctl, "badfile.test", "/x", 404, None)?;
    refused_in_log(&ctl, "shop", "badfile", &["line 1"])?;
    served(&ctl, "denied.test", "/x", 403, None)?;
    served(&ctl, "denied-other.test", "/x", 200, Some("web /x"))?;
    served(&ctl, "allowed-other.test", "/x", 403, None)?;
    served(&ctl, "allowed.test", "/x", 200, Some("web /x"))?;

    // `check` on the same directory says it too, before anyone switches.
    let out = std::process::Command::new(berth_tests::ingress_ctl::binary()?)
        .args(["check", "--from"])
        .arg(&ctl.manifests)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.code() == Some(1), "check exit {:?}", out.status);
    for line in [
        "Ingress/shop/guarded: served\n",
        "  nginx.ingress.kubernetes.io/auth-type: honoured (as berth.dev/auth-type)\n",
        "  berth.dev/auth-secret: honoured\n",
        "Ingress/shop/nosecret: NOT SERVED\n",
        "  nginx.ingress.kubernetes.io/auth-secret: REFUSED: Secret shop/missing not found",
        "Ingress/shop/denied: served\n",
    ] {
        ensure!(text.contains(line), "check output lacks {line:?}:\n{text}");
    }
    ensure!(!text.contains(MARKER) && !String::from_utf8_lossy(&out.stderr).contains(MARKER));

    // The file: 0600 under PREFIX/auth; the hash is in the file, not in nginx.conf or the log.
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    let hash = ALICE.split_once(':').unwrap().1;
    ensure!(
        !conf.contains(hash) && !conf.contains(MARKER),
        "secret in nginx.conf"
    );
    let files: Vec<_> = std::fs::read_dir(ctl.prefix.join("auth"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    ensure!(files.len() == 1, "auth files {files:?}");
    let meta = std::fs::metadata(&files[0])?;
    ensure!(meta.permissions().mode() & 0o777 == 0o600, "{meta:?}");
    ensure!(std::fs::read_to_string(&files[0])?.contains(hash));

    // Rotation: bob replaces alice.
    ctl.write("basic", &htpasswd_secret("basic", &format!("{BOB}\n")))?;
    answers(&ctl, "guarded.test", Some(BOB_OK), (200, ""))?;
    answers(
        &ctl,
        "guarded.test",
        Some(ALICE_OK),
        (401, &realm_of("Shop staff")),
    )?;
    // The Secret deleted: the Ingresses using it are refused, never served open.
    std::fs::remove_file(ctl.manifests.join("basic.json"))?;
    served(&ctl, "guarded.test", "/x", 404, None)?;
    served(&ctl, "berth.test", "/x", 404, None)?;
    refused_in_log(&ctl, "shop", "guarded", &["Secret shop/basic not found"])?;

    let log = ctl.log_text();
    for secret_text in [hash, BOB.split_once(':').unwrap().1, MARKER] {
        ensure!(!log.contains(secret_text), "secret text in the log:\n{log}");
    }
    Ok(())
}
