//! The cluster config file (`--cluster-config`), as ceph-csi users know it: a JSON list
//! mapping a `clusterID` (named by the StorageClass) to the cluster's monitors.
//!
//! ```json
//! [{"clusterID": "ceph1", "monitors": ["10.0.0.1:6789", "10.0.0.2:6789"],
//!   "rbd": {"radosNamespace": "tenant-a"}}]
//! ```
//!
//! `rbd.radosNamespace` puts every image, snapshot, clone and journal key of that cluster's
//! new volumes in that RADOS namespace (the volume ID carries it, see [`crate::volume_id`]).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(rename = "clusterID")]
    cluster_id: String,
    monitors: Vec<String>,
    #[serde(default)]
    rbd: RbdEntry,
}

/// ceph-csi's per-cluster `rbd` sub-config; other keys of it (mirroring…) are accepted, unused.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
struct RbdEntry {
    #[serde(default, rename = "radosNamespace")]
    rados_namespace: String,
}

/// Why a cluster config file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("not a JSON list of clusters")]
    Json(#[source] serde_json::Error),
    #[error("an entry has an empty clusterID")]
    EmptyClusterId,
    #[error("clusterID {0:?} lists no monitors")]
    NoMonitors(String),
    #[error("clusterID {cluster:?}: bad monitor {monitor:?}")]
    BadMonitor { cluster: String, monitor: String },
    #[error("clusterID {0:?} is listed twice")]
    Duplicate(String),
    #[error("clusterID {cluster:?}: radosNamespace {namespace:?} is not a legal name")]
    BadNamespace { cluster: String, namespace: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    monitors: HashMap<String, Vec<String>>,
    /// clusterID -> RADOS namespace of new volumes (absent: the default namespace).
    namespaces: HashMap<String, String>,
}

impl ClusterConfig {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let entries: Vec<Entry> = serde_json::from_str(text).map_err(ConfigError::Json)?;
        let mut monitors = HashMap::new();
        let mut namespaces = HashMap::new();
        for e in entries {
            if e.cluster_id.is_empty() {
                return Err(ConfigError::EmptyClusterId);
            }
            if e.monitors.is_empty() {
                return Err(ConfigError::NoMonitors(e.cluster_id));
            }
            if let Some(bad) = e.monitors.iter().find(|m| !valid_monitor(m)) {
                return Err(ConfigError::BadMonitor {
                    monitor: bad.clone(),
                    cluster: e.cluster_id,
                });
            }
            let ns = e.rbd.rados_namespace;
            if !ns.is_empty() && !crate::volume_id::legal_name(&ns) {
                return Err(ConfigError::BadNamespace {
                    cluster: e.cluster_id,
                    namespace: ns,
                });
            }
            if monitors.insert(e.cluster_id.clone(), e.monitors).is_some() {
                return Err(ConfigError::Duplicate(e.cluster_id));
            }
            if !ns.is_empty() {
                namespaces.insert(e.cluster_id, ns);
            }
        }
        Ok(ClusterConfig {
            monitors,
            namespaces,
        })
    }

    /// The RADOS namespace new volumes of `cluster_id` go to ("" is the default one).
    pub fn rados_namespace(&self, cluster_id: &str) -> &str {
        self.namespaces.get(cluster_id).map_or("", String::as_str)
    }

    /// The clusterID when exactly one cluster is configured.
    pub fn sole_cluster(&self) -> Option<&str> {
        match self.monitors.len() {
            1 => self.monitors.keys().next().map(String::as_str),
            _ => None,
        }
    }

    /// Read the file; a missing file is an empty config (a node-only or identity-only process
    /// may run without one; calls that need a cluster then fail with a clear message).
    pub fn load(path: &Path) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|source| Error::ClusterConfig {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(
                format!("read cluster config {}", path.display()),
                e,
            )),
        }
    }

    /// Monitors of `cluster_id`, or INVALID_ARGUMENT naming the unknown clusterID.
    pub fn monitors(&self, cluster_id: &str) -> Result<&[String], Error> {
        self.monitors
            .get(cluster_id)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::UnknownCluster {
                cluster: cluster_id.to_string(),
            })
    }

    /// Monitors as one `mon_host` value for librados / ceph.conf.
    pub fn mon_host(&self, cluster_id: &str) -> Result<String, Error> {
        Ok(self.monitors(cluster_id)?.join(","))
    }
}

/// host:port, [v2:host:port,...] forms; no whitespace, quotes or config syntax.
fn valid_monitor(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 256
        && m.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'[' | b']' | b',' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ceph_csi_format() {
        let c = ClusterConfig::parse(
            r#"[{"clusterID":"a","monitors":["10.0.0.1:6789","10.0.0.2:6789"]},
                {"clusterID":"b","monitors":["[v2:127.0.0.1:3300,v1:127.0.0.1:6789]"],"rbd":{}}]"#,
        )
        .unwrap();
        assert_eq!(c.mon_host("a").unwrap(), "10.0.0.1:6789,10.0.0.2:6789");
        assert_eq!(c.monitors("b").unwrap().len(), 1);
        assert_eq!(c.rados_namespace("a"), "");
        let c = ClusterConfig::parse(
            r#"[{"clusterID":"a","monitors":["m:1"],"rbd":{"radosNamespace":"ns1","x":1}}]"#,
        )
        .unwrap();
        assert_eq!(c.rados_namespace("a"), "ns1");
        assert_eq!(
            c.monitors("zzz").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn rejects_bad_configs() {
        for bad in [
            "{}",
            r#"[{"clusterID":"","monitors":["a:1"]}]"#,
            r#"[{"clusterID":"a","monitors":[]}]"#,
            r#"[{"clusterID":"a","monitors":["a:1\nkey = x"]}]"#,
            r#"[{"clusterID":"a","monitors":["a:1"]},{"clusterID":"a","monitors":["b:1"]}]"#,
            r#"[{"clusterID":"a","monitors":["a:1"],"typo":1}]"#,
            r#"[{"clusterID":"a","monitors":["a:1"],"rbd":{"radosNamespace":"a/b"}}]"#,
            r#"[{"clusterID":"a","monitors":["a:1"],"rbd":{"radosNamespace":7}}]"#,
        ] {
            assert!(ClusterConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
