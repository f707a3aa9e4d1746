//! The CSI Controller service: provisioning, deletion, snapshots, clones, expansion, listing
//! and capacity on Ceph RBD. One file per concept; this one holds the shared state, how a
//! request finds its cluster and credentials, the advertised capabilities and the gRPC glue
//! (every RPC is timed and counted in [`crate::metrics`]).
//!
//! Credentials: RPCs that carry `secrets` use them (userID/userKey). ListVolumes and
//! GetCapacity carry none in CSI, so they (and any call that arrives without secrets) use the
//! controller's own credentials from `--controller-secrets-dir` (a directory with files
//! `userID` and `userKey`, i.e. a mounted Kubernetes Secret). Without that directory,
//! LIST_VOLUMES and GET_CAPACITY are not advertised. ListVolumes covers the pools named by
//! `--list-pools clusterID/pool,…`.
//!
//! ControllerPublish / ControllerUnpublish record which nodes hold a volume (see
//! [`publish`]); the node attaches at NodeStage.
//!
//! The GroupController (volume group snapshots, [`group`]) is served by the same state.

mod create;
mod delete;
mod encrypt;
mod expand;
mod flatten;
mod group;
mod group_service;
mod list;
mod modify;
mod publish;
mod purge;
mod service;
mod snapshot;
mod validate;

pub use list::Token;
pub use modify::QOS_KEYS;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::ceph::{Connections, Target};
use crate::cluster_config::ClusterConfig;
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::locks::Locks;

/// glibc malloc arenas for the process (see [`crate::ceph::ffi::limit_malloc_arenas`]).
const MALLOC_ARENAS: i32 = 2;

/// What the controller is configured with (typed; built from flags in server.rs).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub cluster_config: ClusterConfig,
    /// Credentials for calls without secrets (ListVolumes, GetCapacity).
    pub controller_creds: Option<Credentials>,
    /// (clusterID, pool) pairs ListVolumes / ListSnapshots cover.
    pub list_pools: Vec<(String, String)>,
    /// The node this process also serves (`--mode all`): the one node ControllerPublish
    /// knows; `None` in a split controller, which takes the CO's node IDs as given.
    pub local_node: Option<String>,
    /// Backstop over one blocking Ceph call (default [`crate::ceph::connection::CALL_DEADLINE`]).
    pub call_deadline: Option<std::time::Duration>,
}

impl Options {
    /// Read `userID` / `userKey` files from a mounted Secret directory.
    pub fn read_secrets_dir(dir: &Path) -> Result<Credentials> {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .map(|s| s.trim().to_string())
                .map_err(|e| Error::io(format!("read {}/{f}", dir.display()), e))
        };
        let mut m = HashMap::new();
        m.insert("userID".to_string(), read("userID")?);
        m.insert("userKey".to_string(), read("userKey")?);
        Credentials::from_secrets(&m)
    }

    /// `clusterID/pool` items.
    pub fn parse_list_pools(items: &[String]) -> Result<Vec<(String, String)>> {
        items
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.split_once('/')
                    .filter(|(c, p)| !c.is_empty() && !p.is_empty())
                    .map(|(c, p)| (c.to_string(), p.to_string()))
                    .ok_or_else(|| Error::BadListPools { item: s.clone() })
            })
            .collect()
    }
}

/// The Controller service state, cheap to clone (tonic clones it per connection).
#[derive(Debug, Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: Options,
    ceph: Connections,
    locks: Locks,
    purger: purge::Purger,
    flattener: flatten::Flattener,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Controller {
    pub fn new(opts: Options, metrics: Arc<crate::metrics::Metrics>) -> Self {
        crate::ceph::ffi::limit_malloc_arenas(MALLOC_ARENAS);
        let deadline = opts
            .call_deadline
            .unwrap_or(crate::ceph::connection::CALL_DEADLINE);
        Controller {
            inner: Arc::new(Inner {
                opts,
                ceph: Connections::with_deadline(deadline, metrics.clone()),
                locks: Locks::new(),
                purger: purge::Purger::default(),
                flattener: flatten::Flattener::default(),
                metrics,
            }),
        }
    }

    fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    fn ceph(&self) -> &Connections {
        &self.inner.ceph
    }

    fn locks(&self) -> &Locks {
        &self.inner.locks
    }

    fn opts(&self) -> &Options {
        &self.inner.opts
    }

    /// The request's secrets; UNAUTHENTICATED when they are missing or malformed. With
    /// `fallback`, a call without secrets (ListVolumes, GetCapacity, ListSnapshots) uses the
    /// controller's own credentials instead.
    fn creds(&self, secrets: &HashMap<String, String>, fallback: bool) -> Result<Credentials> {
        if secrets.is_empty()
            && fallback
            && let Some(c) = &self.opts().controller_creds
        {
            return Ok(c.clone());
        }
        Credentials::from_secrets(secrets)
    }

    /// Where calls for (cluster, pool, RADOS namespace) go, as the request's secrets say;
    /// `None` when the clusterID is not configured.
    fn target(
        &self,
        cluster_id: &str,
        pool: &str,
        namespace: &str,
        secrets: &HashMap<String, String>,
    ) -> Result<Option<Target>> {
        self.target_with(cluster_id, pool, namespace, secrets, false)
    }

    /// [`Self::target`] for calls that may use the controller's own credentials.
    fn target_with(
        &self,
        cluster_id: &str,
        pool: &str,
        namespace: &str,
        secrets: &HashMap<String, String>,
        fallback: bool,
    ) -> Result<Option<Target>> {
        let Ok(mon_host) = self.opts().cluster_config.mon_host(cluster_id) else {
            return Ok(None);
        };
        Ok(Some(Target {
            mon_host,
            creds: self.creds(secrets, fallback)?,
            pool: pool.to_string(),
            namespace: namespace.to_string(),
        }))
    }

    /// The RADOS namespace the cluster config names for new volumes of `cluster_id`.
    fn config_namespace(&self, cluster_id: &str) -> &str {
        self.opts().cluster_config.rados_namespace(cluster_id)
    }

    /// (clusterID, pool) in the cluster config's namespace of that cluster.
    fn place(&self, cluster_id: &str, pool: &str) -> Place {
        Place {
            cluster_id: cluster_id.into(),
            pool: pool.into(),
            namespace: self.config_namespace(cluster_id).into(),
        }
    }

    /// The `--list-pools` pools, each in its cluster's configured namespace.
    fn list_places(&self) -> Vec<Place> {
        let pools = &self.opts().list_pools;
        pools.iter().map(|(c, p)| self.place(c, p)).collect()
    }

    /// The cluster a GetCapacity without parameters reports: the first `--list-pools` item's,
    /// else the only configured cluster.
    fn capacity_cluster(&self) -> Option<(String, String)> {
        let o = self.opts();
        o.list_pools.first().cloned().or_else(|| {
            o.cluster_config
                .sole_cluster()
                .map(|c| (c.to_string(), String::new()))
        })
    }

    /// Number of live Ceph connections (for the metrics gauge).
    pub fn connection_count(&self) -> usize {
        self.ceph().count()
    }
}

/// Where volumes live: clusterID, pool and RADOS namespace ("" is the default one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Place {
    pub cluster_id: String,
    pub pool: String,
    pub namespace: String,
}

impl Place {
    fn volume(&self, image: &str) -> crate::volume_id::VolumeId {
        crate::volume_id::VolumeId::new(&self.cluster_id, &self.pool, image)
            .in_namespace(&self.namespace)
    }

    fn snapshot(&self, image: &str, snap: &str) -> crate::snapshot_id::SnapshotId {
        crate::snapshot_id::SnapshotId::new(&self.cluster_id, &self.pool, image, snap)
            .in_namespace(&self.namespace)
    }
}

/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A short random hex suffix for object names.
fn random_hex(len: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.truncate(len);
    s
}
