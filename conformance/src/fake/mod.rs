//! A test double for the suite itself: an in-memory CSI driver (Identity + Controller + Node)
//! that follows the spec by default and breaks it on request ([`Bug`]). Pointing the suite at
//! it proves the suite passes a correct driver and FAILS a wrong one.
//!
//! It keeps volumes and snapshots in memory and does no I/O except creating and removing the
//! target paths (as a real node plugin would). It mounts nothing, so cases that look at the
//! mount table or write through a publish fail against it by design.

mod controller;
mod node;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_csi::csi::controller_server::ControllerServer;
use berth_csi::csi::identity_server::{Identity, IdentityServer};
use berth_csi::csi::node_server::NodeServer;
use berth_csi::csi::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse, VolumeCapability,
    plugin_capability,
};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// A deliberate spec violation the fake can be told to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bug {
    /// CreateVolume without a name answers OK (spec: INVALID_ARGUMENT).
    CreateWithoutNameOk,
    /// Every CreateVolume makes a new volume, even for a known name (spec: same volume).
    CreateNotIdempotent,
    /// Same name, other size answers OK (spec: ALREADY_EXISTS).
    CreateIgnoresSizeConflict,
    /// DeleteVolume of an unknown id answers NOT_FOUND (spec: OK).
    DeleteUnknownNotFound,
    /// ListVolumes accepts any starting_token (spec: ABORTED for tokens it did not issue).
    ListAcceptsAnyToken,
    /// ValidateVolumeCapabilities of an unknown volume answers OK (spec: NOT_FOUND).
    ValidateUnknownOk,
    /// NodePublishVolume without a prior NodeStageVolume answers OK (spec: FAILED_PRECONDITION).
    PublishWithoutStageOk,
    /// NodeUnpublishVolume of a target that is not published answers NOT_FOUND (spec: OK).
    UnpublishNotPublishedNotFound,
}

#[derive(Debug, Clone)]
struct Vol {
    name: String,
    size: i64,
    source: Option<berth_csi::csi::VolumeContentSource>,
}

#[derive(Debug, Clone)]
struct Snap {
    name: String,
    source: String,
    size: i64,
    created: prost_types::Timestamp,
}

#[derive(Debug, Default)]
struct State {
    volumes: BTreeMap<String, Vol>,
    snapshots: BTreeMap<String, Snap>,
    /// staging path -> (volume, capability)
    staged: HashMap<PathBuf, (String, VolumeCapability)>,
    /// target path -> (volume, readonly)
    published: HashMap<PathBuf, (String, bool)>,
    next: u64,
}

/// The fake driver's shared core.
#[derive(Debug, Clone, Default)]
pub struct Fake {
    bugs: Arc<HashSet<Bug>>,
    state: Arc<Mutex<State>>,
}

impl Fake {
    pub fn new(bugs: &[Bug]) -> Self {
        Fake {
            bugs: Arc::new(bugs.iter().copied().collect()),
            state: Arc::default(),
        }
    }

    fn bug(&self, b: Bug) -> bool {
        self.bugs.contains(&b)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A running fake on a Unix socket; Drop stops it.
#[derive(Debug)]
pub struct FakeServer {
    pub socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Serve a fake with `bugs` on `socket` (inside the current tokio runtime).
pub fn serve(socket: &Path, bugs: &[Bug]) -> anyhow::Result<FakeServer> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    let fake = Fake::new(bugs);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(IdentityServer::new(fake.clone()))
            .add_service(ControllerServer::new(fake.clone()))
            .add_service(NodeServer::new(fake))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(FakeServer {
        socket: socket.to_path_buf(),
        stop: Some(tx),
    })
}

#[tonic::async_trait]
impl Identity for Fake {
    async fn get_plugin_info(
        &self,
        _: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: "fake.csi.berth.dev".into(),
            vendor_version: "0.0.0".into(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        use plugin_capability::{Service, Type, service};
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![PluginCapability {
                r#type: Some(Type::Service(Service {
                    r#type: service::Type::ControllerService as i32,
                })),
            }],
        }))
    }

    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}

/// INVALID_ARGUMENT when `s` is empty.
fn required(s: &str, field: &str) -> Result<(), Status> {
    if s.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    Ok(())
}

/// A capability with an access type and mode, or INVALID_ARGUMENT.
fn valid_capability(c: Option<&VolumeCapability>) -> Result<&VolumeCapability, Status> {
    let c = c.ok_or_else(|| Status::invalid_argument("volume_capability is required"))?;
    if c.access_type.is_none() || c.access_mode.is_none() {
        return Err(Status::invalid_argument(
            "access_type and access_mode are required",
        ));
    }
    Ok(c)
}
