//! `blkid -p -o export` output: parsing never panics, and only output without any signature
//! reads as empty (an empty verdict formats the device: it must never hide a signature).
#![no_main]
use berth_csi::mount::format::{Content, parse_blkid_export};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let content = parse_blkid_export(&text);
    if content == Content::Empty {
        assert!(text.trim().is_empty(), "{text:?} read as empty");
    }
    let has_type = text.lines().any(|l| l.starts_with("TYPE="));
    assert_eq!(
        has_type,
        matches!(content, Content::Filesystem(_)),
        "{text:?}: {content:?}"
    );
});
