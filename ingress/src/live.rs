//! Which config does nginx serve right now? The live-config stamp and its check.
//!
//! Before a rendered config is tested and installed, [`stamp`] appends two things to it:
//! `worker_shutdown_timeout` (old workers drain for at most [`WORKER_SHUTDOWN_TIMEOUT`] after a
//! reload or a graceful stop, so none can linger on an old config) and a status server on a
//! private unix socket, `PREFIX/`[`STATUS_SOCKET`], whose only location, [`HASH_PATH`], answers
//! the SHA-256 (hex) of the rendered text. After a SIGHUP, [`wait_serving`] returns once (1) a
//! new connection is answered with the new hash and (2) none of the workers that were accepting
//! before the reload still accepts (nginx retitles a worker "worker process is shutting down"
//! as it closes its listening sockets): from then on every new connection gets the new config.
//! A reload nginx did not take (its master could not apply it, or is stopped) never gets there,
//! and is reported instead of being claimed as served.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

/// The status socket's file name under the nginx prefix.
pub const STATUS_SOCKET: &str = "berth-status.sock";
/// The location answering the live config's hash.
pub const HASH_PATH: &str = "/berth/config-hash";
/// How long old workers may finish in-flight requests after a reload or graceful stop; below
/// the controller's own quit grace (`controller::QUIT_GRACE`) so a graceful stop completes.
pub const WORKER_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// How often [`wait_serving`] looks again.
const POLL: Duration = Duration::from_millis(10);

/// SHA-256 of `text`, lower-case hex (what the status location answers).
pub fn hex_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the status socket is for `prefix`.
pub fn socket(prefix: &Path) -> PathBuf {
    prefix.join(STATUS_SOCKET)
}

/// `text` (a rendered config: main context, then one `http` block last) plus the stamp.
/// `prefix` was checked by `RenderConfig::new` (safe characters only).
pub fn stamp(text: &str, prefix: &Path) -> String {
    let hash = hex_hash(text);
    let status = format!(
        "\n    # berth-ingress live-config check (private unix socket).\n    server {{\n        listen unix:{};\n        access_log off;\n        location = {HASH_PATH} {{\n            default_type text/plain;\n            return 200 \"{hash}\";\n        }}\n        location / {{\n            return 404;\n        }}\n    }}\n",
        socket(prefix).display()
    );
    // Appended only: every line of `text` keeps its number, so nginx's `file:LINE` messages
    // still point into the rendered text (quarantine.rs reads them).
    let end = text.rfind('}').unwrap_or(text.len());
    let mut out = String::with_capacity(text.len() + status.len() + 64);
    out.push_str(&text[..end]);
    out.push_str(&status);
    out.push_str(&text[end..]);
    _ = std::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "worker_shutdown_timeout {}s;\n",
            WORKER_SHUTDOWN_TIMEOUT.as_secs()
        ),
    );
    out
}

/// Ask the status socket which config it serves (`None`: no answer).
pub async fn served_hash(socket: &Path) -> Option<String> {
    let ask = async {
        let mut s = tokio::net::UnixStream::connect(socket).await.ok()?;
        s.write_all(format!("GET {HASH_PATH} HTTP/1.0\r\nHost: berth\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200")
            .then(|| body.trim().to_owned())
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}

// The process table (nginx's master, its workers and their titles), from /proc.
pub use berth_common::procs::{alive, children, title};

/// Workers of `master` that accept connections (not "shutting down").
pub fn accepting_workers(master: i32) -> Vec<i32> {
    if master <= 0 {
        return Vec::new();
    }
    children(master)
        .into_iter()
        .filter(|&p| title(p) == "nginx: worker process")
        .collect()
}

/// Why [`wait_serving`] gave up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotServing {
    /// What the status socket answered last (`None`: nothing).
    pub seen: Option<String>,
    /// Workers from before the reload that still accept connections.
    pub old_workers: Vec<i32>,
}

impl std::fmt::Display for NotServing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.seen {
            Some(h) => write!(f, "the status socket answers config {:.12}", h)?,
            None => f.write_str("the status socket does not answer")?,
        }
        if !self.old_workers.is_empty() {
            write!(
                f,
                "; workers {:?} of the old config still accept",
                self.old_workers
            )?;
        }
        Ok(())
    }
}

/// Wait until nginx serves `hash` on new connections and none of `old` still accepts.
pub async fn wait_serving(
    socket: &Path,
    hash: &str,
    old: &[i32],
    timeout: Duration,
) -> Result<(), NotServing> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = served_hash(socket).await;
        let old_workers: Vec<i32> = old
            .iter()
            .copied()
            .filter(|&p| alive(p) && title(p) == "nginx: worker process")
            .collect();
        if seen.as_deref() == Some(hash) && old_workers.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotServing { seen, old_workers });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_adds_the_status_server_inside_http_and_the_shutdown_timeout() {
        let text = "worker_processes 1;\nhttp {\n    server {}\n}\n";
        let s = stamp(text, Path::new("/var/lib/b"));
        assert!(
            s.starts_with(text.trim_end_matches("}\n")),
            "lines keep their numbers"
        );
        assert!(
            s.ends_with("    }\n}\nworker_shutdown_timeout 15s;\n"),
            "{s}"
        );
        assert!(s.contains("listen unix:/var/lib/b/berth-status.sock;"));
        assert!(s.contains(&format!("return 200 \"{}\";", hex_hash(text))));
        assert_eq!(hex_hash("").len(), 64);
    }

    #[test]
    fn this_process_has_no_nginx_workers_and_is_alive() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert!(accepting_workers(me).is_empty());
        assert!(!alive(i32::MAX));
    }
}
