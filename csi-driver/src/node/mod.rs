//! The CSI Node service. Each RPC checks its request (pure, [`request`]), takes the
//! per-volume try-lock (ABORTED when busy) and runs on the blocking pool, holding the lock
//! until the work is done even if the caller went away.
//!
//! - [`stage`]: NodeStage/NodeUnstage — attach, format once, mount; undo on failure
//! - [`publish`]: NodePublish/NodeUnpublish — bind mounts, access-mode rules
//! - [`stats`]: NodeGetVolumeStats with VolumeCondition
//! - [`expand`]: NodeExpandVolume, growing device and filesystem
//! - [`recovery`]: what runs at start, before serving
//! - [`stash`]: the per-staging record on disk
//! - [`info`]: NodeGetInfo, NodeGetCapabilities
//! - [`domain_labels`]: `--domain-labels`, segments from the Node's labels (the API, at start)
//! - [`fence`]: NodeStage of a single-node volume another client has open is refused
//! - [`targets`]: what unpublish/unstage may unmount and remove (only what berth recorded)
//! - [`encrypt`]: file encryption (fscrypt v2): key unwrap before attach, policy, key removal

pub mod domain_labels;
pub mod encrypt;
pub mod expand;
pub mod fence;
pub mod info;
pub mod publish;
pub mod recovery;
pub mod request;
pub mod stage;
pub mod stash;
pub mod stats;
pub mod targets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::attach::{Mounter, map_options, map_options_field};
use crate::cluster_config::ClusterConfig;
use crate::credentials::Credentials;
use crate::csi::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest,
    NodeGetCapabilitiesResponse, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeStageVolumeRequest, NodeStageVolumeResponse,
    NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse, NodeUnstageVolumeRequest,
    NodeUnstageVolumeResponse, node_server,
};
use crate::error::Error;
use crate::locks::Locks;
use crate::metrics::{Metrics, observe};

/// Typed configuration of the node service.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: String,
    pub topology: BTreeMap<String, String>,
    /// Stashes, client files, fuse mount points (see [`stash`]).
    pub state_dir: PathBuf,
    pub clusters: ClusterConfig,
    /// How often the running plugin checks its attachments (see [`recovery::watch`]).
    pub watch_interval: std::time::Duration,
}

impl NodeConfig {
    /// From the binary's flags: node id (default: host name), `--topology key=value`,
    /// `--state-dir`, `--cluster-config`.
    pub fn from_args(args: &crate::args::Args) -> Result<NodeConfig, Error> {
        let node_id = args
            .node_id
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(info::host_name);
        if node_id.is_empty() || node_id.len() > 256 {
            return Err(Error::BadNodeId);
        }
        let topology = info::parse_topology(&args.topology)?;
        domain_labels::DomainLabels::parse(&args.domain_labels, &args.driver_name)?
            .check_against(&topology)?;
        Ok(NodeConfig {
            node_id,
            topology,
            state_dir: args.state_dir.clone(),
            clusters: ClusterConfig::load(&args.cluster_config)?,
            watch_interval: args
                .node_watch_ms
                .map_or(recovery::WATCH_INTERVAL, std::time::Duration::from_millis),
        })
    }
}

impl NodeConfig {
    /// [`NodeConfig::from_args`], then the `--domain-labels` segments read from this node's
    /// Node object through the API merged into `topology` (no API call without the flag).
    pub async fn from_args_and_api(args: &crate::args::Args) -> Result<NodeConfig, Error> {
        let mut config = NodeConfig::from_args(args)?;
        let labels = domain_labels::DomainLabels::parse(&args.domain_labels, &args.driver_name)?;
        if labels.is_empty() {
            return Ok(config);
        }
        let wait = args.domain_labels_wait_ms.map_or(
            domain_labels::DEFAULT_WAIT,
            std::time::Duration::from_millis,
        );
        let node_labels = domain_labels::node_labels(&config.node_id, wait).await?;
        let segments = labels.segments(&config.node_id, &node_labels)?;
        config.topology = domain_labels::merge(&config.topology, &labels, segments)?;
        tracing::info!(node = %config.node_id, topology = ?config.topology, "segments from --topology and --domain-labels");
        Ok(config)
    }
}

/// What every node operation shares.
#[derive(Debug)]
pub struct Shared {
    pub config: NodeConfig,
    pub store: stash::Store,
    pub locks: Locks,
}

#[derive(Debug, Clone)]
pub struct Node {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl Node {
    /// Open the state dir and start restart recovery in the background. The locks of every
    /// stashed volume are taken first, so until its recovery is done an RPC for it gets
    /// ABORTED (the sidecars retry) while the plugin already answers Probe and everything
    /// else — a re-attach can wait ~30 s for a dead client's image lock. The same thread then
    /// keeps watching the attachments ([`recovery::watch`]).
    pub fn start(config: NodeConfig, metrics: Arc<Metrics>) -> Result<Node, Error> {
        let store = stash::Store::new(&config.state_dir)?;
        let shared = Arc::new(Shared {
            config,
            store,
            locks: Locks::new(),
        });
        let guards: Vec<_> = shared
            .store
            .all()
            .iter()
            .filter_map(|s| shared.locks.try_lock(&s.volume_id).ok())
            .collect();
        let bg = shared.clone();
        std::thread::Builder::new()
            .name("node-recovery".into())
            .spawn(move || {
                if !guards.is_empty() {
                    let report = recovery::run(&bg);
                    drop(guards);
                    tracing::info!(volumes = report.len(), "restart recovery done");
                }
                recovery::watch(bg);
            })
            .map_err(|e| Error::io("start the recovery thread", e))?;
        Ok(Node { shared, metrics })
    }

    /// Run `f` on the blocking pool under the try-lock of `key`.
    async fn locked<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&Shared) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let guard = self.shared.locks.try_lock(key)?;
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            f(&shared)
        })
        .await
        .map_err(|source| Error::Task {
            what: "node",
            source,
        })?
    }
}

impl Node {
    /// One node RPC: timed and counted like the controller's ([`observe`]), its log lines
    /// carrying the volume.
    async fn rpc<T>(
        &self,
        name: &'static str,
        volume: &str,
        body: impl Future<Output = Result<T, Error>>,
    ) -> Result<Response<T>, Status> {
        observe(&self.metrics, name, body)
            .instrument(tracing::info_span!("node", volume = %volume))
            .await
    }
}

/// The StorageClass's `csi.storage.k8s.io/fstype` as the volume context carries it: the fs
/// type when the capability names none (csi-sanity and some COs send it this way only).
fn context_fs(ctx: &std::collections::HashMap<String, String>) -> &str {
    ctx.get(request::FSTYPE_KEY).map_or("", String::as_str)
}

impl Node {
    fn stage_args(&self, r: NodeStageVolumeRequest) -> Result<stage::StageArgs, Error> {
        let id = request::required("volume_id", &r.volume_id)?.to_string();
        let staging = request::path("staging_target_path", &r.staging_target_path)?;
        let ctx = &r.volume_context;
        let capability = request::capability(r.volume_capability.as_ref(), context_fs(ctx))?;
        let volume = request::volume(&id, ctx)?;
        let credentials = Credentials::from_secrets(&r.secrets)?;
        Ok(stage::StageArgs {
            id,
            volume,
            staging,
            capability,
            credentials,
            mounter: Mounter::parse(ctx.get("mounter").map(String::as_str))?,
            map_options: map_options(ctx.get("mapOptions").map(String::as_str))?,
            unmap_options: map_options_field(
                "unmapOptions",
                ctx.get("unmapOptions").map(String::as_str),
            )?,
            mkfs_options: ctx.get("mkfsOptions").cloned(),
            kek: encrypt::stage_kek(ctx, &r.secrets)?,
        })
    }

    fn publish_args(&self, r: NodePublishVolumeRequest) -> Result<publish::PublishArgs, Error> {
        let id = request::required("volume_id", &r.volume_id)?.to_string();
        let target = request::path("target_path", &r.target_path)?;
        let capability =
            request::capability(r.volume_capability.as_ref(), context_fs(&r.volume_context))?;
        // STAGE_UNSTAGE_VOLUME is advertised: the staging path is required.
        let staging = request::path("staging_target_path", &r.staging_target_path)?;
        request::volume(&id, &r.volume_context)?;
        Ok(publish::PublishArgs {
            id,
            staging,
            target,
            capability,
            readonly: r.readonly,
        })
    }
}

#[tonic::async_trait]
impl node_server::Node for Node {
    async fn node_stage_volume(
        &self,
        req: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        let r = req.into_inner();
        let vol = r.volume_id.clone();
        self.rpc("NodeStageVolume", &vol.clone(), async move {
            let args = self.stage_args(r)?;
            self.locked(&vol, move |s| stage::stage(s, args)).await?;
            Ok(NodeStageVolumeResponse {})
        })
        .await
    }

    async fn node_unstage_volume(
        &self,
        req: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        let r = req.into_inner();
        self.rpc("NodeUnstageVolume", &r.volume_id.clone(), async move {
            let id = request::required("volume_id", &r.volume_id)?.to_string();
            let staging = request::path("staging_target_path", &r.staging_target_path)?;
            self.locked(&id.clone(), move |s| stage::unstage(s, &id, &staging))
                .await?;
            Ok(NodeUnstageVolumeResponse {})
        })
        .await
    }

    async fn node_publish_volume(
        &self,
        req: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let r = req.into_inner();
        let vol = r.volume_id.clone();
        self.rpc("NodePublishVolume", &vol.clone(), async move {
            let args = self.publish_args(r)?;
            self.locked(&vol, move |s| publish::publish(s, args))
                .await?;
            Ok(NodePublishVolumeResponse {})
        })
        .await
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let r = req.into_inner();
        self.rpc("NodeUnpublishVolume", &r.volume_id.clone(), async move {
            let id = request::required("volume_id", &r.volume_id)?.to_string();
            let target = request::path("target_path", &r.target_path)?;
            self.locked(&id.clone(), move |s| publish::unpublish(s, &id, &target))
                .await?;
            Ok(NodeUnpublishVolumeResponse {})
        })
        .await
    }

    async fn node_get_volume_stats(
        &self,
        req: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let r = req.into_inner();
        self.rpc("NodeGetVolumeStats", &r.volume_id.clone(), async move {
            request::required("volume_id", &r.volume_id)?;
            request::required("volume_path", &r.volume_path)?;
            let shared = self.shared.clone();
            // Read-only: no lock, so kubelet's periodic stats never collide with a stage.
            tokio::task::spawn_blocking(move || {
                stats::stats(&shared, &r.volume_id, std::path::Path::new(&r.volume_path))
            })
            .await
            .map_err(|source| Error::Task {
                what: "node",
                source,
            })?
        })
        .await
    }

    async fn node_expand_volume(
        &self,
        req: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        let r = req.into_inner();
        self.rpc("NodeExpandVolume", &r.volume_id.clone(), async move {
            let id = request::required("volume_id", &r.volume_id)?.to_string();
            let path = PathBuf::from(request::required("volume_path", &r.volume_path)?);
            let want = r
                .capacity_range
                .map(|c| c.required_bytes.max(0) as u64)
                .unwrap_or(0);
            let size = self
                .locked(&id.clone(), move |s| expand::expand(s, &id, &path, want))
                .await?;
            Ok(NodeExpandVolumeResponse {
                capacity_bytes: size as i64,
            })
        })
        .await
    }

    async fn node_get_capabilities(
        &self,
        _req: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        self.rpc("NodeGetCapabilities", "", async {
            Ok(NodeGetCapabilitiesResponse {
                capabilities: info::capabilities(),
            })
        })
        .await
    }

    async fn node_get_info(
        &self,
        _req: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        let c = &self.shared.config;
        self.rpc("NodeGetInfo", "", async {
            Ok(info::info(&c.node_id, &c.topology))
        })
        .await
    }
}
