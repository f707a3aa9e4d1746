//! The real test environment works: Ceph (as the restricted client), rbd-fuse + loop + ext4,
//! nginx, the berth-csi binary over its socket, and the leftover sweep.
//! One cluster is shared by the cases of this binary and removed before it exits.

use anyhow::{Context, Result, ensure};
use berth_tests::ceph::Cluster;
use berth_tests::driver::Driver;
use berth_tests::fuse::{Attachment, MountGuard};
use berth_tests::nginx::{Nginx, http_get};
use berth_tests::proc::run;
use berth_tests::suite::{plain, run_with_cluster, trial};
use berth_tests::sweep;
use std::process::Command;

fn main() {
    run_with_cluster(false, |c| {
        vec![
            trial(
                "ceph_image_lifecycle_as_restricted_client",
                c,
                ceph_image_lifecycle,
            ),
            trial("fuse_loop_ext4_data_survives_reattach", c, fuse_reattach),
            trial(
                "a_detached_attachment_leaves_no_watch",
                c,
                detach_leaves_no_watch,
            ),
            plain("nginx_serves_reloads_serves", nginx_reload),
            plain("berth_csi_binary_answers_identity", csi_identity),
            plain("sweep_removes_leftovers_of_dead_runs", sweep_leftovers),
        ]
    })
}

fn ceph_image_lifecycle(c: &Cluster) -> Result<()> {
    let name = "env-lifecycle";
    c.rbd(&["create", "--size", "64M", &format!("{}/{name}", c.pool)])?;
    ensure!(c.images()?.contains(&name.to_string()), "image not listed");
    let info: serde_json::Value = serde_json::from_str(&c.rbd(&[
        "info",
        "--format",
        "json",
        &format!("{}/{name}", c.pool),
    ])?)?;
    ensure!(info["size"] == 64 << 20, "size {}", info["size"]);
    c.rbd(&["rm", "--no-progress", &format!("{}/{name}", c.pool)])?;
    ensure!(
        !c.images()?.contains(&name.to_string()),
        "image still listed"
    );
    // The restricted client cannot do admin things.
    ensure!(
        run(Command::new("ceph").arg("-c").arg(&c.conf).args([
            "--id",
            &c.client_id,
            "osd",
            "pool",
            "create",
            "forbidden",
            "8"
        ]))
        .is_err(),
        "client.csi must not create pools"
    );
    Ok(())
}

fn fuse_reattach(c: &Cluster) -> Result<()> {
    let image = "env-fuse";
    c.rbd(&["create", "--size", "256M", &format!("{}/{image}", c.pool)])?;
    let mnt = c.dir.join("mnt-env-fuse");
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    {
        let att = Attachment::attach(c, image)?;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-E", "nodiscard"])
            .arg(&att.device))?;
        let m = MountGuard::mount(&att.device, &mnt)?;
        std::fs::write(m.target.join("data.bin"), &payload)?;
        drop(m);
        att.detach()?;
    }
    ensure!(
        !sweep::mounts().iter().any(|m| m.target == mnt),
        "still mounted after detach"
    );
    {
        let att = Attachment::attach(c, image)?;
        let m = MountGuard::mount(&att.device, &mnt)?;
        let back = std::fs::read(m.target.join("data.bin")).context("read back")?;
        ensure!(back == payload, "data differs after re-attach");
    }
    ensure!(
        !sweep::loop_devices()
            .iter()
            .any(|(_, back)| back.starts_with(&c.dir)),
        "loop device left attached"
    );
    c.rbd(&["rm", "--no-progress", &format!("{}/{image}", c.pool)])?;
    Ok(())
}

/// The harness's rbd-fuse closes the image when detached: a killed rbd-fuse would keep its
/// watch for the OSD's 30 s, and berth-csi's node fence would refuse the next stage.
fn detach_leaves_no_watch(c: &Cluster) -> Result<()> {
    let image = "env-watch";
    let spec = format!("{}/{image}", c.pool);
    c.rbd(&["create", "--size", "64M", &spec])?;
    for round in 0..5 {
        Attachment::attach(c, image)?.detach()?;
        let status: serde_json::Value =
            serde_json::from_str(&c.rbd(&["status", "--format", "json", &spec])?)?;
        let watchers = status["watchers"].as_array().map_or(0, Vec::len);
        ensure!(
            watchers == 0,
            "round {round}: {watchers} watcher(s) right after detach: {status}"
        );
    }
    c.rbd(&["rm", "--no-progress", &spec])?;
    Ok(())
}

fn nginx_reload() -> Result<()> {
    let nginx = Nginx::start_default()?;
    let r = http_get(&nginx.addr(), "example.test", "/")?;
    ensure!(r.status == 200 && r.body == "ok\n", "first GET: {r:?}");
    let conf = std::fs::read_to_string(&nginx.conf)?.replace("\"ok\\n\"", "\"reloaded\\n\"");
    std::fs::write(&nginx.conf, conf)?;
    nginx.reload()?;
    berth_tests::proc::wait_until(
        "the reloaded config",
        std::time::Duration::from_secs(10),
        || http_get(&nginx.addr(), "example.test", "/").is_ok_and(|r| r.body == "reloaded\n"),
    )?;
    let r = http_get(&nginx.addr(), "example.test", "/")?;
    ensure!(r.status == 200, "after reload: {r:?}");
    Ok(())
}

fn csi_identity() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut driver = Driver::start(&["--driver-name=env.csi.berth.dev"], None).await?;
        let mut c = driver.client().await?;
        let info = c
            .identity
            .get_plugin_info(berth_csi::csi::GetPluginInfoRequest {})
            .await?
            .into_inner();
        ensure!(info.name == "env.csi.berth.dev", "name {}", info.name);
        ensure!(!info.vendor_version.is_empty(), "no version");
        let probe = c
            .identity
            .probe(berth_csi::csi::ProbeRequest {})
            .await?
            .into_inner();
        ensure!(probe.ready == Some(true), "probe {probe:?}");
        ensure!(driver.terminate()?, "berth-csi did not exit 0 on SIGTERM");
        ensure!(!driver.socket.exists(), "socket not removed on shutdown");
        Ok(())
    })
}

/// A "crashed run": a directory named after a dead pid, with a mount and a process in it.
fn sweep_leftovers() -> Result<()> {
    // A pid that is certainly dead: a child that has exited and been reaped.
    let dead = Command::new("true").spawn()?;
    let pid = dead.id();
    let mut dead = dead;
    dead.wait()?;
    let dir = berth_tests::state_root().join(format!("crashed-{pid}-0"));
    std::fs::create_dir_all(dir.join("mnt"))?;
    run(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(dir.join("mnt")))?;
    // One process whose command line names the directory and holds a file in it, like a
    // leftover daemon (no shell: a shell's children would not name the directory). Its output
    // goes nowhere, so even a leaked one could not hold the test runner's pipe open.
    std::fs::write(dir.join("marker"), "")?;
    let mut holder = Command::new("tail")
        .arg("-f")
        .arg(dir.join("marker"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    sweep::leftovers();
    ensure!(!dir.exists(), "leftover dir still there");
    ensure!(
        !sweep::mounts().iter().any(|m| m.target.starts_with(&dir)),
        "leftover mount still there"
    );
    let status = holder.wait()?;
    ensure!(!status.success(), "leftover process was not killed");
    Ok(())
}
