//! Volume group snapshot IDs, in the style of [`crate::volume_id`]: versioned and
//! self-describing, so Get/DeleteVolumeGroupSnapshot find the pool and the journal entry
//! without a lookup. Every member of a group snapshot is in one pool.
//!
//! Layout (ASCII, at most 128 bytes):
//!
//! ```text
//! g001-<LLLL>-<clusterID>-<PPPP>-<pool>-<id>
//!  │     │                  │             └ the group snapshot's own id (hex, the rest)
//!  │     │                  └ pool name length, 4 hex digits
//!  │     └ clusterID length, 4 hex digits
//!  └ layout version ("g": never decodes as a volume or snapshot ID)
//! g002-<LLLL>-<clusterID>-<PPPP>-<pool>-<NNNN>-<namespace>-<id>   (a named RADOS namespace)
//! ```

use std::fmt;

use crate::volume_id::{Located, NotOurs, Versions, VolumeId};

/// Layout versions: default RADOS namespace, named one.
const VERSIONS: Versions = ("g001", "g002");

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupSnapshotId {
    pub cluster_id: String,
    pub pool: String,
    /// RADOS namespace; "" is the default one.
    pub namespace: String,
    /// Lowercase hex; names the journal entry and the RBD objects of the group snapshot.
    pub id: String,
}

impl GroupSnapshotId {
    pub fn new(cluster_id: &str, pool: &str, id: &str) -> Self {
        GroupSnapshotId {
            cluster_id: cluster_id.into(),
            pool: pool.into(),
            namespace: String::new(),
            id: id.into(),
        }
    }

    /// The same group snapshot in RADOS namespace `ns` ("" is the default one).
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Encode; `None` when a part is not legal or the result exceeds 128 bytes.
    pub fn encode(&self) -> Option<String> {
        if !self.legal() {
            return None;
        }
        let at = Located::new(&self.cluster_id, &self.pool, &self.namespace);
        at.encode(VERSIONS, &[], &self.id)
    }

    pub fn decode(id: &str) -> Result<Self, NotOurs> {
        let (at, _, gid) = Located::decode(id, VERSIONS, 0).ok_or_else(|| NotOurs(id.into()))?;
        let g = GroupSnapshotId::new(at.cluster_id, at.pool, gid).in_namespace(at.namespace);
        g.legal()
            .then_some(g)
            .ok_or_else(|| NotOurs(id.to_string()))
    }

    /// Cluster, pool and namespace as a volume ID has them; the id 1..=32 lowercase hex digits.
    fn legal(&self) -> bool {
        VolumeId::new(&self.cluster_id, &self.pool, "x")
            .in_namespace(&self.namespace)
            .encode()
            .is_some()
            && (1..=32).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

impl fmt::Display for GroupSnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace.as_str() {
            "" => write!(f, "{}/group-{}@{}", self.pool, self.id, self.cluster_id),
            ns => write!(
                f,
                "{}/{ns}/group-{}@{}",
                self.pool, self.id, self.cluster_id
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot_id::SnapshotId;

    #[test]
    fn round_trips_and_is_stable() {
        let g = GroupSnapshotId::new("ceph1", "rbd", "0123abcd");
        let s = g.encode().unwrap();
        assert_eq!(s, "g001-0005-ceph1-0003-rbd-0123abcd");
        assert_eq!(GroupSnapshotId::decode(&s).unwrap(), g);
        let n = GroupSnapshotId::new("ceph1", "rbd", "0123abcd").in_namespace("tenant");
        let s = n.encode().unwrap();
        assert_eq!(s, "g002-0005-ceph1-0003-rbd-0006-tenant-0123abcd");
        assert_eq!(GroupSnapshotId::decode(&s).unwrap(), n);
    }

    #[test]
    fn other_ids_do_not_decode() {
        let v = VolumeId::new("c", "rbd", "abc").encode().unwrap();
        let s = SnapshotId::new("c", "rbd", "img", "abc").encode().unwrap();
        for bad in [
            v.as_str(),
            s.as_str(),
            "",
            "fake-group-snapshot-id",
            "g001-0001-c-0003-rbd-",
            "g001-0001-c-0003-rbd-XYZ",
            "g001-0001-c-0003-rbd-../x",
            "g002-0001-c-0003-rbd-abc",
        ] {
            assert!(GroupSnapshotId::decode(bad).is_err(), "{bad:?}");
        }
        let g = GroupSnapshotId::new("c", "rbd", "abc").encode().unwrap();
        assert!(VolumeId::decode(&g).is_err());
        assert!(SnapshotId::decode(&g).is_err());
        assert!(GroupSnapshotId::new("c", "rbd", "").encode().is_none());
        assert!(
            GroupSnapshotId::new("c", "rbd", &"a".repeat(33))
                .encode()
                .is_none()
        );
    }
}
