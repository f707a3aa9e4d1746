//! The image's own record of its filesystem: RBD image metadata
//! `berth.dev/formatted = <fs>`, written by the node right after its first successful mkfs
//! and read before any mkfs. It lives with the image, so it survives a lost node state dir
//! and a move to another node: an image that says it was formatted is never formatted again
//! (a marked image on which no filesystem is found is an error, not an mkfs).
//!
//! Written after mkfs, not before: a crash between the two leaves a filesystem without the
//! mark, which the next stage finds with blkid (and marks); the other order would leave a
//! mark without a filesystem, which refuses every stage until an operator steps in.
//!
//! Through the `rbd` CLI with the volume's client files (`-c <conf> --id <user>`): the node
//! never loads librbd.

use std::process::Command;

use super::AttachError;
use super::client::ClientFiles;
use crate::program::{self, SHORT};

/// The metadata key.
pub const FORMATTED: &str = "berth.dev/formatted";

fn rbd(client: &ClientFiles) -> Command {
    let mut cmd = Command::new("rbd");
    cmd.arg("-c").arg(&client.conf).args(["--id", &client.user]);
    cmd
}

/// The mark in `rbd image-meta list --format json` output (pure). Pacific prints nothing
/// at all for an image without metadata.
pub fn parse_list(out: &str) -> Result<Option<String>, serde_json::Error> {
    if out.trim().is_empty() {
        return Ok(None);
    }
    let map: std::collections::BTreeMap<String, String> = serde_json::from_str(out)?;
    Ok(map.get(FORMATTED).cloned())
}

/// The fs type the image says it was formatted with, if any.
/// `spec` is the image as the CLI names it (`pool/image` or `pool/namespace/image`).
pub fn formatted(client: &ClientFiles, spec: &str) -> Result<Option<String>, AttachError> {
    let out = program::run(
        rbd(client)
            .args(["image-meta", "list", "--format", "json"])
            .arg(spec),
        SHORT,
    )?;
    parse_list(&out).map_err(|source| AttachError::MetaOutput {
        spec: spec.to_string(),
        source,
    })
}

/// The wrapped encryption key in the image metadata ([`crate::kms::WRAPPED_KEY_META`]), if
/// any. Read from stdout: nothing of it is ever an argument.
pub fn wrapped_key(client: &ClientFiles, spec: &str) -> Result<Option<String>, AttachError> {
    let out = program::run(
        rbd(client)
            .args(["image-meta", "list", "--format", "json"])
            .arg(spec),
        SHORT,
    )?;
    let meta = |out: &str| -> Result<Option<String>, serde_json::Error> {
        if out.trim().is_empty() {
            return Ok(None);
        }
        let map: std::collections::BTreeMap<String, String> = serde_json::from_str(out)?;
        Ok(map.get(crate::kms::WRAPPED_KEY_META).cloned())
    };
    meta(&out).map_err(|source| AttachError::MetaOutput {
        spec: spec.to_string(),
        source,
    })
}

/// Record that the image holds a `fs` filesystem made by berth.
pub fn mark_formatted(client: &ClientFiles, spec: &str, fs: &str) -> Result<(), AttachError> {
    program::run(
        rbd(client)
            .args(["image-meta", "set"])
            .arg(spec)
            .args([FORMATTED, fs]),
        SHORT,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_output_forms() {
        assert_eq!(parse_list("").unwrap(), None);
        assert_eq!(parse_list("{}\n").unwrap(), None);
        assert_eq!(
            parse_list(r#"{"berth.dev/formatted":"xfs","other":"x"}"#).unwrap(),
            Some("xfs".into())
        );
        assert!(parse_list("there are 2 metadata").is_err());
    }
}
