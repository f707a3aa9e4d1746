//! Snapshot IDs arrive in snapshot RPCs and as clone sources: decoding never panics, and what
//! decodes round-trips.
#![no_main]
use berth_csi::snapshot_id::SnapshotId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = SnapshotId::decode(text) {
        let again = id.encode().expect("a decoded id re-encodes");
        assert_eq!(SnapshotId::decode(&again).as_ref(), Ok(&id));
    }
});
