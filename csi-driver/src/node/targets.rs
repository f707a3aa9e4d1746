//! What NodeUnpublish / NodeUnstage may touch: only a mount of a volume this node recorded,
//! and only files berth made.
//!
//! - A path is resolved (symlinks, `..`) before it is compared with the mount table; a path
//!   that is itself a symlink is never unmounted or removed (berth never makes symlinks).
//! - A mount is ours when it shows the device a stash records for the volume: filesystem
//!   mounts (staging and its binds) have that device as source; a block publish is a bind of
//!   the device node, so its root is `/<device name>` in the /dev filesystem. Anything else
//!   mounted there (a tmpfs, another volume) is left alone.
//! - Unmounts use `UMOUNT_NOFOLLOW` on the resolved path, so a symlink swapped in meanwhile
//!   is not followed.
//! - Removal: an empty directory, or the empty regular file a block publish of this volume
//!   made (recorded in the stash); never a file with content, a non-empty directory or a
//!   symlink.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};

use super::stash::Stash;
use crate::error::Error;
use crate::mount::mountinfo::{self, MountEntry};
use crate::mount::{MountError, ops};

/// Is mount `m` one of stash `s`'s (its recorded device)? Pure.
pub fn owned_mount(s: &Stash, m: &MountEntry) -> bool {
    let Some(a) = &s.attached else { return false };
    if a.device.as_os_str().is_empty() {
        return false;
    }
    if s.capability.is_block() {
        // A bind of the device node: root is the node's path inside /dev (devtmpfs, or a
        // tmpfs /dev in a container).
        let Some(name) = a.device.file_name() else {
            return false;
        };
        m.root == Path::new("/").join(name) && matches!(m.fstype.as_str(), "devtmpfs" | "tmpfs")
    } else {
        m.source == a.device.to_string_lossy()
    }
}

/// Where `path` leads, or `None` when it does not exist or is itself a symlink (left alone).
fn resolve(path: &Path) -> Result<Option<PathBuf>, Error> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
        Ok(m) if m.file_type().is_symlink() => {
            tracing::warn!(path = %path.display(), "a symlink: not berth's, left alone");
            return Ok(None);
        }
        Ok(_) => {}
    }
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("resolve {}", path.display()), e)),
    }
}

/// Unmount what `stashes` own at `path` (every stacked mount of theirs). Returns `true` when
/// nothing is mounted there afterwards, `false` when a mount that is not ours remains (left
/// alone and logged). `lazy` detaches a busy mount.
pub fn unmount_ours(stashes: &[Stash], path: &Path, lazy: bool) -> Result<bool, Error> {
    let Some(real) = resolve(path)? else {
        return Ok(true);
    };
    // Bounded: a path can have a few mounts stacked on it (a bind made twice).
    for _ in 0..8 {
        let table =
            mountinfo::read().map_err(|e| Error::io("read /proc/self/mountinfo".to_string(), e))?;
        let Some(m) = mountinfo::find(&table, &real) else {
            return Ok(true);
        };
        if !stashes.iter().any(|s| owned_mount(s, m)) {
            tracing::warn!(path = %real.display(), source = %m.source, fstype = %m.fstype,
                "a mount that is not a volume berth recorded: left alone");
            return Ok(false);
        }
        match umount2(&real, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(true),
            Err(Errno::EBUSY) if lazy => {
                umount2(&real, MntFlags::UMOUNT_NOFOLLOW | MntFlags::MNT_DETACH)
                    .map_err(|e| MountError::sys(format!("lazy unmount {}", real.display()), e))?;
            }
            Err(e) => {
                return Err(MountError::sys(format!("unmount {}", real.display()), e).into());
            }
        }
    }
    Ok(!mountinfo::is_mounted(&real))
}

/// Remove a target after its unmount: an empty directory, or — when `made_file` (a block
/// publish of ours recorded it) — an empty regular file. Anything else stays (logged).
pub fn remove_if_ours(path: &Path, made_file: bool) -> Result<(), Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
    };
    let ft = meta.file_type();
    let ours = if ft.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?
            .next()
            .is_none()
    } else {
        ft.is_file() && made_file && meta.len() == 0
    };
    if !ours {
        tracing::warn!(path = %path.display(), "not an empty target berth made: left alone");
        return Ok(());
    }
    ops::remove_target(path).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::attach::{Attached, Kind};
    use crate::node::request::{Access, Capability};
    use crate::node::stash::VERSION;

    fn stash(block: bool, device: &str) -> Stash {
        Stash {
            version: VERSION,
            volume_id: "v".into(),
            static_image: None,
            staging_path: "/s".into(),
            capability: Capability {
                access: if block {
                    Access::Block
                } else {
                    Access::Mount {
                        fs_type: "ext4".into(),
                        flags: vec![],
                    }
                },
                mode: 1,
            },
            user: "csi".into(),
            mounter: Kind::Fuse,
            map_options: String::new(),
            attached: (!device.is_empty()).then(|| Attached {
                kind: Kind::Fuse,
                device: device.into(),
                fuse: None,
                unmap_options: String::new(),
            }),
            fs: None,
            complete: true,
            publishes: BTreeMap::new(),
        }
    }

    fn entry(root: &str, fstype: &str, source: &str) -> MountEntry {
        MountEntry {
            root: root.into(),
            target: "/t".into(),
            options: "rw".into(),
            fstype: fstype.into(),
            source: source.into(),
            super_options: "rw".into(),
        }
    }

    #[test]
    fn only_the_recorded_device_is_ours() {
        let fs = stash(false, "/dev/loop3");
        assert!(owned_mount(&fs, &entry("/", "ext4", "/dev/loop3")));
        assert!(!owned_mount(&fs, &entry("/", "ext4", "/dev/loop4")));
        assert!(!owned_mount(&fs, &entry("/", "tmpfs", "berth-foreign")));
        let blk = stash(true, "/dev/loop3");
        assert!(owned_mount(&blk, &entry("/loop3", "devtmpfs", "udev")));
        assert!(owned_mount(&blk, &entry("/loop3", "tmpfs", "tmpfs")));
        assert!(!owned_mount(&blk, &entry("/loop30", "devtmpfs", "udev")));
        assert!(!owned_mount(&blk, &entry("/loop3", "ext4", "/dev/sda1")));
        assert!(!owned_mount(&stash(false, ""), &entry("/", "ext4", "")));
    }

    #[test]
    fn removes_only_empty_things_it_made() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let file = d.join("file");
        std::fs::write(&file, b"data").unwrap();
        let empty_file = d.join("empty");
        std::fs::write(&empty_file, b"").unwrap();
        let full = d.join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("x"), b"x").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(d.join("nowhere"), &link).unwrap();
        let empty_dir = d.join("dir");
        std::fs::create_dir(&empty_dir).unwrap();
        for p in [&file, &full, &link] {
            remove_if_ours(p, true).unwrap();
        }
        remove_if_ours(&empty_file, false).unwrap();
        assert!(file.exists() && full.join("x").exists() && empty_file.exists());
        assert!(std::fs::symlink_metadata(&link).is_ok());
        remove_if_ours(&empty_file, true).unwrap();
        remove_if_ours(&empty_dir, false).unwrap();
        assert!(!empty_file.exists() && !empty_dir.exists());
        remove_if_ours(&d.join("missing"), true).unwrap();
        // A symlink resolves to nothing to unmount, and is not followed.
        assert!(unmount_ours(&[], &link, false).unwrap());
    }
}
