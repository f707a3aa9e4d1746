//! Proving a device empty before mkfs. blkid's "nothing found" (exit 2) is not proof: blkid
//! also exits 2 when it cannot open or read the device, and `mkfs -q` without a terminal
//! overwrites whatever is there. So after blkid found nothing, the device's first and last
//! MiB (where every filesystem, partition table and volume label we know keeps its
//! signature) are read again with O_DIRECT (past the page cache; a loop device may still
//! answer from its backing file's cache), and the bytes are scanned for the signatures we
//! know ([`signature`], pure). Empty = blkid found nothing AND both reads succeeded AND the
//! scan found nothing.
//!
//! Non-zero bytes without any signature count as empty (as Kubernetes' mount-utils and
//! ceph-csi decide): a stage that died inside mkfs leaves exactly that, and requiring zeros
//! would wedge such a volume for ever. What berth itself formatted is protected beyond this
//! by the image's `berth.dev/formatted` mark ([`crate::attach::meta`]), checked before mkfs.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// How much of each end of the device is read: the first MiB holds the ext/xfs/btrfs
/// superblocks, MBR/GPT, LVM and LUKS headers; the last MiB the GPT backup and md/ZFS labels.
pub const EDGE: u64 = 1 << 20;
/// O_DIRECT wants buffers and offsets aligned to the logical block size (≤ 4 KiB).
const ALIGN: usize = 4096;

/// The two ends of a device, as read.
#[derive(Debug)]
pub struct Edges {
    pub size: u64,
    pub head: Vec<u8>,
    /// The last `EDGE` bytes (or the whole device when smaller), starting at `tail_offset`.
    pub tail: Vec<u8>,
    pub tail_offset: u64,
}

/// Which end a read failed at, and why (the cause is the `source`).
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct ReadError {
    pub what: String,
    #[source]
    pub source: std::io::Error,
}

fn err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ReadError {
    move |source| ReadError {
        what: what.into(),
        source,
    }
}

fn open_direct(device: &Path) -> Result<File, ReadError> {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(device)
    {
        Ok(f) => Ok(f),
        // A file system without O_DIRECT (tmpfs in unit tests): a plain read is the best
        // there is.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => File::open(device),
        Err(e) => Err(e),
    }
    .map_err(err(format!("opening {}", device.display())))
}

/// Read `len` bytes at `offset` through an aligned buffer.
fn read_aligned(f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len + ALIGN];
    let start = buf.as_ptr().align_offset(ALIGN);
    let slice = &mut buf[start..start + len];
    f.read_exact_at(slice, offset)?;
    Ok(slice.to_vec())
}

/// Read the first and last [`EDGE`] bytes of `device`, bypassing the page cache.
pub fn read_edges(device: &Path) -> Result<Edges, ReadError> {
    let mut f = open_direct(device)?;
    let size = f
        .seek(SeekFrom::End(0))
        .map_err(err(format!("finding the size of {}", device.display())))?;
    let head_len = size.min(EDGE) as usize;
    let head = read_aligned(&f, 0, head_len).map_err(err(format!(
        "reading the first MiB of {}",
        device.display()
    )))?;
    let tail_offset = size.saturating_sub(EDGE) / ALIGN as u64 * ALIGN as u64;
    let tail = read_aligned(&f, tail_offset, (size - tail_offset) as usize)
        .map_err(err(format!("reading the last MiB of {}", device.display())))?;
    Ok(Edges {
        size,
        head,
        tail,
        tail_offset,
    })
}

/// Signatures at fixed offsets from the start of the device: (offset, magic, what).
const HEAD: &[(usize, &[u8], &str)] = &[
    (0x438, &[0x53, 0xef], "an ext2/3/4 superblock"),
    (0, b"XFSB", "an xfs superblock"),
    (0x10040, b"_BHRfS_M", "a btrfs superblock"),
    (0, b"LUKS\xba\xbe", "a LUKS header"),
    (0, b"SKUL\xba\xbe", "a LUKS2 secondary header"),
    (0x200, b"LABELONE", "an LVM2 label"),
    (0x200, b"EFI PART", "a GPT header"),
    (0x1fe, &[0x55, 0xaa], "an MBR boot signature"),
    (0xff6, b"SWAPSPACE2", "a swap signature"),
    (
        0x1000,
        &[0xfc, 0x4e, 0x2b, 0xa9],
        "an md RAID superblock (1.2)",
    ),
];

/// A signature we know in the device's edges, or None. `tail` starts at `tail_offset`
/// of a device of `size` bytes.
pub fn signature(e: &Edges) -> Option<&'static str> {
    let at = |buf: &[u8], off: usize, magic: &[u8]| {
        buf.get(off..off + magic.len()).is_some_and(|b| b == magic)
    };
    if let Some((_, _, what)) = HEAD.iter().find(|(off, m, _)| at(&e.head, *off, m)) {
        return Some(what);
    }
    // The GPT backup header sits in the last 512-byte sector.
    let last = (e.size.saturating_sub(512)).checked_sub(e.tail_offset);
    if let Some(off) = last
        && at(&e.tail, off as usize, b"EFI PART")
    {
        return Some("a GPT backup header");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(size: u64, head_at: &[(usize, &[u8])], tail_at: &[(u64, &[u8])]) -> Edges {
        let mut head = vec![0u8; size.min(EDGE) as usize];
        for (off, b) in head_at {
            head[*off..off + b.len()].copy_from_slice(b);
        }
        let tail_offset = size.saturating_sub(EDGE);
        let mut tail = vec![0u8; (size - tail_offset) as usize];
        for (off, b) in tail_at {
            let o = (off - tail_offset) as usize;
            tail[o..o + b.len()].copy_from_slice(b);
        }
        Edges {
            size,
            head,
            tail,
            tail_offset,
        }
    }

    #[test]
    fn zeros_and_noise_have_no_signature() {
        assert_eq!(signature(&edges(64 << 20, &[], &[])), None);
        let noise: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 13) as u8 + 1).collect();
        assert_eq!(signature(&edges(64 << 20, &[(8192, &noise)], &[])), None);
    }

    #[test]
    fn known_signatures_are_found() {
        let size = 64u64 << 20;
        for (off, magic, what) in HEAD {
            let e = edges(size, &[(*off, magic)], &[]);
            assert_eq!(signature(&e), Some(*what));
        }
        let e = edges(size, &[], &[(size - 512, b"EFI PART")]);
        assert_eq!(signature(&e), Some("a GPT backup header"));
        // Small devices: head and tail overlap, offsets beyond the end are not read.
        let e = edges(4096, &[(0, b"XFSB")], &[]);
        assert_eq!(signature(&e), Some("an xfs superblock"));
    }

    #[test]
    fn reads_both_edges_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev");
        let f = File::create(&path).unwrap();
        f.set_len(3 << 20).unwrap();
        f.write_all_at(b"XFSB", 0).unwrap();
        f.write_all_at(b"END!", (3 << 20) - 4).unwrap();
        let e = read_edges(&path).unwrap();
        assert_eq!(e.size, 3 << 20);
        assert_eq!(e.head.len(), EDGE as usize);
        assert_eq!(&e.tail[e.tail.len() - 4..], b"END!");
        assert_eq!(signature(&e), Some("an xfs superblock"));
        let missing = read_edges(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().starts_with("opening "), "{missing}");
    }
}
