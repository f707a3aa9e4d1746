//! The stash: what the node must remember about a staged volume, because NodeUnstage,
//! NodeUnpublish, stats, expand and restart recovery get no volume context and no secrets.
//!
//! Where: `<state_dir>/volumes/<h>/` with `h` = the first 16 hex digits of SHA-256(staging
//! path). One private (0700) directory per staging path holds `stash.json` and the client
//! files (`ceph.conf`, `key`, see [`crate::attach::client`]) and, for the fuse attacher, the
//! rbd-fuse mount point `fuse/` and its log. It lives in the plugin's state dir rather than
//! beside the staging path (ceph-csi's choice) so the cephx key never lands in kubelet's
//! directories and recovery can list every staged volume with one readdir.
//!
//! `stash.json` (version 1):
//! ```json
//! {"version":1,"volume_id":"0001-…","staging_path":"/var/lib/kubelet/…/globalmount",
//!  "capability":{"access":{"type":"mount","fs_type":"ext4","flags":[]},"mode":1},
//!  "user":"csi","map_options":"","attached":{"kind":"fuse","device":"/dev/loop3",
//!  "fuse":{"dir":"…/fuse","file":"…/fuse/img"}},"fs":"ext4","complete":true,
//!  "publishes":{"/var/lib/kubelet/pods/…/mount":{"readonly":false,"capability":{…}}}}
//! ```
//! `complete` is false while NodeStage runs: a stash left incomplete by a crash is cleaned
//! up by recovery (kubelet stages again).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::request::Capability;
use crate::attach::client::{self, private_dir};
use crate::attach::{Attached, ImageSpec, Kind};
use crate::error::Error;
use crate::mount::mountinfo;
use crate::volume_id::VolumeId;

pub const VERSION: u32 = 1;
const FILE: &str = "stash.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub readonly: bool,
    pub capability: Capability,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stash {
    pub version: u32,
    pub volume_id: String,
    /// The image of a static volume (whose id is any string; see [`crate::static_volume`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_image: Option<VolumeId>,
    pub staging_path: PathBuf,
    pub capability: Capability,
    pub user: String,
    pub mounter: Kind,
    #[serde(default)]
    pub map_options: String,
    #[serde(default)]
    pub attached: Option<Attached>,
    /// The filesystem actually mounted (an existing one wins over the requested type).
    #[serde(default)]
    pub fs: Option<String>,
    pub complete: bool,
    #[serde(default)]
    pub publishes: BTreeMap<PathBuf, Publish>,
}

impl Stash {
    /// The image this volume's device must map (see [`crate::attach::identity`]); None for an
    /// id that does not decode, whose devices are then never trusted.
    pub fn image(&self) -> Option<ImageSpec> {
        let v = self.volume()?;
        Some(ImageSpec::volume(&v.pool, &v.namespace, &v.image))
    }

    /// The volume: a static volume's recorded image, else the decoded id.
    pub fn volume(&self) -> Option<VolumeId> {
        match &self.static_image {
            Some(v) => Some(v.clone()),
            None => VolumeId::decode(&self.volume_id).ok(),
        }
    }

    /// [`Stash::image`], or an error naming the volume.
    pub fn want(&self) -> Result<ImageSpec, Error> {
        self.image().ok_or_else(|| Error::StashVolumeId {
            volume: self.volume_id.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(context, e)
}

impl Store {
    pub fn new(state_dir: &Path) -> Result<Store, Error> {
        let root = state_dir.join("volumes");
        private_dir(&root).map_err(io(format!("create {}", root.display())))?;
        Ok(Store { root })
    }

    /// The private directory of the volume staged at `staging`.
    pub fn dir(&self, staging: &Path) -> PathBuf {
        let digest = Sha256::digest(staging.as_os_str().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.root.join(hex)
    }

    pub fn load(&self, staging: &Path) -> Result<Option<Stash>, Error> {
        let s = read(&self.dir(staging).join(FILE))?;
        Ok(s.filter(|s| s.staging_path == staging))
    }

    /// Write atomically (temp file + rename), 0600.
    pub fn save(&self, stash: &Stash) -> Result<(), Error> {
        use std::io::Write;
        let dir = self.dir(&stash.staging_path);
        private_dir(&dir).map_err(io(format!("create {}", dir.display())))?;
        let path = dir.join(FILE);
        let tmp = dir.join("stash.json.tmp");
        let text = serde_json::to_vec_pretty(stash).map_err(Error::StashEncode)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(format!("write {}", tmp.display())))?;
        // No fsync: the rename keeps the file whole; a power loss takes the mounts with it,
        // and an fsync per step would cost NodeStage milliseconds on every call.
        f.write_all(&text)
            .map_err(io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("rename to {}", path.display())))
    }

    /// Remove the volume's directory: the stash, the key and logs. Never recursive: a mount
    /// still inside (a fuse mount point) is refused, so no file of a mounted image is touched.
    pub fn remove(&self, staging: &Path) -> Result<(), Error> {
        let dir = self.dir(staging);
        if mountinfo::read()
            .unwrap_or_default()
            .iter()
            .any(|m| m.target.starts_with(&dir))
        {
            return Err(Error::MountInside {
                dir: dir.to_path_buf(),
            });
        }
        let _ = std::fs::remove_dir(dir.join("fuse"));
        for f in [
            FILE,
            "stash.json.tmp",
            client::CONF,
            client::KEY,
            "ceph-client.log",
            "rbd-fuse.log",
        ] {
            match std::fs::remove_file(dir.join(f)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}/{f}", dir.display()), e)),
            }
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", dir.display()), e)),
        }
    }

    /// Every stash on this node (unreadable ones are logged and skipped).
    pub fn all(&self) -> Vec<Stash> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            match read(&e.path().join(FILE)) {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(err) => tracing::warn!(dir = %e.path().display(), "unreadable stash: {err}"),
            }
        }
        out
    }

    pub fn by_volume(&self, volume_id: &str) -> Vec<Stash> {
        self.all()
            .into_iter()
            .filter(|s| s.volume_id == volume_id)
            .collect()
    }
}

fn read(path: &Path) -> Result<Option<Stash>, Error> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    let stash: Stash = serde_json::from_slice(&text).map_err(|source| Error::StashCorrupt {
        path: path.to_path_buf(),
        source,
    })?;
    if stash.version != VERSION {
        return Err(Error::StashVersion {
            path: path.to_path_buf(),
            version: stash.version,
            want: VERSION,
        });
    }
    Ok(Some(stash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::request::Access;

    fn stash(staging: &str, vol: &str) -> Stash {
        Stash {
            version: VERSION,
            volume_id: vol.into(),
            static_image: None,
            staging_path: staging.into(),
            capability: Capability {
                access: Access::Block,
                mode: 1,
            },
            user: "csi".into(),
            mounter: Kind::Fuse,
            map_options: String::new(),
            attached: None,
            fs: None,
            complete: false,
            publishes: BTreeMap::new(),
        }
    }

    #[test]
    fn save_load_list_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path()).unwrap();
        assert_eq!(store.load(Path::new("/s/1")).unwrap(), None);
        let mut a = stash("/s/1", "v1");
        a.publishes.insert(
            "/t/1".into(),
            Publish {
                readonly: true,
                capability: a.capability.clone(),
            },
        );
        store.save(&a).unwrap();
        store.save(&stash("/s/2", "v2")).unwrap();
        assert_eq!(store.load(Path::new("/s/1")).unwrap(), Some(a.clone()));
        assert_eq!(store.all().len(), 2);
        assert_eq!(store.by_volume("v2").len(), 1);
        assert_ne!(store.dir(Path::new("/s/1")), store.dir(Path::new("/s/2")));
        store.remove(Path::new("/s/1")).unwrap();
        store.remove(Path::new("/s/1")).unwrap();
        assert_eq!(store.load(Path::new("/s/1")).unwrap(), None);
        assert_eq!(store.all().len(), 1);
    }
}
