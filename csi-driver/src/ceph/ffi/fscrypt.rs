//! fscrypt v2 ioctls (`linux/fscrypt.h`): add and remove a master key on a mounted filesystem,
//! set and read a directory's encryption policy. Not Ceph, but a raw kernel ABI: it lives here
//! because this module tree is the crate's only place allowed `unsafe`. Every function takes a
//! path and answers an `io::Error`; key buffers handed to the kernel are wiped after the call.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use zeroize::Zeroize;

/// `FSCRYPT_KEY_IDENTIFIER_SIZE`.
pub const KEY_ID_LEN: usize = 16;
const KEY_SPEC_TYPE_IDENTIFIER: u32 = 2;
const POLICY_V2: u8 = 2;
const MODE_AES_256_XTS: u8 = 1;
const MODE_AES_256_CTS: u8 = 4;
/// `FSCRYPT_POLICY_FLAGS_PAD_32`: file name lengths padded to 32 bytes (leak less).
const FLAGS_PAD_32: u8 = 0x03;

/// `_IOC(dir, 'f', nr, size)`.
const fn ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((b'f' as u64) << 8) | nr
}
const READ: u64 = 2;
const READ_WRITE: u64 = 3;
/// `FS_IOC_SET_ENCRYPTION_POLICY`: `_IOR('f', 19, struct fscrypt_policy_v1)` (12 bytes).
const SET_POLICY: u64 = ioc(READ, 19, 12);
/// `FS_IOC_GET_ENCRYPTION_POLICY_EX`: `_IOWR('f', 22, __u8[9])`.
const GET_POLICY_EX: u64 = ioc(READ_WRITE, 22, 9);
/// `FS_IOC_ADD_ENCRYPTION_KEY`: `_IOWR('f', 23, struct fscrypt_add_key_arg)` (80 bytes).
const ADD_KEY: u64 = ioc(READ_WRITE, 23, 80);
/// `FS_IOC_REMOVE_ENCRYPTION_KEY`: `_IOWR('f', 24, struct fscrypt_remove_key_arg)` (64 bytes).
const REMOVE_KEY: u64 = ioc(READ_WRITE, 24, 64);

/// `struct fscrypt_key_specifier` (40 bytes).
#[repr(C)]
struct KeySpec {
    ty: u32,
    reserved: u32,
    u: [u8; 32],
}

/// `struct fscrypt_add_key_arg` with its flexible `raw[]` of 64 bytes.
#[repr(C)]
struct AddKeyArg {
    spec: KeySpec,
    raw_size: u32,
    key_id: u32,
    reserved: [u32; 8],
    raw: [u8; 64],
}

/// `struct fscrypt_remove_key_arg` (64 bytes).
#[repr(C)]
struct RemoveKeyArg {
    spec: KeySpec,
    removal_status_flags: u32,
    reserved: [u32; 5],
}

/// `struct fscrypt_policy_v2` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct PolicyV2 {
    version: u8,
    contents: u8,
    filenames: u8,
    flags: u8,
    reserved: [u8; 4],
    identifier: [u8; KEY_ID_LEN],
}

/// `struct fscrypt_get_policy_ex_arg` with room for a v2 policy.
#[repr(C)]
struct GetPolicyExArg {
    policy_size: u64,
    policy: PolicyV2,
}

fn ioctl<T>(path: &Path, request: u64, arg: &mut T) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: `arg` is a live, exclusively borrowed value of the `#[repr(C)]` layout the
    // request number names; the fd is open for the duration of the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), request as _, arg as *mut T) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Add a 64-byte master key to the filesystem mounted at `mount`; answers its identifier.
pub fn add_key(mount: &Path, key: &[u8; 64]) -> io::Result<[u8; KEY_ID_LEN]> {
    let mut arg = AddKeyArg {
        spec: KeySpec {
            ty: KEY_SPEC_TYPE_IDENTIFIER,
            reserved: 0,
            u: [0; 32],
        },
        raw_size: 64,
        key_id: 0,
        reserved: [0; 8],
        raw: *key,
    };
    let r = ioctl(mount, ADD_KEY, &mut arg);
    arg.raw.zeroize();
    r?;
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&arg.spec.u[..KEY_ID_LEN]);
    Ok(id)
}

/// Remove the master key `id` from the filesystem mounted at `mount` (its files' plaintext
/// leaves the caches; ENOKEY when it is not there).
pub fn remove_key(mount: &Path, id: &[u8; KEY_ID_LEN]) -> io::Result<()> {
    let mut u = [0u8; 32];
    u[..KEY_ID_LEN].copy_from_slice(id);
    let mut arg = RemoveKeyArg {
        spec: KeySpec {
            ty: KEY_SPEC_TYPE_IDENTIFIER,
            reserved: 0,
            u,
        },
        removal_status_flags: 0,
        reserved: [0; 5],
    };
    ioctl(mount, REMOVE_KEY, &mut arg)
}

/// Give the empty directory `dir` a v2 policy (AES-256-XTS contents, AES-256-CTS names) under
/// key `id`; the same policy again is OK, another one is EEXIST.
pub fn set_policy(dir: &Path, id: &[u8; KEY_ID_LEN]) -> io::Result<()> {
    let mut p = PolicyV2 {
        version: POLICY_V2,
        contents: MODE_AES_256_XTS,
        filenames: MODE_AES_256_CTS,
        flags: FLAGS_PAD_32,
        reserved: [0; 4],
        identifier: *id,
    };
    ioctl(dir, SET_POLICY, &mut p)
}

/// The key identifier of `dir`'s v2 policy (`None`: the directory is not encrypted).
pub fn policy_key(dir: &Path) -> io::Result<Option<[u8; KEY_ID_LEN]>> {
    let mut arg = GetPolicyExArg {
        policy_size: std::mem::size_of::<PolicyV2>() as u64,
        policy: PolicyV2 {
            version: 0,
            contents: 0,
            filenames: 0,
            flags: 0,
            reserved: [0; 4],
            identifier: [0; KEY_ID_LEN],
        },
    };
    match ioctl(dir, GET_POLICY_EX, &mut arg) {
        Ok(()) if arg.policy.version == POLICY_V2 => Ok(Some(arg.policy.identifier)),
        Ok(()) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request numbers of `linux/fscrypt.h` on x86_64 / arm64.
    #[test]
    fn request_numbers_match_the_kernel_header() {
        assert_eq!(SET_POLICY, 0x800c_6613);
        assert_eq!(GET_POLICY_EX, 0xc009_6616);
        assert_eq!(ADD_KEY, 0xc050_6617);
        assert_eq!(REMOVE_KEY, 0xc040_6618);
        assert_eq!(std::mem::size_of::<KeySpec>(), 40);
        assert_eq!(std::mem::size_of::<AddKeyArg>(), 80 + 64);
        assert_eq!(std::mem::size_of::<RemoveKeyArg>(), 64);
        assert_eq!(std::mem::size_of::<PolicyV2>(), 24);
    }
}
