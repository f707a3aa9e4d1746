//! Snapshot IDs, in the style of [`crate::volume_id`]: versioned and self-describing, so
//! DeleteSnapshot and CreateVolume-from-snapshot find the RBD snapshot without a lookup.
//!
//! Layout (ASCII, at most 128 bytes):
//!
//! ```text
//! s001-<LLLL>-<clusterID>-<PPPP>-<pool>-<IIII>-<image>-<snapshot>
//!  │     │                  │             │             └ RBD snapshot name (rest)
//!  │     │                  │             └ source image name length, 4 hex digits
//!  │     │                  └ pool name length, 4 hex digits
//!  │     └ clusterID length, 4 hex digits
//!  └ layout version ("s" so a snapshot ID never decodes as a volume ID and back)
//! s002-<LLLL>-<clusterID>-<PPPP>-<pool>-<NNNN>-<namespace>-<IIII>-<image>-<snapshot>
//!                                         └ RADOS namespace (layout s002 only)
//! ```
//!
//! As for volumes, a snapshot in the default RADOS namespace keeps layout s001.

use std::fmt;

use crate::volume_id::{Located, NotOurs, Versions, VolumeId, legal_name};

/// Layout versions: default RADOS namespace, named one.
const VERSIONS: Versions = ("s001", "s002");

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotId {
    pub cluster_id: String,
    pub pool: String,
    /// RADOS namespace; "" is the default one.
    pub namespace: String,
    pub image: String,
    pub snap: String,
}

impl SnapshotId {
    pub fn new(cluster_id: &str, pool: &str, image: &str, snap: &str) -> Self {
        SnapshotId {
            cluster_id: cluster_id.into(),
            pool: pool.into(),
            namespace: String::new(),
            image: image.into(),
            snap: snap.into(),
        }
    }

    /// The same snapshot in RADOS namespace `ns` ("" is the default one).
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.into();
        self
    }

    /// The snapshot's source volume.
    pub fn volume(&self) -> VolumeId {
        VolumeId::new(&self.cluster_id, &self.pool, &self.image).in_namespace(&self.namespace)
    }

    /// Encode; `None` when a part is empty/non-ASCII or the result exceeds 128 bytes.
    pub fn encode(&self) -> Option<String> {
        if !self.legal() {
            return None;
        }
        let at = Located::new(&self.cluster_id, &self.pool, &self.namespace);
        at.encode(VERSIONS, &[&self.image], &self.snap)
    }

    pub fn decode(id: &str) -> Result<Self, NotOurs> {
        let not_ours = || NotOurs(id.to_string());
        let (at, extra, snap) = Located::decode(id, VERSIONS, 1).ok_or_else(not_ours)?;
        let [image] = extra[..] else {
            return Err(not_ours());
        };
        let s = SnapshotId::new(at.cluster_id, at.pool, image, snap).in_namespace(at.namespace);
        s.legal()
            .then_some(s)
            .ok_or_else(|| NotOurs(id.to_string()))
    }

    /// The parts are legal names (see [`crate::volume_id::legal_name`]).
    fn legal(&self) -> bool {
        self.volume().encode().is_some() && legal_name(&self.snap)
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}@{}",
            self.volume().spec(),
            self.snap,
            self.cluster_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_stable() {
        let id = SnapshotId::new("ceph1", "rbd", "csi-vol-a", "csi-snap-b");
        let s = id.encode().unwrap();
        assert_eq!(s, "s001-0005-ceph1-0003-rbd-0009-csi-vol-a-csi-snap-b");
        assert_eq!(SnapshotId::decode(&s).unwrap(), id);
        let dashy = SnapshotId::new("a-b", "p-1", "i-0002-x", "s-0001");
        assert_eq!(SnapshotId::decode(&dashy.encode().unwrap()).unwrap(), dashy);
        let ns = SnapshotId::new("ceph1", "rbd", "csi-vol-a", "csi-snap-b").in_namespace("t-1");
        let s = ns.encode().unwrap();
        assert_eq!(
            s,
            "s002-0005-ceph1-0003-rbd-0003-t-1-0009-csi-vol-a-csi-snap-b"
        );
        assert_eq!(SnapshotId::decode(&s).unwrap(), ns);
        assert_eq!(ns.volume().namespace, "t-1");
    }

    #[test]
    fn volume_and_snapshot_ids_do_not_mix() {
        let v = VolumeId::new("c", "rbd", "img").encode().unwrap();
        assert!(SnapshotId::decode(&v).is_err());
        let s = SnapshotId::new("c", "rbd", "img", "snap").encode().unwrap();
        assert!(VolumeId::decode(&s).is_err());
    }

    #[test]
    fn foreign_ids_are_rejected() {
        for bad in [
            "",
            "fake-snapshot-id",
            "s001-0005-ceph1-0003-rbd-0009-csi-vol-a-",
            "s001-0005-ceph1-0003-rbd-0009-csi-vol-a",
            "s002-0005-ceph1-0003-rbd-0009-csi-vol-a-x",
        ] {
            assert!(SnapshotId::decode(bad).is_err(), "{bad:?}");
        }
        assert!(
            SnapshotId::new("c", "p", &"i".repeat(100), "s")
                .encode()
                .is_some()
        );
        for (image, snap) in [
            ("../../x", "s"),
            ("img", "../x"),
            ("img", "a/b"),
            ("img", "s@t"),
            ("img", ".."),
            ("img", "x\0y"),
            ("a/b", "s"),
            ("img", "-s"),
        ] {
            let raw = format!("s001-0001-c-0003-rbd-{:04x}-{image}-{snap}", image.len());
            assert!(SnapshotId::decode(&raw).is_err(), "{raw:?} decoded");
            assert!(SnapshotId::new("c", "rbd", image, snap).encode().is_none());
        }
        assert!(
            SnapshotId::new("c", "p", &"i".repeat(120), "s")
                .encode()
                .is_none()
        );
    }
}
