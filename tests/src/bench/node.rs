//! `bench node`: NodeStageVolume of a fresh 1 GiB ext4 volume (fuse attacher: rbd-fuse +
//! loop + mkfs + mount) beside the same attach + mkfs + mount done by hand, with the same
//! programs and mkfs options, in the same run on a private cluster. Goal: ratio <= 1.2.
//!
//! Runs alternate (berth, by hand, berth, …) so drift in the cluster affects both alike; the
//! by-hand path polls for rbd-fuse's image file as tightly as the driver does.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_csi::csi::volume_capability::access_mode::Mode;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::{Figure, Figures, percentile};
use crate::ceph::Cluster;
use crate::node_fixture::{NodeEnv, mount_cap};
use crate::proc::run as sh;

/// Samples per side; the first of each is a warm-up and not counted. 15 keeps the p50 steady
/// on a busy 2-core machine (a run takes ~0.2 s per side).
const RUNS: usize = 16;

/// Attach + mkfs + mount by hand; returns the elapsed time, then undoes it all.
fn by_hand(c: &Cluster, image: &str, dir: &Path) -> Result<Duration> {
    let fuse = dir.join("fuse");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&fuse)?;
    std::fs::create_dir_all(&mnt)?;
    let file = fuse.join(image);
    let t0 = Instant::now();
    let mut child = Command::new("rbd-fuse")
        .arg("-c")
        .arg(&c.conf)
        .args(["-p", &c.pool, "-r", image, "-f"])
        .arg(&fuse)
        .env("CEPH_ARGS", format!("--id {}", c.client_id))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("rbd-fuse did not expose {image}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let dev = sh(Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&file))?;
    let dev = dev.trim().to_string();
    sh(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-m0",
            "-E",
            "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
        ])
        .arg(&dev))?;
    mount(
        Some(dev.as_str()),
        &mnt,
        Some("ext4"),
        MsFlags::empty(),
        None::<&str>,
    )?;
    let elapsed = t0.elapsed();
    umount2(&mnt, MntFlags::empty())?;
    sh(Command::new("losetup").arg("-d").arg(&dev))?;
    for _ in 0..100 {
        if umount2(&fuse, MntFlags::empty()).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    Ok(elapsed)
}

pub async fn run() -> Result<Figures> {
    let c = Cluster::start()?;
    let mut env = NodeEnv::start(&c).await?;
    let (mut berth, mut hand) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let name = format!("bench-berth-{i}");
        let id = env.image(&name, "1G")?;
        let staging = env.staging(&name);
        let t0 = Instant::now();
        env.stage(&id, &staging, mount_cap("ext4", Mode::SingleNodeWriter))
            .await
            .context("NodeStage")?;
        let t = t0.elapsed();
        env.unstage(&id, &staging).await?;

        let name = format!("bench-hand-{i}");
        env.image(&name, "1G")?;
        let dir = env.driver.dir.join("by-hand").join(&name);
        let h = by_hand(&c, &name, &dir)?;
        if i > 0 {
            berth.push(t.as_secs_f64() * 1e3);
            hand.push(h.as_secs_f64() * 1e3);
        }
    }
    if std::env::var_os("BERTH_BENCH_LOG").is_some() {
        eprintln!("{}", env.driver.log_text());
    }
    let left = env.leftovers();
    if !left.is_empty() {
        bail!("the bench left {left:?}");
    }
    let (b50, h50) = (percentile(&berth, 50.0), percentile(&hand, 50.0));
    let ratio = b50 / h50;
    Ok(vec![
        Figure {
            key: "node_stage_1g_ext4_p50",
            value: b50,
            unit: "ms",
            goal: "",
            met: None,
        },
        Figure {
            key: "node_stage_1g_ext4_max",
            value: percentile(&berth, 100.0),
            unit: "ms",
            goal: "",
            met: None,
        },
        Figure {
            key: "by_hand_attach_mkfs_mount_p50",
            value: h50,
            unit: "ms",
            goal: "",
            met: None,
        },
        Figure {
            key: "by_hand_attach_mkfs_mount_max",
            value: percentile(&hand, 100.0),
            unit: "ms",
            goal: "",
            met: None,
        },
        Figure {
            key: "node_stage_vs_by_hand_ratio",
            value: ratio,
            unit: "x",
            goal: "<= 1.2",
            met: Some(ratio <= 1.2),
        },
    ])
}
