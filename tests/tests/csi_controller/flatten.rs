//! Deep flatten in the background (issue 14 item 1): a clone deeper than the chain limit is
//! created at once and flattened in the background; CreateVolume answers ABORTED with the
//! progress until it is done, then OK with the volume, its data intact, also when the driver
//! was killed in the middle.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use berth_csi::csi::{
    CreateVolumeRequest, DeleteVolumeRequest, VolumeContentSource, volume_content_source,
};
use berth_csi::volume_id::VolumeId;
use berth_tests::ceph::Cluster;
use berth_tests::csi_client::CsiClient;
use tonic::Code;

use super::common::*;

/// A clone of volume `id`.
pub fn clone_req(c: &Cluster, prefix: &str, id: &str, bytes: i64) -> CreateVolumeRequest {
    use volume_content_source::{Type, VolumeSource};
    let mut r = create_req(c, &name(prefix), bytes);
    r.volume_content_source = Some(VolumeContentSource {
        r#type: Some(Type::Volume(VolumeSource {
            volume_id: id.into(),
        })),
    });
    r
}

/// CreateVolume retried as a CO does while it answers ABORTED (within `limit`): the volume
/// id and the ABORTED messages seen on the way.
pub async fn create_until_ok(
    cl: &mut CsiClient,
    req: CreateVolumeRequest,
    limit: Duration,
) -> Result<(String, Vec<String>)> {
    let t0 = Instant::now();
    let mut aborted = Vec::new();
    loop {
        match cl.controller.create_volume(req.clone()).await {
            Ok(r) => return Ok((r.into_inner().volume.unwrap().volume_id, aborted)),
            Err(s) if s.code() == Code::Aborted && t0.elapsed() < limit => {
                aborted.push(s.message().to_string());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => bail!("CreateVolume {}: {s:?} (after {aborted:?})", req.name),
        }
    }
}

fn image(id: &str) -> Result<String> {
    Ok(VolumeId::decode(id)?.image)
}

/// sha256 of an image's data (`rbd export` to a file in the cluster's directory).
fn digest(c: &Cluster, id: &str) -> Result<String> {
    let img = image(id)?;
    let path = c.dir.join(format!("{img}.export"));
    c.rbd(&[
        "export",
        "--no-progress",
        &format!("{}/{img}", c.pool),
        &path.display().to_string(),
    ])?;
    let out = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()?;
    std::fs::remove_file(&path)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

pub fn deep_flatten_runs_in_the_background(c: &Cluster) -> Result<()> {
    const MIB: i64 = 1 << 20;
    rt().block_on(async {
        let mut d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        // A base holding 128 MiB of data, and a chain of 8 clones over it.
        let base = cl
            .controller
            .create_volume(create_req(c, &name("flat-base"), 128 * MIB))
            .await?
            .into_inner()
            .volume
            .unwrap()
            .volume_id;
        c.rbd(&[
            "bench",
            "--io-type",
            "write",
            "--io-size",
            "4M",
            "--io-total",
            "128M",
            "--io-pattern",
            "seq",
            &format!("{}/{}", c.pool, image(&base)?),
        ])?;
        let mut chain = vec![base];
        for _ in 0..8 {
            let r = clone_req(c, "flat", chain.last().unwrap(), 128 * MIB);
            let v = cl.controller.create_volume(r).await?.into_inner();
            chain.push(v.volume.unwrap().volume_id);
        }

        // Depth 9: created, flattened in the background; the RPC does not wait for the copy.
        let deep = clone_req(c, "flat-deep", chain.last().unwrap(), 128 * MIB);
        let t0 = Instant::now();
        let first = cl.controller.create_volume(deep.clone()).await;
        let answered = t0.elapsed();
        match &first {
            Err(s) if s.code() == Code::Aborted && s.message().contains("being flattened") => {}
            other => bail!("depth 9 clone: expected ABORTED (flatten in the background), got {other:?} after {answered:?}"),
        }
        ensure!(answered < Duration::from_secs(3), "ABORTED only after {answered:?}");
        // SIGKILL mid-flatten: nothing is lost, the retry in the new process starts it again.
        d.restart().await?;
        cl = d.client().await?;
        let deep_img = |m: &str| m.split_whitespace().nth(1).unwrap_or_default().to_string();
        let parent = &info(c, &deep_img(first.unwrap_err().message()))?["parent"];
        println!("after SIGKILL: the clone still has a parent: {}", !parent.is_null());
        let (id, seen) = create_until_ok(&mut cl, deep.clone(), Duration::from_secs(120)).await?;
        println!(
            "depth 9: first answer after {answered:?}, then {} ABORTED retries: {:?}",
            seen.len(),
            seen.iter()
                .map(|m| m.split("): ").nth(1).unwrap_or(m).trim_end_matches("; retry later"))
                .collect::<Vec<_>>()
        );
        ensure!(
            seen.iter().all(|m| m.contains("being flattened")),
            "retries: {seen:?}"
        );
        let info = info(c, &image(&id)?)?;
        ensure!(info["parent"].is_null(), "not flattened: {}", info["parent"]);
        ensure!(
            digest(c, &id)? == digest(c, &chain[0])?,
            "the flattened clone's data differs from the base's"
        );
        // Idempotent afterwards: the same volume, at once.
        let again = cl.controller.create_volume(deep).await?.into_inner();
        ensure!(again.volume.unwrap().volume_id == id, "a repeat gave another volume");
        chain.push(id);

        for (depth, id) in chain.into_iter().enumerate().rev() {
            delete(&mut cl, c, depth, id).await?;
        }
        Ok(())
    })
}

/// DeleteVolume, retried while the image is "in use", as a CO does: drivers of other cases
/// share this pool, and their trash purger, removing the clone deleted just before, opens its
/// parent (the next to delete) to drop the temporary snapshot, a watch from another client
/// for a moment. Each such answer is printed with `rbd status`, so a watcher that stays shows.
async fn delete(cl: &mut CsiClient, c: &Cluster, depth: usize, id: String) -> Result<()> {
    let img = image(&id)?;
    let t0 = Instant::now();
    loop {
        let r = cl
            .controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: id.clone(),
                secrets: secrets(c),
            })
            .await;
        match r {
            Ok(_) => return Ok(()),
            Err(s)
                if s.code() == Code::FailedPrecondition
                    && t0.elapsed() < Duration::from_secs(45) =>
            {
                let status = c
                    .rbd(&["status", &format!("{}/{img}", c.pool)])
                    .unwrap_or_default();
                println!("delete depth {depth} ({img}): {}; {status}", s.message());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(s) => bail!("delete depth {depth} ({img}): {s:?}"),
        }
    }
}
