//! Filesystems on a device: detect what is there (blkid) and make one only when there is
//! provably nothing (mkfs). The one rule: a device that holds anything — a filesystem, a
//! partition table, an ambiguous signature — or that cannot be read is never formatted.
//! blkid's "nothing found" is checked by reading the device's edges ([`super::empty`]).
//!
//! Fast defaults, as ceph-csi users know them: ext4 `-m0 -E
//! nodiscard,lazy_itable_init=1,lazy_journal_init=1` (thin RBD images: no discard pass, no
//! inode-table zeroing up front, no reserved blocks), xfs `-K` (no discard). A StorageClass's
//! `mkfsOptions` replaces the defaults.

use std::path::Path;
use std::process::Command;

use super::{MountError, empty};
use crate::program::{self, LONG, SHORT};

/// Filesystems the driver formats and mounts.
pub const SUPPORTED: &[&str] = &["ext4", "ext3", "xfs"];
/// The fs type used when the capability names none.
pub const DEFAULT_FS: &str = "ext4";

/// What is on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Provably nothing: blkid found nothing, the edges read back and hold no signature.
    Empty,
    Filesystem(String),
    /// A partition table or another signature without a filesystem: never format.
    Other(String),
}

/// Parse `blkid -p -o export` output (KEY=value lines).
pub fn parse_blkid_export(out: &str) -> Content {
    let get = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    if let Some(t) = get("TYPE") {
        return Content::Filesystem(t);
    }
    if let Some(pt) = get("PTTYPE") {
        return Content::Other(format!("a {pt} partition table"));
    }
    if out.trim().is_empty() {
        Content::Empty
    } else {
        Content::Other("an unrecognised signature".into())
    }
}

/// Probe `device` (low-level, no cache: a freshly attached device has no cache entry).
/// "Nothing" is believed only after the device's edges were read back directly and hold
/// no signature; a read that fails is [`MountError::Unreadable`], never [`Content::Empty`].
pub fn detect(device: &Path) -> Result<Content, MountError> {
    match program::run(
        Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(device),
        SHORT,
    ) {
        Ok(out) => Ok(parse_blkid_export(&out)),
        // blkid: exit 2 = nothing found, OR the device could not be opened or read.
        Err(e) if e.exit_code() == Some(2) => {
            let edges = empty::read_edges(device).map_err(|source| MountError::Unreadable {
                device: device.to_path_buf(),
                source,
            })?;
            Ok(match empty::signature(&edges) {
                Some(what) => Content::Other(format!("{what} (which blkid did not report)")),
                None => Content::Empty,
            })
        }
        // exit 8 = ambivalent probe (several signatures): refuse rather than guess.
        Err(e) if e.exit_code() == Some(8) => Ok(Content::Other("several signatures".into())),
        Err(e) => Err(e.into()),
    }
}

/// Normalise and check a requested fs type ("" -> ext4).
pub fn fs_type(requested: &str) -> Result<String, MountError> {
    let t = requested.trim().to_ascii_lowercase();
    let t = if t.is_empty() {
        DEFAULT_FS.to_string()
    } else {
        t
    };
    if SUPPORTED.contains(&t.as_str()) {
        Ok(t)
    } else {
        Err(MountError::FsType {
            requested: requested.to_string(),
        })
    }
}

/// `mkfsOptions` -> argv words. Words are passed to mkfs as arguments (no shell); a word
/// with `/` could name another device, so paths are refused.
pub fn mkfs_args(fstype: &str, options: Option<&str>) -> Result<Vec<String>, MountError> {
    let Some(opts) = options.map(str::trim).filter(|o| !o.is_empty()) else {
        return Ok(match fstype {
            "xfs" => vec!["-K".into()],
            _ => vec![
                "-m0".into(),
                "-E".into(),
                "nodiscard,lazy_itable_init=1,lazy_journal_init=1".into(),
            ],
        });
    };
    opts.split_whitespace()
        .map(|w| {
            if w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=,._:+-".contains(&b))
            {
                Ok(w.to_string())
            } else {
                Err(MountError::MkfsOption {
                    word: w.to_string(),
                })
            }
        })
        .collect()
}

/// Make a filesystem on an empty device. Callers check [`detect`] first (and the image's
/// format mark): mkfs itself is no safeguard — `mkfs.ext4 -q` without a terminal overwrites
/// an existing filesystem without asking.
pub fn mkfs(device: &Path, fstype: &str, options: Option<&str>) -> Result<(), MountError> {
    let mut cmd = Command::new(format!("mkfs.{fstype}"));
    cmd.arg("-q").args(mkfs_args(fstype, options)?).arg(device);
    program::run(&mut cmd, LONG)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkid_export_forms() {
        assert_eq!(parse_blkid_export(""), Content::Empty);
        assert_eq!(
            parse_blkid_export("DEVNAME=/dev/loop0\nUUID=x\nTYPE=ext4\nUSAGE=filesystem\n"),
            Content::Filesystem("ext4".into())
        );
        assert_eq!(
            parse_blkid_export("DEVNAME=/dev/loop0\nPTUUID=1\nPTTYPE=dos\n"),
            Content::Other("a dos partition table".into())
        );
        assert!(matches!(
            parse_blkid_export("DEVNAME=/dev/loop0\nUSAGE=raid\n"),
            Content::Other(_)
        ));
    }

    #[test]
    fn fs_types() {
        assert_eq!(fs_type("").unwrap(), "ext4");
        assert_eq!(fs_type("XFS").unwrap(), "xfs");
        assert!(matches!(fs_type("ntfs"), Err(MountError::FsType { .. })));
    }

    #[test]
    fn mkfs_defaults_and_user_options() {
        assert_eq!(mkfs_args("xfs", None).unwrap(), vec!["-K"]);
        assert_eq!(mkfs_args("ext4", Some("  ")).unwrap()[0], "-m0");
        assert_eq!(
            mkfs_args("ext4", Some("-b 4096 -E lazy_itable_init=0")).unwrap(),
            vec!["-b", "4096", "-E", "lazy_itable_init=0"]
        );
        for bad in ["/dev/sda", "-O ^x;rm", "$(x)"] {
            assert!(mkfs_args("ext4", Some(bad)).is_err(), "{bad}");
        }
    }
}
