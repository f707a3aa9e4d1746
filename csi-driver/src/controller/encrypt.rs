//! CreateVolume's part of file encryption ([`crate::kms`]): the new image gets its wrapped
//! fscrypt master key in its metadata. An empty volume gets a fresh random key; a clone or
//! restore gets its source's key re-wrapped for itself (fscrypt encrypted the source's files
//! with it). Idempotent: a key already wrapped for this image is kept. An unencrypted volume
//! is never made from an encrypted source ([`refuse_encrypted_source`]).

use crate::ceph::ceph_err;
use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::Image;
use crate::error::{Error, Result};
use crate::kms::{self, Kek, MasterKey, WRAPPED_KEY_META};

/// Make sure `image` holds its wrapped key; `source` is the image it was cloned from.
pub(super) fn ensure_key(
    io: &IoCtx<'_>,
    image: &str,
    source: Option<&str>,
    kek: &Kek,
) -> Result<()> {
    let img =
        Image::open(io, image, false).map_err(|e| ceph_err(format!("open image {image}"), e))?;
    let current = img
        .metadata_get(WRAPPED_KEY_META)
        .map_err(|e| ceph_err(format!("read metadata of {image}"), e))?;
    if let Some(w) = &current {
        // Ours already (a retry), or copied from the source by the clone: re-wrap below.
        let (_, bound) = kms::unwrap(kek, image, w)?;
        if bound == image {
            return Ok(());
        }
    }
    let key = match (source, current) {
        (_, Some(w)) => kms::unwrap(kek, image, &w)?.0,
        (Some(src), None) => source_key(io, src, kek)?,
        (None, None) => MasterKey::generate(),
    };
    img.metadata_set(WRAPPED_KEY_META, &kms::wrap(kek, image, &key))
        .map_err(|e| ceph_err(format!("write metadata of {image}"), e))?;
    tracing::info!(image, cloned_from = ?source, "volume encryption key wrapped");
    Ok(())
}

/// The master key of a clone's source; a source without one cannot give an encrypted clone.
fn source_key(io: &IoCtx<'_>, src: &str, kek: &Kek) -> Result<MasterKey> {
    let img = Image::open(io, src, true).map_err(|e| ceph_err(format!("open image {src}"), e))?;
    let w = img
        .metadata_get(WRAPPED_KEY_META)
        .map_err(|e| ceph_err(format!("read metadata of {src}"), e))?
        .ok_or_else(|| Error::SourceNotEncrypted { image: src.into() })?;
    Ok(kms::unwrap(kek, src, &w)?.0)
}

/// An unencrypted volume cannot come from an encrypted source: its pods would see only the
/// ciphertext of the source's files. Checked before anything is created.
pub(super) fn refuse_encrypted_source(io: &IoCtx<'_>, src: &str) -> Result<()> {
    let img = match Image::open(io, src, true) {
        Ok(img) => img,
        // A missing source: the create path answers for it (NOT_FOUND).
        Err(crate::ceph::ffi::Errno(libc::ENOENT)) => return Ok(()),
        Err(e) => return Err(ceph_err(format!("open image {src}"), e)),
    };
    let wrapped = img
        .metadata_get(WRAPPED_KEY_META)
        .map_err(|e| ceph_err(format!("read metadata of {src}"), e))?;
    match wrapped {
        Some(_) => Err(Error::SourceEncrypted { image: src.into() }),
        None => Ok(()),
    }
}
