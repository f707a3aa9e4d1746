//! NodePublishVolume / NodeUnpublishVolume: bind mounts from the staging path (filesystem)
//! or of the device node onto a file (block) at the pod's target path, read-only when asked.
//! Every publish is recorded in the stash so a repeated call can be told apart from a
//! conflicting one, and recovery can bind again after a re-attach.

use std::path::{Path, PathBuf};

use super::request::Capability;
use super::stash::Publish;
use super::{Shared, targets};
use crate::error::Error;
use crate::mount::{MountError, mountinfo, ops};

/// A checked NodePublishVolume request.
#[derive(Debug)]
pub struct PublishArgs {
    pub id: String,
    pub staging: PathBuf,
    pub target: PathBuf,
    pub capability: Capability,
    pub readonly: bool,
}

pub fn publish(node: &Shared, a: PublishArgs) -> Result<(), Error> {
    let mut s = node
        .store
        .load(&a.staging)?
        .filter(|s| s.volume_id == a.id && s.complete)
        .ok_or_else(|| Error::NotStagedAt {
            volume: a.id.clone(),
            staging: a.staging.clone(),
        })?;
    if s.capability.is_block() != a.capability.is_block() {
        return Err(Error::StagedForOtherAccess {
            volume: a.id.clone(),
            staged: if s.capability.is_block() {
                "block"
            } else {
                "filesystem"
            },
        });
    }
    let want = Publish {
        readonly: a.readonly,
        capability: a.capability.clone(),
    };
    match s.publishes.get(&a.target) {
        Some(p) if *p != want => {
            return Err(Error::PublishedDifferently {
                target: a.target.clone(),
                volume: a.id.clone(),
            });
        }
        Some(_) if mountinfo::is_mounted(&a.target) => return Ok(()),
        Some(_) => {
            tracing::warn!(target = %a.target.display(), "recorded publish is not mounted; binding again");
        }
        None => {
            let single = a.capability.single_writer()
                || s.publishes.values().any(|p| p.capability.single_writer());
            if single && let Some(other) = s.publishes.keys().next() {
                return Err(Error::SingleWriterPublished {
                    volume: a.id.clone(),
                    target: other.clone(),
                });
            }
            if mountinfo::is_mounted(&a.target) {
                return Err(Error::TargetBusy {
                    target: a.target.clone(),
                });
            }
        }
    }
    let readonly = a.readonly || a.capability.read_only_mode();
    bind(&s, &a.staging, &a.target, readonly)?;
    s.publishes.insert(a.target.clone(), want);
    if let Err(e) = node.store.save(&s) {
        let _ = ops::unmount(&a.target, false);
        return Err(e);
    }
    tracing::info!(volume = %a.id, target = %a.target.display(), readonly, "published");
    Ok(())
}

/// Bind the staged volume at `target` (used by publish and by recovery).
pub(super) fn bind(
    s: &super::stash::Stash,
    staging: &Path,
    target: &Path,
    readonly: bool,
) -> Result<(), Error> {
    // mount(2) follows a symlink at the target: the volume would land on the link's
    // destination, outside the pod's volume directory. The target is ours to create.
    if std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(MountError::SymlinkTarget {
            target: target.to_path_buf(),
        }
        .into());
    }
    if s.capability.is_block() {
        let a = s.attached.as_ref().ok_or_else(|| Error::NoDevice {
            volume: s.volume_id.clone(),
        })?;
        // The recorded device is bound into a pod only while it maps this volume's image.
        crate::attach::attacher(a.kind)
            .check(a, &s.want()?)
            .map_err(|cause| Error::DeviceBroken {
                volume: s.volume_id.clone(),
                cause: Box::new(cause),
            })?;
        let device = a.device.clone();
        ops::ensure_file(target)?;
        ops::bind(&device, target, readonly)?;
    } else {
        ops::ensure_dir(target)?;
        // An encrypted volume: its encrypted directory, not the filesystem's root.
        ops::bind(&super::encrypt::bind_source(staging), target, readonly)?;
    }
    Ok(())
}

pub fn unpublish(node: &Shared, id: &str, target: &Path) -> Result<(), Error> {
    let all = node.store.all();
    if all
        .iter()
        .any(|s| s.volume_id != id && s.publishes.contains_key(target))
    {
        // Published, but for another volume: not ours to undo.
        return Ok(());
    }
    // Only a mount of this volume comes off, and only an empty target berth made goes
    // ([`super::targets`]); a foreign mount, a file, a symlink stay as they are.
    let mine: Vec<_> = all.into_iter().filter(|s| s.volume_id == id).collect();
    let made_file = mine
        .iter()
        .any(|s| s.capability.is_block() && s.publishes.contains_key(target));
    if targets::unmount_ours(&mine, target, false)? {
        targets::remove_if_ours(target, made_file)?;
    }
    for mut s in mine {
        if s.publishes.remove(target).is_some() {
            node.store.save(&s)?;
        }
    }
    tracing::info!(volume = %id, target = %target.display(), "unpublished");
    Ok(())
}
