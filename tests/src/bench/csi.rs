//! `bench csi`: CreateVolume latency beside the `rbd create` CLI in the same run, a burst of 100
//! parallel CreateVolume calls, and berth-csi's memory per mode (RSS, PSS, private: node idle,
//! controller idle, burst peak), on a private cluster; then the thousand-volume run
//! ([`super::csi_scale`]).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Result, ensure};
use berth_csi::csi::volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode};
use berth_csi::csi::{CapacityRange, CreateVolumeRequest, VolumeCapability};

use super::memory::{self, Memory};
use super::{Figures, figure, percentile};
use crate::ceph::Cluster;
use crate::driver::Driver;

const SEQUENTIAL: usize = 50;
const CLI_RUNS: usize = 15;
const BURST: usize = 100;

pub(super) fn request(c: &Cluster, name: &str) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: 1 << 30,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume::default())),
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
        }],
        parameters: HashMap::from([
            ("clusterID".into(), "bench".into()),
            ("pool".into(), c.pool.clone()),
        ]),
        secrets: HashMap::from([
            ("userID".into(), c.client_id.clone()),
            ("userKey".into(), c.client_key.clone()),
        ]),
        ..Default::default()
    }
}

/// How long a driver sits after its last call before "idle" is read: long enough for the
/// allocator to settle and the blocking pool's threads to finish their work.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The node plugin at rest: `--mode node` after a NodeGetInfo (it maps no Ceph library).
async fn node_idle(c: &Cluster) -> Result<Memory> {
    let d = Driver::start(&["--mode=node"], Some(&c.csi_cluster_config("bench"))).await?;
    let mut cl = d.client().await?;
    cl.node
        .node_get_info(berth_csi::csi::NodeGetInfoRequest {})
        .await?;
    tokio::time::sleep(SETTLE).await;
    memory::read(d.pid().expect("driver pid"))
}

pub async fn run() -> Result<Figures> {
    let c = Cluster::start()?;
    let node = node_idle(&c).await?;
    let d = Driver::start(&["--mode=controller"], Some(&c.csi_cluster_config("bench"))).await?;
    let pid = d.pid().expect("driver pid");
    let mut cl = d.client().await?;

    // Warm-up: the first call opens the cluster connection.
    cl.controller.create_volume(request(&c, "warmup")).await?;
    tokio::time::sleep(SETTLE).await;
    let idle = memory::read(pid)?;

    let mut cli = Vec::new();
    for i in 0..CLI_RUNS {
        let t0 = Instant::now();
        c.rbd(&[
            "create",
            "--size",
            "1G",
            &format!("{}/bench-cli-{i}", c.pool),
        ])?;
        cli.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let mut ours = Vec::new();
    for i in 0..SEQUENTIAL {
        let t0 = Instant::now();
        cl.controller
            .create_volume(request(&c, &format!("seq-{i}")))
            .await?;
        ours.push(t0.elapsed().as_secs_f64() * 1e3);
    }

    let before = c.images()?.len();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..BURST)
        .map(|i| {
            let mut cl = cl.clone();
            let req = request(&c, &format!("burst-{i}"));
            tokio::spawn(async move { cl.controller.create_volume(req).await })
        })
        .collect();
    let mut errors = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(_))) {
            errors += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let created = c.images()?.len() - before;
    let peak = memory::read(pid)?.rss_peak;
    ensure!(created <= BURST, "more images than requests: {created}");

    let (p50, p99, cli50) = (
        percentile(&ours, 50.0),
        percentile(&ours, 99.0),
        percentile(&cli, 50.0),
    );
    let ratio = p50 / cli50;
    let rate = BURST as f64 / secs;
    let mut figures = vec![
        figure("create_volume_p50_ms", p50, "ms", "", None),
        figure("create_volume_p99_ms", p99, "ms", "", None),
        figure("rbd_create_cli_p50_ms", cli50, "ms", "", None),
        figure(
            "create_p50_over_cli_p50",
            ratio,
            "ratio",
            "<= 0.5",
            Some(ratio <= 0.5),
        ),
        figure(
            "burst_100_volumes_per_s",
            rate,
            "vol/s",
            ">= 20",
            Some(rate >= 20.0),
        ),
        figure(
            "burst_100_errors",
            errors as f64,
            "",
            "== 0",
            Some(errors == 0),
        ),
        figure(
            "burst_100_images_created",
            created as f64,
            "",
            "== 100",
            Some(created == BURST),
        ),
        figure("rss_peak_mib", peak, "MiB", "<= 60", Some(peak <= 60.0)),
    ];
    // At rest, per mode. The node plugin loads no Ceph library; the controller's idle is read
    // after its first call (librados/librbd loaded, one cluster connection open). Private is
    // RssAnon; the rest of RSS is file pages (the binary, libc, librados/librbd/ceph-common).
    figures.extend(memory::figures(
        node,
        [
            "node_idle_rss_mib",
            "node_idle_pss_mib",
            "node_idle_private_mib",
        ],
        Some(("<= 12", 12.0)),
        None,
    ));
    figures.extend(memory::figures(
        idle,
        [
            "controller_idle_rss_mib",
            "controller_idle_pss_mib",
            "controller_idle_private_mib",
        ],
        Some(("<= 35", 35.0)),
        Some(("<= 8", 8.0)),
    ));
    // The thousand-volume run, on its own cluster and driver.
    drop(cl);
    drop(d);
    drop(c);
    figures.extend(super::csi_scale::run().await?);
    Ok(figures)
}
