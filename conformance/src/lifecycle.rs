//! Node cases on real volumes: the full create -> stage -> publish -> unpublish -> unstage ->
//! delete cycle with every step repeated ten times, publish preconditions, read-only, stats,
//! data surviving a re-stage (spec: "Node Service RPC", "RPC Interactions", idempotency).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use berth_csi::csi::{
    NodeGetVolumeStatsRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, Volume,
    volume_usage,
};
use tonic::Code;

use super::caps::{CtrlCap, NodeCap, Req};
use super::check::{code, ok};
use super::config::AccessType;
use super::ctx::{Ctx, capability_for};
use super::runner::Case;
use super::volumes::delete;

const NS: Req = Req::NodeService;
const CREATE: Req = Req::Ctrl(CtrlCap::CreateDeleteVolume);
const STAGE: Req = Req::Node(NodeCap::StageUnstageVolume);
const STATS: Req = Req::Node(NodeCap::GetVolumeStats);
const MOUNT: Req = Req::Access(AccessType::Mount);

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "node/lifecycle/full_cycle_each_step_10x",
            [NS, CREATE],
            full_cycle
        ),
        case!(
            "node/lifecycle/data_survives_restage",
            [NS, CREATE],
            data_survives
        ),
        case!(
            "node/stage/same_path_other_access_type_already_exists",
            [STAGE, CREATE],
            stage_incompatible
        ),
        case!(
            "node/publish/without_stage_failed_precondition",
            [STAGE, CREATE],
            publish_unstaged
        ),
        case!(
            "node/publish/target_is_mount_or_device",
            [NS, CREATE],
            publish_shape
        ),
        case!(
            "node/publish/same_target_other_readonly_already_exists",
            [NS, CREATE],
            publish_incompatible
        ),
        case!(
            "node/publish/readonly_not_writable",
            [NS, CREATE, MOUNT],
            publish_readonly
        ),
        case!("node/publish/two_targets_ok", [NS, CREATE], two_targets),
        case!(
            "node/unpublish/removes_target",
            [NS, CREATE],
            unpublish_removes
        ),
        case!(
            "node/get_volume_stats/published_reports_bytes",
            [STATS, CREATE],
            stats_published
        ),
        case!(
            "node/get_volume_stats/staging_path_reports_bytes",
            [STATS, STAGE, CREATE],
            stats_staged
        ),
    ]
}

fn unpublish(v: &Volume, target: &Path) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: target.display().to_string(),
    }
}

fn unstage(v: &Volume, path: &Path) -> NodeUnstageVolumeRequest {
    NodeUnstageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: path.display().to_string(),
    }
}

fn mounted(p: &Path) -> bool {
    crate::mounts().iter().any(|m| m.target == p)
}

/// Spec "Volume Lifecycle" + idempotency of every call: each step ten times, same answer.
async fn full_cycle(c: Ctx) -> Result<()> {
    let req = c.create_request(&c.name("cycle"));
    let v = c.create_volume_with(req.clone()).await?;
    for i in 2..=10 {
        let again = c
            .create_volume_with(req.clone())
            .await
            .context(format!("CreateVolume #{i}"))?;
        ensure!(
            again.volume_id == v.volume_id,
            "CreateVolume #{i} returned another volume"
        );
    }
    let mut node = c.nod.node.clone();
    let staging = c.stage(&v).await?;
    if let Some(s) = &staging {
        for i in 2..=10 {
            ok(
                node.node_stage_volume(c.stage_request(&v, s)).await,
                &format!("NodeStageVolume #{i}"),
            )?;
        }
    }
    let target = c.publish(&v, staging.as_deref(), false).await?;
    for i in 2..=10 {
        let req = c.publish_request(&v, staging.as_deref(), &target, false);
        ok(
            node.node_publish_volume(req).await,
            &format!("NodePublishVolume #{i}"),
        )?;
    }
    check_published(&c, &target)?;
    for i in 1..=10 {
        ok(
            node.node_unpublish_volume(unpublish(&v, &target)).await,
            &format!("NodeUnpublishVolume #{i}"),
        )?;
    }
    ensure!(
        !mounted(&target),
        "{} still mounted after NodeUnpublishVolume",
        target.display()
    );
    if let Some(s) = &staging {
        for i in 1..=10 {
            ok(
                node.node_unstage_volume(unstage(&v, s)).await,
                &format!("NodeUnstageVolume #{i}"),
            )?;
        }
        ensure!(
            !mounted(s),
            "{} still mounted after NodeUnstageVolume",
            s.display()
        );
    }
    for i in 1..=10 {
        delete(&c, &v.volume_id)
            .await
            .context(format!("DeleteVolume #{i}"))?;
    }
    Ok(())
}

/// Spec NodePublishVolume: mount access puts a mounted directory at target_path, block access a
/// block device.
fn check_published(c: &Ctx, target: &Path) -> Result<()> {
    match c.cfg().access_type {
        AccessType::Mount => {
            ensure!(target.is_dir(), "{} is not a directory", target.display());
            ensure!(mounted(target), "{} is not a mount point", target.display());
        }
        AccessType::Block => {
            let md =
                std::fs::metadata(target).with_context(|| format!("stat {}", target.display()))?;
            ensure!(
                md.file_type().is_block_device(),
                "{} is not a block device",
                target.display()
            );
        }
    }
    Ok(())
}

const PAYLOAD: &[u8] = b"berth conformance: this data must survive unstage and stage\n";

/// Write through the published path: a file (mount) or the device's first block (block).
fn write_payload(c: &Ctx, target: &Path) -> Result<()> {
    match c.cfg().access_type {
        AccessType::Mount => {
            let mut f = std::fs::File::create(target.join("conformance.txt"))?;
            f.write_all(PAYLOAD)?;
            f.sync_all()?;
        }
        AccessType::Block => {
            let mut f = std::fs::OpenOptions::new().write(true).open(target)?;
            f.seek(SeekFrom::Start(4096))?;
            f.write_all(PAYLOAD)?;
            f.sync_all()?;
        }
    }
    Ok(())
}

fn read_payload(c: &Ctx, target: &Path) -> Result<Vec<u8>> {
    Ok(match c.cfg().access_type {
        AccessType::Mount => std::fs::read(target.join("conformance.txt"))?,
        AccessType::Block => {
            let mut f = std::fs::File::open(target)?;
            f.seek(SeekFrom::Start(4096))?;
            let mut buf = vec![0; PAYLOAD.len()];
            f.read_exact(&mut buf)?;
            buf
        }
    })
}

/// Data written through a publish is there after unpublish, unstage, stage, publish: the
/// volume was not reformatted (the point of "format once").
async fn data_survives(c: Ctx) -> Result<()> {
    let v = c.create_volume("data").await?;
    let mut node = c.nod.node.clone();
    let staging = c.stage(&v).await?;
    let target = c.publish(&v, staging.as_deref(), false).await?;
    write_payload(&c, &target).context("write through the published path")?;
    ok(
        node.node_unpublish_volume(unpublish(&v, &target)).await,
        "NodeUnpublishVolume",
    )?;
    if let Some(s) = &staging {
        ok(
            node.node_unstage_volume(unstage(&v, s)).await,
            "NodeUnstageVolume",
        )?;
    }
    let staging = c.stage(&v).await?;
    let target = c.publish(&v, staging.as_deref(), false).await?;
    let back = read_payload(&c, &target).context("read back after re-stage")?;
    ensure!(
        back == PAYLOAD,
        "data differs after re-stage: the volume was reformatted or lost writes"
    );
    Ok(())
}

/// Spec NodeStageVolume errors: staged at this path with an incompatible capability ->
/// ALREADY_EXISTS.
async fn stage_incompatible(c: Ctx) -> Result<()> {
    let v = c.create_volume("stage-incompat").await?;
    let s = c.stage(&v).await?.context("node does not stage")?;
    let mut req = c.stage_request(&v, &s);
    let other = match c.cfg().access_type {
        AccessType::Mount => AccessType::Block,
        AccessType::Block => AccessType::Mount,
    };
    req.volume_capability = Some(capability_for(other));
    code(
        c.nod.node.clone().node_stage_volume(req).await,
        Code::AlreadyExists,
        "NodeStageVolume with the other access type",
    )
}

/// Spec NodePublishVolume errors: "Stage not done" (STAGE_UNSTAGE_VOLUME advertised, no
/// NodeStageVolume at staging_target_path) -> FAILED_PRECONDITION.
async fn publish_unstaged(c: Ctx) -> Result<()> {
    let v = c.create_volume("unstaged-pub").await?;
    let staging = c.staging_dir()?;
    let target = c.target_path()?;
    c.track(super::ctx::Resource::Published {
        volume_id: v.volume_id.clone(),
        target: target.clone(),
    });
    let req = c.publish_request(&v, Some(&staging), &target, false);
    code(
        c.nod.node.clone().node_publish_volume(req).await,
        Code::FailedPrecondition,
        "NodePublishVolume without NodeStageVolume",
    )
}

async fn publish_shape(c: Ctx) -> Result<()> {
    let v = c.create_volume("shape").await?;
    let staging = c.stage(&v).await?;
    let target = c.publish(&v, staging.as_deref(), false).await?;
    check_published(&c, &target)
}

/// Spec NodePublishVolume errors: "Volume published but is incompatible" (other readonly flag
/// at the same target) -> ALREADY_EXISTS.
async fn publish_incompatible(c: Ctx) -> Result<()> {
    let v = c.create_volume("pub-incompat").await?;
    let staging = c.stage(&v).await?;
    let target = c.publish(&v, staging.as_deref(), false).await?;
    let req = c.publish_request(&v, staging.as_deref(), &target, true);
    code(
        c.nod.node.clone().node_publish_volume(req).await,
        Code::AlreadyExists,
        "NodePublishVolume readonly at a read-write target",
    )
}

/// Spec NodePublishVolumeRequest.readonly: the volume is published read-only.
async fn publish_readonly(c: Ctx) -> Result<()> {
    let v = c.create_volume("ro").await?;
    let staging = c.stage(&v).await?;
    let target = c.publish(&v, staging.as_deref(), true).await?;
    let w = std::fs::write(target.join("must-fail"), b"x");
    ensure!(
        w.is_err(),
        "wrote into a read-only publish at {}",
        target.display()
    );
    Ok(())
}

/// One staged volume published at two targets on the same node (two pods, SINGLE_NODE_WRITER).
async fn two_targets(c: Ctx) -> Result<()> {
    let v = c.create_volume("two").await?;
    let staging = c.stage(&v).await?;
    let a = c.publish(&v, staging.as_deref(), false).await?;
    let b = c.publish(&v, staging.as_deref(), false).await?;
    check_published(&c, &a)?;
    check_published(&c, &b)
}

/// Spec NodeUnpublishVolume: "The SP MUST delete the file or directory it created at this path."
async fn unpublish_removes(c: Ctx) -> Result<()> {
    let v = c.create_volume("unpub").await?;
    let staging = c.stage(&v).await?;
    let target = c.publish(&v, staging.as_deref(), false).await?;
    ok(
        c.nod
            .node
            .clone()
            .node_unpublish_volume(unpublish(&v, &target))
            .await,
        "NodeUnpublishVolume",
    )?;
    ensure!(
        !target.exists(),
        "{} still exists after NodeUnpublishVolume",
        target.display()
    );
    Ok(())
}

async fn stats_bytes(c: &Ctx, v: &Volume, path: &Path) -> Result<()> {
    let req = NodeGetVolumeStatsRequest {
        volume_id: v.volume_id.clone(),
        volume_path: path.display().to_string(),
        staging_target_path: String::new(),
    };
    let r = ok(
        c.nod.node.clone().node_get_volume_stats(req).await,
        "NodeGetVolumeStats",
    )?;
    let bytes = r
        .usage
        .iter()
        .find(|u| u.unit == volume_usage::Unit::Bytes as i32);
    let Some(b) = bytes else {
        anyhow::bail!("no BYTES usage in {:?}", r.usage)
    };
    ensure!(b.total > 0, "BYTES total {}", b.total);
    ensure!(b.available >= 0 && b.used >= 0, "negative usage {b:?}");
    ensure!(
        b.total <= c.size() + (1 << 30),
        "BYTES total {} larger than the volume",
        b.total
    );
    for u in &r.usage {
        ensure!(u.unit != 0, "usage with UNKNOWN unit");
    }
    Ok(())
}

/// Spec NodeGetVolumeStats: BYTES usage of a published volume (total required).
async fn stats_published(c: Ctx) -> Result<()> {
    let v = c.create_volume("stats").await?;
    let staging = c.stage(&v).await?;
    let target = c.publish(&v, staging.as_deref(), false).await?;
    stats_bytes(&c, &v, &target).await
}

/// Spec NodeGetVolumeStats.volume_path: "any valid path where volume was previously staged or
/// published".
async fn stats_staged(c: Ctx) -> Result<()> {
    let v = c.create_volume("stats-staged").await?;
    let staging = c.stage(&v).await?.context("node does not stage")?;
    stats_bytes(&c, &v, &staging).await
}
