//! The Go tools the Kubernetes tests run (kube-apiserver, kubectl, csi-sanity, the CSI sidecars):
//! their pinned versions, read from `tests/tools/go.mod` and `tests/tools/tools.txt` (the one
//! place they are written), and where `tests/scripts/build-k8s-tools.sh` caches their binaries.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// The control plane's module file: its `require k8s.io/kubernetes vX` is the Kubernetes version.
pub const GO_MOD: &str = include_str!("../tools/go.mod");
/// The CSI tools: `name module version package` per line.
pub const TOOLS_TXT: &str = include_str!("../tools/tools.txt");

/// The k8s.io/kubernetes version the control plane is built from.
pub fn kubernetes_version() -> &'static str {
    GO_MOD
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("require ").unwrap_or(l);
            rest.strip_prefix("k8s.io/kubernetes ")?
                .split_whitespace()
                .next()
        })
        .expect("tests/tools/go.mod requires k8s.io/kubernetes")
}

/// `(name, module, version)` of every CSI tool in tools.txt.
pub fn csi_tools() -> Vec<(&'static str, &'static str, &'static str)> {
    TOOLS_TXT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .collect()
}

/// The pinned version of tool `name`.
pub fn version(name: &str) -> Option<&'static str> {
    match name {
        "kube-apiserver" | "kube-controller-manager" | "kubectl" => Some(kubernetes_version()),
        _ => csi_tools()
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, v)| v),
    }
}

/// The binary cache (`$BERTH_TOOLS_CACHE`, else the build script's default).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("BERTH_TOOLS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/berth/tools"))
}

/// The built binary of tool `name` at its pinned version; a clear error when it is not built.
pub fn path(name: &str) -> Result<PathBuf> {
    let version = version(name).with_context(|| format!("{name} is not a pinned tool"))?;
    let p = cache_dir().join(format!("{name}-{version}"));
    if !p.is_file() {
        bail!(
            "{} is not built: run `bash tests/scripts/build-k8s-tools.sh` (or .ci/run once)",
            p.display()
        );
    }
    Ok(p)
}

/// The VolumeSnapshot and VolumeGroupSnapshot CRD files (from the snapshotter's client module, same version).
pub fn snapshot_crds() -> Result<Vec<PathBuf>> {
    let version = version("snapshot-controller").context("snapshot-controller is not pinned")?;
    let dir = cache_dir().join(format!("volume-snapshot-crds-{version}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "{}: run `bash tests/scripts/build-k8s-tools.sh`",
                dir.display()
            )
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_pins() {
        assert!(kubernetes_version().starts_with("v1."));
        assert_eq!(version("kubectl"), Some(kubernetes_version()));
        assert!(version("csi-sanity").is_some_and(|v| v.starts_with("v5.")));
        assert_eq!(version("csi-snapshotter"), version("snapshot-controller"));
        assert_eq!(version("nope"), None);
    }
}
