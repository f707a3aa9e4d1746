//! A CSI gRPC client over a Unix socket (what kubelet and the sidecars do).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use berth_csi::csi::controller_client::ControllerClient;
use berth_csi::csi::group_controller_client::GroupControllerClient;
use berth_csi::csi::identity_client::IdentityClient;
use berth_csi::csi::node_client::NodeClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// Clients of the CSI services sharing one connection.
#[derive(Debug, Clone)]
pub struct CsiClient {
    pub identity: IdentityClient<Channel>,
    pub controller: ControllerClient<Channel>,
    pub group: GroupControllerClient<Channel>,
    pub node: NodeClient<Channel>,
}

/// Open a channel to a Unix socket (the URI is a placeholder tonic requires).
pub async fn channel(socket: &Path) -> Result<Channel> {
    let socket: PathBuf = socket.to_path_buf();
    Endpoint::try_from("http://[::1]:50051")?
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .context("connect to CSI socket")
}

impl CsiClient {
    pub async fn connect(socket: &Path) -> Result<CsiClient> {
        let ch = channel(socket).await?;
        Ok(CsiClient {
            identity: IdentityClient::new(ch.clone()),
            controller: ControllerClient::new(ch.clone()),
            group: GroupControllerClient::new(ch.clone()),
            node: NodeClient::new(ch),
        })
    }
}
