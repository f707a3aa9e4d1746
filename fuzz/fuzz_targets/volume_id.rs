//! Volume IDs arrive in every volume RPC: decoding never panics, and whatever decodes
//! re-encodes to an ID that decodes to the same parts.
#![no_main]
use berth_csi::volume_id::VolumeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = VolumeId::decode(text) {
        let again = id.encode().expect("a decoded id re-encodes");
        assert_eq!(VolumeId::decode(&again).as_ref(), Ok(&id));
    }
});
