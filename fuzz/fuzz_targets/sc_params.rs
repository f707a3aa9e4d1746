//! StorageClass parameters (`key=value` lines): parsing never panics; accepted parameters
//! yield a volume id that round-trips (or is refused as too long) and a fingerprint that does
//! not depend on map order.
#![no_main]
use std::collections::HashMap;

use berth_csi::params::{VolumeParams, fingerprint};
use berth_csi::volume_id::VolumeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let params: HashMap<String, String> = text
        .split('\n')
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let Ok(p) = VolumeParams::parse(&params) else {
        return;
    };
    let image = format!("{}0123456789abcdef0123456789abcdef", p.volume_prefix);
    if let Some(id) = VolumeId::new(&p.cluster_id, &p.pool, &image).encode() {
        let back = VolumeId::decode(&id).expect("an id we encode decodes");
        assert_eq!(
            (back.cluster_id, back.pool, back.image),
            (p.cluster_id.clone(), p.pool.clone(), image.clone())
        );
    }
    let ctx = p.volume_context(&image, "");
    assert!(!ctx.is_empty());
    let mut pairs: Vec<(String, String)> = params.clone().into_iter().collect();
    pairs.reverse();
    let reordered: HashMap<String, String> = pairs.into_iter().collect();
    assert_eq!(
        fingerprint(&params, &[], ""),
        fingerprint(&reordered, &[], "")
    );
});
