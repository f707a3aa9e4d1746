//! `bench csi`: CreateVolume latency beside the `rbd create` CLI in the same run, a burst of 100
//! parallel CreateVolume calls, and berth-csi's memory (idle and peak), on a private cluster;
//! then the thousand-volume run ([`super::csi_scale`]).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Result, ensure};
use berth_csi::csi::volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode};
use berth_csi::csi::{CapacityRange, CreateVolumeRequest, VolumeCapability};

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

/// VmRSS, VmHWM and RssAnon (private, not file-backed) of a process, in MiB.
pub(super) fn rss_mib(pid: u32) -> Result<(f64, f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    Ok((field("VmRSS:"), field("VmHWM:"), field("RssAnon:")))
}

pub async fn run() -> Result<Figures> {
    let c = Cluster::start()?;
    let d = Driver::start(&["--mode=controller"], Some(&c.csi_cluster_config("bench"))).await?;
    let pid = d.pid().expect("driver pid");
    let mut cl = d.client().await?;

    // Warm-up: the first call opens the cluster connection.
    cl.controller.create_volume(request(&c, "warmup")).await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (idle, _, idle_anon) = rss_mib(pid)?;

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
    let (_, peak, _) = rss_mib(pid)?;
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
        figure("rss_idle_mib", idle, "MiB", "<= 20", Some(idle <= 20.0)),
        figure("rss_peak_mib", peak, "MiB", "<= 60", Some(peak <= 60.0)),
        // Of the idle RSS, what is private (the rest is librados/librbd/libceph-common pages
        // shared with the page cache).
        figure("rss_idle_anon_mib", idle_anon, "MiB", "", None),
    ];
    // The thousand-volume run, on its own cluster and driver.
    drop(cl);
    drop(d);
    drop(c);
    figures.extend(super::csi_scale::run().await?);
    Ok(figures)
}
