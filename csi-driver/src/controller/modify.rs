//! QoS through VolumeAttributesClass: ControllerModifyVolume (and CreateVolume's
//! `mutable_parameters`) set librbd's QoS options on the image as image metadata
//! `conf_rbd_qos_*`, which every librbd client (rbd-nbd, rbd-fuse) reads when it opens the
//! image. krbd ignores them. Only the keys in [`QOS_KEYS`] are mutable; any other key, or a
//! value that is not a non-negative integer, is INVALID_ARGUMENT (the spec's answer for
//! mutable parameters the driver does not support). `0` means "no limit".

use std::collections::HashMap;

use crate::ceph::ceph_err;
use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::Image;
use crate::ceph::journal;
use crate::csi::{ControllerModifyVolumeRequest, ControllerModifyVolumeResponse};
use crate::error::{Error, Result};
use crate::params::ParamError;
use crate::volume_id::VolumeId;

use super::Controller;

/// The mutable parameters: librbd's QoS options.
pub const QOS_KEYS: [&str; 6] = [
    "rbd_qos_iops_limit",
    "rbd_qos_bps_limit",
    "rbd_qos_read_iops_limit",
    "rbd_qos_write_iops_limit",
    "rbd_qos_read_bps_limit",
    "rbd_qos_write_bps_limit",
];

/// The image metadata `(key, value)` pairs for `params`, sorted; INVALID_ARGUMENT naming the
/// first bad key or value. Pure.
pub fn metadata(params: &HashMap<String, String>) -> Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(params.len());
    for (k, v) in params {
        if !QOS_KEYS.contains(&k.as_str()) {
            return Err(ParamError::UnknownMutable { key: k.clone() }.into());
        }
        let number = v.trim();
        if number.is_empty()
            || !number.bytes().all(|b| b.is_ascii_digit())
            || number.parse::<u64>().is_err()
        {
            return Err(ParamError::BadLimit {
                key: k.clone(),
                value: v.clone(),
            }
            .into());
        }
        out.push((format!("conf_{k}"), number.to_string()));
    }
    out.sort();
    Ok(out)
}

/// Write `meta` to `image` (blocking; on the Ceph pool).
pub(super) fn apply(io: &IoCtx<'_>, image: &str, meta: &[(String, String)]) -> Result<()> {
    if meta.is_empty() {
        return Ok(());
    }
    let img = Image::open(io, image, false).map_err(|e| ceph_err(format!("open {image}"), e))?;
    for (k, v) in meta {
        img.metadata_set(k, v)
            .map_err(|e| ceph_err(format!("set {k} on {image}"), e))?;
    }
    Ok(())
}

pub(super) async fn modify_volume(
    c: &Controller,
    req: ControllerModifyVolumeRequest,
) -> Result<ControllerModifyVolumeResponse> {
    if req.volume_id.is_empty() {
        return Err(Error::Missing { field: "volume_id" });
    }
    let meta = metadata(&req.mutable_parameters)?;
    let missing = || Error::VolumeNotFound {
        id: req.volume_id.clone(),
    };
    let id = VolumeId::decode(&req.volume_id).map_err(|_| missing())?;
    let target = c
        .target_with(&id.cluster_id, &id.pool, &id.namespace, &req.secrets, true)?
        .ok_or_else(missing)?;
    let guard = c.locks().try_lock(&format!("volume/{}", req.volume_id))?;
    let set: Vec<String> = meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let (image, vid) = (id.image.clone(), req.volume_id.clone());
    c.ceph()
        .with_pool_held(&target, guard, move |io| {
            let missing = || Error::VolumeNotFound { id: vid.clone() };
            if journal::is_gone(io, &image)? {
                return Err(missing());
            }
            match Image::open(io, &image, true) {
                Err(Errno(libc::ENOENT)) => return Err(missing()),
                Err(e) => return Err(ceph_err(format!("open image {image}"), e)),
                Ok(_) => {}
            }
            apply(io, &image, &meta)
        })
        .await
        .map_err(|e| match e {
            Error::PoolNotFound { .. } => missing(),
            e => e,
        })?;
    tracing::info!(volume = %req.volume_id, ?set, "modified");
    Ok(ControllerModifyVolumeResponse {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn mutable_parameters() {
        assert_eq!(
            metadata(&m(&[
                ("rbd_qos_bps_limit", "10"),
                ("rbd_qos_iops_limit", "0")
            ]))
            .unwrap(),
            vec![
                ("conf_rbd_qos_bps_limit".to_string(), "10".to_string()),
                ("conf_rbd_qos_iops_limit".to_string(), "0".to_string()),
            ]
        );
        assert!(metadata(&m(&[])).unwrap().is_empty());
        for bad in [
            ("rbd_qos_iops_limit", "-1"),
            ("rbd_qos_iops_limit", "+1"),
            ("rbd_qos_iops_limit", "1.5"),
            ("rbd_qos_iops_limit", ""),
            ("rbd_qos_iops_limit", "99999999999999999999"),
            ("XXX_FakeKey", "1"),
            ("conf_rbd_qos_iops_limit", "1"),
        ] {
            let e = metadata(&m(&[bad])).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }
}
