//! Restart recovery: when the node plugin starts, it reads every stash and makes what its
//! own restart broke work again (in the background, holding the volumes' locks; see
//! [`crate::node::Node::start`]).
//!
//! - Incomplete stash (the plugin died inside NodeStage): undo what it records; kubelet
//!   stages again.
//! - Device usable and staging mounted: nothing to do, except binding again publish targets
//!   that lost their mount.
//! - Device broken (the typical case: rbd-fuse died with the plugin's container, the fuse
//!   mount answers ENOTCONN and the loop device reads EIO): unmount the publishes and the
//!   staging mount (lazily: they are dead), detach, attach again with the stashed client
//!   files, mount the filesystem that is there (never mkfs here) and bind the publish
//!   targets again.
//!
//! A volume that cannot be repaired keeps its stash: NodeGetVolumeStats reports it
//! abnormal with the reason, and unpublish + unstage still clean up.
//!
//! Caveat: a running container got its own copy of the old bind mount; it sees the new one
//! only with HostToContainer mount propagation, otherwise the pod has to be restarted (the
//! abnormal condition says so until then).

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::publish::bind;
use super::request::Access;
use super::stage::{mount_options, teardown};
use super::stash::Stash;
use crate::attach::client::ClientFiles;
use crate::attach::{Target, attacher};
use crate::error::Error;
use crate::mount::format::{self, Content};
use crate::mount::{mountinfo, ops};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Healthy,
    Rebound(usize),
    Reattached,
    CleanedUp,
}

/// Recover every stashed volume; returns (volume id, result) per stash, for logs and tests.
pub fn run(node: &Shared) -> Vec<(String, Result<Outcome, Error>)> {
    let mut report = Vec::new();
    for s in node.store.all() {
        let id = s.volume_id.clone();
        let result = if s.complete {
            heal(node, s)
        } else {
            teardown(node, &s).map(|_| Outcome::CleanedUp)
        };
        match &result {
            Ok(Outcome::Healthy) => tracing::debug!(volume = %id, "recovery: healthy"),
            Ok(outcome) => tracing::info!(volume = %id, ?outcome, "recovery: repaired"),
            Err(e) => tracing::error!(volume = %id,
                "recovery failed: {}; stats report the volume abnormal, unstage still cleans up", e.chain()),
        }
        report.push((id, result));
    }
    report
}

/// How often the running plugin checks its attachments, so a device that breaks while it
/// runs (rbd-fuse OOM-killed, crashed) is repaired without waiting for a plugin restart. One
/// check is a statfs and a mount-table read per staged volume.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// Repair, as at start, volumes whose device broke while the plugin runs. Never returns.
///
/// The check of a healthy volume takes no lock: a concurrent RPC must never answer ABORTED
/// because the watch was looking. Only a volume that looks broken is locked (one with an
/// operation in flight is looked at in the next round), read again and checked again under
/// the lock before it is repaired.
pub fn watch(node: Arc<Shared>) {
    loop {
        std::thread::sleep(node.config.watch_interval);
        for s in node.store.all().into_iter().filter(|s| s.complete) {
            if healthy(&s) {
                continue;
            }
            let Ok(_guard) = node.locks.try_lock(&s.volume_id) else {
                continue;
            };
            // Read again under the lock: an unstage may have finished meanwhile.
            let Ok(Some(s)) = node.store.load(&s.staging_path) else {
                continue;
            };
            if !s.complete || healthy(&s) {
                continue;
            }
            let id = s.volume_id.clone();
            match heal(&node, s) {
                Ok(outcome) => tracing::info!(volume = %id, ?outcome, "watch: repaired"),
                Err(e) => tracing::error!(volume = %id, "watch: repair failed: {}", e.chain()),
            }
        }
    }
}

/// A complete stash whose device is still the image it names and whose staging mount is on
/// that device. A stash without a device is not ours to repair here (healthy for the watch).
fn healthy(s: &Stash) -> bool {
    let Some(a) = s.attached.as_ref() else {
        return true;
    };
    let trusted = s
        .image()
        .is_some_and(|want| attacher(a.kind).check(a, &want).is_ok());
    trusted && staging_mounted(s, &a.device)
}

fn staging_mounted(s: &Stash, device: &std::path::Path) -> bool {
    match s.capability.access {
        Access::Block => true,
        Access::Mount { .. } => mountinfo::read().is_ok_and(|t| {
            mountinfo::find(&t, &s.staging_path)
                .is_some_and(|m| m.source == device.to_string_lossy())
        }),
    }
}

fn bind_missing(s: &Stash) -> Result<usize, Error> {
    let mut n = 0;
    for (target, p) in &s.publishes {
        if !mountinfo::is_mounted(target) {
            bind(
                s,
                &s.staging_path,
                target,
                p.readonly || p.capability.read_only_mode(),
            )?;
            n += 1;
        }
    }
    Ok(n)
}

fn heal(node: &Shared, mut s: Stash) -> Result<Outcome, Error> {
    let old = s.attached.clone().ok_or_else(|| Error::NoDevice {
        volume: s.volume_id.clone(),
    })?;
    let want = s.want()?;
    let broken = attacher(old.kind).check(&old, &want).err();
    if broken.is_none() && staging_mounted(&s, &old.device) {
        return Ok(match bind_missing(&s)? {
            0 => Outcome::Healthy,
            n => Outcome::Rebound(n),
        });
    }
    let reason = broken.map_or_else(|| "staging not mounted".to_string(), |b| b.to_string());
    tracing::warn!(volume = %s.volume_id, %reason, "re-attaching");
    for target in s.publishes.keys() {
        ops::unmount(target, true)?;
    }
    if !s.capability.is_block() {
        ops::unmount(&s.staging_path, true)?;
    }
    if let Err(e) = attacher(old.kind).detach(&old, &want) {
        tracing::warn!(volume = %s.volume_id, "detaching the broken device: {e}");
    }
    let volume = s.volume().ok_or_else(|| Error::StashVolumeId {
        volume: s.volume_id.clone(),
    })?;
    let dir = node.store.dir(&s.staging_path);
    let client = ClientFiles::existing(&dir, &s.user)
        .ok_or_else(|| Error::ClientFilesGone { dir: dir.clone() })?;
    let fresh = attacher(s.mounter).attach(&Target {
        pool: &volume.pool,
        namespace: &volume.namespace,
        image: &volume.image,
        client: &client,
        map_options: &s.map_options,
        unmap_options: &old.unmap_options,
        read_only: s.capability.read_only_mode(),
        work_dir: &dir,
    })?;
    s.attached = Some(fresh.clone());
    node.store.save(&s)?;
    if let Access::Mount { flags, .. } = &s.capability.access {
        let fs = s.fs.clone().unwrap_or_else(|| "ext4".into());
        match format::detect(&fresh.device)? {
            Content::Filesystem(_) => {}
            other => {
                return Err(Error::ReattachedOther {
                    device: fresh.device.clone(),
                    found: format!("{other:?}"),
                    fs,
                });
            }
        }
        ops::ensure_dir(&s.staging_path)?;
        ops::mount_fs(
            &fresh.device,
            &s.staging_path,
            &fs,
            &mount_options(flags, &fs, s.capability.read_only_mode())?,
        )?;
    }
    bind_missing(&s)?;
    Ok(Outcome::Reattached)
}
