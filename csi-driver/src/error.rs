//! The driver's one error type. Variants say what failed; causes are kept as `#[source]`.
//! The code of each variant is chosen in `error/status.rs` only ([`Error::code`], the table in
//! docs/csi-error-codes.md), the ONE place an error becomes a gRPC status. Messages must never
//! contain a secret (cephx keys): they are built from ids and names only.

use std::path::PathBuf;
use std::time::Duration;

use crate::attach::{AttachError, Broken};
use crate::mount::MountError;
use crate::params::{CapabilityError, CapacityError, ParamError};
use crate::program::ProgramError;
use crate::volume_id::NotOurs;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- the request (INVALID_ARGUMENT) ---
    /// A required request field is empty or absent.
    #[error("{field} is required")]
    Missing { field: &'static str },
    /// A staging or target path that is not absolute or climbs with `..`.
    #[error("{field} {value:?} must be an absolute path without '..'")]
    BadPath { field: &'static str, value: String },
    /// A StorageClass / volume-context parameter is refused.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A volume capability we do not support.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    /// A `topologyConstrainedPools` parameter that does not parse.
    #[error(transparent)]
    ConstrainedPools(#[from] crate::params::topology::PoolsError),
    /// A clusterID the cluster config does not name.
    #[error("clusterID {cluster:?} is not in the cluster config")]
    UnknownCluster { cluster: String },
    /// CreateVolume: the StorageClass names a pool that does not exist.
    #[error("pool {pool:?} does not exist")]
    ClassPoolNotFound { pool: String },
    /// A clone asked for in another cluster or pool than its source's.
    /// (`from`, `want`: `cluster/pool` and the RADOS namespace.)
    #[error(
        "content source is in {from}; clones must be created in the source's cluster, pool and \
         RADOS namespace ({want})"
    )]
    SourceElsewhere { from: String, want: String },
    /// The volumes of a group snapshot are not in one cluster, pool and RADOS namespace.
    #[error("the volumes of a group snapshot must be in one cluster, pool and RADOS namespace")]
    GroupAcrossPools,
    /// A group snapshot request naming a volume twice.
    #[error("source_volume_ids names a volume twice")]
    DuplicateSource,
    /// clusterID and pool leave no room for the image name in a volume id.
    #[error("clusterID and pool are too long for a volume id")]
    VolumeIdTooLong,
    /// unmapOptions with mounter=fuse, which has nothing to pass them to.
    #[error(
        "unmapOptions {options:?} apply to krbd and rbd-nbd only; mounter=fuse has nothing to \
         pass them to"
    )]
    UnmapOptionsWithFuse { options: String },
    /// NodePublish with block access of a volume staged as a filesystem, or the reverse.
    #[error("volume {volume} was staged for {staged} access")]
    StagedForOtherAccess {
        volume: String,
        staged: &'static str,
    },
    /// ListVolumes / ListSnapshots with a negative max_entries.
    #[error("max_entries must not be negative")]
    NegativeMaxEntries,
    /// `--node-id` (or the host name) is empty or longer than CSI allows.
    #[error("node id must be 1..=256 bytes (--node-id)")]
    BadNodeId,
    /// A `--list-pools` item that is not `clusterID/pool`.
    #[error("--list-pools item {item:?} is not clusterID/pool")]
    BadListPools { item: String },
    /// `--endpoint` that is not a unix socket path.
    #[error("endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        endpoint: String,
        reason: &'static str,
    },
    /// A `--topology` item that is not a segment (a start-up error).
    #[error(transparent)]
    Topology(#[from] crate::node::info::TopologyError),
    /// `--domain-labels` could not give this node's segments (a start-up error).
    #[error(transparent)]
    DomainLabels(#[from] crate::node::domain_labels::DomainLabelsError),
    /// The cluster config file is refused (a start-up error).
    #[error("cluster config {}", path.display())]
    ClusterConfig {
        path: PathBuf,
        #[source]
        source: crate::cluster_config::ConfigError,
    },

    /// An encrypted clone of a source that is not encrypted (CSI: INVALID_ARGUMENT).
    #[error(
        "the content source {image} is not encrypted; an encrypted volume cannot be cloned \
         from it"
    )]
    SourceNotEncrypted { image: String },
    /// An unencrypted clone or restore of an encrypted source: its files would be ciphertext
    /// without a key (CSI: INVALID_ARGUMENT, the source is incompatible).
    #[error(
        "the content source {image} is encrypted; a clone or restore of it must be encrypted \
         too (encrypted: \"true\", encryptionType: \"file\")"
    )]
    SourceEncrypted { image: String },
    /// `encryptionType: "block"` (LUKS; ceph-csi's default type) needs dm-crypt, which
    /// berth-csi does not ship (CSI: FAILED_PRECONDITION).
    #[error(
        "encryptionType \"block\" (LUKS) needs dm-crypt, which berth-csi does not support; use \
         encryptionType: \"file\" (fscrypt on ext4). encryptionType defaults to block, as in \
         ceph-csi"
    )]
    BlockEncryption,
    /// An encrypted volume whose image holds no wrapped key (CSI: FAILED_PRECONDITION).
    #[error(
        "volume {spec} is marked encrypted but its image holds no wrapped key (was it created \
         by berth-csi with encrypted: \"true\"?)"
    )]
    NoWrappedKey { spec: String },
    /// File encryption asked for with block access (CSI: FAILED_PRECONDITION).
    #[error("encryptionType file (fscrypt) needs a filesystem volume, not block access")]
    EncryptionNeedsFilesystem,
    /// A volume encryption key cannot be had or opened (UNAUTHENTICATED; a malformed wrapped
    /// key FAILED_PRECONDITION).
    #[error("volume encryption")]
    Key(#[from] crate::kms::KeyError),

    // --- secrets (UNAUTHENTICATED) ---
    /// The request's secrets lack userID or userKey.
    #[error("secrets must contain userID and userKey")]
    SecretsMissing,
    /// A secret value that cannot be a cephx user or key.
    #[error("secret {key} is malformed")]
    SecretMalformed { key: &'static str },
    /// cephx refused the user or key.
    #[error("ceph at {mon_host} rejected the credentials of client.{user}")]
    CredentialsRejected { mon_host: String, user: String },
    /// librados refused the configuration made from the secrets.
    #[error("ceph refused the configuration for client.{user} (malformed key?)")]
    ConfigRefused { user: String },

    // --- nothing there (NOT_FOUND) ---
    /// A pool of a volume or snapshot ID does not exist.
    #[error("pool {pool:?} does not exist")]
    PoolNotFound { pool: String },
    /// A volume ID that names no volume of ours.
    #[error("volume {id:?} does not exist")]
    VolumeNotFound { id: String },
    /// A volume ID this driver could not have issued (node RPCs).
    #[error(transparent)]
    NotOurs(#[from] NotOurs),
    /// CreateVolume's source volume does not exist.
    #[error("source volume {id:?} does not exist")]
    SourceVolumeNotFound { id: String },
    /// CreateVolume's source snapshot does not exist.
    #[error("source snapshot {id:?} does not exist")]
    SourceSnapshotNotFound { id: String },
    /// Volume IDs whose clusterID the cluster config does not name (so the volumes are not
    /// there).
    #[error("clusterID {cluster:?} is not in the cluster config")]
    VolumeClusterUnknown { cluster: String },
    /// A group snapshot ID that names no group snapshot of ours.
    #[error("group snapshot {id:?} does not exist")]
    GroupSnapshotNotFound { id: String },
    /// A snapshot ID that names no snapshot of ours.
    #[error("snapshot {id:?} does not exist")]
    SnapshotNotFound { id: String },
    /// ControllerPublish to a node that cannot exist (too long a name).
    #[error("node {node:?} does not exist")]
    NodeNotFound { node: String },
    /// ControllerPublish in `--mode all` to a node other than this plugin's own.
    #[error("node {node:?} does not exist (this plugin serves node {own:?} only)")]
    NotThisNode { node: String, own: String },
    /// The image of a volume being staged does not exist (`spec`: pool[/namespace]/image).
    #[error("image {spec} does not exist")]
    ImageNotFound { spec: String },
    /// NodeGetVolumeStats / NodeExpand of a volume not staged here.
    #[error("volume {volume} is not staged on this node")]
    NotStaged { volume: String },
    /// NodeGetVolumeStats / NodeExpand at a path that is not the volume's.
    #[error("volume {volume} is not staged or published at {}", path.display())]
    NotAtPath { volume: String, path: PathBuf },

    // --- same name, other request (ALREADY_EXISTS) ---
    /// The staging path holds another volume.
    #[error("staging path {} already holds volume {volume}", path.display())]
    StagingPathTaken { path: PathBuf, volume: String },
    /// The volume is staged at this path with another capability.
    #[error(
        "volume {volume} is already staged at {} with a different volume capability",
        path.display()
    )]
    StagedDifferently { volume: String, path: PathBuf },
    /// The target holds this volume published with other arguments.
    #[error(
        "{} is already published for volume {volume} with different arguments",
        target.display()
    )]
    PublishedDifferently { target: PathBuf, volume: String },
    /// The target has something else mounted.
    #[error("{} already has something else mounted", target.display())]
    TargetBusy { target: PathBuf },
    /// CreateVolume of an existing name with another size, capability, parameters or source.
    #[error("volume {name:?} exists with a different size, capabilities, parameters or source")]
    VolumeExists { name: String },
    /// ControllerPublish to a node that holds the volume in another way (`how`: mode,
    /// read-only flag and access type).
    #[error("the volume is already published to node {node:?} as {how}; unpublish it first")]
    PublishedAs { node: String, how: String },
    /// CreateVolumeGroupSnapshot of an existing name for other source volumes.
    #[error("group snapshot {name:?} exists for other source volumes")]
    GroupSnapshotExists { name: String },
    /// CreateSnapshot of an existing name for another source volume.
    #[error("snapshot {name:?} exists for another source volume")]
    SnapshotExists { name: String },

    // --- retry later (ABORTED) ---
    /// Another operation on the same volume or name is in flight.
    #[error("an operation on {key} is already in progress; retry later")]
    OperationPending { key: String },
    /// Another call reserved the same name in the journal meanwhile.
    #[error("{name:?} was reserved by another call meanwhile; retry later")]
    NameRaced { name: String },
    /// The publish record kept changing under our compare-and-swap writes.
    #[error(
        "an operation on the publish record of {image} (other controllers keep changing it) is \
         already in progress; retry later"
    )]
    PublishRecordContended { image: String },
    /// The new clone is being flattened in the background: the CO retries the same name and
    /// gets the volume once the flatten is done.
    #[error(
        "clone {image} is being flattened (its chain of parents is deeper than the kernel \
         maps): {progress}; retry later"
    )]
    FlattenPending { image: String, progress: String },
    /// A pagination token we did not issue.
    #[error("starting_token {token:?} was not issued by this driver")]
    BadToken { token: String },

    // --- the state forbids it (FAILED_PRECONDITION) ---
    /// The volume is staged at another path on this node.
    #[error("volume {volume} is already staged at {} on this node", path.display())]
    StagedElsewhere { volume: String, path: PathBuf },
    /// A blank volume staged reader-only (never formatted).
    #[error(
        "volume {image} holds no filesystem, and a reader-only volume is never formatted: stage \
         it once with a writer access mode first"
    )]
    BlankReaderOnly { image: String },
    /// The image is marked formatted but its device shows no filesystem (never mkfs).
    #[error(
        "image {image} is marked formatted as {fs} (image metadata {key}), but no filesystem was \
         found on {}; refusing to format it. Restore the filesystem, or remove the mark (rbd \
         image-meta remove {image} {key}) to have it formatted anew",
        device.display()
    )]
    MarkedButEmpty {
        image: String,
        fs: String,
        key: &'static str,
        device: PathBuf,
    },
    /// NodeUnstage while the volume is still published at `targets`.
    #[error("volume {volume} is still published at {targets}; unpublish it first")]
    StillPublished { volume: String, targets: String },
    /// NodePublish of a volume not staged at the staging path.
    #[error(
        "volume {volume} is not staged at {}: call NodeStageVolume first",
        staging.display()
    )]
    NotStagedAt { volume: String, staging: PathBuf },
    /// A SINGLE_NODE_SINGLE_WRITER volume already published at another target.
    #[error(
        "volume {volume} is SINGLE_NODE_SINGLE_WRITER and already published at {}",
        target.display()
    )]
    SingleWriterPublished { volume: String, target: PathBuf },
    /// Node fence: another client has a single-node volume's image open.
    #[error(
        "image {spec} is open by another client ({watchers} holds a watch on it): a {mode} \
         volume is staged on one node at a time; unstage it there first. If that client is gone \
         (a crashed rbd-fuse or node), its watch lingers until the OSD times it out (about 30 \
         s): retry after that"
    )]
    OpenElsewhere {
        spec: String,
        watchers: String,
        mode: &'static str,
    },
    /// NodeExpand of a volume whose staging is not complete.
    #[error("volume {volume} is not fully staged")]
    NotFullyStaged { volume: String },
    /// NodeExpand of a reader-only staging (read-only device and mount).
    #[error(
        "volume {volume} is staged reader-only (read-only device and mount): it is never grown \
         here; expand it from a writer"
    )]
    ReaderOnlyNotGrown { volume: String },
    /// Recovery: the client files of a stash are gone.
    #[error("client files in {} are gone", dir.display())]
    ClientFilesGone { dir: PathBuf },
    /// Recovery: a re-attached device holds something other than the staged filesystem.
    #[error(
        "after re-attach {} holds {found}, not the {fs} filesystem staged before; not \
         formatting it",
        device.display()
    )]
    ReattachedOther {
        device: PathBuf,
        found: String,
        fs: String,
    },
    /// A stash directory still has a mount inside.
    #[error("{} still has a mount inside; not removing it", dir.display())]
    MountInside { dir: PathBuf },
    /// Another live process serves the CSI socket.
    #[error("another process is serving on {}", path.display())]
    SocketInUse { path: PathBuf },
    /// ControllerPublish while a single-node holder (or a single-node request) meets other
    /// nodes (`holders`: names and modes).
    #[error(
        "the volume is published to node {holders} with a single-node access mode; a \
         single-node volume is on one node at a time (unpublish it there first)"
    )]
    HeldBySingleNode { holders: String },
    /// ControllerPublish of a second MULTI_NODE_SINGLE_WRITER writer.
    #[error("MULTI_NODE_SINGLE_WRITER: node {holders} already writes this volume")]
    SingleWriterTaken { holders: String },
    /// DeleteVolume of a volume still published to nodes.
    #[error("volume {image} is still published to node(s) {nodes:?}; ControllerUnpublish first")]
    DeletePublished { image: String, nodes: Vec<String> },
    /// DeleteSnapshot of a member of a group snapshot.
    #[error(
        "snapshot {snapshot} belongs to a volume group snapshot (group id {group}): \
         DeleteVolumeGroupSnapshot deletes it"
    )]
    SnapshotInGroup { snapshot: String, group: String },
    /// DeleteVolume of an image with watchers (still attached on a node).
    #[error("volume {image} is in use (the image has watchers: still attached on a node?)")]
    ImageInUse { image: String },
    /// librados/librbd cannot be loaded on this host (nothing changes until the library is
    /// installed; the message names it).
    #[error("the controller needs the Ceph client libraries")]
    CephLibrary(#[source] crate::ceph::ffi::LoadError),
    /// A staged volume's recorded device is not usable or not this volume's (the node
    /// plugin's watch re-attaches it, or unstage and stage).
    #[error("volume {volume}: its device cannot be used now")]
    DeviceBroken {
        volume: String,
        #[source]
        cause: Box<Broken>,
    },

    // --- a capacity we cannot provide (OUT_OF_RANGE) ---
    #[error(transparent)]
    Capacity(#[from] CapacityError),

    // --- not now (UNAVAILABLE) ---
    /// The device looks empty but the image's format mark could not be read (never mkfs).
    #[error(
        "{} looks empty, but the format mark of image {image} could not be read; not formatting \
         it",
        device.display()
    )]
    FormatMarkUnreadable {
        device: PathBuf,
        image: String,
        #[source]
        source: Box<AttachError>,
    },
    /// Node fence: the image's watchers could not be read (fails closed).
    #[error("cannot tell whether another client has {spec} open; not staging it")]
    WatchersUnknown {
        spec: String,
        #[source]
        source: Box<ProgramError>,
    },
    /// The driver is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The cluster could not be reached.
    #[error("connect to ceph at {mon_host}: {}", std::io::Error::from_raw_os_error(*errno))]
    CephUnreachable { mon_host: String, errno: i32 },

    // --- a bounded wait ran out (DEADLINE_EXCEEDED) ---
    /// Connecting to the cluster took longer than `after`.
    #[error("connect to ceph at {mon_host}: no answer within {after:?}")]
    ConnectTimeout { mon_host: String, after: Duration },
    /// A Ceph call took longer than `after` (`--ceph-call-deadline-ms`).
    #[error("ceph did not answer within {after:?}")]
    CallTimeout { after: Duration },

    // --- not here (UNIMPLEMENTED) ---
    /// An RPC this driver does not implement.
    #[error("{rpc} is not supported by berth-csi")]
    Unsupported { rpc: &'static str },

    // --- the code follows what failed ---
    /// A librados/librbd call failed with `errno` (positive); the code follows the errno
    /// (see [`ceph_code`]). `context` names the operation and object, never a secret.
    #[error("{context}: {}", std::io::Error::from_raw_os_error(*errno))]
    Ceph { context: String, errno: i32 },
    /// Attaching or detaching an image failed.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// A filesystem or mount operation failed or was refused.
    #[error(transparent)]
    Mount(#[from] MountError),

    // --- our own fault (INTERNAL) ---
    /// A local system call failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// mkfs succeeded but the format mark could not be written.
    #[error("made {fs} on {} but could not mark image {image} as formatted", device.display())]
    MarkFailed {
        fs: String,
        device: PathBuf,
        image: String,
        #[source]
        source: Box<AttachError>,
    },
    /// A complete stash without a device.
    #[error("volume {volume} has no device")]
    NoDevice { volume: String },
    /// A stash names no image (its volume id does not decode, no static image recorded).
    #[error("stash of {volume} names no image")]
    StashVolumeId { volume: String },
    /// A stash could not be encoded.
    #[error("encode stash")]
    StashEncode(#[source] serde_json::Error),
    /// A stash file could not be decoded.
    #[error("stash {}", path.display())]
    StashCorrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A stash file of another format version.
    #[error("stash {}: version {version} is not {want}", path.display())]
    StashVersion {
        path: PathBuf,
        version: u32,
        want: u32,
    },
    /// A journal entry that does not decode.
    #[error("journal entry {key:?} is corrupt")]
    JournalCorrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// `rbd status` printed something we cannot read.
    #[error("unexpected `rbd status` output")]
    StatusOutput(#[source] serde_json::Error),
    /// An id we made (`what`: snapshot, group snapshot) is too long to hand out.
    #[error("{what} id too long")]
    IdTooLong { what: &'static str },
    /// A group snapshot member's source image lacks the group's snapshot.
    #[error("{image} has no snapshot of group {group}")]
    GroupSnapshotMissing { image: String, group: String },
    /// No pool of `topologyConstrainedPools` fits the request's topologies.
    #[error(
        "no pool of topologyConstrainedPools fits the requested topologies (preferred \
         {preferred}, requisite {requisite})"
    )]
    NoPoolFits {
        preferred: String,
        requisite: String,
    },
    /// A blocking task panicked or was cancelled (`what`: node, ceph, connect).
    #[error("{what} task failed")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// The gRPC server failed.
    #[error("gRPC server")]
    Serve(#[source] tonic::transport::Error),
}

mod status;
pub use status::ceph_code;

#[cfg(test)]
mod tests;
