//! How Ceph programs (rbd, rbd-nbd, rbd-fuse) get the cluster address and the cephx key:
//! a private directory (0700) holding a minimal `ceph.conf` and a `key` file (0600, the bare
//! base64 key), named with `-c <conf>` and `--id <user>`. The key is never in an argv, an
//! environment variable, a log line or an error.
//!
//! The files live as long as the volume is staged: restart recovery re-attaches without
//! the secret (NodeUnstage and recovery get no secrets), and they are removed with the stash.
//!
//! ```text
//! [global]
//! mon host = 10.0.0.1:6789,10.0.0.2:6789
//! keyfile = <dir>/key
//! log file = <dir>/ceph-client.log
//! admin socket =
//! ```

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::credentials::Credentials;

pub const CONF: &str = "ceph.conf";
pub const KEY: &str = "key";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    pub conf: PathBuf,
    pub key: PathBuf,
    /// cephx user without `client.` (validated by [`Credentials`]).
    pub user: String,
}

/// Create `dir` private to root (0700), parents as needed.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path)
}

/// The conf text (pure). `mon_host` comes from the validated cluster config.
pub fn conf_text(dir: &Path, mon_host: &str) -> String {
    format!(
        "[global]\nmon host = {mon_host}\nkeyfile = {}\nlog file = {}\nadmin socket =\n",
        dir.join(KEY).display(),
        dir.join("ceph-client.log").display()
    )
}

impl ClientFiles {
    /// Write (or rewrite) the conf and key for `creds` in `dir`.
    pub fn write(dir: &Path, mon_host: &str, creds: &Credentials) -> std::io::Result<Self> {
        private_dir(dir)?;
        let key = dir.join(KEY);
        write_private(&key, creds.key.expose())?;
        let conf = dir.join(CONF);
        write_private(&conf, &conf_text(dir, mon_host))?;
        Ok(ClientFiles {
            conf,
            key,
            user: creds.user.clone(),
        })
    }

    /// The files a previous stage left in `dir` (restart recovery), if they are still there.
    pub fn existing(dir: &Path, user: &str) -> Option<Self> {
        let files = ClientFiles {
            conf: dir.join(CONF),
            key: dir.join(KEY),
            user: user.to_string(),
        };
        (files.conf.is_file() && files.key.is_file()).then_some(files)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::credentials::Secret;

    #[test]
    fn key_file_is_private_and_conf_names_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let creds = Credentials {
            user: "csi".into(),
            key: Secret::new("AQBsecretkey=="),
        };
        let f = ClientFiles::write(&dir, "127.0.0.1:6789", &creds).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&f.key), 0o600);
        assert_eq!(std::fs::read_to_string(&f.key).unwrap(), "AQBsecretkey==");
        let conf = std::fs::read_to_string(&f.conf).unwrap();
        assert!(conf.contains("mon host = 127.0.0.1:6789\n"), "{conf}");
        assert!(conf.contains(&format!("keyfile = {}", f.key.display())));
        assert!(
            !conf.contains("secretkey"),
            "the key is only in the key file"
        );
        assert_eq!(ClientFiles::existing(&dir, "csi"), Some(f));
        assert_eq!(ClientFiles::existing(&tmp.path().join("nope"), "csi"), None);
    }
}
