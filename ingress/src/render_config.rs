//! [`RenderConfig`]: the settings of the rendered nginx.conf that do not come from objects,
//! and the check of the nginx prefix written into it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Settings of the rendered config that do not come from objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderConfig {
    prefix: PathBuf,
    pub http_port: u16,
    /// Reserved for TLS servers.
    pub https_port: u16,
    /// Listen on this address only (tests: 127.0.0.1); `None` = all IPv4 addresses.
    pub listen_address: Option<IpAddr>,
    /// `None` = `auto`.
    pub worker_processes: Option<u16>,
    /// Access log to stderr instead of off.
    pub access_log: bool,
    /// `PREFIX/tls/berth-default-self-signed.pem` exists (written at start): the catch-all
    /// presents it unless the model has a default certificate.
    pub self_signed_default: bool,
    /// `Strict-Transport-Security` value for HTTPS responses (`--hsts`), e.g.
    /// `max-age=31536000; includeSubDomains`; `None`: no HSTS.
    pub hsts: Option<String>,
    /// Fewest simple hosts of one shape that share a server block (`render_shared.rs`).
    pub shared_min_hosts: usize,
}

/// The prefix path contains characters that cannot be written safely into nginx.conf.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("nginx prefix '{0}' must be absolute and use only letters, digits and / . _ - +")]
pub struct UnsafePrefix(pub String);

impl RenderConfig {
    pub fn new(
        prefix: impl Into<PathBuf>,
        http_port: u16,
        https_port: u16,
    ) -> Result<Self, UnsafePrefix> {
        let prefix = prefix.into();
        let text = prefix.to_str().unwrap_or("");
        let safe = text.starts_with('/')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b));
        if !safe {
            return Err(UnsafePrefix(
                prefix.to_string_lossy().escape_default().to_string(),
            ));
        }
        Ok(Self {
            prefix,
            http_port,
            https_port,
            listen_address: None,
            worker_processes: None,
            access_log: false,
            self_signed_default: false,
            hsts: None,
            shared_min_hosts: super::shared::DEFAULT_SHARED_MIN_HOSTS,
        })
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Where nginx writes its master pid.
    pub fn pid_file(&self) -> PathBuf {
        self.prefix.join("nginx.pid")
    }

    /// Directory of the certificate files (0700; files 0600).
    pub fn tls_dir(&self) -> PathBuf {
        self.prefix.join("tls")
    }

    /// Directory of the htpasswd files (`htpasswd_files.rs`).
    pub fn auth_dir(&self) -> PathBuf {
        self.prefix.join("auth")
    }

    pub(crate) fn prefix_str(&self) -> &str {
        // Checked in `new`.
        self.prefix.to_str().unwrap_or("/")
    }
}
