//! Running host programs for the node plugin (losetup, blkid, mkfs, rbd, resize2fs …):
//! bounded time, stdin closed, stderr kept for the error message.
//!
//! Arguments never carry a secret: cephx keys reach Ceph programs through a 0600 key file
//! (see [`crate::attach::client`]), so an argv may be logged and put in errors as it is.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bound for short probes and device commands (blkid, losetup, blockdev).
pub const SHORT: Duration = Duration::from_secs(30);
/// Bound for commands that talk to the cluster or write a filesystem (rbd map, mkfs, grow):
/// mkfs of a large xfs volume over rbd-fuse can take a while, a hung command must not hang
/// the RPC forever (kubelet retries).
pub const LONG: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("{program} is not installed on this node (not found on PATH)")]
    Missing { program: String },
    #[error("{command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command}: timed out after {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("{command}: {status}: {stderr}")]
    Failed {
        command: String,
        status: String,
        code: Option<i32>,
        stderr: String,
    },
}

impl ProgramError {
    /// The exit code, when the program ran and exited non-zero.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ProgramError::Failed { code, .. } => *code,
            _ => None,
        }
    }

    /// What the program said on stderr (empty when it did not run).
    pub fn stderr(&self) -> &str {
        match self {
            ProgramError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

/// The program and its arguments, for logs and errors.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `cmd` to completion within `timeout`; returns stdout. A timed-out program is killed.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<String, ProgramError> {
    let command = describe(cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ProgramError::Missing { program }
            } else {
                ProgramError::Spawn {
                    command: command.clone(),
                    source,
                }
            }
        })?;
    let pid = child.id();
    let mut stderr_pipe = child.stderr.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // stderr is drained on its own thread so a chatty program cannot block on a full pipe.
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = stderr_pipe.as_mut() {
                let _ = p.read_to_string(&mut s);
            }
            s
        });
        let out = child.wait_with_output();
        let err = err_reader.join().unwrap_or_default();
        let _ = tx.send(out.map(|o| (o, err)));
    });
    let (output, stderr) = match rx.recv_timeout(timeout) {
        Ok(Ok(pair)) => pair,
        Ok(Err(source)) => return Err(ProgramError::Spawn { command, source }),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(ProgramError::Timeout { command, timeout });
        }
    };
    if !output.status.success() {
        return Err(ProgramError::Failed {
            command,
            status: output.status.to_string(),
            code: output.status.code(),
            stderr: brief(&stderr),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Programs print usage screens on errors: keep the first lines, enough to say what failed.
fn brief(stderr: &str) -> String {
    const LINES: usize = 4;
    let lines: Vec<&str> = stderr.trim().lines().collect();
    let mut s = lines[..lines.len().min(LINES)].join("\n");
    if lines.len() > LINES {
        s.push_str(" …");
    }
    s
}

/// Is `program` on PATH?
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_exit_code_and_stderr() {
        let out = run(Command::new("sh").args(["-c", "echo hi"]), SHORT).unwrap();
        assert_eq!(out, "hi\n");
        let err = run(
            Command::new("sh").args(["-c", "echo nope >&2; exit 2"]),
            SHORT,
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), Some(2));
        assert_eq!(err.stderr(), "nope");
        assert!(err.to_string().starts_with("sh -c "), "{err}");
    }

    #[test]
    fn missing_program_and_timeout() {
        let err = run(&mut Command::new("berth-no-such-program"), SHORT).unwrap_err();
        assert!(matches!(err, ProgramError::Missing { .. }), "{err}");
        let err = run(Command::new("sleep").arg("5"), Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, ProgramError::Timeout { .. }), "{err}");
    }
}
