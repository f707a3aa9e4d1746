//! The idempotency journal: RADOS omap entries that map CSI request names to RBD objects and
//! back, so a repeated CreateVolume / CreateSnapshot returns the same object even after a
//! driver restart, and a crash between any two steps leaves something a retry completes.
//!
//! Layout (one omap object per pool, keys are ASCII, values JSON or plain names):
//!
//! ```text
//! object csi.volumes.berth
//!   vol/<request name>      -> {"image": "csi-vol-…", "size": N, "fp": "<sha256 hex>", "created": S}
//!   img/<image>             -> <request name>            (reverse key: the image is journaled)
//!   gone/<image>            -> ""                        (deleted by CSI, kept for dependents)
//!   trash/<image>           -> ""                        (deleted by CSI, in the RBD trash
//!                                                          until the purger removed its data)
//!   pub/<image>             -> {"nodes": {"<node id>": {"mode": M, "readonly": B}}}
//!                              (ControllerPublish: the nodes holding the volume; absent when none)
//! object csi.snapshots.berth
//!   snap/<request name>     -> {"image": "<source image>", "snap": "csi-snap-…", "size": N,
//!                               "fp": "<source volume id>", "created": S}
//!   sid/<image>@<snap>      -> <request name>
//! ```
//!
//! Protocols (each step idempotent; a retry redoes whatever is missing):
//! - create volume: reserve (`vol/` + `img/` in one atomic write) -> create image. A retry
//!   finds the reservation and creates the image if it is missing. Nothing is ever created
//!   before its reservation, so a crash cannot leave an unjournaled (orphan) image.
//! - delete volume: move the image to the RBD trash (quick at any size) -> `trash/<image>` set
//!   and `vol/` + `img/` dropped in one write; the purger then removes the trashed data and
//!   the `trash/` key (restart-safe: the keys are its work list). An image with snapshots is
//!   marked `gone/` instead (kept while snapshots/clones depend on it).
//! - snapshots: reserve (`snap/` + `sid/`) -> create RBD snapshot; delete: remove snapshot
//!   -> drop keys.
//! - publish / unpublish: read `pub/<image>`, decide, write it back with a compare-and-swap
//!   on the value read (one atomic RADOS op); a concurrent writer makes the swap fail and the
//!   caller reads again. One write per call, so a crash leaves the old or the new record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::connection::ceph_err;
use super::ffi::rados::IoCtx;
use crate::error::{Error, Result};

pub const VOLUMES_OID: &str = "csi.volumes.berth";
pub const SNAPSHOTS_OID: &str = "csi.snapshots.berth";

pub const VOL_PREFIX: &str = "vol/";
pub const IMG_PREFIX: &str = "img/";
pub const GONE_PREFIX: &str = "gone/";
pub const TRASH_PREFIX: &str = "trash/";
pub const SNAP_PREFIX: &str = "snap/";
pub const SID_PREFIX: &str = "sid/";
pub const PUB_PREFIX: &str = "pub/";

/// A journaled object (volume image or snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The RBD image (for a snapshot: its source image).
    pub image: String,
    /// For snapshots: the RBD snapshot name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snap: String,
    /// Bytes (the volume size, updated on expansion; the snapshot size).
    pub size: u64,
    /// Fingerprint of the request (params, capabilities, source), compared on repeats.
    pub fp: String,
    /// Seconds since the epoch when reserved.
    pub created: i64,
}

impl Entry {
    fn encode(&self) -> String {
        serde_json::to_string(self).expect("entry serialises")
    }
    fn decode(key: &str, v: &str) -> Result<Entry> {
        serde_json::from_str(v).map_err(|source| Error::JournalCorrupt {
            key: key.to_string(),
            source,
        })
    }
}

/// Which journal: volumes or snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Volume,
    Snapshot,
}

impl Kind {
    fn oid(self) -> &'static str {
        match self {
            Kind::Volume => VOLUMES_OID,
            Kind::Snapshot => SNAPSHOTS_OID,
        }
    }
    fn name_key(self, name: &str) -> String {
        match self {
            Kind::Volume => format!("{VOL_PREFIX}{name}"),
            Kind::Snapshot => format!("{SNAP_PREFIX}{name}"),
        }
    }
    /// The reverse key of an entry.
    fn object_key(self, e: &Entry) -> String {
        match self {
            Kind::Volume => format!("{IMG_PREFIX}{}", e.image),
            Kind::Snapshot => format!("{SID_PREFIX}{}@{}", e.image, e.snap),
        }
    }
    fn name_prefix(self) -> &'static str {
        match self {
            Kind::Volume => VOL_PREFIX,
            Kind::Snapshot => SNAP_PREFIX,
        }
    }
}

/// The entry reserved for request `name`, if any.
pub fn lookup(io: &IoCtx<'_>, kind: Kind, name: &str) -> Result<Option<Entry>> {
    let key = kind.name_key(name);
    let vals = io
        .omap_get(kind.oid(), &[&key])
        .map_err(|e| ceph_err(format!("read journal {}", kind.oid()), e))?;
    vals.get(&key).map(|v| Entry::decode(&key, v)).transpose()
}

/// The request name that owns an object (`img/<image>` or `sid/<image>@<snap>`), if journaled.
pub fn owner(io: &IoCtx<'_>, kind: Kind, image: &str, snap: &str) -> Result<Option<String>> {
    let probe = Entry {
        image: image.into(),
        snap: snap.into(),
        size: 0,
        fp: String::new(),
        created: 0,
    };
    let key = kind.object_key(&probe);
    let vals = io
        .omap_get(kind.oid(), &[&key])
        .map_err(|e| ceph_err(format!("read journal {}", kind.oid()), e))?;
    Ok(vals.get(&key).cloned())
}

/// Reserve `name` -> `entry` and its reverse key, atomically, only if `name` is not reserved
/// yet: the OSD checks and writes in one operation, so of two creators racing for one name
/// exactly one wins; the other gets [`Error::NameRaced`] (ABORTED) and writes nothing.
pub fn put(io: &IoCtx<'_>, kind: Kind, name: &str, entry: &Entry) -> Result<()> {
    let (k1, k2) = (kind.name_key(name), kind.object_key(entry));
    match io.omap_update_if_absent(kind.oid(), &k1, &[(&k1, &entry.encode()), (&k2, name)], &[]) {
        Err(e) if e.0 == libc::ECANCELED => Err(Error::NameRaced {
            name: name.to_string(),
        }),
        r => r.map_err(|e| ceph_err(format!("write journal {}", kind.oid()), e)),
    }
}

/// Rewrite the entry of an already reserved `name` (same object; e.g. a new size).
pub fn rewrite(io: &IoCtx<'_>, kind: Kind, name: &str, entry: &Entry) -> Result<()> {
    let (k1, k2) = (kind.name_key(name), kind.object_key(entry));
    io.omap_update(kind.oid(), &[(&k1, &entry.encode()), (&k2, name)], &[])
        .map_err(|e| ceph_err(format!("write journal {}", kind.oid()), e))
}

/// Drop `name` and the reverse key of `image` (`@snap` for snapshots), atomically.
pub fn remove(io: &IoCtx<'_>, kind: Kind, name: &str, image: &str, snap: &str) -> Result<()> {
    let probe = Entry {
        image: image.into(),
        snap: snap.into(),
        size: 0,
        fp: String::new(),
        created: 0,
    };
    let (k1, k2) = (kind.name_key(name), kind.object_key(&probe));
    io.omap_update(kind.oid(), &[], &[&k1, &k2])
        .or_else(|e| if e.0 == libc::ENOENT { Ok(()) } else { Err(e) })
        .map_err(|e| ceph_err(format!("write journal {}", kind.oid()), e))
}

/// Mark `image` as deleted-but-kept (dependents remain), dropping its name keys, atomically.
pub fn mark_gone(io: &IoCtx<'_>, name: Option<&str>, image: &str) -> Result<()> {
    let gone = format!("{GONE_PREFIX}{image}");
    let reverse = format!("{IMG_PREFIX}{image}");
    let mut rm = vec![reverse];
    if let Some(n) = name {
        rm.push(Kind::Volume.name_key(n));
    }
    let rm: Vec<&str> = rm.iter().map(String::as_str).collect();
    io.omap_update(VOLUMES_OID, &[(&gone, "")], &rm)
        .map_err(|e| ceph_err(format!("write journal {VOLUMES_OID}"), e))
}

/// Images marked gone (every page of them).
pub fn gone_images(io: &IoCtx<'_>) -> Result<Vec<String>> {
    names_under(io, GONE_PREFIX)
}

/// Images moved to the trash whose data the purger has not removed yet.
pub fn trashed_images(io: &IoCtx<'_>) -> Result<Vec<String>> {
    names_under(io, TRASH_PREFIX)
}

/// Record that `image` went to the trash, dropping its name keys, atomically.
pub fn mark_trashed(io: &IoCtx<'_>, name: Option<&str>, image: &str) -> Result<()> {
    let trash = format!("{TRASH_PREFIX}{image}");
    let mut rm = vec![format!("{IMG_PREFIX}{image}")];
    if let Some(n) = name {
        rm.push(Kind::Volume.name_key(n));
    }
    let rm: Vec<&str> = rm.iter().map(String::as_str).collect();
    io.omap_update(VOLUMES_OID, &[(&trash, "")], &rm)
        .map_err(|e| ceph_err(format!("write journal {VOLUMES_OID}"), e))
}

/// Forget a trashed image (its data is gone), or turn it into a gone one (`to_gone`: it was
/// restored from the trash because something still depends on it).
pub fn forget_trashed(io: &IoCtx<'_>, image: &str, to_gone: bool) -> Result<()> {
    let trash = format!("{TRASH_PREFIX}{image}");
    let gone = format!("{GONE_PREFIX}{image}");
    let set: &[(&str, &str)] = if to_gone { &[(&gone, "")] } else { &[] };
    io.omap_update(VOLUMES_OID, set, &[&trash])
        .map_err(|e| ceph_err(format!("write journal {VOLUMES_OID}"), e))
}

/// A gone image whose dependents went: now in the trash (`gone/` -> `trash/`), atomically.
pub fn gone_to_trashed(io: &IoCtx<'_>, image: &str) -> Result<()> {
    let trash = format!("{TRASH_PREFIX}{image}");
    let gone = format!("{GONE_PREFIX}{image}");
    io.omap_update(VOLUMES_OID, &[(&trash, "")], &[&gone])
        .map_err(|e| ceph_err(format!("write journal {VOLUMES_OID}"), e))
}

/// The names after `prefix` of every key under it (every page).
fn names_under(io: &IoCtx<'_>, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = io
            .omap_list(VOLUMES_OID, &after, prefix, 1000)
            .map_err(|e| ceph_err(format!("read journal {VOLUMES_OID}"), e))?;
        let Some((last, _)) = page.entries.last() else {
            break;
        };
        after = last.clone();
        out.extend(
            page.entries
                .into_iter()
                .filter_map(|(k, _)| k.strip_prefix(prefix).map(str::to_string)),
        );
        if !page.more {
            break;
        }
    }
    Ok(out)
}

/// Forget a gone image (after it was finally removed).
pub fn forget_gone(io: &IoCtx<'_>, image: &str) -> Result<()> {
    let gone = format!("{GONE_PREFIX}{image}");
    io.omap_update(VOLUMES_OID, &[], &[&gone])
        .map_err(|e| ceph_err(format!("write journal {VOLUMES_OID}"), e))
}

/// Up to `max` (name, entry) pairs after request name `after` ("" = from the start).
pub fn page(
    io: &IoCtx<'_>,
    kind: Kind,
    after: &str,
    max: u64,
) -> Result<(Vec<(String, Entry)>, bool)> {
    let start = if after.is_empty() {
        String::new()
    } else {
        kind.name_key(after)
    };
    let page = io
        .omap_list(kind.oid(), &start, kind.name_prefix(), max)
        .map_err(|e| ceph_err(format!("read journal {}", kind.oid()), e))?;
    let mut out = Vec::with_capacity(page.entries.len());
    for (k, v) in page.entries {
        let Some(name) = k.strip_prefix(kind.name_prefix()) else {
            continue;
        };
        out.push((name.to_string(), Entry::decode(&k, &v)?));
    }
    Ok((out, page.more))
}

/// One node holding a published volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The CSI access mode it was published with (wire value).
    pub mode: i32,
    pub readonly: bool,
    /// Block (true) or filesystem access.
    #[serde(default)]
    pub block: bool,
}

/// The nodes a volume is published to (`pub/<image>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publications {
    pub nodes: BTreeMap<String, Holder>,
}

/// The publications of `image` and the raw value they came from (for [`swap_publications`]).
pub fn publications(io: &IoCtx<'_>, image: &str) -> Result<(Option<String>, Publications)> {
    let key = format!("{PUB_PREFIX}{image}");
    let vals = io
        .omap_get(VOLUMES_OID, &[&key])
        .map_err(|e| ceph_err(format!("read journal {VOLUMES_OID}"), e))?;
    let Some(raw) = vals.get(&key) else {
        return Ok((None, Publications::default()));
    };
    let p = serde_json::from_str(raw).map_err(|source| Error::JournalCorrupt {
        key: key.clone(),
        source,
    })?;
    Ok((Some(raw.clone()), p))
}

/// Replace the publications of `image` if they are still `old_raw` (as read); `Ok(false)`
/// when another writer changed them meanwhile. No nodes left removes the key.
pub fn swap_publications(
    io: &IoCtx<'_>,
    image: &str,
    old_raw: Option<&str>,
    new: &Publications,
) -> Result<bool> {
    let key = format!("{PUB_PREFIX}{image}");
    let text = (!new.nodes.is_empty())
        .then(|| serde_json::to_string(new).expect("publications serialise"));
    match io.omap_swap(VOLUMES_OID, &key, old_raw, text.as_deref()) {
        Ok(()) => Ok(true),
        Err(e) if e.0 == libc::ECANCELED => Ok(false),
        Err(e) => Err(ceph_err(format!("write journal {VOLUMES_OID}"), e)),
    }
}

/// Whether `image` was deleted through CSI and is only kept for its dependents.
pub fn is_gone(io: &IoCtx<'_>, image: &str) -> Result<bool> {
    let key = format!("{GONE_PREFIX}{image}");
    let vals = io
        .omap_get(VOLUMES_OID, &[&key])
        .map_err(|e| ceph_err(format!("read journal {VOLUMES_OID}"), e))?;
    Ok(vals.contains_key(&key))
}
