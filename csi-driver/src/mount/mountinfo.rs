//! `/proc/self/mountinfo`: the mount table as the kernel sees it (pure parser + one reader).
//!
//! Line format (proc(5)):
//! `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
//! id, parent, major:minor, root, mount point, per-mount options, optional fields, `-`,
//! fs type, source, super options. Paths escape space, tab, newline and `\` as octal, and
//! are any bytes otherwise: they are kept as they are (`OsString`), never decoded lossily.

use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Root of the mount inside its filesystem (`/` unless a bind of a subdirectory).
    pub root: PathBuf,
    pub target: PathBuf,
    /// Per-mount options (`rw`/`ro`, `nosuid`, …).
    pub options: String,
    pub fstype: String,
    pub source: String,
    /// Superblock options (`rw`/`ro` here says whether the filesystem itself went read-only).
    pub super_options: String,
}

impl MountEntry {
    /// Mounted read-only, either this mount or the whole filesystem (ext4 `errors=remount-ro`).
    pub fn read_only(&self) -> bool {
        has_option(&self.options, "ro") || has_option(&self.super_options, "ro")
    }
}

fn has_option(list: &str, opt: &str) -> bool {
    list.split(',').any(|o| o == opt)
}

/// Undo the kernel's octal escapes (`\040` for a space), on bytes: a path need not be UTF-8.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(oct) = field.get(i + 1..i + 4)
            && let Some(v) = std::str::from_utf8(oct)
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

fn path(field: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(unescape(field)))
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

/// Parse mountinfo (bytes: mount paths are kept exactly, UTF-8 or not); malformed lines are
/// skipped.
pub fn parse(data: impl AsRef<[u8]>) -> Vec<MountEntry> {
    data.as_ref()
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let sep = line.windows(3).position(|w| w == b" - ")?;
            let (left, right) = (&line[..sep], &line[sep + 3..]);
            let mut l = left.split(|b| *b == b' ');
            let root = l.nth(3)?;
            let target = l.next()?;
            let options = l.next()?;
            let mut r = right.split(|b| *b == b' ');
            let fstype = r.next()?;
            let source = r.next()?;
            let super_options = r.next().unwrap_or_default();
            Some(MountEntry {
                root: path(root),
                target: path(target),
                options: text(options),
                fstype: text(fstype),
                source: text(&unescape(source)),
                super_options: text(super_options),
            })
        })
        .collect()
}

/// The current mount table of this process's mount namespace.
pub fn read() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(std::fs::read("/proc/self/mountinfo")?))
}

/// The top-most mount at `target` (the last one listed wins, as in the kernel).
pub fn find<'a>(table: &'a [MountEntry], target: &Path) -> Option<&'a MountEntry> {
    table.iter().rev().find(|m| m.target == target)
}

/// Is `target` a mount point now? Errors reading the table count as "no".
pub fn is_mounted(target: &Path) -> bool {
    read().is_ok_and(|t| find(&t, target).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue
40 35 0:51 / /var/lib/berth/fuse rw,nosuid,nodev shared:9 - fuse.rbd-fuse rbd-fuse rw,user_id=0
41 35 7:3 / /tmp/staging rw,relatime - ext4 /dev/loop3 ro,relatime
42 35 0:5 /loop3 /tmp/target/blk rw,nosuid - devtmpfs udev rw
43 35 7:3 / /tmp/staging ro,relatime - ext4 /dev/loop3 rw
";

    #[test]
    fn parses_fields_and_escapes() {
        let m = parse(TEXT);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].target, PathBuf::from("/mnt with space"));
        assert_eq!(m[0].root, PathBuf::from("/mnt1"));
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[0].source, "/dev/root");
        assert_eq!(m[1].fstype, "fuse.rbd-fuse");
        assert_eq!(m[3].root, PathBuf::from("/loop3"));
        assert_eq!(m[3].source, "udev");
    }

    #[test]
    fn read_only_from_mount_or_superblock() {
        let m = parse(TEXT);
        assert!(!m[0].read_only());
        assert!(m[2].read_only(), "superblock went ro");
        assert!(m[4].read_only(), "mount is ro");
    }

    #[test]
    fn top_mount_wins_and_garbage_is_skipped() {
        let m = parse(format!("{TEXT}garbage line\n\n"));
        assert_eq!(m.len(), 5);
        let top = find(&m, Path::new("/tmp/staging")).unwrap();
        assert_eq!(top.options, "ro,relatime");
        assert!(find(&m, Path::new("/nope")).is_none());
    }

    /// A mount whose path is not UTF-8 (any user can make one) must not hide the table: the
    /// node would take every staged volume for unmounted.
    #[test]
    fn a_non_utf8_mount_path_does_not_hide_the_table() {
        use std::os::unix::ffi::OsStrExt;
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let odd = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"odd-\xff\xfe name"));
        std::fs::create_dir(&odd).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &odd,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .expect("mount a tmpfs (needs root, as the node plugin)");
        let _guard = Unmount(odd.clone());
        let table = read().expect("the mount table reads");
        assert!(
            find(&table, &odd).is_some(),
            "the odd mount is listed by its exact path"
        );
        assert!(is_mounted(Path::new("/")));
    }

    #[test]
    fn this_host_has_a_root() {
        assert!(is_mounted(Path::new("/")));
    }
}
