//! NodeStageVolume / NodeUnstageVolume.
//!
//! Stage: attach the image -> blkid -> mkfs only when the device provably holds nothing (its
//! edges read back, see [`crate::mount::empty`]) and the image carries no format mark
//! ([`crate::attach::meta`]) -> mark the image -> mount at the staging path (xfs with
//! nouuid) -> stash. Each step is recorded before the next, and a failure undoes exactly what
//! was done. An existing filesystem always wins over the requested fs type: a volume with
//! data is never reformatted. Reader-only access modes attach read-only and mount `ro`
//! without journal replay; they never mkfs, fsck, grow or mark. A recorded device is trusted
//! only while it maps the volume's image ([`crate::attach::identity`]).
//!
//! Unstage: unmount, detach, remove the stash (and with it the key file). Not staged -> OK.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::Shared;
use super::request::{Access, Capability};
use super::stash::{Stash, VERSION};
use crate::attach::client::ClientFiles;
use crate::attach::{AttachError, Attached, Kind, Mounter, Target, attacher, device, meta};
use crate::credentials::Credentials;
use crate::error::Error;
use crate::mount::format::{self, Content};
use crate::mount::{MountError, MountOptions, grow, mountinfo, ops};
use crate::volume_id::VolumeId;

/// A checked NodeStageVolume request.
#[derive(Debug)]
pub struct StageArgs {
    pub id: String,
    pub volume: VolumeId,
    pub staging: PathBuf,
    pub capability: Capability,
    pub credentials: Credentials,
    pub mounter: Mounter,
    pub map_options: String,
    /// `unmapOptions` (krbd/nbd `rbd unmap -o`), validated; refused with mounter=fuse.
    pub unmap_options: String,
    pub mkfs_options: Option<String>,
    /// File encryption: the KEK of the node-stage secrets (see [`super::encrypt`]).
    pub kek: Option<crate::kms::Kek>,
}

/// Is a complete stash still what it says: device usable and, for filesystems, mounted?
fn healthy(s: &Stash) -> bool {
    let (Some(a), Some(want)) = (&s.attached, s.image()) else {
        return false;
    };
    if attacher(a.kind).check(a, &want).is_err() {
        return false;
    }
    match s.capability.access {
        Access::Block => true,
        Access::Mount { .. } => mountinfo::read().is_ok_and(|t| {
            mountinfo::find(&t, &s.staging_path)
                .is_some_and(|m| m.source == a.device.to_string_lossy())
        }),
    }
}

pub fn stage(node: &Shared, a: StageArgs) -> Result<(), Error> {
    if let Some(s) = node.store.load(&a.staging)? {
        if s.volume_id != a.id {
            return Err(Error::StagingPathTaken {
                path: a.staging.clone(),
                volume: s.volume_id,
            });
        }
        if s.capability != a.capability {
            return Err(Error::StagedDifferently {
                volume: a.id.clone(),
                path: a.staging.clone(),
            });
        }
        if s.complete && healthy(&s) {
            return Ok(());
        }
        tracing::warn!(volume = %a.id, staging = %a.staging.display(),
            "earlier staging is incomplete or broken; tearing it down and staging again");
        teardown(node, &s)?;
    }
    if let Some(other) = node
        .store
        .by_volume(&a.id)
        .into_iter()
        .find(|s| s.staging_path != a.staging)
    {
        return Err(Error::StagedElsewhere {
            volume: a.id.clone(),
            path: other.staging_path,
        });
    }
    let mon_host = node.config.clusters.mon_host(&a.volume.cluster_id)?;
    let (kind, why) = a.mounter.resolve();
    if let Some(why) = why {
        tracing::info!(volume = %a.id, mounter = kind.name(), "mounter=auto chose {}: {why}", kind.name());
    }
    if kind == Kind::Fuse && !a.unmap_options.is_empty() {
        if a.mounter == Mounter::Fixed(Kind::Fuse) {
            return Err(Error::UnmapOptionsWithFuse {
                options: a.unmap_options.clone(),
            });
        }
        tracing::warn!(volume = %a.id, unmap_options = %a.unmap_options,
            "mounter=auto chose fuse, which has no unmap options: ignoring unmapOptions");
    }
    let dir = node.store.dir(&a.staging);
    let client = ClientFiles::write(&dir, &mon_host, &a.credentials)
        .map_err(|e| Error::io(format!("write client files in {}", dir.display()), e))?;
    // An encrypted volume's key opens before anything is attached or formatted.
    let key = match &a.kek {
        Some(_) if a.capability.is_block() => return Err(Error::EncryptionNeedsFilesystem),
        Some(kek) => Some(super::encrypt::master_key(
            &client,
            &a.volume.spec(),
            &a.volume.image,
            kek,
        )?),
        None => None,
    };
    let mut stash = Stash {
        version: VERSION,
        volume_id: a.id.clone(),
        static_image: (VolumeId::decode(&a.id).ok() != Some(a.volume.clone()))
            .then(|| a.volume.clone()),
        staging_path: a.staging.clone(),
        capability: a.capability.clone(),
        user: a.credentials.user.clone(),
        mounter: kind,
        map_options: a.map_options.clone(),
        attached: None,
        fs: None,
        complete: false,
        publishes: BTreeMap::new(),
    };
    let result = node.store.save(&stash).and_then(|_| {
        super::fence::check(&client, &a.volume, a.capability.mode)?;
        attach_and_mount(node, &mut stash, &a, &client)?;
        if let Some(key) = &key {
            super::encrypt::unlock(&a.staging, key)?;
        }
        stash.complete = true;
        node.store.save(&stash)
    });
    if let Err(e) = result {
        if let Err(undo) = teardown(node, &stash) {
            tracing::error!(volume = %a.id, "undoing a failed stage: {undo}");
        }
        return Err(e);
    }
    tracing::info!(volume = %a.id, staging = %a.staging.display(), mounter = kind.name(),
        device = ?stash.attached.as_ref().map(|x| &x.device), fs = ?stash.fs, "staged");
    Ok(())
}

fn attach_and_mount(
    node: &Shared,
    stash: &mut Stash,
    a: &StageArgs,
    client: &ClientFiles,
) -> Result<(), Error> {
    let work_dir = node.store.dir(&a.staging);
    let target = Target {
        pool: &a.volume.pool,
        namespace: &a.volume.namespace,
        image: &a.volume.image,
        client,
        map_options: &a.map_options,
        unmap_options: &a.unmap_options,
        read_only: a.capability.read_only_mode(),
        work_dir: &work_dir,
    };
    // The image's format mark is read while the device attaches (both wait on the cluster).
    let mark = (!a.capability.is_block()).then(|| MarkLookup::start(client, &a.volume));
    let t0 = std::time::Instant::now();
    let attached = attacher(stash.mounter).attach(&target)?;
    tracing::debug!(volume = %a.id, ms = t0.elapsed().as_millis() as u64, "attached");
    stash.attached = Some(attached.clone());
    node.store.save(stash)?;
    if let (Access::Mount { fs_type, flags }, Some(mark)) = (&a.capability.access, mark) {
        let image = ImageRef {
            volume: &a.volume,
            client,
        };
        let mkfs = match a.kek {
            Some(_) => Some(super::encrypt::mkfs_options(a.mkfs_options.as_deref())),
            None => a.mkfs_options.clone(),
        };
        let request = FsRequest {
            fs_type,
            flags,
            mkfs_options: mkfs.as_deref(),
            read_only: a.capability.read_only_mode(),
        };
        stash.fs = Some(mount_filesystem(
            &attached, &a.staging, &request, &image, mark,
        )?);
    }
    Ok(())
}

/// The image behind a device, for its format mark.
struct ImageRef<'a> {
    volume: &'a VolumeId,
    client: &'a ClientFiles,
}

impl ImageRef<'_> {
    fn name(&self) -> String {
        self.volume.spec()
    }
}

/// The image's `berth.dev/formatted` mark, read in the background.
struct MarkLookup(Option<JoinHandle<Result<Option<String>, AttachError>>>);

impl MarkLookup {
    fn start(client: &ClientFiles, volume: &VolumeId) -> MarkLookup {
        let (client, spec) = (client.clone(), volume.spec());
        MarkLookup(Some(std::thread::spawn(move || {
            meta::formatted(&client, &spec)
        })))
    }

    fn wait(mut self) -> Result<Option<String>, AttachError> {
        self.join()
    }

    fn join(&mut self) -> Result<Option<String>, AttachError> {
        match self.0.take() {
            Some(lookup) => lookup.join().unwrap_or(Err(AttachError::LookupPanicked)),
            None => Ok(None),
        }
    }
}

impl Drop for MarkLookup {
    /// The lookup runs `rbd` with this stage's client files. A stage that fails before it
    /// needs the answer (attach refused, device unreadable) still waits for it — bounded by
    /// the program timeout — so no `rbd` outlives the stage or reads files its undo removes.
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// What the capability and the volume context ask of the filesystem.
struct FsRequest<'a> {
    fs_type: &'a str,
    flags: &'a [String],
    mkfs_options: Option<&'a str>,
    /// Reader-only access: never mkfs, fsck, grow or mark; mount `ro` without journal replay.
    read_only: bool,
}

/// blkid -> mkfs only when provably empty and the image carries no format mark -> grow
/// offline if needed -> mount. Returns the fs mounted.
fn mount_filesystem(
    attached: &Attached,
    staging: &Path,
    req: &FsRequest<'_>,
    image: &ImageRef<'_>,
    mark: MarkLookup,
) -> Result<String, Error> {
    let (requested, read_only) = (req.fs_type, req.read_only);
    let dev = &attached.device;
    ops::ensure_dir(staging)?;
    let t0 = std::time::Instant::now();
    let content = format::detect(dev)?;
    tracing::debug!(device = %dev.display(), ms = t0.elapsed().as_millis() as u64, ?content, "probed");
    let (fs, existing) = match content {
        Content::Empty if read_only => {
            return Err(Error::BlankReaderOnly {
                image: image.name(),
            });
        }
        Content::Empty => {
            let marked = mark.wait().map_err(|source| Error::FormatMarkUnreadable {
                device: dev.clone(),
                image: image.name(),
                source: Box::new(source),
            })?;
            if let Some(fs) = marked {
                return Err(Error::MarkedButEmpty {
                    image: image.name(),
                    fs,
                    key: meta::FORMATTED,
                    device: dev.clone(),
                });
            }
            format::mkfs(dev, requested, req.mkfs_options)?;
            meta::mark_formatted(image.client, &image.name(), requested).map_err(|source| {
                Error::MarkFailed {
                    fs: requested.to_string(),
                    device: dev.clone(),
                    image: image.name(),
                    source: Box::new(source),
                }
            })?;
            tracing::debug!(device = %dev.display(), ms = t0.elapsed().as_millis() as u64, "made {requested} and marked the image");
            (requested.to_string(), false)
        }
        Content::Filesystem(found) => {
            if !format::SUPPORTED.contains(&found.as_str()) {
                return Err(MountError::ForeignFilesystem {
                    device: dev.clone(),
                    fs: found,
                }
                .into());
            }
            if found != requested {
                tracing::warn!(device = %dev.display(), %found, %requested,
                    "the volume already holds a filesystem of another type: mounting it as it is, never reformatting");
            }
            if !read_only {
                backfill_mark(image, mark, &found);
            }
            (found, true)
        }
        Content::Other(what) => {
            return Err(MountError::NotAFilesystem {
                device: dev.clone(),
                what,
            }
            .into());
        }
    };
    if existing && !read_only && fs != "xfs" {
        grow_ext_if_smaller(dev)?;
    }
    let opts = mount_options(req.flags, &fs, read_only)?;
    ops::mount_fs(dev, staging, &fs, &opts)?;
    if existing && !read_only && fs == "xfs" {
        // The image may have grown while unstaged; xfs grows mounted only. Best effort.
        if let Err(e) = grow::online("xfs", dev, staging) {
            tracing::warn!(device = %dev.display(), "xfs_growfs at stage: {e}");
        }
    }
    Ok(fs)
}

/// The staging mount's options (stage and recovery alike).
pub(super) fn mount_options(
    flags: &[String],
    fs: &str,
    read_only: bool,
) -> Result<MountOptions, MountError> {
    let opts = MountOptions::parse(flags, fs)?;
    Ok(if read_only { opts.read_only(fs) } else { opts })
}

/// A filesystem made before the mark existed (or by a stage that died between mkfs and the
/// mark) gets it now. Best effort: the filesystem itself is the first proof.
fn backfill_mark(image: &ImageRef<'_>, mark: MarkLookup, found: &str) {
    match mark.wait() {
        Ok(Some(_)) => {}
        Ok(None) => {
            if let Err(e) = meta::mark_formatted(image.client, &image.name(), found) {
                tracing::warn!(image = %image.name(), "marking the image formatted: {e}");
            }
        }
        Err(e) => tracing::warn!(image = %image.name(), "reading the image's format mark: {e}"),
    }
}

/// The image grew while the volume was not staged: grow ext4 now, offline (works without
/// CAP_SYS_RESOURCE, unlike online resize).
fn grow_ext_if_smaller(dev: &Path) -> Result<(), Error> {
    let fs_bytes = grow::ext_size(dev)?;
    let dev_bytes =
        device::size(dev).map_err(|e| Error::io(format!("size of {}", dev.display()), e))?;
    // Less than one 4 KiB block of difference is rounding, not growth.
    if dev_bytes > fs_bytes + 4096 {
        tracing::info!(device = %dev.display(), fs_bytes, dev_bytes, "growing ext filesystem offline");
        grow::ext_offline(dev)?;
    }
    Ok(())
}

pub fn unstage(node: &Shared, id: &str, staging: &Path) -> Result<(), Error> {
    let Some(s) = node.store.load(staging)? else {
        return Ok(());
    };
    if s.volume_id != id {
        return Ok(());
    }
    let live: Vec<String> = s
        .publishes
        .keys()
        .filter(|t| mountinfo::is_mounted(t))
        .map(|t| t.display().to_string())
        .collect();
    if !live.is_empty() {
        return Err(Error::StillPublished {
            volume: id.to_string(),
            targets: live.join(", "),
        });
    }
    if matches!(s.capability.access, Access::Mount { .. }) && mountinfo::is_mounted(staging) {
        super::encrypt::lock(staging)?;
    }
    teardown(node, &s)?;
    tracing::info!(volume = %id, staging = %staging.display(), "unstaged");
    Ok(())
}

/// Undo a stage as far as the stash records it: unmount, detach, forget.
pub(super) fn teardown(node: &Shared, s: &Stash) -> Result<(), Error> {
    if matches!(s.capability.access, Access::Mount { .. }) {
        super::targets::unmount_ours(std::slice::from_ref(s), &s.staging_path, false)?;
    }
    let want = s.want()?;
    match &s.attached {
        Some(a) => attacher(a.kind).detach(a, &want)?,
        // The plugin died inside attach (the stash records the intent, not the device): undo
        // mappings of this image that no stash records.
        None => {
            let recorded: Vec<PathBuf> = node
                .store
                .all()
                .into_iter()
                .filter_map(|o| o.attached.map(|x| x.device))
                .collect();
            attacher(s.mounter).cleanup_unrecorded(
                &node.store.dir(&s.staging_path),
                &want,
                &recorded,
            );
        }
    }
    // A plugin killed mid-stage may have left a program running with this volume's client
    // files (an `rbd image-meta list`): it must not outlive the undo.
    crate::procs::kill_under(&node.store.dir(&s.staging_path));
    node.store.remove(&s.staging_path)
}
