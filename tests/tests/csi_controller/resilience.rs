//! Concurrency, crashes, a dead cluster, and secrets.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use berth_csi::csi::DeleteVolumeRequest;
use berth_csi::volume_id::VolumeId;
use berth_tests::ceph::Cluster;
use tonic::Code;

use super::common::*;

/// Our images in the pool (those a test created carry the csi-vol- prefix).
fn csi_images(c: &Cluster) -> Result<HashSet<String>> {
    Ok(c.images()?
        .into_iter()
        .filter(|i| i.starts_with("csi-vol-"))
        .collect())
}

pub fn concurrent_same_name(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let cl = d.client().await?;
        let before = csi_images(c)?;
        let n = name("race");
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let mut cl = cl.clone();
            let req = create_req(c, &n, GIB);
            tasks.push(tokio::spawn(async move {
                cl.controller.create_volume(req).await
            }));
        }
        let mut ids = HashSet::new();
        let mut aborted = 0;
        for t in tasks {
            match t.await? {
                Ok(r) => {
                    ids.insert(r.into_inner().volume.unwrap().volume_id);
                }
                Err(s) if s.code() == Code::Aborted => aborted += 1,
                Err(s) => anyhow::bail!("unexpected {s:?}"),
            }
        }
        let mut cl2 = cl.clone();
        let retry = cl2
            .controller
            .create_volume(create_req(c, &n, GIB))
            .await?
            .into_inner();
        ids.insert(retry.volume.unwrap().volume_id);
        ensure!(ids.len() == 1, "answers disagree: {ids:?}");
        let new: Vec<_> = csi_images(c)?.difference(&before).cloned().collect();
        ensure!(
            new.len() == 1,
            "{} images for one name (aborted {aborted})",
            new.len()
        );
        let id = ids.into_iter().next().unwrap();
        ensure!(
            VolumeId::decode(&id)?.image == new[0],
            "id names another image"
        );
        cl2.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: id,
                secrets: secrets(c),
            })
            .await?;
        Ok(())
    })
}

pub fn sigkill_mid_burst(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let mut d = driver(c, &[]).await?;
        let cl = d.client().await?;
        // Warm up so the burst runs on an open connection.
        let mut warm = cl.clone();
        let w = warm
            .controller
            .create_volume(create_req(c, &name("warm"), GIB))
            .await?;
        let warm_id = w.into_inner().volume.unwrap().volume_id;
        let before = csi_images(c)?;
        let names: Vec<String> = (0..150).map(|_| name("crash")).collect();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for n in &names {
            let mut cl = cl.clone();
            let req = create_req(c, n, GIB);
            let answered = answered.clone();
            tasks.push(tokio::spawn(async move {
                let r = cl.controller.create_volume(req).await;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r.map(|r| r.into_inner().volume.unwrap().volume_id)
            }));
        }
        // Kill after the first answers: the rest of the burst is mid-flight.
        let t0 = Instant::now();
        while answered.load(std::sync::atomic::Ordering::SeqCst) < 10
            && t0.elapsed() < Duration::from_secs(10)
        {
            tokio::task::yield_now().await;
        }
        d.kill9();
        let mut answered_before = HashMap::new();
        for (n, t) in names.iter().zip(tasks) {
            if let Ok(id) = t.await? {
                answered_before.insert(n.clone(), id);
            }
        }
        let done_before = answered_before.len();
        ensure!(
            done_before < names.len(),
            "the kill came after the burst: nothing to recover"
        );
        eprintln!(
            "{done_before}/{} creates answered before SIGKILL",
            names.len()
        );
        d.restart().await?;
        let mut cl = d.client().await?;
        let mut ids = HashMap::new();
        for n in &names {
            // Retry like the provisioner: until it answers.
            let t0 = Instant::now();
            loop {
                match cl.controller.create_volume(create_req(c, n, GIB)).await {
                    Ok(r) => {
                        ids.insert(n.clone(), r.into_inner().volume.unwrap().volume_id);
                        break;
                    }
                    Err(s) if t0.elapsed() < Duration::from_secs(30) => {
                        eprintln!("retry {n}: {s:?}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(s) => anyhow::bail!("{n}: {s:?}"),
                }
            }
        }
        for (n, id) in &answered_before {
            ensure!(
                ids[n] == *id,
                "{n}: answered {id} before the crash, {} after",
                ids[n]
            );
        }
        let new: HashSet<String> = csi_images(c)?.difference(&before).cloned().collect();
        let named: HashSet<String> = ids
            .values()
            .map(|id| VolumeId::decode(id).unwrap().image)
            .collect();
        ensure!(named.len() == names.len(), "two names share a volume");
        ensure!(
            new == named,
            "orphans or missing images: {} new, {} named ({done_before} finished before the kill)",
            new.len(),
            named.len()
        );
        for id in ids.into_values().chain(std::iter::once(warm_id)) {
            cl.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: id,
                    secrets: secrets(c),
                })
                .await?;
        }
        ensure!(
            csi_images(c)?.difference(&before).count() == 0,
            "images left after delete"
        );
        Ok(())
    })
}

pub fn ceph_paused(_shared: &Cluster) -> Result<()> {
    // A private cluster: pausing the shared one would stall the other cases.
    let mut c = Cluster::start()?;
    rt().block_on(async {
        let d = driver(&c, &[]).await?;
        let mut cl = d.client().await?;
        let v = cl
            .controller
            .create_volume(create_req(&c, &name("pre"), GIB))
            .await?
            .into_inner();
        c.pause_daemons()?;
        let t0 = Instant::now();
        let r = cl
            .controller
            .create_volume(create_req(&c, &name("dead"), GIB))
            .await;
        let took = t0.elapsed();
        c.resume_daemons()?;
        eprintln!("dead cluster: {:?} after {took:?}", code(&r));
        ensure!(
            matches!(code(&r), Code::Unavailable | Code::DeadlineExceeded),
            "dead cluster answered {r:?}"
        );
        ensure!(took < Duration::from_secs(30), "took {took:?}");
        // Back: works without restarting the driver (retry while the cluster settles).
        let t0 = Instant::now();
        let n = name("after");
        loop {
            match cl.controller.create_volume(create_req(&c, &n, GIB)).await {
                Ok(_) => break,
                Err(s) if t0.elapsed() < Duration::from_secs(60) => {
                    eprintln!("after resume: {s:?}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(s) => anyhow::bail!("still failing after resume: {s:?}"),
            }
        }
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: v.volume.unwrap().volume_id,
                secrets: secrets(&c),
            })
            .await?;
        Ok(())
    })
}

pub fn secrets_hidden(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let (mut messages, mut codes) = (Vec::new(), Vec::new());
        // A wrong key, a malformed key, a good key on bad requests: no message echoes a key.
        let wrong = "AQBwrongwrongwrongwrongwrongwrongwrongw==".to_string();
        for key in [
            wrong.clone(),
            "AQB bad\nkey".to_string(),
            c.client_key.clone(),
        ] {
            let mut r = create_req(c, &name("sec"), GIB);
            r.secrets.insert("userKey".into(), key);
            r.parameters.insert("pool".into(), "no-such-pool".into());
            if let Err(s) = cl.controller.create_volume(r).await {
                messages.push(s.message().to_string());
                codes.push(s.code());
            }
        }
        ensure!(messages.len() == 3, "expected three failures: {messages:?}");
        // With the good key the pool is what fails: the StorageClass names one that does not
        // exist, INVALID_ARGUMENT naming it.
        ensure!(
            codes[2] == tonic::Code::InvalidArgument && messages[2].contains("no-such-pool"),
            "unknown pool: {:?} {}",
            codes[2],
            messages[2]
        );
        let log = d.log_text();
        ensure!(!log.is_empty(), "empty driver log");
        for text in messages.iter().chain(std::iter::once(&log)) {
            for k in [&c.client_key, &wrong] {
                ensure!(!text.contains(k.as_str()), "a key leaked into: {text}");
            }
        }
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.pid().unwrap()))?;
        ensure!(
            !String::from_utf8_lossy(&cmdline).contains(&c.client_key),
            "key on argv"
        );
        Ok(())
    })
}

/// A create whose Ceph call outlives the RPC deadline keeps its name locked until Ceph is
/// done: a retry meanwhile is ABORTED (never a second reservation beside the first), and once
/// the first call ends the retry answers the one volume it made.
pub fn stalled_create_retry_one_image(_shared: &Cluster) -> Result<()> {
    // A private cluster: its OSD is stopped for a while.
    let mut c = Cluster::start()?;
    rt().block_on(async {
        let d = driver(&c, &["--ceph-call-deadline-ms=1500"]).await?;
        let mut cl = d.client().await?;
        let warm = cl
            .controller
            .create_volume(create_req(&c, &name("warm"), GIB))
            .await?
            .into_inner()
            .volume
            .unwrap()
            .volume_id;
        let before = csi_images(&c)?;
        let n = name("stall");
        c.pause_osd()?;
        let first = cl.controller.create_volume(create_req(&c, &n, GIB)).await;
        let t0 = Instant::now();
        let retry = cl.controller.create_volume(create_req(&c, &n, GIB)).await;
        let retry_took = t0.elapsed();
        c.resume_osd()?;
        eprintln!(
            "stalled create: {:?}; retry meanwhile: {:?} after {retry_took:?}",
            code(&first),
            code(&retry)
        );
        // Until the first call has finished, retries stay ABORTED; then the one volume.
        let t0 = Instant::now();
        let mut codes = Vec::new();
        let id = loop {
            match cl.controller.create_volume(create_req(&c, &n, GIB)).await {
                Ok(r) => break r.into_inner().volume.unwrap().volume_id,
                Err(s) if t0.elapsed() < Duration::from_secs(60) => {
                    codes.push(s.code());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => anyhow::bail!("still failing after the OSD resumed: {s:?}"),
            }
        };
        let new: Vec<String> = csi_images(&c)?.difference(&before).cloned().collect();
        for v in [id.clone(), warm] {
            cl.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: v,
                    secrets: secrets(&c),
                })
                .await?;
        }
        ensure!(new.len() == 1, "{} images for one name: {new:?}", new.len());
        ensure!(
            code(&first) == Code::DeadlineExceeded,
            "the stalled create answered {first:?}"
        );
        ensure!(
            code(&retry) == Code::Aborted,
            "a retry while the first create still runs in Ceph answered {:?} after {retry_took:?}, \
             not ABORTED",
            code(&retry)
        );
        ensure!(
            codes.iter().all(|c| *c == Code::Aborted),
            "retries after resume answered {codes:?}"
        );
        ensure!(
            VolumeId::decode(&id)?.image == new[0],
            "id names another image"
        );
        let left: Vec<String> = csi_images(&c)?.into_iter().collect();
        ensure!(left.is_empty(), "images left after delete: {left:?}");
        Ok(())
    })
}

/// Two creators reserving one request name can never both succeed, whatever the timing: the
/// second reservation is refused and the first one stands (real RADOS omap, the driver's own
/// journal code).
pub fn journal_reservation_is_exclusive(c: &Cluster) -> Result<()> {
    use berth_csi::ceph::ffi::rados::Rados;
    use berth_csi::ceph::journal::{self, Entry, Kind};
    let rados = Rados::connect(
        &c.client_id,
        &[
            ("mon_host", c.mon_host.as_str()),
            ("key", c.client_key.as_str()),
        ],
    )
    .map_err(|e| anyhow::anyhow!("connect: {e}"))?;
    let io = rados
        .ioctx(&c.pool)
        .map_err(|e| anyhow::anyhow!("ioctx: {e}"))?;
    let n = name("reserve");
    let entry = |image: &str| Entry {
        image: image.into(),
        snap: String::new(),
        size: 1,
        fp: "fp".into(),
        created: 0,
    };
    let (a, b) = (entry("csi-vol-reserve-a"), entry("csi-vol-reserve-b"));
    let first = journal::put(&io, Kind::Volume, &n, &a);
    let second = journal::put(&io, Kind::Volume, &n, &b);
    let stored = journal::lookup(&io, Kind::Volume, &n)?;
    let owner_b = journal::owner(&io, Kind::Volume, &b.image, "")?;
    journal::remove(&io, Kind::Volume, &n, &a.image, "")?;
    journal::remove(&io, Kind::Volume, &n, &b.image, "")?;
    ensure!(first.is_ok(), "first reservation failed: {first:?}");
    ensure!(
        second.is_err(),
        "a second reservation of one name succeeded: the journal now names {:?}",
        stored.map(|e| e.image)
    );
    ensure!(stored == Some(a), "the first reservation was overwritten");
    ensure!(owner_b.is_none(), "the refused image got a reverse key");
    Ok(())
}

/// More than one omap page of images marked gone: every one is read (the collector once saw
/// only the first 1000, so the rest stayed in the pool forever). A pool of its own, so no
/// other case's deletes collect these marks meanwhile.
pub fn gone_images_past_one_page(c: &Cluster) -> Result<()> {
    use berth_csi::ceph::ffi::rados::Rados;
    use berth_csi::ceph::journal::{self, GONE_PREFIX, VOLUMES_OID};
    let pool = format!("gone-{}", std::process::id());
    c.ceph(&["osd", "pool", "create", &pool, "8", "8"])?;
    let rados = Rados::connect(
        "admin",
        &[
            ("mon_host", c.mon_host.as_str()),
            ("key", c.admin_key.as_str()),
        ],
    )
    .map_err(|e| anyhow::anyhow!("connect: {e}"))?;
    let io = rados
        .ioctx(&pool)
        .map_err(|e| anyhow::anyhow!("ioctx: {e}"))?;
    let keys: Vec<String> = (0..1100)
        .map(|i| format!("{GONE_PREFIX}csi-vol-gone-{i:05}"))
        .collect();
    for chunk in keys.chunks(500) {
        let set: Vec<(&str, &str)> = chunk.iter().map(|k| (k.as_str(), "")).collect();
        io.omap_update(VOLUMES_OID, &set, &[])
            .map_err(|e| anyhow::anyhow!("write: {e}"))?;
    }
    let gone = journal::gone_images(&io)?;
    ensure!(
        gone.len() == keys.len(),
        "read {} of {} gone images",
        gone.len(),
        keys.len()
    );
    Ok(())
}
