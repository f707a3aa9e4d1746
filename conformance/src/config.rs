//! What a conformance run is pointed at: endpoints, directories, volume parameters and secrets
//! (csi-sanity's file formats), the test volume size and the access type.
//!
//! Parameters file: a flat YAML map (`clusterID: x`, `pool: rbd`, …), as csi-sanity's
//! `--csi.testvolumeparameters`. Secrets file: csi-sanity's `--csi.secrets` format, one map per
//! RPC (`CreateVolumeSecret: {userID: …, userKey: …}`, `NodeStageVolumeSecret: …`, …).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// csi-sanity's default test volume size: 10 GiB (thin-provisioned drivers make it free).
pub const DEFAULT_VOLUME_SIZE: i64 = 10 << 30;

/// How long one case may take before it is failed (its cleanup still runs). Node cases attach,
/// format and mount ten times over; a minute each is generous, five is a hang.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(300);

/// How test volumes are consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessType {
    /// A filesystem mounted at the target path.
    Mount,
    /// A raw block device placed at the target path.
    Block,
}

impl std::str::FromStr for AccessType {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mount" | "filesystem" => Ok(AccessType::Mount),
            "block" => Ok(AccessType::Block),
            other => bail!("access type {other:?}: expected mount or block"),
        }
    }
}

impl std::fmt::Display for AccessType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccessType::Mount => "mount",
            AccessType::Block => "block",
        })
    }
}

/// The RPCs csi-sanity's secrets file has a section for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFor {
    CreateVolume,
    DeleteVolume,
    ControllerPublish,
    ControllerUnpublish,
    ValidateVolumeCapabilities,
    NodeStage,
    NodePublish,
    CreateSnapshot,
    DeleteSnapshot,
    ListSnapshots,
    ControllerExpand,
    NodeExpand,
    ControllerGetVolume,
}

impl SecretFor {
    /// The key of this RPC's section in csi-sanity's secrets YAML.
    pub fn yaml_key(self) -> &'static str {
        match self {
            SecretFor::CreateVolume => "CreateVolumeSecret",
            SecretFor::DeleteVolume => "DeleteVolumeSecret",
            SecretFor::ControllerPublish => "ControllerPublishVolumeSecret",
            SecretFor::ControllerUnpublish => "ControllerUnpublishVolumeSecret",
            SecretFor::ValidateVolumeCapabilities => "ControllerValidateVolumeCapabilitiesSecret",
            SecretFor::NodeStage => "NodeStageVolumeSecret",
            SecretFor::NodePublish => "NodePublishVolumeSecret",
            SecretFor::CreateSnapshot => "CreateSnapshotSecret",
            SecretFor::DeleteSnapshot => "DeleteSnapshotSecret",
            SecretFor::ListSnapshots => "ListSnapshotsSecret",
            SecretFor::ControllerExpand => "ControllerExpandVolumeSecret",
            SecretFor::NodeExpand => "NodeExpandVolumeSecret",
            SecretFor::ControllerGetVolume => "ControllerGetVolumeSecret",
        }
    }
}

/// Secrets per RPC, as read from csi-sanity's secrets file. Never printed (no Debug of values).
#[derive(Clone, Default)]
pub struct Secrets(HashMap<String, HashMap<String, String>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.0.keys().collect();
        keys.sort();
        write!(f, "Secrets({keys:?}, values redacted)")
    }
}

impl Secrets {
    /// Parse csi-sanity's secrets YAML.
    pub fn from_yaml(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Secrets::default());
        }
        let map: HashMap<String, HashMap<String, String>> = serde_yaml_ng::from_str(text)
            .context("secrets YAML: expected `RpcSecret: {key: value}`")?;
        Ok(Secrets(map))
    }

    /// The secrets map for one RPC (empty when the file has no section for it).
    pub fn get(&self, rpc: SecretFor) -> HashMap<String, String> {
        self.0.get(rpc.yaml_key()).cloned().unwrap_or_default()
    }
}

/// Everything a run needs; build with [`Config::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket serving Identity + Controller.
    pub controller_endpoint: PathBuf,
    /// Socket serving Identity + Node (the same socket for a driver serving both).
    pub node_endpoint: PathBuf,
    /// Root under which each case gets its own staging directory (created by the suite, as a CO).
    pub staging_dir: PathBuf,
    /// Root under which each case gets a parent directory for its target paths.
    pub mount_dir: PathBuf,
    /// CreateVolume parameters (StorageClass parameters).
    pub parameters: HashMap<String, String>,
    pub secrets: Secrets,
    /// Requested size of test volumes, in bytes.
    pub volume_size: i64,
    pub access_type: AccessType,
    /// `MountVolume.fs_type` for mount access (empty: the driver's default).
    pub fs_type: String,
    /// Only cases whose name contains this string run.
    pub filter: Option<String>,
    pub case_timeout: Duration,
    /// Print one line per case as it finishes.
    pub verbose: bool,
}

impl Config {
    /// Defaults: both services on `endpoint`, directories under /tmp as csi-sanity uses them,
    /// 10 GiB volumes, mount access.
    pub fn new(endpoint: &Path) -> Self {
        Config {
            controller_endpoint: endpoint.to_path_buf(),
            node_endpoint: endpoint.to_path_buf(),
            staging_dir: PathBuf::from("/tmp/csi-staging"),
            mount_dir: PathBuf::from("/tmp/csi-mount"),
            parameters: HashMap::new(),
            secrets: Secrets::default(),
            volume_size: DEFAULT_VOLUME_SIZE,
            access_type: AccessType::Mount,
            fs_type: String::new(),
            filter: None,
            case_timeout: DEFAULT_CASE_TIMEOUT,
            verbose: true,
        }
    }

    /// Read csi-sanity's `--csi.testvolumeparameters` file (a flat YAML map).
    pub fn load_parameters(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read parameters {}", path.display()))?;
        self.parameters = parse_parameters(&text)?;
        Ok(())
    }

    /// Read csi-sanity's `--csi.secrets` file.
    pub fn load_secrets(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read secrets {}", path.display()))?;
        self.secrets = Secrets::from_yaml(&text)?;
        Ok(())
    }
}

/// A flat YAML map of strings; scalar values (numbers, booleans) are taken as their text.
pub fn parse_parameters(text: &str) -> Result<HashMap<String, String>> {
    if text.trim().is_empty() {
        return Ok(HashMap::new());
    }
    let raw: HashMap<String, serde_yaml_ng::Value> =
        serde_yaml_ng::from_str(text).context("parameters YAML: expected a flat map")?;
    raw.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_yaml_ng::Value::String(s) => s,
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                serde_yaml_ng::Value::Bool(b) => b.to_string(),
                other => bail!("parameter {k}: not a scalar: {other:?}"),
            };
            Ok((k, v))
        })
        .collect()
}

/// `unix:///path`, `unix:/path` or `/path` -> the socket path.
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf> {
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    if !path.starts_with('/') {
        bail!("endpoint {endpoint:?}: expected unix:///absolute/path.sock");
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_csi_sanity_format() {
        let s = Secrets::from_yaml(
            "CreateVolumeSecret:\n  userID: csi\n  userKey: AQB==\nNodeStageVolumeSecret:\n  userID: n\n",
        )
        .unwrap();
        assert_eq!(s.get(SecretFor::CreateVolume)["userID"], "csi");
        assert_eq!(s.get(SecretFor::NodeStage)["userID"], "n");
        assert!(s.get(SecretFor::DeleteVolume).is_empty());
        assert!(
            !format!("{s:?}").contains("AQB"),
            "secret values leak into Debug"
        );
    }

    #[test]
    fn parameters_are_strings() {
        let p = parse_parameters("clusterID: x\npool: rbd\nreplicas: 3\nthin: true\n").unwrap();
        assert_eq!(p["replicas"], "3");
        assert_eq!(p["thin"], "true");
        assert!(parse_parameters("a: [1, 2]\n").is_err());
        assert!(parse_parameters("").unwrap().is_empty());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("unix:///a/b.sock").unwrap(),
            PathBuf::from("/a/b.sock")
        );
        assert_eq!(
            parse_endpoint("unix:/a.sock").unwrap(),
            PathBuf::from("/a.sock")
        );
        assert_eq!(parse_endpoint("/x.sock").unwrap(), PathBuf::from("/x.sock"));
        assert!(parse_endpoint("tcp://1.2.3.4:5").is_err());
        assert!("block".parse::<AccessType>().is_ok() && "nfs".parse::<AccessType>().is_err());
    }
}
