//! ValidateVolumeCapabilities: confirm the capabilities when every one is supported for an
//! existing volume; NOT_FOUND for volumes we do not know (or could not have issued).

use crate::ceph::ceph_err;
use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rbd::Image;
use crate::ceph::journal::{self, Kind};
use crate::csi::{
    ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse,
    validate_volume_capabilities_response::Confirmed,
};
use crate::error::{Error, Result};
use crate::params;
use crate::volume_id::VolumeId;

use super::Controller;

pub(super) async fn validate(
    c: &Controller,
    req: ValidateVolumeCapabilitiesRequest,
) -> Result<ValidateVolumeCapabilitiesResponse> {
    if req.volume_id.is_empty() {
        return Err(Error::Missing { field: "volume_id" });
    }
    if req.volume_capabilities.is_empty() {
        return Err(Error::Missing {
            field: "volume_capabilities",
        });
    }
    let missing = || Error::VolumeNotFound {
        id: req.volume_id.clone(),
    };
    let id = VolumeId::decode(&req.volume_id).map_err(|_| missing())?;
    let target = c
        .target(&id.cluster_id, &id.pool, &id.namespace, &req.secrets)?
        .ok_or_else(missing)?;
    let image = id.image.clone();
    let vid = req.volume_id.clone();
    c.ceph()
        .with_pool(&target, move |io| {
            let missing = || Error::VolumeNotFound { id: vid.clone() };
            if journal::owner(io, Kind::Volume, &image, "")?.is_none() {
                return Err(missing());
            }
            Image::open(io, &image, true).map_err(|e| match e {
                Errno(libc::ENOENT) => missing(),
                e => ceph_err(format!("open image {image}"), e),
            })?;
            Ok(())
        })
        .await?;
    let refusals: Vec<String> = req
        .volume_capabilities
        .iter()
        .filter_map(|cap| params::check_capability(cap).err())
        .map(|e| e.to_string())
        .collect();
    if !refusals.is_empty() {
        return Ok(ValidateVolumeCapabilitiesResponse {
            confirmed: None,
            message: refusals.join("; "),
        });
    }
    Ok(ValidateVolumeCapabilitiesResponse {
        confirmed: Some(Confirmed {
            volume_context: req.volume_context,
            volume_capabilities: req.volume_capabilities,
            parameters: req.parameters,
            mutable_parameters: req.mutable_parameters,
        }),
        message: String::new(),
    })
}
