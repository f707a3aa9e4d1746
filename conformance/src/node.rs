//! Node service argument checks, NodeGetInfo, NodeGetCapabilities and NodeGetVolumeStats on
//! unknown paths (spec: "Node Service RPC" and the error table of each RPC).

use anyhow::{Result, ensure};
use berth_csi::csi::{
    NodeGetCapabilitiesRequest, NodeGetInfoRequest, NodeGetVolumeStatsRequest,
    NodePublishVolumeRequest, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
    NodeUnstageVolumeRequest, node_service_capability,
};
use tonic::Code;

use super::caps::{CtrlCap, NodeCap, PluginService, Req};
use super::check::{UNKNOWN_VOLUME_ID, code, ok, ok_or};
use super::config::SecretFor;
use super::ctx::Ctx;
use super::runner::Case;

const NS: Req = Req::NodeService;
const STAGE: Req = Req::Node(NodeCap::StageUnstageVolume);
const STATS: Req = Req::Node(NodeCap::GetVolumeStats);
const CREATE: Req = Req::Ctrl(CtrlCap::CreateDeleteVolume);

pub fn cases() -> Vec<Case> {
    vec![
        case!("node/get_capabilities/known_types", [NS], caps_known),
        case!("node/get_info/node_id", [NS], info),
        case!(
            "node/get_info/topology_when_constrained",
            [
                NS,
                Req::Plugin(PluginService::VolumeAccessibilityConstraints)
            ],
            info_topology
        ),
        case!("node/stage/missing_volume_id_invalid", [STAGE], stage_no_id),
        case!(
            "node/stage/missing_staging_path_invalid",
            [STAGE],
            stage_no_path
        ),
        case!(
            "node/stage/missing_capability_invalid",
            [STAGE],
            stage_no_cap
        ),
        case!(
            "node/stage/unknown_volume_not_found",
            [STAGE],
            stage_unknown
        ),
        case!(
            "node/unstage/missing_volume_id_invalid",
            [STAGE],
            unstage_no_id
        ),
        case!(
            "node/unstage/missing_staging_path_invalid",
            [STAGE],
            unstage_no_path
        ),
        case!("node/unstage/unknown_volume_ok", [STAGE], unstage_unknown),
        case!(
            "node/unstage/not_staged_ok",
            [STAGE, CREATE],
            unstage_not_staged
        ),
        case!(
            "node/publish/missing_volume_id_invalid",
            [NS],
            publish_no_id
        ),
        case!(
            "node/publish/missing_target_path_invalid",
            [NS],
            publish_no_target
        ),
        case!(
            "node/publish/missing_capability_invalid",
            [NS],
            publish_no_cap
        ),
        case!(
            "node/unpublish/missing_volume_id_invalid",
            [NS],
            unpublish_no_id
        ),
        case!(
            "node/unpublish/missing_target_path_invalid",
            [NS],
            unpublish_no_target
        ),
        case!("node/unpublish/unknown_volume_ok", [NS], unpublish_unknown),
        case!(
            "node/unpublish/not_published_ok",
            [NS, CREATE],
            unpublish_not_published
        ),
        case!(
            "node/get_volume_stats/missing_volume_id_invalid",
            [STATS],
            stats_no_id
        ),
        case!(
            "node/get_volume_stats/missing_path_invalid",
            [STATS],
            stats_no_path
        ),
        case!(
            "node/get_volume_stats/unknown_path_not_found",
            [STATS],
            stats_unknown
        ),
    ]
}

/// Spec NodeGetCapabilities: known, non-UNKNOWN RPC types.
async fn caps_known(c: Ctx) -> Result<()> {
    let r = ok(
        c.nod
            .node
            .clone()
            .node_get_capabilities(NodeGetCapabilitiesRequest {})
            .await,
        "NodeGetCapabilities",
    )?;
    for cap in r.capabilities {
        let Some(node_service_capability::Type::Rpc(rpc)) = cap.r#type else {
            anyhow::bail!("a capability without a type");
        };
        ensure!(
            rpc.r#type != 0 && NodeCap::try_from(rpc.r#type).is_ok(),
            "RPC capability {} is UNKNOWN or invalid",
            rpc.r#type
        );
    }
    Ok(())
}

/// Spec NodeGetInfo: node_id REQUIRED, at most 256 bytes; max_volumes_per_node not negative.
async fn info(c: Ctx) -> Result<()> {
    let r = ok(
        c.nod
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await,
        "NodeGetInfo",
    )?;
    ensure!(!r.node_id.is_empty(), "node_id is empty");
    ensure!(
        r.node_id.len() <= 256,
        "node_id is {} bytes (max 256)",
        r.node_id.len()
    );
    ensure!(
        r.max_volumes_per_node >= 0,
        "max_volumes_per_node {} < 0",
        r.max_volumes_per_node
    );
    Ok(())
}

/// Spec NodeGetInfo.accessible_topology: with VOLUME_ACCESSIBILITY_CONSTRAINTS the node says
/// where it is.
async fn info_topology(c: Ctx) -> Result<()> {
    let r = ok(
        c.nod
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await,
        "NodeGetInfo",
    )?;
    ensure!(
        r.accessible_topology
            .is_some_and(|t| !t.segments.is_empty()),
        "VOLUME_ACCESSIBILITY_CONSTRAINTS advertised but no accessible_topology"
    );
    Ok(())
}

fn stage_req(c: &Ctx, id: &str, path: &str) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: id.into(),
        staging_target_path: path.into(),
        volume_capability: Some(c.capability()),
        secrets: c.secrets(SecretFor::NodeStage),
        ..Default::default()
    }
}

/// Spec NodeStageVolume: volume_id REQUIRED.
async fn stage_no_id(c: Ctx) -> Result<()> {
    let dir = c.staging_dir()?;
    let r = c
        .nod
        .node
        .clone()
        .node_stage_volume(stage_req(&c, "", &dir.display().to_string()))
        .await;
    code(r, Code::InvalidArgument, "NodeStageVolume")
}

/// Spec NodeStageVolume: staging_target_path REQUIRED.
async fn stage_no_path(c: Ctx) -> Result<()> {
    let r = c
        .nod
        .node
        .clone()
        .node_stage_volume(stage_req(&c, UNKNOWN_VOLUME_ID, ""))
        .await;
    code(r, Code::InvalidArgument, "NodeStageVolume")
}

/// Spec NodeStageVolume: volume_capability REQUIRED.
async fn stage_no_cap(c: Ctx) -> Result<()> {
    let dir = c.staging_dir()?;
    let mut req = stage_req(&c, UNKNOWN_VOLUME_ID, &dir.display().to_string());
    req.volume_capability = None;
    code(
        c.nod.node.clone().node_stage_volume(req).await,
        Code::InvalidArgument,
        "NodeStageVolume",
    )
}

/// Spec NodeStageVolume errors: "Volume does not exist" -> NOT_FOUND.
async fn stage_unknown(c: Ctx) -> Result<()> {
    let dir = c.staging_dir()?;
    let r = c
        .nod
        .node
        .clone()
        .node_stage_volume(stage_req(&c, UNKNOWN_VOLUME_ID, &dir.display().to_string()))
        .await;
    code(r, Code::NotFound, "NodeStageVolume")
}

fn unstage_req(id: &str, path: &str) -> NodeUnstageVolumeRequest {
    NodeUnstageVolumeRequest {
        volume_id: id.into(),
        staging_target_path: path.into(),
    }
}

/// Spec NodeUnstageVolume: volume_id REQUIRED.
async fn unstage_no_id(c: Ctx) -> Result<()> {
    let dir = c.staging_dir()?;
    code(
        c.nod
            .node
            .clone()
            .node_unstage_volume(unstage_req("", &dir.display().to_string()))
            .await,
        Code::InvalidArgument,
        "NodeUnstageVolume",
    )
}

/// Spec NodeUnstageVolume: staging_target_path REQUIRED.
async fn unstage_no_path(c: Ctx) -> Result<()> {
    code(
        c.nod
            .node
            .clone()
            .node_unstage_volume(unstage_req(UNKNOWN_VOLUME_ID, ""))
            .await,
        Code::InvalidArgument,
        "NodeUnstageVolume",
    )
}

/// Spec NodeUnstageVolume: not staged -> OK; the error table also allows NOT_FOUND for a
/// volume that does not exist.
async fn unstage_unknown(c: Ctx) -> Result<()> {
    let dir = c.staging_dir()?;
    let r = c
        .nod
        .node
        .clone()
        .node_unstage_volume(unstage_req(UNKNOWN_VOLUME_ID, &dir.display().to_string()))
        .await;
    ok_or(r, &[Code::NotFound], "NodeUnstageVolume")
}

/// Spec NodeUnstageVolume: "If the volume … is not staged to the staging_target_path, the
/// Plugin MUST reply 0 OK."
async fn unstage_not_staged(c: Ctx) -> Result<()> {
    let v = c.create_volume("unstaged").await?;
    let dir = c.staging_dir()?;
    ok(
        c.nod
            .node
            .clone()
            .node_unstage_volume(unstage_req(&v.volume_id, &dir.display().to_string()))
            .await,
        "NodeUnstageVolume",
    )
    .map(drop)
}

fn publish_req(c: &Ctx, id: &str, target: &str, staging: &str) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: id.into(),
        target_path: target.into(),
        staging_target_path: staging.into(),
        volume_capability: Some(c.capability()),
        secrets: c.secrets(SecretFor::NodePublish),
        ..Default::default()
    }
}

fn paths(c: &Ctx) -> Result<(String, String)> {
    let target = c.target_path()?.display().to_string();
    let staging = if c.stages() {
        c.staging_dir()?.display().to_string()
    } else {
        String::new()
    };
    Ok((target, staging))
}

/// Spec NodePublishVolume: volume_id REQUIRED.
async fn publish_no_id(c: Ctx) -> Result<()> {
    let (t, s) = paths(&c)?;
    code(
        c.nod
            .node
            .clone()
            .node_publish_volume(publish_req(&c, "", &t, &s))
            .await,
        Code::InvalidArgument,
        "NodePublishVolume",
    )
}

/// Spec NodePublishVolume: target_path REQUIRED.
async fn publish_no_target(c: Ctx) -> Result<()> {
    let (_, s) = paths(&c)?;
    code(
        c.nod
            .node
            .clone()
            .node_publish_volume(publish_req(&c, UNKNOWN_VOLUME_ID, "", &s))
            .await,
        Code::InvalidArgument,
        "NodePublishVolume",
    )
}

/// Spec NodePublishVolume: volume_capability REQUIRED.
async fn publish_no_cap(c: Ctx) -> Result<()> {
    let (t, s) = paths(&c)?;
    let mut req = publish_req(&c, UNKNOWN_VOLUME_ID, &t, &s);
    req.volume_capability = None;
    code(
        c.nod.node.clone().node_publish_volume(req).await,
        Code::InvalidArgument,
        "NodePublishVolume",
    )
}

fn unpublish_req(id: &str, target: &str) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: id.into(),
        target_path: target.into(),
    }
}

/// Spec NodeUnpublishVolume: volume_id REQUIRED.
async fn unpublish_no_id(c: Ctx) -> Result<()> {
    let t = c.target_path()?.display().to_string();
    code(
        c.nod
            .node
            .clone()
            .node_unpublish_volume(unpublish_req("", &t))
            .await,
        Code::InvalidArgument,
        "NodeUnpublishVolume",
    )
}

/// Spec NodeUnpublishVolume: target_path REQUIRED.
async fn unpublish_no_target(c: Ctx) -> Result<()> {
    code(
        c.nod
            .node
            .clone()
            .node_unpublish_volume(unpublish_req(UNKNOWN_VOLUME_ID, ""))
            .await,
        Code::InvalidArgument,
        "NodeUnpublishVolume",
    )
}

/// Spec NodeUnpublishVolume: not published -> OK (NOT_FOUND allowed for a volume that does
/// not exist).
async fn unpublish_unknown(c: Ctx) -> Result<()> {
    let t = c.target_path()?.display().to_string();
    ok_or(
        c.nod
            .node
            .clone()
            .node_unpublish_volume(unpublish_req(UNKNOWN_VOLUME_ID, &t))
            .await,
        &[Code::NotFound],
        "NodeUnpublishVolume",
    )
}

/// Spec NodeUnpublishVolume: "If the volume … is not published at the target_path, the Plugin
/// MUST reply 0 OK."
async fn unpublish_not_published(c: Ctx) -> Result<()> {
    let v = c.create_volume("unpublished").await?;
    let t = c.target_path()?.display().to_string();
    ok(
        c.nod
            .node
            .clone()
            .node_unpublish_volume(unpublish_req(&v.volume_id, &t))
            .await,
        "NodeUnpublishVolume",
    )
    .map(drop)
}

fn stats_req(id: &str, path: &str) -> NodeGetVolumeStatsRequest {
    NodeGetVolumeStatsRequest {
        volume_id: id.into(),
        volume_path: path.into(),
        staging_target_path: String::new(),
    }
}

/// Spec NodeGetVolumeStats: volume_id REQUIRED.
async fn stats_no_id(c: Ctx) -> Result<()> {
    let p = c.staging_dir()?.display().to_string();
    code(
        c.nod
            .node
            .clone()
            .node_get_volume_stats(stats_req("", &p))
            .await,
        Code::InvalidArgument,
        "NodeGetVolumeStats",
    )
}

/// Spec NodeGetVolumeStats: volume_path REQUIRED.
async fn stats_no_path(c: Ctx) -> Result<()> {
    code(
        c.nod
            .node
            .clone()
            .node_get_volume_stats(stats_req(UNKNOWN_VOLUME_ID, ""))
            .await,
        Code::InvalidArgument,
        "NodeGetVolumeStats",
    )
}

/// Spec NodeGetVolumeStats errors: "Volume does not exist … on specified volume_path" ->
/// NOT_FOUND.
async fn stats_unknown(c: Ctx) -> Result<()> {
    let p = c
        .cfg()
        .mount_dir
        .join("conformance-no-such-path")
        .display()
        .to_string();
    code(
        c.nod
            .node
            .clone()
            .node_get_volume_stats(stats_req(UNKNOWN_VOLUME_ID, &p))
            .await,
        Code::NotFound,
        "NodeGetVolumeStats",
    )
}
