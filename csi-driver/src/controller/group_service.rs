//! The gRPC face of the GroupController (volume group snapshots, see [`super::group`]): the
//! tonic trait, its one capability, and one line per RPC that logs, times and counts it.
//! Served with the Controller (same process, same state).

use tonic::{Request, Response, Status};

use crate::csi::{self, group_controller_server, group_controller_service_capability as gcc};
use crate::metrics::observe;

use super::Controller;

#[tonic::async_trait]
impl group_controller_server::GroupController for Controller {
    async fn group_controller_get_capabilities(
        &self,
        _req: Request<csi::GroupControllerGetCapabilitiesRequest>,
    ) -> Result<Response<csi::GroupControllerGetCapabilitiesResponse>, Status> {
        let t = gcc::rpc::Type::CreateDeleteGetVolumeGroupSnapshot;
        Ok(Response::new(csi::GroupControllerGetCapabilitiesResponse {
            capabilities: vec![csi::GroupControllerServiceCapability {
                r#type: Some(gcc::Type::Rpc(gcc::Rpc { r#type: t as i32 })),
            }],
        }))
    }

    async fn create_volume_group_snapshot(
        &self,
        req: Request<csi::CreateVolumeGroupSnapshotRequest>,
    ) -> Result<Response<csi::CreateVolumeGroupSnapshotResponse>, Status> {
        let req = req.into_inner();
        observe(self.metrics(), "CreateVolumeGroupSnapshot", async {
            let g =
                super::group::create(self, req.name, req.source_volume_ids, &req.secrets).await?;
            Ok(csi::CreateVolumeGroupSnapshotResponse {
                group_snapshot: Some(g),
            })
        })
        .await
    }

    async fn delete_volume_group_snapshot(
        &self,
        req: Request<csi::DeleteVolumeGroupSnapshotRequest>,
    ) -> Result<Response<csi::DeleteVolumeGroupSnapshotResponse>, Status> {
        let req = req.into_inner();
        observe(self.metrics(), "DeleteVolumeGroupSnapshot", async {
            super::group::delete(self, &req.group_snapshot_id, &req.secrets).await?;
            Ok(csi::DeleteVolumeGroupSnapshotResponse {})
        })
        .await
    }

    async fn get_volume_group_snapshot(
        &self,
        req: Request<csi::GetVolumeGroupSnapshotRequest>,
    ) -> Result<Response<csi::GetVolumeGroupSnapshotResponse>, Status> {
        let req = req.into_inner();
        observe(self.metrics(), "GetVolumeGroupSnapshot", async {
            let g = super::group::get(self, &req.group_snapshot_id, &req.secrets).await?;
            Ok(csi::GetVolumeGroupSnapshotResponse {
                group_snapshot: Some(g),
            })
        })
        .await
    }
}
