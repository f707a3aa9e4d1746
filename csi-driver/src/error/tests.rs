//! Unit tests of the error -> status mapping.

use super::*;
use tonic::{Code, Status};

#[test]
fn codes_follow_the_spec_table() {
    let cases = [
        (Error::Missing { field: "name" }, Code::InvalidArgument),
        (
            Error::from(ParamError::Missing { key: "pool" }),
            Code::InvalidArgument,
        ),
        (
            Error::UnknownCluster {
                cluster: "c".into(),
            },
            Code::InvalidArgument,
        ),
        (
            Error::ClassPoolNotFound { pool: "p".into() },
            Code::InvalidArgument,
        ),
        (Error::SecretsMissing, Code::Unauthenticated),
        (Error::OperationPending { key: "vol".into() }, Code::Aborted),
        (Error::NameRaced { name: "n".into() }, Code::Aborted),
        (Error::BadToken { token: "t".into() }, Code::Aborted),
        (Error::VolumeNotFound { id: "x".into() }, Code::NotFound),
        (Error::PoolNotFound { pool: "p".into() }, Code::NotFound),
        (Error::from(NotOurs("fake-vol-id".into())), Code::NotFound),
        (
            Error::VolumeExists { name: "n".into() },
            Code::AlreadyExists,
        ),
        (
            Error::ImageInUse { image: "i".into() },
            Code::FailedPrecondition,
        ),
        (
            Error::from(CapacityError::LimitBelowMinimum { limit: 1 }),
            Code::OutOfRange,
        ),
        (Error::ShuttingDown, Code::Unavailable),
        (
            Error::CallTimeout {
                after: Duration::from_secs(1),
            },
            Code::DeadlineExceeded,
        ),
        (
            Error::Unsupported {
                rpc: "ControllerGetVolume",
            },
            Code::Unimplemented,
        ),
        (Error::IdTooLong { what: "snapshot" }, Code::Internal),
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
            Error::from(MountError::FsType {
                requested: "zfs".into(),
            }),
            Code::InvalidArgument,
        ),
        (
            Error::from(MountError::NotAFilesystem {
                device: "/dev/x".into(),
                what: "lvm".into(),
            }),
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
            Error::from(CapabilityError::NoAccessMode),
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
    let bad = serde_json::from_str::<u32>("x").unwrap_err();
    let err = Error::JournalCorrupt {
        key: "k".into(),
        source: bad,
    };
    assert!(
        Status::from(err)
            .message()
            .starts_with("journal entry \"k\" is corrupt: "),
    );
}
