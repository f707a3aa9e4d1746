//! The driver's one error type, and the ONE place an error becomes a gRPC status.
//!
//! Variants are named after what failed; causes are kept as `#[source]`. Messages must never
//! contain a secret (cephx keys): callers build them from ids and names only.

use tonic::{Code, Status};

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
            Error::OperationPending(_) | Error::BadToken(_) => Code::Aborted,
            Error::FailedPrecondition(_) | Error::CephLibrary(_) => Code::FailedPrecondition,
            Error::OutOfRange(_) => Code::OutOfRange,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Ceph { errno, .. } => ceph_code(*errno),
            Error::Io { .. } | Error::Internal(_) => Code::Internal,
        }
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
