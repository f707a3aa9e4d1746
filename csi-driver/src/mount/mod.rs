//! Filesystems and mounts on the node: the mount table ([`mountinfo`]), what a device
//! holds and making a filesystem ([`format`](mod@format), [`empty`]), mount flags ([`options`]),
//! mount/bind/unmount ([`ops`]) and growing ([`grow`]).

pub mod empty;
pub mod format;
pub mod grow;
pub mod mountinfo;
pub mod ops;
pub mod options;

pub use options::MountOptions;

use nix::errno::Errno;

use crate::program::ProgramError;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A mount/umount system call failed.
    #[error("{context}: {errno}")]
    Sys { context: String, errno: Errno },
    /// A file operation failed.
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    /// blkid, mkfs, resize2fs … failed.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// The request asks for something not allowed (fs type, option characters).
    #[error("{0}")]
    Invalid(String),
    /// The device holds something that is not a filesystem we may use: never formatted.
    #[error("{0}")]
    Refused(String),
    /// The filesystem cannot grow now (ext4 online without CAP_SYS_RESOURCE).
    #[error("{0}")]
    GrowRefused(String),
    /// blkid found nothing, but the device could not be read back: never formatted.
    #[error(
        "cannot prove {} is empty: blkid found nothing, but reading it back failed; not \
         formatting it (the volume may hold data that cannot be read now)",
        device.display()
    )]
    Unreadable {
        device: std::path::PathBuf,
        #[source]
        source: empty::ReadError,
    },
}

impl MountError {
    pub fn sys(context: impl Into<String>, errno: Errno) -> Self {
        MountError::Sys {
            context: context.into(),
            errno,
        }
    }
    pub fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        MountError::Io {
            context: context.into(),
            error,
        }
    }
}
