//! The control plane's PKI, made with rcgen: one CA (it signs the API server's serving
//! certificate and the admin's client certificate, and is the client CA), and the
//! service-account token signing key. Files are written 0600 into the control plane's dir.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::ceph::write_private;

/// Paths of the files [`write`] made.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_crt: PathBuf,
    pub ca_key: PathBuf,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    pub admin_crt: PathBuf,
    pub admin_key: PathBuf,
    /// Service-account token signing key (private) and its public half.
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

/// Write a fresh PKI under `dir/pki`.
pub fn write(dir: &Path) -> Result<Pki> {
    let d = dir.join("pki");
    std::fs::create_dir_all(&d)?;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "berth test kubernetes CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let pki = Pki {
        ca_crt: d.join("ca.crt"),
        ca_key: d.join("ca.key"),
        server_crt: d.join("apiserver.crt"),
        server_key: d.join("apiserver.key"),
        admin_crt: d.join("admin.crt"),
        admin_key: d.join("admin.key"),
        sa_key: d.join("sa.key"),
        sa_pub: d.join("sa.pub"),
    };
    write_private(&pki.ca_crt, &ca_cert.pem())?;
    write_private(&pki.ca_key, &ca_key.serialize_pem())?;
    let issuer = rcgen::Issuer::new(ca, ca_key);

    // Serving: the names a client inside or outside the cluster may use for the API.
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::new(vec![
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ])?;
    p.subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &issuer)?;
    write_private(&pki.server_crt, &cert.pem())?;
    write_private(&pki.server_key, &key.serialize_pem())?;

    // The admin: group system:masters (RBAC's superuser group).
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "berth-test-admin");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer)?;
    write_private(&pki.admin_crt, &cert.pem())?;
    write_private(&pki.admin_key, &key.serialize_pem())?;

    // Service-account tokens: ES256 (rcgen's default key is ECDSA P-256).
    let key = rcgen::KeyPair::generate()?;
    write_private(&pki.sa_key, &key.serialize_pem())?;
    write_private(&pki.sa_pub, &key.public_key_pem())?;
    Ok(pki)
}
