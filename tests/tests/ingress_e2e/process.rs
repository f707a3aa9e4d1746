//! The controller's process: nginx killed and restarted, SIGTERM drains and exits 0, and
//! `render --from DIR` prints a config nginx accepts.

use super::*;

pub fn nginx_killed() -> Result<()> {
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
pub fn sigterm() -> Result<()> {
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

pub fn render_from_dir() -> Result<()> {
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
