//! berth-ingress production features end to end, with the real binary and a real nginx:
//! TLS from Secrets (served, redirected, rotated without a restart), every `berth.dev/`
//! annotation's effect, a gRPC backend through nginx (plain, and over TLS behind a private TLS
//! nginx for GRPCS), /readyz before and after the first
//! reload, and scraped metrics.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_tests::ingress_ctl::{
    EchoBackend, IngressCtl, TestCa, curl_https, http_send, ingress, local_service, served_serial,
    tls_secret,
};
use berth_tests::nginx::http_get;
use berth_tests::proc::wait_until;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

#[path = "ingress_prod/grpc.rs"]
mod grpc;
use grpc::grpc;

fn main() {
    let args = Arguments::from_args();
    let t = |name: &str, f: fn() -> Result<()>| {
        Trial::test(name, move || {
            f().map_err(|e| Failed::from(format!("{e:#}")))
        })
    };
    let trials = vec![
        t("tls_served_redirected_and_rotated_without_restart", tls),
        t(
            "annotations_rewrite_body_size_source_range_timeout",
            annotations,
        ),
        t("grpc_backend_answers_through_nginx", grpc),
        t(
            "readyz_only_after_first_reload_and_metrics",
            readiness_and_metrics,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn write_ca(ctl: &IngressCtl, ca: &TestCa) -> Result<std::path::PathBuf> {
    let path = ctl.dir.join("ca.pem");
    std::fs::write(&path, &ca.pem)?;
    Ok(path)
}

fn tls() -> Result<()> {
    let backend = EchoBackend::start()?;
    let ca = TestCa::new()?;
    let (crt, key) = ca.leaf("secure.test", 1001)?;
    let (crt2, key2) = ca.leaf("plain-ok.test", 1003)?;
    let manifests: Vec<(&str, Value)> = vec![
        ("svc", local_service("shop", "web", backend.port)),
        ("secret", tls_secret("shop", "secure-tls", &crt, &key)),
        (
            "secret2",
            tls_secret("shop", "noredirect-tls", &crt2, &key2),
        ),
        (
            "ing",
            ingress(
                "shop",
                "secure",
                "secure.test",
                "/",
                ("web", backend.port),
                &[],
                Some("secure-tls"),
            ),
        ),
        (
            "ing2",
            ingress(
                "shop",
                "noredirect",
                "plain-ok.test",
                "/",
                ("web", backend.port),
                &[("berth.dev/ssl-redirect", "false")],
                Some("noredirect-tls"),
            ),
        ),
    ];
    let ctl = IngressCtl::start(&manifests, &[])?;
    ctl.wait_ready()?;
    let ca_path = write_ca(&ctl, &ca)?;

    let (code, body) = curl_https("secure.test", ctl.https_port, &ca_path, "/hello")?;
    ensure!(
        code == 200 && body == "GET /hello 0",
        "https: {code} {body:?}"
    );
    let r = http_get(&ctl.http_addr(), "secure.test", "/hello?x=1")?;
    ensure!(r.status == 308, "plain HTTP: {}", r.status);
    let want = format!("https://secure.test:{}/hello?x=1", ctl.https_port);
    ensure!(
        r.header("location") == Some(want.as_str()),
        "{:?}",
        r.headers
    );
    // ssl-redirect "false": plain HTTP is served; HTTPS works too.
    let r = http_get(&ctl.http_addr(), "plain-ok.test", "/")?;
    ensure!(r.status == 200, "ssl-redirect false: {}", r.status);
    ensure!(curl_https("plain-ok.test", ctl.https_port, &ca_path, "/")?.0 == 200);
    ensure!(served_serial("secure.test", ctl.https_port)? == "03E9");
    let expiry = ctl.metric(
        "berth_ingress_certificate_expiry_timestamp_seconds{namespace=\"shop\",name=\"secure-tls\"}",
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    ensure!(expiry > now, "certificate expiry {expiry}");

    // Key files: private directory, owner-only files, and never in the log.
    let tls_dir = ctl.prefix.join("tls");
    use std::os::unix::fs::PermissionsExt as _;
    ensure!(std::fs::metadata(&tls_dir)?.permissions().mode() & 0o777 == 0o700);
    for e in std::fs::read_dir(&tls_dir)? {
        let mode = e?.metadata()?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "cert file mode {mode:o}");
    }
    let key_line = key.lines().nth(1).context("key body")?;
    ensure!(
        !ctl.log_text().contains(key_line),
        "key material in the log"
    );

    // Rotate: replace the Secret; the new certificate is served, nothing restarted.
    let (pid, nginx_pid) = (ctl.pid(), ctl.nginx_pid());
    let (crt_new, key_new) = ca.leaf("secure.test", 1002)?;
    ctl.write(
        "secret",
        &tls_secret("shop", "secure-tls", &crt_new, &key_new),
    )?;
    wait_until("the rotated certificate", Duration::from_secs(10), || {
        served_serial("secure.test", ctl.https_port).is_ok_and(|s| s == "03EA")
    })?;
    ensure!(curl_https("secure.test", ctl.https_port, &ca_path, "/")?.0 == 200);
    ensure!(
        ctl.pid() == pid && ctl.nginx_pid() == nginx_pid,
        "something restarted"
    );

    // A key that does not match: reported, the host falls back to the default certificate.
    ctl.write("secret", &tls_secret("shop", "secure-tls", &crt, &key_new))?;
    wait_until(
        "invalid certificate reported",
        Duration::from_secs(10),
        || {
            ctl.metric("berth_ingress_rejected_objects{reason=\"invalid_certificate\"}")
                .is_ok_and(|v| v == 1.0)
        },
    )?;
    // The rejection is counted when the objects are translated; the reload follows.
    wait_until("the default certificate", Duration::from_secs(10), || {
        served_serial("secure.test", ctl.https_port).is_ok_and(|s| s != "03EA")
    })?;
    Ok(())
}

fn annotations() -> Result<()> {
    let backend = EchoBackend::start()?;
    let p = backend.port;
    let manifests: Vec<(&str, Value)> = vec![
        ("svc", local_service("web", "echo", p)),
        (
            "rewrite",
            ingress(
                "web",
                "rewrite",
                "rewrite.test",
                "/api",
                ("echo", p),
                &[("berth.dev/rewrite-target", "/v2")],
                None,
            ),
        ),
        (
            "body",
            ingress(
                "web",
                "body",
                "body.test",
                "/",
                ("echo", p),
                &[("berth.dev/proxy-body-size", "1k")],
                None,
            ),
        ),
        (
            "deny",
            ingress(
                "web",
                "deny",
                "deny.test",
                "/",
                ("echo", p),
                &[("berth.dev/allow-source-range", "10.0.0.0/8")],
                None,
            ),
        ),
        (
            "allow",
            ingress(
                "web",
                "allow",
                "allow.test",
                "/",
                ("echo", p),
                &[("berth.dev/allow-source-range", "10.0.0.0/8, 127.0.0.0/8")],
                None,
            ),
        ),
        (
            "timeout",
            ingress(
                "web",
                "timeout",
                "timeout.test",
                "/",
                ("echo", p),
                &[
                    ("berth.dev/proxy-read-timeout", "1"),
                    ("berth.dev/proxy-connect-timeout", "2s"),
                ],
                None,
            ),
        ),
        (
            "bad",
            ingress(
                "web",
                "bad",
                "bad.test",
                "/",
                ("echo", p),
                &[("berth.dev/proxy-body-size", "1m; return 200")],
                None,
            ),
        ),
    ];
    let ctl = IngressCtl::start(&manifests, &[])?;
    ctl.wait_ready()?;
    let addr = ctl.http_addr();

    let r = http_get(&addr, "rewrite.test", "/api/users?id=7")?;
    ensure!(
        r.body == "GET /v2/users?id=7 0",
        "rewrite: {} {:?}",
        r.status,
        r.body
    );
    let r = http_get(&addr, "rewrite.test", "/api")?;
    ensure!(r.body == "GET /v2 0", "rewrite exact: {:?}", r.body);

    let (code, body) = http_send(&addr, "POST", "body.test", "/up", &[b'x'; 4096])?;
    ensure!(code == 413, "4 KiB over a 1k limit: {code}");
    let (code, body2) = http_send(&addr, "POST", "body.test", "/up", &[b'x'; 512])?;
    ensure!(
        code == 200 && body2 == "POST /up 512",
        "512 B: {code} {body2:?} ({body:?})"
    );

    ensure!(
        http_get(&addr, "deny.test", "/")?.status == 403,
        "source outside the range"
    );
    ensure!(
        http_get(&addr, "allow.test", "/")?.status == 200,
        "source inside the range"
    );

    let started = std::time::Instant::now();
    let r = http_get(&addr, "timeout.test", "/slow")?;
    ensure!(
        r.status == 504 && started.elapsed() < Duration::from_millis(2800),
        "read timeout: {} after {:?}",
        r.status,
        started.elapsed()
    );

    // The hostile value never reaches nginx: the object is rejected and named.
    ensure!(
        http_get(&addr, "bad.test", "/")?.status == 404,
        "bad Ingress served"
    );
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(!conf.contains("1m; return 200") && !conf.contains("bad.test"));
    ensure!(ctl.metric("berth_ingress_rejected_objects{reason=\"invalid_annotation\"}")? == 1.0);
    Ok(())
}

fn readiness_and_metrics() -> Result<()> {
    let backend = EchoBackend::start()?;
    // An nginx that takes 1.5 s per call keeps the first reload pending long enough to see
    // /readyz answer 503 first.
    let dir = berth_tests::new_state_dir("slow-nginx")?;
    let slow = dir.join("nginx");
    std::fs::write(&slow, "#!/bin/sh\nsleep 1.5\nexec nginx \"$@\"\n")?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755))?;
    let manifests: Vec<(&str, Value)> = vec![
        ("svc", local_service("m", "web", backend.port)),
        (
            "ing",
            ingress(
                "m",
                "one",
                "one.test",
                "/",
                ("web", backend.port),
                &[],
                None,
            ),
        ),
        (
            "ing2",
            ingress(
                "m",
                "two",
                "two.test",
                "/",
                ("web", backend.port),
                &[],
                None,
            ),
        ),
    ];
    let ctl = IngressCtl::start(&manifests, &[format!("--nginx-binary={}", slow.display())])?;
    wait_until("metrics endpoint", Duration::from_secs(10), || {
        ctl.admin("/readyz").is_ok()
    })?;
    let early = ctl.admin("/readyz")?.status;
    ensure!(early == 503, "/readyz before the first reload: {early}");
    ensure!(
        ctl.admin("/healthz")?.status == 503,
        "healthz before nginx runs"
    );
    ctl.wait_ready()?;
    wait_until("nginx alive", Duration::from_secs(10), || {
        ctl.admin("/healthz").is_ok_and(|r| r.status == 200)
    })?;
    ensure!(http_get(&ctl.http_addr(), "one.test", "/")?.status == 200);

    ensure!(ctl.metric("berth_ingress_reloads_total")? >= 1.0);
    ensure!(ctl.metric("berth_ingress_reload_failures_total")? == 0.0);
    ensure!(ctl.metric("berth_ingress_last_reload_success")? == 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let ts = ctl.metric("berth_ingress_last_reload_timestamp_seconds")?;
    ensure!((now - ts).abs() < 120.0, "timestamp {ts} vs now {now}");
    ensure!(ctl.metric("berth_ingress_config_hash")? > 0.0);
    ensure!(ctl.metric("berth_ingress_objects{kind=\"Ingress\"}")? == 2.0);
    ensure!(ctl.metric("berth_ingress_objects{kind=\"Service\"}")? == 1.0);
    ensure!(ctl.metric("berth_ingress_render_duration_seconds_count")? >= 1.0);
    let reload_p = ctl.metric("berth_ingress_reload_duration_seconds_sum")?;
    ensure!(
        reload_p >= 1.5,
        "reload duration includes the slow nginx -t: {reload_p}"
    );
    ensure!(ctl.metric("berth_ingress_ready")? == 1.0);

    // A change bumps the counters and the objects gauge; a bad one is counted by reason.
    let hash = ctl.metric("berth_ingress_config_hash")?;
    ctl.write(
        "ing3",
        &ingress(
            "m",
            "three",
            "three.test",
            "/",
            ("web", backend.port),
            &[],
            None,
        ),
    )?;
    ctl.write(
        "bad",
        &ingress(
            "m",
            "bad",
            "bad.test",
            "/",
            ("web", backend.port),
            &[("berth.dev/nope", "x")],
            None,
        ),
    )?;
    wait_until("the change to be served", Duration::from_secs(15), || {
        http_get(&ctl.http_addr(), "three.test", "/").is_ok_and(|r| r.status == 200)
    })?;
    wait_until("metrics to follow", Duration::from_secs(5), || {
        ctl.metric("berth_ingress_objects{kind=\"Ingress\"}")
            .is_ok_and(|v| v == 4.0)
    })?;
    // The hash is published once berth-ingress verified that nginx serves the new config on
    // every new connection: a moment after the first 200.
    wait_until("the config hash to follow", Duration::from_secs(5), || {
        ctl.metric("berth_ingress_config_hash")
            .is_ok_and(|h| h != hash)
    })?;
    ensure!(ctl.metric("berth_ingress_rejected_objects{reason=\"invalid_annotation\"}")? == 1.0);
    berth_tests::sweep::directory(&dir);
    Ok(())
}
