//! Growing a filesystem to its (already grown) device: xfs online with `xfs_growfs`, ext4
//! with `resize2fs` — online when the kernel lets us, offline (`e2fsck -f` + `resize2fs`)
//! while the volume is being staged.
//!
//! ext4 online grow needs CAP_SYS_RESOURCE (the resize ioctl reserves blocks); without it
//! resize2fs says "Permission denied to resize filesystem". That is reported as
//! [`MountError::GrowRefused`] (FAILED_PRECONDITION) with what to do about it.

use std::path::Path;
use std::process::Command;

use super::MountError;
use crate::program::{self, LONG, SHORT};

/// Grow the mounted filesystem `fstype` on `device`, mounted at `mount_path`.
pub fn online(fstype: &str, device: &Path, mount_path: &Path) -> Result<(), MountError> {
    match fstype {
        "xfs" => {
            program::run(Command::new("xfs_growfs").arg("-d").arg(mount_path), LONG)?;
            Ok(())
        }
        "ext4" | "ext3" => match program::run(Command::new("resize2fs").arg(device), LONG) {
            Ok(_) => Ok(()),
            Err(e) if refused(e.stderr()) => Err(MountError::GrowRefused {
                fs: fstype.to_string(),
                device: device.to_path_buf(),
            }),
            Err(e) => Err(e.into()),
        },
        other => Err(MountError::CannotGrow {
            fs: other.to_string(),
        }),
    }
}

fn refused(stderr: &str) -> bool {
    stderr.contains("Permission denied to resize filesystem")
        || stderr.contains("Operation not permitted While checking for on-line resizing")
}

/// Size in bytes of the ext2/3/4 filesystem on an unmounted `device` (dumpe2fs -h).
pub fn ext_size(device: &Path) -> Result<u64, MountError> {
    let out = program::run(Command::new("dumpe2fs").arg("-h").arg(device), SHORT)?;
    parse_dumpe2fs_size(&out).ok_or_else(|| MountError::Dumpe2fsOutput {
        device: device.to_path_buf(),
    })
}

/// `Block count:` × `Block size:` from `dumpe2fs -h` output.
pub fn parse_dumpe2fs_size(out: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("Block count:")? * field("Block size:")?)
}

/// Offline grow of an unmounted ext filesystem to fill `device`: e2fsck must pass first
/// (resize2fs insists on a freshly checked filesystem). `-p` repairs only what is safe.
pub fn ext_offline(device: &Path) -> Result<(), MountError> {
    match program::run(Command::new("e2fsck").args(["-f", "-p"]).arg(device), LONG) {
        Ok(_) => {}
        // 1 = errors corrected: still fine to resize.
        Err(e) if e.exit_code() == Some(1) => {}
        Err(e) => return Err(e.into()),
    }
    program::run(Command::new("resize2fs").arg(device), LONG)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumpe2fs_size() {
        let out = "Filesystem volume name:   <none>\nBlock count:              262144\nReserved block count:     0\nBlock size:               4096\n";
        assert_eq!(parse_dumpe2fs_size(out), Some(1 << 30));
        assert_eq!(parse_dumpe2fs_size("nothing"), None);
    }

    #[test]
    fn refusal_is_recognised() {
        assert!(refused(
            "resize2fs 1.47.0\nPermission denied to resize filesystem\n"
        ));
        assert!(!refused("Nothing to do!"));
    }
}
