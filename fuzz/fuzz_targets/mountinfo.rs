//! /proc/self/mountinfo: parsing never panics, and every parsed mount is found by its target.
#![no_main]
use berth_csi::mount::mountinfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Bytes as the kernel gives them: mount paths need not be UTF-8.
    let table = mountinfo::parse(data);
    for e in &table {
        let found = mountinfo::find(&table, &e.target).expect("a parsed mount is found");
        assert_eq!(found.target, e.target);
        let _ = e.read_only();
    }
});
