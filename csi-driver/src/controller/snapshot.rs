//! CreateSnapshot / DeleteSnapshot: a CSI snapshot is an RBD snapshot of the source image,
//! journaled by request name. Clones of it are format-2 clones, so no protection is needed;
//! deleting a snapshot that still has clones moves it to librbd's trash namespace, and the
//! data stays until the last clone goes.

use std::collections::HashMap;

use crate::ceph::ceph_err;
use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::Image;
use crate::ceph::journal::{self, Entry, Kind};
use crate::csi::{
    CreateSnapshotRequest, CreateSnapshotResponse, DeleteSnapshotRequest, DeleteSnapshotResponse,
    Snapshot,
};
use crate::error::{Error, Result};
use crate::params::{DEFAULT_SNAPSHOT_PREFIX, ParamError};
use crate::snapshot_id::SnapshotId;
use crate::volume_id::VolumeId;

use super::{Controller, Place, delete::collect_gone, now, random_hex};

/// The wire form of a journaled snapshot.
pub(super) fn to_wire(place: &Place, e: &Entry) -> Option<Snapshot> {
    Some(Snapshot {
        size_bytes: e.size as i64,
        snapshot_id: place.snapshot(&e.image, &e.snap).encode()?,
        source_volume_id: place.volume(&e.image).encode()?,
        creation_time: Some(prost_types::Timestamp {
            seconds: e.created,
            nanos: 0,
        }),
        ready_to_use: true,
        group_snapshot_id: String::new(),
    })
}

/// `snapshotNamePrefix` from the VolumeSnapshotClass parameters (others are accepted: classes
/// often repeat clusterID/pool, and the snapshotter adds csi.storage.k8s.io/* keys).
fn snapshot_prefix(params: &HashMap<String, String>) -> Result<String> {
    let prefix = params
        .get("snapshotNamePrefix")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SNAPSHOT_PREFIX.to_string());
    let ok = prefix.len() <= 24
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(ParamError::SnapshotPrefix { prefix }.into());
    }
    Ok(prefix)
}

pub(super) async fn create_snapshot(
    c: &Controller,
    req: CreateSnapshotRequest,
) -> Result<CreateSnapshotResponse> {
    if req.name.is_empty() {
        return Err(Error::Missing { field: "name" });
    }
    if req.source_volume_id.is_empty() {
        return Err(Error::Missing {
            field: "source_volume_id",
        });
    }
    let prefix = snapshot_prefix(&req.parameters)?;
    let missing = || Error::SourceVolumeNotFound {
        id: req.source_volume_id.clone(),
    };
    let src = VolumeId::decode(&req.source_volume_id).map_err(|_| missing())?;
    let target = c
        .target(&src.cluster_id, &src.pool, &src.namespace, &req.secrets)?
        .ok_or_else(missing)?;
    let guard = c
        .locks()
        .try_lock(&format!("create-snapshot/{}", req.name))?;
    let (name, image, source_id) = (
        req.name.clone(),
        src.image.clone(),
        req.source_volume_id.clone(),
    );
    let entry = c
        .ceph()
        .with_pool_held(&target, guard, move |io| {
            reserve_and_snap(io, &name, &image, &source_id, &prefix)
        })
        .await?;
    let place = Place {
        cluster_id: src.cluster_id.clone(),
        pool: src.pool.clone(),
        namespace: src.namespace.clone(),
    };
    let snapshot = to_wire(&place, &entry).ok_or(Error::IdTooLong { what: "snapshot" })?;
    Ok(CreateSnapshotResponse {
        snapshot: Some(snapshot),
    })
}

fn reserve_and_snap(
    io: &IoCtx<'_>,
    name: &str,
    image: &str,
    source_id: &str,
    prefix: &str,
) -> Result<Entry> {
    let missing = || Error::SourceVolumeNotFound {
        id: source_id.to_string(),
    };
    let entry = match journal::lookup(io, Kind::Snapshot, name)? {
        Some(e) if e.fp != source_id => {
            return Err(Error::SnapshotExists {
                name: name.to_string(),
            });
        }
        Some(e) => e,
        None => {
            if journal::owner(io, Kind::Volume, image, "")?.is_none() {
                return Err(missing());
            }
            let img = Image::open(io, image, true).map_err(|e| match e {
                Errno(libc::ENOENT) => missing(),
                e => ceph_err(format!("open image {image}"), e),
            })?;
            let size = img.size().map_err(|e| ceph_err("read image size", e))?;
            let e = Entry {
                image: image.to_string(),
                snap: format!("{prefix}{}", random_hex(16)),
                size,
                fp: source_id.to_string(),
                created: now(),
            };
            journal::put(io, Kind::Snapshot, name, &e)?;
            e
        }
    };
    let img = Image::open(io, image, false).map_err(|e| match e {
        Errno(libc::ENOENT) => missing(),
        e => ceph_err(format!("open image {image}"), e),
    })?;
    if !img
        .snap_exists(&entry.snap)
        .map_err(|e| ceph_err("check snapshot", e))?
    {
        match img.snap_create(&entry.snap) {
            Ok(()) | Err(Errno(libc::EEXIST)) => {}
            Err(e) => return Err(ceph_err(format!("snapshot {image}@{}", entry.snap), e)),
        }
    }
    Ok(entry)
}

pub(super) async fn delete_snapshot(
    c: &Controller,
    req: DeleteSnapshotRequest,
) -> Result<DeleteSnapshotResponse> {
    if req.snapshot_id.is_empty() {
        return Err(Error::Missing {
            field: "snapshot_id",
        });
    }
    let Ok(id) = SnapshotId::decode(&req.snapshot_id) else {
        return Ok(DeleteSnapshotResponse {});
    };
    let Some(target) = c.target(&id.cluster_id, &id.pool, &id.namespace, &req.secrets)? else {
        return Ok(DeleteSnapshotResponse {});
    };
    let guard = c
        .locks()
        .try_lock(&format!("snapshot/{}", req.snapshot_id))?;
    let purge = target.clone();
    let result = c
        .ceph()
        .with_pool_held(&target, guard, move |io| {
            // Only snapshots berth created (journaled): anything else is left alone, OK.
            let Some(owner) = journal::owner(io, Kind::Snapshot, &id.image, &id.snap)? else {
                tracing::info!(snapshot = %id, "DeleteSnapshot of a snapshot berth did not create: left alone");
                return Ok(());
            };
            if let Some(group) = owner.strip_prefix(crate::ceph::group_journal::GROUP_OWNER) {
                return Err(Error::SnapshotInGroup {
                    snapshot: id.to_string(),
                    group: group.to_string(),
                });
            }
            match Image::open(io, &id.image, false) {
                Ok(img) => match img.snap_remove(&id.snap) {
                    Ok(()) | Err(Errno(libc::ENOENT)) => {}
                    Err(e) => {
                        return Err(ceph_err(format!("remove snapshot {}", id), e));
                    }
                },
                Err(Errno(libc::ENOENT)) => {}
                Err(e) => return Err(ceph_err(format!("open image {}", id.image), e)),
            }
            journal::remove(io, Kind::Snapshot, &owner, &id.image, &id.snap)?;
            collect_gone(io);
            Ok(())
        })
        .await;
    if result.is_ok() {
        // collect_gone may have trashed the source image of this snapshot.
        c.kick_purge(purge);
    }
    match result {
        Err(Error::PoolNotFound { .. }) => Ok(DeleteSnapshotResponse {}),
        r => r.map(|()| DeleteSnapshotResponse {}),
    }
}
