//! Command-line flags of `berth-csi` (every flag has an environment fallback).
//! The library never reads the environment itself: `Args` is turned into typed config here.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Default CSI driver name; must match the CSIDriver object and the StorageClass provisioner.
pub const DEFAULT_DRIVER_NAME: &str = "rbd.csi.berth.dev";

/// Which CSI services this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Identity + Controller (the Deployment with the provisioner/resizer/snapshotter sidecars).
    Controller,
    /// Identity + Node (the DaemonSet on every node).
    Node,
    /// All three services in one process (local demo, conformance runs).
    All,
}

impl Mode {
    pub fn controller(self) -> bool {
        matches!(self, Mode::Controller | Mode::All)
    }
    pub fn node(self) -> bool {
        matches!(self, Mode::Node | Mode::All)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "berth-csi", version, about = "CSI v1.12.0 driver for Ceph RBD")]
pub struct Args {
    /// gRPC endpoint, as kubelet and the sidecars pass it: unix:///path/to/csi.sock
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    pub endpoint: String,

    /// Services to serve.
    #[arg(long, env = "BERTH_CSI_MODE", value_enum, default_value_t = Mode::All)]
    pub mode: Mode,

    /// CSI driver name reported by GetPluginInfo.
    #[arg(long, env = "BERTH_CSI_DRIVER_NAME", default_value = DEFAULT_DRIVER_NAME)]
    pub driver_name: String,

    /// This node's id (NodeGetInfo); defaults to the host name.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// Topology segments of this node, key=value (repeatable).
    #[arg(long = "topology", env = "BERTH_CSI_TOPOLOGY", value_delimiter = ',')]
    pub topology: Vec<String>,

    /// Node: labels of this node's Node object (named by --node-id) reported as topology
    /// segments `topology.<driver name>/<label name after its last '/'>`, read through the
    /// Kubernetes API at start, as ceph-csi's --domain-labels (comma-separated). Needs `get`
    /// on nodes; a named label missing on the Node refuses the start.
    #[arg(
        long = "domain-labels",
        env = "BERTH_CSI_DOMAIN_LABELS",
        value_delimiter = ','
    )]
    pub domain_labels: Vec<String>,

    /// Node (hidden, for tests): how long --domain-labels waits for an unreachable API server
    /// at start, in milliseconds (default 60 000).
    #[arg(long, env = "BERTH_CSI_DOMAIN_LABELS_WAIT_MS", hide = true)]
    pub domain_labels_wait_ms: Option<u64>,

    /// Controller: advertise VOLUME_ACCESSIBILITY_CONSTRAINTS, for StorageClasses with
    /// topologyConstrainedPools. Every node must then run with --topology: the provisioner
    /// refuses to provision while no node reports a topology.
    #[arg(long, env = "BERTH_CSI_TOPOLOGY_AWARE")]
    pub topology_aware: bool,

    /// JSON file mapping clusterID to monitors: [{"clusterID": "...", "monitors": ["host:port"]}]
    #[arg(
        long,
        env = "BERTH_CSI_CLUSTER_CONFIG",
        default_value = "/etc/ceph-csi-config/config.json"
    )]
    pub cluster_config: PathBuf,

    /// Node-local state: staging stash, private key files, fuse mount points.
    #[arg(
        long,
        env = "BERTH_CSI_STATE_DIR",
        default_value = "/var/lib/berth-csi"
    )]
    pub state_dir: PathBuf,

    /// Address for /metrics and /healthz (e.g. 127.0.0.1:9810); off when empty.
    #[arg(long, env = "BERTH_CSI_METRICS_ADDRESS")]
    pub metrics_address: Option<std::net::SocketAddr>,

    /// Controller: a directory holding `userID` and `userKey` files (a mounted Secret), used
    /// by calls that carry no secrets (ListVolumes, GetCapacity). Without it those RPCs are not
    /// advertised.
    #[arg(long, env = "BERTH_CSI_CONTROLLER_SECRETS_DIR")]
    pub controller_secrets_dir: Option<PathBuf>,

    /// Controller: pools ListVolumes / ListSnapshots cover, as clusterID/pool (repeatable or
    /// comma-separated).
    #[arg(
        long = "list-pools",
        env = "BERTH_CSI_LIST_POOLS",
        value_delimiter = ','
    )]
    pub list_pools: Vec<String>,

    /// Controller (hidden, for tests): the backstop deadline over one blocking Ceph call, in
    /// milliseconds (default 25 000).
    #[arg(long, env = "BERTH_CSI_CEPH_CALL_DEADLINE_MS", hide = true)]
    pub ceph_call_deadline_ms: Option<u64>,

    /// Node (hidden, for tests): how often the running plugin checks its attachments, in
    /// milliseconds (default 10 000).
    #[arg(long, env = "BERTH_CSI_NODE_WATCH_MS", hide = true)]
    pub node_watch_ms: Option<u64>,

    /// Log format.
    #[arg(long, env = "BERTH_CSI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Turn `unix:///path` (or `unix:/path`, or a bare path) into the socket path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, crate::error::Error> {
    let bad = |reason| crate::error::Error::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let path = if let Some(rest) = endpoint.strip_prefix("unix://") {
        rest
    } else if let Some(rest) = endpoint.strip_prefix("unix:") {
        rest
    } else if endpoint.starts_with('/') {
        endpoint
    } else {
        return Err(bad("not a unix socket (expected unix:///path/csi.sock)"));
    };
    if !path.starts_with('/') {
        return Err(bad("socket path must be absolute"));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        let ok = [
            ("unix:///csi/csi.sock", "/csi/csi.sock"),
            ("unix:/tmp/a.sock", "/tmp/a.sock"),
            ("/var/run/x.sock", "/var/run/x.sock"),
        ];
        for (input, want) in ok {
            assert_eq!(socket_path(input).unwrap(), PathBuf::from(want), "{input}");
        }
        for bad in [
            "tcp://127.0.0.1:10000",
            "unix://relative.sock",
            "csi.sock",
            "",
        ] {
            assert!(socket_path(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn mode_selects_services() {
        assert!(Mode::All.controller() && Mode::All.node());
        assert!(Mode::Controller.controller() && !Mode::Controller.node());
        assert!(!Mode::Node.controller() && Mode::Node.node());
    }

    #[test]
    fn flags_parse() {
        let a = Args::try_parse_from([
            "berth-csi",
            "--endpoint",
            "unix:///tmp/x.sock",
            "--mode",
            "node",
            "--log-format",
            "json",
            "--topology",
            "zone=a,rack=1",
            "--domain-labels",
            "topology.kubernetes.io/zone,topology.kubernetes.io/region",
        ])
        .unwrap();
        assert_eq!(a.mode, Mode::Node);
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.driver_name, DEFAULT_DRIVER_NAME);
        assert_eq!(a.topology, vec!["zone=a", "rack=1"]);
        assert_eq!(
            a.domain_labels,
            vec![
                "topology.kubernetes.io/zone",
                "topology.kubernetes.io/region"
            ]
        );
    }
}
