//! The ONE place an [`Error`] becomes a gRPC status: its code (the table in
//! docs/csi-error-codes.md) and its message (the error with its causes).

use tonic::{Code, Status};

use super::Error;
use crate::attach::AttachError;
use crate::mount::MountError;
use crate::program::ProgramError;

/// The gRPC code of a Ceph errno, where the errno alone says what happened.
pub fn ceph_code(errno: i32) -> Code {
    match errno {
        libc::ENOENT => Code::NotFound,
        libc::EEXIST => Code::AlreadyExists,
        // cephx refused the key (connect) or the caps forbid the operation.
        libc::EACCES | libc::EPERM => Code::PermissionDenied,
        libc::ETIMEDOUT => Code::DeadlineExceeded,
        libc::ENOTCONN | libc::ESHUTDOWN | libc::ECONNREFUSED | libc::EHOSTUNREACH => {
            Code::Unavailable
        }
        libc::ENOSPC | libc::EDQUOT => Code::ResourceExhausted,
        libc::EBUSY | libc::ENOTEMPTY | libc::EMLINK => Code::FailedPrecondition,
        libc::EINVAL => Code::InvalidArgument,
        _ => Code::Internal,
    }
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The gRPC code this error maps to (the table in docs/csi-error-codes.md). The only
    /// place a code is chosen: [`From<Error> for Status`](Status) calls it.
    pub fn code(&self) -> Code {
        use Error as E;
        match self {
            E::Missing { .. }
            | E::BadPath { .. }
            | E::Param(_)
            | E::Capability(_)
            | E::ConstrainedPools(_)
            | E::UnknownCluster { .. }
            | E::ClassPoolNotFound { .. }
            | E::SourceElsewhere { .. }
            | E::VolumeIdTooLong
            | E::GroupAcrossPools
            | E::DuplicateSource
            | E::UnmapOptionsWithFuse { .. }
            | E::StagedForOtherAccess { .. }
            | E::NegativeMaxEntries
            | E::BadNodeId
            | E::BadListPools { .. }
            | E::BadEndpoint { .. }
            | E::Topology(_)
            | E::DomainLabels(_)
            | E::ClusterConfig { .. }
            | E::SourceNotEncrypted { .. }
            | E::SourceEncrypted { .. } => Code::InvalidArgument,
            E::Key(crate::kms::KeyError::Malformed { .. }) => Code::FailedPrecondition,
            E::Key(_) => Code::Unauthenticated,
            E::SecretsMissing
            | E::SecretMalformed { .. }
            | E::CredentialsRejected { .. }
            | E::ConfigRefused { .. } => Code::Unauthenticated,
            E::PoolNotFound { .. }
            | E::VolumeNotFound { .. }
            | E::NotOurs(_)
            | E::SourceVolumeNotFound { .. }
            | E::SourceSnapshotNotFound { .. }
            | E::SnapshotNotFound { .. }
            | E::VolumeClusterUnknown { .. }
            | E::GroupSnapshotNotFound { .. }
            | E::NodeNotFound { .. }
            | E::NotThisNode { .. }
            | E::ImageNotFound { .. }
            | E::NotStaged { .. }
            | E::NotAtPath { .. } => Code::NotFound,
            E::StagingPathTaken { .. }
            | E::StagedDifferently { .. }
            | E::PublishedDifferently { .. }
            | E::TargetBusy { .. }
            | E::VolumeExists { .. }
            | E::PublishedAs { .. }
            | E::SnapshotExists { .. }
            | E::GroupSnapshotExists { .. } => Code::AlreadyExists,
            E::OperationPending { .. }
            | E::NameRaced { .. }
            | E::PublishRecordContended { .. }
            | E::FlattenPending { .. }
            | E::BadToken { .. } => Code::Aborted,
            E::StagedElsewhere { .. }
            | E::BlankReaderOnly { .. }
            | E::MarkedButEmpty { .. }
            | E::StillPublished { .. }
            | E::NotStagedAt { .. }
            | E::SingleWriterPublished { .. }
            | E::OpenElsewhere { .. }
            | E::NotFullyStaged { .. }
            | E::ReaderOnlyNotGrown { .. }
            | E::ClientFilesGone { .. }
            | E::ReattachedOther { .. }
            | E::MountInside { .. }
            | E::SocketInUse { .. }
            | E::HeldBySingleNode { .. }
            | E::SingleWriterTaken { .. }
            | E::DeletePublished { .. }
            | E::ImageInUse { .. }
            | E::SnapshotInGroup { .. }
            | E::BlockEncryption
            | E::NoWrappedKey { .. }
            | E::EncryptionNeedsFilesystem
            | E::CephLibrary(_)
            | E::DeviceBroken { .. } => Code::FailedPrecondition,
            E::Capacity(_) => Code::OutOfRange,
            E::NoPoolFits { .. } => Code::ResourceExhausted,
            E::FormatMarkUnreadable { .. }
            | E::WatchersUnknown { .. }
            | E::ShuttingDown
            | E::CephUnreachable { .. } => Code::Unavailable,
            E::ConnectTimeout { .. } | E::CallTimeout { .. } => Code::DeadlineExceeded,
            E::Unsupported { .. } => Code::Unimplemented,
            E::Ceph { errno, .. } => ceph_code(*errno),
            E::Attach(e) => attach_code(e),
            E::Mount(e) => mount_code(e),
            E::Io { .. }
            | E::MarkFailed { .. }
            | E::NoDevice { .. }
            | E::StashVolumeId { .. }
            | E::StashEncode(_)
            | E::StashCorrupt { .. }
            | E::StashVersion { .. }
            | E::JournalCorrupt { .. }
            | E::StatusOutput(_)
            | E::IdTooLong { .. }
            | E::GroupSnapshotMissing { .. }
            | E::Task { .. }
            | E::Serve(_) => Code::Internal,
        }
    }
}

/// The code of an attach failure: what the host lacks or the request cannot have is
/// FAILED_PRECONDITION, a missing image NOT_FOUND, a program past its time DEADLINE_EXCEEDED.
fn attach_code(e: &AttachError) -> Code {
    match e {
        AttachError::NoKernelModule { .. }
        | AttachError::UnsupportedFeatures { .. }
        | AttachError::NoDevFuse
        | AttachError::Program(ProgramError::Missing { .. }) => Code::FailedPrecondition,
        AttachError::ImageNotFound { .. } => Code::NotFound,
        AttachError::Program(ProgramError::Timeout { .. }) => Code::DeadlineExceeded,
        AttachError::Program(_)
        | AttachError::FuseExited { .. }
        | AttachError::FuseNotReady { .. }
        | AttachError::NoFuseMount { .. }
        | AttachError::FuseUnmount(_)
        | AttachError::MetaOutput { .. }
        | AttachError::LookupPanicked
        | AttachError::Io { .. } => Code::Internal,
    }
}

/// The code of a mount failure: a request asking for what is not allowed is
/// INVALID_ARGUMENT; a device we refuse to format or grow is FAILED_PRECONDITION.
fn mount_code(e: &MountError) -> Code {
    match e {
        MountError::FsType { .. }
        | MountError::MkfsOption { .. }
        | MountError::MountOption { .. }
        | MountError::CannotGrow { .. }
        | MountError::Dumpe2fsOutput { .. } => Code::InvalidArgument,
        MountError::ForeignFilesystem { .. }
        | MountError::NotAFilesystem { .. }
        | MountError::SymlinkTarget { .. }
        | MountError::GrowRefused { .. }
        | MountError::Program(ProgramError::Missing { .. }) => Code::FailedPrecondition,
        MountError::Program(ProgramError::Timeout { .. }) => Code::DeadlineExceeded,
        MountError::Sys { .. }
        | MountError::Io { .. }
        | MountError::Program(_)
        | MountError::Unreadable { .. } => Code::Internal,
    }
}

impl Error {
    /// The error with its causes ("a: b: c"): the status message, and what logs print.
    pub fn chain(&self) -> String {
        use std::error::Error as _;
        let mut msg = self.to_string();
        let mut cur = self.source();
        while let Some(cause) = cur {
            msg.push_str(": ");
            msg.push_str(&cause.to_string());
            cur = cause.source();
        }
        msg
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        Status::new(err.code(), err.chain())
    }
}
