//! htpasswd files for nginx: `PREFIX/auth/<id>.htpasswd`, directory 0700, files 0600.
//!
//! nginx reads `auth_basic_user_file` in its WORKERS, on every request (not in the master at
//! load time like certificates). In the pod berth-ingress, the nginx master and its workers run
//! as one unprivileged user, which owns the files. When berth-ingress runs as root (tests, or a
//! host install), the workers drop to nginx's default user `nobody` (berth renders no `user`
//! directive): the directory and the files are then handed to `nobody`, still 0700/0600, so no
//! other user can read them. Files are named after a hash of their content (written once, a
//! changed Secret yields a new name and a reload) and pruned after a successful reload. Errors
//! name the path only; the content never appears in logs or errors.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User, chown};

use crate::htpasswd::HtpasswdFile;
use crate::private_files::{prune, write_tmp};

/// nginx's default worker user when the master runs as root and no `user` directive is given.
pub const NGINX_DEFAULT_WORKER_USER: &str = "nobody";

/// The directory of htpasswd files.
#[derive(Debug, Clone)]
pub struct HtpasswdFiles {
    dir: PathBuf,
    /// Owner for the directory and files, when we run as root (nginx workers do not).
    owner: Option<(Uid, Gid)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdFileError {
    #[error("htpasswd file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("handing htpasswd file {path} to nginx's worker user: {source}")]
    Chown {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error(
        "running as root, but nginx's worker user '{NGINX_DEFAULT_WORKER_USER}' does not exist"
    )]
    NoWorkerUser,
}

impl HtpasswdFiles {
    /// Create (or tighten) the directory: 0700, owned by whoever runs nginx's workers.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, HtpasswdFileError> {
        let owner = if Uid::effective().is_root() {
            let user = User::from_name(NGINX_DEFAULT_WORKER_USER)
                .ok()
                .flatten()
                .ok_or(HtpasswdFileError::NoWorkerUser)?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        Self::with_owner(dir, owner)
    }

    fn with_owner(
        dir: impl Into<PathBuf>,
        owner: Option<(Uid, Gid)>,
    ) -> Result<Self, HtpasswdFileError> {
        let dir = dir.into();
        let io = |source| HtpasswdFileError::Io {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        let files = Self { dir, owner };
        files.give(&files.dir)?;
        Ok(files)
    }

    fn give(&self, path: &Path) -> Result<(), HtpasswdFileError> {
        let Some((uid, gid)) = self.owner else {
            return Ok(());
        };
        chown(path, Some(uid), Some(gid)).map_err(|source| HtpasswdFileError::Chown {
            path: path.to_owned(),
            source,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.htpasswd"))
    }

    /// Write one file unless it already exists (same id = same content).
    pub fn write(&self, file: &HtpasswdFile) -> Result<(), HtpasswdFileError> {
        let path = self.path(&file.id);
        if path.exists() {
            return Ok(());
        }
        let io = |source| HtpasswdFileError::Io {
            path: path.clone(),
            source,
        };
        let tmp = write_tmp(&self.dir, &file.id, file.content().as_bytes()).map_err(io)?;
        self.give(&tmp)?;
        fs::rename(&tmp, &path).map_err(io)
    }

    /// Write every file a model uses.
    pub fn install(&self, files: &[HtpasswdFile]) -> Result<(), HtpasswdFileError> {
        files.iter().try_for_each(|f| self.write(f))
    }

    /// Remove files not in `keep`.
    pub fn prune(&self, keep: &[HtpasswdFile]) {
        let keep: BTreeSet<String> = keep.iter().map(|f| format!("{}.htpasswd", f.id)).collect();
        prune(&self.dir, ".htpasswd", &keep, "htpasswd");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::model::{Kind, ObjectRef};

    #[test]
    fn private_files_owned_by_the_worker_written_once_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let files = HtpasswdFiles::new(dir.path().join("auth")).unwrap();
        let meta = |p: &Path| fs::metadata(p).unwrap();
        assert_eq!(meta(files.dir()).permissions().mode() & 0o777, 0o700);
        let f = crate::htpasswd::parse(
            ObjectRef::new(Kind::Secret, "ns", "s"),
            b"alice:$apr1$abcdefgh$abcdefghijklmnopqrstuv",
        )
        .unwrap();
        files.install(std::slice::from_ref(&f)).unwrap();
        let p = files.path(&f.id);
        assert_eq!(meta(&p).permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&p).unwrap(), f.content());
        if Uid::effective().is_root() {
            let nobody = User::from_name(NGINX_DEFAULT_WORKER_USER).unwrap().unwrap();
            assert_eq!(meta(&p).uid(), nobody.uid.as_raw());
            assert_eq!(meta(files.dir()).uid(), nobody.uid.as_raw());
        } else {
            assert_eq!(meta(&p).uid(), Uid::effective().as_raw());
        }
        files.prune(&[]);
        assert!(!p.exists());
    }
}
