//! Attaching an RBD image to this host as a block device. One trait, three attachers chosen
//! by the StorageClass parameter `mounter` (carried in the volume context):
//!
//! | mounter            | how                                   | needs                      |
//! |--------------------|---------------------------------------|----------------------------|
//! | `krbd` (default)   | `rbd map` -> /dev/rbdN (kernel client) | the `rbd` kernel module    |
//! | `rbd-nbd`          | `rbd --device-type nbd map` -> nbdN   | the `nbd` module, rbd-nbd  |
//! | `fuse`             | rbd-fuse exposes the image as a file, losetup -> /dev/loopN | /dev/fuse, rbd-fuse |
//! | `auto`             | the first of those this host can do, logged with the reason |   |
//!
//! Credentials reach the programs through [`client::ClientFiles`]: a private directory with a
//! minimal ceph.conf and a 0600 key file — never an argv, a log line or an error.

pub mod client;
pub mod device;
pub mod fuse;
pub mod identity;
pub mod krbd;
pub mod meta;
pub mod nbd;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::params::ParamError;
use crate::program::ProgramError;
use client::ClientFiles;
pub use identity::ImageSpec;

/// Which attacher attached a volume (recorded in the stash: detach uses the same one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Krbd,
    RbdNbd,
    Fuse,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Krbd => "krbd",
            Kind::RbdNbd => "rbd-nbd",
            Kind::Fuse => "fuse",
        }
    }
}

/// The `mounter` volume-context value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mounter {
    Fixed(Kind),
    Auto,
}

impl Mounter {
    pub fn parse(value: Option<&str>) -> Result<Mounter, Error> {
        Ok(match value.map(str::trim).unwrap_or("") {
            "" | "krbd" | "rbd" => Mounter::Fixed(Kind::Krbd),
            "rbd-nbd" | "nbd" => Mounter::Fixed(Kind::RbdNbd),
            "fuse" | "rbd-fuse" => Mounter::Fixed(Kind::Fuse),
            "auto" => Mounter::Auto,
            other => {
                return Err(ParamError::Mounter {
                    value: other.to_string(),
                }
                .into());
            }
        })
    }

    /// The attacher to use on this host; `auto` probes and says why it chose.
    pub fn resolve(self) -> (Kind, Option<&'static str>) {
        match self {
            Mounter::Fixed(k) => (k, None),
            Mounter::Auto => {
                if krbd::available() {
                    (Kind::Krbd, Some("the rbd kernel module is loaded"))
                } else if nbd::available() {
                    (
                        Kind::RbdNbd,
                        Some("no rbd kernel module; the nbd module and rbd-nbd are present"),
                    )
                } else {
                    (
                        Kind::Fuse,
                        Some("neither the rbd nor the nbd kernel module is available"),
                    )
                }
            }
        }
    }
}

/// What an attacher needs to reach one image.
#[derive(Debug)]
pub struct Target<'a> {
    pub pool: &'a str,
    /// RADOS namespace; "" is the default one.
    pub namespace: &'a str,
    pub image: &'a str,
    pub client: &'a ClientFiles,
    /// `mapOptions` (krbd/nbd `-o`), already validated.
    pub map_options: &'a str,
    /// `unmapOptions` (krbd/nbd `unmap -o`), already validated; kept in [`Attached`].
    pub unmap_options: &'a str,
    /// Attach read-only (reader-only access modes): krbd/nbd `--read-only`, a read-only
    /// loop device for fuse. Nothing on this node can then write to the image.
    pub read_only: bool,
    /// Private per-volume directory (fuse mount point, logs).
    pub work_dir: &'a Path,
}

impl Target<'_> {
    /// `pool` or `pool/namespace`: the CLI's prefix of the image spec, and what messages name.
    pub fn pool_spec(&self) -> String {
        match self.namespace {
            "" => self.pool.to_string(),
            ns => format!("{}/{ns}", self.pool),
        }
    }

    /// The image as the rbd CLI names it.
    pub fn spec(&self) -> String {
        format!("{}/{}", self.pool_spec(), self.image)
    }
}

/// An attached image, as recorded in the stash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    pub kind: Kind,
    pub device: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse: Option<fuse::FuseMount>,
    /// `unmapOptions` given at stage, used when detaching (krbd/nbd).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unmap_options: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "this kernel has no {module} module; use mounter=fuse or load {module} (modprobe {module})"
    )]
    NoKernelModule { module: &'static str },
    #[error(
        "image features {features} are not supported by this kernel; create the volume with \
         imageFeatures=layering, or use mounter=fuse"
    )]
    UnsupportedFeatures { features: String },
    #[error("image {pool}/{image} does not exist")]
    ImageNotFound { pool: String, image: String },
    #[error("/dev/fuse is missing: this host cannot use mounter=fuse")]
    NoDevFuse,
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// rbd-fuse exited before the image file showed up (`log`: the tail of its log).
    #[error("rbd-fuse for {spec} exited ({status}) before exposing the image; its log: {log}")]
    FuseExited {
        spec: String,
        status: String,
        log: String,
    },
    /// rbd-fuse did not show the image file in time.
    #[error("rbd-fuse did not expose {spec} within {after:?}; its log: {log}")]
    FuseNotReady {
        spec: String,
        after: std::time::Duration,
        log: String,
    },
    /// A fuse attachment without its fuse mount recorded.
    #[error("fuse attachment of {} has no fuse mount recorded", device.display())]
    NoFuseMount { device: PathBuf },
    /// The rbd-fuse mount could not be unmounted.
    #[error("unmount rbd-fuse")]
    FuseUnmount(#[source] crate::mount::MountError),
    /// `rbd image-meta list` printed something we cannot read.
    #[error("{spec}: unexpected image-meta output")]
    MetaOutput {
        spec: String,
        #[source]
        source: serde_json::Error,
    },
    /// The background format-mark lookup panicked.
    #[error("the image-meta lookup panicked")]
    LookupPanicked,
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
}

impl AttachError {
    pub fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        AttachError::Io {
            context: context.into(),
            error,
        }
    }
}

/// Why a recorded attachment is not usable, or not this volume's (what [`Attacher::check`]
/// finds). The device is then never trusted: not bound into a pod, grown or unmapped.
#[derive(Debug, thiserror::Error)]
pub enum Broken {
    #[error("{} is no longer mapped", device.display())]
    Unmapped { device: PathBuf },
    #[error("{} maps {found} now, not {want}: not this volume's device", device.display())]
    OtherImage {
        device: PathBuf,
        found: Box<ImageSpec>,
        want: Box<ImageSpec>,
    },
    #[error("{} maps nothing now (expected {want})", device.display())]
    MapsNothing {
        device: PathBuf,
        want: Box<ImageSpec>,
    },
    #[error("no fuse mount recorded")]
    NoFuseRecord,
    #[error("the recorded image file {} is not image {want}", file.display())]
    FuseFileMismatch { file: PathBuf, want: Box<ImageSpec> },
    #[error(
        "loop device {} is no longer bound to {} (not this volume's device)",
        device.display(),
        file.display()
    )]
    LoopRebound { device: PathBuf, file: PathBuf },
    #[error(
        "rbd-fuse is not serving {} ({errno}); restart the node plugin to re-attach",
        file.display()
    )]
    FuseNotServing {
        file: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("{} is not connected (rbd-nbd is not running)", device.display())]
    NbdDisconnected { device: PathBuf },
}

/// One way of turning an image into a block device. A recorded device is trusted only while
/// it maps `want` ([`identity`]): `check` fails otherwise, and `detach` leaves a device it
/// cannot prove is ours alone (the volume then counts as not attached).
pub trait Attacher: Send + Sync {
    fn attach(&self, target: &Target<'_>) -> Result<Attached, AttachError>;
    /// Undo [`Attacher::attach`]; what is already gone counts as done, and a device that does
    /// not map `want` is not touched.
    fn detach(&self, attached: &Attached, want: &ImageSpec) -> Result<(), AttachError>;
    /// `Err(why)` when the device is not usable (process dead, device gone) or does not map
    /// `want` (renumbered after a reboot).
    fn check(&self, attached: &Attached, want: &ImageSpec) -> Result<(), Broken>;
    /// Undo an attach the stash does not record (the plugin died between attach and stash):
    /// mappings of `want` in `work_dir` (fuse) or on the host that no stash records
    /// (`recorded`). Best effort.
    fn cleanup_unrecorded(&self, work_dir: &Path, want: &ImageSpec, recorded: &[PathBuf]);
    /// Make the device pick up a grown image; returns the device size. `want` is the size the
    /// caller expects (0: unknown); attachers that see the new size late wait for it a little.
    fn refresh_size(&self, attached: &Attached, want: u64) -> Result<u64, AttachError>;
}

/// The attacher for `kind`.
pub fn attacher(kind: Kind) -> &'static dyn Attacher {
    match kind {
        Kind::Krbd => &krbd::Krbd,
        Kind::RbdNbd => &nbd::Nbd,
        Kind::Fuse => &fuse::Fuse,
    }
}

/// `mapOptions` / `unmapOptions` (named by `field`): comma-separated krbd/nbd options;
/// characters limited so nothing but an option list reaches `rbd map -o` / `rbd unmap -o`.
pub fn map_options_field(field: &'static str, value: Option<&str>) -> Result<String, Error> {
    let v = value.map(str::trim).unwrap_or("");
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"=,._:-".contains(&b))
    {
        Ok(v.to_string())
    } else {
        Err(ParamError::Options {
            key: field,
            value: v.to_string(),
        }
        .into())
    }
}

/// `mapOptions`, see [`map_options_field`].
pub fn map_options(value: Option<&str>) -> Result<String, Error> {
    map_options_field("mapOptions", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounter_values() {
        assert_eq!(Mounter::parse(None).unwrap(), Mounter::Fixed(Kind::Krbd));
        assert_eq!(
            Mounter::parse(Some("fuse")).unwrap(),
            Mounter::Fixed(Kind::Fuse)
        );
        assert_eq!(
            Mounter::parse(Some("rbd-nbd")).unwrap(),
            Mounter::Fixed(Kind::RbdNbd)
        );
        assert_eq!(Mounter::parse(Some("auto")).unwrap(), Mounter::Auto);
        let err = Mounter::parse(Some("iscsi")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let (_, why) = Mounter::Auto.resolve();
        assert!(why.is_some(), "auto always says why");
    }

    #[test]
    fn kind_round_trips_as_json() {
        let mut a = Attached {
            kind: Kind::RbdNbd,
            device: "/dev/nbd0".into(),
            fuse: None,
            unmap_options: String::new(),
        };
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(s, r#"{"kind":"rbd-nbd","device":"/dev/nbd0"}"#);
        assert_eq!(serde_json::from_str::<Attached>(&s).unwrap(), a);
        a.unmap_options = "force".into();
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Attached>(&s).unwrap(), a);
    }

    #[test]
    fn map_options_are_checked() {
        assert_eq!(
            map_options(Some("queue_depth=128,noshare")).unwrap(),
            "queue_depth=128,noshare"
        );
        assert!(map_options(Some("a b")).is_err());
        assert!(map_options(Some("x;reboot")).is_err());
        let e = map_options_field("unmapOptions", Some("force;reboot")).unwrap_err();
        assert!(e.to_string().starts_with("unmapOptions"), "{e}");
    }

    #[test]
    fn error_codes_tell_the_user_what_to_do() {
        let e: Error = AttachError::NoKernelModule { module: "rbd" }.into();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(
            e.to_string().contains("use mounter=fuse or load rbd"),
            "{e}"
        );
        let e: Error = AttachError::ImageNotFound {
            pool: "p".into(),
            image: "i".into(),
        }
        .into();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }
}
