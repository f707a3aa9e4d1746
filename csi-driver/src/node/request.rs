//! Checking node requests and turning their loose protobuf fields into typed values (pure).
//! Field checks run in the order the spec lists the fields, so the first missing one is named.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::csi::VolumeCapability;
use crate::csi::volume_capability::AccessType;
use crate::csi::volume_capability::access_mode::Mode;
use crate::error::Error;
use crate::mount::format;
use crate::params::CapabilityError;
use crate::volume_id::{NotOurs, VolumeId};

/// How the volume is consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Access {
    /// A filesystem of `fs_type` mounted with `flags`.
    Mount { fs_type: String, flags: Vec<String> },
    /// The raw block device.
    Block,
}

/// A checked `VolumeCapability`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    pub access: Access,
    /// The CSI access mode, as its wire value.
    pub mode: i32,
}

impl Capability {
    pub fn is_block(&self) -> bool {
        matches!(self.access, Access::Block)
    }
    pub fn single_writer(&self) -> bool {
        self.mode == Mode::SingleNodeSingleWriter as i32
    }
    pub fn read_only_mode(&self) -> bool {
        self.mode == Mode::SingleNodeReaderOnly as i32
            || self.mode == Mode::MultiNodeReaderOnly as i32
    }
}

/// A required string field.
pub fn required<'a>(field: &'static str, value: &'a str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Err(Error::Missing { field })
    } else {
        Ok(value)
    }
}

/// A required absolute path without `..` (staging and target paths).
pub fn path(field: &'static str, value: &str) -> Result<PathBuf, Error> {
    let p = Path::new(required(field, value)?);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(Error::BadPath {
            field,
            value: value.to_string(),
        });
    }
    Ok(p.components().collect())
}

/// The volume a request names: a static volume's context (see [`crate::static_volume`]), else
/// the decoded id; an id we could not have issued is NOT_FOUND.
pub fn volume(
    id: &str,
    ctx: &std::collections::HashMap<String, String>,
) -> Result<VolumeId, Error> {
    crate::static_volume::resolve(id, ctx)
        .map_err(|e| e.unwrap_or_else(|| NotOurs(id.to_string()).into()))
}

/// The volume-context key of the StorageClass's fs type.
pub const FSTYPE_KEY: &str = "csi.storage.k8s.io/fstype";

/// A required, checked capability. `context_fs` (the volume context's
/// [`FSTYPE_KEY`]) is the fs type when the capability's own is empty; then ext4.
pub fn capability(cap: Option<&VolumeCapability>, context_fs: &str) -> Result<Capability, Error> {
    let cap = cap.ok_or(Error::Missing {
        field: "volume_capability",
    })?;
    let mode = cap
        .access_mode
        .as_ref()
        .map(|m| m.mode)
        .and_then(|m| Mode::try_from(m).ok())
        .filter(|m| *m != Mode::Unknown)
        .ok_or(CapabilityError::NoAccessMode)?;
    let access = match &cap.access_type {
        None => {
            return Err(CapabilityError::NoAccessType.into());
        }
        Some(AccessType::Block(_)) => Access::Block,
        Some(AccessType::Mount(m)) => {
            if !m.volume_mount_group.is_empty() {
                return Err(CapabilityError::MountGroup.into());
            }
            if matches!(
                mode,
                Mode::MultiNodeMultiWriter | Mode::MultiNodeSingleWriter
            ) {
                // A filesystem on RBD is written from one node only: two corrupt it.
                return Err(CapabilityError::BlockOnly(mode.as_str_name()).into());
            }
            let requested = if m.fs_type.trim().is_empty() {
                context_fs
            } else {
                &m.fs_type
            };
            Access::Mount {
                fs_type: format::fs_type(requested)?,
                flags: m.mount_flags.clone(),
            }
        }
    };
    Ok(Capability {
        access,
        mode: mode as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csi::volume_capability::{AccessMode, BlockVolume, MountVolume};

    fn cap(access: Option<AccessType>, mode: Mode) -> VolumeCapability {
        VolumeCapability {
            access_type: access,
            access_mode: Some(AccessMode { mode: mode as i32 }),
        }
    }

    fn mount(fs: &str) -> Option<AccessType> {
        Some(AccessType::Mount(MountVolume {
            fs_type: fs.into(),
            mount_flags: vec!["noatime".into()],
            volume_mount_group: String::new(),
        }))
    }

    #[test]
    fn capabilities() {
        let c = capability(Some(&cap(mount(""), Mode::SingleNodeWriter)), "").unwrap();
        assert_eq!(
            c.access,
            Access::Mount {
                fs_type: "ext4".into(),
                flags: vec!["noatime".into()]
            }
        );
        let c = capability(
            Some(&cap(
                Some(AccessType::Block(BlockVolume {})),
                Mode::MultiNodeMultiWriter,
            )),
            "",
        )
        .unwrap();
        assert!(c.is_block());
        let bad = [
            None,
            Some(cap(None, Mode::SingleNodeWriter)),
            Some(cap(mount("ext4"), Mode::Unknown)),
            Some(cap(mount("ext4"), Mode::MultiNodeMultiWriter)),
            Some(cap(mount("zfs"), Mode::SingleNodeWriter)),
        ];
        for b in bad {
            let e = capability(b.as_ref(), "").unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{b:?}: {e}");
        }
    }

    #[test]
    fn context_fs_type_fills_an_empty_one() {
        let fs = |requested: &str, ctx: &str| match capability(
            Some(&cap(mount(requested), Mode::SingleNodeWriter)),
            ctx,
        )
        .unwrap()
        .access
        {
            Access::Mount { fs_type, .. } => fs_type,
            Access::Block => unreachable!(),
        };
        assert_eq!(fs("", "xfs"), "xfs");
        assert_eq!(fs("ext4", "xfs"), "ext4", "the capability's own wins");
        assert_eq!(fs("", ""), "ext4");
        let e = capability(Some(&cap(mount(""), Mode::SingleNodeWriter)), "zfs").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn paths_and_ids() {
        assert_eq!(path("p", "/a/b/").unwrap(), PathBuf::from("/a/b"));
        for bad in ["", "rel/x", "/a/../b"] {
            assert_eq!(
                path("p", bad).unwrap_err().code(),
                tonic::Code::InvalidArgument
            );
        }
        assert_eq!(
            volume("fake-vol-id-1234", &Default::default())
                .unwrap_err()
                .code(),
            tonic::Code::NotFound
        );
        assert!(volume("0001-0001-c-0003-rbd-img", &Default::default()).is_ok());
    }
}
