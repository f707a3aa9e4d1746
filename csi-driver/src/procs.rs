//! Processes on this host, found by their argv (berth_common::procs: kept as bytes, so
//! non-UTF-8 paths match exactly): the rbd-fuse daemons serving a volume's work directory,
//! and whatever a killed plugin left running with a volume's client files.

use std::path::Path;

pub use berth_common::procs::{with_arg, with_arg_under};

/// SIGKILL every process that names something inside `dir`: what a plugin killed in the
/// middle of a stage left running (an `rbd … -c dir/ceph.conf`) before `dir` is removed,
/// so none outlives the stage's undo or reads files that are gone. Returns the pids killed.
pub fn kill_under(dir: &Path) -> Vec<i32> {
    let pids = with_arg_under(dir);
    for &pid in &pids {
        tracing::warn!(pid, dir = %dir.display(), "killing a process left by an unfinished stage");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn kills_a_process_by_an_argument_under_a_directory() {
        // Finding by argument is berth_common::procs's, tested there; this is the kill.
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30", "sh"])
            .arg(dir.path().join("ceph.conf"))
            .spawn()
            .unwrap();
        assert!(kill_under(&dir.path().join("other")).is_empty());
        // Until exec, /proc shows the forked test binary's argv: retry until it names the file.
        let deadline = Instant::now() + Duration::from_secs(5);
        let killed = loop {
            let killed = kill_under(dir.path());
            if !killed.is_empty() || Instant::now() > deadline {
                break killed;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(killed, vec![child.id() as i32]);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}
