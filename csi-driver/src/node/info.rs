//! NodeGetInfo and NodeGetCapabilities: who this node is (id, topology segments from
//! `--topology key=value`) and what the node service does.

use std::collections::BTreeMap;

use crate::csi::node_service_capability::{Rpc, Type, rpc};
use crate::csi::{NodeGetInfoResponse, NodeServiceCapability, Topology};

/// The capabilities advertised (each one is implemented and tested).
pub const CAPABILITIES: &[rpc::Type] = &[
    rpc::Type::StageUnstageVolume,
    rpc::Type::GetVolumeStats,
    rpc::Type::ExpandVolume,
    rpc::Type::VolumeCondition,
    rpc::Type::SingleNodeMultiWriter,
];

pub fn capabilities() -> Vec<NodeServiceCapability> {
    CAPABILITIES
        .iter()
        .map(|t| NodeServiceCapability {
            r#type: Some(Type::Rpc(Rpc { r#type: *t as i32 })),
        })
        .collect()
}

/// A `--topology` item that is not a segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("topology {0:?} is not key=value")]
    NotKeyValue(String),
    #[error("topology {0:?} is not a valid key=value label")]
    Invalid(String),
    #[error("topology key {0:?} given twice")]
    Duplicate(String),
}

/// `key=value` items -> segments. Keys and values follow Kubernetes label syntax loosely:
/// non-empty key, no whitespace, at most 63 bytes per value.
pub fn parse_topology(items: &[String]) -> Result<BTreeMap<String, String>, TopologyError> {
    let mut out = BTreeMap::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| TopologyError::NotKeyValue(item.to_string()))?;
        if k.is_empty() || k.len() > 253 || v.len() > 63 || item.chars().any(char::is_whitespace) {
            return Err(TopologyError::Invalid(item.to_string()));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(TopologyError::Duplicate(k.to_string()));
        }
    }
    Ok(out)
}

/// The host name (the default node id).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn info(node_id: &str, topology: &BTreeMap<String, String>) -> NodeGetInfoResponse {
    NodeGetInfoResponse {
        node_id: node_id.to_string(),
        max_volumes_per_node: 0,
        accessible_topology: (!topology.is_empty()).then(|| Topology {
            segments: topology.clone().into_iter().collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_flags() {
        let t = parse_topology(&["zone=a".into(), " rack=1 ".into(), "".into()]).unwrap();
        assert_eq!(t.get("zone").map(String::as_str), Some("a"));
        assert_eq!(t.len(), 2);
        for bad in ["zone", "=a", "a=b c", "z=1,z=2"] {
            let items: Vec<String> = bad.split(',').map(String::from).collect();
            assert!(parse_topology(&items).is_err(), "{bad}");
        }
    }

    #[test]
    fn info_and_capabilities() {
        let i = info("n1", &BTreeMap::new());
        assert_eq!(i.node_id, "n1");
        assert!(i.accessible_topology.is_none());
        assert_eq!(capabilities().len(), 5);
        assert!(!host_name().is_empty());
    }
}
