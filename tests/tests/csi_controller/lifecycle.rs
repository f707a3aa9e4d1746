//! Volume lifecycle RPCs and their error codes.

use std::io::Read;
use std::process::{Command, Stdio};

use anyhow::{Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_csi::csi::{
    CapacityRange, ControllerExpandVolumeRequest, DeleteVolumeRequest,
    ValidateVolumeCapabilitiesRequest, VolumeContentSource, volume_content_source,
};
use berth_csi::volume_id::VolumeId;
use berth_tests::ceph::Cluster;
use tonic::Code;

use super::common::*;

pub fn create_delete_idempotent(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let n = name("life");
        let mut ids = Vec::new();
        for _ in 0..10 {
            let v = cl
                .controller
                .create_volume(create_req(c, &n, 10 * GIB))
                .await?
                .into_inner();
            ids.push(v.volume.unwrap());
        }
        let v = &ids[0];
        ensure!(ids.iter().all(|x| x.volume_id == v.volume_id), "ids differ");
        ensure!(
            v.capacity_bytes == 10 * GIB,
            "capacity {}",
            v.capacity_bytes
        );
        ensure!(
            v.volume_context["csi.storage.k8s.io/fstype"] == "ext4",
            "fstype not passed through"
        );
        ensure!(
            v.volume_context["mounter"] == "fuse",
            "mounter not passed through"
        );
        let id = VolumeId::decode(&v.volume_id)?;
        ensure!(id.image.starts_with("csi-vol-"), "{}", id.image);
        ensure!(
            c.images()?.iter().filter(|i| **i == id.image).count() == 1,
            "image missing"
        );
        ensure!(info(c, &id.image)?["size"] == 10 * GIB, "rbd size");
        ensure!(
            info(c, &id.image)?["features"] == serde_json::json!(["layering"]),
            "features"
        );
        // 128-byte names work; a size rounded up to MiB.
        let long = format!("{}{}", n, "x".repeat(128 - n.len()));
        let v2 = cl
            .controller
            .create_volume(create_req(c, &long, 1_000_001))
            .await?
            .into_inner();
        ensure!(
            v2.volume.as_ref().unwrap().capacity_bytes == 1 << 20,
            "rounded to MiB"
        );
        for vol in [v.volume_id.clone(), v2.volume.unwrap().volume_id] {
            for _ in 0..10 {
                cl.controller
                    .delete_volume(DeleteVolumeRequest {
                        volume_id: vol.clone(),
                        secrets: secrets(c),
                    })
                    .await?;
            }
        }
        ensure!(!c.images()?.contains(&id.image), "image left after delete");
        Ok(())
    })
}

pub fn create_errors(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let ctl = &mut cl.controller;
        let n = name("err");
        let mut r = create_req(c, "", GIB);
        ensure!(
            code(&ctl.create_volume(r.clone()).await) == Code::InvalidArgument,
            "no name"
        );
        r = create_req(c, &n, GIB);
        r.volume_capabilities.clear();
        ensure!(
            code(&ctl.create_volume(r).await) == Code::InvalidArgument,
            "no caps"
        );
        let mut r = create_req(c, &n, GIB);
        r.volume_capabilities = vec![cap(false, Mode::MultiNodeMultiWriter)];
        ensure!(
            code(&ctl.create_volume(r).await) == Code::InvalidArgument,
            "mount MNMW"
        );
        let mut r = create_req(c, &n, GIB);
        r.capacity_range = Some(CapacityRange {
            required_bytes: 2 * GIB,
            limit_bytes: GIB,
        });
        ensure!(
            code(&ctl.create_volume(r).await) == Code::OutOfRange,
            "limit < required"
        );
        let mut r = create_req(c, &n, GIB);
        r.secrets.clear();
        ensure!(
            code(&ctl.create_volume(r).await) == Code::Unauthenticated,
            "no secrets"
        );
        let mut r = create_req(c, &n, GIB);
        r.secrets.insert(
            "userKey".into(),
            "AQBwrongwrongwrongwrongwrongwrongwrong0==".into(),
        );
        let res = ctl.create_volume(r).await;
        ensure!(code(&res) == Code::Unauthenticated, "bad key: {res:?}");
        let mut r = create_req(c, &n, GIB);
        r.parameters
            .insert("imageFeatures".into(), "object-map".into());
        ensure!(
            code(&ctl.create_volume(r).await) == Code::InvalidArgument,
            "feature deps"
        );
        let mut r = create_req(c, &n, GIB);
        r.volume_content_source = Some(VolumeContentSource {
            r#type: Some(volume_content_source::Type::Snapshot(
                volume_content_source::SnapshotSource {
                    snapshot_id: "fake-snap-id".into(),
                },
            )),
        });
        ensure!(
            code(&ctl.create_volume(r).await) == Code::NotFound,
            "missing snapshot"
        );
        let mut r = create_req(c, &n, GIB);
        let ghost = VolumeId::new(CLUSTER_ID, &c.pool, "csi-vol-ghost")
            .encode()
            .unwrap();
        r.volume_content_source = Some(VolumeContentSource {
            r#type: Some(volume_content_source::Type::Volume(
                volume_content_source::VolumeSource { volume_id: ghost },
            )),
        });
        ensure!(
            code(&ctl.create_volume(r).await) == Code::NotFound,
            "missing source volume"
        );
        // Now create for real; an incompatible repeat is ALREADY_EXISTS.
        let v = ctl
            .create_volume(create_req(c, &n, GIB))
            .await?
            .into_inner()
            .volume
            .unwrap();
        ensure!(
            code(&ctl.create_volume(create_req(c, &n, 2 * GIB)).await) == Code::AlreadyExists,
            "size"
        );
        let mut r = create_req(c, &n, GIB);
        r.volume_capabilities = vec![cap(true, Mode::SingleNodeWriter)];
        ensure!(
            code(&ctl.create_volume(r).await) == Code::AlreadyExists,
            "caps"
        );
        let mut r = create_req(c, &n, GIB);
        r.parameters
            .insert("imageFeatures".into(), "layering,exclusive-lock".into());
        ensure!(
            code(&ctl.create_volume(r).await) == Code::AlreadyExists,
            "params"
        );
        // Block + MULTI_NODE_MULTI_WRITER is fine.
        let mut r = create_req(c, &name("mnmw"), GIB);
        r.volume_capabilities = vec![cap(true, Mode::MultiNodeMultiWriter)];
        let b = ctl.create_volume(r).await?.into_inner().volume.unwrap();
        for id in [v.volume_id, b.volume_id] {
            ctl.delete_volume(DeleteVolumeRequest {
                volume_id: id,
                secrets: secrets(c),
            })
            .await?;
        }
        Ok(())
    })
}

pub fn delete_cases(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let del = |id: &str| DeleteVolumeRequest {
            volume_id: id.into(),
            secrets: secrets(c),
        };
        let r = cl.controller.delete_volume(del("")).await;
        ensure!(code(&r) == Code::InvalidArgument, "empty id");
        for id in [
            "fake-vol-id-1234".to_string(),
            VolumeId::new(CLUSTER_ID, &c.pool, "csi-vol-never")
                .encode()
                .unwrap(),
            VolumeId::new("other-cluster", &c.pool, "x")
                .encode()
                .unwrap(),
            VolumeId::new(CLUSTER_ID, "no-such-pool", "x")
                .encode()
                .unwrap(),
        ] {
            let r = cl.controller.delete_volume(del(&id)).await;
            ensure!(code(&r) == Code::Ok, "{id}: {r:?}");
        }
        // In use: a watcher on the image (what an attached volume has).
        let v = cl
            .controller
            .create_volume(create_req(c, &name("busy"), GIB))
            .await?
            .into_inner();
        let vid = v.volume.unwrap().volume_id;
        let image = VolumeId::decode(&vid)?.image;
        let mut watch = Command::new("rbd")
            .arg("-c")
            .arg(&c.conf)
            .args([
                "--id",
                &c.client_id,
                "watch",
                &format!("{}/{image}", c.pool),
            ])
            .stdin(Stdio::piped()) // `rbd watch` exits on EOF: keep stdin open
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut buf = [0u8; 8];
        let _ = watch.stdout.as_mut().unwrap().read(&mut buf); // "press enter to exit..."
        let r = cl.controller.delete_volume(del(&vid)).await;
        let _ = watch.kill();
        let _ = watch.wait();
        ensure!(code(&r) == Code::FailedPrecondition, "in use: {r:?}");
        ensure!(c.images()?.contains(&image), "in-use image removed");
        // The watch is gone after a timeout at most; retry until deleted.
        let t0 = std::time::Instant::now();
        loop {
            let r = cl.controller.delete_volume(del(&vid)).await;
            if code(&r) == Code::Ok {
                break;
            }
            ensure!(t0.elapsed().as_secs() < 60, "still in use: {r:?}");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        ensure!(!c.images()?.contains(&image), "image left");
        Ok(())
    })
}

pub fn validate(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let req = |id: &str, caps| ValidateVolumeCapabilitiesRequest {
            volume_id: id.into(),
            volume_capabilities: caps,
            secrets: secrets(c),
            ..Default::default()
        };
        let single = vec![cap(false, Mode::SingleNodeWriter)];
        ensure!(
            code(
                &cl.controller
                    .validate_volume_capabilities(req("", single.clone()))
                    .await
            ) == Code::InvalidArgument,
            "empty id"
        );
        ensure!(
            code(
                &cl.controller
                    .validate_volume_capabilities(req("fake-vol-id-1234", single.clone()))
                    .await
            ) == Code::NotFound,
            "foreign id"
        );
        let ghost = VolumeId::new(CLUSTER_ID, &c.pool, "csi-vol-ghost")
            .encode()
            .unwrap();
        ensure!(
            code(
                &cl.controller
                    .validate_volume_capabilities(req(&ghost, single.clone()))
                    .await
            ) == Code::NotFound,
            "unknown"
        );
        let v = cl
            .controller
            .create_volume(create_req(c, &name("val"), GIB))
            .await?
            .into_inner()
            .volume
            .unwrap();
        ensure!(
            code(
                &cl.controller
                    .validate_volume_capabilities(req(&v.volume_id, vec![]))
                    .await
            ) == Code::InvalidArgument,
            "no caps"
        );
        let ok = cl
            .controller
            .validate_volume_capabilities(req(&v.volume_id, single.clone()))
            .await?
            .into_inner();
        ensure!(
            ok.confirmed
                .is_some_and(|c| c.volume_capabilities == single),
            "not confirmed"
        );
        let block = vec![cap(true, Mode::MultiNodeMultiWriter)];
        ensure!(
            cl.controller
                .validate_volume_capabilities(req(&v.volume_id, block))
                .await?
                .into_inner()
                .confirmed
                .is_some(),
            "block MNMW"
        );
        let no = cl
            .controller
            .validate_volume_capabilities(req(
                &v.volume_id,
                vec![cap(false, Mode::MultiNodeMultiWriter)],
            ))
            .await?
            .into_inner();
        ensure!(
            no.confirmed.is_none() && !no.message.is_empty(),
            "mount MNMW confirmed"
        );
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: v.volume_id.clone(),
                secrets: secrets(c),
            })
            .await?;
        ensure!(
            code(
                &cl.controller
                    .validate_volume_capabilities(req(&v.volume_id, single))
                    .await
            ) == Code::NotFound,
            "deleted"
        );
        Ok(())
    })
}

pub fn expand(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let v = cl
            .controller
            .create_volume(create_req(c, &name("grow"), GIB))
            .await?
            .into_inner()
            .volume
            .unwrap();
        let req = |id: &str, bytes: i64, block: bool| ControllerExpandVolumeRequest {
            volume_id: id.into(),
            capacity_range: Some(CapacityRange {
                required_bytes: bytes,
                limit_bytes: 0,
            }),
            secrets: secrets(c),
            volume_capability: Some(cap(block, Mode::SingleNodeWriter)),
        };
        for _ in 0..3 {
            let r = cl
                .controller
                .controller_expand_volume(req(&v.volume_id, 2 * GIB, false))
                .await?
                .into_inner();
            ensure!(
                r.capacity_bytes == 2 * GIB && r.node_expansion_required,
                "{r:?}"
            );
        }
        let image = VolumeId::decode(&v.volume_id)?.image;
        ensure!(info(c, &image)?["size"] == 2 * GIB, "rbd size after expand");
        let r = cl
            .controller
            .controller_expand_volume(req(&v.volume_id, 3 * GIB, true))
            .await?
            .into_inner();
        ensure!(
            r.capacity_bytes == 3 * GIB && !r.node_expansion_required,
            "block: {r:?}"
        );
        // Smaller request: no shrink, current size answered.
        let r = cl
            .controller
            .controller_expand_volume(req(&v.volume_id, GIB, false))
            .await?
            .into_inner();
        ensure!(r.capacity_bytes == 3 * GIB, "shrunk? {r:?}");
        let mut bad = req(&v.volume_id, 4 * GIB, false);
        bad.capacity_range = Some(CapacityRange {
            required_bytes: 4 * GIB,
            limit_bytes: GIB,
        });
        ensure!(
            code(&cl.controller.controller_expand_volume(bad).await) == Code::OutOfRange,
            "range"
        );
        ensure!(
            code(
                &cl.controller
                    .controller_expand_volume(req("fake-vol-id-1234", GIB, false))
                    .await
            ) == Code::NotFound,
            "unknown"
        );
        ensure!(
            code(
                &cl.controller
                    .controller_expand_volume(req("", GIB, false))
                    .await
            ) == Code::InvalidArgument,
            "empty"
        );
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: v.volume_id,
                secrets: secrets(c),
            })
            .await?;
        Ok(())
    })
}
