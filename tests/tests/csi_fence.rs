//! Two nodes never mount one single-node volume read-write (issue 11, item 1), on REAL Ceph,
//! rbd-fuse + loop devices and mounts: two node plugins on this host (distinct `--node-id`
//! and `--state-dir`) against one cluster, and a controller (`--mode controller`, as
//! deployed beside the external-attacher).
//!
//! - the node-side guard (no Kubernetes needed): node B's NodeStage of a SINGLE_NODE_WRITER
//!   volume that node A has staged is FAILED_PRECONDITION naming A's client; A's data stays
//!   intact; after A unstages, B stages and reads A's data;
//! - ControllerPublish: A then B is FAILED_PRECONDITION naming A, durable across a controller
//!   restart; after unpublishing A, B succeeds; repeats are idempotent;
//! - MULTI_NODE_MULTI_WRITER block: both nodes are allowed, at the controller and the node.
//!
//! Serial: the cases attach the same kinds of devices and one (the crash) kills an rbd-fuse.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_csi::csi::{
    ControllerPublishVolumeRequest, ControllerPublishVolumeResponse,
    ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse, CreateVolumeRequest,
    DeleteVolumeRequest, DeleteVolumeResponse, VolumeCapability,
};
use berth_tests::ceph::Cluster;
use berth_tests::csi_client::CsiClient;
use berth_tests::driver::Driver;
use berth_tests::node_fixture::{CLUSTER_ID, NodeEnv, block_cap, mount_cap, rbd_fuse_pids};
use berth_tests::suite::{run_with_cluster, trial};
use tonic::Code;

fn main() {
    run_with_cluster(true, |c: &Arc<Cluster>| {
        vec![
            trial("node_b_stage_refused_while_node_a_has_it", c, |c| {
                rt(node_guard(c))
            }),
            trial("node_guard_names_a_dead_clients_lingering_watch", c, |c| {
                rt(dead_client(c))
            }),
            trial("controller_publish_fences_single_node_modes", c, |c| {
                rt(controller_fence(c))
            }),
            trial("multi_node_multi_writer_block_allows_both", c, |c| {
                rt(multi_writer(c))
            }),
        ]
    })
}

fn rt(f: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// A CSI call's reply: the response, or the refusal's status.
type Reply<T> = std::result::Result<tonic::Response<T>, tonic::Status>;

fn code<T>(r: &std::result::Result<T, tonic::Status>) -> Code {
    r.as_ref().map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

/// Two node plugins (mode all, so each also serves a controller) on one host.
async fn two_nodes(c: &Cluster) -> Result<(NodeEnv<'_>, NodeEnv<'_>)> {
    let a = NodeEnv::start_with(c, &["--node-id=node-a"]).await?;
    let b = NodeEnv::start_with(c, &["--node-id=node-b"]).await?;
    Ok((a, b))
}

/// Fail with both drivers' logs and what they left, or check they left nothing.
fn finish(r: Result<()>, envs: &[&NodeEnv<'_>]) -> Result<()> {
    if r.is_err() || std::env::var_os("BERTH_NODE_LOG").is_some() {
        for e in envs {
            eprintln!(
                "---- {} log\n{}",
                e.driver.dir.display(),
                e.driver.log_text()
            );
        }
    }
    r?;
    for e in envs {
        let left = e.leftovers();
        ensure!(left.is_empty(), "left behind: {left:?}");
    }
    Ok(())
}

fn snw() -> VolumeCapability {
    mount_cap("ext4", Mode::SingleNodeWriter)
}

async fn node_guard(c: &Cluster) -> Result<()> {
    let (mut a, mut b) = two_nodes(c).await?;
    let r = node_guard_steps(&mut a, &mut b).await;
    finish(r, &[&a, &b])
}

async fn node_guard_steps(a: &mut NodeEnv<'_>, b: &mut NodeEnv<'_>) -> Result<()> {
    let id = a.image("fence-fs", "256M")?;
    let (sa, ta) = (a.staging("fence"), a.target("fence"));
    let (sb, tb) = (b.staging("fence"), b.target("fence"));
    a.stage(&id, &sa, snw()).await?;
    a.publish(&id, &sa, &ta, snw(), false).await?;
    let payload = b"written on node A, must survive node B";
    {
        use std::io::Write;
        let mut f = std::fs::File::create(ta.join("data"))?;
        f.write_all(payload)?;
        f.sync_all()?;
    }
    for i in 0..3 {
        let r = b
            .csi
            .node
            .node_stage_volume(b.stage_req(&id, &sb, snw()))
            .await;
        ensure!(
            code(&r) == Code::FailedPrecondition,
            "node B's NodeStage #{i} of a volume node A has staged: {:?}",
            r.as_ref().map(|_| ()).map_err(|s| s.message().to_string())
        );
        let msg = r.unwrap_err().message().to_string();
        ensure!(
            msg.contains("127.0.0.1") && msg.contains("watch"),
            "the refusal must say which client holds the image: {msg}"
        );
    }
    ensure!(
        b.leftovers().is_empty(),
        "a refused stage left {:?}",
        b.leftovers()
    );
    ensure!(
        std::fs::read(ta.join("data"))? == payload,
        "node A's data changed"
    );
    a.unpublish(&id, &ta).await?;
    a.unstage(&id, &sa).await?;
    b.stage(&id, &sb, snw()).await?;
    b.publish(&id, &sb, &tb, snw(), false).await?;
    ensure!(
        std::fs::read(tb.join("data"))? == payload,
        "node B does not read node A's data"
    );
    b.unpublish(&id, &tb).await?;
    b.unstage(&id, &sb).await?;
    c_rm(a.cluster, "fence-fs")
}

fn c_rm(c: &Cluster, image: &str) -> Result<()> {
    // A watch of a killed client lingers up to the OSD's 30 s watch timeout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        match c.rbd(&["rm", "--no-progress", &format!("{}/{image}", c.pool)]) {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(500)),
        }
    }
}

/// After rbd-fuse on node A is killed, its watch lingers (~30 s): node B is refused, and the
/// message says the holder may be a dead client and when to retry.
async fn dead_client(c: &Cluster) -> Result<()> {
    let (mut a, mut b) = two_nodes(c).await?;
    let r = async {
        let id = a.image("fence-dead", "128M")?;
        let blk = || block_cap(Mode::SingleNodeWriter);
        let (sa, sb) = (a.staging("dead"), b.staging("dead"));
        a.stage(&id, &sa, blk()).await?;
        for pid in rbd_fuse_pids(&a.driver.dir) {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )?;
        }
        let r = b
            .csi
            .node
            .node_stage_volume(b.stage_req(&id, &sb, blk()))
            .await;
        ensure!(code(&r) == Code::FailedPrecondition, "stage on B: {r:?}");
        let msg = r.unwrap_err().message().to_string();
        ensure!(
            msg.contains("30 s"),
            "the refusal must say a dead client's watch lingers ~30 s: {msg}"
        );
        a.unstage(&id, &sa).await?;
        c_rm(a.cluster, "fence-dead")
    }
    .await;
    finish(r, &[&a, &b])
}

fn params(c: &Cluster) -> HashMap<String, String> {
    HashMap::from([
        ("clusterID".to_string(), CLUSTER_ID.to_string()),
        ("pool".to_string(), c.pool.clone()),
        ("mounter".to_string(), "fuse".to_string()),
    ])
}

fn secrets(c: &Cluster) -> HashMap<String, String> {
    HashMap::from([
        ("userID".to_string(), c.client_id.clone()),
        ("userKey".to_string(), c.client_key.clone()),
    ])
}

async fn controller(c: &Cluster) -> Result<(Driver, CsiClient)> {
    let d = Driver::start(
        &["--mode=controller"],
        Some(&c.csi_cluster_config(CLUSTER_ID)),
    )
    .await?;
    let cl = d.client().await?;
    Ok((d, cl))
}

fn pub_req(
    c: &Cluster,
    id: &str,
    node: &str,
    cap: VolumeCapability,
) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: id.into(),
        node_id: node.into(),
        volume_capability: Some(cap),
        readonly: false,
        secrets: secrets(c),
        volume_context: Default::default(),
    }
}

fn unpub_req(c: &Cluster, id: &str, node: &str) -> ControllerUnpublishVolumeRequest {
    ControllerUnpublishVolumeRequest {
        volume_id: id.into(),
        node_id: node.into(),
        secrets: secrets(c),
    }
}

/// ControllerPublish of `id` to `node` with `cap`, the reply as it came.
async fn publish(
    cl: &mut CsiClient,
    c: &Cluster,
    id: &str,
    node: &str,
    cap: VolumeCapability,
) -> Reply<ControllerPublishVolumeResponse> {
    cl.controller
        .controller_publish_volume(pub_req(c, id, node, cap))
        .await
}

/// ControllerUnpublish of `id` from `node`, the reply as it came.
async fn unpublish(
    cl: &mut CsiClient,
    c: &Cluster,
    id: &str,
    node: &str,
) -> Reply<ControllerUnpublishVolumeResponse> {
    cl.controller
        .controller_unpublish_volume(unpub_req(c, id, node))
        .await
}

/// DeleteVolume of `id`, the reply as it came.
async fn delete(cl: &mut CsiClient, c: &Cluster, id: &str) -> Reply<DeleteVolumeResponse> {
    cl.controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: id.into(),
            secrets: secrets(c),
        })
        .await
}

async fn create(
    cl: &mut CsiClient,
    c: &Cluster,
    name: &str,
    cap: VolumeCapability,
) -> Result<String> {
    Ok(cl
        .controller
        .create_volume(CreateVolumeRequest {
            name: name.into(),
            volume_capabilities: vec![cap],
            parameters: params(c),
            secrets: secrets(c),
            ..Default::default()
        })
        .await?
        .into_inner()
        .volume
        .context("no volume")?
        .volume_id)
}

async fn controller_fence(c: &Cluster) -> Result<()> {
    let (mut d, mut cl) = controller(c).await?;
    let id = create(&mut cl, c, "pvc-fence", snw()).await?;
    for i in 0..10 {
        let r = publish(&mut cl, c, &id, "node-a", snw()).await;
        ensure!(code(&r) == Code::Ok, "publish to node-a #{i}: {r:?}");
    }
    // Durable: a restarted controller still knows node-a holds it.
    d.restart().await?;
    cl = d.client().await?;
    for i in 0..3 {
        let r = publish(&mut cl, c, &id, "node-b", snw()).await;
        ensure!(
            code(&r) == Code::FailedPrecondition,
            "publish to node-b #{i}: {r:?}"
        );
        let msg = r.unwrap_err().message().to_string();
        ensure!(
            msg.contains("node-a"),
            "the refusal must name node-a: {msg}"
        );
    }
    // Same node, another capability: incompatible repeat.
    let other = mount_cap("ext4", Mode::SingleNodeReaderOnly);
    let r = publish(&mut cl, c, &id, "node-a", other).await;
    ensure!(
        code(&r) == Code::AlreadyExists,
        "incompatible repeat: {r:?}"
    );
    // Unpublish from a node that does not hold it: OK, and node-a keeps it.
    let r = unpublish(&mut cl, c, &id, "node-b").await;
    ensure!(code(&r) == Code::Ok, "unpublish node-b: {r:?}");
    let r = publish(&mut cl, c, &id, "node-b", snw()).await;
    ensure!(
        code(&r) == Code::FailedPrecondition,
        "still held by node-a: {r:?}"
    );
    // Still published: not deleted.
    let r = delete(&mut cl, c, &id).await;
    ensure!(
        code(&r) == Code::FailedPrecondition,
        "delete while published: {r:?}"
    );
    for _ in 0..3 {
        let r = unpublish(&mut cl, c, &id, "node-a").await;
        ensure!(code(&r) == Code::Ok, "unpublish node-a: {r:?}");
    }
    let r = publish(&mut cl, c, &id, "node-b", snw()).await;
    ensure!(
        code(&r) == Code::Ok,
        "publish to node-b after node-a let go: {r:?}"
    );
    // Unknown volumes.
    let unknown = berth_csi::volume_id::VolumeId::new(CLUSTER_ID, &c.pool, "csi-vol-nope")
        .encode()
        .unwrap();
    let r = publish(&mut cl, c, &unknown, "node-a", snw()).await;
    ensure!(
        code(&r) == Code::NotFound,
        "publish of an unknown volume: {r:?}"
    );
    let r = unpublish(&mut cl, c, &unknown, "node-a").await;
    ensure!(
        code(&r) == Code::Ok,
        "unpublish of an unknown volume: {r:?}"
    );
    unpublish(&mut cl, c, &id, "node-b").await?;
    delete(&mut cl, c, &id).await?;
    ensure!(c.images()?.is_empty(), "images left: {:?}", c.images()?);
    Ok(())
}

async fn multi_writer(c: &Cluster) -> Result<()> {
    let (_d, mut cl) = controller(c).await?;
    let (mut a, mut b) = two_nodes(c).await?;
    let r = async {
        let cap = || block_cap(Mode::MultiNodeMultiWriter);
        let id = create(&mut cl, c, "pvc-shared", cap()).await?;
        for node in ["node-a", "node-b", "node-a", "node-b"] {
            let r = publish(&mut cl, c, &id, node, cap()).await;
            ensure!(code(&r) == Code::Ok, "publish MNMW to {node}: {r:?}");
        }
        // A single-node request next to multi-node holders is refused.
        let r = publish(&mut cl, c, &id, "node-c", block_cap(Mode::SingleNodeWriter)).await;
        ensure!(
            code(&r) == Code::FailedPrecondition,
            "SNW beside MNMW holders: {r:?}"
        );
        let ctx = HashMap::from([("mounter".to_string(), "fuse".to_string())]);
        let (sa, sb) = (a.staging("shared"), b.staging("shared"));
        let mut ra = a.stage_req(&id, &sa, cap());
        ra.volume_context = ctx.clone();
        a.csi.node.node_stage_volume(ra).await?;
        let mut rb = b.stage_req(&id, &sb, cap());
        rb.volume_context = ctx;
        b.csi
            .node
            .node_stage_volume(rb)
            .await
            .context("MNMW block stage on node B")?;
        a.unstage(&id, &sa).await?;
        b.unstage(&id, &sb).await?;
        for node in ["node-a", "node-b"] {
            unpublish(&mut cl, c, &id, node).await?;
        }
        delete(&mut cl, c, &id).await?;
        Ok(())
    }
    .await;
    finish(r, &[&a, &b])
}
