//! The node plugin's hard cases against REAL Ceph (fuse attacher): SIGKILL while a volume is
//! staged and published (with and without its rbd-fuse dying too), online xfs growth, ext4
//! growth refused online and done offline at the next stage, and the cephx key never showing
//! in a log or any process's argv. Nothing may be left on the host afterwards.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_csi::csi::NodeExpandVolumeRequest;
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_tests::node_fixture::{NodeEnv, case, mount_cap, rbd_fuse_pids, run_suite_serial};
use tonic::Code;

fn main() {
    run_suite_serial(vec![
        case(
            "sigkill_and_restart_keep_the_published_volume_working",
            |e| Box::pin(sigkill_restart(e)),
        ),
        case("sigkill_inside_stage_leaves_nothing_behind", |e| {
            Box::pin(sigkill_mid_stage(e))
        }),
        case("xfs_grows_online_with_data_intact", |e| {
            Box::pin(xfs_grow(e))
        }),
        case(
            "ext4_online_grow_refused_then_grown_offline_at_stage",
            |e| Box::pin(ext4_grow(e)),
        ),
        case("cephx_key_never_in_logs_or_argv", |e| {
            Box::pin(key_hidden(e))
        }),
        case("the_attachment_watch_never_makes_an_rpc_abort", |e| {
            Box::pin(watch_never_aborts(e))
        }),
    ])
}

fn sync_write(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// SIGKILL the rbd-fuse serving this driver's volume and wait until it is gone.
fn kill_rbd_fuse(e: &NodeEnv<'_>) -> Result<()> {
    let pids = rbd_fuse_pids(&e.driver.dir);
    ensure!(pids.len() == 1, "one rbd-fuse expected, found {pids:?}");
    for pid in pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )?;
    }
    berth_tests::proc::wait_until("rbd-fuse to die", Duration::from_secs(10), || {
        rbd_fuse_pids(&e.driver.dir).is_empty()
    })
}

async fn sigkill_restart(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("crash", "1G")?;
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("crash");
    let target = e.target("crashpod");
    e.stage(&id, &staging, cap()).await?;
    e.publish(&id, &staging, &target, cap(), false).await?;
    sync_write(&target.join("before"), b"written before the crash")?;

    // 1. The plugin alone dies (a plain host): rbd-fuse lives on, nothing breaks.
    e.driver.kill9();
    sync_write(&target.join("during"), b"written while the plugin was down")?;
    e.driver.restart().await?;
    e.reconnect().await?;
    e.wait_healthy(&id, &target).await?;

    // 2. rbd-fuse dies while the plugin runs (OOM kill): stats report it at once, and the
    //    plugin's watch re-attaches, re-mounts and re-binds without a restart.
    kill_rbd_fuse(e)?;
    let st = e.stats(&id, &target).await?;
    let cond = st.volume_condition.context("no condition")?;
    ensure!(cond.abnormal, "dead rbd-fuse must be abnormal: {cond:?}");
    ensure!(cond.message.contains("rbd-fuse"), "{}", cond.message);
    let t = std::time::Instant::now();
    e.wait_healthy(&id, &target).await?;
    eprintln!("repaired while running in {:.1?}", t.elapsed());
    ensure!(
        e.driver.log_text().contains("watch: repaired"),
        "no watch repair logged"
    );
    sync_write(&target.join("between"), b"written after the repair")?;

    // 3. rbd-fuse dies with the plugin (its container): the restart's recovery repairs.
    kill_rbd_fuse(e)?;
    e.driver.kill9();
    e.driver.restart().await?;
    e.reconnect().await?;
    let restarted = std::time::Instant::now();
    e.wait_healthy(&id, &target).await?;
    eprintln!("recovered in {:.1?} after the restart", restarted.elapsed());
    ensure!(
        e.driver.log_text().contains("recovery: repaired"),
        "recovery did not repair"
    );
    sync_write(&target.join("after"), b"written after recovery")?;
    for (f, want) in [
        ("before", "written before the crash"),
        ("during", "written while the plugin was down"),
        ("between", "written after the repair"),
        ("after", "written after recovery"),
    ] {
        let got = std::fs::read_to_string(target.join(f))?;
        ensure!(got == want, "{f}: {got:?}");
    }
    e.unpublish(&id, &target).await?;
    e.unstage(&id, &staging).await?;
    ensure!(
        e.leftovers().is_empty(),
        "after unstage: {:?}",
        e.leftovers()
    );
    // And the data made it to Ceph: stage again and read.
    e.stage(&id, &staging, cap()).await?;
    let got = std::fs::read_to_string(staging.join("after"))?;
    ensure!(got == "written after recovery", "re-staged: {got:?}");
    e.unstage(&id, &staging).await?;
    Ok(())
}

/// The plugin dies while NodeStage runs (attach or mkfs): after the restart, recovery undoes
/// the unfinished stage, kubelet's retry stages cleanly, and unstage leaves nothing.
async fn sigkill_mid_stage(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("midstage", "1G")?;
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("midstage");
    let req = e.stage_req(&id, &staging, cap());
    let mut node = e.csi.node.clone();
    let call = tokio::spawn(async move { node.node_stage_volume(req).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rbd_fuse_pids(&e.driver.dir).is_empty() {
        ensure!(
            std::time::Instant::now() < deadline,
            "rbd-fuse never started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    e.driver.kill9();
    let _ = call.await;
    e.driver.restart().await?;
    e.reconnect().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let r = e
            .csi
            .node
            .node_stage_volume(e.stage_req(&id, &staging, cap()))
            .await;
        match r {
            Ok(_) => break,
            Err(s) if s.code() == Code::Aborted && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => return Err(s.into()),
        }
    }
    sync_write(&staging.join("ok"), b"staged after a crash")?;
    e.unstage(&id, &staging).await?;
    ensure!(
        e.leftovers().is_empty(),
        "after unstage: {:?}",
        e.leftovers()
    );
    Ok(())
}

fn expand_req(id: &str, path: &std::path::Path, bytes: i64) -> NodeExpandVolumeRequest {
    NodeExpandVolumeRequest {
        volume_id: id.into(),
        volume_path: path.to_string_lossy().into(),
        capacity_range: Some(berth_csi::csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        ..Default::default()
    }
}

fn fs_total(path: &std::path::Path) -> Result<u64> {
    let v = nix::sys::statvfs::statvfs(path)?;
    Ok(v.blocks() * v.fragment_size())
}

async fn xfs_grow(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("growx", "512M")?;
    let cap = || mount_cap("xfs", Mode::SingleNodeWriter);
    let staging = e.staging("growx");
    let target = e.target("growxpod");
    e.stage(&id, &staging, cap()).await?;
    e.publish(&id, &staging, &target, cap(), false).await?;
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    sync_write(&target.join("data.bin"), &data)?;
    let before = fs_total(&target)?;
    e.resize("growx", "1G")?;
    let r = e
        .csi
        .node
        .node_expand_volume(expand_req(&id, &target, 1 << 30))
        .await?
        .into_inner();
    ensure!(r.capacity_bytes == 1 << 30, "capacity {}", r.capacity_bytes);
    let after = fs_total(&target)?;
    ensure!(
        after > before + (400 << 20),
        "xfs did not grow: {before} -> {after}"
    );
    ensure!(
        std::fs::read(target.join("data.bin"))? == data,
        "data changed"
    );
    e.unpublish(&id, &target).await?;
    e.unstage(&id, &staging).await?;
    Ok(())
}

async fn ext4_grow(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("growe", "256M")?;
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("growe");
    e.stage(&id, &staging, cap()).await?;
    sync_write(&staging.join("keep"), b"ext4 data")?;
    let before = fs_total(&staging)?;
    e.resize("growe", "512M")?;
    let r = e
        .csi
        .node
        .node_expand_volume(expand_req(&id, &staging, 512 << 20))
        .await;
    match r {
        // A host with CAP_SYS_RESOURCE grows online.
        Ok(_) => ensure!(fs_total(&staging)? > before, "grew online"),
        Err(s) => {
            ensure!(s.code() == Code::FailedPrecondition, "{s:?}");
            ensure!(s.message().contains("CAP_SYS_RESOURCE"), "{}", s.message());
            e.unstage(&id, &staging).await?;
            e.stage(&id, &staging, cap()).await?;
            let after = fs_total(&staging)?;
            ensure!(
                after > before + (200 << 20),
                "offline grow at stage: {before} -> {after}"
            );
        }
    }
    ensure!(std::fs::read_to_string(staging.join("keep"))? == "ext4 data");
    e.unstage(&id, &staging).await?;
    Ok(())
}

async fn key_hidden(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("secret", "256M")?;
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("secret");
    let target = e.target("secretpod");
    e.stage(&id, &staging, cap()).await?;
    e.publish(&id, &staging, &target, cap(), false).await?;
    // A failing stage with a wrong key must not echo it either.
    let mut bad = e.stage_req(&id, &e.staging("secret2"), cap());
    bad.secrets.insert(
        "userKey".into(),
        "AQBwrongwrongwrongwrongwrongwrongwrong==".into(),
    );
    let err = e.csi.node.node_stage_volume(bad).await.unwrap_err();
    ensure!(!err.message().contains("wrongwrong"), "{}", err.message());
    let key = e.cluster.client_key.clone();
    ensure!(!e.driver.log_text().contains(&key), "key in the driver log");
    for pid in berth_common::procs::pids() {
        let cmd = berth_common::procs::title(pid);
        ensure!(!cmd.contains(&key), "key in argv of {pid}: {cmd}");
        ensure!(!cmd.contains("wrongwrong"), "bad key in argv: {cmd}");
    }
    e.unpublish(&id, &target).await?;
    e.unstage(&id, &staging).await?;
    Ok(())
}

/// The running plugin's attachment watch looks at every staged volume; a healthy one must
/// never make a concurrent RPC answer ABORTED ("operation in progress": a CI run of the
/// conformance suite saw exactly that). With the watch every 20 ms, 3 s of publish +
/// unpublish of a healthy volume see no ABORTED. And the node RPCs are counted in /metrics
/// like the controller's.
async fn watch_never_aborts(e: &mut NodeEnv<'_>) -> Result<()> {
    e.driver.set_env("BERTH_CSI_NODE_WATCH_MS", "20");
    let metrics = format!("127.0.0.1:{}", berth_tests::proc::free_port()?);
    e.driver.set_env("BERTH_CSI_METRICS_ADDRESS", &metrics);
    e.driver.restart().await?;
    e.reconnect().await?;
    let id = e.image("watched", "256M")?;
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("watched");
    let target = e.target("watchedpod");
    e.stage(&id, &staging, cap()).await?;
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let (mut rounds, mut aborted, mut published) = (0, Vec::new(), 0);
    while std::time::Instant::now() < until {
        rounds += 1;
        let req = e.publish_req(&id, &staging, &target, cap(), false);
        if let Err(s) = e.csi.node.node_publish_volume(req).await {
            ensure!(s.code() == Code::Aborted, "NodePublishVolume: {s}");
            aborted.push(format!("publish: {}", s.message()));
            continue;
        }
        published += 1;
        if let Err(err) = e.unpublish(&id, &target).await {
            let s = err
                .downcast_ref::<tonic::Status>()
                .context("not a status")?;
            ensure!(s.code() == Code::Aborted, "NodeUnpublishVolume: {s}");
            aborted.push(format!("unpublish: {}", s.message()));
        }
    }
    // Whatever happened above, leave nothing published.
    for _ in 0..50 {
        if e.unpublish(&id, &target).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    e.unstage(&id, &staging).await?;
    let m = berth_tests::nginx::http_get(&metrics, "localhost", "/metrics")?.body;
    for line in [
        format!("berth_csi_rpc_total{{method=\"NodePublishVolume\",code=\"OK\"}} {published}"),
        "berth_csi_rpc_total{method=\"NodeStageVolume\",code=\"OK\"} 1".to_string(),
        "berth_csi_rpc_total{method=\"NodeUnstageVolume\",code=\"OK\"} 1".to_string(),
        "berth_csi_rpc_duration_seconds_count{method=\"NodeStageVolume\"} 1".to_string(),
    ] {
        ensure!(
            m.lines().any(|l| l == line),
            "/metrics lacks {line:?}:\n{m}"
        );
    }
    ensure!(
        aborted.is_empty(),
        "{} of {rounds} rounds ABORTED, first: {}",
        aborted.len(),
        aborted[0]
    );
    Ok(())
}
