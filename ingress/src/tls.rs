//! TLS material: `kubernetes.io/tls` Secrets -> validated [`Certificate`]s, and the self-signed
//! certificate the catch-all server presents when `--default-ssl-certificate` is not given.
//!
//! A Secret is accepted when `tls.crt` holds one or more PEM `CERTIFICATE` blocks that parse as
//! X.509, `tls.key` holds exactly one PEM private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or
//! Ed25519) and the key's public half equals the leaf certificate's SubjectPublicKeyInfo
//! (checked with rustls' ring signer, so a key nginx would refuse at reload is refused here,
//! before it can block a reload). The file nginx reads is re-encoded from the parsed DER
//! blocks (chain first, then the key), never the Secret's bytes verbatim.
//!
//! Every certificate of the chain is also checked as nginx's OpenSSL 3 will check it when it
//! loads the file (security level 2, Debian's default): no MD2/MD4/MD5/SHA-1 signature
//! (`ca md too weak`; self-signed certificates are exempt, as OpenSSL exempts them) and no RSA
//! key under 2048 bits (`ee/ca key too small`). This is a courtesy, not the boundary: it names
//! the problem and spares a bisection. Whatever nginx still refuses (e.g. a P-192 EC key in the
//! chain) is found by `quarantine.rs` and dropped with its object.
//!
//! Secrecy: error messages name the field and the kind of problem only; parser errors are not
//! forwarded (they can quote input lines). [`Certificate`]'s `Debug` omits the PEM.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::model::{Kind, ObjectRef};
use crate::validate::Invalid;

/// File stem of the generated self-signed certificate (not a valid Secret-derived id: those
/// always contain two `_`).
pub const SELF_SIGNED_ID: &str = "berth-default-self-signed";
/// Subject name of the self-signed certificate (ingress-nginx uses a similar fake name).
pub const SELF_SIGNED_NAME: &str = "berth-ingress-default.invalid";
/// Longest chain accepted in one `tls.crt`: leaf + intermediates; real chains have 2-4.
const MAX_CHAIN: usize = 10;
/// Largest `tls.crt` / `tls.key` accepted (bytes): real ones are a few KiB.
const MAX_PEM_BYTES: usize = 256 * 1024;

/// A certificate chain and its key, validated and ready to be written for nginx.
#[derive(Clone)]
pub struct Certificate {
    /// File stem: `namespace_name_<16 hex of sha256(pem)>`; changes when the content changes,
    /// so a rotated Secret changes the config text and therefore reloads nginx.
    pub id: String,
    /// The Secret it came from.
    pub origin: ObjectRef,
    /// Leaf `notAfter`, seconds since the epoch.
    pub not_after: i64,
    /// Leaf serial number, lowercase hex (for logs and tests; not secret).
    pub serial: String,
    /// Chain then key, PEM. Secret: never logged or printed.
    pub pem: Arc<str>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .field("not_after", &self.not_after)
            .field("serial", &self.serial)
            .field("pem", &"<redacted>")
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        // The id hashes the content.
        self.id == other.id && self.origin == other.origin
    }
}
impl Eq for Certificate {}

fn invalid(why: &str) -> Invalid {
    Invalid(why.to_owned())
}

fn pem_block(out: &mut String, label: &str, der: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

/// What [`parse_pair`] learned; the PEM is the re-encoded chain + key.
#[derive(Clone)]
pub struct Parsed {
    pub pem: String,
    pub not_after: i64,
    pub serial: String,
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parsed")
            .field("not_after", &self.not_after)
            .field("serial", &self.serial)
            .field("pem", &"<redacted>")
            .finish()
    }
}

/// Validate a certificate chain and its private key (PEM bytes, as in a Secret).
pub fn parse_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<Parsed, Invalid> {
    if cert_pem.len() > MAX_PEM_BYTES || key_pem.len() > MAX_PEM_BYTES {
        return Err(invalid("tls.crt or tls.key is larger than 256 KiB"));
    }
    let mut chain = Vec::new();
    for block in CertificateDer::pem_slice_iter(cert_pem) {
        let der = block.map_err(|_| invalid("tls.crt is not valid PEM"))?;
        chain.push(der);
        if chain.len() > MAX_CHAIN {
            return Err(invalid("tls.crt holds more than 10 certificates"));
        }
    }
    let Some(leaf) = chain.first() else {
        return Err(invalid("tls.crt holds no PEM CERTIFICATE block"));
    };
    let mut keys = PrivateKeyDer::pem_slice_iter(key_pem);
    let key = match keys.next() {
        Some(Ok(k)) => k,
        Some(Err(_)) => return Err(invalid("tls.key is not valid PEM")),
        None => return Err(invalid("tls.key holds no PEM private key")),
    };
    if keys.next().is_some() {
        return Err(invalid("tls.key holds more than one private key"));
    }
    for der in &chain {
        x509_parser::parse_x509_certificate(der)
            .map_err(|_| invalid("tls.crt holds a certificate that is not valid X.509"))?;
    }
    for (i, der) in chain.iter().enumerate() {
        if let Ok((_, c)) = x509_parser::parse_x509_certificate(der) {
            openssl_policy(i, &c)?;
        }
    }
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|_| invalid("tls.crt is not valid X.509"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        invalid("tls.key is not a supported private key (RSA, ECDSA P-256/P-384, Ed25519)")
    })?;
    let spki = signer
        .public_key()
        .ok_or_else(|| invalid("tls.key: cannot derive its public key"))?;
    if spki.as_ref() != cert.tbs_certificate.subject_pki.raw {
        return Err(invalid("tls.key does not match the certificate in tls.crt"));
    }
    let mut pem = String::with_capacity(cert_pem.len() + key_pem.len());
    for der in &chain {
        pem_block(&mut pem, "CERTIFICATE", der);
    }
    let label = match &key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem_block(&mut pem, label, key.secret_der());
    Ok(Parsed {
        pem,
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.raw_serial_as_string().replace(':', ""),
    })
}

/// Signature algorithms whose digest OpenSSL 3 refuses in a certificate: (OID, digest).
const WEAK_SIGNATURES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.2", "MD2"),
    ("1.2.840.113549.1.1.3", "MD4"),
    ("1.2.840.113549.1.1.4", "MD5"),
    ("1.2.840.113549.1.1.5", "SHA-1"),
    ("1.3.14.3.2.3", "MD5"),
    ("1.3.14.3.2.29", "SHA-1"),
    ("1.2.840.10045.4.1", "SHA-1"),
    ("1.2.840.10040.4.3", "SHA-1"),
];
/// RSASSA-PSS hash OIDs that are too weak (PSS without a hash parameter means SHA-1).
const WEAK_DIGESTS: &[(&str, &str)] = &[("1.3.14.3.2.26", "SHA-1"), ("1.2.840.113549.2.5", "MD5")];
/// Smallest RSA key OpenSSL accepts at security level 2 (Debian 12's default), in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The digest of a weak signature algorithm, if `alg` is one.
fn weak_digest(alg: &x509_parser::x509::AlgorithmIdentifier<'_>) -> Option<&'static str> {
    use x509_parser::signature_algorithm::SignatureAlgorithm;
    let oid = alg.algorithm.to_id_string();
    if let Some((_, d)) = WEAK_SIGNATURES.iter().find(|(o, _)| *o == oid) {
        return Some(d);
    }
    match SignatureAlgorithm::try_from(alg) {
        Ok(SignatureAlgorithm::RSASSA_PSS(p)) => {
            let hash = p.hash_algorithm_oid().to_id_string();
            WEAK_DIGESTS
                .iter()
                .find(|(o, _)| *o == hash)
                .map(|(_, d)| *d)
        }
        _ => None,
    }
}

/// Bits of a big-endian unsigned integer (DER may prefix a zero byte).
fn bits(be: &[u8]) -> usize {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    match be.get(start) {
        Some(first) => (be.len() - start - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

/// Certificate `index` of a chain (0 = leaf) as OpenSSL's security level 2 sees it.
fn openssl_policy(
    index: usize,
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<(), Invalid> {
    let which = if index == 0 {
        "the leaf certificate".to_owned()
    } else {
        format!("certificate {index} of the chain")
    };
    let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
    if !self_signed && let Some(digest) = weak_digest(&cert.signature_algorithm) {
        return Err(Invalid(format!(
            "tls.crt: {which} is signed with {digest}, which nginx's OpenSSL refuses \
                 ('ca md too weak'); reissue it signed with SHA-256 or better"
        )));
    }
    if let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = cert.public_key().parsed() {
        let n = bits(rsa.modulus);
        if n < MIN_RSA_BITS {
            return Err(Invalid(format!(
                "tls.crt: {which} has a {n}-bit RSA key; nginx's OpenSSL needs at least \
                 {MIN_RSA_BITS} bits ('key too small')"
            )));
        }
    }
    Ok(())
}

/// The bytes of one key of a Secret: `data` (base64-decoded by the API types) or, in manifest
/// files that were never stored by an API server, `stringData`.
pub(crate) fn secret_value<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(&v.0);
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.as_bytes())
}

/// A `kubernetes.io/tls` Secret -> [`Certificate`]. `origin` must already be validated
/// (namespace and name are DNS names), since they form the file name.
pub fn from_secret(secret: &Secret, origin: ObjectRef) -> Result<Certificate, Invalid> {
    if secret.type_.as_deref() != Some("kubernetes.io/tls") {
        return Err(invalid("Secret is not of type kubernetes.io/tls"));
    }
    let crt = secret_value(secret, "tls.crt").ok_or_else(|| invalid("Secret has no tls.crt"))?;
    let key = secret_value(secret, "tls.key").ok_or_else(|| invalid("Secret has no tls.key"))?;
    let parsed = parse_pair(crt, key)?;
    Ok(certificate(origin, parsed))
}

fn certificate(origin: ObjectRef, parsed: Parsed) -> Certificate {
    let digest = Sha256::digest(parsed.pem.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let id = format!("{}_{}_{hex}", origin.namespace, origin.name);
    Certificate {
        id,
        origin,
        not_after: parsed.not_after,
        serial: parsed.serial,
        pem: Arc::from(parsed.pem),
    }
}

/// Generate the self-signed certificate for the catch-all server (ECDSA P-256, valid for
/// [`SELF_SIGNED_NAME`]). Its id is [`SELF_SIGNED_ID`].
pub fn self_signed() -> Result<Certificate, rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let cert =
        rcgen::CertificateParams::new(vec![SELF_SIGNED_NAME.to_owned()])?.self_signed(&key)?;
    let parsed = parse_pair(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
    Ok(Certificate {
        id: SELF_SIGNED_ID.to_owned(),
        origin: ObjectRef::new(Kind::Secret, "", SELF_SIGNED_ID),
        not_after: parsed.not_after,
        serial: parsed.serial,
        pem: Arc::from(parsed.pem),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn accepts_matching_pair_and_reencodes() {
        let (crt, key) = pair("a.example.com");
        let p = parse_pair(crt.as_bytes(), key.as_bytes()).unwrap();
        assert!(p.pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(p.pem.contains("-----BEGIN PRIVATE KEY-----\n"));
        assert!(p.not_after > 1_700_000_000);
        assert!(!p.serial.is_empty());
    }

    #[test]
    fn refuses_mismatch_garbage_and_empty() {
        let (crt, _) = pair("a.example.com");
        let (_, other_key) = pair("b.example.com");
        let e = parse_pair(crt.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(e.0.contains("does not match"), "{e}");
        let (_, key) = pair("c");
        for bad in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        ] {
            assert!(
                parse_pair(bad.as_bytes(), key.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
        let junk_cert = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        assert!(parse_pair(junk_cert.as_bytes(), key.as_bytes()).is_err());
        assert!(parse_pair(crt.as_bytes(), b"").is_err());
    }

    #[test]
    fn errors_and_debug_never_show_key_material() {
        let (crt, key) = pair("a.example.com");
        let body: String = key.lines().nth(1).unwrap().to_owned();
        let broken = key.replace(&body, &format!("{body}!!"));
        let e = parse_pair(crt.as_bytes(), broken.as_bytes()).unwrap_err();
        assert!(!e.0.contains(&body[..20]), "{e}");
        let mut s = Secret {
            type_: Some("kubernetes.io/tls".into()),
            ..Secret::default()
        };
        s.string_data = Some(
            [("tls.crt".to_owned(), crt), ("tls.key".to_owned(), key)]
                .into_iter()
                .collect(),
        );
        let c = from_secret(&s, ObjectRef::new(Kind::Secret, "ns", "web-tls")).unwrap();
        assert!(c.id.starts_with("ns_web-tls_") && c.id.len() == "ns_web-tls_".len() + 16);
        let dbg = format!("{c:?}");
        assert!(
            dbg.contains("<redacted>") && !dbg.contains("PRIVATE"),
            "{dbg}"
        );
    }

    /// Issue 12 item 2: what nginx's OpenSSL refuses at load is refused here, with the reason.
    /// The files were made with the openssl CLI (`testdata/README`); nginx -t refuses the first
    /// two ('ca md too weak', 'ee key too small') and accepts the third.
    #[test]
    fn refuses_what_openssl_refuses_and_says_why() {
        let leaf_key = include_str!("testdata/leaf.key");
        let e = parse_pair(
            include_bytes!("testdata/sha1-leaf.crt"),
            leaf_key.as_bytes(),
        )
        .unwrap_err();
        assert!(
            e.0.contains("signed with SHA-1") && e.0.contains("ca md too weak"),
            "{e}"
        );
        let e = parse_pair(
            include_bytes!("testdata/rsa1024.crt"),
            include_bytes!("testdata/rsa1024.key"),
        )
        .unwrap_err();
        assert!(e.0.contains("1024-bit RSA key"), "{e}");
        // A SHA-1 self-signature (an old root in the chain) is exempt, as in OpenSSL.
        parse_pair(
            include_bytes!("testdata/sha256-leaf-plus-sha1-root.crt"),
            leaf_key.as_bytes(),
        )
        .unwrap();
        assert_eq!(bits(&[0x00, 0x80, 0]), 16);
        assert_eq!(bits(&[0x01, 0xff]), 9);
        assert_eq!(bits(&[]), 0);
    }

    #[test]
    fn self_signed_is_valid() {
        let c = self_signed().unwrap();
        assert_eq!(c.id, SELF_SIGNED_ID);
        assert!(c.pem.contains("BEGIN CERTIFICATE"));
    }
}
