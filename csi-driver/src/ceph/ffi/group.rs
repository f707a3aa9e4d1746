//! Safe wrappers over librbd's groups (Ceph 16.2 Pacific, `librbd.h` "RBD groups support
//! functions"): a group of images, a group snapshot (one crash-consistent point across every
//! image: librbd quiesces the images' writers, then snapshots each image in the group
//! namespace), and what berth needs to read such a point back: the image snapshot id of a group
//! snapshot, an image opened at a snapshot id, and a copy of that view into a new image.
//!
//! Pacific's C API cannot clone from a group-namespace snapshot (`rbd_clone4`, which takes a
//! snapshot id, came with Reef), hence the copy.

use std::ptr;

use super::rados::{IoCtx, owned};
use super::rbd::{Image, Options};
use super::{Errno, check, cstr, sys};

/// Create the group `name` in the pool of `io` (EEXIST when it exists).
pub fn create(io: &IoCtx<'_>, name: &str) -> Result<(), Errno> {
    let name = cstr(name)?;
    // SAFETY: valid ioctx, NUL-terminated name.
    check(unsafe { sys::rbd_group_create(io.raw(), name.as_ptr()) })
}

/// Remove the group `name` (its snapshots go with it; its images stay). ENOENT when absent.
pub fn remove(io: &IoCtx<'_>, name: &str) -> Result<(), Errno> {
    let name = cstr(name)?;
    // SAFETY: valid ioctx, NUL-terminated name.
    check(unsafe { sys::rbd_group_remove(io.raw(), name.as_ptr()) })
}

/// Add `image` (same pool) to the group.
pub fn image_add(io: &IoCtx<'_>, group: &str, image: &str) -> Result<(), Errno> {
    let (g, i) = (cstr(group)?, cstr(image)?);
    // SAFETY: valid ioctx for both group and image; NUL-terminated names.
    check(unsafe { sys::rbd_group_image_add(io.raw(), g.as_ptr(), io.raw(), i.as_ptr()) })
}

/// Remove `image` (same pool) from the group.
pub fn image_remove(io: &IoCtx<'_>, group: &str, image: &str) -> Result<(), Errno> {
    let (g, i) = (cstr(group)?, cstr(image)?);
    // SAFETY: valid ioctx for both group and image; NUL-terminated names.
    check(unsafe { sys::rbd_group_image_remove(io.raw(), g.as_ptr(), io.raw(), i.as_ptr()) })
}

/// Snapshot every image of the group at one crash-consistent point.
pub fn snap_create(io: &IoCtx<'_>, group: &str, snap: &str) -> Result<(), Errno> {
    let (g, s) = (cstr(group)?, cstr(snap)?);
    // SAFETY: valid ioctx, NUL-terminated names.
    check(unsafe { sys::rbd_group_snap_create(io.raw(), g.as_ptr(), s.as_ptr()) })
}

/// Remove a group snapshot (and its image snapshots).
pub fn snap_remove(io: &IoCtx<'_>, group: &str, snap: &str) -> Result<(), Errno> {
    let (g, s) = (cstr(group)?, cstr(snap)?);
    // SAFETY: valid ioctx, NUL-terminated names.
    check(unsafe { sys::rbd_group_snap_remove(io.raw(), g.as_ptr(), s.as_ptr()) })
}

impl Image<'_> {
    /// The id of this image's snapshot taken by group snapshot `group@snap`, if any.
    pub fn group_snap_id(&self, group: &str, snap: &str) -> Result<Option<u64>, Errno> {
        for s in self.snap_list()? {
            let mut ty: libc::c_int = 0;
            // SAFETY: open image; out-pointer to a local (the C enum is int-sized).
            check(unsafe { sys::rbd_snap_get_namespace_type(self.h, s.id, &mut ty) })?;
            if ty != sys::SNAP_NAMESPACE_TYPE_GROUP {
                continue;
            }
            let mut ns = sys::SnapGroupNamespaceT {
                group_pool: 0,
                group_name: ptr::null_mut(),
                group_snap_name: ptr::null_mut(),
            };
            let size = std::mem::size_of::<sys::SnapGroupNamespaceT>();
            // SAFETY: open image; out-struct of the header's layout and its size.
            check(unsafe { sys::rbd_snap_get_group_namespace(self.h, s.id, &mut ns, size) })?;
            // SAFETY: filled by librbd on success; freed exactly once by the cleanup call.
            let (g, gs) = unsafe {
                let out = (owned(ns.group_name), owned(ns.group_snap_name));
                sys::rbd_snap_group_namespace_cleanup(&mut ns, size);
                out
            };
            if g == group && gs == snap {
                return Ok(Some(s.id));
            }
        }
        Ok(None)
    }

    /// Read from snapshot `snap_id` (any namespace) from now on.
    pub fn set_snap_id(&self, snap_id: u64) -> Result<(), Errno> {
        // SAFETY: open image.
        check(unsafe { sys::rbd_snap_set_by_id(self.h, snap_id) })
    }

    /// Copy what this image shows now (its head, or the snapshot set) into a new image `dest`
    /// in the pool of `io`, with `features`. Zeroes are not written (the copy stays thin).
    pub fn copy_to(&self, io: &IoCtx<'_>, dest: &str, features: u64) -> Result<(), Errno> {
        let opts = Options::new();
        opts.set_u64(sys::RBD_IMAGE_OPTION_FEATURES, features)?;
        let dest = cstr(dest)?;
        // SAFETY: open image, valid ioctx and options, NUL-terminated name.
        check(unsafe { sys::rbd_copy3(self.h, io.raw(), dest.as_ptr(), opts.0) })
    }
}
