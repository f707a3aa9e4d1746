//! ListVolumes / ListSnapshots `starting_token`: never panics; a token we did not issue is
//! ABORTED; an accepted one names an existing pool and round-trips.
#![no_main]
use berth_csi::controller::Token;
use berth_csi::error::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pools, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let pools = usize::from(pools % 8);
    match Token::decode(text, pools) {
        Ok(t) => {
            assert!(text.is_empty() || t.pool < pools);
            assert_eq!(Token::decode(&t.encode(), pools.max(1)).ok(), Some(t));
        }
        Err(e) => assert!(matches!(e, Error::BadToken { .. }), "{e:?}"),
    }
});
