//! Static volumes, as ceph-csi spells them: a hand-written PV whose `volumeAttributes` carry
//! `staticVolume: "true"`, `clusterID`, `pool`, optionally `imageName` (default: the
//! volumeHandle itself) and `radosNamespace`, names an image berth did not create. The
//! volumeHandle is then any string; the image comes from the attributes (pure).
//!
//! Such an image is only ever attached, formatted when provably empty (and marked, as any
//! volume) and mounted: DeleteVolume of its handle decodes to nothing and answers OK, and
//! ControllerPublish keeps no record of it (ControllerUnpublish carries no volume context
//! to find the record again; the node's watcher check still keeps a single-node volume on
//! one node).

use std::collections::HashMap;

use crate::error::Error;
use crate::params::ParamError;
use crate::volume_id::{VolumeId, legal_name};

/// The volume-context key marking a static volume.
pub const KEY: &str = "staticVolume";

/// Is this volume context a static volume's?
pub fn is_static(ctx: &HashMap<String, String>) -> bool {
    ctx.get(KEY).is_some_and(|v| v.trim() == "true")
}

/// The image a static volume's context names; INVALID_ARGUMENT naming the bad key.
pub fn image(handle: &str, ctx: &HashMap<String, String>) -> Result<VolumeId, Error> {
    let get = |k: &str| ctx.get(k).map(String::as_str).unwrap_or("");
    let cluster = get("clusterID");
    if cluster.is_empty() || !cluster.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParamError::StaticNoCluster {
            handle: handle.to_string(),
        }
        .into());
    }
    let image = match get("imageName") {
        "" => handle,
        name => name,
    };
    for (key, value, optional) in [
        ("pool", get("pool"), false),
        ("imageName", image, false),
        ("radosNamespace", get("radosNamespace"), true),
    ] {
        if !(legal_name(value) || optional && value.is_empty()) {
            return Err(ParamError::StaticBadName {
                handle: handle.to_string(),
                key,
                value: value.to_string(),
            }
            .into());
        }
    }
    Ok(VolumeId::new(cluster, get("pool"), image).in_namespace(get("radosNamespace")))
}

/// The volume a request names: a static volume's context wins, else the ID must be ours
/// (`Err(None)`: it is not).
pub fn resolve(handle: &str, ctx: &HashMap<String, String>) -> Result<VolumeId, Option<Error>> {
    if is_static(ctx) {
        return image(handle, ctx).map_err(Some);
    }
    VolumeId::decode(handle).map_err(|_| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn static_contexts() {
        let base = [
            ("staticVolume", "true"),
            ("clusterID", "c"),
            ("pool", "rbd"),
        ];
        let v = image("img-handle", &ctx(&base)).unwrap();
        assert_eq!(v.spec(), "rbd/img-handle");
        let mut with = base.to_vec();
        with.extend([("imageName", "pre"), ("radosNamespace", "ns")]);
        assert_eq!(image("h", &ctx(&with)).unwrap().spec(), "rbd/ns/pre");
        for bad in [
            vec![("pool", "rbd")],
            vec![("clusterID", "c")],
            vec![("clusterID", "c"), ("pool", "rbd"), ("imageName", "../x")],
            vec![("clusterID", "c"), ("pool", "a/b")],
            vec![
                ("clusterID", "c"),
                ("pool", "rbd"),
                ("radosNamespace", "-x"),
            ],
        ] {
            assert!(image("h", &ctx(&bad)).is_err(), "{bad:?}");
        }
        assert!(resolve("not-ours", &ctx(&[])).unwrap_err().is_none());
        assert!(resolve("h", &ctx(&base)).is_ok());
        assert!(!is_static(&ctx(&[("staticVolume", "false")])));
    }
}
