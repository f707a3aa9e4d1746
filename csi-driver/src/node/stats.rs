//! NodeGetVolumeStats: bytes and inodes of a mounted filesystem (statvfs), bytes of a block
//! volume (sysfs), and the volume's condition — abnormal when the device or mount is broken
//! (rbd-fuse gone, loop device unbound, path not mounted, filesystem turned read-only).

use std::path::{Path, PathBuf};

use nix::sys::statvfs::statvfs;

use super::Shared;
use super::stash::Stash;
use crate::attach::{Broken, attacher, device};
use crate::csi::{NodeGetVolumeStatsResponse, VolumeCondition, VolumeUsage, volume_usage::Unit};
use crate::error::Error;
use crate::mount::mountinfo;

/// The stash of `id` that has `path` as staging path or publish target, else NOT_FOUND.
pub(super) fn find_at(node: &Shared, id: &str, path: &Path) -> Result<Stash, Error> {
    let stashes = node.store.by_volume(id);
    if stashes.is_empty() {
        return Err(Error::NotStaged { volume: id.into() });
    }
    stashes
        .into_iter()
        .find(|s| s.staging_path == path || s.publishes.contains_key(path))
        .ok_or_else(|| Error::NotAtPath {
            volume: id.into(),
            path: path.to_path_buf(),
        })
}

/// Why a volume is abnormal: the message of its `VolumeCondition`.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("staging did not finish")]
    Incomplete,
    #[error("no device attached")]
    NoDevice,
    #[error("the volume id does not decode")]
    BadVolumeId,
    #[error(transparent)]
    Device(#[from] Broken),
    #[error("read mount table: {0}")]
    MountTable(#[source] std::io::Error),
    #[error("{} is not mounted", path.display())]
    NotMounted { path: PathBuf },
    #[error(
        "the filesystem at {} has turned read-only (I/O errors on the device?)",
        path.display()
    )]
    TurnedReadOnly { path: PathBuf },
    #[error("size of {}: {source}", device.display())]
    DeviceSize {
        device: PathBuf,
        source: std::io::Error,
    },
    #[error("statvfs {}: {errno}", path.display())]
    Statvfs {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
}

/// Ok when the volume at `path` is usable.
pub fn health(s: &Stash, path: &Path) -> Result<(), Unhealthy> {
    if !s.complete {
        return Err(Unhealthy::Incomplete);
    }
    let a = s.attached.as_ref().ok_or(Unhealthy::NoDevice)?;
    let want = s.image().ok_or(Unhealthy::BadVolumeId)?;
    attacher(a.kind).check(a, &want)?;
    if s.capability.is_block() && path == s.staging_path {
        return Ok(());
    }
    let table = mountinfo::read().map_err(Unhealthy::MountTable)?;
    let m = mountinfo::find(&table, path).ok_or_else(|| Unhealthy::NotMounted {
        path: path.to_path_buf(),
    })?;
    let want_ro = s
        .publishes
        .get(path)
        .is_some_and(|p| p.readonly || p.capability.read_only_mode())
        || s.capability.read_only_mode();
    if m.read_only() && !want_ro {
        return Err(Unhealthy::TurnedReadOnly {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

pub fn stats(node: &Shared, id: &str, path: &Path) -> Result<NodeGetVolumeStatsResponse, Error> {
    let s = find_at(node, id, path)?;
    let mut problem = health(&s, path).err();
    let mut usage = Vec::new();
    if s.capability.is_block() {
        if let Some(a) = &s.attached {
            match device::size(&a.device) {
                Ok(total) => usage.push(VolumeUsage {
                    total: total as i64,
                    unit: Unit::Bytes as i32,
                    ..Default::default()
                }),
                Err(source) => {
                    problem.get_or_insert(Unhealthy::DeviceSize {
                        device: a.device.clone(),
                        source,
                    });
                }
            }
        }
    } else if problem.is_none() {
        match statvfs(path) {
            Ok(v) => {
                let frsize = v.fragment_size() as i64;
                let blocks = v.blocks() as i64;
                usage.push(VolumeUsage {
                    total: blocks * frsize,
                    available: v.blocks_available() as i64 * frsize,
                    used: (blocks - v.blocks_free() as i64) * frsize,
                    unit: Unit::Bytes as i32,
                });
                let files = v.files() as i64;
                usage.push(VolumeUsage {
                    total: files,
                    available: v.files_available() as i64,
                    used: files - v.files_free() as i64,
                    unit: Unit::Inodes as i32,
                });
            }
            Err(errno) => {
                problem = Some(Unhealthy::Statvfs {
                    path: path.to_path_buf(),
                    errno,
                })
            }
        }
    }
    Ok(NodeGetVolumeStatsResponse {
        usage,
        volume_condition: Some(VolumeCondition {
            abnormal: problem.is_some(),
            message: problem.map_or_else(|| "volume is healthy".into(), |p| p.to_string()),
        }),
    })
}
