//! The cluster config file (`--cluster-config`, JSON): parsing never panics; an accepted
//! config yields a monitor string for its clusters.
#![no_main]
use berth_csi::cluster_config::ClusterConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = ClusterConfig::parse(text)
        && let Some(id) = cfg.sole_cluster()
    {
        let hosts = cfg.mon_host(id).expect("a configured cluster has monitors");
        assert!(!hosts.is_empty());
        assert!(!hosts.contains(['\n', '\0']), "{hosts:?}");
    }
});
