//! The berth-csi Node service against REAL Ceph, loop devices and mounts (fuse attacher):
//! the original design's "hello ceph" test (create -> stage -> publish -> write -> unpublish
//! -> unstage -> stage + publish elsewhere -> read -> delete), format-once, block mode, and
//! every call repeated ten times. The spec's error codes and access-mode rules are in
//! `csi_node_rules.rs`, crashes and growth in `csi_node_recovery.rs`. Each case runs its own
//! driver on a shared cluster; the binary fails if anything is left on the host afterwards.

use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_tests::node_fixture::{CLUSTER_ID, NodeEnv, block_cap, case, mount_cap, run_suite};
use berth_tests::sweep;
use tonic::Code;

#[path = "csi_node/encryption.rs"]
mod encryption;
#[path = "csi_node/namespaces.rs"]
mod namespaces;

fn main() {
    run_suite(vec![
        case(
            "hello_ceph_survives_unstage_and_restage_at_a_new_target",
            |e| Box::pin(hello_ceph(e)),
        ),
        case("a_volume_with_data_is_never_reformatted", |e| {
            Box::pin(never_reformat(e))
        }),
        case("block_mode_raw_bytes_survive_restage", |e| {
            Box::pin(block_mode(e))
        }),
        case("every_node_call_repeated_10_times_answers_the_same", |e| {
            Box::pin(idempotent(e))
        }),
        case("rados_namespace_end_to_end", |e| {
            Box::pin(namespaces::rados_namespace_end_to_end(e))
        }),
        case("fscrypt_volume_end_to_end", |e| {
            Box::pin(encryption::fscrypt_volume_end_to_end(e))
        }),
        case("static_volume_is_staged_and_never_deleted", |e| {
            Box::pin(namespaces::static_volume_is_staged_and_never_deleted(e))
        }),
    ])
}

fn code<T>(r: std::result::Result<T, tonic::Status>) -> Code {
    r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

fn sync_write(path: &std::path::Path, data: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

async fn hello_ceph(e: &mut NodeEnv<'_>) -> Result<()> {
    // create -> stage -> publish -> write -> unpublish -> unstage -> stage + publish at a new
    // target -> read -> clean up -> delete, through the driver's own Controller service.
    let created = e
        .csi
        .controller
        .create_volume(berth_csi::csi::CreateVolumeRequest {
            name: "pvc-hello".into(),
            capacity_range: Some(berth_csi::csi::CapacityRange {
                required_bytes: 1 << 30,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![mount_cap("ext4", Mode::SingleNodeWriter)],
            parameters: std::collections::HashMap::from([
                ("clusterID".to_string(), CLUSTER_ID.to_string()),
                ("pool".to_string(), e.cluster.pool.clone()),
                ("mounter".to_string(), "fuse".to_string()),
            ]),
            secrets: e.secrets(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .volume
        .context("no volume")?;
    let id = created.volume_id.clone();
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("hello");
    let pod1 = e.target("pod1");
    let stage = |e: &NodeEnv<'_>| {
        let mut r = e.stage_req(&id, &staging, cap());
        r.volume_context = created.volume_context.clone();
        r
    };
    e.csi.node.node_stage_volume(stage(e)).await?;
    e.publish(&id, &staging, &pod1, cap(), false).await?;
    sync_write(&pod1.join("greeting"), b"hello ceph")?;
    e.unpublish(&id, &pod1).await?;
    ensure!(!pod1.exists(), "unpublish must remove the target");
    e.unstage(&id, &staging).await?;
    ensure!(
        e.leftovers().is_empty(),
        "after unstage: {:?}",
        e.leftovers()
    );
    let pod2 = e.target("pod2");
    e.csi.node.node_stage_volume(stage(e)).await?;
    e.publish(&id, &staging, &pod2, cap(), false).await?;
    let got = std::fs::read_to_string(pod2.join("greeting"))?;
    ensure!(got == "hello ceph", "read {got:?}");
    e.unpublish(&id, &pod2).await?;
    e.unstage(&id, &staging).await?;
    // The node let go of the image: it can be deleted at once (no stale watcher).
    e.csi
        .controller
        .delete_volume(berth_csi::csi::DeleteVolumeRequest {
            volume_id: id.clone(),
            secrets: e.secrets(),
        })
        .await?;
    let image = berth_csi::volume_id::VolumeId::decode(&id)?.image;
    ensure!(!e.cluster.images()?.contains(&image), "{image} still there");
    Ok(())
}

async fn never_reformat(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("keep", "512M")?;
    let staging = e.staging("keep");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    e.stage(&id, &staging, mount_cap("ext4", Mode::SingleNodeWriter))
        .await?;
    sync_write(&staging.join("data.bin"), &data)?;
    e.unstage(&id, &staging).await?;
    // Ask for xfs, then for ext4 with hostile-to-data mkfs options: the data stays.
    for (fs, mkfs) in [("xfs", None), ("ext4", Some("-b 1024"))] {
        let mut req = e.stage_req(&id, &staging, mount_cap(fs, Mode::SingleNodeWriter));
        if let Some(m) = mkfs {
            req.volume_context.insert("mkfsOptions".into(), m.into());
        }
        e.csi.node.node_stage_volume(req).await?;
        let m = sweep::mounts().into_iter().find(|m| m.target == staging);
        ensure!(
            m.as_ref().is_some_and(|m| m.fstype == "ext4"),
            "mounted as {m:?}"
        );
        ensure!(
            std::fs::read(staging.join("data.bin"))? == data,
            "data changed ({fs})"
        );
        e.unstage(&id, &staging).await?;
    }
    Ok(())
}

async fn block_mode(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("raw", "64M")?;
    let cap = || block_cap(Mode::SingleNodeWriter);
    let staging = e.staging("raw");
    let dev = e.target("rawpod");
    let payload: Vec<u8> = (0..65536u32).map(|i| (i * 31 % 256) as u8).collect();
    e.stage(&id, &staging, cap()).await?;
    e.publish(&id, &staging, &dev, cap(), false).await?;
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&dev)?;
        f.seek(SeekFrom::Start(1 << 20))?;
        f.write_all(&payload)?;
        f.sync_all()?;
    }
    let st = e.stats(&id, &dev).await?;
    ensure!(
        st.usage.first().is_some_and(|u| u.total == 64 << 20),
        "block stats {st:?}"
    );
    ensure!(
        st.volume_condition.is_some_and(|c| !c.abnormal),
        "condition"
    );
    e.unpublish(&id, &dev).await?;
    ensure!(!dev.exists(), "block target file must be removed");
    e.unstage(&id, &staging).await?;
    e.stage(&id, &staging, cap()).await?;
    e.publish(&id, &staging, &dev, cap(), true).await?;
    let mut back = vec![0u8; payload.len()];
    {
        let mut f = std::fs::File::open(&dev)?;
        f.seek(SeekFrom::Start(1 << 20))?;
        f.read_exact(&mut back)?;
    }
    ensure!(back == payload, "raw bytes differ after re-stage");
    e.unpublish(&id, &dev).await?;
    e.unstage(&id, &staging).await?;
    Ok(())
}

async fn idempotent(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("ten", "10G")?;
    let cap = || mount_cap("", Mode::SingleNodeWriter);
    let staging = e.staging("ten");
    let target = e.target("tenpod");
    for i in 0..10 {
        e.stage(&id, &staging, cap())
            .await
            .map_err(|x| x.context(format!("stage #{i}")))?;
    }
    for i in 0..10 {
        e.publish(&id, &staging, &target, cap(), false)
            .await
            .map_err(|x| x.context(format!("publish #{i}")))?;
    }
    let mounts = sweep::mounts()
        .into_iter()
        .filter(|m| m.target == target)
        .count();
    ensure!(mounts == 1, "{mounts} mounts stacked at the target");
    for _ in 0..10 {
        let st = e.stats(&id, &target).await?;
        ensure!(st.usage.len() == 2, "bytes + inodes: {st:?}");
        ensure!(st.usage[0].total > 9 << 30, "10 GiB volume: {st:?}");
        ensure!(
            st.volume_condition.as_ref().is_some_and(|c| !c.abnormal),
            "{st:?}"
        );
        let again = e.stage_req(&id, &staging, mount_cap("xfs", Mode::SingleNodeWriter));
        ensure!(code(e.csi.node.node_stage_volume(again).await) == Code::AlreadyExists);
        let ro = e.publish_req(&id, &staging, &target, cap(), true);
        ensure!(code(e.csi.node.node_publish_volume(ro).await) == Code::AlreadyExists);
        let exp = berth_csi::csi::NodeExpandVolumeRequest {
            volume_id: id.clone(),
            volume_path: target.to_string_lossy().into(),
            ..Default::default()
        };
        let r = e.csi.node.node_expand_volume(exp).await?.into_inner();
        ensure!(
            r.capacity_bytes == 10 << 30,
            "expand to the same size: {r:?}"
        );
    }
    for _ in 0..10 {
        e.unpublish(&id, &target).await?;
    }
    for _ in 0..10 {
        e.unstage(&id, &staging).await?;
        let st = e.stats(&id, &staging).await;
        ensure!(
            code(st.map_err(to_status)) == Code::NotFound,
            "stats after unstage"
        );
    }
    Ok(())
}

fn to_status(e: anyhow::Error) -> tonic::Status {
    e.downcast::<tonic::Status>()
        .unwrap_or_else(|e| tonic::Status::unknown(e.to_string()))
}
