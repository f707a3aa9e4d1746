//! Table tests for parameter parsing, feature dependencies, sizes and capabilities.

use super::*;
use crate::csi::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};

fn p(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parses_defaults_and_passes_node_keys_through() {
    let v = VolumeParams::parse(&p(&[
        ("clusterID", "c1"),
        ("pool", "rbd"),
        ("csi.storage.k8s.io/fstype", "xfs"),
        ("mounter", "fuse"),
        ("csi.storage.k8s.io/pvc/name", "ignored"),
    ]))
    .unwrap();
    assert_eq!(v.features, features::LAYERING);
    assert_eq!(v.volume_prefix, "csi-vol-");
    let ctx = v.volume_context("img", "");
    assert_eq!(ctx["csi.storage.k8s.io/fstype"], "xfs");
    assert_eq!(ctx["mounter"], "fuse");
    assert_eq!(ctx["imageName"], "img");
    assert!(!ctx.contains_key("csi.storage.k8s.io/pvc/name"));
}

#[test]
fn rejects_bad_parameters() {
    for bad in [
        p(&[("pool", "rbd")]),
        p(&[("clusterID", "c")]),
        p(&[("clusterID", "c"), ("pool", "rbd"), ("typo", "x")]),
        p(&[("clusterID", "c"), ("pool", "r b")]),
        p(&[
            ("clusterID", "c"),
            ("pool", "rbd"),
            ("imageFeatures", "bogus"),
        ]),
        p(&[
            ("clusterID", "c"),
            ("pool", "rbd"),
            ("volumeNamePrefix", "a/b"),
        ]),
    ] {
        let e = VolumeParams::parse(&bad).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
    }
}

#[test]
fn feature_dependencies() {
    assert!(parse_features("layering,exclusive-lock").is_ok());
    assert!(parse_features("exclusive-lock,object-map,fast-diff").is_ok());
    assert!(parse_features("layering,deep-flatten").is_ok());
    assert!(parse_features("object-map").is_err());
    assert!(parse_features("exclusive-lock,fast-diff").is_err());
    assert!(parse_features("journaling").is_err());
    assert!(parse_features("exclusive-lock,journaling").is_ok());
}

#[test]
fn sizes() {
    let r = |req, lim| CapacityRange {
        required_bytes: req,
        limit_bytes: lim,
    };
    assert_eq!(size_for(None).unwrap(), DEFAULT_SIZE);
    assert_eq!(size_for(Some(&r(1, 0))).unwrap(), MIB);
    assert_eq!(size_for(Some(&r(10 << 30, 0))).unwrap(), 10 << 30);
    assert_eq!(size_for(Some(&r(0, 5 * MIB as i64))).unwrap(), 5 * MIB);
    assert_eq!(size_for(Some(&r(1_500_000, 1_600_000))).unwrap(), 1_500_000);
    for bad in [r(10, 5), r(-1, 0), r(0, 1000), r(1 << 60, 0)] {
        assert_eq!(
            size_for(Some(&bad)).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
    }
    assert!(fits(MIB, Some(&r(1, 0))));
    assert!(!fits(MIB, Some(&r(2 * MIB as i64, 0))));
    assert!(!fits(2 * MIB, Some(&r(0, MIB as i64))));
}

fn cap(block: bool, mode: volume_capability::access_mode::Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(if block {
            AccessType::Block(BlockVolume {})
        } else {
            AccessType::Mount(MountVolume::default())
        }),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

#[test]
fn capabilities() {
    use volume_capability::access_mode::Mode;
    assert!(check_capability(&cap(true, Mode::MultiNodeMultiWriter)).is_ok());
    assert!(check_capability(&cap(false, Mode::MultiNodeMultiWriter)).is_err());
    assert!(check_capability(&cap(false, Mode::SingleNodeWriter)).is_ok());
    assert!(check_capability(&cap(false, Mode::MultiNodeReaderOnly)).is_ok());
    assert!(check_capability(&cap(false, Mode::Unknown)).is_err());
    assert!(check_capabilities(&[]).is_err());
    let a = fingerprint(&p(&[("a", "1")]), &[cap(true, Mode::SingleNodeWriter)], "");
    let b = fingerprint(&p(&[("a", "1")]), &[cap(false, Mode::SingleNodeWriter)], "");
    assert_ne!(a, b);
    assert_eq!(
        a,
        fingerprint(&p(&[("a", "1")]), &[cap(true, Mode::SingleNodeWriter)], "")
    );
}

#[test]
fn encryption_keys_as_ceph_csi_has_them() {
    use super::{Encryption, encryption};
    use tonic::Code;
    let p = |kv: &[(&str, &str)]| -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let code = |kv: &[(&str, &str)]| {
        encryption(&p(kv))
            .map(|_| Code::Ok)
            .unwrap_or_else(|e| e.code())
    };
    assert_eq!(encryption(&p(&[])).unwrap(), Encryption::None);
    assert_eq!(
        encryption(&p(&[("encrypted", "false")])).unwrap(),
        Encryption::None
    );
    let file = [("encrypted", "true"), ("encryptionType", "file")];
    assert_eq!(encryption(&p(&file)).unwrap(), Encryption::File);
    // Block (LUKS) needs dm-crypt; it is also ceph-csi's default type.
    assert_eq!(code(&[("encrypted", "true")]), Code::FailedPrecondition);
    assert_eq!(
        code(&[("encrypted", "true"), ("encryptionType", "block")]),
        Code::FailedPrecondition
    );
    assert_eq!(code(&[("encrypted", "yes")]), Code::InvalidArgument);
    assert_eq!(
        code(&[("encrypted", "true"), ("encryptionType", "disk")]),
        Code::InvalidArgument
    );
}
