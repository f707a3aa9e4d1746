//! Certificate files for nginx: `PREFIX/tls/<id>.pem` (chain + key), directory 0700, files
//! 0600, owned by the user berth-ingress and the nginx master run as (the same user in the
//! pod; nginx reads them as its master before dropping worker privileges).
//!
//! A file name contains a hash of its content ([`crate::tls::Certificate::id`]), so a file is
//! written once, never rewritten in place, and a rotated Secret yields a new name, a new config
//! text and therefore a reload. Files no config uses any more are pruned after a successful
//! reload. Errors name the path only; the content never appears in logs or errors.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::private_files::{prune, write_tmp};
use crate::tls::{Certificate, SELF_SIGNED_ID};

/// The directory of certificate files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("certificate file {path}: {source}")]
pub struct CertFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl CertFiles {
    /// Create (or tighten) the directory: 0700.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, CertFileError> {
        let dir = dir.into();
        let err = |source| CertFileError {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(err)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.pem"))
    }

    /// Write one certificate unless its file already exists (same id = same content; the
    /// self-signed one is always rewritten, it is generated anew at each start).
    pub fn write(&self, cert: &Certificate) -> Result<(), CertFileError> {
        let path = self.path(&cert.id);
        if cert.id != SELF_SIGNED_ID && path.exists() {
            return Ok(());
        }
        let err = |source| CertFileError {
            path: path.clone(),
            source,
        };
        let tmp = write_tmp(&self.dir, &cert.id, cert.pem.as_bytes()).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)
    }

    /// Write every certificate of a model.
    pub fn install(&self, certs: &[Certificate]) -> Result<(), CertFileError> {
        certs.iter().try_for_each(|c| self.write(c))
    }

    /// Remove certificate files not in `keep` (the self-signed one always stays).
    pub fn prune(&self, keep: &[Certificate]) {
        let keep: BTreeSet<String> = keep
            .iter()
            .map(|c| format!("{}.pem", c.id))
            .chain([format!("{SELF_SIGNED_ID}.pem")])
            .collect();
        prune(&self.dir, ".pem", &keep, "certificate");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_written_once_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::new(dir.path().join("tls")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(files.dir()), 0o700);
        let mut a = crate::tls::self_signed().unwrap();
        a.id = "ns_a_0011223344556677".into();
        files.install(std::slice::from_ref(&a)).unwrap();
        let pa = files.path(&a.id);
        assert_eq!(mode(&pa), 0o600);
        assert!(fs::read_to_string(&pa).unwrap().contains("PRIVATE KEY"));
        let ss = crate::tls::self_signed().unwrap();
        files.write(&ss).unwrap();
        files.prune(&[]);
        assert!(!pa.exists());
        assert!(files.path(SELF_SIGNED_ID).exists());
    }
}
