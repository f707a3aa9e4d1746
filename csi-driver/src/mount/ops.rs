//! mount(2) / umount(2) through nix: filesystem mounts, bind mounts (read-only when asked),
//! and unmounts that treat "not mounted" as done.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::{MountError, MountOptions, mountinfo};

/// Mount `device` (filesystem `fstype`) at `target`.
pub fn mount_fs(
    device: &Path,
    target: &Path,
    fstype: &str,
    opts: &MountOptions,
) -> Result<(), MountError> {
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    mount(Some(device), target, Some(fstype), opts.flags, data).map_err(|e| {
        MountError::sys(
            format!(
                "mount {} ({fstype}, {}) at {}",
                device.display(),
                if opts.data.is_empty() {
                    "-"
                } else {
                    &opts.data
                },
                target.display()
            ),
            e,
        )
    })
}

/// Bind `source` (a directory or a device node) onto `target`; then remount read-only when
/// `readonly` (a bind mount ignores MS_RDONLY on the first call).
pub fn bind(source: &Path, target: &Path, readonly: bool) -> Result<(), MountError> {
    let ctx = || format!("bind {} at {}", source.display(), target.display());
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| MountError::sys(ctx(), e))?;
    if readonly {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
            let _ = umount2(target, MntFlags::empty());
            return Err(MountError::sys(format!("{}: remount read-only", ctx()), e));
        }
    }
    Ok(())
}

/// Unmount every mount stacked at `target`. Returns whether anything was unmounted;
/// "not mounted" and "no such path" are success. EBUSY is an error unless `lazy`, which
/// detaches the mount and lets the kernel finish when the last user goes.
pub fn unmount(target: &Path, lazy: bool) -> Result<bool, MountError> {
    let mut any = false;
    // A path can have several mounts stacked on it (a bind made twice); bounded loop.
    for _ in 0..8 {
        if !mountinfo::is_mounted(target) {
            return Ok(any);
        }
        match umount2(target, MntFlags::empty()) {
            Ok(()) => any = true,
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(any),
            Err(Errno::EBUSY) if lazy => {
                umount2(target, MntFlags::MNT_DETACH).map_err(|e| {
                    MountError::sys(format!("lazy unmount {}", target.display()), e)
                })?;
                any = true;
            }
            Err(e) => {
                return Err(MountError::sys(format!("unmount {}", target.display()), e));
            }
        }
    }
    Ok(any)
}

/// Create an empty regular file (the target of a block-volume bind), parents included.
pub fn ensure_file(path: &Path) -> Result<(), MountError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| MountError::io(format!("create {}", dir.display()), e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|e| MountError::io(format!("create {}", path.display()), e))
}

/// Create a directory (a mount target), parents included.
pub fn ensure_dir(path: &Path) -> Result<(), MountError> {
    std::fs::create_dir_all(path)
        .map_err(|e| MountError::io(format!("create {}", path.display()), e))
}

/// Remove the file or empty directory made for a target. Never recursive: a target that
/// still holds files is left alone (and reported).
pub fn remove_target(path: &Path) -> Result<(), MountError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(MountError::io(format!("stat {}", path.display()), e)),
    };
    let r = if meta.is_dir() {
        std::fs::remove_dir(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(MountError::io(format!("remove {}", path.display()), e)),
    }
}
