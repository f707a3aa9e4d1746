//! Running external programs for the harness: bounded time, stderr in the error, free ports,
//! and long-lived children that die with the test process.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Upper bound for one harness command: a hung CLI fails the test instead of hanging CI.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Run a command to completion (bounded by [`COMMAND_TIMEOUT`]); Err names the program and
/// carries its stderr. Returns stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    run_with_timeout(cmd, COMMAND_TIMEOUT)
}

pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let desc = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {desc}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{desc}: timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    if !status.success() {
        bail!("{desc}: {status}: {}", stderr.trim());
    }
    Ok(stdout)
}

/// The program and its arguments, for error messages (the harness never puts secrets in argv).
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Is `program` on PATH?
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Fail with one clear message naming the Debian packages to install.
pub fn require(programs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<_> = programs.iter().filter(|(p, _)| !have(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let progs: Vec<_> = missing.iter().map(|(p, _)| *p).collect();
    let mut pkgs: Vec<_> = missing.iter().map(|(_, k)| *k).collect();
    pkgs.dedup();
    bail!(
        "missing programs {progs:?}: install them with `apt-get install -y {}` (or run .ci/run once)",
        pkgs.join(" ")
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Spawn a long-lived child that receives SIGKILL when this process dies, even by SIGKILL.
///
/// The child runs under `setpriv --pdeathsig KILL` (util-linux), which survives the exec.
/// PDEATHSIG fires when the *thread* that forked exits, and test threads come and go, so every
/// such child is forked from one thread that lives as long as the process.
/// Its stdout and stderr are appended to `log`.
pub fn spawn_tied(cmd: &Command, log: &std::path::Path) -> Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("berth-test-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let desc = describe(cmd);
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--pdeathsig", "KILL", "--"]);
    wrapped.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open log {}", log.display()))?;
    wrapped.stdin(Stdio::null());
    wrapped.stdout(file.try_clone()?);
    wrapped.stderr(file);
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap()
        .send((wrapped, reply_tx))
        .map_err(|_| anyhow::anyhow!("spawner thread is gone"))?;
    reply_rx
        .recv()
        .context("spawner thread is gone")?
        .with_context(|| format!("spawn {desc}"))
}

/// Poll `check` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}
