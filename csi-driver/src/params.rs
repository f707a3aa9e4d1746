//! StorageClass parameters -> typed volume config, capacity ranges -> image sizes, and the
//! volume capabilities this driver supports. Pure: no Ceph, no gRPC services.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::ceph::ffi::features;
use crate::csi::{CapacityRange, VolumeCapability, volume_capability};
use crate::error::{Error, Result};

pub const DEFAULT_VOLUME_PREFIX: &str = "csi-vol-";
pub const DEFAULT_SNAPSHOT_PREFIX: &str = "csi-snap-";
/// `imageFeatures` default: older kernels refuse anything else ("image feature set mismatch").
pub const DEFAULT_FEATURES: &str = "layering";
/// Size of a volume created without a capacity range.
pub const DEFAULT_SIZE: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;
/// Largest volume we hand out (RBD's practical ceiling is far higher; 1 PiB keeps arithmetic
/// and thin-provisioning accidents sane).
pub const MAX_SIZE: u64 = 1 << 50;

/// Keys the node service reads from volume_context: accepted here and passed through.
pub const NODE_KEYS: &[&str] = &[
    "csi.storage.k8s.io/fstype",
    "mkfsOptions",
    "mounter",
    "mapOptions",
    "unmapOptions",
];

/// Everything the controller needs from a StorageClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeParams {
    pub cluster_id: String,
    pub pool: String,
    pub data_pool: Option<String>,
    pub features: u64,
    pub features_text: String,
    pub volume_prefix: String,
    pub snapshot_prefix: String,
    /// Node-side keys, passed through in volume_context.
    pub node: BTreeMap<String, String>,
}

impl VolumeParams {
    pub fn parse(params: &HashMap<String, String>) -> Result<VolumeParams> {
        for key in params.keys() {
            let known = matches!(
                key.as_str(),
                "clusterID"
                    | "pool"
                    | "dataPool"
                    | "imageFeatures"
                    | "volumeNamePrefix"
                    | "snapshotNamePrefix"
            ) || NODE_KEYS.contains(&key.as_str())
                || key.starts_with("csi.storage.k8s.io/");
            if !known {
                return Err(Error::InvalidArgument(format!(
                    "unknown parameter {key:?} (known: clusterID, pool, dataPool, imageFeatures, \
                     volumeNamePrefix, snapshotNamePrefix, mkfsOptions, mounter, mapOptions, \
                     unmapOptions, csi.storage.k8s.io/fstype)"
                )));
            }
        }
        let get = |k: &str| params.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let cluster_id = get("clusterID")
            .ok_or_else(|| Error::InvalidArgument("parameter clusterID is required".into()))?;
        let pool = get("pool")
            .ok_or_else(|| Error::InvalidArgument("parameter pool is required".into()))?;
        check_name("pool", pool)?;
        let data_pool = get("dataPool").map(str::to_string);
        if let Some(dp) = &data_pool {
            check_name("dataPool", dp)?;
        }
        let features_text = get("imageFeatures").unwrap_or(DEFAULT_FEATURES);
        let features = parse_features(features_text)?;
        let volume_prefix = get("volumeNamePrefix").unwrap_or(DEFAULT_VOLUME_PREFIX);
        let snapshot_prefix = get("snapshotNamePrefix").unwrap_or(DEFAULT_SNAPSHOT_PREFIX);
        check_prefix("volumeNamePrefix", volume_prefix)?;
        check_prefix("snapshotNamePrefix", snapshot_prefix)?;
        let node = NODE_KEYS
            .iter()
            .filter_map(|k| params.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        Ok(VolumeParams {
            cluster_id: cluster_id.into(),
            pool: pool.into(),
            data_pool,
            features,
            features_text: features_text.into(),
            volume_prefix: volume_prefix.into(),
            snapshot_prefix: snapshot_prefix.into(),
            node,
        })
    }

    /// The volume_context handed to the node service with the volume.
    /// The volume context of image `image` in RADOS namespace `ns` ("" is the default one).
    pub fn volume_context(&self, image: &str, ns: &str) -> HashMap<String, String> {
        let mut ctx: HashMap<String, String> = self.node.clone().into_iter().collect();
        ctx.insert("clusterID".into(), self.cluster_id.clone());
        ctx.insert("pool".into(), self.pool.clone());
        if !ns.is_empty() {
            ctx.insert("radosNamespace".into(), ns.into());
        }
        ctx.insert("imageName".into(), image.into());
        ctx.insert("imageFeatures".into(), self.features_text.clone());
        if let Some(dp) = &self.data_pool {
            ctx.insert("dataPool".into(), dp.clone());
        }
        ctx
    }
}

fn check_name(what: &str, v: &str) -> Result<()> {
    let ok = v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "parameter {what} {v:?} is not a valid name"
        )))
    }
}

fn check_prefix(what: &str, v: &str) -> Result<()> {
    if v.len() > 24 {
        return Err(Error::InvalidArgument(format!(
            "{what} is longer than 24 bytes"
        )));
    }
    check_name(what, v)
}

/// `imageFeatures` ("layering,exclusive-lock,…") -> RBD feature bits, dependencies checked.
pub fn parse_features(text: &str) -> Result<u64> {
    let mut bits = 0;
    for f in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        bits |= match f {
            "layering" => features::LAYERING,
            "exclusive-lock" => features::EXCLUSIVE_LOCK,
            "object-map" => features::OBJECT_MAP,
            "fast-diff" => features::FAST_DIFF,
            "deep-flatten" => features::DEEP_FLATTEN,
            "journaling" => features::JOURNALING,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "imageFeatures: unknown feature {other:?} (known: layering, exclusive-lock, \
                     object-map, fast-diff, deep-flatten, journaling)"
                )));
            }
        };
    }
    let needs = |bit: u64, dep: u64, a: &str, b: &str| {
        if bits & bit != 0 && bits & dep == 0 {
            Err(Error::InvalidArgument(format!(
                "imageFeatures: {a} requires {b}"
            )))
        } else {
            Ok(())
        }
    };
    needs(
        features::OBJECT_MAP,
        features::EXCLUSIVE_LOCK,
        "object-map",
        "exclusive-lock",
    )?;
    needs(
        features::FAST_DIFF,
        features::OBJECT_MAP,
        "fast-diff",
        "object-map",
    )?;
    needs(
        features::JOURNALING,
        features::EXCLUSIVE_LOCK,
        "journaling",
        "exclusive-lock",
    )?;
    // Clones need layering; we always create clonable images.
    Ok(bits | features::LAYERING)
}

/// The image size for a capacity range: required rounded up to MiB (or exactly the limit
/// when rounding would pass it), 1 GiB when nothing is asked; OUT_OF_RANGE when impossible.
pub fn size_for(range: Option<&CapacityRange>) -> Result<u64> {
    let (req, lim) = range.map_or((0, 0), |r| (r.required_bytes, r.limit_bytes));
    if req < 0 || lim < 0 {
        return Err(Error::OutOfRange(
            "capacity bytes must not be negative".into(),
        ));
    }
    let (req, lim) = (req as u64, lim as u64);
    if lim > 0 && lim < req {
        return Err(Error::OutOfRange(format!(
            "limit_bytes {lim} is below required_bytes {req}"
        )));
    }
    let size = if req == 0 {
        if lim > 0 {
            DEFAULT_SIZE.min(lim / MIB * MIB)
        } else {
            DEFAULT_SIZE
        }
    } else {
        let up = req.div_ceil(MIB) * MIB;
        if lim > 0 && up > lim { req } else { up }
    };
    if size == 0 {
        return Err(Error::OutOfRange(format!(
            "limit_bytes {lim} is below the 1 MiB minimum"
        )));
    }
    if size > MAX_SIZE {
        return Err(Error::OutOfRange(format!(
            "{size} bytes is over the {MAX_SIZE}-byte maximum"
        )));
    }
    Ok(size)
}

/// Whether an existing size satisfies a range.
pub fn fits(size: u64, range: Option<&CapacityRange>) -> bool {
    let (req, lim) = range.map_or((0, 0), |r| {
        (r.required_bytes.max(0) as u64, r.limit_bytes.max(0) as u64)
    });
    size >= req && (lim == 0 || size <= lim)
}

/// Why a volume capability is not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    #[error("filesystem {0:?} is not supported")]
    Filesystem(String),
    #[error("capability has no access type (block or mount)")]
    NoAccessType,
    #[error("capability has no access mode")]
    NoAccessMode,
    #[error("{0} is supported for block volumes only")]
    BlockOnly(&'static str),
}

/// Why a capability is not supported, or Ok. Block: every access mode. Mount: every mode but
/// multi-node writers (a filesystem mounted read-write on two nodes corrupts).
pub fn check_capability(cap: &VolumeCapability) -> std::result::Result<(), CapabilityError> {
    use volume_capability::access_mode::Mode;
    let mode = cap
        .access_mode
        .as_ref()
        .and_then(|m| Mode::try_from(m.mode).ok())
        .unwrap_or(Mode::Unknown);
    let block = match &cap.access_type {
        Some(volume_capability::AccessType::Block(_)) => true,
        Some(volume_capability::AccessType::Mount(m)) => {
            if !matches!(m.fs_type.as_str(), "" | "ext4" | "xfs" | "btrfs") {
                return Err(CapabilityError::Filesystem(m.fs_type.clone()));
            }
            false
        }
        None => return Err(CapabilityError::NoAccessType),
    };
    match mode {
        Mode::Unknown => Err(CapabilityError::NoAccessMode),
        Mode::MultiNodeMultiWriter | Mode::MultiNodeSingleWriter if !block => {
            Err(CapabilityError::BlockOnly(mode.as_str_name()))
        }
        _ => Ok(()),
    }
}

/// Check every capability of a request (at least one required).
pub fn check_capabilities(caps: &[VolumeCapability]) -> Result<()> {
    if caps.is_empty() {
        return Err(Error::InvalidArgument(
            "volume_capabilities is required".into(),
        ));
    }
    for cap in caps {
        check_capability(cap)?;
    }
    Ok(())
}

/// A stable digest of what must match for a repeated CreateVolume to be "the same request".
pub fn fingerprint(
    params: &HashMap<String, String>,
    caps: &[VolumeCapability],
    source: &str,
) -> String {
    let mut h = Sha256::new();
    let sorted: BTreeMap<_, _> = params.iter().collect();
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let mut capv: Vec<Vec<u8>> = caps.iter().map(prost::Message::encode_to_vec).collect();
    capv.sort();
    capv.dedup();
    for c in capv {
        h.update([1]);
        h.update(&c);
    }
    h.update([2]);
    h.update(source.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
