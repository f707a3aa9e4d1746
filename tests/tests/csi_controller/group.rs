//! Volume group snapshots (GroupController) on real Ceph: one crash-consistent point across two
//! volumes holding data, each member restored into a new volume and read back, idempotency by
//! name, error codes, and a delete that leaves nothing behind.

use anyhow::{Context, Result, ensure};
use berth_csi::csi::{
    CreateVolumeGroupSnapshotRequest, DeleteSnapshotRequest, DeleteVolumeGroupSnapshotRequest,
    DeleteVolumeRequest, GetVolumeGroupSnapshotRequest, GroupControllerGetCapabilitiesRequest,
    ListSnapshotsRequest, VolumeContentSource, volume_content_source,
};
use berth_csi::group_snapshot_id::GroupSnapshotId;
use berth_csi::snapshot_id::SnapshotId;
use berth_csi::volume_id::VolumeId;
use berth_tests::ceph::Cluster;
use berth_tests::csi_client::CsiClient;
use tonic::Code;

use super::common::*;

const MIB: i64 = 1 << 20;

/// Write `data` at offset 0 of the volume's image (its first RADOS data object).
fn write_head(c: &Cluster, volume_id: &str, data: &[u8]) -> Result<()> {
    let image = VolumeId::decode(volume_id)?.image;
    let prefix = info(c, &image)?["block_name_prefix"]
        .as_str()
        .context("block_name_prefix")?
        .to_string();
    let file = c.dir.join(name("head"));
    std::fs::write(&file, data)?;
    let obj = format!("{prefix}.0000000000000000");
    c.rados(&["-p", &c.pool, "put", &obj, &file.to_string_lossy()])?;
    std::fs::remove_file(&file)?;
    Ok(())
}

/// The first `n` bytes of a volume's image, read by `rbd export` (through any parent).
fn read_head(c: &Cluster, volume_id: &str, n: usize) -> Result<Vec<u8>> {
    let image = VolumeId::decode(volume_id)?.image;
    let file = c.dir.join(name("export"));
    c.rbd(&[
        "export",
        &format!("{}/{image}", c.pool),
        &file.to_string_lossy(),
    ])?;
    let mut data = std::fs::read(&file)?;
    std::fs::remove_file(&file)?;
    data.truncate(n);
    Ok(data)
}

async fn volume(cl: &mut CsiClient, c: &Cluster, source: Option<&str>) -> Result<String> {
    let mut req = create_req(c, &name("grp"), 16 * MIB);
    req.volume_content_source = source.map(|s| VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: s.into(),
            },
        )),
    });
    Ok(cl
        .controller
        .create_volume(req)
        .await?
        .into_inner()
        .volume
        .context("no volume")?
        .volume_id)
}

fn group_req(c: &Cluster, name: &str, sources: &[&str]) -> CreateVolumeGroupSnapshotRequest {
    CreateVolumeGroupSnapshotRequest {
        name: name.into(),
        source_volume_ids: sources.iter().map(|s| s.to_string()).collect(),
        secrets: secrets(c),
        ..Default::default()
    }
}

pub fn group_snapshot_restore_and_delete(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let caps = cl
            .group
            .group_controller_get_capabilities(GroupControllerGetCapabilitiesRequest {})
            .await?
            .into_inner();
        ensure!(caps.capabilities.len() == 1, "{caps:?}");
        let (a, b) = (
            volume(&mut cl, c, None).await?,
            volume(&mut cl, c, None).await?,
        );
        let (da, db) = (
            b"alpha: before the group snapshot",
            b"beta: before the group snapshot!",
        );
        write_head(c, &a, da)?;
        write_head(c, &b, db)?;

        let n = name("gsnap");
        let mut answers = Vec::new();
        for sources in [[&a, &b], [&b, &a]].iter().cycle().take(10) {
            let g = cl
                .group
                .create_volume_group_snapshot(group_req(c, &n, &[sources[0], sources[1]]))
                .await?
                .into_inner()
                .group_snapshot
                .context("no group snapshot")?;
            answers.push(g);
        }
        let g = answers[0].clone();
        ensure!(
            answers.iter().all(|x| *x == g),
            "repeats differ: {answers:?}"
        );
        ensure!(g.ready_to_use && g.snapshots.len() == 2, "{g:?}");
        let gid = GroupSnapshotId::decode(&g.group_snapshot_id)?;
        for s in &g.snapshots {
            ensure!(
                s.group_snapshot_id == g.group_snapshot_id && s.ready_to_use,
                "{s:?}"
            );
            ensure!(s.size_bytes == 16 * MIB, "{s:?}");
        }
        let member = |src: &str| {
            g.snapshots
                .iter()
                .find(|s| s.source_volume_id == src)
                .map(|s| s.snapshot_id.clone())
                .context("no member for a source")
        };
        let (sa, sb) = (member(&a)?, member(&b)?);
        // Written after the group snapshot: not in what it restores.
        write_head(c, &a, b"alpha: AFTER the group snapshot!")?;

        // Nothing of the group stays on the sources: no group, no snapshot, no membership.
        let groups = c.rbd(&["group", "ls", "--format", "json", &c.pool])?;
        ensure!(!groups.contains(&gid.id), "transient group left: {groups}");
        for v in [&a, &b] {
            let image = VolumeId::decode(v)?.image;
            let snaps = c.rbd(&[
                "snap",
                "ls",
                "--all",
                "--format",
                "json",
                &format!("{}/{image}", c.pool),
            ])?;
            ensure!(snaps.trim() == "[]", "{image} keeps snapshots: {snaps}");
        }

        // Error codes.
        let other = volume(&mut cl, c, None).await?;
        let r = cl
            .group
            .create_volume_group_snapshot(group_req(c, &n, &[&a, &other]))
            .await;
        ensure!(code(&r) == Code::AlreadyExists, "other sources: {r:?}");
        let r = cl
            .group
            .create_volume_group_snapshot(group_req(c, "", &[&a]))
            .await;
        ensure!(code(&r) == Code::InvalidArgument, "no name: {r:?}");
        let r = cl
            .group
            .create_volume_group_snapshot(group_req(c, &name("g"), &["fake-vol-id-1234"]))
            .await;
        ensure!(code(&r) == Code::NotFound, "unknown source: {r:?}");
        let gcl = cl.clone();
        let get = |id: String| {
            let (mut cl, secrets) = (gcl.clone(), secrets(c));
            async move {
                cl.group
                    .get_volume_group_snapshot(GetVolumeGroupSnapshotRequest {
                        group_snapshot_id: id,
                        secrets,
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().group_snapshot)
            }
        };
        ensure!(
            get(g.group_snapshot_id.clone()).await? == Some(g.clone()),
            "get"
        );
        let unknown = GroupSnapshotId::new(&gid.cluster_id, &gid.pool, "0123456789abcdef")
            .encode()
            .unwrap();
        for id in [unknown.clone(), "fake-group-id".into()] {
            let r = get(id.clone()).await;
            ensure!(code(&r) == Code::NotFound, "get {id}: {r:?}");
        }
        // A member is listed by id with its group; it is not deleted on its own.
        let listed = cl
            .controller
            .list_snapshots(ListSnapshotsRequest {
                snapshot_id: sa.clone(),
                secrets: secrets(c),
                ..Default::default()
            })
            .await?
            .into_inner();
        ensure!(
            listed.entries.len() == 1
                && listed.entries[0]
                    .snapshot
                    .as_ref()
                    .unwrap()
                    .group_snapshot_id
                    == g.group_snapshot_id,
            "{listed:?}"
        );
        let r = cl
            .controller
            .delete_snapshot(DeleteSnapshotRequest {
                snapshot_id: sa.clone(),
                secrets: secrets(c),
            })
            .await;
        ensure!(code(&r) == Code::FailedPrecondition, "member delete: {r:?}");

        // Restore each member into a new volume and read the data back.
        let (ra, rb) = (
            volume(&mut cl, c, Some(&sa)).await?,
            volume(&mut cl, c, Some(&sb)).await?,
        );
        ensure!(
            read_head(c, &ra, da.len())? == da,
            "member a restored other data"
        );
        ensure!(
            read_head(c, &rb, db.len())? == db,
            "member b restored other data"
        );

        // Delete: idempotent, unknown ids OK, restored volumes keep their data.
        for id in [
            g.group_snapshot_id.clone(),
            g.group_snapshot_id.clone(),
            unknown,
        ] {
            cl.group
                .delete_volume_group_snapshot(DeleteVolumeGroupSnapshotRequest {
                    group_snapshot_id: id,
                    secrets: secrets(c),
                    ..Default::default()
                })
                .await?;
        }
        let r = get(g.group_snapshot_id.clone()).await;
        ensure!(code(&r) == Code::NotFound, "get after delete: {r:?}");
        ensure!(
            read_head(c, &ra, da.len())? == da,
            "restored a lost its data"
        );
        for v in [&ra, &rb, &a, &b, &other] {
            cl.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: v.clone(),
                    secrets: secrets(c),
                })
                .await?;
        }
        // The member images go once their clones went (trash, purge); the journal is empty.
        let members: Vec<String> = [&sa, &sb]
            .iter()
            .map(|s| SnapshotId::decode(s).map(|s| s.image))
            .collect::<Result<_, _>>()?;
        let mut left = Vec::new();
        let gone = berth_tests::proc::wait_until(
            "the member images purged",
            std::time::Duration::from_secs(60),
            || {
                left = c.images().unwrap_or_default();
                left.extend(
                    c.rbd(&["trash", "ls", &c.pool])
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_string),
                );
                left.retain(|i| members.iter().any(|m| i.contains(m.as_str())));
                left.is_empty()
            },
        );
        ensure!(gone.is_ok(), "member images left: {left:?}");
        let keys = c
            .rados(&["-p", &c.pool, "listomapkeys", "csi.groups.berth"])
            .unwrap_or_default();
        ensure!(!keys.contains(&gid.id), "group journal keeps {keys}");
        let keys = c
            .rados(&["-p", &c.pool, "listomapkeys", "csi.snapshots.berth"])
            .unwrap_or_default();
        ensure!(
            !members.iter().any(|m| keys.contains(m.as_str())),
            "snapshot journal keeps members: {keys}"
        );
        Ok(())
    })
}
