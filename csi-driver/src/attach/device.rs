//! Facts about block devices from sysfs (no programs, no ioctls): size, whether a device
//! exists, and a loop device's backing file.

use std::path::{Path, PathBuf};

/// `/dev/loop3` -> `loop3`.
fn name(device: &Path) -> Option<&str> {
    device.file_name()?.to_str()
}

/// Size in bytes (`/sys/class/block/<dev>/size` counts 512-byte sectors whatever the
/// device's logical block size).
pub fn size(device: &Path) -> std::io::Result<u64> {
    let n = name(device).ok_or_else(|| std::io::Error::other("not a device path"))?;
    let sectors = std::fs::read_to_string(format!("/sys/class/block/{n}/size"))?;
    sectors
        .trim()
        .parse::<u64>()
        .map(|s| s * 512)
        .map_err(std::io::Error::other)
}

/// Does the kernel know this block device?
pub fn exists(device: &Path) -> bool {
    name(device).is_some_and(|n| Path::new(&format!("/sys/class/block/{n}")).exists())
}

/// The file a loop device is bound to (None when the loop device is free or not a loop).
pub fn loop_backing_file(device: &Path) -> Option<PathBuf> {
    super::identity::loop_backing(Path::new("/sys"), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_devices() {
        assert!(!exists(Path::new("/dev/berth-no-such-dev")));
        assert!(size(Path::new("/dev/berth-no-such-dev")).is_err());
        assert_eq!(loop_backing_file(Path::new("/dev/berth-no-such-dev")), None);
    }
}
