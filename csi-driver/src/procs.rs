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
    fn finds_and_kills_a_process_by_an_argument_under_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ceph.conf");
        // `sh -c 'sleep 30' sh FILE`: a process whose argv names FILE.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30", "sh"])
            .arg(&file)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Until exec, /proc shows the forked test binary's argv.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !with_arg(&file).contains(&pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(with_arg(&file).contains(&pid));
        assert!(with_arg_under(dir.path()).contains(&pid));
        assert!(!with_arg_under(&dir.path().join("other")).contains(&pid));
        // A sibling directory whose name extends this one is not "under" it.
        let sibling = std::path::PathBuf::from(format!("{}x", dir.path().display()));
        assert!(!with_arg_under(&sibling).contains(&pid));
        assert_eq!(kill_under(dir.path()), vec![pid]);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}
