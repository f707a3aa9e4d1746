//! Volume group snapshots (the CSI GroupController) on RBD groups.
//!
//! CreateVolumeGroupSnapshot takes one crash-consistent point across every source image with
//! one RBD group snapshot (librbd quiesces the images' writers, then snapshots each image),
//! and turns it into one ordinary, independently restorable snapshot per volume:
//!
//! 1. reserve the request name ([`crate::ceph::group_journal`]); same name + same sources is
//!    the same answer, other sources ALREADY_EXISTS;
//! 2. a transient group `csi-group-<id>` holding the source images, and its snapshot;
//! 3. per source: the image's group-namespace snapshot is copied (thin) into a member image
//!    `csi-gsnap-<id>-<i>`, which gets a user snapshot `csi-snap-<id>-<i>`: that is the member
//!    snapshot, a content source for CreateVolume like any berth snapshot (format-2 clone);
//! 4. the group snapshot, the images' membership and the group are removed again.
//!
//! So the source volumes end as they began (no group membership, no snapshot: DeleteVolume
//! and the volume lifecycle are untouched) and a member lives on its own. The price is a copy
//! of each member's allocated data at snapshot time: Pacific's C API cannot clone from a
//! group-namespace snapshot (`rbd_clone4` takes a snapshot id and came with Reef).
//! Step 3 is complete for a member once its user snapshot exists (taken right after the copy),
//! so a retry after a crash redoes only unfinished copies, and step 4 runs only after all.
//!
//! DeleteVolumeGroupSnapshot removes the member snapshots and marks the member images gone
//! (removed with the RBD trash once no clone depends on them, as a deleted volume with
//! snapshots is); only group snapshots the journal knows are touched.

use std::collections::HashMap;

use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::{self, Image};
use crate::ceph::ffi::{features, group};
use crate::ceph::group_journal::{self as gj, GroupEntry, Member};
use crate::ceph::journal::{self, Kind};
use crate::ceph::{Target, ceph_err};
use crate::csi::{Snapshot, VolumeGroupSnapshot};
use crate::error::{Error, Result};
use crate::group_snapshot_id::GroupSnapshotId;
use crate::locks::LockGuard;
use crate::snapshot_id::SnapshotId;
use crate::volume_id::VolumeId;

use super::{Controller, Place, delete::collect_gone, now, random_hex};

/// The transient RBD group and its snapshot of group snapshot `id`.
fn group_names(id: &str) -> (String, String) {
    (format!("csi-group-{id}"), format!("csi-gsnap-{id}"))
}

/// The wire form of a journaled group snapshot; `ready` says every member is complete.
fn to_wire(place: &Place, e: &GroupEntry, ready: bool) -> Result<VolumeGroupSnapshot> {
    let too_long = || Error::IdTooLong {
        what: "group snapshot",
    };
    let gid = GroupSnapshotId::new(&place.cluster_id, &place.pool, &e.id)
        .in_namespace(&place.namespace)
        .encode()
        .ok_or_else(too_long)?;
    let created = prost_types::Timestamp {
        seconds: e.created,
        nanos: 0,
    };
    let snapshots = e
        .members
        .iter()
        .map(|m| {
            Ok(Snapshot {
                size_bytes: m.size as i64,
                snapshot_id: place
                    .snapshot(&m.image, &m.snap)
                    .encode()
                    .ok_or_else(too_long)?,
                source_volume_id: place.volume(&m.source).encode().ok_or_else(too_long)?,
                creation_time: Some(created),
                ready_to_use: ready,
                group_snapshot_id: gid.clone(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(VolumeGroupSnapshot {
        group_snapshot_id: gid,
        snapshots,
        creation_time: Some(created),
        ready_to_use: ready,
    })
}

/// The wire form of one member snapshot (ListSnapshots / GetSnapshot by id), or `None` when
/// `owner` is not a group snapshot's or the member is unknown.
pub(super) fn member_snapshot(
    io: &IoCtx<'_>,
    place: &Place,
    owner: &str,
    image: &str,
) -> Result<Option<Snapshot>> {
    let Some(id) = owner.strip_prefix(gj::GROUP_OWNER) else {
        return Ok(None);
    };
    let Some((_, e)) = gj::by_id(io, id)? else {
        return Ok(None);
    };
    let ready = complete(io, &e)?;
    let g = to_wire(place, &e, ready)?;
    Ok(g.snapshots
        .into_iter()
        .find(|s| SnapshotId::decode(&s.snapshot_id).is_ok_and(|sid| sid.image == image)))
}

/// Source volume IDs -> the sources' place and images (one pool and namespace for all).
fn sources(ids: &[String]) -> Result<(Place, Vec<String>)> {
    if ids.is_empty() {
        return Err(Error::Missing {
            field: "source_volume_ids",
        });
    }
    let mut decoded = Vec::with_capacity(ids.len());
    for id in ids {
        let v = VolumeId::decode(id).map_err(|_| Error::SourceVolumeNotFound { id: id.clone() })?;
        decoded.push(v);
    }
    let place = Place {
        cluster_id: decoded[0].cluster_id.clone(),
        pool: decoded[0].pool.clone(),
        namespace: decoded[0].namespace.clone(),
    };
    if decoded.iter().any(|v| {
        v.cluster_id != place.cluster_id || v.pool != place.pool || v.namespace != place.namespace
    }) {
        return Err(Error::GroupAcrossPools);
    }
    let mut images: Vec<String> = decoded.into_iter().map(|v| v.image).collect();
    let n = images.len();
    images.sort();
    images.dedup();
    if images.len() != n {
        return Err(Error::DuplicateSource);
    }
    Ok((place, images))
}

pub(super) async fn create(
    c: &Controller,
    name: String,
    source_ids: Vec<String>,
    secrets: &HashMap<String, String>,
) -> Result<VolumeGroupSnapshot> {
    if name.is_empty() {
        return Err(Error::Missing { field: "name" });
    }
    let (place, images) = sources(&source_ids)?;
    let target = c
        .target(&place.cluster_id, &place.pool, &place.namespace, secrets)?
        .ok_or_else(|| Error::VolumeClusterUnknown {
            cluster: place.cluster_id.clone(),
        })?;
    // The name, and every source volume (a DeleteVolume meanwhile gets ABORTED).
    let mut guards: Vec<LockGuard> = vec![c.locks().try_lock(&format!("create-group/{name}"))?];
    let mut ids = source_ids.clone();
    ids.sort();
    for id in &ids {
        guards.push(c.locks().try_lock(&format!("volume/{id}"))?);
    }
    let fp = ids.join(",");
    let entry = c
        .ceph()
        .with_pool_held(&target, guards, move |io| {
            let e = reserve(io, &name, &images, fp)?;
            gj::register_members(io, &e)?;
            make_members(io, &e)?;
            Ok(e)
        })
        .await?;
    to_wire(&place, &entry, true)
}

/// The journaled entry for `name` (reserved now if new).
fn reserve(io: &IoCtx<'_>, name: &str, images: &[String], fp: String) -> Result<GroupEntry> {
    if let Some(e) = gj::lookup(io, name)? {
        if e.fp != fp {
            return Err(Error::GroupSnapshotExists {
                name: name.to_string(),
            });
        }
        return Ok(e);
    }
    let id = random_hex(16);
    let mut members = Vec::with_capacity(images.len());
    for (i, image) in images.iter().enumerate() {
        let missing = || Error::SourceVolumeNotFound { id: image.clone() };
        if journal::owner(io, Kind::Volume, image, "")?.is_none() {
            return Err(missing());
        }
        let img = Image::open(io, image, true).map_err(|e| match e {
            Errno(libc::ENOENT) => missing(),
            e => ceph_err(format!("open image {image}"), e),
        })?;
        members.push(Member {
            source: image.clone(),
            image: format!("csi-gsnap-{id}-{i}"),
            snap: format!("csi-snap-{id}-{i}"),
            size: img.size().map_err(|e| ceph_err("read image size", e))?,
        });
    }
    let e = GroupEntry {
        id,
        fp,
        members,
        created: now(),
    };
    gj::put(io, name, &e)?;
    Ok(e)
}

/// Whether every member's snapshot exists.
fn complete(io: &IoCtx<'_>, e: &GroupEntry) -> Result<bool> {
    for m in &e.members {
        if !member_done(io, m)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn member_done(io: &IoCtx<'_>, m: &Member) -> Result<bool> {
    match Image::open(io, &m.image, true) {
        Ok(img) => img
            .snap_exists(&m.snap)
            .map_err(|e| ceph_err(format!("check snapshot {}@{}", m.image, m.snap), e)),
        Err(Errno(libc::ENOENT)) => Ok(false),
        Err(e) => Err(ceph_err(format!("open image {}", m.image), e)),
    }
}

/// Ok for EEXIST (a retry finds the object made).
fn made(r: std::result::Result<(), Errno>) -> std::result::Result<(), Errno> {
    match r {
        Err(Errno(libc::EEXIST)) => Ok(()),
        r => r,
    }
}

/// Ok for ENOENT (a retry finds the object gone).
fn gone(r: std::result::Result<(), Errno>) -> std::result::Result<(), Errno> {
    match r {
        Err(Errno(libc::ENOENT)) => Ok(()),
        r => r,
    }
}

/// Steps 2-4 of the module doc, each idempotent.
fn make_members(io: &IoCtx<'_>, e: &GroupEntry) -> Result<()> {
    let (grp, gsnap) = group_names(&e.id);
    if !complete(io, e)? {
        made(group::create(io, &grp)).map_err(|x| ceph_err(format!("create group {grp}"), x))?;
        for m in &e.members {
            made(group::image_add(io, &grp, &m.source))
                .map_err(|x| ceph_err(format!("add {} to group {grp}", m.source), x))?;
        }
        made(group::snap_create(io, &grp, &gsnap))
            .map_err(|x| ceph_err(format!("snapshot group {grp}"), x))?;
        for m in &e.members {
            if !member_done(io, m)? {
                copy_member(io, m, &grp, &gsnap)?;
            }
        }
    }
    release_group(io, e)
}

/// Copy one source at the group snapshot into its member image and snapshot that.
fn copy_member(io: &IoCtx<'_>, m: &Member, grp: &str, gsnap: &str) -> Result<()> {
    // A copy cut short by a crash is made again from the start.
    gone(rbd::remove(io, &m.image))
        .map_err(|x| ceph_err(format!("remove partial copy {}", m.image), x))?;
    let src = Image::open(io, &m.source, true)
        .map_err(|x| ceph_err(format!("open image {}", m.source), x))?;
    let snap_id = src
        .group_snap_id(grp, gsnap)
        .map_err(|x| ceph_err(format!("list snapshots of {}", m.source), x))?
        .ok_or_else(|| Error::GroupSnapshotMissing {
            image: m.source.clone(),
            group: format!("{grp}@{gsnap}"),
        })?;
    src.set_snap_id(snap_id)
        .map_err(|x| ceph_err(format!("read {} at {grp}@{gsnap}", m.source), x))?;
    src.copy_to(io, &m.image, features::LAYERING)
        .map_err(|x| ceph_err(format!("copy {} into {}", m.source, m.image), x))?;
    let img =
        Image::open(io, &m.image, false).map_err(|x| ceph_err(format!("open {}", m.image), x))?;
    made(img.snap_create(&m.snap))
        .map_err(|x| ceph_err(format!("snapshot {}@{}", m.image, m.snap), x))?;
    tracing::info!(source = %m.source, member = %m.image, "group snapshot member made");
    Ok(())
}

/// Remove the transient group: its snapshot, the sources' membership, the group itself.
fn release_group(io: &IoCtx<'_>, e: &GroupEntry) -> Result<()> {
    let (grp, gsnap) = group_names(&e.id);
    gone(group::snap_remove(io, &grp, &gsnap))
        .map_err(|x| ceph_err(format!("remove group snapshot {grp}@{gsnap}"), x))?;
    for m in &e.members {
        gone(group::image_remove(io, &grp, &m.source))
            .map_err(|x| ceph_err(format!("remove {} from group {grp}", m.source), x))?;
    }
    gone(group::remove(io, &grp)).map_err(|x| ceph_err(format!("remove group {grp}"), x))
}

pub(super) async fn get(
    c: &Controller,
    gid: &str,
    secrets: &HashMap<String, String>,
) -> Result<VolumeGroupSnapshot> {
    if gid.is_empty() {
        return Err(Error::Missing {
            field: "group_snapshot_id",
        });
    }
    let missing = || Error::GroupSnapshotNotFound {
        id: gid.to_string(),
    };
    let id = GroupSnapshotId::decode(gid).map_err(|_| missing())?;
    let target = c
        .target_with(&id.cluster_id, &id.pool, &id.namespace, secrets, true)?
        .ok_or_else(missing)?;
    let key = id.id.clone();
    let found = c
        .ceph()
        .with_pool(&target, move |io| match gj::by_id(io, &key)? {
            Some((_, e)) => {
                let ready = complete(io, &e)?;
                Ok(Some((e, ready)))
            }
            None => Ok(None),
        })
        .await;
    match found {
        Ok(Some((e, ready))) => {
            let place = Place {
                cluster_id: id.cluster_id.clone(),
                pool: id.pool.clone(),
                namespace: id.namespace.clone(),
            };
            to_wire(&place, &e, ready)
        }
        Ok(None) | Err(Error::PoolNotFound { .. }) => Err(missing()),
        Err(e) => Err(e),
    }
}

pub(super) async fn delete(
    c: &Controller,
    gid: &str,
    secrets: &HashMap<String, String>,
) -> Result<()> {
    if gid.is_empty() {
        return Err(Error::Missing {
            field: "group_snapshot_id",
        });
    }
    // An ID we could not have issued names nothing: deleting nothing succeeds.
    let Ok(id) = GroupSnapshotId::decode(gid) else {
        return Ok(());
    };
    let Some(target) = c.target(&id.cluster_id, &id.pool, &id.namespace, secrets)? else {
        return Ok(());
    };
    let guard = c.locks().try_lock(&format!("group-snapshot/{gid}"))?;
    let key = id.id.clone();
    let purge: Target = target.clone();
    let result = c
        .ceph()
        .with_pool_held(&target, guard, move |io| {
            let Some((name, e)) = gj::by_id(io, &key)? else {
                tracing::info!(group = %key, "DeleteVolumeGroupSnapshot of a group snapshot berth does not know: left alone");
                return Ok(());
            };
            // A create cut short may have left the transient group.
            release_group(io, &e)?;
            for m in &e.members {
                remove_member(io, m)?;
            }
            gj::remove(io, &name, &e)?;
            collect_gone(io);
            Ok(())
        })
        .await;
    if result.is_ok() {
        c.kick_purge(purge);
    }
    match result {
        Err(Error::PoolNotFound { .. }) => Ok(()),
        r => r,
    }
}

/// Remove a member's snapshot (with clones it waits in librbd's trash namespace) and hand its
/// image to the gone-image collection (trashed and purged once nothing depends on it).
fn remove_member(io: &IoCtx<'_>, m: &Member) -> Result<()> {
    match Image::open(io, &m.image, false) {
        Ok(img) => gone(img.snap_remove(&m.snap))
            .map_err(|x| ceph_err(format!("remove snapshot {}@{}", m.image, m.snap), x))?,
        Err(Errno(libc::ENOENT)) => return Ok(()),
        Err(x) => return Err(ceph_err(format!("open image {}", m.image), x)),
    }
    journal::mark_gone(io, None, &m.image)
}
