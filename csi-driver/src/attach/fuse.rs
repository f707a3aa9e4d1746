//! The fuse attacher: `rbd-fuse` exposes the image as a file in a private mount point,
//! `losetup` turns the file into /dev/loopN. For hosts without the rbd kernel module (and CI).
//!
//! rbd-fuse runs in the foreground (`-f`) as a child of the plugin in its own process group,
//! with stdout/stderr appended to `<work_dir>/rbd-fuse.log` (a file, not a pipe: it must
//! outlive the plugin). A thread reaps it. It survives a plugin crash on a plain host; in a
//! container it dies with the plugin, the fuse mount then answers ENOTCONN, and restart
//! recovery ([`crate::node::recovery`]) re-attaches.
//!
//! Layout in the volume's private work dir: `fuse/` (mount point, the image appears as
//! `fuse/<image>`), `rbd-fuse.log`.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{AttachError, Attached, Attacher, Broken, ImageSpec, Kind, Target, device};
use crate::mount::{MountError, mountinfo, ops};
use crate::program::{self, LONG, ProgramError, SHORT};

/// rbd-fuse's connect + first listing; a cluster that does not answer in this time fails the
/// stage (kubelet retries) instead of hanging it.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll step while waiting for the image file: stage latency matters (the bench compares
/// NodeStage with doing it by hand), and a stat is cheap.
const POLL: Duration = Duration::from_millis(2);
/// How long a stopped rbd-fuse gets to exit after its mount is gone before SIGKILL. Generous:
/// a clean exit closes the image, while a killed client keeps its watch on the image for the
/// OSD watch timeout (30 s), during which DeleteVolume sees the image as in use.
const EXIT_WAIT: Duration = Duration::from_secs(20);
/// How long expand waits for rbd-fuse to report a grown image (fuse caches attributes ~1 s).
const SIZE_WAIT: Duration = Duration::from_secs(10);

/// The fuse side of an attachment (stashed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuseMount {
    /// rbd-fuse's mount point.
    pub dir: PathBuf,
    /// The image file inside it (the loop device's backing file).
    pub file: PathBuf,
}

#[derive(Debug)]
pub struct Fuse;

/// The last lines of rbd-fuse's log (it never contains the key: that is only in the key file).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Is `dir` a mount point of its own (its device differs from its parent's)?
fn mounted_on(dir: &Path) -> bool {
    let (Ok(d), Some(Ok(p))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) else {
        return false;
    };
    d.dev() != p.dev()
}

/// Wait until the image file shows up in the fuse mount, rbd-fuse exits, or time runs out.
fn wait_ready(
    child: &mut Child,
    t: &Target<'_>,
    dir: &Path,
    log: &Path,
) -> Result<(), AttachError> {
    let file = dir.join(t.image);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(AttachError::FuseExited {
                spec: t.spec(),
                status: status.to_string(),
                log: log_tail(log),
            });
        }
        if std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
            return Ok(());
        }
        // Mounted and answering, but no such image: the listing is rbd-fuse's, not the
        // empty directory underneath.
        if mounted_on(dir)
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
            if !names.iter().any(|n| n.to_str() == Some(t.image)) {
                return Err(AttachError::ImageNotFound {
                    pool: t.pool_spec(),
                    image: t.image.to_string(),
                });
            }
        }
        if Instant::now() > deadline {
            return Err(AttachError::FuseNotReady {
                spec: t.spec(),
                after: READY_TIMEOUT,
                log: log_tail(log),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Let rbd-fuse processes serving `dir` exit (their mount is gone), then SIGKILL stragglers.
fn stop_processes(dir: &Path) {
    let deadline = Instant::now() + EXIT_WAIT;
    loop {
        let pids = crate::procs::with_arg(dir);
        if pids.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for pid in pids {
                tracing::warn!(pid, dir = %dir.display(), "rbd-fuse did not exit: SIGKILL");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Unmount the fuse mount point; the loop device may hold the file a moment longer.
fn unmount_fuse(dir: &Path) -> Result<(), MountError> {
    for _ in 0..50 {
        match ops::unmount(dir, false) {
            Ok(_) => return Ok(()),
            Err(MountError::Sys {
                errno: nix::errno::Errno::EBUSY,
                ..
            }) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e),
        }
    }
    ops::unmount(dir, true).map(drop)
}

fn teardown(dir: &Path) {
    if let Err(e) = unmount_fuse(dir) {
        tracing::warn!(dir = %dir.display(), "unmount rbd-fuse: {e}");
    }
    stop_processes(dir);
    // A process that mounted after the unmount above (it was still starting) and was killed
    // leaves a dead mount behind.
    let _ = ops::unmount(dir, true);
    let _ = std::fs::remove_dir(dir);
}

/// Loop devices bound to files under `dir`.
fn loops_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("loop"))
        .map(|n| PathBuf::from(format!("/dev/{n}")))
        .filter(|d| device::loop_backing_file(d).is_some_and(|b| b.starts_with(dir)))
        .collect()
}

/// Undo a fuse attach the stash does not record (the plugin died inside attach): loop
/// devices bound to files in `<work_dir>/fuse`, the fuse mount, rbd-fuse. Best effort.
pub fn cleanup_unrecorded(work_dir: &Path) {
    let dir = work_dir.join("fuse");
    for dev in loops_under(&dir) {
        tracing::warn!(device = %dev.display(), "detaching a loop device of an unfinished stage");
        if let Err(e) = program::run(Command::new("losetup").arg("-d").arg(&dev), SHORT) {
            tracing::warn!(device = %dev.display(), "losetup -d: {e}");
        }
    }
    // Nothing reads through this rbd-fuse: ask it to leave (it unmounts on SIGTERM).
    for pid in crate::procs::with_arg(&dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if dir.exists() {
        teardown(&dir);
    }
}

fn spawn(t: &Target<'_>, dir: &Path, log_path: &Path) -> Result<Child, AttachError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_path)
        .map_err(|e| AttachError::io(format!("open {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| AttachError::io("dup log fd", e))?;
    let mut cmd = Command::new("rbd-fuse");
    cmd.arg("-c")
        .arg(&t.client.conf)
        .args(["-p", t.pool, "-r", t.image, "-f"]);
    if !t.namespace.is_empty() {
        cmd.args(["-s", t.namespace]);
    }
    cmd.arg(dir)
        // The user id is not a secret; the key is read from the conf's keyfile.
        .env("CEPH_ARGS", format!("--id {}", t.client.user))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Own process group: a signal to the plugin's group does not take the volume down.
        .process_group(0);
    tracing::debug!(command = %program::describe(&cmd), "starting rbd-fuse");
    cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ProgramError::Missing {
                program: "rbd-fuse".into(),
            }
            .into()
        } else {
            AttachError::io("spawn rbd-fuse", e)
        }
    })
}

impl Attacher for Fuse {
    fn attach(&self, t: &Target<'_>) -> Result<Attached, AttachError> {
        if !Path::new("/dev/fuse").exists() {
            return Err(AttachError::NoDevFuse);
        }
        let dir = t.work_dir.join("fuse");
        if mountinfo::is_mounted(&dir) {
            // Left by an earlier life of this staging (a crash mid-stage).
            cleanup_unrecorded(t.work_dir);
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| AttachError::io(format!("create {}", dir.display()), e))?;
        let log = t.work_dir.join("rbd-fuse.log");
        let mut child = spawn(t, &dir, &log)?;
        if let Err(e) = wait_ready(&mut child, t, &dir, &log) {
            let _ = child.kill();
            let _ = child.wait();
            teardown(&dir);
            return Err(e);
        }
        let image = t.image.to_string();
        std::thread::Builder::new()
            .name("rbd-fuse-reaper".into())
            .spawn(move || match child.wait() {
                Ok(status) => tracing::info!(%image, %status, "rbd-fuse exited"),
                Err(e) => tracing::warn!(%image, "waiting for rbd-fuse: {e}"),
            })
            .map_err(|e| AttachError::io("spawn reaper thread", e))?;
        let file = dir.join(t.image);
        // LONG: binding the file makes the kernel flush and validate loop state, which can
        // wait behind another loop device whose rbd-fuse died.
        let mut losetup = Command::new("losetup");
        if t.read_only {
            // A read-only loop device: the kernel refuses every write to it (EROFS/EPERM).
            losetup.arg("--read-only");
        }
        losetup.args(["--find", "--show"]).arg(&file);
        let device = match program::run(&mut losetup, LONG) {
            Ok(out) => PathBuf::from(out.trim()),
            Err(e) => {
                teardown(&dir);
                return Err(e.into());
            }
        };
        Ok(Attached {
            kind: Kind::Fuse,
            device,
            fuse: Some(FuseMount { dir, file }),
            unmap_options: String::new(),
        })
    }

    fn detach(&self, a: &Attached, _want: &ImageSpec) -> Result<(), AttachError> {
        let Some(f) = &a.fuse else {
            return Err(AttachError::NoFuseMount {
                device: a.device.clone(),
            });
        };
        // Every loop device bound to this volume's image file is ours, whatever number the
        // stash recorded; a recorded device bound to anything else is never touched.
        for dev in loops_under(&f.dir) {
            if device::loop_backing_file(&dev).as_deref() != Some(f.file.as_path()) {
                continue;
            }
            if let Err(e) = program::run(Command::new("losetup").arg("-d").arg(&dev), SHORT)
                && device::loop_backing_file(&dev).as_deref() == Some(f.file.as_path())
            {
                return Err(e.into());
            }
        }
        if !a.device.as_os_str().is_empty()
            && device::loop_backing_file(&a.device).is_some_and(|b| b != f.file)
        {
            tracing::warn!(device = %a.device.display(), file = %f.file.display(),
                "the recorded loop device is bound to another file now: not ours, left alone");
        }
        unmount_fuse(&f.dir).map_err(AttachError::FuseUnmount)?;
        stop_processes(&f.dir);
        let _ = std::fs::remove_dir(&f.dir);
        Ok(())
    }

    fn cleanup_unrecorded(&self, work_dir: &Path, _want: &ImageSpec, _recorded: &[PathBuf]) {
        cleanup_unrecorded(work_dir);
    }

    fn check(&self, a: &Attached, want: &ImageSpec) -> Result<(), Broken> {
        let Some(f) = &a.fuse else {
            return Err(Broken::NoFuseRecord);
        };
        // The image file is named after the image, inside this volume's private work dir.
        if f.file.file_name().and_then(|n| n.to_str()) != Some(want.image.as_str()) {
            return Err(Broken::FuseFileMismatch {
                file: f.file.clone(),
                want: Box::new(want.clone()),
            });
        }
        if device::loop_backing_file(&a.device).as_deref() != Some(f.file.as_path()) {
            return Err(Broken::LoopRebound {
                device: a.device.clone(),
                file: f.file.clone(),
            });
        }
        // statfs always reaches the fuse daemon (stat may be answered from the attribute
        // cache): a dead rbd-fuse shows as ENOTCONN here.
        nix::sys::statvfs::statvfs(&f.dir)
            .map(drop)
            .map_err(|errno| Broken::FuseNotServing {
                file: f.file.clone(),
                errno,
            })
    }

    fn refresh_size(&self, a: &Attached, want: u64) -> Result<u64, AttachError> {
        let Some(f) = &a.fuse else {
            return Err(AttachError::NoFuseMount {
                device: a.device.clone(),
            });
        };
        let deadline = Instant::now() + SIZE_WAIT;
        loop {
            let len = std::fs::metadata(&f.file)
                .map_err(|e| AttachError::io(format!("stat {}", f.file.display()), e))?
                .len();
            if len >= want || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        program::run(Command::new("losetup").arg("-c").arg(&a.device), SHORT)?;
        device::size(&a.device)
            .map_err(|e| AttachError::io(format!("size of {}", a.device.display()), e))
    }
}
