//! The fake's Node service: stage/publish bookkeeping in memory; publish creates the target
//! path (a directory, or a file for block access) and unpublish removes it. Nothing is mounted.

use std::path::PathBuf;

use berth_csi::csi::node_server::Node;
use berth_csi::csi::*;
use tonic::{Request, Response, Status};

use super::{Bug, Fake, required, valid_capability};

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Node for Fake {
    async fn node_stage_volume(
        &self,
        req: Request<NodeStageVolumeRequest>,
    ) -> R<NodeStageVolumeResponse> {
        let req = req.into_inner();
        required(&req.volume_id, "volume_id")?;
        required(&req.staging_target_path, "staging_target_path")?;
        let cap = valid_capability(req.volume_capability.as_ref())?.clone();
        let path = PathBuf::from(&req.staging_target_path);
        self.with(|st| {
            if !st.volumes.contains_key(&req.volume_id) {
                return Err(Status::not_found("no such volume"));
            }
            if let Some((vol, c)) = st.staged.get(&path)
                && (vol != &req.volume_id || c != &cap)
            {
                return Err(Status::already_exists("staged there with other arguments"));
            }
            st.staged.insert(path, (req.volume_id.clone(), cap));
            Ok(Response::new(NodeStageVolumeResponse {}))
        })
    }

    async fn node_unstage_volume(
        &self,
        req: Request<NodeUnstageVolumeRequest>,
    ) -> R<NodeUnstageVolumeResponse> {
        let req = req.into_inner();
        required(&req.volume_id, "volume_id")?;
        required(&req.staging_target_path, "staging_target_path")?;
        self.with(|st| st.staged.remove(&PathBuf::from(&req.staging_target_path)));
        Ok(Response::new(NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        req: Request<NodePublishVolumeRequest>,
    ) -> R<NodePublishVolumeResponse> {
        let req = req.into_inner();
        required(&req.volume_id, "volume_id")?;
        required(&req.target_path, "target_path")?;
        let cap = valid_capability(req.volume_capability.as_ref())?.clone();
        let target = PathBuf::from(&req.target_path);
        let block = matches!(
            cap.access_type,
            Some(volume_capability::AccessType::Block(_))
        );
        self.with(|st| {
            if !st.volumes.contains_key(&req.volume_id) {
                return Err(Status::not_found("no such volume"));
            }
            let staged = st
                .staged
                .get(&PathBuf::from(&req.staging_target_path))
                .is_some_and(|(v, _)| v == &req.volume_id);
            if !staged && !self.bug(Bug::PublishWithoutStageOk) {
                return Err(Status::failed_precondition(
                    "volume is not staged at staging_target_path",
                ));
            }
            if let Some((vol, ro)) = st.published.get(&target) {
                if vol != &req.volume_id || *ro != req.readonly {
                    return Err(Status::already_exists(
                        "published there with other arguments",
                    ));
                }
                return Ok(Response::new(NodePublishVolumeResponse {}));
            }
            let made = if block {
                std::fs::write(&target, b"")
            } else {
                std::fs::create_dir_all(&target)
            };
            made.map_err(|e| Status::internal(format!("create target: {e}")))?;
            st.published
                .insert(target, (req.volume_id.clone(), req.readonly));
            Ok(Response::new(NodePublishVolumeResponse {}))
        })
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<NodeUnpublishVolumeRequest>,
    ) -> R<NodeUnpublishVolumeResponse> {
        let req = req.into_inner();
        required(&req.volume_id, "volume_id")?;
        required(&req.target_path, "target_path")?;
        let target = PathBuf::from(&req.target_path);
        let was = self.with(|st| st.published.remove(&target));
        if was.is_none() && self.bug(Bug::UnpublishNotPublishedNotFound) {
            return Err(Status::not_found("not published"));
        }
        if target.is_dir() {
            let _ = std::fs::remove_dir(&target);
        } else if target.exists() {
            let _ = std::fs::remove_file(&target);
        }
        Ok(Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        _: Request<NodeGetVolumeStatsRequest>,
    ) -> R<NodeGetVolumeStatsResponse> {
        Err(Status::unimplemented("not advertised"))
    }

    async fn node_expand_volume(
        &self,
        _: Request<NodeExpandVolumeRequest>,
    ) -> R<NodeExpandVolumeResponse> {
        Err(Status::unimplemented("not advertised"))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<NodeGetCapabilitiesRequest>,
    ) -> R<NodeGetCapabilitiesResponse> {
        use node_service_capability::{Rpc, Type, rpc::Type as T};
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: vec![NodeServiceCapability {
                r#type: Some(Type::Rpc(Rpc {
                    r#type: T::StageUnstageVolume as i32,
                })),
            }],
        }))
    }

    async fn node_get_info(&self, _: Request<NodeGetInfoRequest>) -> R<NodeGetInfoResponse> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: "fake-node".into(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}
