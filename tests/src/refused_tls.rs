//! TLS pairs berth's own checks accept and nginx refuses (its OpenSSL security level): what
//! the isolation tests feed the controller to make `nginx -t` fail on one object.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::proc::run;

/// Which certificate nginx will refuse.
#[derive(Clone, Copy, Debug)]
pub enum Refused {
    /// Leaf signed with SHA-1 by a private RSA CA.
    Sha1Signed,
    /// Leaf (P-256) signed with SHA-256 by a CA whose key is P-192; the CA is in the chain.
    TinyCaKey,
}

/// (tls.crt, tls.key) PEM of a chain nginx refuses, its leaf for `cn`, made in `dir` with the
/// openssl CLI.
pub fn refused_pair(dir: &Path, kind: Refused, cn: &str) -> Result<(String, String)> {
    let d = dir.join(format!("{kind:?}"));
    std::fs::create_dir_all(&d)?;
    let p = |f: &str| d.join(f).display().to_string();
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args));
    match kind {
        Refused::Sha1Signed => {
            let (key, ca) = (p("ca.key"), p("ca.pem"));
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &ca,
                "-subj",
                "/CN=sha1 test CA",
                "-days",
                "30",
                "-sha256",
            ])?;
        }
        Refused::TinyCaKey => {
            let (key, ca) = (p("ca.key"), p("ca.pem"));
            openssl(&[
                "ecparam",
                "-name",
                "prime192v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ])?;
            openssl(&[
                "req",
                "-x509",
                "-key",
                &key,
                "-out",
                &ca,
                "-subj",
                "/CN=p192 test CA",
                "-days",
                "30",
                "-sha256",
            ])?;
        }
    }
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p("leaf.key"),
        "-out",
        &p("leaf.csr"),
        "-subj",
        &format!("/CN={cn}"),
    ])?;
    let digest = match kind {
        Refused::Sha1Signed => "-sha1",
        Refused::TinyCaKey => "-sha256",
    };
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("leaf.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-out",
        &p("leaf.pem"),
        "-days",
        "30",
        digest,
    ])?;
    let mut crt = std::fs::read_to_string(p("leaf.pem"))?;
    if let Refused::TinyCaKey = kind {
        crt.push_str(&std::fs::read_to_string(p("ca.pem"))?);
    }
    Ok((crt, std::fs::read_to_string(p("leaf.key"))?))
}
