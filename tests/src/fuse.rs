//! Attach an RBD image as a block device without krbd: rbd-fuse exposes the image as a file,
//! losetup turns the file into /dev/loopN. The guard detaches everything in Drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::ceph::Cluster;
use crate::proc::{require, run, spawn_tied, wait_until};

/// How long a busy fuse mount may take to become free after its loop device is detached.
const BUSY_WAIT: Duration = Duration::from_secs(10);
/// How long rbd-fuse gets to close the image and exit once its mount is gone.
const EXIT_WAIT: Duration = Duration::from_secs(20);

/// An image attached through rbd-fuse + loop. Drop unmounts filesystems on the device,
/// detaches the loop device, unmounts the fuse mount and stops rbd-fuse.
#[derive(Debug)]
pub struct Attachment {
    pub device: PathBuf,
    pub fuse_dir: PathBuf,
    child: Option<Child>,
}

impl Attachment {
    /// Attach `image` of the cluster's pool as the restricted client.
    pub fn attach(cluster: &Cluster, image: &str) -> Result<Attachment> {
        require(&[("rbd-fuse", "rbd-fuse"), ("losetup", "util-linux")])?;
        let fuse_dir = cluster.dir.join("fuse").join(image);
        std::fs::create_dir_all(&fuse_dir)?;
        let mut cmd = Command::new("rbd-fuse");
        cmd.arg("-c")
            .arg(&cluster.conf)
            .args(["-p", &cluster.pool, "-r", image, "-f"])
            .arg(&fuse_dir)
            .env("CEPH_ARGS", format!("--id {}", cluster.client_id));
        let log = cluster.dir.join(format!("log/rbd-fuse.{image}.log"));
        let mut att = Attachment {
            device: PathBuf::new(),
            fuse_dir: fuse_dir.clone(),
            child: Some(spawn_tied(&cmd, &log)?),
        };
        let file = fuse_dir.join(image);
        wait_until(
            "rbd-fuse to expose the image",
            Duration::from_secs(20),
            || file.is_file(),
        )
        .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
        let dev = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file))?;
        att.device = PathBuf::from(dev.trim());
        Ok(att)
    }

    /// Detach explicitly (Drop does the same, ignoring errors).
    pub fn detach(mut self) -> Result<()> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let dev = self.device.to_string_lossy().into_owned();
        let mut first_err = None;
        if !dev.is_empty() {
            for m in crate::sweep::mounts().iter().filter(|m| m.source == dev) {
                if let Err(e) = run(Command::new("umount").arg(&m.target)) {
                    first_err.get_or_insert(e);
                }
            }
            if let Err(e) = run(Command::new("losetup").arg("-d").arg(&self.device)) {
                first_err.get_or_insert(e);
            }
        }
        // The kernel may release the loop device's hold on the file a moment after
        // `losetup -d` returns: retry "target is busy" briefly.
        let unmounted = wait_until("the fuse mount to be free", BUSY_WAIT, || {
            run(Command::new("umount").arg(&self.fuse_dir)).is_ok()
        });
        let unmounted_ok = unmounted.is_ok();
        if let Err(e) = unmounted {
            first_err.get_or_insert(e);
        }
        // Unmounted, rbd-fuse closes the image and exits on its own; killed, it would leave its
        // watch on the image for the OSD's 30 s (and berth-csi's node fence would see it).
        let exited = unmounted_ok
            && wait_until("rbd-fuse to exit", EXIT_WAIT, || {
                matches!(child.try_wait(), Ok(Some(_)))
            })
            .is_ok();
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
        let _ = std::fs::remove_dir(&self.fuse_dir);
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            eprintln!("berth-tests: detach {}: {e:#}", self.device.display());
        }
    }
}

/// A mount made by a test; unmounted in Drop.
#[derive(Debug)]
pub struct MountGuard {
    pub target: PathBuf,
}

impl MountGuard {
    pub fn mount(device: &Path, target: &Path) -> Result<MountGuard> {
        std::fs::create_dir_all(target)?;
        run(Command::new("mount").arg(device).arg(target))?;
        Ok(MountGuard {
            target: target.to_path_buf(),
        })
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("umount").arg(&self.target)) {
            eprintln!("berth-tests: umount {}: {e:#}", self.target.display());
        }
    }
}
