//! DeleteVolume, and the garbage collection of images that CSI deleted while snapshots or
//! clones still depended on them.
//!
//! Removing an image trims every object it could hold (~262 000 for 1 TiB without object-map),
//! so DeleteVolume never does it: it moves the image to the RBD trash (quick at any size),
//! records it as `trash/` in the journal, and the purger ([`super::purge`]) removes the data
//! in the background.
//!
//! An image with snapshots cannot be removed without losing the snapshots (and the clones made
//! from them), so it is *marked gone* in the journal instead: it disappears from ListVolumes
//! and every volume RPC, while its snapshots keep working. After each delete of a volume or a
//! snapshot, gone images without dependents are removed for real.
//!
//! Only images the journal says berth created are ever removed (`img/<image>` present):
//! DeleteVolume of anything else (a static volume, an image of another tool) answers OK and
//! touches nothing.

use crate::ceph::ceph_err;
use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::{self, Image};
use crate::ceph::journal::{self, Kind};
use crate::csi::{DeleteVolumeRequest, DeleteVolumeResponse};
use crate::error::{Error, Result};
use crate::volume_id::VolumeId;

use super::Controller;

pub(super) async fn delete_volume(
    c: &Controller,
    req: DeleteVolumeRequest,
) -> Result<DeleteVolumeResponse> {
    if req.volume_id.is_empty() {
        return Err(Error::Missing { field: "volume_id" });
    }
    // An ID we could not have issued names nothing: deleting nothing succeeds.
    let Ok(id) = VolumeId::decode(&req.volume_id) else {
        return Ok(DeleteVolumeResponse {});
    };
    let Some(target) = c.target(&id.cluster_id, &id.pool, &id.namespace, &req.secrets)? else {
        return Ok(DeleteVolumeResponse {});
    };
    let guard = c.locks().try_lock(&format!("volume/{}", req.volume_id))?;
    let image = id.image.clone();
    let result = c
        .ceph()
        .with_pool_held(&target.clone(), guard, move |io| {
            remove_volume(io, &image)?;
            collect_gone(io);
            Ok(())
        })
        .await;
    if result.is_ok() {
        c.kick_purge(target);
    }
    match result {
        Err(Error::PoolNotFound { .. }) => Ok(DeleteVolumeResponse {}),
        r => r.map(|()| DeleteVolumeResponse {}),
    }
}

fn remove_volume(io: &IoCtx<'_>, image: &str) -> Result<()> {
    // Only what the journal says berth created: a static volume (an image made by someone
    // else and handed to Kubernetes as a PV) or any other unjournaled image is "unknown" to
    // DeleteVolume, which answers OK and leaves it alone.
    let Some(owner) = journal::owner(io, Kind::Volume, image, "")? else {
        tracing::info!(
            image,
            "DeleteVolume of an image berth did not create: left alone"
        );
        return Ok(());
    };
    // Still published to a node (ControllerPublish): the CO has not detached it yet.
    let (_, published) = journal::publications(io, image)?;
    if !published.nodes.is_empty() {
        return Err(Error::DeletePublished {
            image: image.to_string(),
            nodes: published.nodes.into_keys().collect(),
        });
    }
    // Watchers first: an attached image must not be removed, nor marked gone because it
    // also has snapshots.
    if in_use(io, image)? {
        return Err(Error::ImageInUse {
            image: image.to_string(),
        });
    }
    if has_snapshots(io, image)? {
        // Snapshots (and the clones made from them) depend on it: keep the data.
        journal::mark_gone(io, Some(owner.as_str()), image)?;
        tracing::info!(image, "volume deleted; image kept for its snapshots/clones");
        return Ok(());
    }
    match rbd::trash_move(io, image) {
        Ok(()) => {
            journal::mark_trashed(io, Some(owner.as_str()), image)?;
            tracing::info!(
                image,
                "volume deleted: image moved to the trash for purging"
            );
            return Ok(());
        }
        Err(Errno(libc::ENOENT)) => {}
        Err(Errno(libc::EBUSY)) => {
            return Err(Error::ImageInUse {
                image: image.to_string(),
            });
        }
        Err(Errno(libc::ENOTEMPTY)) => {
            // Snapshots (or clones through trashed snapshots) depend on it: keep the data.
            journal::mark_gone(io, Some(owner.as_str()), image)?;
            tracing::info!(image, "volume deleted; image kept for its snapshots/clones");
            return Ok(());
        }
        Err(errno) => return Err(ceph_err(format!("remove image {image}"), errno)),
    }
    journal::remove(io, Kind::Volume, &owner, image, "")?;
    Ok(())
}

/// Whether the image has snapshots (a missing image has none).
fn has_snapshots(io: &IoCtx<'_>, image: &str) -> Result<bool> {
    match Image::open(io, image, true) {
        Ok(img) => Ok(!img
            .snap_list()
            .map_err(|e| ceph_err(format!("list snapshots of {image}"), e))?
            .is_empty()),
        Err(Errno(libc::ENOENT)) => Ok(false),
        Err(e) => Err(ceph_err(format!("open image {image}"), e)),
    }
}

/// Whether a client other than this controller watches the image (a node that attached it;
/// this controller's own watchers are transient: the purger removing a clone updates its
/// parent).
fn in_use(io: &IoCtx<'_>, image: &str) -> Result<bool> {
    let own = io.instance_id();
    match Image::open(io, image, true) {
        Ok(img) => Ok(img
            .watcher_ids()
            .map_err(|e| ceph_err(format!("list watchers of {image}"), e))?
            .into_iter()
            .any(|id| id as u64 != own)),
        Err(Errno(libc::ENOENT)) => Ok(false),
        Err(e) => Err(ceph_err(format!("open image {image}"), e)),
    }
}

/// Remove gone images that nothing depends on any more. Best effort: failures are logged and
/// retried after the next delete.
pub(super) fn collect_gone(io: &IoCtx<'_>) {
    let gone = match journal::gone_images(io) {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e.chain(), "cannot read gone images");
            return;
        }
    };
    for image in gone {
        // Still has snapshots: stays. Otherwise to the trash, for the purger.
        match has_snapshots(io, &image) {
            Ok(false) => {}
            Ok(true) => continue,
            Err(e) => {
                tracing::warn!(image, error = %e.chain(), "cannot check a gone image");
                continue;
            }
        }
        let done = match rbd::trash_move(io, &image) {
            Ok(()) => journal::gone_to_trashed(io, &image),
            Err(Errno(libc::ENOENT)) => journal::forget_gone(io, &image),
            Err(Errno(libc::ENOTEMPTY | libc::EBUSY)) => continue,
            Err(errno) => Err(ceph_err(format!("move {image} to the trash"), errno)),
        };
        match done {
            Ok(()) => tracing::info!(image, "a deleted volume's image has no dependents left"),
            Err(e) => tracing::warn!(image, error = %e.chain(), "cannot collect a gone image"),
        }
    }
}
