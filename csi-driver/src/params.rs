//! StorageClass parameters -> typed volume config, capacity ranges -> image sizes, and the
//! volume capabilities this driver supports. Pure: no Ceph, no gRPC services.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::ceph::ffi::features;
use crate::csi::{CapacityRange, VolumeCapability, volume_capability};
use crate::error::{Error, Result};

mod error;
pub use error::{CapabilityError, CapacityError, ParamError};
pub mod topology;

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
    "encrypted",
    "encryptionType",
];

/// How a volume is encrypted at rest (`encrypted` + `encryptionType`, ceph-csi's keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    #[default]
    None,
    /// fscrypt v2 on ext4: a per-volume key wrapped in the image metadata ([`crate::kms`]).
    File,
}

/// `encrypted` / `encryptionType` -> [`Encryption`]. `encryptionType` defaults to `block`, as
/// in ceph-csi; block (LUKS) needs dm-crypt, which berth-csi does not ship: FAILED_PRECONDITION.
pub fn encryption(params: &HashMap<String, String>) -> Result<Encryption> {
    let get = |k: &str| params.get(k).map(|s| s.trim());
    match get("encrypted") {
        None | Some("" | "false") => return Ok(Encryption::None),
        Some("true") => {}
        Some(v) => return Err(ParamError::Encrypted { value: v.into() }.into()),
    }
    match get("encryptionType").unwrap_or("block") {
        "file" => Ok(Encryption::File),
        "block" => Err(Error::BlockEncryption),
        v => Err(ParamError::EncryptionType { value: v.into() }.into()),
    }
}

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
    /// `topologyConstrainedPools` (empty: none); then `pool` may be empty.
    pub topology_pools: Vec<topology::ConstrainedPool>,
    /// Node-side keys, passed through in volume_context.
    pub node: BTreeMap<String, String>,
    /// Encryption at rest.
    pub encryption: Encryption,
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
                    | topology::KEY
            ) || NODE_KEYS.contains(&key.as_str())
                || key.starts_with("csi.storage.k8s.io/");
            if !known {
                return Err(ParamError::Unknown { key: key.clone() }.into());
            }
        }
        let get = |k: &str| params.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let cluster_id = get("clusterID").ok_or(ParamError::Missing { key: "clusterID" })?;
        let topology_pools = match get(topology::KEY) {
            Some(json) => topology::parse(json)?,
            None => Vec::new(),
        };
        // With topologyConstrainedPools, `pool` is for requests without a topology.
        let pool = match get("pool") {
            Some(pool) => {
                check_name("pool", pool)?;
                pool
            }
            None if !topology_pools.is_empty() => "",
            None => return Err(ParamError::Missing { key: "pool" }.into()),
        };
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
        let encryption = encryption(params)?;
        if encryption == Encryption::File
            && get("csi.storage.k8s.io/fstype").is_some_and(|f| f != "ext4")
        {
            return Err(ParamError::EncryptionFs.into());
        }
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
            topology_pools,
            node,
            encryption,
        })
    }

    /// The volume_context handed to the node service with the volume: image `image` in RADOS
    /// namespace `ns` ("" is the default one).
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

fn check_name(what: &'static str, v: &str) -> Result<()> {
    let ok = v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ParamError::BadName {
            key: what,
            value: v.to_string(),
        }
        .into())
    }
}

fn check_prefix(what: &'static str, v: &str) -> Result<()> {
    if v.len() > 24 {
        return Err(ParamError::PrefixTooLong { key: what }.into());
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
                return Err(ParamError::UnknownFeature {
                    feature: other.to_string(),
                }
                .into());
            }
        };
    }
    let needs = |bit: u64, dep: u64, feature: &'static str, needs: &'static str| {
        if bits & bit != 0 && bits & dep == 0 {
            Err(ParamError::FeatureNeeds { feature, needs })
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
        return Err(CapacityError::Negative.into());
    }
    let (req, lim) = (req as u64, lim as u64);
    if lim > 0 && lim < req {
        return Err(CapacityError::LimitBelowRequired {
            limit: lim,
            required: req,
        }
        .into());
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
        return Err(CapacityError::LimitBelowMinimum { limit: lim }.into());
    }
    if size > MAX_SIZE {
        return Err(CapacityError::OverMaximum {
            size,
            max: MAX_SIZE,
        }
        .into());
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
        return Err(Error::Missing {
            field: "volume_capabilities",
        });
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
