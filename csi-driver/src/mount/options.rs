//! Mount flags from a CSI `VolumeCapability.mount.mount_flags` (StorageClass `mountOptions`)
//! -> mount(2) flags + the filesystem's data string (pure).
//!
//! Generic flags (`ro`, `noatime`, `nosuid`, …) become `MsFlags`; anything else goes to the
//! filesystem as data after a character check (no spaces, quotes or control characters).
//! xfs always gets `nouuid`: a restored snapshot or clone has the same UUID as its parent,
//! and xfs refuses a second filesystem with a UUID it already has mounted.

use nix::mount::MsFlags;

use super::MountError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub data: String,
}

fn generic(flag: &str) -> Option<(MsFlags, bool)> {
    // (flag, set?) — `false` clears a flag (`rw`, `exec`, …).
    Some(match flag {
        "ro" => (MsFlags::MS_RDONLY, true),
        "rw" => (MsFlags::MS_RDONLY, false),
        "noatime" => (MsFlags::MS_NOATIME, true),
        "atime" => (MsFlags::MS_NOATIME, false),
        "nodiratime" => (MsFlags::MS_NODIRATIME, true),
        "diratime" => (MsFlags::MS_NODIRATIME, false),
        "relatime" => (MsFlags::MS_RELATIME, true),
        "norelatime" => (MsFlags::MS_RELATIME, false),
        "strictatime" => (MsFlags::MS_STRICTATIME, true),
        "lazytime" => (MsFlags::MS_LAZYTIME, true),
        "nolazytime" => (MsFlags::MS_LAZYTIME, false),
        "nosuid" => (MsFlags::MS_NOSUID, true),
        "suid" => (MsFlags::MS_NOSUID, false),
        "nodev" => (MsFlags::MS_NODEV, true),
        "dev" => (MsFlags::MS_NODEV, false),
        "noexec" => (MsFlags::MS_NOEXEC, true),
        "exec" => (MsFlags::MS_NOEXEC, false),
        "sync" => (MsFlags::MS_SYNCHRONOUS, true),
        "async" => (MsFlags::MS_SYNCHRONOUS, false),
        "dirsync" => (MsFlags::MS_DIRSYNC, true),
        "defaults" => (MsFlags::empty(), true),
        _ => return None,
    })
}

fn safe_data(opt: &str) -> bool {
    !opt.is_empty()
        && opt.len() <= 256
        && opt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=._:/+-@".contains(&b))
}

impl MountOptions {
    /// Options for mounting a filesystem of type `fstype` with the requested flags.
    pub fn parse(requested: &[String], fstype: &str) -> Result<Self, MountError> {
        let mut flags = MsFlags::empty();
        let mut data: Vec<String> = Vec::new();
        for opt in requested.iter().flat_map(|o| o.split(',')) {
            let opt = opt.trim();
            if opt.is_empty() {
                continue;
            }
            match generic(opt) {
                Some((f, true)) => flags |= f,
                Some((f, false)) => flags &= !f,
                None if safe_data(opt) => {
                    if !data.iter().any(|d| d == opt) {
                        data.push(opt.to_string());
                    }
                }
                None => {
                    return Err(MountError::MountOption {
                        option: opt.to_string(),
                    });
                }
            }
        }
        if fstype == "xfs" && !data.iter().any(|d| d == "nouuid") {
            data.push("nouuid".into());
        }
        Ok(MountOptions {
            flags,
            data: data.join(","),
        })
    }
}

impl MountOptions {
    /// Read-only all the way: `ro`, and no journal replay — ext `noload`, xfs `norecovery` —
    /// so mounting never writes to the device (reader-only access modes; the device is
    /// read-only too, and a replay would fail on it).
    pub fn read_only(mut self, fstype: &str) -> Self {
        self.flags |= MsFlags::MS_RDONLY;
        let extra = if fstype == "xfs" {
            "norecovery"
        } else {
            "noload"
        };
        if !self.data.split(',').any(|d| d == extra) {
            if !self.data.is_empty() {
                self.data.push(',');
            }
            self.data.push_str(extra);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn generic_flags_and_data() {
        let o = MountOptions::parse(&v(&["noatime,nodev", "discard", "ro"]), "ext4").unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(o.data, "discard");
        let o = MountOptions::parse(&v(&["ro", "rw", "defaults"]), "ext4").unwrap();
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(o.data, "");
    }

    #[test]
    fn xfs_gets_nouuid_once() {
        assert_eq!(MountOptions::parse(&[], "xfs").unwrap().data, "nouuid");
        let o = MountOptions::parse(&v(&["nouuid", "logbsize=256k"]), "xfs").unwrap();
        assert_eq!(o.data, "nouuid,logbsize=256k");
    }

    #[test]
    fn read_only_never_replays_the_journal() {
        let o = MountOptions::parse(&v(&["rw", "noatime"]), "ext4")
            .unwrap()
            .read_only("ext4");
        assert_eq!(o.flags, MsFlags::MS_NOATIME | MsFlags::MS_RDONLY);
        assert_eq!(o.data, "noload");
        let o = MountOptions::parse(&[], "xfs").unwrap().read_only("xfs");
        assert_eq!(o.data, "nouuid,norecovery");
        assert_eq!(o.clone().read_only("xfs"), o, "idempotent");
    }

    #[test]
    fn hostile_options_are_refused() {
        for bad in ["a b", "x\ny", "data=\"q\"", "é", "a;b"] {
            let err = MountOptions::parse(&v(&[bad]), "ext4").unwrap_err();
            assert!(matches!(err, MountError::MountOption { .. }), "{bad}");
        }
    }
}
