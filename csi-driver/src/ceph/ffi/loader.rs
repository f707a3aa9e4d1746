//! Runtime loading of librados / librbd (`libloading`), so a process that never talks to Ceph
//! (the node plugin attaches through the `rbd`, `rbd-nbd` and `rbd-fuse` tools) never maps
//! them: the libraries and their dependencies cost ~25 MiB of resident pages at rest.
//!
//! [`ceph_api!`] turns a list of C signatures into a table of typed function pointers,
//! resolved once by [`load`], plus same-named `unsafe fn` wrappers (what `extern "C"`
//! declarations would give), so the safe wrappers in `rados.rs` / `rbd.rs` read as before.
//! A wrapper called before a successful [`load`] does not panic: it returns what the C
//! function returns for "not supported" (`-ENOSYS`, a null handle, 0), which every caller
//! already handles. The libraries are never unloaded (Ceph's threads outlive any handle).

use std::sync::{Mutex, OnceLock};

/// The sonames Debian's librados2 / librbd1 packages ship (Ceph 16.2 Pacific ABI).
pub const LIBRADOS: &str = "librados.so.2";
pub const LIBRBD: &str = "librbd.so.1";

/// A Ceph client library could not be loaded, or lacks a function berth calls.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load {library} (is the Ceph client library installed?)")]
    Open {
        library: &'static str,
        #[source]
        source: libloading::Error,
    },
    #[error("{library} has no function {symbol} (wrong Ceph version?)")]
    Symbol {
        library: &'static str,
        symbol: &'static str,
        #[source]
        source: libloading::Error,
    },
}

impl LoadError {
    /// The soname that failed.
    pub fn library(&self) -> &'static str {
        match self {
            LoadError::Open { library, .. } | LoadError::Symbol { library, .. } => library,
        }
    }
}

/// What a wrapper returns when the libraries are not loaded.
pub trait Unloaded {
    fn unloaded() -> Self;
}

impl Unloaded for () {
    fn unloaded() -> Self {}
}

impl Unloaded for libc::c_int {
    fn unloaded() -> Self {
        -libc::ENOSYS
    }
}

impl Unloaded for u64 {
    fn unloaded() -> Self {
        0
    }
}

impl<T> Unloaded for *mut T {
    fn unloaded() -> Self {
        std::ptr::null_mut()
    }
}

/// `-> T` when given, else `()`.
macro_rules! ret_or_unit {
    () => {
        ()
    };
    ($t:ty) => {
        $t
    };
}

/// Declare the functions of one library: a struct `$table` of typed pointers with a
/// `resolve` constructor, and one `unsafe fn` per function calling through [`loaded`].
macro_rules! ceph_api {
    ($table:ident via $field:ident;
     $( fn $name:ident ( $( $arg:ident : $ty:ty ),* $(,)? ) $( -> $ret:ty )? ; )*) => {
        /// Typed pointers into one loaded library.
        pub struct $table {
            $( $name: unsafe extern "C" fn( $( $ty ),* ) $( -> $ret )?, )*
        }

        impl $table {
            /// Resolve every function from `lib`, naming the first one missing.
            pub(super) fn resolve(
                lib: &libloading::Library,
                library: &'static str,
            ) -> Result<Self, $crate::ceph::ffi::loader::LoadError> {
                Ok($table {
                    $( $name: {
                        // SAFETY: the pointer type is the C prototype of this symbol in the
                        // Pacific headers (librados.h / librbd.h); `lib` is kept loaded for
                        // the life of the process (see `load`).
                        let sym = unsafe {
                            lib.get::<unsafe extern "C" fn( $( $ty ),* ) $( -> $ret )?>(
                                concat!(stringify!($name), "\0").as_bytes(),
                            )
                        }
                        .map_err(|source| $crate::ceph::ffi::loader::LoadError::Symbol {
                            library,
                            symbol: stringify!($name),
                            source,
                        })?;
                        *sym
                    }, )*
                })
            }
        }

        $(
            /// # Safety
            /// As the C function of the same name.
            pub unsafe fn $name( $( $arg : $ty ),* ) -> ret_or_unit!($($ret)?) {
                match $crate::ceph::ffi::loader::loaded() {
                    // SAFETY: the caller upholds the C function's contract.
                    Some(api) => unsafe { (api.$field.$name)( $( $arg ),* ) },
                    None => <ret_or_unit!($($ret)?) as $crate::ceph::ffi::loader::Unloaded>::unloaded(),
                }
            }
        )*
    };
}

pub(super) use {ceph_api, ret_or_unit};

/// Both libraries, loaded, with their function tables.
pub struct Api {
    pub(super) rados: super::sys::RadosApi,
    pub(super) rbd: super::sys::RbdApi,
    _libs: [libloading::Library; 2],
}

static API: OnceLock<Api> = OnceLock::new();
/// Serialises first loads, so two threads never dlopen at once.
static LOADING: Mutex<()> = Mutex::new(());

/// The loaded libraries, if [`load`] succeeded.
pub fn loaded() -> Option<&'static Api> {
    API.get()
}

/// Load librados and librbd unless loaded already. A failure is not remembered: installing
/// the library makes the next call succeed without a restart.
pub fn load() -> Result<(), LoadError> {
    if API.get().is_some() {
        return Ok(());
    }
    let _turn = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if API.get().is_some() {
        return Ok(());
    }
    let api = open(LIBRADOS, LIBRBD)?;
    let _ = API.set(api);
    tracing::debug!("loaded {LIBRADOS} and {LIBRBD}");
    Ok(())
}

/// Open both libraries by soname and resolve every function berth calls.
fn open(rados: &'static str, rbd: &'static str) -> Result<Api, LoadError> {
    let lib = |library: &'static str| {
        // SAFETY: loading a library runs its initialisers; librados/librbd's only set up
        // static state of their own.
        unsafe { libloading::Library::new(library) }
            .map_err(|source| LoadError::Open { library, source })
    };
    let (rados_lib, rbd_lib) = (lib(rados)?, lib(rbd)?);
    Ok(Api {
        rados: super::sys::RadosApi::resolve(&rados_lib, rados)?,
        rbd: super::sys::RbdApi::resolve(&rbd_lib, rbd)?,
        _libs: [rados_lib, rbd_lib],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_typed_error_naming_it() {
        let Err(err) = open("libberth-no-such.so.9", LIBRBD) else {
            panic!("a library that does not exist loaded");
        };
        assert!(matches!(err, LoadError::Open { .. }), "{err:?}");
        assert_eq!(err.library(), "libberth-no-such.so.9");
        assert!(err.to_string().contains("libberth-no-such.so.9"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        // What a CO sees: FAILED_PRECONDITION naming the library, never a panic.
        let status = tonic::Status::from(crate::error::Error::CephLibrary(err));
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(
            status.message().contains("libberth-no-such.so.9"),
            "{status:?}"
        );
    }

    #[test]
    fn a_library_without_the_functions_is_a_typed_error_naming_one() {
        // libc is loaded in every process and exports none of librados' functions.
        let Err(err) = open("libc.so.6", LIBRBD) else {
            panic!("libc passed for librados");
        };
        assert!(
            matches!(
                err,
                LoadError::Symbol {
                    library: "libc.so.6",
                    symbol: "rados_create2",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn unloaded_wrappers_answer_enosys_not_panic() {
        assert_eq!(<libc::c_int as Unloaded>::unloaded(), -libc::ENOSYS);
        assert!(<*mut libc::c_void as Unloaded>::unloaded().is_null());
    }
}
