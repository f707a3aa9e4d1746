//! `bench csi`, the thousand-volume part: create 1 000 volumes (50 in flight), list them all
//! (full paging), snapshot 100 of them, delete the snapshots and all 1 000 volumes, then wait
//! until the pool, the RBD trash and the journal are empty. p50/p99 per RPC, throughput, the
//! journal's omap size and berth-csi's peak RSS, PSS and private memory (sampled); on a private
//! cluster and driver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use berth_csi::csi::{
    CreateSnapshotRequest, DeleteSnapshotRequest, DeleteVolumeRequest, ListVolumesRequest,
};
use tokio::sync::Semaphore;

use super::csi::request;
use super::memory::Sampler;
use super::{Figures, figure, percentile};
use crate::ceph::Cluster;
use crate::csi_client::CsiClient;
use crate::driver::Driver;

const VOLUMES: usize = 1000;
const IN_FLIGHT: usize = 50;
const SNAPSHOTS: usize = 100;

/// Run `n` calls of `call(i)` with at most [`IN_FLIGHT`] at once; (latency ms, ok) per call
/// and the wall time in seconds.
async fn burst<F, Fut, T>(cl: &CsiClient, n: usize, call: F) -> (Vec<(f64, Option<T>)>, f64)
where
    F: Fn(CsiClient, usize) -> Fut,
    Fut: std::future::Future<Output = Option<T>> + Send + 'static,
    T: Send + 'static,
{
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.expect("gate");
        let fut = call(cl.clone(), i);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = fut.await;
            drop(permit);
            (t.elapsed().as_secs_f64() * 1e3, r)
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap_or((f64::NAN, None)));
    }
    (out, t0.elapsed().as_secs_f64())
}

fn lat<T>(r: &[(f64, Option<T>)]) -> Vec<f64> {
    r.iter().map(|(ms, _)| *ms).collect()
}

fn errors<T>(r: &[(f64, Option<T>)]) -> usize {
    r.iter().filter(|(_, ok)| ok.is_none()).count()
}

/// Keys and bytes (keys + values) of a journal object's omap, read through librados.
fn omap_size(c: &Cluster, oid: &str) -> (usize, usize) {
    use berth_csi::ceph::ffi::rados::Rados;
    let Ok(rados) = Rados::connect(
        &c.client_id,
        &[
            ("mon_host", c.mon_host.as_str()),
            ("key", c.client_key.as_str()),
        ],
    ) else {
        return (usize::MAX, usize::MAX);
    };
    let Ok(io) = rados.ioctx(&c.pool) else {
        return (usize::MAX, usize::MAX);
    };
    let (mut keys, mut bytes, mut after) = (0, 0, String::new());
    loop {
        let Ok(page) = io.omap_list(oid, &after, "", 1000) else {
            return (usize::MAX, usize::MAX);
        };
        keys += page.entries.len();
        bytes += page
            .entries
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
        match page.entries.last() {
            Some((k, _)) if page.more => after = k.clone(),
            _ => return (keys, bytes),
        }
    }
}

/// Images in the pool, entries in its trash, journal keys: all zero when nothing is left.
fn leftovers(c: &Cluster) -> (usize, usize, usize) {
    let images = c.images().map(|i| i.len()).unwrap_or(usize::MAX);
    let trash = c
        .rbd(&["trash", "ls", &c.pool])
        .map(|t| t.lines().filter(|l| !l.is_empty()).count())
        .unwrap_or(usize::MAX);
    let journal = omap_size(c, "csi.volumes.berth").0 + omap_size(c, "csi.snapshots.berth").0;
    (images, trash, journal)
}

pub async fn run() -> Result<Figures> {
    let c = Cluster::start()?;
    let dir = c.dir.join("bench-secrets");
    std::fs::create_dir_all(&dir)?;
    crate::ceph::write_private(&dir.join("userID"), &c.client_id)?;
    crate::ceph::write_private(&dir.join("userKey"), &c.client_key)?;
    let d = Driver::start(
        &[
            "--mode=controller",
            &format!("--controller-secrets-dir={}", dir.display()),
            &format!("--list-pools=bench/{}", c.pool),
        ],
        Some(&c.csi_cluster_config("bench")),
    )
    .await?;
    let pid = d.pid().expect("driver pid");
    let sampler = Sampler::start(pid);
    let cl = d.client().await?;
    let secrets = request(&c, "x").secrets;

    let reqs: Vec<_> = (0..VOLUMES)
        .map(|i| request(&c, &format!("scale-{i}")))
        .collect();
    let (created, create_s) = burst(&cl, VOLUMES, |mut cl, i| {
        let req = reqs[i].clone();
        async move {
            let r = cl.controller.create_volume(req).await.ok()?;
            r.into_inner().volume.map(|v| v.volume_id)
        }
    })
    .await;
    let ids: Vec<String> = created.iter().filter_map(|(_, id)| id.clone()).collect();
    let (journal_keys, journal_bytes) = omap_size(&c, "csi.volumes.berth");

    // ListVolumes over everything, following next_token (the sidecar's page size: none).
    let mut list = cl.clone();
    let (mut pages, mut listed, mut token) = (Vec::new(), 0usize, String::new());
    let t0 = Instant::now();
    loop {
        let t = Instant::now();
        let r = list
            .controller
            .list_volumes(ListVolumesRequest {
                max_entries: 0,
                starting_token: token.clone(),
            })
            .await?
            .into_inner();
        pages.push(t.elapsed().as_secs_f64() * 1e3);
        listed += r.entries.len();
        token = r.next_token;
        if token.is_empty() {
            break;
        }
    }
    let list_ms = t0.elapsed().as_secs_f64() * 1e3;

    let sources: Vec<String> = ids.iter().take(SNAPSHOTS).cloned().collect();
    let (snaps, _) = burst(&cl, sources.len(), |mut cl, i| {
        let req = CreateSnapshotRequest {
            source_volume_id: sources[i].clone(),
            name: format!("scale-snap-{i}"),
            secrets: secrets.clone(),
            ..Default::default()
        };
        async move {
            let r = cl.controller.create_snapshot(req).await.ok()?;
            r.into_inner().snapshot.map(|s| s.snapshot_id)
        }
    })
    .await;
    let snap_ids: Vec<String> = snaps.iter().filter_map(|(_, id)| id.clone()).collect();
    let (snap_del, _) = burst(&cl, snap_ids.len(), |mut cl, i| {
        let req = DeleteSnapshotRequest {
            snapshot_id: snap_ids[i].clone(),
            secrets: secrets.clone(),
        };
        async move { cl.controller.delete_snapshot(req).await.ok().map(|_| ()) }
    })
    .await;

    let t_delete = Instant::now();
    let (deleted, delete_s) = burst(&cl, ids.len(), |mut cl, i| {
        let req = DeleteVolumeRequest {
            volume_id: ids[i].clone(),
            secrets: secrets.clone(),
        };
        async move { cl.controller.delete_volume(req).await.ok().map(|_| ()) }
    })
    .await;
    // Purging may go on in the background: wait for pool, trash and journal to be empty.
    let mut left = leftovers(&c);
    while left != (0, 0, 0) && t_delete.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = leftovers(&c);
    }
    let empty_s = t_delete.elapsed().as_secs_f64();
    let peak = sampler.peak(pid);
    ensure!(ids.len() <= VOLUMES, "more volumes than requests");

    let errs = errors(&created) + errors(&snaps) + errors(&snap_del) + errors(&deleted);
    let create_rate = VOLUMES as f64 / create_s;
    let nothing_left = left == (0, 0, 0);
    let (cl_, dl) = (lat(&created), lat(&deleted));
    let sl = lat(&snaps);
    Ok(vec![
        figure(
            "scale_create_p50_ms",
            percentile(&cl_, 50.0),
            "ms",
            "",
            None,
        ),
        figure(
            "scale_create_p99_ms",
            percentile(&cl_, 99.0),
            "ms",
            "",
            None,
        ),
        figure(
            "scale_creates_per_s",
            create_rate,
            "vol/s",
            ">= 200",
            Some(create_rate >= 200.0),
        ),
        figure(
            "scale_list_volumes_all_ms",
            list_ms,
            "ms",
            "<= 200",
            Some(list_ms <= 200.0 && listed == ids.len()),
        ),
        figure("scale_list_pages", pages.len() as f64, "", "", None),
        figure(
            "scale_list_page_p50_ms",
            percentile(&pages, 50.0),
            "ms",
            "",
            None,
        ),
        figure(
            "scale_listed",
            listed as f64,
            "",
            "== 1000",
            Some(listed == VOLUMES),
        ),
        figure(
            "scale_snapshot_p50_ms",
            percentile(&sl, 50.0),
            "ms",
            "",
            None,
        ),
        figure(
            "scale_snapshot_p99_ms",
            percentile(&sl, 99.0),
            "ms",
            "",
            None,
        ),
        figure("scale_delete_p50_ms", percentile(&dl, 50.0), "ms", "", None),
        figure("scale_delete_p99_ms", percentile(&dl, 99.0), "ms", "", None),
        figure(
            "scale_deletes_per_s",
            ids.len() as f64 / delete_s,
            "vol/s",
            "",
            None,
        ),
        figure("scale_journal_keys", journal_keys as f64, "", "", None),
        figure(
            "scale_journal_kib",
            journal_bytes as f64 / 1024.0,
            "KiB",
            "",
            None,
        ),
        figure(
            "scale_rss_peak_mib",
            peak.rss,
            "MiB",
            "<= 60",
            Some(peak.rss <= 60.0),
        ),
        figure("scale_pss_peak_mib", peak.pss, "MiB", "", None),
        figure("scale_private_peak_mib", peak.private, "MiB", "", None),
        figure("scale_errors", errs as f64, "", "== 0", Some(errs == 0)),
        figure(
            "scale_seconds_until_empty",
            empty_s,
            "s",
            "pool, trash, journal empty",
            Some(nothing_left),
        ),
        figure(
            "scale_left_images",
            left.0 as f64,
            "",
            "== 0",
            Some(left.0 == 0),
        ),
        figure(
            "scale_left_trash",
            left.1 as f64,
            "",
            "== 0",
            Some(left.1 == 0),
        ),
        figure(
            "scale_left_journal_keys",
            left.2 as f64,
            "",
            "== 0",
            Some(left.2 == 0),
        ),
    ])
}
