//! The FFI boundary: raw declarations (`sys`) and the safe RAII wrappers over them
//! ([`rados`], [`rbd`]). This module tree is the only place in the crate allowed `unsafe`.
//! Every function returns `Result<_, Errno>` (a positive errno) for the caller to map.
#![allow(unsafe_code)]

pub mod fscrypt;
pub mod group;
mod loader;
pub mod rados;
pub mod rbd;
mod sys;

use std::ffi::CString;

pub use loader::{LIBRADOS, LIBRBD, LoadError, load};

/// RBD feature bits (`rbd/features.h`).
pub mod features {
    pub const LAYERING: u64 = 1 << 0;
    pub const EXCLUSIVE_LOCK: u64 = 1 << 2;
    pub const OBJECT_MAP: u64 = 1 << 3;
    pub const FAST_DIFF: u64 = 1 << 4;
    pub const DEEP_FLATTEN: u64 = 1 << 5;
    pub const JOURNALING: u64 = 1 << 6;
}

/// Cap glibc's malloc arenas. librados/librbd allocate from many threads (messenger, finisher,
/// our blocking pool); glibc would give each its own arena (up to 8 per core) and keep the
/// freed memory resident. Two arenas keep a controller's RSS small at no measurable cost here.
pub fn limit_malloc_arenas(arenas: i32) {
    // SAFETY: mallopt only adjusts allocator tunables; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// A positive errno returned by librados/librbd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

/// Negative return code -> Err(errno).
fn check(rc: libc::c_int) -> Result<(), Errno> {
    if rc < 0 { Err(Errno(-rc)) } else { Ok(()) }
}

/// A C string; an interior NUL is EINVAL (names are validated before they get here).
fn cstr(s: &str) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno(libc::EINVAL))
}
