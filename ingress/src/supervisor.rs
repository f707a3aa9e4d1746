//! Supervision of the nginx that `berth-ingress run` starts: start, detect an unexpected
//! death, report it, clean up, restart; graceful stop at shutdown.
//!
//! The master runs in the foreground (`daemon off`) as our child, in its own process group so
//! that its workers can be found after it dies: a master killed with SIGKILL leaves its workers
//! running as orphans, still holding the listening sockets, and a new master could not bind.
//! On an unexpected exit the supervisor therefore (1) marks the master gone (reloads become
//! no-ops; the installed config is what the next master loads), (2) asks the orphaned workers
//! to finish gracefully (SIGQUIT to the group: they close their listeners at once and finish
//! in-flight requests) and kills what is left after [`ORPHAN_GRACE`], (3) starts a new master on
//! the last installed — always the last good — config. Restarts back off exponentially from
//! [`BACKOFF_MIN`] to [`BACKOFF_MAX`]; a master that ran for [`HEALTHY_UPTIME`] resets the
//! backoff; after [`MAX_QUICK_DEATHS`] deaths in a row shortly after start the supervisor gives
//! up and `run` fails (the pod restarts, and the cause is in the log).
//!
//! nginx never outlives its controller: the master is started through `berth-ingress
//! exec-tied` ([`exec_tied`]: set the parent-death signal `PR_SET_PDEATHSIG` = SIGTERM, check
//! the parent still lives, exec nginx; the signal survives exec), so when berth-ingress dies —
//! even by SIGKILL — the master stops its workers and exits. A master
//! left over anyway (an older controller, one started by hand with our prefix) is found by
//! [`Supervisor::start`] through the pid file and stopped before ours starts, so ours can bind.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::nginx::{NginxError, NginxPaths};

/// First restart delay: quick enough that a crash costs well under a second of downtime.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest restart delay: a crash loop must not burn the CPU, yet retry often enough.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A master that ran this long was healthy: its death starts the backoff again from the minimum.
pub const HEALTHY_UPTIME: Duration = Duration::from_secs(10);
/// Deaths in a row, each within [`HEALTHY_UPTIME`] of its start, after which we give up: nginx
/// cannot run here (port taken, prefix unwritable) and restarting again will not change that.
pub const MAX_QUICK_DEATHS: u32 = 8;
/// How long orphaned workers of a dead master may take to finish in-flight requests.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(2);
/// How long a leftover master from the pid file gets to stop (SIGTERM) before SIGKILL.
pub const LEFTOVER_GRACE: Duration = Duration::from_secs(1);

/// Starts, restarts and stops the nginx master; shares its pid with [`crate::nginx::Nginx`].
#[derive(Debug)]
pub struct Supervisor {
    paths: NginxPaths,
    /// The berth-ingress executable that ties nginx to us ([`exec_tied`]); `None`: nginx is
    /// started directly (unit tests, whose executable has no such command).
    tie: Option<std::path::PathBuf>,
    pid: Arc<AtomicI32>,
    child: Option<Child>,
    started: Instant,
}

/// How a supervised master ended, for the log.
fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

impl Supervisor {
    pub(crate) fn new(paths: NginxPaths, pid: Arc<AtomicI32>) -> Self {
        Self {
            paths,
            tie: None,
            pid,
            child: None,
            started: Instant::now(),
        }
    }

    /// Start nginx through `exe exec-tied` so it dies with this process.
    pub fn tied_to(mut self, exe: std::path::PathBuf) -> Self {
        self.tie = Some(exe);
        self
    }

    /// Start the master on the installed config (call after the first successful install).
    /// A leftover master named by the pid file is stopped first, and a stale status socket
    /// (left by a master that was killed) removed.
    pub async fn start(&mut self) -> Result<(), NginxError> {
        stop_leftover(&self.paths.prefix).await;
        let socket = crate::live::socket(&self.paths.prefix);
        if let Err(e) = std::fs::remove_file(&socket)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %socket.display(), error = %e, "removing the stale status socket failed");
        }
        let mut cmd = match &self.tie {
            Some(exe) => {
                let mut c = Command::new(exe);
                c.arg("exec-tied")
                    .arg(format!("--parent={}", std::process::id()))
                    .arg("--")
                    .arg(&self.paths.binary);
                c
            }
            None => Command::new(&self.paths.binary),
        };
        cmd.args(["-g", "daemon off;", "-e", "stderr", "-p"])
            .arg(&self.paths.prefix)
            .arg("-c")
            .arg(&self.paths.conf)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| NginxError::Spawn {
            binary: self.paths.binary.clone(),
            source,
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        tracing::info!(pid, "nginx started");
        self.pid.store(pid, Ordering::Release);
        self.child = Some(child);
        self.started = Instant::now();
        Ok(())
    }

    /// The running master's pid (0 when none).
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Acquire)
    }

    /// Watch the master; restart it whenever it dies, calling `on_death` with the exit status
    /// first. Returns (with the last status) only when restarting keeps failing; dropping the
    /// future stops watching and leaves the running master alone (stop it with [`Self::quit`]).
    pub async fn supervise(&mut self, on_death: impl Fn(&str)) -> String {
        let mut backoff = BACKOFF_MIN;
        let mut quick_deaths = 0u32;
        loop {
            let status = match self.child.as_mut() {
                Some(child) => describe(child.wait().await),
                None => "not running".to_owned(),
            };
            let group = self.pid.swap(0, Ordering::AcqRel);
            self.child = None;
            let uptime = self.started.elapsed();
            tracing::error!(
                pid = group,
                %status,
                uptime_ms = uptime.as_millis() as u64,
                "nginx master exited unexpectedly; restarting it"
            );
            on_death(&status);
            if group > 0 {
                stop_orphans(group).await;
            }
            if uptime >= HEALTHY_UPTIME {
                backoff = BACKOFF_MIN;
                quick_deaths = 0;
            } else {
                quick_deaths += 1;
                if quick_deaths >= MAX_QUICK_DEATHS {
                    tracing::error!(
                        deaths = quick_deaths,
                        "nginx keeps dying right after start; giving up"
                    );
                    return status;
                }
            }
            sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if let Err(e) = self.start().await {
                tracing::error!(error = %e, "restarting nginx failed");
                self.started = Instant::now();
            }
        }
    }

    /// Graceful stop: SIGQUIT lets the workers finish in-flight requests; after `grace` the
    /// whole group is killed.
    pub async fn quit(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = self.pid.swap(0, Ordering::AcqRel);
        if pid > 0 {
            _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::warn!("nginx did not quit in time; killing it");
            _ = child.kill().await;
        }
        if pid > 0 {
            _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        tracing::info!("nginx stopped");
    }
}

/// `berth-ingress exec-tied --parent PID -- PROGRAM ARGS...`: make the kernel send us SIGTERM
/// when the thread that started us dies (the controller), make sure it has not died already,
/// then become PROGRAM. Returns only on failure.
pub fn exec_tied(
    parent: i32,
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
        return e.into();
    }
    if nix::unistd::getppid().as_raw() != parent {
        return std::io::Error::other("the controller exited before nginx started");
    }
    std::process::Command::new(program).args(args).exec()
}

/// Stop the nginx master named by `PREFIX/nginx.pid` if one still runs (left by an earlier
/// controller or started by hand with our prefix; its title must name the prefix, so a
/// recycled pid is never signalled): SIGTERM (it stops its workers), after
/// [`LEFTOVER_GRACE`] SIGKILL for it and its workers.
async fn stop_leftover(prefix: &std::path::Path) {
    use crate::live::{alive, children, title};
    let pid_file = prefix.join("nginx.pid");
    let ours = |p: i32| {
        let t = title(p);
        t.starts_with("nginx: master process") && t.contains(&*prefix.to_string_lossy())
    };
    let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|&p| p > 0 && alive(p) && ours(p))
    else {
        return;
    };
    let workers = children(pid);
    tracing::warn!(pid, ?workers, pid_file = %pid_file.display(), "an nginx master from an earlier run still runs; stopping it");
    _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + LEFTOVER_GRACE;
    let gone = |p: &i32| !alive(*p);
    while Instant::now() < deadline && !(gone(&pid) && workers.iter().all(gone)) {
        sleep(Duration::from_millis(10)).await;
    }
    if !(gone(&pid) && workers.iter().all(gone)) {
        tracing::warn!(pid, "the leftover nginx did not stop in time; killing it");
        for p in workers.iter().chain([&pid]) {
            _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        let deadline = Instant::now() + LEFTOVER_GRACE;
        while Instant::now() < deadline && !(gone(&pid) && workers.iter().all(gone)) {
            sleep(Duration::from_millis(10)).await;
        }
    }
    tracing::info!(pid, "leftover nginx stopped");
}

use berth_common::procs::group_members;

/// Ask the orphaned workers of a dead master to finish (SIGQUIT: listeners close at once),
/// wait up to [`ORPHAN_GRACE`], then kill the rest.
async fn stop_orphans(pgid: i32) {
    let group = Pid::from_raw(pgid);
    if killpg(group, Signal::SIGQUIT).is_err() {
        return; // no such group: nothing left behind
    }
    let deadline = Instant::now() + ORPHAN_GRACE;
    loop {
        let left = tokio::task::spawn_blocking(move || group_members(pgid))
            .await
            .unwrap_or_default();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(workers = ?left, "orphaned nginx workers did not finish; killing them");
            _ = killpg(group, Signal::SIGKILL);
            return;
        }
        sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_of_this_process_is_found_and_unknown_group_is_empty() {
        let me = nix::unistd::getpgrp().as_raw();
        assert!(group_members(me).contains(&(std::process::id() as i32)));
        assert!(group_members(i32::MAX).is_empty());
    }

    #[tokio::test]
    async fn gives_up_when_nginx_cannot_start() {
        let dir = tempfile::tempdir().unwrap();
        let paths = NginxPaths {
            binary: "/bin/false".into(),
            conf: dir.path().join("nginx.conf"),
            prefix: dir.path().to_owned(),
        };
        let mut s = Supervisor::new(paths, Arc::new(AtomicI32::new(0)));
        s.start().await.unwrap();
        let deaths = std::sync::atomic::AtomicU32::new(0);
        tokio::time::pause();
        let last = s
            .supervise(|_| {
                deaths.fetch_add(1, Ordering::Relaxed);
            })
            .await;
        assert_eq!(deaths.load(Ordering::Relaxed), MAX_QUICK_DEATHS);
        assert!(last.contains("exit status: 1"), "{last}");
        assert_eq!(s.pid(), 0);
    }
}
