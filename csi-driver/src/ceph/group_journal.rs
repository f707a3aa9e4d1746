//! The idempotency journal of volume group snapshots (RADOS omap, beside
//! [`super::journal`]): request name -> group snapshot, and its members' snapshots registered
//! in the snapshot journal's reverse keys, so CreateVolume takes a member as a content source.
//!
//! Layout:
//!
//! ```text
//! object csi.groups.berth
//!   gsnap/<request name>  -> {"id": "<hex>", "fp": "<sorted source volume ids>",
//!                            "members": [{"source": "<image>", "image": "csi-gsnap-<id>-<i>",
//!                                         "snap": "csi-snap-<id>-<i>", "size": N}], "created": S}
//!   gid/<id>              -> <request name>
//! object csi.snapshots.berth
//!   sid/<member image>@<member snap> -> "group:<id>"   (see [`GROUP_OWNER`])
//! ```
//!
//! Protocol: reserve (`gsnap/` + `gid/`, atomic, only if absent) -> register the members'
//! `sid/` keys -> make the members (controller/group.rs) ; delete: remove the members' data
//! -> drop the `sid/` keys -> drop `gsnap/` + `gid/`. Every step is idempotent, so a retry
//! after a crash redoes what is missing.

use serde::{Deserialize, Serialize};

use super::connection::ceph_err;
use super::ffi::rados::IoCtx;
use super::journal::{SID_PREFIX, SNAPSHOTS_OID};
use crate::error::{Error, Result};

pub const GROUPS_OID: &str = "csi.groups.berth";
pub const GSNAP_PREFIX: &str = "gsnap/";
pub const GID_PREFIX: &str = "gid/";
/// The owner a member snapshot has in the snapshot journal (`sid/` value): `group:<id>`.
pub const GROUP_OWNER: &str = "group:";

/// One member of a group snapshot: the copy of one source image at the group's point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The source volume's image.
    pub source: String,
    /// The image holding the member's data (a copy of the source at the group snapshot).
    pub image: String,
    /// The user snapshot of `image` that volumes are cloned from.
    pub snap: String,
    pub size: u64,
}

/// A journaled group snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    pub id: String,
    /// The request's source volume IDs, sorted and joined: same name + same sources is the
    /// same group snapshot.
    pub fp: String,
    pub members: Vec<Member>,
    pub created: i64,
}

fn read(io: &IoCtx<'_>, key: &str) -> Result<Option<String>> {
    let vals = io
        .omap_get(GROUPS_OID, &[key])
        .map_err(|e| ceph_err(format!("read journal {GROUPS_OID}"), e))?;
    Ok(vals.get(key).cloned())
}

fn decode(key: &str, v: &str) -> Result<GroupEntry> {
    serde_json::from_str(v).map_err(|source| Error::JournalCorrupt {
        key: key.to_string(),
        source,
    })
}

/// The group snapshot reserved for request `name`, if any.
pub fn lookup(io: &IoCtx<'_>, name: &str) -> Result<Option<GroupEntry>> {
    let key = format!("{GSNAP_PREFIX}{name}");
    read(io, &key)?.map(|v| decode(&key, &v)).transpose()
}

/// The request name and entry of group snapshot `id`, if journaled.
pub fn by_id(io: &IoCtx<'_>, id: &str) -> Result<Option<(String, GroupEntry)>> {
    let Some(name) = read(io, &format!("{GID_PREFIX}{id}"))? else {
        return Ok(None);
    };
    Ok(lookup(io, &name)?.map(|e| (name, e)))
}

/// Reserve `name` -> `entry` (+ `gid/`), atomically, only if `name` is not reserved yet.
pub fn put(io: &IoCtx<'_>, name: &str, entry: &GroupEntry) -> Result<()> {
    let k1 = format!("{GSNAP_PREFIX}{name}");
    let k2 = format!("{GID_PREFIX}{}", entry.id);
    let v = serde_json::to_string(entry).expect("group entry serialises");
    match io.omap_update_if_absent(GROUPS_OID, &k1, &[(&k1, &v), (&k2, name)], &[]) {
        Err(e) if e.0 == libc::ECANCELED => Err(Error::NameRaced {
            name: name.to_string(),
        }),
        r => r.map_err(|e| ceph_err(format!("write journal {GROUPS_OID}"), e)),
    }
}

fn member_keys(entry: &GroupEntry) -> Vec<String> {
    entry
        .members
        .iter()
        .map(|m| format!("{SID_PREFIX}{}@{}", m.image, m.snap))
        .collect()
}

/// Register the members in the snapshot journal (owner `group:<id>`).
pub fn register_members(io: &IoCtx<'_>, entry: &GroupEntry) -> Result<()> {
    let owner = format!("{GROUP_OWNER}{}", entry.id);
    let keys = member_keys(entry);
    let set: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), owner.as_str())).collect();
    io.omap_update(SNAPSHOTS_OID, &set, &[])
        .map_err(|e| ceph_err(format!("write journal {SNAPSHOTS_OID}"), e))
}

/// Drop the members' snapshot-journal keys, then the group snapshot's own keys.
pub fn remove(io: &IoCtx<'_>, name: &str, entry: &GroupEntry) -> Result<()> {
    let keys = member_keys(entry);
    let rm: Vec<&str> = keys.iter().map(String::as_str).collect();
    io.omap_update(SNAPSHOTS_OID, &[], &rm)
        .or_else(|e| if e.0 == libc::ENOENT { Ok(()) } else { Err(e) })
        .map_err(|e| ceph_err(format!("write journal {SNAPSHOTS_OID}"), e))?;
    let (k1, k2) = (
        format!("{GSNAP_PREFIX}{name}"),
        format!("{GID_PREFIX}{}", entry.id),
    );
    io.omap_update(GROUPS_OID, &[], &[&k1, &k2])
        .or_else(|e| if e.0 == libc::ENOENT { Ok(()) } else { Err(e) })
        .map_err(|e| ceph_err(format!("write journal {GROUPS_OID}"), e))
}
