//! berth-ingress process lifecycle (issue 12 items 3, 4 and 6), with the real binary and a
//! real nginx: nginx dies with a SIGKILLed controller; a restarted controller stops the
//! nginx it finds in the pid file and serves within 2 s; SIGTERM turns /readyz 503 before the
//! drain; a hung `nginx -t` times out, is retried, and never delays SIGTERM; a reload nginx
//! does not take is reported and retried; the metrics listener survives EMFILE, idle clients
//! and floods of connections; the reload metrics count what happened (attempts, reloads that
//! went live, failures, and when the last config went live).

use std::io::Read as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_common::procs::{alive, children};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{IngressCtl, ingress, local_service};
use berth_tests::nginx::{http_get, private_http_paths, private_paths};
use berth_tests::proc::{spawn_tied, wait_until};
use libtest_mimic::{Arguments, Failed, Trial};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

fn main() {
    let args = Arguments::from_args();
    let t = |name: &str, f: fn() -> Result<()>| {
        Trial::test(name, move || {
            f().map_err(|e| Failed::from(format!("{e:#}")))
        })
    };
    let trials = vec![
        t(
            "sigkill_of_the_controller_takes_nginx_down_and_a_restart_serves",
            sigkill_controller,
        ),
        t(
            "leftover_nginx_in_the_pid_file_is_stopped_and_new_routes_served",
            leftover_nginx,
        ),
        t("sigterm_turns_readyz_503_before_the_drain", sigterm_readyz),
        t(
            "hung_nginx_call_times_out_is_retried_and_never_delays_sigterm",
            hung_nginx,
        ),
        t(
            "reload_nginx_did_not_take_is_reported_and_retried",
            reload_not_taken,
        ),
        t(
            "metrics_listener_survives_emfile_idle_clients_and_floods",
            metrics_listener,
        ),
        t(
            "reload_metrics_count_attempts_successes_failures_and_live_time",
            reload_metrics,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// A Service on `backend` and an Ingress routing `host` `/` to it.
fn route(ctl: &IngressCtl, host: &str, backend: &Backend) -> Result<()> {
    let name = host.replace('.', "-");
    ctl.write(
        &format!("svc-{name}"),
        &local_service("life", &name, backend.port),
    )?;
    ctl.write(
        &format!("ing-{name}"),
        &ingress("life", &name, host, "/", (&name, backend.port), &[], None),
    )
}

fn manifests_for(host: &str, backend: &Backend) -> Vec<(String, Value)> {
    let name = host.replace('.', "-");
    vec![
        (
            format!("svc-{name}"),
            local_service("life", &name, backend.port),
        ),
        (
            format!("ing-{name}"),
            ingress("life", &name, host, "/", (&name, backend.port), &[], None),
        ),
    ]
}

fn as_refs(v: &[(String, Value)]) -> Vec<(&str, Value)> {
    v.iter().map(|(n, v)| (n.as_str(), v.clone())).collect()
}

/// Wait until `host` answers 200 with `backend`'s body; returns when it first did.
fn served_by(ctl: &IngressCtl, host: &str, backend: &Backend, within: Duration) -> Result<()> {
    let want = backend.body_for("/");
    let mut last = String::new();
    wait_until(&format!("{host} -> {want}"), within, || {
        match http_get(&ctl.http_addr(), host, "/") {
            Ok(r) => {
                last = format!("{} {}", r.status, r.body);
                r.status == 200 && r.body == want
            }
            Err(e) => {
                last = format!("{e:#}");
                false
            }
        }
    })
    .with_context(|| format!("last answer: {last}\n{}", ctl.log_text()))
}

/// Issue 12 item 4: SIGKILL of berth-ingress takes its nginx (master and workers) down; a
/// restarted controller serves a route added meanwhile within 2 s.
fn sigkill_controller() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let b2 = Backend::start("b2")?;
    let mut ctl = IngressCtl::start(&as_refs(&manifests_for("one.test", &b1)), &[])?;
    ctl.wait_ready()?;
    served_by(&ctl, "one.test", &b1, Duration::from_secs(10))?;
    let master = ctl.nginx_pid().context("no nginx pid")?;
    let workers = children(master);
    ensure!(!workers.is_empty(), "no nginx workers under {master}");
    ctl.kill_hard()?;
    let killed = Instant::now();
    let mut all = workers.clone();
    all.push(master);
    wait_until(
        "nginx to die with its controller",
        Duration::from_secs(2),
        || all.iter().all(|p| !alive(*p)),
    )
    .with_context(|| {
        format!(
            "still running after SIGKILL of the controller: {:?}",
            all.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        )
    })?;
    eprintln!("controller SIGKILL -> nginx gone in {:?}", killed.elapsed());
    ensure!(
        TcpStream::connect(ctl.http_addr()).is_err(),
        "something still listens on the http port"
    );
    route(&ctl, "two.test", &b2)?;
    let restarted = Instant::now();
    ctl.launch(&[])?;
    served_by(&ctl, "two.test", &b2, Duration::from_secs(10))?;
    let took = restarted.elapsed();
    eprintln!("restart after SIGKILL -> new route served in {took:?}");
    ensure!(took <= Duration::from_secs(2), "served only after {took:?}");
    served_by(&ctl, "one.test", &b1, Duration::from_secs(1))?;
    Ok(())
}

/// Issue 12 item 4: an nginx left running with our prefix (its pid in PREFIX/nginx.pid,
/// holding our ports) is stopped by a starting controller, which then serves within 2 s;
/// /readyz is not 200 before that.
fn leftover_nginx() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let mut ctl = IngressCtl::create(&as_refs(&manifests_for("new.test", &b1)))?;
    std::fs::create_dir_all(ctl.prefix.join("tmp"))?;
    let conf = ctl.prefix.join("leftover.conf");
    std::fs::write(
        &conf,
        format!(
            "{}events {{ worker_connections 64; }}\nhttp {{\n{}server {{ listen 127.0.0.1:{}; \
             location / {{ return 200 \"leftover\"; }} }}\n}}\n",
            private_paths(&ctl.prefix),
            private_http_paths(&ctl.prefix),
            ctl.http_port
        ),
    )?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(&ctl.prefix)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"]);
    let mut leftover = spawn_tied(&cmd, &ctl.dir.join("leftover.log"))?;
    let result = (|| -> Result<()> {
        wait_until("the leftover nginx", Duration::from_secs(10), || {
            http_get(&ctl.http_addr(), "new.test", "/").is_ok_and(|r| r.body == "leftover")
        })?;
        wait_until("its pid file", Duration::from_secs(5), || {
            ctl.nginx_pid() == Some(leftover.id() as i32)
        })?;
        let started = Instant::now();
        ctl.launch(&[])?;
        served_by(&ctl, "new.test", &b1, Duration::from_secs(10))?;
        let took = started.elapsed();
        eprintln!("controller start with a leftover nginx -> route served in {took:?}");
        ensure!(took <= Duration::from_secs(2), "served only after {took:?}");
        ensure!(
            leftover.try_wait()?.is_some(),
            "the leftover nginx still runs"
        );
        // Ready once the controller verified that its nginx serves (a moment after).
        wait_until("/readyz 200", Duration::from_secs(2), || {
            ctl.admin("/readyz").is_ok_and(|r| r.status == 200)
        })?;
        let log = ctl.log_text();
        ensure!(!log.contains("Address already in use"), "{log}");
        Ok(())
    })();
    let _ = leftover.kill();
    let _ = leftover.wait();
    result
}

/// Issue 12 item 4: on SIGTERM /readyz answers 503 while nginx still drains an in-flight
/// request, which completes; old workers are bounded by `worker_shutdown_timeout`.
fn sigterm_readyz() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let mut ctl = IngressCtl::start(&as_refs(&manifests_for("t.test", &b1)), &[])?;
    ctl.wait_ready()?;
    served_by(&ctl, "t.test", &b1, Duration::from_secs(10))?;
    let addr = ctl.http_addr();
    let slow = std::thread::spawn(move || http_get(&addr, "t.test", "/slow"));
    std::thread::sleep(Duration::from_millis(300));
    let pid = ctl.pid().context("controller pid")?;
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM)?;
    let mut seen = None;
    wait_until("/readyz to answer 503", Duration::from_millis(600), || {
        seen = ctl.admin("/readyz").ok().map(|r| r.status);
        seen == Some(503)
    })
    .with_context(|| format!("/readyz during the drain: {seen:?}"))?;
    let r = slow.join().expect("request thread")?;
    ensure!(
        r.status == 200,
        "in-flight request: {} {}",
        r.status,
        r.body
    );
    let (_, status) = ctl.terminate(Duration::from_secs(10))?;
    ensure!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(
        conf.contains("worker_shutdown_timeout"),
        "no worker_shutdown_timeout in the live config"
    );
    Ok(())
}

/// An nginx wrapper: `nginx -t` hangs (exec sleep) while `flag` exists; everything else is nginx.
fn hanging_nginx(dir: &Path, flag: &Path) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("hang-nginx");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = -t ] && [ -e {} ]; then exec sleep 120; fi\nexec nginx \"$@\"\n",
            flag.display()
        ),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Issue 12 item 3: a hung `nginx -t` times out and the failed sync is retried without a
/// new change; SIGTERM while `nginx -t` hangs exits at once.
fn hung_nginx() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let mut ctl = IngressCtl::create(&as_refs(&manifests_for("h.test", &b1)))?;
    let flag = ctl.dir.join("hang");
    std::fs::write(&flag, "")?;
    let wrapper = hanging_nginx(&ctl.dir, &flag)?;
    let nginx = format!("--nginx-binary={}", wrapper.display());
    ctl.env.push(("BERTH_NGINX_TIMEOUT".into(), "1s".into()));
    ctl.launch(std::slice::from_ref(&nginx))?;
    // The first `nginx -t` hangs: SIGTERM must not wait for it.
    let pid = ctl.pid().context("controller pid")? as i32;
    wait_until(
        "the controller to run the hanging nginx -t",
        Duration::from_secs(10),
        || {
            children(pid)
                .iter()
                .any(|c| berth_common::procs::title(*c).starts_with("sleep"))
        },
    )?;
    let (took, status) = ctl.terminate(Duration::from_secs(5))?;
    ensure!(
        took <= Duration::from_secs(2),
        "SIGTERM waited {took:?} behind a hung nginx -t (exit {status:?})"
    );
    // Again: the hung call times out, the sync is retried once nginx answers again.
    ctl.launch(std::slice::from_ref(&nginx))?;
    wait_until("the nginx -t timeout", Duration::from_secs(5), || {
        ctl.log_text().contains("timed out")
    })
    .with_context(|| ctl.log_text())?;
    std::fs::remove_file(&flag)?;
    served_by(&ctl, "h.test", &b1, Duration::from_secs(10))?;
    ctl.wait_ready()?;
    Ok(())
}

/// Issue 12 item 3: a reload the nginx master does not act on (stopped with SIGSTOP) is
/// reported (log + metric), not claimed as served; once the master runs again the new route
/// is served without another change.
fn reload_not_taken() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let b2 = Backend::start("b2")?;
    let mut ctl = IngressCtl::create(&as_refs(&manifests_for("r1.test", &b1)))?;
    ctl.env.push(("BERTH_NGINX_TIMEOUT".into(), "1s".into()));
    ctl.launch(&[])?;
    ctl.wait_ready()?;
    served_by(&ctl, "r1.test", &b1, Duration::from_secs(10))?;
    let master = Pid::from_raw(ctl.nginx_pid().context("nginx pid")?);
    kill(master, Signal::SIGSTOP)?;
    let result = (|| -> Result<()> {
        route(&ctl, "r2.test", &b2)?;
        wait_until(
            "the reload to be reported as not taken",
            Duration::from_secs(6),
            || ctl.log_text().contains("did not take"),
        )
        .with_context(|| ctl.log_text())?;
        ensure!(
            !ctl.log_text().contains("nginx reloaded"),
            "{}",
            ctl.log_text()
        );
        Ok(())
    })();
    kill(master, Signal::SIGCONT)?;
    result?;
    served_by(&ctl, "r2.test", &b2, Duration::from_secs(10))?;
    wait_until(
        "the retried reload to be verified",
        Duration::from_secs(10),
        || ctl.log_text().contains("nginx reloaded"),
    )
    .with_context(|| ctl.log_text())?;
    ensure!(ctl.metric("berth_ingress_reload_not_taken_total")? >= 1.0);
    Ok(())
}

/// CPU seconds (user + system) `pid` has used.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, rest) = stat.rsplit_once(')').context("stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Issue 12 item 6: the metrics listener backs off on accept errors (EMFILE no longer spins
/// a core), closes connections that send no request head, and caps its connections.
fn metrics_listener() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let ctl = IngressCtl::start(&as_refs(&manifests_for("m.test", &b1)), &[])?;
    ctl.wait_ready()?;
    let pid = ctl.pid().context("pid")?;

    // An idle client (no request head) is disconnected.
    let mut idle = TcpStream::connect(ctl.metrics_addr())?;
    idle.set_read_timeout(Some(Duration::from_secs(12)))?;
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf);
    ensure!(
        n.is_ok() && t.elapsed() < Duration::from_secs(12),
        "an idle connection was kept for {:?}: {n:?}",
        t.elapsed()
    );
    eprintln!("idle metrics connection closed after {:?}", t.elapsed());
    drop(idle);

    // A flood of idle connections: at most the cap is accepted.
    let before = open_fds(pid);
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(ctl.metrics_addr()).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = open_fds(pid);
    ensure!(
        during <= before + 70,
        "{} connections held {} fds ({before} before)",
        flood.len(),
        during
    );
    drop(flood);

    // EMFILE: no fd left for accept. The listener must not spin.
    wait_until("fds released", Duration::from_secs(10), || {
        open_fds(pid) <= before + 2
    })?;
    let limit = open_fds(pid) + 2;
    let prlimit = |spec: &str| {
        berth_tests::proc::run(
            Command::new("prlimit")
                .arg(format!("--pid={pid}"))
                .arg(format!("--nofile={spec}")),
        )
    };
    let hard = berth_tests::proc::run(Command::new("prlimit").arg(format!("--pid={pid}")).args([
        "--nofile",
        "--raw",
        "--noheadings",
        "-o",
        "HARD",
    ]))?;
    prlimit(&format!("{limit}:{}", hard.trim()))?;
    let result = (|| -> Result<()> {
        let clients: Vec<TcpStream> = (0..20)
            .filter_map(|_| TcpStream::connect(ctl.metrics_addr()).ok())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let cpu0 = cpu_seconds(pid)?;
        std::thread::sleep(Duration::from_secs(2));
        let used = cpu_seconds(pid)? - cpu0;
        drop(clients);
        eprintln!("CPU while accept fails with EMFILE: {used:.2} s over 2 s");
        ensure!(used < 0.5, "the accept loop spun: {used:.2} CPU s in 2 s");
        Ok(())
    })();
    prlimit(&format!("{}:{}", hard.trim(), hard.trim()))?;
    result?;
    wait_until("/healthz after EMFILE", Duration::from_secs(10), || {
        ctl.admin("/healthz").is_ok_and(|r| r.status == 200)
    })?;
    Ok(())
}

/// Seconds since the epoch, as a float.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A candidate nginx refuses counts as a failed attempt, only configs that
/// went live count as reloads, and the live time is stamped once nginx serves the change.
fn reload_metrics() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let b2 = Backend::start("b2")?;
    let ctl = IngressCtl::start(
        &as_refs(&manifests_for("k1.test", &b1)),
        &["--allow-external-name".to_owned()],
    )?;
    ctl.wait_ready()?;
    served_by(&ctl, "k1.test", &b1, Duration::from_secs(10))?;
    let m = |name: &str| ctl.metric(name);
    let (ok0, failed0) = (
        m("berth_ingress_reloads_total")?,
        m("berth_ingress_reload_failures_total")?,
    );
    // One burst: an object nginx -t refuses (its name does not resolve) and a good route.
    // Whether they land in one pass or two, exactly one new config goes live (k1 + k2)
    // and exactly one candidate is refused.
    let before = unix_now();
    ctl.write(
        "ext",
        &serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ext", "namespace": "bad"},
            "spec": {"type": "ExternalName", "externalName": "no-such-host.invalid",
                     "ports": [{"port": 80}]}}),
    )?;
    ctl.write(
        "ext-ing",
        &ingress("bad", "ext", "ext.test", "/", ("ext", 80), &[], None),
    )?;
    route(&ctl, "k2.test", &b2)?;
    served_by(&ctl, "k2.test", &b2, Duration::from_secs(10))?;
    wait_until(
        "the refused object to be dropped",
        Duration::from_secs(10),
        || m("berth_ingress_nginx_rejected_objects_total").is_ok_and(|v| v >= 1.0),
    )
    .with_context(|| ctl.log_text())?;
    std::thread::sleep(Duration::from_millis(500));
    let ok = m("berth_ingress_reloads_total")? - ok0;
    let failed = m("berth_ingress_reload_failures_total")? - failed0;
    ensure!(
        ok == 1.0 && failed == 1.0,
        "one config went live and one candidate was refused, but the metrics say reloads +{ok}, failures +{failed}\n{}",
        ctl.log_text()
    );
    let attempts = m("berth_ingress_reload_attempts_total")?;
    let all_ok = m("berth_ingress_reloads_total")?;
    let all_failed = m("berth_ingress_reload_failures_total")?;
    ensure!(
        attempts == all_ok + all_failed,
        "attempts {attempts} != reloads {all_ok} + failures {all_failed}"
    );
    let live = m("berth_ingress_last_config_live_timestamp_seconds")?;
    ensure!(
        live >= before && live <= unix_now(),
        "the last config went live at {live}, not between the change ({before}) and now"
    );
    Ok(())
}
