//! The node's part of file encryption (fscrypt v2, [`crate::kms`]):
//!
//! - before anything is attached or formatted, the volume's wrapped key is read from the
//!   image metadata (`rbd image-meta list`, stdout only) and unwrapped with the KEK of the
//!   node-stage secrets: a wrong KEK fails the stage with nothing attached or formatted;
//! - mkfs (only on the provably-empty path that exists) gets `-O encrypt`;
//! - once mounted, the master key is added to the filesystem (`FS_IOC_ADD_ENCRYPTION_KEY`) and
//!   the directory [`ENCRYPTED_DIR`] under the staging path gets a v2 policy (a filesystem's
//!   root cannot have one); publish binds that directory, not the root, into pods;
//! - unstage removes the key (`FS_IOC_REMOVE_ENCRYPTION_KEY`) before unmounting.
//!
//! The plaintext key lives only in memory (wiped on drop) and in the kernel's keyring of the
//! mounted filesystem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::attach::client::ClientFiles;
use crate::ceph::ffi::fscrypt;
use crate::error::Error;
use crate::kms::{self, Kek, MasterKey};
use crate::params::{self, Encryption};

/// The encrypted directory inside the staged filesystem (what pods see).
pub const ENCRYPTED_DIR: &str = "berth-encrypted";

/// The KEK of an encrypted volume from the volume context and the node-stage secrets.
pub fn stage_kek(
    ctx: &HashMap<String, String>,
    secrets: &HashMap<String, String>,
) -> Result<Option<Kek>, Error> {
    match params::encryption(ctx)? {
        Encryption::None => Ok(None),
        Encryption::File => Ok(Some(kms::Kms::kek(&kms::SecretKms, secrets)?)),
    }
}

/// The volume's master key, unwrapped (before attach: a wrong KEK changes nothing).
pub fn master_key(
    client: &ClientFiles,
    spec: &str,
    image: &str,
    kek: &Kek,
) -> Result<MasterKey, Error> {
    let wrapped = crate::attach::meta::wrapped_key(client, spec)?
        .ok_or_else(|| Error::NoWrappedKey { spec: spec.into() })?;
    Ok(kms::unwrap(kek, image, &wrapped)?.0)
}

/// mkfsOptions with `-O encrypt` (ext4), keeping berth's defaults when none are given.
pub fn mkfs_options(user: Option<&str>) -> String {
    let base = user
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .unwrap_or("-m0 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1");
    format!("{base} -O encrypt")
}

fn dir(staging: &Path) -> PathBuf {
    staging.join(ENCRYPTED_DIR)
}

/// Add the key to the filesystem mounted at `staging` and make sure [`ENCRYPTED_DIR`] exists
/// with the v2 policy of that key.
pub fn unlock(staging: &Path, key: &MasterKey) -> Result<(), Error> {
    let id = fscrypt::add_key(staging, key.expose()).map_err(|e| {
        Error::io(
            format!(
                "add the encryption key to the filesystem at {} (made without -O encrypt?)",
                staging.display()
            ),
            e,
        )
    })?;
    let d = dir(staging);
    match std::fs::create_dir(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("create {}", d.display()), e)),
    }
    fscrypt::set_policy(&d, &id).map_err(|e| {
        Error::io(
            format!(
                "set the encryption policy of {} (another key?)",
                d.display()
            ),
            e,
        )
    })
}

/// What publish binds: the encrypted directory of an encrypted volume, else the staging path.
pub fn bind_source(staging: &Path) -> PathBuf {
    let d = dir(staging);
    match fscrypt::policy_key(&d) {
        Ok(Some(_)) => d,
        _ => staging.to_path_buf(),
    }
}

/// Remove the key of the encrypted directory from the filesystem at `staging` (nothing to do
/// for a volume that is not encrypted or not mounted).
pub fn lock(staging: &Path) -> Result<(), Error> {
    let Ok(Some(id)) = fscrypt::policy_key(&dir(staging)) else {
        return Ok(());
    };
    match fscrypt::remove_key(staging, &id) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOKEY) => Ok(()),
        Err(e) => Err(Error::io(
            format!("remove the encryption key from {}", staging.display()),
            e,
        )),
    }
}
