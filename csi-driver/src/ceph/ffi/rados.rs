//! Safe RAII wrappers over librados: a connected cluster handle ([`Rados`]), a pool I/O context
//! ([`IoCtx`]) and the omap operations the idempotency journal needs.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr;

use super::sys;
use super::{Errno, check, cstr};

/// A connected librados cluster handle; `rados_shutdown` on drop.
#[derive(Debug)]
pub struct Rados {
    h: sys::RadosT,
}

// SAFETY: librados cluster handles are thread-safe once connected (the C API documents
// concurrent use from many threads; librbd relies on it).
unsafe impl Send for Rados {}
unsafe impl Sync for Rados {}

/// Pool usage as librados reports it.
#[derive(Debug, Clone, Copy)]
pub struct ClusterStat {
    pub kb: u64,
    pub kb_used: u64,
    pub kb_avail: u64,
}

impl Rados {
    /// Create a handle for `client.<user>`, apply `options` (mon_host, key, timeouts…) and
    /// connect. No config file or environment is read: everything comes from `options`.
    /// Loads librados/librbd first ([`super::load`]); if they cannot be loaded this is
    /// `ENOSYS` (call [`super::load`] first for an error that names the library).
    pub fn connect(user: &str, options: &[(&str, &str)]) -> Result<Rados, Errno> {
        super::load().map_err(|_| Errno(libc::ENOSYS))?;
        let name = cstr(&format!("client.{user}"))?;
        let cluster_name = cstr("ceph")?;
        let mut h: sys::RadosT = ptr::null_mut();
        // SAFETY: out-pointer to a local; strings are NUL-terminated and outlive the call.
        check(unsafe { sys::rados_create2(&mut h, cluster_name.as_ptr(), name.as_ptr(), 0) })?;
        // From here on, Drop shuts the handle down whatever fails.
        let rados = Rados { h };
        for (k, v) in options {
            let (k, v) = (cstr(k)?, cstr(v)?);
            // SAFETY: valid handle, not yet connected; NUL-terminated strings.
            check(unsafe { sys::rados_conf_set(rados.h, k.as_ptr(), v.as_ptr()) })?;
        }
        // SAFETY: valid, configured handle.
        check(unsafe { sys::rados_connect(rados.h) })?;
        Ok(rados)
    }

    pub fn cluster_stat(&self) -> Result<ClusterStat, Errno> {
        let mut st = sys::ClusterStatT {
            kb: 0,
            kb_used: 0,
            kb_avail: 0,
            num_objects: 0,
        };
        // SAFETY: connected handle, out-pointer to a local of the header's layout.
        check(unsafe { sys::rados_cluster_stat(self.h, &mut st) })?;
        Ok(ClusterStat {
            kb: st.kb,
            kb_used: st.kb_used,
            kb_avail: st.kb_avail,
        })
    }

    /// An I/O context on `pool` (ENOENT when the pool does not exist).
    pub fn ioctx(&self, pool: &str) -> Result<IoCtx<'_>, Errno> {
        let pool = cstr(pool)?;
        let mut io: sys::IoCtxT = ptr::null_mut();
        // SAFETY: connected handle; out-pointer to a local.
        check(unsafe { sys::rados_ioctx_create(self.h, pool.as_ptr(), &mut io) })?;
        Ok(IoCtx {
            h: io,
            _cluster: PhantomData,
        })
    }
}

impl Drop for Rados {
    fn drop(&mut self) {
        // SAFETY: the handle came from rados_create2 and is shut down exactly once; every
        // IoCtx borrows the Rados, so none outlives it.
        unsafe { sys::rados_shutdown(self.h) }
    }
}

/// A pool I/O context; destroyed on drop, never outlives its [`Rados`].
#[derive(Debug)]
pub struct IoCtx<'a> {
    h: sys::IoCtxT,
    _cluster: PhantomData<&'a Rados>,
}

/// One page of omap entries.
#[derive(Debug, Default)]
pub struct OmapPage {
    pub entries: Vec<(String, String)>,
    /// More entries follow the last one.
    pub more: bool,
}

impl IoCtx<'_> {
    pub(super) fn raw(&self) -> sys::IoCtxT {
        self.h
    }

    /// Put every later operation of this context (objects, omaps, librbd images) in RADOS
    /// namespace `ns`; "" is the default namespace.
    pub fn set_namespace(&mut self, ns: &str) -> Result<(), Errno> {
        let ns = cstr(ns)?;
        // SAFETY: a valid ioctx; librados copies the NUL-terminated name.
        unsafe { sys::rados_ioctx_set_namespace(self.h, ns.as_ptr()) };
        Ok(())
    }

    /// The global id of this connection's client instance (`client.<id>`): what watchers
    /// this process registers itself carry.
    pub fn instance_id(&self) -> u64 {
        // SAFETY: a valid ioctx; its cluster handle outlives it (borrowed Rados).
        unsafe { sys::rados_get_instance_id(sys::rados_ioctx_get_cluster(self.h)) }
    }

    /// Atomically set `set` and remove `rm` keys in the omap of `oid` (created if missing).
    pub fn omap_update(&self, oid: &str, set: &[(&str, &str)], rm: &[&str]) -> Result<(), Errno> {
        self.omap_update_if(oid, None, set, rm)
    }

    /// [`Self::omap_update`], applied only while key `absent` has no (or an empty) value: the
    /// OSD compares and writes in one operation, so of two racing writers guarded by the same
    /// key exactly one succeeds; the other gets `ECANCELED` and nothing is written.
    pub fn omap_update_if_absent(
        &self,
        oid: &str,
        absent: &str,
        set: &[(&str, &str)],
        rm: &[&str],
    ) -> Result<(), Errno> {
        match self.omap_update_if(oid, Some(absent), set, rm) {
            // The comparison needs the object: create it (idempotently) and try once more.
            Err(Errno(libc::ENOENT)) => {
                self.create_object(oid)?;
                self.omap_update_if(oid, Some(absent), set, rm)
            }
            r => r,
        }
    }

    /// Create `oid` unless it exists.
    fn create_object(&self, oid: &str) -> Result<(), Errno> {
        let oid = cstr(oid)?;
        // SAFETY: the op is created, filled and released once; oid outlives operate.
        unsafe {
            let op = sys::rados_create_write_op();
            if op.is_null() {
                return Err(Errno(libc::ENOMEM));
            }
            sys::rados_write_op_create(op, sys::CREATE_IDEMPOTENT, ptr::null());
            let rc = sys::rados_write_op_operate(op, self.h, oid.as_ptr(), ptr::null_mut(), 0);
            sys::rados_release_write_op(op);
            check(rc)
        }
    }

    fn omap_update_if(
        &self,
        oid: &str,
        absent: Option<&str>,
        set: &[(&str, &str)],
        rm: &[&str],
    ) -> Result<(), Errno> {
        let oid = cstr(oid)?;
        let skeys: Vec<&[u8]> = set.iter().map(|(k, _)| k.as_bytes()).collect();
        let svals: Vec<&[u8]> = set.iter().map(|(_, v)| v.as_bytes()).collect();
        let rkeys: Vec<&[u8]> = rm.iter().map(|k| k.as_bytes()).collect();
        let ptrs = |v: &[&[u8]]| -> (Vec<*const libc::c_char>, Vec<usize>) {
            (
                v.iter().map(|b| b.as_ptr().cast()).collect(),
                v.iter().map(|b| b.len()).collect(),
            )
        };
        let (sk, skl) = ptrs(&skeys);
        let (sv, svl) = ptrs(&svals);
        let (rk, rkl) = ptrs(&rkeys);
        let mut cmp_rval: libc::c_int = 0;
        // SAFETY: the op is created, filled with pointers into buffers that live until after
        // operate returns (librados copies them when the op is built; `cmp_rval` is a local
        // that outlives operate), and released once.
        unsafe {
            let op = sys::rados_create_write_op();
            if op.is_null() {
                return Err(Errno(libc::ENOMEM));
            }
            if let Some(key) = absent {
                // A missing key compares as the empty value, so EQ "" means "absent".
                let empty = b"";
                sys::rados_write_op_omap_cmp2(
                    op,
                    key.as_ptr().cast(),
                    sys::CMPXATTR_OP_EQ,
                    empty.as_ptr().cast(),
                    key.len(),
                    0,
                    &mut cmp_rval,
                );
            }
            if !set.is_empty() {
                sys::rados_write_op_omap_set2(
                    op,
                    sk.as_ptr(),
                    sv.as_ptr(),
                    skl.as_ptr(),
                    svl.as_ptr(),
                    set.len(),
                );
            }
            if !rm.is_empty() {
                sys::rados_write_op_omap_rm_keys2(op, rk.as_ptr(), rkl.as_ptr(), rm.len());
            }
            let rc = sys::rados_write_op_operate(op, self.h, oid.as_ptr(), ptr::null_mut(), 0);
            sys::rados_release_write_op(op);
            check(rc)
        }
    }

    /// Compare-and-swap one omap key of `oid` (created if missing), atomically: when its value
    /// is `expected` (`None`: the key is absent — RADOS compares an absent key as empty, so
    /// values written through here are never empty), set it to `new` (`None`: remove it).
    /// `Err(Errno(ECANCELED))` when the value was something else: read again and retry.
    pub fn omap_swap(
        &self,
        oid: &str,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<(), Errno> {
        if new == Some("") {
            return Err(Errno(libc::EINVAL));
        }
        let oid = cstr(oid)?;
        let exp = expected.unwrap_or("");
        let (kp, kl): (*const libc::c_char, usize) = (key.as_ptr().cast(), key.len());
        let mut prval: libc::c_int = 0;
        // SAFETY: the op is created, filled with pointers into `key`, `exp`, `new` and
        // `prval`, which all live until after operate returns, and released once. The ops run
        // in order in one OSD transaction: create (idempotent) so the compare sees an object,
        // compare, then the update — all or nothing.
        unsafe {
            let op = sys::rados_create_write_op();
            if op.is_null() {
                return Err(Errno(libc::ENOMEM));
            }
            sys::rados_write_op_create(op, sys::CREATE_IDEMPOTENT, ptr::null());
            sys::rados_write_op_omap_cmp2(
                op,
                kp,
                sys::CMPXATTR_OP_EQ,
                exp.as_ptr().cast(),
                kl,
                exp.len(),
                &mut prval,
            );
            match new {
                Some(v) => {
                    let vp: *const libc::c_char = v.as_ptr().cast();
                    let vl = v.len();
                    sys::rados_write_op_omap_set2(op, &kp, &vp, &kl, &vl, 1);
                }
                None => sys::rados_write_op_omap_rm_keys2(op, &kp, &kl, 1),
            }
            let rc = sys::rados_write_op_operate(op, self.h, oid.as_ptr(), ptr::null_mut(), 0);
            sys::rados_release_write_op(op);
            check(rc)?;
            check(prval)
        }
    }

    /// Values of `keys` in the omap of `oid` (absent keys are absent; a missing object is empty).
    pub fn omap_get(&self, oid: &str, keys: &[&str]) -> Result<BTreeMap<String, String>, Errno> {
        let oid = cstr(oid)?;
        let kp: Vec<*const libc::c_char> = keys.iter().map(|k| k.as_ptr().cast()).collect();
        let kl: Vec<usize> = keys.iter().map(|k| k.len()).collect();
        // SAFETY: as in omap_update; the iterator is drained and ended before the op is released.
        unsafe {
            let op = sys::rados_create_read_op();
            if op.is_null() {
                return Err(Errno(libc::ENOMEM));
            }
            let mut iter: sys::OmapIterT = ptr::null_mut();
            let mut prval = 0;
            sys::rados_read_op_omap_get_vals_by_keys2(
                op,
                kp.as_ptr(),
                keys.len(),
                kl.as_ptr(),
                &mut iter,
                &mut prval,
            );
            let rc = sys::rados_read_op_operate(op, self.h, oid.as_ptr(), 0);
            let out = finish_read(op, iter, rc, prval);
            out.map(|entries| entries.into_iter().collect())
        }
    }

    /// Up to `max` entries whose keys start with `prefix`, after `start_after`.
    pub fn omap_list(
        &self,
        oid: &str,
        start_after: &str,
        prefix: &str,
        max: u64,
    ) -> Result<OmapPage, Errno> {
        let oid = cstr(oid)?;
        let start = cstr(start_after)?;
        let prefix = cstr(prefix)?;
        // SAFETY: as in omap_get.
        unsafe {
            let op = sys::rados_create_read_op();
            if op.is_null() {
                return Err(Errno(libc::ENOMEM));
            }
            let mut iter: sys::OmapIterT = ptr::null_mut();
            let mut prval = 0;
            let mut more = 0u8;
            sys::rados_read_op_omap_get_vals2(
                op,
                start.as_ptr(),
                prefix.as_ptr(),
                max,
                &mut iter,
                &mut more,
                &mut prval,
            );
            let rc = sys::rados_read_op_operate(op, self.h, oid.as_ptr(), 0);
            let entries = finish_read(op, iter, rc, prval)?;
            Ok(OmapPage {
                entries,
                more: more != 0,
            })
        }
    }
}

/// Drain `iter` (if the op succeeded), end it, release `op`. A missing object reads as empty.
///
/// SAFETY: `op` is a read op that was operated with `iter`/`prval` as its out-pointers.
unsafe fn finish_read(
    op: sys::ReadOpT,
    iter: sys::OmapIterT,
    rc: i32,
    prval: i32,
) -> Result<Vec<(String, String)>, Errno> {
    let mut out = Vec::new();
    let result = if rc == -libc::ENOENT {
        Ok(())
    } else if rc < 0 {
        Err(Errno(-rc))
    } else if prval < 0 {
        Err(Errno(-prval))
    } else {
        Ok(())
    };
    if !iter.is_null() {
        if rc >= 0 && prval >= 0 {
            loop {
                let (mut k, mut v) = (ptr::null_mut(), ptr::null_mut());
                let (mut kl, mut vl) = (0usize, 0usize);
                // SAFETY: iter is valid until rados_omap_get_end; k/v point into it.
                let r =
                    unsafe { sys::rados_omap_get_next2(iter, &mut k, &mut v, &mut kl, &mut vl) };
                if r < 0 || k.is_null() {
                    break;
                }
                // SAFETY: librados returns kl/vl bytes at k/v.
                let key = unsafe { std::slice::from_raw_parts(k.cast::<u8>(), kl) };
                let val = if v.is_null() {
                    &[][..]
                } else {
                    unsafe { std::slice::from_raw_parts(v.cast::<u8>(), vl) }
                };
                out.push((
                    String::from_utf8_lossy(key).into_owned(),
                    String::from_utf8_lossy(val).into_owned(),
                ));
            }
        }
        // SAFETY: ended once.
        unsafe { sys::rados_omap_get_end(iter) };
    }
    // SAFETY: released once, after the iterator is done.
    unsafe { sys::rados_release_read_op(op) };
    result.map(|()| out)
}

impl Drop for IoCtx<'_> {
    fn drop(&mut self) {
        // SAFETY: created by rados_ioctx_create, destroyed once; images borrow the IoCtx.
        unsafe { sys::rados_ioctx_destroy(self.h) }
    }
}

/// Copy a C string owned by librados.
///
/// SAFETY: `p` is null or a valid NUL-terminated string.
pub(super) unsafe fn owned(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: per the contract above.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
