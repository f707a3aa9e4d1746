//! Snapshots, clones, and deleting volumes that snapshots depend on.

use anyhow::{Result, ensure};
use berth_csi::csi::{
    CreateSnapshotRequest, DeleteSnapshotRequest, DeleteVolumeRequest, GetSnapshotRequest,
    ListSnapshotsRequest, VolumeContentSource, volume_content_source,
};
use berth_csi::snapshot_id::SnapshotId;
use berth_csi::volume_id::VolumeId;
use berth_tests::ceph::Cluster;
use berth_tests::csi_client::CsiClient;
use tonic::Code;

use super::common::*;

fn snap_req(c: &Cluster, name: &str, source: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        source_volume_id: source.into(),
        name: name.into(),
        secrets: secrets(c),
        ..Default::default()
    }
}

/// `rbd snap ls` of an image of the pool, as JSON text.
fn rbd_snaps(c: &Cluster, image: &str) -> Result<String> {
    c.rbd(&[
        "snap",
        "ls",
        "--format",
        "json",
        &format!("{}/{image}", c.pool),
    ])
}

async fn volume(cl: &mut CsiClient, c: &Cluster, prefix: &str) -> Result<String> {
    Ok(cl
        .controller
        .create_volume(create_req(c, &name(prefix), GIB))
        .await?
        .into_inner()
        .volume
        .unwrap()
        .volume_id)
}

pub fn snapshot_lifecycle(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let (a, b) = (
            volume(&mut cl, c, "snapsrc").await?,
            volume(&mut cl, c, "snapsrc").await?,
        );
        let n = name("snap");
        let mut ids = Vec::new();
        for _ in 0..10 {
            let s = cl
                .controller
                .create_snapshot(snap_req(c, &n, &a))
                .await?
                .into_inner()
                .snapshot
                .unwrap();
            ensure!(
                s.ready_to_use && s.source_volume_id == a && s.size_bytes == GIB,
                "{s:?}"
            );
            ids.push(s.snapshot_id);
        }
        ensure!(ids.iter().all(|i| *i == ids[0]), "snapshot ids differ");
        let sid = SnapshotId::decode(&ids[0])?;
        let snaps = rbd_snaps(c, &sid.image)?;
        ensure!(snaps.contains(&sid.snap), "rbd snapshot missing: {snaps}");
        let refused = [
            (snap_req(c, &n, &b), Code::AlreadyExists, "other source"),
            (snap_req(c, "", &a), Code::InvalidArgument, "no name"),
            (
                snap_req(c, &name("x"), ""),
                Code::InvalidArgument,
                "no source",
            ),
            (
                snap_req(c, &name("x"), "fake-vol-id-1234"),
                Code::NotFound,
                "bad source",
            ),
        ];
        for (req, want, what) in refused {
            let got = code(&cl.controller.create_snapshot(req).await);
            ensure!(got == want, "{what}: {got:?}, expected {want:?}");
        }
        // A second snapshot of b; list by id, by source, all with pagination.
        let s2 = cl
            .controller
            .create_snapshot(snap_req(c, &name("snap"), &b))
            .await?
            .into_inner()
            .snapshot
            .unwrap();
        let list = |req: ListSnapshotsRequest| {
            let mut cl = cl.clone();
            async move {
                cl.controller
                    .list_snapshots(req)
                    .await
                    .map(|r| r.into_inner())
            }
        };
        let by_id = list(ListSnapshotsRequest {
            snapshot_id: ids[0].clone(),
            ..Default::default()
        })
        .await?;
        ensure!(
            by_id.entries.len() == 1
                && by_id.entries[0].snapshot.as_ref().unwrap().snapshot_id == ids[0],
            "by id"
        );
        let none = list(ListSnapshotsRequest {
            snapshot_id: "fake-snap".into(),
            ..Default::default()
        })
        .await?;
        ensure!(none.entries.is_empty(), "unknown id listed");
        let by_src = list(ListSnapshotsRequest {
            source_volume_id: b.clone(),
            ..Default::default()
        })
        .await?;
        ensure!(
            by_src.entries.len() == 1
                && by_src.entries[0].snapshot.as_ref().unwrap().snapshot_id == s2.snapshot_id,
            "by source"
        );
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let r = list(ListSnapshotsRequest {
                max_entries: 1,
                starting_token: token,
                ..Default::default()
            })
            .await?;
            ensure!(r.entries.len() <= 1, "page size");
            all.extend(
                r.entries
                    .into_iter()
                    .map(|e| e.snapshot.unwrap().snapshot_id),
            );
            token = r.next_token;
            if token.is_empty() {
                break;
            }
        }
        ensure!(
            all.contains(&ids[0]) && all.contains(&s2.snapshot_id),
            "paginated list: {all:?}"
        );
        let bad = cl
            .controller
            .list_snapshots(ListSnapshotsRequest {
                starting_token: "zzz".into(),
                ..Default::default()
            })
            .await;
        ensure!(code(&bad) == Code::Aborted, "bad token");
        let got = cl
            .controller
            .get_snapshot(GetSnapshotRequest {
                snapshot_id: ids[0].clone(),
                secrets: secrets(c),
            })
            .await?
            .into_inner();
        ensure!(got.snapshot.unwrap().snapshot_id == ids[0], "get");
        // Delete: repeated, unknown and foreign ids are OK.
        for id in [
            ids[0].clone(),
            ids[0].clone(),
            s2.snapshot_id.clone(),
            "fake-snap-id".into(),
        ] {
            cl.controller
                .delete_snapshot(DeleteSnapshotRequest {
                    snapshot_id: id,
                    secrets: secrets(c),
                })
                .await?;
        }
        ensure!(
            code(
                &cl.controller
                    .delete_snapshot(DeleteSnapshotRequest::default())
                    .await
            ) == Code::InvalidArgument,
            "empty"
        );
        let snaps = rbd_snaps(c, &sid.image)?;
        ensure!(!snaps.contains(&sid.snap), "snapshot not removed: {snaps}");
        let g = cl
            .controller
            .get_snapshot(GetSnapshotRequest {
                snapshot_id: ids[0].clone(),
                secrets: secrets(c),
            })
            .await;
        ensure!(code(&g) == Code::NotFound, "deleted snapshot found");
        for v in [a, b] {
            cl.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: v,
                    secrets: secrets(c),
                })
                .await?;
        }
        Ok(())
    })
}

fn source(snapshot: Option<&str>, volume: Option<&str>) -> Option<VolumeContentSource> {
    use volume_content_source::*;
    Some(VolumeContentSource {
        r#type: Some(match (snapshot, volume) {
            (Some(s), _) => Type::Snapshot(SnapshotSource {
                snapshot_id: s.into(),
            }),
            (_, Some(v)) => Type::Volume(VolumeSource {
                volume_id: v.into(),
            }),
            _ => unreachable!(),
        }),
    })
}

pub fn clones(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let src = volume(&mut cl, c, "clsrc").await?;
        let snap = cl
            .controller
            .create_snapshot(snap_req(c, &name("clsnap"), &src))
            .await?
            .into_inner()
            .snapshot
            .unwrap();
        // From a snapshot, bigger than the source.
        let mut r = create_req(c, &name("fromsnap"), 2 * GIB);
        r.volume_content_source = source(Some(&snap.snapshot_id), None);
        let v1 = cl
            .controller
            .create_volume(r.clone())
            .await?
            .into_inner()
            .volume
            .unwrap();
        let again = cl
            .controller
            .create_volume(r)
            .await?
            .into_inner()
            .volume
            .unwrap();
        ensure!(
            v1.volume_id == again.volume_id && v1.capacity_bytes == 2 * GIB,
            "{v1:?}"
        );
        ensure!(
            v1.content_source == source(Some(&snap.snapshot_id), None),
            "content source echoed"
        );
        let img1 = VolumeId::decode(&v1.volume_id)?.image;
        let i1 = info(c, &img1)?;
        ensure!(
            i1["parent"]["image"] == VolumeId::decode(&src)?.image.as_str(),
            "parent: {i1}"
        );
        ensure!(i1["size"] == 2 * GIB, "clone size {i1}");
        // From a volume (no range: the source's size).
        let mut r = create_req(c, &name("fromvol"), 0);
        r.capacity_range = None;
        r.volume_content_source = source(None, Some(&src));
        let v2 = cl
            .controller
            .create_volume(r)
            .await?
            .into_inner()
            .volume
            .unwrap();
        ensure!(
            v2.capacity_bytes == GIB,
            "clone of volume size {}",
            v2.capacity_bytes
        );
        let i2 = info(c, &VolumeId::decode(&v2.volume_id)?.image)?;
        ensure!(
            i2["parent"]["image"] == VolumeId::decode(&src)?.image.as_str(),
            "parent: {i2}"
        );
        // Clone smaller than its source: OUT_OF_RANGE.
        let mut r = create_req(c, &name("small"), 1 << 20);
        r.capacity_range.as_mut().unwrap().limit_bytes = 1 << 20;
        r.volume_content_source = source(Some(&snap.snapshot_id), None);
        ensure!(
            code(&cl.controller.create_volume(r).await) == Code::OutOfRange,
            "smaller clone"
        );
        for v in [v1.volume_id, v2.volume_id] {
            cl.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: v,
                    secrets: secrets(c),
                })
                .await?;
        }
        cl.controller
            .delete_snapshot(DeleteSnapshotRequest {
                snapshot_id: snap.snapshot_id,
                secrets: secrets(c),
            })
            .await?;
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: src.clone(),
                secrets: secrets(c),
            })
            .await?;
        // DeleteVolume answers once the image is in the trash; the purger may first put the
        // source back while the clones' own purge is pending (they need its snapshot), then
        // removes it once they are gone. Eventually: no image, nothing in the trash.
        let image = VolumeId::decode(&src)?.image;
        let mut left = Vec::new();
        let gone = berth_tests::proc::wait_until(
            "the source image purged",
            std::time::Duration::from_secs(60),
            || {
                left = c.pool_leftovers();
                !left.iter().any(|l| l.contains(image.as_str()))
            },
        );
        ensure!(gone.is_ok(), "source left behind: {left:?}");
        Ok(())
    })
}

pub fn delete_source_with_snapshot(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let src = volume(&mut cl, c, "keep").await?;
        let image = VolumeId::decode(&src)?.image;
        let snap = cl
            .controller
            .create_snapshot(snap_req(c, &name("keepsnap"), &src))
            .await?
            .into_inner()
            .snapshot
            .unwrap();
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: src.clone(),
                secrets: secrets(c),
            })
            .await?;
        ensure!(
            c.images()?.contains(&image),
            "image with snapshots removed: data lost"
        );
        // The volume is gone for CSI, the snapshot still works as a clone source.
        let v = berth_csi::csi::ValidateVolumeCapabilitiesRequest {
            volume_id: src.clone(),
            volume_capabilities: vec![cap(
                false,
                berth_csi::csi::volume_capability::access_mode::Mode::SingleNodeWriter,
            )],
            secrets: secrets(c),
            ..Default::default()
        };
        ensure!(
            code(&cl.controller.validate_volume_capabilities(v).await) == Code::NotFound,
            "deleted volume validates"
        );
        let mut r = create_req(c, &name("afterdel"), GIB);
        r.volume_content_source = source(Some(&snap.snapshot_id), None);
        let clone = cl
            .controller
            .create_volume(r)
            .await?
            .into_inner()
            .volume
            .unwrap();
        // Snapshot deleted: the clone still depends on it (trash namespace); then the clone goes
        // and the source image is finally collected.
        cl.controller
            .delete_snapshot(DeleteSnapshotRequest {
                snapshot_id: snap.snapshot_id,
                secrets: secrets(c),
            })
            .await?;
        ensure!(
            c.images()?.contains(&image),
            "source removed while a clone depends on it"
        );
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: clone.volume_id,
                secrets: secrets(c),
            })
            .await?;
        // The clone's data goes in the background (trash purge); then the source.
        let t0 = std::time::Instant::now();
        while c.images()?.contains(&image) && t0.elapsed() < std::time::Duration::from_secs(30) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        ensure!(!c.images()?.contains(&image), "gone source not collected");
        Ok(())
    })
}

pub fn deep_clone_chain_is_flattened(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let mut chain = vec![volume(&mut cl, c, "chain").await?];
        for _ in 0..9 {
            let mut r = create_req(c, &name("chain"), GIB);
            r.volume_content_source = source(None, Some(chain.last().unwrap()));
            // Depth 9 answers ABORTED while it is flattened in the background.
            let limit = std::time::Duration::from_secs(60);
            chain.push(super::flatten::create_until_ok(&mut cl, r, limit).await?.0);
        }
        let parent_of = |id: &str| -> Result<serde_json::Value> {
            Ok(info(c, &VolumeId::decode(id)?.image)?["parent"].clone())
        };
        ensure!(
            !parent_of(&chain[8])?.is_null(),
            "depth 8 should still be a clone"
        );
        ensure!(
            parent_of(&chain[9])?.is_null(),
            "depth 9 not flattened: {}",
            parent_of(&chain[9])?
        );
        for id in chain.into_iter().rev() {
            cl.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: id,
                    secrets: secrets(c),
                })
                .await?;
        }
        Ok(())
    })
}
