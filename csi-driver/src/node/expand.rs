//! NodeExpandVolume: make the device see the grown image (loop: `losetup -c`; krbd and
//! rbd-nbd follow the image by themselves), then grow the filesystem online — xfs_growfs, or
//! resize2fs for ext4, which without CAP_SYS_RESOURCE is FAILED_PRECONDITION with advice.
//! A reader-only staging is never grown (FAILED_PRECONDITION): its device is read-only.

use std::path::Path;

use super::Shared;
use super::request::Access;
use super::stats::find_at;
use crate::attach::attacher;
use crate::error::Error;
use crate::mount::grow;

/// Returns the device size after the refresh.
pub fn expand(node: &Shared, id: &str, path: &Path, required: u64) -> Result<u64, Error> {
    let s = find_at(node, id, path)?;
    let a = s
        .attached
        .as_ref()
        .filter(|_| s.complete)
        .ok_or_else(|| Error::NotFullyStaged { volume: id.into() })?;
    if s.capability.read_only_mode() {
        return Err(Error::ReaderOnlyNotGrown { volume: id.into() });
    }
    // Never refresh or grow a device that no longer maps this volume's image.
    attacher(a.kind)
        .check(a, &s.want()?)
        .map_err(|cause| Error::DeviceBroken {
            volume: id.to_string(),
            cause: Box::new(cause),
        })?;
    let size = attacher(a.kind).refresh_size(a, required)?;
    if let Access::Mount { .. } = s.capability.access {
        let fs = s.fs.as_deref().unwrap_or("ext4");
        grow::online(fs, &a.device, &s.staging_path)?;
    }
    tracing::info!(volume = %id, size, "expanded on the node");
    Ok(size)
}
