//! gRPC over a Unix socket: bind (removing a stale socket), serve the selected CSI services,
//! shut down gracefully (bounded by [`SHUTDOWN_GRACE`]) on a signal or an injected future.

use std::future::Future;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::args::{Args, socket_path};
use crate::controller::{self, Controller};
use crate::csi::controller_server::ControllerServer;
use crate::csi::group_controller_server::GroupControllerServer;
use crate::csi::identity_server::IdentityServer;
use crate::csi::node_server::NodeServer;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::metrics::Metrics;

/// Tokio worker threads: CSI traffic is a handful of RPCs at a time and blocking Ceph calls go
/// to the blocking pool, so two workers keep RSS small without queueing RPCs.
pub const WORKER_THREADS: usize = 2;

/// How long in-flight RPCs and open connections get once the shutdown signal came.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Bind the CSI socket. A leftover socket file from a previous run is removed, but only when
/// nothing answers on it (two live drivers must not steal each other's socket).
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create socket dir {}", dir.display()), e))?;
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            return Err(Error::SocketInUse {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(_) => {
            tracing::info!(socket = %path.display(), "removing stale socket");
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("remove stale socket {}", path.display()), e))?;
        }
    }
    UnixListener::bind(path).map_err(|e| Error::io(format!("bind {}", path.display()), e))
}

/// What one process serves.
#[derive(Debug, Clone)]
pub struct Config {
    pub driver_name: String,
    pub controller: bool,
    pub node: bool,
    /// Controller configuration (cluster config, controller credentials, list pools).
    pub controller_opts: controller::Options,
    /// Node configuration; the node service is served when `node` is set and this is given.
    pub node_config: Option<crate::node::NodeConfig>,
    /// A controller-only process advertises VOLUME_ACCESSIBILITY_CONSTRAINTS only when set
    /// (`--topology-aware`).
    pub topology_aware: bool,
    /// The process's metrics registry (served by `--metrics-address`).
    pub metrics: Arc<Metrics>,
}

/// Serve until `shutdown` completes, then finish in-flight RPCs (for at most
/// [`SHUTDOWN_GRACE`]) and return.
pub async fn serve(
    listener: UnixListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    // Topology: a node reports its segments only with --topology; a controller places by
    // whatever topology the CO sends, and claims the capability only when asked
    // (--topology-aware): the external-provisioner then demands a topology from some node
    // and refuses every PVC of a cluster whose nodes report none. A node without segments
    // does not claim it (a plugin advertising it is expected to report where the node is).
    let node_topology = config
        .node_config
        .as_ref()
        .is_some_and(|n| !n.topology.is_empty());
    let topology = node_topology || (config.controller && !config.node && config.topology_aware);
    let identity = Identity::new(config.driver_name.clone(), config.controller, topology);
    tracing::info!(
        driver = %config.driver_name,
        controller = config.controller,
        node = config.node,
        version = env!("CARGO_PKG_VERSION"),
        "serving CSI"
    );
    let controller = config.controller.then(|| {
        let c = Controller::new(config.controller_opts.clone(), config.metrics.clone());
        // Purges a previous run left in the trash resume in the background.
        c.resume_purges();
        (
            GroupControllerServer::new(c.clone()),
            ControllerServer::new(c),
        )
    });
    let (group, controller) = match controller {
        Some((g, c)) => (Some(g), Some(c)),
        None => (None, None),
    };
    // Node restart recovery runs before serving (it may re-attach volumes: blocking work).
    let node = match config.node_config.clone().filter(|_| config.node) {
        Some(nc) => Some(NodeServer::new(
            tokio::task::spawn_blocking({
                let metrics = config.metrics.clone();
                move || crate::node::Node::start(nc, metrics)
            })
            .await
            .map_err(|source| Error::Task {
                what: "node start",
                source,
            })??,
        )),
        None => None,
    };
    // Graceful, but bounded: CSI calls are idempotent and the CO retries them, so a client
    // that never lets go of its connection (a hung sidecar) must not keep the plugin up.
    let (signalled, grace) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled.send(());
    };
    let server = Server::builder()
        .add_service(IdentityServer::new(identity))
        .add_optional_service(node)
        .add_optional_service(controller)
        .add_optional_service(group)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown);
    let grace_over = async {
        match grace.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server => served.map_err(Error::Serve),
        () = grace_over => {
            tracing::warn!(
                grace = ?SHUTDOWN_GRACE,
                "clients still connected when the shutdown grace ran out: stopping anyway"
            );
            Ok(())
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Controller options from flags (only read when the controller is served).
fn controller_options(args: &Args) -> Result<controller::Options> {
    if !args.mode.controller() {
        return Ok(controller::Options::default());
    }
    let controller_creds = match &args.controller_secrets_dir {
        Some(dir) => Some(controller::Options::read_secrets_dir(dir)?),
        None => None,
    };
    Ok(controller::Options {
        cluster_config: crate::cluster_config::ClusterConfig::load(&args.cluster_config)?,
        controller_creds,
        list_pools: controller::Options::parse_list_pools(&args.list_pools)?,
        call_deadline: args
            .ceph_call_deadline_ms
            .map(std::time::Duration::from_millis),
        local_node: None,
    })
}

/// The binary's whole life: typed config from flags, bind, serve, clean up the socket.
pub async fn run_from_args(args: Args) -> anyhow::Result<()> {
    let path: PathBuf = socket_path(&args.endpoint)?;
    // The node's topology first (--domain-labels may wait for the API server): no socket
    // answers, so no registrar talks to it, before the plugin knows where it is.
    let node_config = match args.mode.node() {
        true => Some(crate::node::NodeConfig::from_args_and_api(&args).await?),
        false => None,
    };
    let listener = bind(&path)?;
    let mut controller_opts = controller_options(&args)?;
    controller_opts.local_node = node_config.as_ref().map(|n| n.node_id.clone());
    let config = Config {
        driver_name: args.driver_name.clone(),
        controller: args.mode.controller(),
        node: args.mode.node(),
        controller_opts,
        node_config,
        topology_aware: args.topology_aware,
        metrics: Arc::default(),
    };
    if let Some(addr) = args.metrics_address {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("bind metrics address {addr}"), e))?;
        tracing::info!(%addr, "serving /metrics and /healthz");
        tokio::spawn(crate::metrics::serve(listener, config.metrics.clone()));
    }
    let result = serve(listener, config, shutdown_signal()).await;
    let _ = std::fs::remove_file(&path);
    tracing::info!("stopped");
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;

    /// A client that opens an HTTP/2 connection and then never reads nor answers (a hung
    /// sidecar) must not hold the plugin up after the shutdown signal.
    #[tokio::test]
    async fn a_hung_client_does_not_hold_up_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("csi.sock");
        let listener = bind(&path).unwrap();
        let config = Config {
            driver_name: "test.berth.dev".into(),
            controller: false,
            node: false,
            controller_opts: controller::Options::default(),
            node_config: None,
            topology_aware: false,
            metrics: Arc::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        let mut hung = tokio::net::UnixStream::connect(&path).await.unwrap();
        // The HTTP/2 preface and an empty SETTINGS frame; then silence.
        hung.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        hung.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        stop.send(()).unwrap();
        let done = tokio::time::timeout(SHUTDOWN_GRACE * 3, server).await;
        assert!(
            done.is_ok(),
            "still serving {:?} after the shutdown signal",
            t0.elapsed()
        );
        assert!(t0.elapsed() < SHUTDOWN_GRACE * 2, "{:?}", t0.elapsed());
        drop(hung);
    }
}
