//! Safe RAII wrappers over librbd: image creation/cloning/removal on an [`IoCtx`], and an
//! open [`Image`] (closed on drop) for size, resize, snapshots and watchers.

use std::os::raw::{c_int, c_void};
use std::ptr;

use super::rados::{IoCtx, owned};
use super::sys;
use super::{Errno, check, cstr};

/// Image creation options (`rbd_image_options_t`), destroyed on drop.
pub(super) struct Options(pub(super) sys::ImageOptionsT);

impl Options {
    pub(super) fn new() -> Options {
        let mut h: sys::ImageOptionsT = ptr::null_mut();
        // SAFETY: out-pointer to a local.
        unsafe { sys::rbd_image_options_create(&mut h) };
        Options(h)
    }
    pub(super) fn set_u64(&self, opt: i32, v: u64) -> Result<(), Errno> {
        // SAFETY: valid options handle.
        check(unsafe { sys::rbd_image_options_set_uint64(self.0, opt, v) })
    }
    fn set_str(&self, opt: i32, v: &str) -> Result<(), Errno> {
        let v = cstr(v)?;
        // SAFETY: valid options handle, NUL-terminated string (copied by librbd).
        check(unsafe { sys::rbd_image_options_set_string(self.0, opt, v.as_ptr()) })
    }
}

impl Drop for Options {
    fn drop(&mut self) {
        // SAFETY: created by rbd_image_options_create, destroyed once.
        unsafe { sys::rbd_image_options_destroy(self.0) }
    }
}

/// Create a format-2 image of `size` bytes with `features` (RBD_FEATURE_* bits).
pub fn create(
    io: &IoCtx<'_>,
    name: &str,
    size: u64,
    features: u64,
    data_pool: Option<&str>,
) -> Result<(), Errno> {
    let opts = Options::new();
    opts.set_u64(sys::RBD_IMAGE_OPTION_FEATURES, features)?;
    if let Some(dp) = data_pool {
        opts.set_str(sys::RBD_IMAGE_OPTION_DATA_POOL, dp)?;
    }
    let name = cstr(name)?;
    // SAFETY: valid ioctx and options; NUL-terminated name.
    check(unsafe { sys::rbd_create4(io.raw(), name.as_ptr(), size, opts.0) })
}

/// Clone (format 2: no snapshot protection needed) `parent@snap` into `child`.
pub fn clone(
    io: &IoCtx<'_>,
    parent: &str,
    snap: &str,
    child: &str,
    features: u64,
    data_pool: Option<&str>,
) -> Result<(), Errno> {
    let opts = Options::new();
    opts.set_u64(sys::RBD_IMAGE_OPTION_FEATURES, features)?;
    opts.set_u64(sys::RBD_IMAGE_OPTION_CLONE_FORMAT, 2)?;
    if let Some(dp) = data_pool {
        opts.set_str(sys::RBD_IMAGE_OPTION_DATA_POOL, dp)?;
    }
    let (p, s, c) = (cstr(parent)?, cstr(snap)?, cstr(child)?);
    // SAFETY: same ioctx for parent and child; all strings NUL-terminated.
    check(unsafe {
        sys::rbd_clone3(
            io.raw(),
            p.as_ptr(),
            s.as_ptr(),
            io.raw(),
            c.as_ptr(),
            opts.0,
        )
    })
}

/// Remove an image: ENOENT if absent, ENOTEMPTY if it has snapshots, EBUSY if watched.
pub fn remove(io: &IoCtx<'_>, name: &str) -> Result<(), Errno> {
    let name = cstr(name)?;
    // SAFETY: valid ioctx, NUL-terminated name.
    check(unsafe { sys::rbd_remove(io.raw(), name.as_ptr()) })
}

/// Move `name` to the pool's RBD trash (no deferment): quick whatever the image's size; the
/// data is removed later by [`trash_remove`].
pub fn trash_move(io: &IoCtx<'_>, name: &str) -> Result<(), Errno> {
    let name = cstr(name)?;
    // SAFETY: valid ioctx, NUL-terminated name.
    check(unsafe { sys::rbd_trash_move(io.raw(), name.as_ptr(), 0) })
}

/// An image in the trash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashEntry {
    pub id: String,
    pub name: String,
}

/// Every image in the pool's trash.
pub fn trash_list(io: &IoCtx<'_>) -> Result<Vec<TrashEntry>, Errno> {
    let mut cap = 64usize;
    loop {
        let mut entries: Vec<sys::TrashImageInfoT> = Vec::with_capacity(cap);
        let mut n = cap;
        // SAFETY: the buffer has room for `n` entries; on success librbd fills `n` of them.
        let rc = unsafe { sys::rbd_trash_list(io.raw(), entries.as_mut_ptr(), &mut n) };
        if rc == -libc::ERANGE {
            cap = n.max(cap * 2);
            continue;
        }
        check(rc)?;
        // SAFETY: n entries are initialised; their strings are freed by the cleanup call.
        unsafe {
            entries.set_len(n);
            let out = entries
                .iter()
                .map(|e| TrashEntry {
                    id: owned(e.id),
                    name: owned(e.name),
                })
                .collect();
            sys::rbd_trash_list_cleanup(entries.as_mut_ptr(), n);
            return Ok(out);
        }
    }
}

/// Remove the trashed image `id` and its data (slow: every object of the image).
pub fn trash_remove(io: &IoCtx<'_>, id: &str) -> Result<(), Errno> {
    let id = cstr(id)?;
    // SAFETY: valid ioctx, NUL-terminated id.
    check(unsafe { sys::rbd_trash_remove(io.raw(), id.as_ptr(), false) })
}

/// Put the trashed image `id` back as `name`.
pub fn trash_restore(io: &IoCtx<'_>, id: &str, name: &str) -> Result<(), Errno> {
    let (id, name) = (cstr(id)?, cstr(name)?);
    // SAFETY: valid ioctx, NUL-terminated strings.
    check(unsafe { sys::rbd_trash_restore(io.raw(), id.as_ptr(), name.as_ptr()) })
}

/// Names of every image in the pool.
pub fn list(io: &IoCtx<'_>) -> Result<Vec<String>, Errno> {
    let mut cap = 64usize;
    loop {
        let mut specs: Vec<sys::ImageSpecT> = Vec::with_capacity(cap);
        let mut n = cap;
        // SAFETY: the buffer has room for `n` specs; on success librbd fills `n` of them.
        let rc = unsafe { sys::rbd_list2(io.raw(), specs.as_mut_ptr(), &mut n) };
        if rc == -libc::ERANGE {
            cap = n.max(cap * 2);
            continue;
        }
        check(rc)?;
        // SAFETY: n entries are initialised; their strings are freed by the cleanup call.
        unsafe {
            specs.set_len(n);
            let names = specs.iter().map(|s| owned(s.name)).collect();
            sys::rbd_image_spec_list_cleanup(specs.as_mut_ptr(), n);
            return Ok(names);
        }
    }
}

/// An open image; closed on drop. Never outlives its [`IoCtx`].
#[derive(Debug)]
pub struct Image<'a> {
    pub(super) h: sys::ImageT,
    _io: std::marker::PhantomData<&'a IoCtx<'a>>,
}

/// A snapshot as librbd lists it.
#[derive(Debug, Clone)]
pub struct SnapInfo {
    /// librbd's snapshot id (every namespace: user, group, trash).
    pub id: u64,
    pub name: String,
    pub size: u64,
}

impl<'a> Image<'a> {
    /// Open `name` at its head. A read-only open registers no watch, so it does not make the
    /// image look "in use" to watcher checks.
    pub fn open(io: &'a IoCtx<'a>, name: &str, read_only: bool) -> Result<Image<'a>, Errno> {
        let name = cstr(name)?;
        let mut h: sys::ImageT = ptr::null_mut();
        // SAFETY: valid ioctx, NUL-terminated name, null snapshot = head.
        let rc = unsafe {
            if read_only {
                sys::rbd_open_read_only(io.raw(), name.as_ptr(), &mut h, ptr::null())
            } else {
                sys::rbd_open(io.raw(), name.as_ptr(), &mut h, ptr::null())
            }
        };
        check(rc)?;
        Ok(Image {
            h,
            _io: std::marker::PhantomData,
        })
    }

    pub fn size(&self) -> Result<u64, Errno> {
        let mut size = 0u64;
        // SAFETY: open image, out-pointer to a local.
        check(unsafe { sys::rbd_get_size(self.h, &mut size) })?;
        Ok(size)
    }

    pub fn resize(&self, size: u64) -> Result<(), Errno> {
        // SAFETY: open image.
        check(unsafe { sys::rbd_resize(self.h, size) })
    }

    /// Set image metadata `key` to `value` (librbd clients read `conf_*` keys as options).
    pub fn metadata_set(&self, key: &str, value: &str) -> Result<(), Errno> {
        let (key, value) = (cstr(key)?, cstr(value)?);
        // SAFETY: open image; NUL-terminated strings that outlive the call.
        check(unsafe { sys::rbd_metadata_set(self.h, key.as_ptr(), value.as_ptr()) })
    }

    pub fn flatten(&self) -> Result<(), Errno> {
        // SAFETY: open image.
        check(unsafe { sys::rbd_flatten(self.h) })
    }

    /// [`Self::flatten`], calling `progress(done, total)` as librbd copies (possibly from its
    /// own threads, hence `Sync`). Blocks until the flatten ends.
    pub fn flatten_with_progress(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<(), Errno> {
        unsafe extern "C" fn trampoline(done: u64, total: u64, data: *mut c_void) -> c_int {
            // SAFETY: `data` is the `&&dyn Fn` below, alive until rbd_flatten_with_progress
            // returns, which is after its last callback.
            let f = unsafe { &*(data as *const &(dyn Fn(u64, u64) + Sync)) };
            f(done, total);
            0
        }
        let f: &(dyn Fn(u64, u64) + Sync) = progress;
        let data = &f as *const &(dyn Fn(u64, u64) + Sync) as *mut c_void;
        // SAFETY: open image; the callback and its data outlive the call.
        check(unsafe { sys::rbd_flatten_with_progress(self.h, Some(trampoline), data) })
    }

    pub fn snap_create(&self, snap: &str) -> Result<(), Errno> {
        let snap = cstr(snap)?;
        // SAFETY: open image, NUL-terminated name.
        check(unsafe { sys::rbd_snap_create(self.h, snap.as_ptr()) })
    }

    /// Remove a snapshot; with clone v2 a snapshot that still has clones moves to the trash
    /// namespace and librbd removes it when its last clone goes.
    pub fn snap_remove(&self, snap: &str) -> Result<(), Errno> {
        let snap = cstr(snap)?;
        // SAFETY: open image, NUL-terminated name.
        check(unsafe { sys::rbd_snap_remove(self.h, snap.as_ptr()) })
    }

    pub fn snap_exists(&self, snap: &str) -> Result<bool, Errno> {
        let snap = cstr(snap)?;
        let mut exists = false;
        // SAFETY: open image, out-pointer to a local.
        check(unsafe { sys::rbd_snap_exists(self.h, snap.as_ptr(), &mut exists) })?;
        Ok(exists)
    }

    pub fn snap_list(&self) -> Result<Vec<SnapInfo>, Errno> {
        let mut cap: libc::c_int = 16;
        loop {
            let mut buf: Vec<sys::SnapInfoT> = Vec::with_capacity(cap as usize + 1);
            let mut max = cap;
            // SAFETY: room for `max` entries (+1 for the terminator librbd writes).
            let rc = unsafe { sys::rbd_snap_list(self.h, buf.as_mut_ptr(), &mut max) };
            if rc == -libc::ERANGE {
                cap = max.max(cap * 2);
                continue;
            }
            check(rc)?;
            let n = rc as usize;
            // SAFETY: `n` entries are initialised; snap_list_end frees their names.
            unsafe {
                buf.set_len(n);
                let out = buf
                    .iter()
                    .map(|s| SnapInfo {
                        id: s.id,
                        name: owned(s.name),
                        size: s.size,
                    })
                    .collect();
                sys::rbd_snap_list_end(buf.as_mut_ptr());
                return Ok(out);
            }
        }
    }

    /// The parent image of a clone (its pool and name), or `None` for an image with no parent.
    pub fn parent(&self) -> Result<Option<(String, String)>, Errno> {
        let mut img = sys::LinkedImageSpecT {
            pool_id: 0,
            pool_name: ptr::null_mut(),
            pool_namespace: ptr::null_mut(),
            image_id: ptr::null_mut(),
            image_name: ptr::null_mut(),
            trash: false,
        };
        let mut snap = sys::SnapSpecT {
            id: 0,
            namespace_type: 0,
            name: ptr::null_mut(),
        };
        // SAFETY: open image; out-structs of the header's layout, cleaned up on success.
        let rc = unsafe { sys::rbd_get_parent(self.h, &mut img, &mut snap) };
        if rc == -libc::ENOENT {
            return Ok(None);
        }
        check(rc)?;
        // SAFETY: filled by librbd on success; freed exactly once by the cleanup calls.
        unsafe {
            let out = (owned(img.pool_name), owned(img.image_name));
            sys::rbd_linked_image_spec_cleanup(&mut img);
            sys::rbd_snap_spec_cleanup(&mut snap);
            Ok(Some(out))
        }
    }

    /// How many clients watch the image (a mapped/attached image has one or more).
    /// Client ids of the image's watchers.
    pub fn watcher_ids(&self) -> Result<Vec<i64>, Errno> {
        let mut cap = 8usize;
        loop {
            let mut buf: Vec<sys::ImageWatcherT> = Vec::with_capacity(cap);
            let mut n = cap;
            // SAFETY: room for `n` entries.
            let rc = unsafe { sys::rbd_watchers_list(self.h, buf.as_mut_ptr(), &mut n) };
            if rc == -libc::ERANGE {
                cap = n.max(cap * 2);
                continue;
            }
            check(rc)?;
            // SAFETY: `n` entries initialised; cleanup frees their strings.
            unsafe {
                buf.set_len(n);
                let ids = buf.iter().map(|w| w.id).collect();
                sys::rbd_watchers_list_cleanup(buf.as_mut_ptr(), n);
                return Ok(ids);
            }
        }
    }
}

impl Image<'_> {
    /// The image metadata value of `key` (`None` when unset).
    pub fn metadata_get(&self, key: &str) -> Result<Option<String>, Errno> {
        let key = cstr(key)?;
        let mut cap = 256usize;
        loop {
            let mut buf = vec![0u8; cap];
            let mut len = cap;
            // SAFETY: open image; the buffer has room for `len` bytes (librbd writes the value
            // with its NUL, or answers ERANGE with the length it needs).
            let rc = unsafe {
                sys::rbd_metadata_get(self.h, key.as_ptr(), buf.as_mut_ptr().cast(), &mut len)
            };
            match rc {
                r if r == -libc::ERANGE => cap = len.max(cap * 2),
                r if r == -libc::ENOENT => return Ok(None),
                r => {
                    check(r)?;
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(len.min(cap));
                    buf.truncate(end);
                    return String::from_utf8(buf)
                        .map(Some)
                        .map_err(|_| Errno(libc::EINVAL));
                }
            }
        }
    }
}

impl Drop for Image<'_> {
    fn drop(&mut self) {
        // SAFETY: opened by rbd_open*, closed once.
        unsafe {
            sys::rbd_close(self.h);
        }
    }
}
