//! CreateVolume: reserve the request name in the journal, then create the image (empty, or a
//! clone of a snapshot, or a clone of a volume through a temporary snapshot). A repeat with
//! the same name returns the same volume; an incompatible repeat is ALREADY_EXISTS.

use crate::ceph::ceph_err;
use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::{self, Image};
use crate::ceph::journal::{self, Entry, Kind};
use crate::csi::{
    CapacityRange, CreateVolumeRequest, CreateVolumeResponse, Volume, VolumeContentSource,
    volume_content_source,
};
use crate::error::{Error, Result};
use crate::params::{self, CapacityError, VolumeParams};
use crate::snapshot_id::SnapshotId;
use crate::volume_id::VolumeId;

use super::flatten::{self, MAX_CLONE_DEPTH, clone_depth};
use super::{Controller, now, random_hex};

/// Where a new image's data comes from.
#[derive(Debug, Clone)]
enum Source {
    Empty,
    Snapshot { image: String, snap: String },
    Volume { image: String },
}

impl Source {
    /// The image the new one is cloned from, if any.
    fn image(&self) -> Option<&str> {
        match self {
            Source::Empty => None,
            Source::Snapshot { image, .. } | Source::Volume { image } => Some(image),
        }
    }

    /// Decode the content source; IDs we could not have issued are NOT_FOUND, sources in
    /// another cluster or pool are INVALID_ARGUMENT (clones stay in their pool).
    fn from_request(
        src: Option<&VolumeContentSource>,
        p: &VolumeParams,
        ns: &str,
    ) -> Result<(Source, String)> {
        use volume_content_source::Type;
        let Some(t) = src.and_then(|s| s.r#type.as_ref()) else {
            return Ok((Source::Empty, String::new()));
        };
        let same_pool = |c: &str, pool: &str, src_ns: &str| {
            if c == p.cluster_id && pool == p.pool && src_ns == ns {
                Ok(())
            } else {
                Err(Error::SourceElsewhere {
                    from: format!("{c}/{pool} (namespace {src_ns:?})"),
                    want: format!("{}/{}, {ns:?}", p.cluster_id, p.pool),
                })
            }
        };
        match t {
            Type::Snapshot(s) => {
                let id = SnapshotId::decode(&s.snapshot_id).map_err(|_| {
                    Error::SourceSnapshotNotFound {
                        id: s.snapshot_id.clone(),
                    }
                })?;
                same_pool(&id.cluster_id, &id.pool, &id.namespace)?;
                let key = format!("snapshot:{}", s.snapshot_id);
                Ok((
                    Source::Snapshot {
                        image: id.image,
                        snap: id.snap,
                    },
                    key,
                ))
            }
            Type::Volume(v) => {
                let id =
                    VolumeId::decode(&v.volume_id).map_err(|_| Error::SourceVolumeNotFound {
                        id: v.volume_id.clone(),
                    })?;
                same_pool(&id.cluster_id, &id.pool, &id.namespace)?;
                let key = format!("volume:{}", v.volume_id);
                Ok((Source::Volume { image: id.image }, key))
            }
        }
    }
}

pub(super) async fn create_volume(
    c: &Controller,
    req: CreateVolumeRequest,
) -> Result<CreateVolumeResponse> {
    if req.name.is_empty() {
        return Err(Error::Missing { field: "name" });
    }
    params::check_capabilities(&req.volume_capabilities)?;
    let mut p = VolumeParams::parse(&req.parameters)?;
    let accessible = place_by_topology(&mut p, req.accessibility_requirements.as_ref())?;
    let size = params::size_for(req.capacity_range.as_ref())?;
    let qos = super::modify::metadata(&req.mutable_parameters)?;
    let ns = c.config_namespace(&p.cluster_id).to_string();
    let (source, source_key) = Source::from_request(req.volume_content_source.as_ref(), &p, &ns)?;
    let fp = params::fingerprint(&req.parameters, &req.volume_capabilities, &source_key);
    let target = c
        .target(&p.cluster_id, &p.pool, &ns, &req.secrets)?
        .ok_or_else(|| Error::UnknownCluster {
            cluster: p.cluster_id.clone(),
        })?;
    // File encryption: the KEK from the request's secrets (provisioner secrets).
    let kek = match p.encryption {
        params::Encryption::File => {
            Some(crate::kms::Kms::kek(&crate::kms::SecretKms, &req.secrets)?)
        }
        params::Encryption::None => None,
    };
    let guard = c.locks().try_lock(&format!("create-volume/{}", req.name))?;

    let name = req.name.clone();
    let range = req.capacity_range;
    let pc = p.clone();
    let flattening = c.inner.flattener.in_progress(&target);
    let (entry, deep) = c
        .ceph()
        .with_pool_held(&target, guard, move |io| {
            let req = Reservation {
                name: &name,
                p: &pc,
                size,
                range: range.as_ref(),
                source: &source,
                fp,
            };
            if kek.is_none()
                && let Some(src) = source.image()
            {
                super::encrypt::refuse_encrypted_source(io, src)?;
            }
            let (entry, deep) = reserve_and_create(io, req, &flattening)?;
            if let Some(kek) = &kek {
                super::encrypt::ensure_key(io, &entry.image, source.image(), kek)?;
            }
            // The VolumeAttributesClass's QoS (a repeat sets the same values again).
            super::modify::apply(io, &entry.image, &qos)?;
            Ok((entry, deep))
        })
        .await
        .map_err(|e| match e {
            // The StorageClass names the pool: the request is wrong, not the volume gone.
            Error::PoolNotFound { pool } => Error::ClassPoolNotFound { pool },
            e => e,
        })?;
    if deep {
        // Handed out only once flattened: the CO retries this name meanwhile.
        let state = c.flatten_in_background(&target, &entry.image);
        return Err(flatten::pending(&entry.image, &state));
    }

    let volume_id = VolumeId::new(&p.cluster_id, &p.pool, &entry.image)
        .in_namespace(&ns)
        .encode()
        .ok_or_else(|| Error::VolumeIdTooLong)?;
    Ok(CreateVolumeResponse {
        volume: Some(Volume {
            capacity_bytes: entry.size as i64,
            volume_id,
            volume_context: p.volume_context(&entry.image, &ns),
            content_source: req.volume_content_source,
            accessible_topology: accessible,
        }),
    })
}

/// Point `p` at the pool `topologyConstrainedPools` picks for `req` (see
/// [`params::topology`]); the topologies the volume is accessible from (empty: everywhere).
fn place_by_topology(
    p: &mut VolumeParams,
    req: Option<&crate::csi::TopologyRequirement>,
) -> Result<Vec<crate::csi::Topology>> {
    let mut accessible = Vec::new();
    if let Some(choice) = params::topology::choose(&p.topology_pools, req)? {
        p.pool = choice.pool;
        if choice.data_pool.is_some() {
            p.data_pool = choice.data_pool;
        }
        accessible.push(choice.accessible);
    }
    if p.pool.is_empty() {
        // No topology placed it, and the class names no default pool.
        return Err(crate::params::ParamError::Missing { key: "pool" }.into());
    }
    Ok(accessible)
}

/// What CreateVolume asks for, as the journal protocol needs it.
struct Reservation<'a> {
    name: &'a str,
    p: &'a VolumeParams,
    size: u64,
    range: Option<&'a CapacityRange>,
    source: &'a Source,
    fp: String,
}

/// The journal protocol (runs on the blocking pool). See [`crate::ceph::journal`]. Answers
/// the entry and whether its image still has to be flattened (`flattening` says whether that
/// is under way already: then the image is not touched).
fn reserve_and_create(
    io: &IoCtx<'_>,
    r: Reservation<'_>,
    flattening: &dyn Fn(&str) -> bool,
) -> Result<(Entry, bool)> {
    let Reservation {
        name,
        p,
        size,
        range,
        source,
        fp,
    } = r;
    let entry = match journal::lookup(io, Kind::Volume, name)? {
        Some(e) => {
            if e.fp != fp || !params::fits(e.size, range) {
                return Err(Error::VolumeExists {
                    name: name.to_string(),
                });
            }
            e
        }
        None => {
            // Check the source before reserving, so a bad source leaves nothing behind.
            let size = match source {
                Source::Empty => size,
                _ => clone_size(size, range, source_size(io, source)?)?,
            };
            let e = Entry {
                image: format!("{}{}", p.volume_prefix, random_hex(32)),
                snap: String::new(),
                size,
                fp,
                created: now(),
            };
            journal::put(io, Kind::Volume, name, &e)?;
            e
        }
    };
    if flattening(&entry.image) {
        return Ok((entry, true));
    }
    let deep = ensure_image(io, &entry, p, source)?;
    Ok((entry, deep))
}

/// The size of a clone: at least the source's, within the requested range.
fn clone_size(size: u64, range: Option<&CapacityRange>, src: u64) -> Result<u64> {
    let asked = range.is_some_and(|r| r.required_bytes > 0);
    let size = if asked { size.max(src) } else { src };
    let lim = range.map_or(0, |r| r.limit_bytes.max(0) as u64);
    if lim > 0 && size > lim {
        return Err(CapacityError::SourceTooLarge {
            source_size: src,
            limit: lim,
        }
        .into());
    }
    Ok(size)
}

fn not_found_source(source: &Source) -> impl Fn(Errno) -> Error + '_ {
    move |errno| {
        if errno.0 == libc::ENOENT {
            match source {
                Source::Snapshot { image, snap } => Error::SourceSnapshotNotFound {
                    id: format!("{image}@{snap}"),
                },
                Source::Volume { image } => Error::SourceVolumeNotFound { id: image.clone() },
                Source::Empty => Error::SourceVolumeNotFound { id: String::new() },
            }
        } else {
            ceph_err("read content source", errno)
        }
    }
}

/// Bytes of the source snapshot or volume; NOT_FOUND when it is missing or deleted.
fn source_size(io: &IoCtx<'_>, source: &Source) -> Result<u64> {
    let missing = not_found_source(source);
    match source {
        Source::Empty => Ok(0),
        Source::Snapshot { image, snap } => {
            // Clone only snapshots berth made: others are NOT_FOUND (and left alone).
            if journal::owner(io, Kind::Snapshot, image, snap)?.is_none() {
                return Err(missing(Errno(libc::ENOENT)));
            }
            let img = Image::open(io, image, true).map_err(&missing)?;
            let snaps = img.snap_list().map_err(|e| ceph_err("list snapshots", e))?;
            snaps
                .iter()
                .find(|s| &s.name == snap)
                .map(|s| s.size)
                .ok_or_else(|| missing(Errno(libc::ENOENT)))
        }
        Source::Volume { image } => {
            if journal::owner(io, Kind::Volume, image, "")?.is_none() {
                return Err(missing(Errno(libc::ENOENT)));
            }
            let img = Image::open(io, image, true).map_err(&missing)?;
            img.size().map_err(|e| ceph_err("read source size", e))
        }
    }
}

/// Create the reserved image if it is not there yet (a retry after a crash lands here too);
/// answers whether the clone is too deep and must be flattened.
fn ensure_image(io: &IoCtx<'_>, e: &Entry, p: &VolumeParams, source: &Source) -> Result<bool> {
    let dp = p.data_pool.as_deref();
    let exists = |r: std::result::Result<(), Errno>| match r {
        Err(Errno(libc::EEXIST)) => Ok(()),
        r => r,
    };
    match source {
        Source::Empty => exists(rbd::create(io, &e.image, e.size, p.features, dp))
            .map_err(|errno| ceph_err(format!("create image {}", e.image), errno))?,
        Source::Snapshot { image, snap } => {
            if !image_exists(io, &e.image)? {
                exists(rbd::clone(io, image, snap, &e.image, p.features, dp))
                    .map_err(not_found_source(source))?;
            }
        }
        Source::Volume { image } => {
            // Deterministic temporary snapshot: a retry after a crash reuses it, and removes
            // it even when the crash came after the clone.
            let tmp = format!("csi-tmp-{}", e.image);
            let created = image_exists(io, &e.image)?;
            let parent = match Image::open(io, image, false) {
                Ok(p) => p,
                // The clone exists and its source went since: nothing left to do.
                Err(Errno(libc::ENOENT)) if created => return resize_clone(io, e),
                Err(errno) => return Err(not_found_source(source)(errno)),
            };
            if !created {
                exists(parent.snap_create(&tmp))
                    .map_err(|errno| ceph_err(format!("snapshot {image}@{tmp}"), errno))?;
                exists(rbd::clone(io, image, &tmp, &e.image, p.features, dp))
                    .map_err(|errno| ceph_err(format!("clone {image}@{tmp}"), errno))?;
            }
            // Clone v2: the snapshot moves to the trash namespace until the clone goes.
            match parent.snap_remove(&tmp) {
                Ok(()) | Err(Errno(libc::ENOENT)) => {}
                Err(errno) => {
                    tracing::warn!(image, snap = tmp, %errno, "temporary snapshot kept")
                }
            }
        }
    }
    if matches!(source, Source::Empty) {
        return Ok(false);
    }
    resize_clone(io, e)
}

/// Whether an image exists (ENOENT is "no"; other failures are errors).
fn image_exists(io: &IoCtx<'_>, name: &str) -> Result<bool> {
    match Image::open(io, name, true) {
        Ok(_) => Ok(true),
        Err(Errno(libc::ENOENT)) => Ok(false),
        Err(errno) => Err(ceph_err(format!("open image {name}"), errno)),
    }
}

/// Grow a fresh clone to the reserved size (clones start at their source's size). Answers
/// whether its chain of parents is too deep, so it must be flattened ([`super::flatten`]).
fn resize_clone(io: &IoCtx<'_>, e: &Entry) -> Result<bool> {
    let img = Image::open(io, &e.image, false)
        .map_err(|errno| ceph_err(format!("open clone {}", e.image), errno))?;
    let cur = img
        .size()
        .map_err(|errno| ceph_err("read clone size", errno))?;
    if cur < e.size {
        img.resize(e.size)
            .map_err(|errno| ceph_err(format!("resize clone {}", e.image), errno))?;
    }
    Ok(clone_depth(io, &img)? > MAX_CLONE_DEPTH)
}
