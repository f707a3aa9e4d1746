//! Volume expansion cases: ControllerExpandVolume and NodeExpandVolume (spec: "ControllerExpandVolume",
//! "NodeExpandVolume", PluginCapability.VolumeExpansion).

use anyhow::{Result, ensure};
use berth_csi::csi::{
    CapacityRange, ControllerExpandVolumeRequest, NodeExpandVolumeRequest,
    NodeGetVolumeStatsRequest, volume_usage,
};
use tonic::Code;

use super::caps::{CtrlCap, NodeCap, Req};
use super::check::{UNKNOWN_VOLUME_ID, code, codes, ok};
use super::config::SecretFor;
use super::ctx::Ctx;
use super::runner::Case;

const EXPAND: Req = Req::Ctrl(CtrlCap::ExpandVolume);
const CREATE: Req = Req::Ctrl(CtrlCap::CreateDeleteVolume);
const NEXPAND: Req = Req::Node(NodeCap::ExpandVolume);

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "expansion/controller_expand/missing_id_invalid",
            [EXPAND],
            missing_id
        ),
        case!(
            "expansion/controller_expand/missing_range_invalid",
            [EXPAND, CREATE],
            missing_range
        ),
        case!(
            "expansion/controller_expand/unknown_volume_not_found",
            [EXPAND],
            unknown
        ),
        case!(
            "expansion/controller_expand/grow_ok",
            [EXPAND, CREATE],
            grow
        ),
        case!(
            "expansion/controller_expand/repeated_10x_ok",
            [EXPAND, CREATE],
            grow_repeated
        ),
        case!(
            "expansion/controller_expand/smaller_request_ok",
            [EXPAND, CREATE],
            smaller
        ),
        case!(
            "expansion/controller_expand/limit_below_required_out_of_range",
            [EXPAND, CREATE],
            bad_range
        ),
        case!(
            "expansion/controller_expand/node_expansion_required_consistent",
            [EXPAND, CREATE, Req::NodeService],
            node_required
        ),
        case!(
            "expansion/node_expand/missing_volume_id_invalid",
            [NEXPAND],
            node_missing_id
        ),
        case!(
            "expansion/node_expand/missing_path_invalid",
            [NEXPAND],
            node_missing_path
        ),
        case!(
            "expansion/node_expand/unknown_volume_not_found",
            [NEXPAND],
            node_unknown
        ),
        case!(
            "expansion/node_expand/published_volume_grows",
            [NEXPAND, EXPAND, CREATE],
            node_grow
        ),
    ]
}

/// The size an expansion asks for: the test size plus 1 GiB, as csi-sanity does.
fn grown(c: &Ctx) -> i64 {
    c.size() + (1 << 30)
}

fn request(c: &Ctx, id: &str, required: i64) -> ControllerExpandVolumeRequest {
    ControllerExpandVolumeRequest {
        volume_id: id.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: required,
            limit_bytes: 0,
        }),
        secrets: c.secrets(SecretFor::ControllerExpand),
        volume_capability: Some(c.capability()),
    }
}

/// Spec ControllerExpandVolume: volume_id REQUIRED.
async fn missing_id(c: Ctx) -> Result<()> {
    let r = c
        .ctl
        .controller
        .clone()
        .controller_expand_volume(request(&c, "", grown(&c)))
        .await;
    code(r, Code::InvalidArgument, "ControllerExpandVolume")
}

/// Spec ControllerExpandVolume: capacity_range REQUIRED.
async fn missing_range(c: Ctx) -> Result<()> {
    let v = c.create_volume("exp-norange").await?;
    let mut req = request(&c, &v.volume_id, 0);
    req.capacity_range = None;
    code(
        c.ctl.controller.clone().controller_expand_volume(req).await,
        Code::InvalidArgument,
        "ControllerExpandVolume",
    )
}

/// Spec ControllerExpandVolume errors: "Volume does not exist" -> NOT_FOUND.
async fn unknown(c: Ctx) -> Result<()> {
    let r = c
        .ctl
        .controller
        .clone()
        .controller_expand_volume(request(&c, UNKNOWN_VOLUME_ID, grown(&c)))
        .await;
    code(r, Code::NotFound, "ControllerExpandVolume")
}

/// Spec ControllerExpandVolumeResponse.capacity_bytes: the new size, at least what was asked.
async fn grow(c: Ctx) -> Result<()> {
    let v = c.create_volume("exp").await?;
    let r = ok(
        c.ctl
            .controller
            .clone()
            .controller_expand_volume(request(&c, &v.volume_id, grown(&c)))
            .await,
        "ControllerExpandVolume",
    )?;
    ensure!(
        r.capacity_bytes >= grown(&c),
        "capacity_bytes {} < requested {}",
        r.capacity_bytes,
        grown(&c)
    );
    Ok(())
}

/// Spec ControllerExpandVolume idempotency: repeating the same request answers OK.
async fn grow_repeated(c: Ctx) -> Result<()> {
    let v = c.create_volume("exp-rep").await?;
    for i in 1..=10 {
        let r = c
            .ctl
            .controller
            .clone()
            .controller_expand_volume(request(&c, &v.volume_id, grown(&c)))
            .await;
        let r = ok(r, &format!("ControllerExpandVolume #{i}"))?;
        ensure!(
            r.capacity_bytes >= grown(&c),
            "call {i}: capacity_bytes {}",
            r.capacity_bytes
        );
    }
    Ok(())
}

/// Spec ControllerExpandVolume: "If a volume corresponding to the specified volume ID is
/// already larger than or equal to the target capacity … the plugin SHOULD reply 0 OK."
async fn smaller(c: Ctx) -> Result<()> {
    let v = c.create_volume("exp-small").await?;
    let r = c
        .ctl
        .controller
        .clone()
        .controller_expand_volume(request(&c, &v.volume_id, c.size() / 2))
        .await;
    let r = ok(r, "ControllerExpandVolume to a smaller size")?;
    ensure!(
        r.capacity_bytes >= c.size(),
        "volume shrank to {}",
        r.capacity_bytes
    );
    Ok(())
}

/// Spec ControllerExpandVolume errors: "Unsupported capacity" -> OUT_OF_RANGE.
async fn bad_range(c: Ctx) -> Result<()> {
    let v = c.create_volume("exp-range").await?;
    let mut req = request(&c, &v.volume_id, grown(&c));
    req.capacity_range = Some(CapacityRange {
        required_bytes: grown(&c),
        limit_bytes: c.size(),
    });
    code(
        c.ctl.controller.clone().controller_expand_volume(req).await,
        Code::OutOfRange,
        "ControllerExpandVolume",
    )
}

/// node_expansion_required=true obliges the CO to call NodeExpandVolume, which the node must
/// then advertise (spec: ControllerExpandVolumeResponse, NodeServiceCapability EXPAND_VOLUME).
async fn node_required(c: Ctx) -> Result<()> {
    let v = c.create_volume("exp-node").await?;
    let r = ok(
        c.ctl
            .controller
            .clone()
            .controller_expand_volume(request(&c, &v.volume_id, grown(&c)))
            .await,
        "ControllerExpandVolume",
    )?;
    ensure!(
        !r.node_expansion_required || c.caps().has_node(NodeCap::ExpandVolume),
        "node_expansion_required=true but the node does not advertise EXPAND_VOLUME"
    );
    Ok(())
}

fn node_request(id: &str, path: &str) -> NodeExpandVolumeRequest {
    NodeExpandVolumeRequest {
        volume_id: id.into(),
        volume_path: path.into(),
        ..Default::default()
    }
}

/// Spec NodeExpandVolume: volume_id REQUIRED.
async fn node_missing_id(c: Ctx) -> Result<()> {
    let path = c.staging_dir()?;
    let r = c
        .nod
        .node
        .clone()
        .node_expand_volume(node_request("", &path.display().to_string()))
        .await;
    code(r, Code::InvalidArgument, "NodeExpandVolume")
}

/// Spec NodeExpandVolume: volume_path REQUIRED.
async fn node_missing_path(c: Ctx) -> Result<()> {
    let r = c
        .nod
        .node
        .clone()
        .node_expand_volume(node_request(UNKNOWN_VOLUME_ID, ""))
        .await;
    code(r, Code::InvalidArgument, "NodeExpandVolume")
}

/// Spec NodeExpandVolume errors: "Volume does not exist" -> NOT_FOUND.
async fn node_unknown(c: Ctx) -> Result<()> {
    let path = c.staging_dir()?;
    let r = c
        .nod
        .node
        .clone()
        .node_expand_volume(node_request(UNKNOWN_VOLUME_ID, &path.display().to_string()))
        .await;
    codes(r, &[Code::NotFound], "NodeExpandVolume")
}

/// The CO's online expansion: stage, publish, ControllerExpandVolume, NodeExpandVolume on the
/// published path; the node reports the new size (response or stats).
async fn node_grow(c: Ctx) -> Result<()> {
    let v = c.create_volume("exp-online").await?;
    let staging = c.stage(&v).await?;
    let target = c.publish(&v, staging.as_deref(), false).await?;
    ok(
        c.ctl
            .controller
            .clone()
            .controller_expand_volume(request(&c, &v.volume_id, grown(&c)))
            .await,
        "ControllerExpandVolume",
    )?;
    let req = NodeExpandVolumeRequest {
        volume_id: v.volume_id.clone(),
        volume_path: target.display().to_string(),
        capacity_range: Some(CapacityRange {
            required_bytes: grown(&c),
            limit_bytes: 0,
        }),
        staging_target_path: staging
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        volume_capability: Some(c.capability()),
        secrets: c.secrets(SecretFor::NodeExpand),
    };
    let before = fs_total(&c, &v.volume_id, &target).await?;
    let r = ok(
        c.nod.node.clone().node_expand_volume(req).await,
        "NodeExpandVolume",
    )?;
    ensure!(
        r.capacity_bytes == 0 || r.capacity_bytes >= grown(&c),
        "NodeExpandVolume capacity_bytes {}",
        r.capacity_bytes
    );
    let after = fs_total(&c, &v.volume_id, &target).await?;
    // The request added 1 GiB: the filesystem must have grown by most of it.
    if let (Some(before), Some(after)) = (before, after) {
        ensure!(
            after > before + (1 << 29),
            "filesystem total {before} -> {after}: did not grow"
        );
    }
    Ok(())
}

/// The BYTES total NodeGetVolumeStats reports (None when stats are not advertised or the
/// volume is a block device).
async fn fs_total(c: &Ctx, id: &str, target: &std::path::Path) -> Result<Option<i64>> {
    if !c.caps().has_node(NodeCap::GetVolumeStats)
        || c.cfg().access_type != super::AccessType::Mount
    {
        return Ok(None);
    }
    let req = NodeGetVolumeStatsRequest {
        volume_id: id.into(),
        volume_path: target.display().to_string(),
        staging_target_path: String::new(),
    };
    let s = ok(
        c.nod.node.clone().node_get_volume_stats(req).await,
        "NodeGetVolumeStats",
    )?;
    Ok(Some(
        s.usage
            .iter()
            .find(|u| u.unit == volume_usage::Unit::Bytes as i32)
            .map(|u| u.total)
            .unwrap_or(0),
    ))
}
