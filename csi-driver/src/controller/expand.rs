//! ControllerExpandVolume: grow the image (never shrink). Filesystem volumes then need the
//! node to grow the filesystem (node_expansion_required); block volumes are done here.

use crate::ceph::ceph_err;
use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rbd::Image;
use crate::ceph::journal::{self, Kind};
use crate::csi::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse, volume_capability,
};
use crate::error::{Error, Result};
use crate::params::{self, CapacityError};
use crate::volume_id::VolumeId;

use super::Controller;

pub(super) async fn expand_volume(
    c: &Controller,
    req: ControllerExpandVolumeRequest,
) -> Result<ControllerExpandVolumeResponse> {
    if req.volume_id.is_empty() {
        return Err(Error::Missing { field: "volume_id" });
    }
    let range = req.capacity_range.ok_or(Error::Missing {
        field: "capacity_range",
    })?;
    let missing = || Error::VolumeNotFound {
        id: req.volume_id.clone(),
    };
    let id = VolumeId::decode(&req.volume_id).map_err(|_| missing())?;
    let target = c
        .target(&id.cluster_id, &id.pool, &id.namespace, &req.secrets)?
        .ok_or_else(missing)?;
    let want = params::size_for(Some(&range))?;
    let limit = range.limit_bytes.max(0) as u64;
    let guard = c.locks().try_lock(&format!("volume/{}", req.volume_id))?;
    let image = id.image.clone();
    let vid = req.volume_id.clone();
    let size = c
        .ceph()
        .with_pool_held(&target, guard, move |io| {
            let missing = || Error::VolumeNotFound { id: vid.clone() };
            let Some(name) = journal::owner(io, Kind::Volume, &image, "")? else {
                return Err(missing());
            };
            let img = Image::open(io, &image, false).map_err(|e| match e {
                Errno(libc::ENOENT) => missing(),
                e => ceph_err(format!("open image {image}"), e),
            })?;
            let cur = img.size().map_err(|e| ceph_err("read image size", e))?;
            if cur >= want {
                if limit > 0 && cur > limit {
                    return Err(CapacityError::WouldShrink { size: cur, limit }.into());
                }
                return Ok(cur);
            }
            img.resize(want)
                .map_err(|e| ceph_err(format!("resize image {image}"), e))?;
            if let Some(mut e) = journal::lookup(io, Kind::Volume, &name)? {
                e.size = want;
                journal::rewrite(io, Kind::Volume, &name, &e)?;
            }
            Ok(want)
        })
        .await?;
    let block = matches!(
        req.volume_capability
            .as_ref()
            .and_then(|c| c.access_type.as_ref()),
        Some(volume_capability::AccessType::Block(_))
    );
    Ok(ControllerExpandVolumeResponse {
        capacity_bytes: size as i64,
        node_expansion_required: !block,
    })
}
