//! RADOS namespaces end to end: a cluster config with `"rbd": {"radosNamespace": …}` puts
//! every volume, snapshot, clone and journal key in that namespace, and a client whose caps
//! are limited to it creates, stages (the node's rbd-fuse, image-meta and `rbd status` calls),
//! snapshots, clones, takes a volume group snapshot (restored and read through the node path)
//! and deletes.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_csi::csi::{
    CapacityRange, CreateSnapshotRequest, CreateVolumeGroupSnapshotRequest, CreateVolumeRequest,
    DeleteSnapshotRequest, DeleteVolumeGroupSnapshotRequest, DeleteVolumeRequest,
    VolumeContentSource, volume_content_source,
};
use berth_tests::ceph::Cluster;
use berth_tests::driver::Driver;
use berth_tests::node_fixture::{CLUSTER_ID, NodeEnv, mount_cap};

/// A RADOS namespace and a client limited to it; Drop removes what is left in it, the
/// namespace and the client.
pub struct Namespace<'a> {
    cluster: &'a Cluster,
    pub name: String,
    pub user: String,
    pub key: String,
}

impl<'a> Namespace<'a> {
    pub fn create(cluster: &'a Cluster, name: &str) -> Result<Namespace<'a>> {
        let user = format!("{name}-user");
        let mut ns = Namespace {
            cluster,
            name: name.to_string(),
            user: user.clone(),
            key: String::new(),
        };
        let c = cluster;
        c.ceph(&[
            "osd",
            "pool",
            "application",
            "enable",
            &c.pool,
            "rbd",
            "--yes-i-really-mean-it",
        ])
        .ok();
        c.rbd(&["namespace", "create", &format!("{}/{name}", c.pool)])?;
        c.ceph(&[
            "auth",
            "get-or-create",
            &format!("client.{user}"),
            "mon",
            "profile rbd",
            "osd",
            &format!("profile rbd pool={} namespace={name}", c.pool),
        ])?;
        ns.key = c
            .ceph(&["auth", "print-key", &format!("client.{user}")])?
            .trim()
            .to_string();
        Ok(ns)
    }

    /// `pool/namespace`, the CLI's spec prefix.
    pub fn spec(&self) -> String {
        format!("{}/{}", self.cluster.pool, self.name)
    }

    pub fn images(&self) -> Result<Vec<String>> {
        let out = self
            .cluster
            .rbd(&["ls", "--format", "json", &self.spec()])?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Keys of the driver's volume and snapshot journals in the namespace.
    pub fn journal_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for obj in [
            "csi.volumes.berth",
            "csi.snapshots.berth",
            "csi.groups.berth",
        ] {
            if let Ok(s) = self.cluster.rados(&[
                "-p",
                &self.cluster.pool,
                "--namespace",
                &self.name,
                "listomapkeys",
                obj,
            ]) {
                keys.extend(s.lines().map(|l| format!("{obj}: {l}")));
            }
        }
        keys
    }

    pub fn secrets(&self) -> HashMap<String, String> {
        HashMap::from([
            ("userID".to_string(), self.user.clone()),
            ("userKey".to_string(), self.key.clone()),
        ])
    }

    /// The cluster config naming this namespace.
    pub fn cluster_config(&self) -> String {
        serde_json::json!([{
            "clusterID": CLUSTER_ID,
            "monitors": [self.cluster.mon_addr],
            "rbd": {"radosNamespace": self.name},
        }])
        .to_string()
    }
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        let c = self.cluster;
        for image in self.images().unwrap_or_default() {
            let spec = format!("{}/{image}", self.spec());
            let _ = c.rbd(&["snap", "purge", "--no-progress", &spec]);
            let _ = c.rbd(&["rm", "--no-progress", &spec]);
        }
        let _ = c.rbd(&["trash", "purge", &self.spec()]);
        for obj in [
            "csi.volumes.berth",
            "csi.snapshots.berth",
            "csi.groups.berth",
        ] {
            let _ = c.rados(&["-p", &c.pool, "--namespace", &self.name, "rm", obj]);
        }
        let _ = c.rbd(&["namespace", "remove", &self.spec()]);
        let _ = c.ceph(&["auth", "del", &format!("client.{}", self.user)]);
    }
}

pub async fn rados_namespace_end_to_end(e: &mut NodeEnv<'_>) -> Result<()> {
    let ns = Namespace::create(e.cluster, &format!("ns{}", std::process::id()))?;
    // This case's driver reads the namespace from its cluster config.
    let driver = Driver::start(&[], Some(&ns.cluster_config())).await?;
    e.csi = driver.client().await?;
    // The case's first driver never did anything: no need to wait for a clean exit.
    std::mem::replace(&mut e.driver, driver).kill9();
    let params = HashMap::from([
        ("clusterID".to_string(), CLUSTER_ID.to_string()),
        ("pool".to_string(), e.cluster.pool.clone()),
        ("mounter".to_string(), "fuse".to_string()),
    ]);
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let create = |name: &str, source: Option<VolumeContentSource>| CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: 64 << 20,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![cap()],
        parameters: params.clone(),
        secrets: ns.secrets(),
        volume_content_source: source,
        ..Default::default()
    };
    let vol = e
        .csi
        .controller
        .create_volume(create("pvc-ns", None))
        .await?
        .into_inner()
        .volume
        .context("no volume")?;
    let in_ns = ns.images()?;
    ensure!(
        in_ns.len() == 1,
        "images in namespace {}: {in_ns:?}; in the default namespace: {:?}",
        ns.name,
        e.cluster.images()?
    );
    ensure!(
        !e.cluster.images()?.contains(&in_ns[0]),
        "{} also in the default namespace",
        in_ns[0]
    );

    // The publish record (the attacher's) lives in the namespace's journal too.
    let publish = berth_csi::csi::ControllerPublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        node_id: "berth-test-node".into(),
        volume_capability: Some(cap()),
        secrets: ns.secrets(),
        ..Default::default()
    };
    e.csi.controller.controller_publish_volume(publish).await?;
    let keys = ns.journal_keys();
    ensure!(
        keys.iter()
            .any(|k| k.ends_with(&format!("pub/{}", in_ns[0]))),
        "no publish record in the namespace: {keys:?}"
    );
    e.csi
        .controller
        .controller_unpublish_volume(berth_csi::csi::ControllerUnpublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            node_id: "berth-test-node".into(),
            secrets: ns.secrets(),
        })
        .await?;

    // Stage with the namespace-limited client: rbd-fuse, the format mark, `rbd status`.
    let staging = e.staging("ns");
    let mut stage = e.stage_req(&vol.volume_id, &staging, cap());
    stage.secrets = ns.secrets();
    stage.volume_context = vol.volume_context.clone();
    e.csi.node.node_stage_volume(stage.clone()).await?;
    std::fs::write(staging.join("hello"), b"namespaced")?;
    e.unstage(&vol.volume_id, &staging).await?;
    let meta = e.cluster.rbd(&[
        "image-meta",
        "get",
        &format!("{}/{}", ns.spec(), in_ns[0]),
        "berth.dev/formatted",
    ])?;
    ensure!(meta.trim() == "ext4", "format mark {meta:?}");

    // Snapshot and clone stay in the namespace.
    let snap = e
        .csi
        .controller
        .create_snapshot(CreateSnapshotRequest {
            source_volume_id: vol.volume_id.clone(),
            name: "snap-ns".into(),
            secrets: ns.secrets(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .snapshot
        .context("no snapshot")?;
    let source = VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: snap.snapshot_id.clone(),
            },
        )),
    };
    let clone = e
        .csi
        .controller
        .create_volume(create("pvc-ns-clone", Some(source)))
        .await?
        .into_inner()
        .volume
        .context("no clone")?;
    ensure!(ns.images()?.len() == 2, "clone: {:?}", ns.images()?);
    let mut stage = e.stage_req(&clone.volume_id, &staging, cap());
    stage.secrets = ns.secrets();
    stage.volume_context = clone.volume_context.clone();
    e.csi.node.node_stage_volume(stage).await?;
    let got = std::fs::read(staging.join("hello"))?;
    ensure!(got == b"namespaced", "clone read {got:?}");
    e.unstage(&clone.volume_id, &staging).await?;

    // A volume group snapshot stays in the namespace too (its ID says which); its member is
    // restored and read through the node path.
    let group = e
        .csi
        .group
        .create_volume_group_snapshot(CreateVolumeGroupSnapshotRequest {
            name: "group-ns".into(),
            source_volume_ids: vec![vol.volume_id.clone()],
            secrets: ns.secrets(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .group_snapshot
        .context("no group snapshot")?;
    ensure!(
        group.group_snapshot_id.starts_with("g002-") && group.snapshots.len() == 1,
        "{group:?}"
    );
    let member = VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: group.snapshots[0].snapshot_id.clone(),
            },
        )),
    };
    let restored = e
        .csi
        .controller
        .create_volume(create("pvc-ns-group", Some(member)))
        .await?
        .into_inner()
        .volume
        .context("no restored volume")?;
    let mut stage = e.stage_req(&restored.volume_id, &staging, cap());
    stage.secrets = ns.secrets();
    stage.volume_context = restored.volume_context.clone();
    e.csi.node.node_stage_volume(stage).await?;
    let got = std::fs::read(staging.join("hello"))?;
    ensure!(got == b"namespaced", "group member read {got:?}");
    e.unstage(&restored.volume_id, &staging).await?;
    e.csi
        .controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: restored.volume_id.clone(),
            secrets: ns.secrets(),
        })
        .await?;
    e.csi
        .group
        .delete_volume_group_snapshot(DeleteVolumeGroupSnapshotRequest {
            group_snapshot_id: group.group_snapshot_id.clone(),
            secrets: ns.secrets(),
            ..Default::default()
        })
        .await?;

    // Delete all: nothing left in the namespace (images, journal).
    for id in [&clone.volume_id, &vol.volume_id] {
        e.csi
            .controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: id.clone(),
                secrets: ns.secrets(),
            })
            .await?;
    }
    e.csi
        .controller
        .delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: snap.snapshot_id,
            secrets: ns.secrets(),
        })
        .await?;
    // Images whose clones went to the trash leave once the purger removed those.
    let _ = berth_tests::proc::wait_until(
        "an empty namespace",
        std::time::Duration::from_secs(30),
        || ns.images().is_ok_and(|i| i.is_empty()),
    );
    ensure!(ns.images()?.is_empty(), "left: {:?}", ns.images()?);
    ensure!(
        ns.journal_keys().is_empty(),
        "left: {:?}",
        ns.journal_keys()
    );
    Ok(())
}

/// An image made outside berth (as an operator would) and removed at the end.
struct ForeignImage<'a> {
    cluster: &'a Cluster,
    spec: String,
}

impl Drop for ForeignImage<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.rbd(&["rm", "--no-progress", &self.spec]);
    }
}

/// A static volume (ceph-csi's `staticVolume: "true"` + `imageName`/`pool` in a hand-written
/// PV's volumeAttributes, any volumeHandle): staged on the real node path, its data kept
/// across stages, and DeleteVolume answers OK without touching it.
pub async fn static_volume_is_staged_and_never_deleted(e: &mut NodeEnv<'_>) -> Result<()> {
    let c = e.cluster;
    let image = format!("static-{}", std::process::id());
    c.rbd(&["create", "--size", "64M", &format!("{}/{image}", c.pool)])?;
    let _img = ForeignImage {
        cluster: c,
        spec: format!("{}/{image}", c.pool),
    };
    let handle = "pv-static-handle";
    let ctx = HashMap::from([
        ("staticVolume".to_string(), "true".to_string()),
        ("clusterID".to_string(), CLUSTER_ID.to_string()),
        ("pool".to_string(), c.pool.clone()),
        ("imageName".to_string(), image.clone()),
        ("mounter".to_string(), "fuse".to_string()),
    ]);
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("static");
    let pod = e.target("static-pod");
    let mut stage = e.stage_req(handle, &staging, cap());
    stage.volume_context = ctx.clone();
    e.csi.node.node_stage_volume(stage.clone()).await?;
    let mut publish = e.publish_req(handle, &staging, &pod, cap(), false);
    publish.volume_context = ctx.clone();
    e.csi.node.node_publish_volume(publish).await?;
    std::fs::write(pod.join("kept"), b"static data")?;
    e.unpublish(handle, &pod).await?;
    e.unstage(handle, &staging).await?;
    e.csi.node.node_stage_volume(stage).await?;
    let got = std::fs::read(staging.join("kept"))?;
    ensure!(got == b"static data", "after restage: {got:?}");
    e.unstage(handle, &staging).await?;

    // The attacher publishes it (no record: ControllerUnpublish could not find it again).
    e.csi
        .controller
        .controller_publish_volume(berth_csi::csi::ControllerPublishVolumeRequest {
            volume_id: handle.into(),
            node_id: "berth-test-node".into(),
            volume_capability: Some(cap()),
            secrets: e.secrets(),
            volume_context: ctx.clone(),
            ..Default::default()
        })
        .await?;
    e.csi
        .controller
        .controller_unpublish_volume(berth_csi::csi::ControllerUnpublishVolumeRequest {
            volume_id: handle.into(),
            node_id: "berth-test-node".into(),
            secrets: e.secrets(),
        })
        .await?;
    // A PV with reclaimPolicy Delete: OK, and the image stays.
    e.csi
        .controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: handle.into(),
            secrets: e.secrets(),
        })
        .await?;
    ensure!(c.images()?.contains(&image), "{image} was deleted");
    ensure!(
        e.image_meta(&image)?["berth.dev/formatted"] == "ext4",
        "meta {:?}",
        e.image_meta(&image)?
    );
    // A broken static context is INVALID_ARGUMENT, naming the key.
    let mut bad = e.stage_req(handle, &staging, cap());
    bad.volume_context = ctx.clone();
    bad.volume_context.insert("imageName".into(), "../x".into());
    let err = e.csi.node.node_stage_volume(bad).await.unwrap_err();
    ensure!(
        err.code() == tonic::Code::InvalidArgument && err.message().contains("imageName"),
        "{err:?}"
    );
    Ok(())
}
