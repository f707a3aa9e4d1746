//! Why parameters, capacity ranges or capabilities are refused (their gRPC codes are chosen
//! in crate::error: INVALID_ARGUMENT, OUT_OF_RANGE, INVALID_ARGUMENT).

/// A StorageClass / volume-context parameter that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error(
        "unknown parameter {key:?} (known: clusterID, pool, dataPool, imageFeatures, \
         volumeNamePrefix, snapshotNamePrefix, topologyConstrainedPools, mkfsOptions, mounter, \
         mapOptions, unmapOptions, encrypted, encryptionType, csi.storage.k8s.io/fstype)"
    )]
    Unknown { key: String },
    #[error("parameter {key} is required")]
    Missing { key: &'static str },
    #[error("parameter {key} {value:?} is not a valid name")]
    BadName { key: &'static str, value: String },
    #[error("{key} is longer than 24 bytes")]
    PrefixTooLong { key: &'static str },
    #[error("snapshotNamePrefix {prefix:?} is not a valid name prefix")]
    SnapshotPrefix { prefix: String },
    #[error(
        "imageFeatures: unknown feature {feature:?} (known: layering, exclusive-lock, \
         object-map, fast-diff, deep-flatten, journaling)"
    )]
    UnknownFeature { feature: String },
    #[error("imageFeatures: {feature} requires {needs}")]
    FeatureNeeds {
        feature: &'static str,
        needs: &'static str,
    },
    #[error("parameter encrypted {value:?} is not \"true\" or \"false\"")]
    Encrypted { value: String },
    #[error("parameter encryptionType {value:?} is not \"file\" or \"block\"")]
    EncryptionType { value: String },
    /// fscrypt here is made by `mkfs.ext4 -O encrypt`.
    #[error("encryptionType file (fscrypt) is supported on ext4 only")]
    EncryptionFs,
    #[error("mounter {value:?} is not one of krbd, rbd-nbd, fuse, auto")]
    Mounter { value: String },
    #[error("{key} {value:?} may contain only letters, digits and =,._:-")]
    Options { key: &'static str, value: String },
    /// A mutable parameter (VolumeAttributesClass) that is not a QoS limit.
    #[error(
        "mutable parameter {key:?} is not supported (supported: {})",
        crate::controller::QOS_KEYS.join(", ")
    )]
    UnknownMutable { key: String },
    /// A QoS limit that is not a non-negative integer.
    #[error("mutable parameter {key}: {value:?} is not a non-negative integer")]
    BadLimit { key: String, value: String },
    /// A static volume's volumeAttributes without a clusterID.
    #[error("static volume {handle:?}: volumeAttributes need a clusterID")]
    StaticNoCluster { handle: String },
    /// A static volume's pool, imageName or radosNamespace that is not an RBD name.
    #[error("static volume {handle:?}: {key} {value:?} is not a legal RBD name")]
    StaticBadName {
        handle: String,
        key: &'static str,
        value: String,
    },
}

/// A capacity range, or a size against one, that cannot be met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    #[error("capacity bytes must not be negative")]
    Negative,
    #[error("limit_bytes {limit} is below required_bytes {required}")]
    LimitBelowRequired { limit: u64, required: u64 },
    #[error("limit_bytes {limit} is below the 1 MiB minimum")]
    LimitBelowMinimum { limit: u64 },
    #[error("{size} bytes is over the {max}-byte maximum")]
    OverMaximum { size: u64, max: u64 },
    /// A clone cannot be smaller than its source.
    #[error("the source holds {source_size} bytes, over limit_bytes {limit}")]
    SourceTooLarge { source_size: u64, limit: u64 },
    /// ControllerExpand never shrinks.
    #[error("volume is already {size} bytes, over limit_bytes {limit}; shrinking is not supported")]
    WouldShrink { size: u64, limit: u64 },
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
    #[error("volume_mount_group is not supported by this driver")]
    MountGroup,
}
