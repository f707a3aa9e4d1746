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

use std::path::PathBuf;

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
    /// The request asks for a filesystem type we do not make or mount.
    #[error(
        "fs_type {requested:?} is not supported (use one of {:?})",
        format::SUPPORTED
    )]
    FsType { requested: String },
    /// A mkfsOptions word with characters that are not allowed.
    #[error("mkfsOptions word {word:?} is not allowed (letters, digits and =,._:+- only)")]
    MkfsOption { word: String },
    /// A mount flag with characters that are not allowed.
    #[error("mount option {option:?} has characters that are not allowed")]
    MountOption { option: String },
    /// A filesystem type we cannot grow.
    #[error("cannot grow a {fs} filesystem")]
    CannotGrow { fs: String },
    /// dumpe2fs printed no block count or size.
    #[error("dumpe2fs {}: no block count/size in its output", device.display())]
    Dumpe2fsOutput { device: PathBuf },
    /// The device holds a filesystem this driver does not mount: left untouched.
    #[error(
        "{} holds a {fs} filesystem, which this driver does not mount; it is left untouched",
        device.display()
    )]
    ForeignFilesystem { device: PathBuf, fs: String },
    /// The device holds something that is not a filesystem: never formatted.
    #[error("{} holds {what}; refusing to format or mount it", device.display())]
    NotAFilesystem { device: PathBuf, what: String },
    /// A publish target that is a symbolic link (mount(2) would follow it).
    #[error("target {} is a symbolic link; refusing to mount through it", target.display())]
    SymlinkTarget { target: PathBuf },
    /// The filesystem cannot grow now (ext4 online without CAP_SYS_RESOURCE).
    #[error(
        "the kernel refused to grow the mounted {fs} filesystem on {} (this node plugin lacks \
         CAP_SYS_RESOURCE, which online ext4 resize needs); grant the capability, or unstage \
         and stage the volume again: staging grows ext4 offline",
        device.display()
    )]
    GrowRefused { fs: String, device: PathBuf },
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
