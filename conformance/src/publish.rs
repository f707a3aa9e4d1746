//! ControllerPublishVolume / ControllerUnpublishVolume and ControllerGetVolume cases (spec:
//! "ControllerPublishVolume", "ControllerUnpublishVolume", "ControllerGetVolume"); they run only
//! where PUBLISH_UNPUBLISH_VOLUME / GET_VOLUME are advertised.

use anyhow::{Result, ensure};
use berth_csi::csi::{
    ControllerGetVolumeRequest, ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest,
    NodeGetInfoRequest,
};
use tonic::Code;

use super::caps::{CtrlCap, Req};
use super::check::{UNKNOWN_NODE_ID, UNKNOWN_VOLUME_ID, code, codes, ok};
use super::config::SecretFor;
use super::ctx::Ctx;
use super::runner::Case;

const CREATE: Req = Req::Ctrl(CtrlCap::CreateDeleteVolume);
const PUBLISH: Req = Req::Ctrl(CtrlCap::PublishUnpublishVolume);
const GET: Req = Req::Ctrl(CtrlCap::GetVolume);

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "controller/publish/missing_volume_id_invalid",
            [PUBLISH],
            publish_no_volume
        ),
        case!(
            "controller/publish/missing_node_id_invalid",
            [PUBLISH],
            publish_no_node
        ),
        case!(
            "controller/publish/missing_capability_invalid",
            [PUBLISH],
            publish_no_cap
        ),
        case!(
            "controller/publish/unknown_volume_not_found",
            [PUBLISH],
            publish_unknown_volume
        ),
        case!(
            "controller/publish/unknown_node_not_found",
            [PUBLISH, CREATE],
            publish_unknown_node
        ),
        case!(
            "controller/unpublish/missing_volume_id_invalid",
            [PUBLISH],
            unpublish_no_volume
        ),
        case!(
            "controller/publish/publish_unpublish_10x",
            [PUBLISH, CREATE, Req::NodeService],
            publish_cycle
        ),
        case!(
            "controller/get_volume/unknown_not_found",
            [GET],
            get_volume_unknown
        ),
        case!(
            "controller/get_volume/existing",
            [GET, CREATE],
            get_volume_existing
        ),
    ]
}

fn publish_req(c: &Ctx, volume_id: &str, node_id: &str) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: volume_id.into(),
        node_id: node_id.into(),
        volume_capability: Some(c.capability()),
        readonly: false,
        secrets: c.secrets(SecretFor::ControllerPublish),
        volume_context: Default::default(),
    }
}

/// Spec ControllerPublishVolume: volume_id REQUIRED.
async fn publish_no_volume(c: Ctx) -> Result<()> {
    let r = c
        .ctl
        .controller
        .clone()
        .controller_publish_volume(publish_req(&c, "", UNKNOWN_NODE_ID))
        .await;
    code(r, Code::InvalidArgument, "ControllerPublishVolume")
}

/// Spec ControllerPublishVolume: node_id REQUIRED.
async fn publish_no_node(c: Ctx) -> Result<()> {
    let r = c
        .ctl
        .controller
        .clone()
        .controller_publish_volume(publish_req(&c, UNKNOWN_VOLUME_ID, ""))
        .await;
    code(r, Code::InvalidArgument, "ControllerPublishVolume")
}

/// Spec ControllerPublishVolume: volume_capability REQUIRED.
async fn publish_no_cap(c: Ctx) -> Result<()> {
    let mut req = publish_req(&c, UNKNOWN_VOLUME_ID, UNKNOWN_NODE_ID);
    req.volume_capability = None;
    code(
        c.ctl
            .controller
            .clone()
            .controller_publish_volume(req)
            .await,
        Code::InvalidArgument,
        "ControllerPublishVolume",
    )
}

/// Spec ControllerPublishVolume errors: "Volume does not exist" -> NOT_FOUND.
async fn publish_unknown_volume(c: Ctx) -> Result<()> {
    let node = node_id(&c).await.unwrap_or_else(|_| UNKNOWN_NODE_ID.into());
    let r = c
        .ctl
        .controller
        .clone()
        .controller_publish_volume(publish_req(&c, UNKNOWN_VOLUME_ID, &node))
        .await;
    code(r, Code::NotFound, "ControllerPublishVolume")
}

/// Spec ControllerPublishVolume errors: "Node does not exist" -> NOT_FOUND.
async fn publish_unknown_node(c: Ctx) -> Result<()> {
    let v = c.create_volume("pub-node").await?;
    let r = c
        .ctl
        .controller
        .clone()
        .controller_publish_volume(publish_req(&c, &v.volume_id, UNKNOWN_NODE_ID))
        .await;
    code(r, Code::NotFound, "ControllerPublishVolume")
}

/// Spec ControllerUnpublishVolume: volume_id REQUIRED.
async fn unpublish_no_volume(c: Ctx) -> Result<()> {
    let req = ControllerUnpublishVolumeRequest {
        volume_id: String::new(),
        node_id: UNKNOWN_NODE_ID.into(),
        secrets: c.secrets(SecretFor::ControllerUnpublish),
    };
    codes(
        c.ctl
            .controller
            .clone()
            .controller_unpublish_volume(req)
            .await,
        &[Code::InvalidArgument],
        "ControllerUnpublishVolume",
    )
}

async fn node_id(c: &Ctx) -> Result<String> {
    Ok(ok(
        c.nod
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await,
        "NodeGetInfo",
    )?
    .node_id)
}

/// Spec ControllerPublish/Unpublish idempotency: ten publishes to the node from NodeGetInfo
/// answer OK (same publish_context), ten unpublishes answer OK.
async fn publish_cycle(c: Ctx) -> Result<()> {
    let v = c.create_volume("pub-cycle").await?;
    let node = node_id(&c).await?;
    let mut first = None;
    for i in 0..10 {
        let r = c
            .ctl
            .controller
            .clone()
            .controller_publish_volume(publish_req(&c, &v.volume_id, &node))
            .await;
        let ctx = ok(r, &format!("ControllerPublishVolume #{}", i + 1))?.publish_context;
        match &first {
            None => first = Some(ctx),
            Some(f) => ensure!(f == &ctx, "publish_context changed on repeat {}", i + 1),
        }
    }
    for i in 0..10 {
        let req = ControllerUnpublishVolumeRequest {
            volume_id: v.volume_id.clone(),
            node_id: node.clone(),
            secrets: c.secrets(SecretFor::ControllerUnpublish),
        };
        ok(
            c.ctl
                .controller
                .clone()
                .controller_unpublish_volume(req)
                .await,
            &format!("ControllerUnpublishVolume #{}", i + 1),
        )?;
    }
    Ok(())
}

/// Spec ControllerGetVolume errors: "Volume does not exist" -> NOT_FOUND.
async fn get_volume_unknown(c: Ctx) -> Result<()> {
    let req = ControllerGetVolumeRequest {
        volume_id: UNKNOWN_VOLUME_ID.into(),
    };
    code(
        c.ctl.controller.clone().controller_get_volume(req).await,
        Code::NotFound,
        "ControllerGetVolume",
    )
}

async fn get_volume_existing(c: Ctx) -> Result<()> {
    let v = c.create_volume("get").await?;
    let req = ControllerGetVolumeRequest {
        volume_id: v.volume_id.clone(),
    };
    let r = ok(
        c.ctl.controller.clone().controller_get_volume(req).await,
        "ControllerGetVolume",
    )?;
    let got = r.volume.map(|v| v.volume_id).unwrap_or_default();
    ensure!(
        got == v.volume_id,
        "ControllerGetVolume returned volume {got:?}"
    );
    Ok(())
}
