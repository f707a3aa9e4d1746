//! The file mechanics [`crate::certfiles`] and [`crate::htpasswd_files`] share: a private
//! directory of content-named files, each written to a 0600 temp file and renamed into place,
//! and the pruning of files no config uses any more.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Write `content` to `dir/.<id>.tmp` (mode 0600, synced) and return its path; the caller
/// renames it into place (after handing it to another owner, if it must).
pub fn write_tmp(dir: &Path, id: &str, content: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!(".{id}.tmp"));
    _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    Ok(tmp)
}

/// Remove the files of `dir` ending in `suffix` whose names are not in `keep`; `what` names
/// them in the warning when one cannot be removed.
pub fn prune(dir: &Path, suffix: &str, keep: &BTreeSet<String>, what: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(suffix)
            && !keep.contains(&name)
            && let Err(error) = fs::remove_file(e.path())
        {
            tracing::warn!(file = %name, %error, "could not remove an unused {what} file");
        }
    }
}
