//! Volume encryption keys (fscrypt, `encrypted: "true"` + `encryptionType: "file"`): a KMS
//! abstraction ([`Kms`]) that yields the key-encryption key (KEK), the per-volume master key
//! ([`MasterKey`], 64 random bytes: what `FS_IOC_ADD_ENCRYPTION_KEY` takes) and its wrapped
//! form kept in the image metadata ([`WRAPPED_KEY_META`]).
//!
//! Wrapping: AES-256-GCM under the KEK, a fresh 96-bit nonce each time, the name of the image
//! it was wrapped for as associated data, stored as `v1:<image>:<base64(nonce || ciphertext ||
//! tag)>` (the name is authenticated: changing it fails the unwrap). librbd copies metadata
//! into clones and copies; CreateVolume from a snapshot or volume then re-wraps the source's
//! master key for the new image (a new nonce, its own name), so a clone or restore holds its
//! own wrapped key, never a plaintext one. The master key itself is the source's, necessarily:
//! fscrypt encrypted the cloned files with keys derived from it, and a clone does not
//! re-encrypt a filesystem's contents.
//!
//! [`SecretKms`] (ceph-csi's default "secrets" KMS): the KEK is SHA-256 over a domain label and
//! the `encryptionPassphrase` of the request's CSI secrets (provisioner secrets at CreateVolume,
//! node-stage secrets at NodeStage: the same Kubernetes Secret). The passphrase is expected to be
//! random (a generated Secret), so no slow password hash is applied.
//!
//! Secrets never leave this module in the clear: [`MasterKey`] and [`Kek`] print as
//! `<redacted>`, their buffers are wiped on drop (`zeroize`), and errors name the volume, never
//! a key.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The image metadata key holding the wrapped master key.
pub const WRAPPED_KEY_META: &str = "berth.dev/fscrypt-key";
/// The CSI secret key the Kubernetes-Secret KMS reads (ceph-csi's name).
pub const PASSPHRASE_KEY: &str = "encryptionPassphrase";
/// fscrypt v2 master keys: 64 bytes (AES-256-XTS contents keys are derived from them).
pub const MASTER_KEY_LEN: usize = 64;
const VERSION: &str = "v1:";
const NONCE_LEN: usize = 12;
const KEK_LABEL: &[u8] = b"berth-csi fscrypt kek v1\0";

/// Why a key cannot be had or used. Messages never carry key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The request's secrets hold no passphrase (CSI: UNAUTHENTICATED).
    #[error("the secrets carry no {PASSPHRASE_KEY} (the key-encryption key of encrypted volumes)")]
    NoPassphrase,
    /// The wrapped key does not open with this KEK for this image (CSI: UNAUTHENTICATED).
    #[error(
        "the encryption key of image {image} does not unwrap with the given \
         {PASSPHRASE_KEY} (wrong key-encryption key, or a key wrapped for another image)"
    )]
    WrongKek { image: String },
    /// The metadata value is not a wrapped key of ours (CSI: FAILED_PRECONDITION).
    #[error("the wrapped encryption key of image {image} is malformed")]
    Malformed { image: String },
}

/// A key-encryption key; redacted, wiped on drop.
pub struct Kek(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

/// A per-volume fscrypt master key; redacted, wiped on drop.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// 64 bytes from the operating system's random source.
    pub fn generate() -> MasterKey {
        let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        OsRng.fill_bytes(&mut k[..]);
        MasterKey(k)
    }

    /// The raw key, for the kernel only.
    pub fn expose(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }
}

/// Where key-encryption keys come from.
pub trait Kms: Send + Sync + std::fmt::Debug {
    /// The KEK for a call carrying `secrets`.
    fn kek(&self, secrets: &HashMap<String, String>) -> Result<Kek, KeyError>;
}

/// The Kubernetes-Secret KMS: the KEK comes from the request's `encryptionPassphrase`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecretKms;

impl Kms for SecretKms {
    fn kek(&self, secrets: &HashMap<String, String>) -> Result<Kek, KeyError> {
        let pass = secrets
            .get(PASSPHRASE_KEY)
            .filter(|p| !p.is_empty())
            .ok_or(KeyError::NoPassphrase)?;
        let mut h = Sha256::new();
        h.update(KEK_LABEL);
        h.update(pass.as_bytes());
        let mut digest: [u8; 32] = h.finalize().into();
        let kek = Kek(Zeroizing::new(digest));
        digest.zeroize();
        Ok(kek)
    }
}

fn aad(image: &str) -> Vec<u8> {
    format!("{WRAPPED_KEY_META}/{VERSION}{image}").into_bytes()
}

/// Wrap `key` for `image` under `kek` (a fresh nonce each call).
pub fn wrap(kek: &Kek, image: &str, key: &MasterKey) -> String {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&kek.0[..]));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = aad(image);
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &key.0[..],
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of 64 bytes cannot fail");
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&ct);
    format!("{VERSION}{image}:{}", B64.encode(blob))
}

/// Unwrap the metadata value `wrapped` (found on `image`) with `kek`: the master key and the
/// image it was wrapped for (`image` itself, or the source of a clone not re-wrapped yet).
pub fn unwrap(kek: &Kek, image: &str, wrapped: &str) -> Result<(MasterKey, String), KeyError> {
    let malformed = || KeyError::Malformed {
        image: image.to_string(),
    };
    let rest = wrapped.trim().strip_prefix(VERSION).ok_or_else(malformed)?;
    let (bound, b64) = rest.rsplit_once(':').ok_or_else(malformed)?;
    let blob = B64.decode(b64).map_err(|_| malformed())?;
    if blob.len() != NONCE_LEN + MASTER_KEY_LEN + 16 {
        return Err(malformed());
    }
    let (nonce, ct) = blob.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&kek.0[..]));
    let aad = aad(bound);
    let plain = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| KeyError::WrongKek {
                image: image.to_string(),
            })?,
    );
    let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    k.copy_from_slice(&plain);
    Ok((MasterKey(k), bound.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(pass: &str) -> Kek {
        SecretKms
            .kek(&HashMap::from([(
                PASSPHRASE_KEY.to_string(),
                pass.to_string(),
            )]))
            .unwrap()
    }

    #[test]
    fn wraps_and_unwraps_only_with_the_kek_and_image() {
        let key = MasterKey::generate();
        let w = wrap(&kek("right"), "img-a", &key);
        assert!(w.starts_with("v1:img-a:"));
        let (back, bound) = unwrap(&kek("right"), "img-a", &w).unwrap();
        assert_eq!(back.expose(), key.expose());
        assert_eq!(bound, "img-a");
        assert!(matches!(
            unwrap(&kek("wrong"), "img-a", &w),
            Err(KeyError::WrongKek { .. })
        ));
        // The image it was wrapped for is authenticated: renaming it in the blob fails.
        let moved = w.replace("v1:img-a:", "v1:img-b:");
        assert!(matches!(
            unwrap(&kek("right"), "img-b", &moved),
            Err(KeyError::WrongKek { .. })
        ));
        // Re-wrapping gives another blob for the same key.
        let w2 = wrap(&kek("right"), "img-a", &key);
        assert_ne!(w, w2);
        for bad in ["", "v1:", "v1:i:!!", "v2:i:AAAA", "v1:AAAA", "v1:i:AAAA"] {
            assert!(matches!(
                unwrap(&kek("right"), "img-a", bad),
                Err(KeyError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn no_passphrase_is_refused_and_keys_are_redacted() {
        assert!(matches!(
            SecretKms.kek(&HashMap::new()),
            Err(KeyError::NoPassphrase)
        ));
        let key = MasterKey::generate();
        let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
        let shown = format!("{key:?} {:?}", kek("secret-pass"));
        assert!(
            !shown.contains(&hex[..16]) && !shown.contains("secret-pass"),
            "{shown}"
        );
        let err = unwrap(&kek("x"), "img", &wrap(&kek("y"), "img", &key)).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
