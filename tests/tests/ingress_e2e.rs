//! berth-ingress end to end (issue 6, issue 7 "graceful operation"): the real binary with the
//! files source, a real nginx it supervises, and real HTTP backends that answer with their
//! name and the path they received. No part of nginx is mocked.
//!
//! Routing: a labelled Service appears / changes / disappears; Ingress Exact vs Prefix,
//! longest match, wildcard hosts, default backends, oldest-wins conflicts. Safety: the injection
//! corpus and a candidate nginx refuses (`corpus.rs`). Operation: nginx killed with SIGKILL is
//! restarted; SIGTERM drains nginx and exits 0; `render --from DIR` prints a config nginx accepts.
//! The routing trials run again with simple hosts in shared server blocks (`shared_servers_*`).

#[path = "ingress_e2e/annotations.rs"]
mod annotations;
#[path = "ingress_e2e/auth.rs"]
mod auth;
#[path = "ingress_e2e/buffering.rs"]
mod buffering;
#[path = "ingress_e2e/corpus.rs"]
mod corpus;
#[path = "ingress_e2e/cors.rs"]
mod cors;
#[path = "ingress_e2e/external_auth.rs"]
mod external_auth;
#[path = "ingress_e2e/isolation.rs"]
mod isolation;
#[path = "ingress_e2e/limits.rs"]
mod limits;
#[path = "ingress_e2e/redirects.rs"]
mod redirects;
#[path = "ingress_e2e/scale.rs"]
mod scale;
#[path = "ingress_e2e/tenancy.rs"]
mod tenancy;

use std::cell::Cell;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{self, IngressCtl, local_service};
use berth_tests::nginx::http_get;
use berth_tests::proc::{free_port, run, spawn_tied, wait_until};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};

fn main() {
    let args = Arguments::from_args();
    let t = |name: &str, f: fn() -> Result<()>| {
        Trial::test(name, move || {
            f().map_err(|e| Failed::from(format!("{e:#}")))
        })
    };
    // The same routing trials with every simple host in a shared server block
    // (`--shared-min-hosts=1`, render_shared.rs): routing must not change.
    let shared = |name: &str, f: fn() -> Result<()>| {
        Trial::test(format!("shared_servers_{name}"), move || {
            SHARED_SERVERS.set(true);
            f().map_err(|e| Failed::from(format!("{e:#}")))
        })
    };
    let trials = vec![
        shared("service_lifecycle", service_lifecycle),
        shared("exact_prefix_and_longest_match", path_matching),
        shared("wildcard_host", wildcard_host),
        shared("default_backend_flag_then_ingress", default_backend),
        shared(
            "tenancy",
            tenancy::host_less_rules_and_default_backends_stay_in_the_catch_all,
        ),
        t("service_appears_moves_and_disappears", service_lifecycle),
        t("exact_prefix_and_longest_match", path_matching),
        t("wildcard_host_matches_one_label_only", wildcard_host),
        t("default_backend_flag_then_ingress", default_backend),
        t("conflict_oldest_wins_loser_reported", conflict),
        t(
            "tenancy_host_less_and_default_backend_stay_in_catch_all",
            tenancy::host_less_rules_and_default_backends_stay_in_the_catch_all,
        ),
        t(
            "nginx_annotation_unsupported_refused_rest_served",
            annotations::unsupported_annotation_is_refused_the_rest_serves,
        ),
        t(
            "annotation_basic_auth_and_source_ranges",
            auth::basic_auth_and_source_ranges,
        ),
        t(
            "annotation_auth_url_allows_and_denies",
            external_auth::auth_url_allows_and_denies,
        ),
        t(
            "annotation_redirects_and_upstream_vhost",
            redirects::redirects_and_upstream_vhost,
        ),
        t(
            "annotation_rate_and_connection_limits",
            limits::rate_and_connection_limits,
        ),
        t(
            "annotation_cors_preflight_and_hsts",
            cors::cors_preflight_and_hsts,
        ),
        t(
            "annotation_proxy_buffering_off_streams",
            buffering::proxy_buffering_off_streams,
        ),
        t(
            "annotation_proxy_send_timeout_gives_504",
            buffering::proxy_send_timeout_gives_504,
        ),
        t("injection_corpus_never_reaches_nginx", corpus::injection),
        t(
            "nginx_refuses_candidate_last_good_serves",
            corpus::nginx_refuses,
        ),
        t(
            "isolation_tls_only_refused_certificate_blocks_nobody",
            isolation::tls_only_refused_certificate_blocks_nobody,
        ),
        t(
            "isolation_twenty_refused_objects_do_not_block_the_rest",
            isolation::twenty_refused_objects_do_not_block_the_rest,
        ),
        t(
            "isolation_startup_with_a_refused_object_serves_the_rest",
            isolation::startup_with_a_refused_object_serves_the_rest,
        ),
        t(
            "scale_6000_hosts_pass_nginx_t_without_warnings",
            scale::six_thousand_hosts_pass_nginx_t_without_warnings,
        ),
        t("nginx_killed_is_restarted", nginx_killed),
        t("sigterm_drains_nginx_and_exits_zero", sigterm),
        t("render_from_dir_prints_a_valid_config", render_from_dir),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// How long a change may take to be served in these tests (the goal is far lower; CI is slow).
pub const SERVED_WITHIN: Duration = Duration::from_secs(10);

/// A Service selected by the default label, routed by `berth.dev/host`, ClusterIP 127.0.0.1.
pub fn labelled_service(ns: &str, name: &str, host: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns,
                        "labels": {"berth.dev/expose": "true"},
                        "annotations": {"berth.dev/host": host}},
           "spec": {"clusterIP": "127.0.0.1", "ports": [{"port": port}]}})
}

/// An Ingress of class `berth` with one rule: `(path, pathType, service, port)` entries.
pub fn ingress_rule(ns: &str, name: &str, host: &str, paths: &[(&str, &str, &str, u16)]) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(p, kind, svc, port)| {
            json!({"path": p, "pathType": kind,
                   "backend": {"service": {"name": svc, "port": {"number": port}}}})
        })
        .collect();
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"ingressClassName": "berth",
                    "rules": [{"host": host, "http": {"paths": paths}}]}})
}

pub fn remove(ctl: &IngressCtl, name: &str) -> Result<()> {
    std::fs::remove_file(ctl.manifests.join(format!("{name}.json")))
        .with_context(|| format!("removing manifest {name}"))
}

/// (status, body) of GET `path` with `Host: host` through the controller's nginx.
pub fn get(ctl: &IngressCtl, host: &str, path: &str) -> (u16, String) {
    match http_get(&ctl.http_addr(), host, path) {
        Ok(r) => (r.status, r.body),
        Err(e) => (0, format!("{e:#}")),
    }
}

/// Wait until `host` + `path` answers `status` (and `body`, when given).
/// Every check waits: after a reload, old nginx workers may still accept a connection for a
/// moment, so one answer from the new config does not mean the next cannot come from the old.
pub fn served(
    ctl: &IngressCtl,
    host: &str,
    path: &str,
    status: u16,
    body: Option<&str>,
) -> Result<()> {
    let mut last = (0, String::new());
    wait_until(
        &format!("{host}{path} -> {status} {body:?}"),
        SERVED_WITHIN,
        || {
            last = get(ctl, host, path);
            last.0 == status && body.is_none_or(|b| last.1 == b)
        },
    )
    .with_context(|| format!("last answer {last:?}; log:\n{}", ctl.log_text()))
}

thread_local! {
    /// This trial's controller renders simple hosts into shared server blocks.
    static SHARED_SERVERS: Cell<bool> = const { Cell::new(false) };
}

pub fn started(manifests: &[(&str, Value)], extra: &[String]) -> Result<IngressCtl> {
    let mut extra = extra.to_vec();
    if SHARED_SERVERS.get() {
        extra.push("--shared-min-hosts=1".to_owned());
    }
    let ctl = IngressCtl::start(manifests, &extra)?;
    ctl.wait_ready()?;
    // /readyz turns true at the first successful install, a moment before the supervised nginx
    // has bound its port.
    wait_until("nginx to listen", SERVED_WITHIN, || {
        std::net::TcpStream::connect(ctl.http_addr()).is_ok()
    })?;
    Ok(ctl)
}

fn service_lifecycle() -> Result<()> {
    let (b1, b2) = (Backend::start("b1")?, Backend::start("b2")?);
    let ctl = started(&[], &[])?;
    served(&ctl, "svc.test", "/", 404, None)?;
    ctl.write("svc", &labelled_service("shop", "web", "svc.test", b1.port))?;
    served(&ctl, "svc.test", "/hello", 200, Some("b1 /hello"))?;
    ctl.write("svc", &labelled_service("shop", "web", "svc.test", b2.port))?;
    served(&ctl, "svc.test", "/hello", 200, Some("b2 /hello"))?;
    remove(&ctl, "svc")?;
    served(&ctl, "svc.test", "/hello", 404, None)?;
    ensure!(b1.served() >= 1 && b2.served() >= 1);
    Ok(())
}

fn path_matching() -> Result<()> {
    let (b1, b2) = (Backend::start("b1")?, Backend::start("b2")?);
    let (p1, p2) = (b1.port, b2.port);
    let ctl = started(
        &[
            ("s1", local_service("web", "one", p1)),
            ("s2", local_service("web", "two", p2)),
            (
                "paths",
                ingress_rule(
                    "web",
                    "paths",
                    "paths.test",
                    &[
                        ("/foo", "Prefix", "one", p1),
                        ("/foo/bar", "Prefix", "two", p2),
                        ("/exact", "Exact", "two", p2),
                    ],
                ),
            ),
            (
                "both",
                ingress_rule(
                    "web",
                    "both",
                    "both.test",
                    &[("/foo", "Exact", "two", p2), ("/foo/", "Prefix", "one", p1)],
                ),
            ),
            (
                "impl",
                ingress_rule(
                    "web",
                    "impl",
                    "impl.test",
                    &[("/foo", "ImplementationSpecific", "one", p1)],
                ),
            ),
        ],
        &[],
    )?;
    let h = "paths.test";
    // Prefix /foo: element-wise.
    for p in ["/foo", "/foo/", "/foo/x", "/foo/barx"] {
        served(&ctl, h, p, 200, Some(&b1.body_for(p)))?;
    }
    served(&ctl, h, "/foobar", 404, None)?;
    served(&ctl, h, "/", 404, None)?;
    // Longest match: /foo/bar beats /foo.
    for p in ["/foo/bar", "/foo/bar/", "/foo/bar/baz"] {
        served(&ctl, h, p, 200, Some(&b2.body_for(p)))?;
    }
    // Exact: only the whole path.
    served(&ctl, h, "/exact", 200, Some("b2 /exact"))?;
    for p in ["/exact/", "/exactly", "/Exact"] {
        served(&ctl, h, p, 404, None)?;
    }
    // Exact beats Prefix for the same path; the rule's trailing slash is ignored.
    served(&ctl, "both.test", "/foo", 200, Some("b2 /foo"))?;
    served(&ctl, "both.test", "/foo/", 200, Some("b1 /foo/"))?;
    served(&ctl, "both.test", "/foo/z", 200, Some("b1 /foo/z"))?;
    served(&ctl, "both.test", "/foobar", 404, None)?;
    // ImplementationSpecific is Prefix.
    served(&ctl, "impl.test", "/foo/a", 200, Some("b1 /foo/a"))?;
    served(&ctl, "impl.test", "/foobar", 404, None)?;
    Ok(())
}

fn wildcard_host() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let ctl = started(
        &[
            ("s1", local_service("web", "one", b1.port)),
            (
                "wild",
                ingress_rule(
                    "web",
                    "wild",
                    "*.wild.test",
                    &[("/", "Prefix", "one", b1.port)],
                ),
            ),
        ],
        &[],
    )?;
    served(&ctl, "a.wild.test", "/x", 200, Some("b1 /x"))?;
    served(&ctl, "other-label.wild.test", "/", 200, Some("b1 /"))?;
    for host in [
        "wild.test",
        "a.b.wild.test",
        "a.wild.test.evil",
        "awild.test",
    ] {
        served(&ctl, host, "/x", 404, None)?;
    }
    Ok(())
}

fn default_backend() -> Result<()> {
    let (b1, b2) = (Backend::start("flag")?, Backend::start("spec")?);
    let ctl = started(
        &[
            ("fallback", local_service("infra", "fallback", b1.port)),
            ("s2", local_service("web", "two", b2.port)),
            (
                "app",
                ingress_rule(
                    "web",
                    "app",
                    "app.test",
                    &[("/app", "Prefix", "two", b2.port)],
                ),
            ),
        ],
        &["--default-backend-service=infra/fallback".to_owned()],
    )?;
    // No Ingress sets spec.defaultBackend: the flag's Service serves unknown hosts and paths.
    served(&ctl, "unknown.test", "/x", 200, Some("flag /x"))?;
    served(&ctl, "app.test", "/other", 200, Some("flag /other"))?;
    served(&ctl, "app.test", "/app", 200, Some("spec /app"))?;
    // An Ingress's spec.defaultBackend: the operator's flag still wins (issue 12 item 1),
    // and the Ingress is reported.
    let mut with_default = ingress_rule(
        "web",
        "app",
        "app.test",
        &[("/app", "Prefix", "two", b2.port)],
    );
    with_default["spec"]["defaultBackend"] =
        json!({"service": {"name": "two", "port": {"number": b2.port}}});
    ctl.write("app", &with_default)?;
    wait_until(
        "the overridden defaultBackend reported",
        SERVED_WITHIN,
        || {
            ctl.log_text().lines().any(|l| {
                l.contains("not served as written")
                    && l.contains("Ingress/web/app")
                    && l.contains("default-backend-service")
            })
        },
    )
    .with_context(|| ctl.log_text())?;
    served(&ctl, "unknown.test", "/y", 200, Some("flag /y"))?;
    served(&ctl, "app.test", "/other", 200, Some("flag /other"))?;
    Ok(())
}

fn conflict() -> Result<()> {
    let (b1, b2) = (Backend::start("old")?, Backend::start("new")?);
    let with_age = |ns: &str, name: &str, svc: &str, port: u16, created: &str| {
        let mut v = ingress_rule(ns, name, "clash.test", &[("/shared", "Prefix", svc, port)]);
        v["metadata"]["creationTimestamp"] = json!(created);
        v
    };
    // The newer one is written first: order of arrival must not matter.
    let ctl = started(
        &[
            ("s-new", local_service("b", "svc-new", b2.port)),
            ("s-old", local_service("a", "svc-old", b1.port)),
            (
                "newer",
                with_age("b", "newer", "svc-new", b2.port, "2024-05-01T00:00:00Z"),
            ),
        ],
        &[],
    )?;
    served(&ctl, "clash.test", "/shared", 200, Some("new /shared"))?;
    ctl.write(
        "older",
        &with_age("a", "older", "svc-old", b1.port, "2023-01-01T00:00:00Z"),
    )?;
    served(&ctl, "clash.test", "/shared/x", 200, Some("old /shared/x"))?;
    let conflicts = r#"berth_ingress_rejected_objects{reason="conflict"}"#;
    // Reports are published right after the reload: the gauge may trail the first 200.
    wait_until("conflict gauge set", SERVED_WITHIN, || {
        ctl.metric(conflicts).is_ok_and(|v| v >= 1.0)
    })?;
    let log = ctl.log_text();
    ensure!(
        log.lines().any(|l| l.contains("Ingress/b/newer")
            && l.contains("conflict")
            && l.contains("Ingress/a/older")),
        "loser not reported in the log:\n{log}"
    );
    // The winner goes away: the loser is served, and the conflict is over.
    remove(&ctl, "older")?;
    served(&ctl, "clash.test", "/shared", 200, Some("new /shared"))?;
    wait_until("conflict gauge back to 0", SERVED_WITHIN, || {
        ctl.metric(conflicts).is_ok_and(|v| v == 0.0)
    })?;
    Ok(())
}

fn nginx_killed() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let ctl = started(
        &[("svc", labelled_service("shop", "web", "k.test", b1.port))],
        &[],
    )?;
    served(&ctl, "k.test", "/", 200, Some("b1 /"))?;
    let master = ctl.nginx_pid().context("no nginx pid file")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let killed = Instant::now();
    // The orphaned worker may answer a moment longer; wait for the new master.
    wait_until("a new nginx master", Duration::from_secs(10), || {
        ctl.nginx_pid().is_some_and(|p| p != master)
    })
    .with_context(|| ctl.log_text())?;
    served(&ctl, "k.test", "/again", 200, Some("b1 /again"))?;
    let back = killed.elapsed();
    ensure!(
        back < Duration::from_secs(5),
        "serving again only after {back:?}"
    );
    eprintln!("nginx SIGKILL -> serving again (new master) in {back:?}");
    ensure!(ctl.metric("berth_ingress_nginx_restarts_total")? == 1.0);
    ensure!(
        ctl.log_text().contains("nginx master exited unexpectedly"),
        "{}",
        ctl.log_text()
    );
    // Reloads reach the new master.
    ctl.write(
        "svc2",
        &labelled_service("shop", "web2", "k2.test", b1.port),
    )?;
    served(&ctl, "k2.test", "/", 200, Some("b1 /"))?;
    ensure!(
        ctl.pid()
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
    );
    Ok(())
}

/// Not through [`IngressCtl`]: this test needs the exit status of the process.
fn sigterm() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let dir = berth_tests::new_state_dir("ingress-term")?;
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(
        manifests.join("svc.json"),
        labelled_service("shop", "web", "t.test", b1.port).to_string(),
    )?;
    let (http, metrics) = (free_port()?, free_port()?);
    let mut cmd = Command::new(ingress_ctl::binary()?);
    cmd.args([
        "run",
        "--source",
        "files",
        "--listen-address",
        "127.0.0.1",
        "--worker-processes",
        "1",
    ])
    .arg(format!("--manifests-dir={}", manifests.display()))
    .arg(format!("--nginx-prefix={}", dir.join("nginx").display()))
    .arg(format!(
        "--nginx-conf={}",
        dir.join("nginx/nginx.conf").display()
    ))
    .arg(format!("--http-port={http}"))
    .arg(format!("--https-port={}", free_port()?))
    .arg(format!("--metrics-address=127.0.0.1:{metrics}"));
    let log = dir.join("berth-ingress.log");
    let mut child = spawn_tied(&cmd, &log)?;
    let result = (|| -> Result<()> {
        let addr = format!("127.0.0.1:{http}");
        wait_until("served", SERVED_WITHIN, || {
            http_get(&addr, "t.test", "/").is_ok_and(|r| r.status == 200)
        })?;
        let master = std::fs::read_to_string(dir.join("nginx/nginx.pid"))?
            .trim()
            .parse::<i32>()?;
        // A request in flight when SIGTERM arrives completes.
        let slow = std::thread::spawn(move || http_get(&addr, "t.test", "/slow"));
        std::thread::sleep(Duration::from_millis(300));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let mut status = None;
        wait_until("berth-ingress to exit", Duration::from_secs(15), || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        })?;
        let status = status.context("no status")?;
        let r = slow.join().expect("request thread")?;
        ensure!(
            r.status == 200 && r.body == "b1 /slow",
            "in-flight request: {r:?}"
        );
        ensure!(status.success(), "berth-ingress exited with {status}");
        let alive = std::fs::read_to_string(format!("/proc/{master}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        });
        ensure!(!alive, "nginx master {master} still running");
        ensure!(
            TcpStreamProbe::refused(http),
            "nginx still listens on {http} after shutdown"
        );
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    berth_tests::sweep::directory(&dir);
    result.with_context(|| text)
}

struct TcpStreamProbe;
impl TcpStreamProbe {
    fn refused(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    }
}

fn render_from_dir() -> Result<()> {
    let dir = berth_tests::new_state_dir("ingress-render")?;
    let result = (|| -> Result<()> {
        let manifests = dir.join("manifests");
        std::fs::create_dir_all(dir.join("prefix/tmp"))?;
        std::fs::create_dir_all(&manifests)?;
        let files = [
            ("svc", labelled_service("shop", "web", "shop.test", 8080)),
            ("svc2", local_service("shop", "api", 9090)),
            (
                "ing",
                ingress_rule("shop", "api", "api.test", &[("/v1", "Exact", "api", 9090)]),
            ),
            (
                "bad",
                ingress_rule("shop", "bad", "bad.test;", &[("/", "Prefix", "api", 9090)]),
            ),
        ];
        for (name, v) in &files {
            std::fs::write(manifests.join(format!("{name}.json")), v.to_string())?;
        }
        let prefix = dir.join("prefix");
        let out = Command::new(ingress_ctl::binary()?)
            .arg("render")
            .arg(format!("--from={}", manifests.display()))
            .arg(format!("--nginx-prefix={}", prefix.display()))
            .args(["--http-port=18080", "--listen-address=127.0.0.1"])
            .output()?;
        let (stdout, stderr) = (
            String::from_utf8(out.stdout)?,
            String::from_utf8_lossy(&out.stderr),
        );
        ensure!(out.status.success(), "render failed: {stderr}");
        for want in [
            "server_name shop.test;",
            "server_name api.test;",
            "location = /v1 {",
            "127.0.0.1:18080",
        ] {
            ensure!(stdout.contains(want), "no {want:?} in:\n{stdout}");
        }
        ensure!(
            !stdout.contains("bad.test"),
            "rejected host rendered:\n{stdout}"
        );
        ensure!(
            stderr.contains("rejected: Ingress/shop/bad") && stderr.contains("invalid_host"),
            "report missing: {stderr}"
        );
        // What render prints is what nginx accepts.
        let conf = dir.join("rendered.conf");
        std::fs::write(&conf, &stdout)?;
        run(Command::new("nginx")
            .arg("-t")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf))?;
        Ok(())
    })();
    berth_tests::sweep::directory(&dir);
    result
}
