//! nginx process control: test a candidate, swap it in atomically, reload, supervise.
//!
//! Contract: the candidate (stamped, `live.rs`) is written to a temp file in the live config's
//! directory, checked with `nginx -t -q -e stderr -p PREFIX -c CANDIDATE`, then renamed over
//! the live file (same filesystem, so the swap is atomic) and the master gets SIGHUP, nginx's
//! graceful reload. If `nginx -t` refuses the candidate, the live file and the running nginx
//! are untouched. A reload counts only once nginx serves the new config on every new
//! connection (`live::wait_serving`); one it does not take is an error. Every nginx call is
//! bounded by a timeout (`nginx -t` resolves upstream names and can hang on DNS); a timed-out
//! `nginx -t` is killed.
//!
//! Two ways to run nginx: supervised (`berth-ingress run` starts `nginx -g 'daemon off;'` as
//! its child after writing the first config, signals the child and restarts it if it dies:
//! `supervisor.rs`), or external (`init` writes the first config, nginx runs elsewhere, reloads
//! signal the pid in `PREFIX/nginx.pid`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::live;
use crate::supervisor::Supervisor;

/// Default bound on one nginx call (`nginx -t`, or a reload until it is verified).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where nginx and its files are.
#[derive(Clone, Debug)]
pub struct NginxPaths {
    pub binary: PathBuf,
    /// The live config file.
    pub conf: PathBuf,
    /// nginx's `-p` prefix: pid file and temp dirs (must match the rendered config).
    pub prefix: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("running {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `nginx -t` refused the candidate; the message is nginx's (first lines, escaped).
    #[error("nginx -t rejected the candidate: {0}")]
    Rejected(String),
    #[error("reading nginx pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signalling nginx (pid {pid}): {source}")]
    Signal {
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("{what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },
    /// SIGHUP was sent but nginx did not start serving the new config in time.
    #[error("nginx did not take the reload within {after:?}: {detail}")]
    NotTaken { after: Duration, detail: String },
}

/// What the sync loop needs from nginx; [`Nginx`] is the real one, tests use fakes.
pub trait Apply: Send {
    /// Would nginx accept this config? (`Err` carries nginx's message.)
    fn check(&mut self, text: &str) -> impl Future<Output = Result<(), NginxError>> + Send;
    /// Check, swap in and reload. On `Err(Rejected)` nothing changed.
    fn apply(&mut self, text: &str) -> impl Future<Output = Result<(), NginxError>> + Send;
    /// Is a master running that serves what `apply` installed? (Before the supervised master
    /// starts, `apply` only installs the file: not ready yet.)
    fn serving(&self) -> bool {
        true
    }
}

/// The real nginx.
#[derive(Debug)]
pub struct Nginx {
    paths: NginxPaths,
    /// Supervised mode: the master's pid while it runs (0 otherwise), shared with the
    /// [`Supervisor`] that restarts it; while it is 0, reloads are no-ops (the installed
    /// config is what the next master loads).
    supervised: bool,
    child_pid: Arc<AtomicI32>,
    /// Bound on each nginx call.
    timeout: Duration,
    /// Hash (hex) of the last installed config.
    installed: Option<String>,
}

/// Keep nginx's message short in logs and errors (validated values only reach it anyway).
fn summarise(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .collect();
    lines
        .join(" | ")
        .chars()
        .take(600)
        .flat_map(char::escape_default)
        .collect()
}

impl Nginx {
    /// `supervised`: we start nginx ourselves ([`Nginx::spawn`]); otherwise reloads signal the
    /// pid in `PREFIX/nginx.pid`.
    pub fn new(paths: NginxPaths, supervised: bool) -> Self {
        Self {
            paths,
            supervised,
            child_pid: Arc::new(AtomicI32::new(0)),
            timeout: DEFAULT_TIMEOUT,
            installed: None,
        }
    }

    /// Bound each nginx call by `timeout` instead of [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn paths(&self) -> &NginxPaths {
        &self.paths
    }

    fn conf_dir(&self) -> &Path {
        self.paths
            .conf
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// Create the prefix and config directories.
    pub fn prepare_dirs(&self) -> Result<(), NginxError> {
        for dir in [self.paths.prefix.as_path(), self.conf_dir()] {
            std::fs::create_dir_all(dir).map_err(|source| NginxError::Write {
                path: dir.to_owned(),
                source,
            })?;
        }
        Ok(())
    }

    fn write_candidate(&self, text: &str) -> Result<tempfile::NamedTempFile, NginxError> {
        let dir = self.conf_dir();
        let err = |source| NginxError::Write {
            path: dir.to_owned(),
            source,
        };
        let mut file = tempfile::Builder::new()
            .prefix(".berth-candidate-")
            .suffix(".conf")
            .tempfile_in(dir)
            .map_err(err)?;
        file.write_all(live::stamp(text, &self.paths.prefix).as_bytes())
            .map_err(err)?;
        file.as_file().sync_all().map_err(err)?;
        Ok(file)
    }

    async fn test_file(&self, path: &Path) -> Result<(), NginxError> {
        let run = Command::new(&self.paths.binary)
            .args(["-t", "-q", "-e", "stderr", "-p"])
            .arg(&self.paths.prefix)
            .arg("-c")
            .arg(path)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| NginxError::Timeout {
                what: "nginx -t",
                after: self.timeout,
            })?
            .map_err(|source| NginxError::Spawn {
                binary: self.paths.binary.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NginxError::Rejected(summarise(&out.stderr)))
        }
    }

    /// Test and atomically install a config, without reloading (the `init` step).
    pub async fn install(&mut self, text: &str) -> Result<(), NginxError> {
        let candidate = self.write_candidate(text)?;
        self.test_file(candidate.path()).await?;
        candidate
            .persist(&self.paths.conf)
            .map_err(|e| NginxError::Write {
                path: self.paths.conf.clone(),
                source: e.error,
            })?;
        self.installed = Some(live::hex_hash(text));
        Ok(())
    }

    /// Wait (up to the call timeout) until nginx serves the installed config on every new
    /// connection and none of `old` (workers accepting before a reload) still accepts.
    pub async fn wait_serving(&self, old: &[i32]) -> Result<(), NginxError> {
        let hash = self.installed.as_deref().unwrap_or_default();
        let socket = live::socket(&self.paths.prefix);
        live::wait_serving(&socket, hash, old, self.timeout)
            .await
            .map_err(|e| NginxError::NotTaken {
                after: self.timeout,
                detail: e.to_string(),
            })
    }

    /// The supervisor of a berth-started nginx: it starts, restarts and stops the master and
    /// keeps the pid this [`Nginx`] signals up to date.
    pub fn supervisor(&self) -> Supervisor {
        Supervisor::new(self.paths.clone(), self.child_pid.clone())
    }

    fn master_pid(&self) -> Result<i32, NginxError> {
        if self.supervised {
            return Ok(self.child_pid.load(Ordering::Acquire));
        }
        let path = self.paths.prefix.join("nginx.pid");
        let text = std::fs::read_to_string(&path).map_err(|source| NginxError::PidFile {
            path: path.clone(),
            source,
        })?;
        text.trim().parse().map_err(|_| NginxError::PidFile {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a pid"),
        })
    }

    /// Ask the master to reload (SIGHUP): new workers get the new config, old ones drain.
    /// Returns the workers that accepted connections before the signal (empty: no master,
    /// nothing signalled; the installed config is what the next master loads).
    fn reload(&self) -> Result<Option<Vec<i32>>, NginxError> {
        let pid = self.master_pid()?;
        if pid == 0 {
            return Ok(None);
        }
        let old = live::accepting_workers(pid);
        kill(Pid::from_raw(pid), Signal::SIGHUP)
            .map_err(|source| NginxError::Signal { pid, source })?;
        Ok(Some(old))
    }
}

impl Apply for Nginx {
    async fn check(&mut self, text: &str) -> Result<(), NginxError> {
        let candidate = self.write_candidate(text)?;
        self.test_file(candidate.path()).await
    }

    async fn apply(&mut self, text: &str) -> Result<(), NginxError> {
        self.install(text).await?;
        match self.reload()? {
            Some(old) => self.wait_serving(&old).await,
            None => Ok(()),
        }
    }

    fn serving(&self) -> bool {
        !self.supervised || self.child_pid.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_short_and_escaped() {
        let s = summarise(b"nginx: [emerg] bad \"x\"\n\nline2\nline3\nline4\n");
        assert_eq!(s, "nginx: [emerg] bad \\\"x\\\" | line2 | line3");
    }

    #[tokio::test]
    async fn missing_binary_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = NginxPaths {
            binary: dir.path().join("no-such-nginx"),
            conf: dir.path().join("nginx.conf"),
            prefix: dir.path().to_owned(),
        };
        let mut n = Nginx::new(paths, true);
        let err = n.check("events {}").await.unwrap_err();
        assert!(matches!(err, NginxError::Spawn { .. }), "{err}");
        assert!(!dir.path().join("nginx.conf").exists());
    }
}
