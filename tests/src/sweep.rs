//! Cleanup of everything a test may leave on the host: mounts, loop devices, processes and
//! files under one state directory. Used by guards' Drop and for leftovers of crashed runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::run_with_timeout;
use crate::state_root;

/// A mount table entry: the driver's own mountinfo parser (one parser for the project).
pub use berth_csi::mount::mountinfo::MountEntry as Mount;

/// The current mount table (empty if it cannot be read).
pub fn mounts() -> Vec<Mount> {
    berth_csi::mount::mountinfo::read().unwrap_or_default()
}

/// Loop devices and their backing files, from sysfs.
pub fn loop_devices() -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(back) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
            out.push((
                PathBuf::from(format!("/dev/{name}")),
                PathBuf::from(back.trim_end()),
            ));
        }
    }
    out
}

/// Processes that name `dir` on their command line (ceph daemons, rbd-fuse, nginx master,
/// berth-csi) or hold a file under it open (nginx workers rewrite their command line).
pub fn processes_using(dir: &Path) -> Vec<i32> {
    use berth_common::procs;
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id() as i32;
    procs::pids()
        .into_iter()
        .filter(|&pid| {
            pid != me && (procs::names(pid, needle) || procs::holds_file_under(pid, dir))
        })
        .collect()
}

fn umount(target: &Path, lazy: bool) -> bool {
    let mut cmd = Command::new("umount");
    if lazy {
        cmd.arg("-l");
    }
    cmd.arg(target);
    run_with_timeout(&mut cmd, Duration::from_secs(30)).is_ok()
}

fn kill_all(pids: &[i32]) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    for &pid in pids {
        for _ in 0..100 {
            let gone = !berth_common::procs::alive(pid);
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Remove every trace of `dir`: filesystems on loop devices backed by files under it, those
/// loop devices, mounts under it (deepest first), processes naming it, then the files.
///
/// With the owner alive the cluster still answers, so filesystems are unmounted cleanly first.
/// Leftovers of a dead owner may sit on a dead cluster: processes are killed first there (a
/// killed rbd-fuse makes I/O fail fast instead of hanging) and unmounts are lazy.
pub fn directory_with(dir: &Path, owner_alive: bool) {
    if !owner_alive {
        kill_all(&processes_using(dir));
    }
    let all = mounts();
    for (dev, back) in loop_devices() {
        if !back.starts_with(dir) {
            continue;
        }
        let dev_s = dev.to_string_lossy();
        for m in all.iter().filter(|m| m.source == dev_s) {
            if !umount(&m.target, false) {
                umount(&m.target, true);
            }
        }
        let _ = run_with_timeout(
            Command::new("losetup").arg("-d").arg(&dev),
            Duration::from_secs(30),
        );
    }
    let mut under: Vec<_> = mounts()
        .into_iter()
        .filter(|m| m.target.starts_with(dir))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.target.components().count()));
    for m in under {
        if owner_alive && umount(&m.target, false) {
            continue;
        }
        umount(&m.target, true);
    }
    kill_all(&processes_using(dir));
    let _ = std::fs::remove_dir_all(dir);
}

/// Clean `dir` for a live owner (a guard's Drop).
pub fn directory(dir: &Path) {
    directory_with(dir, true)
}

/// Sweep state directories whose owning process is gone (a crashed or killed earlier run).
pub fn leftovers() {
    let Ok(entries) = std::fs::read_dir(state_root()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!(
                "berth-tests: sweeping leftovers of dead run {}",
                e.path().display()
            );
            directory_with(&e.path(), false);
        }
    }
}

/// What this process's state directories still hold on the host: mounts, loop devices and
/// processes. Test binaries assert it is empty before they exit.
pub fn own_leftovers() -> Vec<String> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir(state_root()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| owner_pid(&e.file_name().to_string_lossy()) == Some(me))
        .map(|e| e.path())
        .collect();
    for dir in &dirs {
        found.push(format!("state dir {}", dir.display()));
        for m in mounts().into_iter().filter(|m| m.target.starts_with(dir)) {
            found.push(format!("mount {}", m.target.display()));
        }
        for (dev, back) in loop_devices()
            .into_iter()
            .filter(|(_, b)| b.starts_with(dir))
        {
            found.push(format!("loop {} -> {}", dev.display(), back.display()));
        }
        for pid in processes_using(dir) {
            found.push(format!("process {pid}"));
        }
    }
    found
}

/// `<kind>-<pid>-<n>` -> pid.
fn owner_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(3, '-');
    let _n: u32 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_from_dir_name() {
        assert_eq!(owner_pid("ceph-1234-0"), Some(1234));
        assert_eq!(owner_pid("nginx-77-12"), Some(77));
        assert_eq!(owner_pid("testenv"), None);
        assert_eq!(owner_pid("ceph-x-1"), None);
    }

    #[test]
    fn reads_this_hosts_mounts() {
        assert!(mounts().iter().any(|m| m.target == Path::new("/")));
    }
}
