//! Volume IDs: versioned and self-describing, so every later call (DeleteVolume, NodeStage,
//! expand, snapshot) finds the image without a lookup.
//!
//! Layout (all ASCII, at most 128 bytes, the CSI limit):
//!
//! ```text
//! 0001-<LLLL>-<clusterID>-<PPPP>-<pool>-<image>
//!  │     │                  │            └ RBD image name (rest of the string)
//!  │     │                  └ pool name length, 4 lowercase hex digits
//!  │     └ clusterID length, 4 lowercase hex digits
//!  └ layout version
//! 0002-<LLLL>-<clusterID>-<PPPP>-<pool>-<NNNN>-<namespace>-<image>
//!                                         └ RADOS namespace (layout 0002 only)
//! ```
//!
//! A volume in the default RADOS namespace keeps layout 0001 (IDs issued before namespaces
//! existed still decode, and still get issued the same); one in a namespace gets 0002.
//!
//! Length prefixes make the encoding unambiguous whatever characters the clusterID or pool
//! contain. Anything that does not decode is an ID we could not have issued: callers answer
//! NOT_FOUND (or OK for deletes).
//!
//! Every part must also be a legal name ([`legal_name`]): pool, image and snapshot names
//! reach file paths (rbd-fuse exposes `<mount>/<image>`), `pool/image@snap` specs and argv,
//! so `../../x`, `a/b`, `img@snap`, `.`/`..`, NUL, control characters, a leading `-` and
//! names over [`MAX_NAME_LEN`] bytes never decode (nor encode).

use std::fmt;

/// The layout versions of volumes: in the default RADOS namespace, in a named one.
const VERSIONS: Versions = ("0001", "0002");
/// CSI's limit on ID length.
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct VolumeId {
    pub cluster_id: String,
    pub pool: String,
    /// RADOS namespace; "" is the default one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub image: String,
}

/// Longest pool / image / snapshot name we accept (the whole ID is at most 128 bytes anyway;
/// this is the bound for a part on its own).
pub const MAX_NAME_LEN: usize = 100;

/// Is `name` usable as a Ceph pool, RBD image or snapshot name without meaning anything else:
/// 1..=[`MAX_NAME_LEN`] printable ASCII bytes, none of `/` (a path or `pool/image`), `@`
/// (`image@snap`), whitespace or control characters (NUL), not `.` or `..` (path components),
/// not starting with `-` (an option to the CLI tools). Pure.
pub fn legal_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@')
}

/// A clusterID only selects an entry of the cluster config: printable ASCII, no whitespace.
fn legal_cluster_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Why a string is not one of our IDs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a volume id issued by this driver")]
pub struct NotOurs(pub String);

impl VolumeId {
    pub fn new(cluster_id: &str, pool: &str, image: &str) -> Self {
        VolumeId {
            cluster_id: cluster_id.into(),
            pool: pool.into(),
            namespace: String::new(),
            image: image.into(),
        }
    }

    /// The same volume in RADOS namespace `ns` ("" is the default one).
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Encode; `None` when the result would exceed the CSI limit or a part is empty.
    pub fn encode(&self) -> Option<String> {
        if !self.legal() {
            return None;
        }
        let at = Located::new(&self.cluster_id, &self.pool, &self.namespace);
        at.encode(VERSIONS, &[], &self.image)
    }

    pub fn decode(id: &str) -> Result<Self, NotOurs> {
        let (at, _, image) = Located::decode(id, VERSIONS, 0).ok_or_else(|| NotOurs(id.into()))?;
        let v = VolumeId::new(at.cluster_id, at.pool, image).in_namespace(at.namespace);
        v.legal()
            .then_some(v)
            .ok_or_else(|| NotOurs(id.to_string()))
    }

    /// The image as the rbd CLI names it: `pool/image` or `pool/namespace/image`.
    pub fn spec(&self) -> String {
        match self.namespace.as_str() {
            "" => format!("{}/{}", self.pool, self.image),
            ns => format!("{}/{ns}/{}", self.pool, self.image),
        }
    }

    fn legal(&self) -> bool {
        legal_cluster_id(&self.cluster_id)
            && legal_name(&self.pool)
            && legal_name(&self.image)
            && (self.namespace.is_empty() || legal_name(&self.namespace))
    }
}

/// The codec shared by volume, snapshot and group snapshot IDs ([`Located`] on top of it):
/// `<version>-<LLLL>-<field>-…-<LLLL>-<field>-<tail>`, every field length-prefixed (4 lowercase
/// hex digits), the tail taking the rest. `None` when a part is empty or not ASCII, a field is
/// longer than 0xffff, or the result exceeds [`MAX_ID_LEN`].
pub(crate) fn encode_parts(version: &str, fields: &[&str], tail: &str) -> Option<String> {
    let all = fields.iter().chain(std::iter::once(&tail));
    if all.clone().any(|p| p.is_empty() || !p.is_ascii()) || fields.iter().any(|f| f.len() > 0xffff)
    {
        return None;
    }
    let mut s = String::from(version);
    for f in fields {
        s.push_str(&format!("-{:04x}-{f}", f.len()));
    }
    s.push('-');
    s.push_str(tail);
    (s.len() <= MAX_ID_LEN).then_some(s)
}

/// Inverse of [`encode_parts`]: the `n` fields and the (non-empty) tail, or `None` for anything
/// this driver could not have issued.
fn decode_parts<'a>(id: &'a str, version: &str, n: usize) -> Option<(Vec<&'a str>, &'a str)> {
    if id.len() > MAX_ID_LEN || !id.is_ascii() {
        return None;
    }
    let mut rest = id.strip_prefix(version)?.strip_prefix('-')?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let (f, r) = take_field(rest)?;
        fields.push(f);
        rest = r;
    }
    (!rest.is_empty()).then_some((fields, rest))
}

/// The two layout versions of one kind of ID: for the default RADOS namespace (no namespace
/// field, so IDs issued before namespaces existed still decode) and for a named one.
pub(crate) type Versions = (&'static str, &'static str);

/// Where an ID's object lives: the leading fields every kind of ID has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located<'a> {
    pub cluster_id: &'a str,
    pub pool: &'a str,
    /// "" is the default RADOS namespace.
    pub namespace: &'a str,
}

impl<'a> Located<'a> {
    pub fn new(cluster_id: &'a str, pool: &'a str, namespace: &'a str) -> Self {
        Located {
            cluster_id,
            pool,
            namespace,
        }
    }

    /// `<version>-cluster-pool[-namespace]-<extra…>-<tail>` ([`encode_parts`]): the first
    /// version without a namespace field, the second with one.
    pub fn encode(&self, v: Versions, extra: &[&str], tail: &str) -> Option<String> {
        let mut fields = vec![self.cluster_id, self.pool];
        let version = if self.namespace.is_empty() {
            v.0
        } else {
            fields.push(self.namespace);
            v.1
        };
        fields.extend_from_slice(extra);
        encode_parts(version, &fields, tail)
    }

    /// Inverse of [`Self::encode`] with `extra` extra fields: (where, extra fields, tail).
    pub fn decode(id: &'a str, v: Versions, extra: usize) -> Option<(Self, Vec<&'a str>, &'a str)> {
        let (fields, tail, named) = match decode_parts(id, v.0, 2 + extra) {
            Some((f, t)) => (f, t, false),
            None => {
                let (f, t) = decode_parts(id, v.1, 3 + extra)?;
                (f, t, true)
            }
        };
        let (at, rest) = match (named, &fields[..]) {
            (false, [c, p, rest @ ..]) => (Located::new(c, p, ""), rest),
            (true, [c, p, ns, rest @ ..]) => (Located::new(c, p, ns), rest),
            _ => return None,
        };
        Some((at, rest.to_vec(), tail))
    }
}

/// `LLLL-<value>-<rest>` -> (value, rest).
fn take_field(s: &str) -> Option<(&str, &str)> {
    let (len_hex, rest) = s.split_at_checked(4)?;
    if !len_hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let len = usize::from_str_radix(len_hex, 16).ok()?;
    let rest = rest.strip_prefix('-')?;
    let (value, rest) = rest.split_at_checked(len)?;
    if value.is_empty() {
        return None;
    }
    Some((value, rest.strip_prefix('-')?))
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.spec(), self.cluster_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cases = [
            ("c1", "rbd", "csi-vol-0b1c"),
            ("berth-local", "my-pool.x", "img"),
            ("a-b-c", "p-0001-x", "name-with-0003-dashes"),
        ];
        for (c, p, i) in cases {
            let id = VolumeId::new(c, p, i);
            let s = id.encode().unwrap();
            assert!(s.starts_with("0001-"), "{s}");
            assert_eq!(VolumeId::decode(&s).unwrap(), id, "{s}");
        }
    }

    #[test]
    fn layout_is_stable() {
        let s = VolumeId::new("ceph1", "rbd", "csi-vol-x").encode().unwrap();
        assert_eq!(s, "0001-0005-ceph1-0003-rbd-csi-vol-x");
    }

    #[test]
    fn a_namespace_is_carried_and_old_ids_still_decode() {
        let id = VolumeId::new("ceph1", "rbd", "csi-vol-x").in_namespace("tenant-a");
        let s = id.encode().unwrap();
        assert_eq!(s, "0002-0005-ceph1-0003-rbd-0008-tenant-a-csi-vol-x");
        assert_eq!(VolumeId::decode(&s).unwrap(), id);
        assert_eq!(id.spec(), "rbd/tenant-a/csi-vol-x");
        let old = VolumeId::decode("0001-0005-ceph1-0003-rbd-csi-vol-x").unwrap();
        assert_eq!(old.namespace, "");
        assert_eq!(old.spec(), "rbd/csi-vol-x");
        for bad in ["a/b", "..", "-x"] {
            let raw = format!("0002-0001-c-0003-rbd-{:04x}-{bad}-img", bad.len());
            assert!(VolumeId::decode(&raw).is_err(), "{raw:?} decoded");
        }
    }

    #[test]
    fn foreign_ids_are_rejected() {
        for bad in [
            "",
            "fake-vol-id-1234",
            "0001",
            "0001-",
            "0002-0005-ceph1-0003-rbd-x",
            "0001-0005-ceph1-0003-rbd-",
            "0001-0005-ceph1-0003-rb",
            "0001-00zz-ceph1-0003-rbd-x",
            "0001-0000--0003-rbd-x",
            "0001-0009-ceph1-0003-rbd-x",
            "0001-0005-cephé-0003-rbd-x",
        ] {
            assert!(VolumeId::decode(bad).is_err(), "{bad:?} decoded");
        }
        let long = format!("0001-0005-ceph1-0003-rbd-{}", "x".repeat(200));
        assert!(VolumeId::decode(&long).is_err());
    }

    #[test]
    fn only_legal_names_decode() {
        let legal = [
            "csi-vol-0b1c",
            "img",
            "my_image.v2",
            "..x",
            "x..",
            "a.b",
            "UPPER",
            &"n".repeat(MAX_NAME_LEN),
        ];
        for name in legal {
            assert!(legal_name(name), "{name:?}");
            let id = VolumeId::new("c", "rbd", name);
            let s = id
                .encode()
                .unwrap_or_else(|| panic!("{name:?} does not encode"));
            assert_eq!(VolumeId::decode(&s).unwrap(), id);
        }
        let hostile = [
            "",
            ".",
            "..",
            "../../x",
            "../x",
            "a/b",
            "/etc/passwd",
            "img@snap",
            "x\0y",
            "tab\there",
            "new\nline",
            "sp ace",
            "-rf",
            "--help",
            "é",
            &"n".repeat(MAX_NAME_LEN + 1),
        ];
        for name in hostile {
            assert!(!legal_name(name), "{name:?}");
            // Hand-made IDs with such a name (the codec alone would accept them) never decode.
            for (pool, image) in [("rbd", name), (name, "img")] {
                let raw = format!("0001-0001-c-{:04x}-{pool}-{image}", pool.len());
                assert!(VolumeId::decode(&raw).is_err(), "{raw:?} decoded");
                assert!(
                    VolumeId::new("c", pool, image).encode().is_none(),
                    "{raw:?}"
                );
            }
        }
        for cluster in ["a b", "x\0", "\n"] {
            let raw = format!("0001-{:04x}-{cluster}-0003-rbd-img", cluster.len());
            assert!(VolumeId::decode(&raw).is_err(), "{raw:?} decoded");
        }
    }

    #[test]
    fn too_long_ids_are_not_issued() {
        assert!(VolumeId::new("c", "p", &"x".repeat(120)).encode().is_none());
        assert!(VolumeId::new("", "p", "i").encode().is_none());
    }
}
