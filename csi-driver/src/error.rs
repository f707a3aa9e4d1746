//! The driver's one error type, and the ONE place an error becomes a gRPC status.
//!
//! Variants are named after what failed; causes are kept as `#[source]`. Messages must never
//! contain a secret (cephx keys): callers build them from ids and names only.

use tonic::{Code, Status};

use crate::attach::{AttachError, Broken};
use crate::mount::MountError;
use crate::program::ProgramError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required field is missing or malformed (CSI: INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidArgument(String),
    /// Secrets missing or rejected by the cluster (CSI: UNAUTHENTICATED).
    #[error("{0}")]
    Unauthenticated(String),
    /// The volume, snapshot or source does not exist (CSI: NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// A pool of a request or of a volume ID does not exist (CSI: NOT_FOUND; CreateVolume
    /// answers INVALID_ARGUMENT, the StorageClass names it).
    #[error("pool {pool:?} does not exist")]
    PoolNotFound { pool: String },
    /// Same name, incompatible request (CSI: ALREADY_EXISTS).
    #[error("{0}")]
    AlreadyExists(String),
    /// Another operation on the same volume/name is in flight (CSI: ABORTED).
    #[error("an operation on {0} is already in progress; retry later")]
    OperationPending(String),
    /// The new clone is being flattened in the background (CSI: ABORTED: the CO retries the
    /// same name and gets the volume once the flatten is done).
    #[error(
        "clone {image} is being flattened (its chain of parents is deeper than the kernel \
         maps): {progress}; retry later"
    )]
    FlattenPending { image: String, progress: String },
    /// A pagination token we did not issue (CSI: ABORTED).
    #[error("{0}")]
    BadToken(String),
    /// The object is in a state that forbids the call (CSI: FAILED_PRECONDITION).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Capacity out of what we can provide (CSI: OUT_OF_RANGE).
    #[error("{0}")]
    OutOfRange(String),
    /// Out of space or topology cannot be satisfied (CSI: RESOURCE_EXHAUSTED).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The cluster cannot be reached now (CSI: UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
    /// A bounded wait ran out (CSI: DEADLINE_EXCEEDED).
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The RPC or feature is not implemented by this driver/mode (CSI: UNIMPLEMENTED).
    #[error("{0}")]
    Unimplemented(String),
    /// A local system call or program failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A librados/librbd call failed with `errno` (positive); the code follows the errno
    /// (see [`ceph_code`]). `context` names the operation and object, never a secret.
    #[error("{context}: {}", std::io::Error::from_raw_os_error(*errno))]
    Ceph { context: String, errno: i32 },
    /// librados/librbd cannot be loaded on this host (CSI: FAILED_PRECONDITION: nothing
    /// changes until the library is installed; the message names it).
    #[error("the controller needs the Ceph client libraries")]
    CephLibrary(#[source] crate::ceph::ffi::LoadError),
    /// Attaching or detaching an image failed (the code follows what failed).
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// A filesystem or mount operation failed or was refused (the code follows what failed).
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A staged volume's recorded device is not usable or not this volume's (CSI:
    /// FAILED_PRECONDITION: the node plugin's watch re-attaches it, or unstage and stage).
    #[error("volume {volume}: its device cannot be used now")]
    DeviceBroken {
        volume: String,
        #[source]
        cause: Box<Broken>,
    },
    /// A blocking node task panicked or was cancelled (CSI: INTERNAL).
    #[error("node task failed")]
    Task(#[source] tokio::task::JoinError),
    /// A volume capability we do not support (CSI: INVALID_ARGUMENT).
    #[error(transparent)]
    Capability(#[from] crate::params::CapabilityError),
    /// A `--topology` item that is not a segment (a start-up error).
    #[error(transparent)]
    Topology(#[from] crate::node::info::TopologyError),
    /// The cluster config file is refused (a start-up error).
    #[error("cluster config {}", path.display())]
    ClusterConfig {
        path: std::path::PathBuf,
        #[source]
        source: crate::cluster_config::ConfigError,
    },
    /// Anything else that is our fault (CSI: INTERNAL).
    #[error("{0}")]
    Internal(String),
}

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

    /// The gRPC code this error maps to (the table in docs/csi-error-codes.md).
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::NotFound(_) | Error::PoolNotFound { .. } => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::OperationPending(_) | Error::BadToken(_) | Error::FlattenPending { .. } => {
                Code::Aborted
            }
            Error::FailedPrecondition(_) | Error::CephLibrary(_) => Code::FailedPrecondition,
            Error::OutOfRange(_) => Code::OutOfRange,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Ceph { errno, .. } => ceph_code(*errno),
            Error::Attach(e) => attach_code(e),
            Error::Mount(e) => mount_code(e),
            Error::DeviceBroken { .. } => Code::FailedPrecondition,
            Error::Capability(_) | Error::Topology(_) | Error::ClusterConfig { .. } => {
                Code::InvalidArgument
            }
            Error::Io { .. } | Error::Task(_) | Error::Internal(_) => Code::Internal,
        }
    }
}

/// The code of an attach failure: what the host lacks or the request cannot have is
/// FAILED_PRECONDITION, a missing image NOT_FOUND, a program past its time DEADLINE_EXCEEDED.
fn attach_code(e: &AttachError) -> Code {
    match e {
        AttachError::NoKernelModule { .. }
        | AttachError::UnsupportedFeatures { .. }
        | AttachError::Unsupported(_)
        | AttachError::Program(ProgramError::Missing { .. }) => Code::FailedPrecondition,
        AttachError::ImageNotFound { .. } => Code::NotFound,
        AttachError::Program(ProgramError::Timeout { .. }) => Code::DeadlineExceeded,
        AttachError::Program(_) | AttachError::Failed(_) | AttachError::Io { .. } => Code::Internal,
    }
}

/// The code of a mount failure: a request asking for what is not allowed is
/// INVALID_ARGUMENT; a device we refuse to format or grow is FAILED_PRECONDITION.
fn mount_code(e: &MountError) -> Code {
    match e {
        MountError::Invalid(_) => Code::InvalidArgument,
        MountError::Refused(_)
        | MountError::GrowRefused(_)
        | MountError::Program(ProgramError::Missing { .. }) => Code::FailedPrecondition,
        MountError::Program(ProgramError::Timeout { .. }) => Code::DeadlineExceeded,
        MountError::Sys { .. }
        | MountError::Io { .. }
        | MountError::Program(_)
        | MountError::Unreadable { .. } => Code::Internal,
    }
}

/// Render the error with its causes ("a: b: c"), as the status message.
fn chain(err: &Error) -> String {
    use std::error::Error as _;
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        cur = cause.source();
    }
    msg
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        Status::new(err.code(), chain(&err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec_table() {
        let cases = [
            (Error::InvalidArgument("x".into()), Code::InvalidArgument),
            (Error::OperationPending("vol".into()), Code::Aborted),
            (Error::BadToken("t".into()), Code::Aborted),
            (Error::NotFound("x".into()), Code::NotFound),
            (Error::OutOfRange("x".into()), Code::OutOfRange),
            (Error::Internal("x".into()), Code::Internal),
            (
                Error::Ceph {
                    context: "connect".into(),
                    errno: libc::ETIMEDOUT,
                },
                Code::DeadlineExceeded,
            ),
            (
                Error::Ceph {
                    context: "open".into(),
                    errno: libc::ENOENT,
                },
                Code::NotFound,
            ),
            (
                Error::Ceph {
                    context: "remove".into(),
                    errno: libc::EBUSY,
                },
                Code::FailedPrecondition,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }

    #[test]
    fn node_errors_keep_their_cause_and_get_their_code_here() {
        let cases = [
            (
                Error::from(MountError::Invalid("fs".into())),
                Code::InvalidArgument,
            ),
            (
                Error::from(MountError::Refused("lvm".into())),
                Code::FailedPrecondition,
            ),
            (
                Error::from(AttachError::ImageNotFound {
                    pool: "rbd".into(),
                    image: "x".into(),
                }),
                Code::NotFound,
            ),
            (
                Error::from(AttachError::NoKernelModule { module: "rbd" }),
                Code::FailedPrecondition,
            ),
            (
                Error::DeviceBroken {
                    volume: "v".into(),
                    cause: Box::new(Broken::NoFuseRecord),
                },
                Code::FailedPrecondition,
            ),
            (
                Error::from(crate::params::CapabilityError::NoAccessMode),
                Code::InvalidArgument,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
        // The cause is a source, and the status message carries it after the context.
        let err = Error::DeviceBroken {
            volume: "vol-1".into(),
            cause: Box::new(Broken::NoFuseRecord),
        };
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(
            Status::from(err).message(),
            "volume vol-1: its device cannot be used now: no fuse mount recorded"
        );
    }

    #[test]
    fn status_message_keeps_the_cause() {
        let err = Error::io("mount /a", std::io::Error::from_raw_os_error(libc::EBUSY));
        let status = Status::from(err);
        assert_eq!(status.code(), Code::Internal);
        assert!(
            status.message().starts_with("mount /a: "),
            "{}",
            status.message()
        );
        assert!(status.details().is_empty());
    }
}
