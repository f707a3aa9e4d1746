//! DeleteVolume through the RBD trash: the RPC answers at once, a background purger removes
//! the data, and a purge cut by SIGKILL resumes after a restart.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use berth_csi::csi::DeleteVolumeRequest;
use berth_csi::volume_id::VolumeId;
use berth_tests::ceph::Cluster;

use super::common::*;

/// Names of the images in the pool's RBD trash.
fn trash(c: &Cluster) -> Result<Vec<String>> {
    let v: serde_json::Value =
        serde_json::from_str(&c.rbd(&["trash", "ls", "--format", "json", &c.pool])?)?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Journal keys that name `image`.
fn journal_keys(c: &Cluster, image: &str) -> Result<Vec<String>> {
    Ok(
        c.rados(&["-p", &c.pool, "listomapkeys", "csi.volumes.berth"])?
            .lines()
            .filter(|k| k.contains(image))
            .map(str::to_string)
            .collect(),
    )
}

pub fn big_delete_is_fast_and_purge_resumes(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let mut d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let id = cl
            .controller
            .create_volume(create_req(c, &name("big"), 256 * GIB))
            .await?
            .into_inner()
            .volume
            .unwrap()
            .volume_id;
        let image = VolumeId::decode(&id)?.image;
        let t0 = Instant::now();
        let deleted = cl
            .controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: id.clone(),
                secrets: secrets(c),
            })
            .await;
        let took = t0.elapsed();
        // Cut the purge short: it resumes after the restart.
        d.kill9();
        let live_at_kill = c.images()?.contains(&image);
        let trashed_at_kill = trash(c)?.contains(&image);
        eprintln!(
            "DeleteVolume of 256 GiB: {:?} after {took:?}; at SIGKILL: live {live_at_kill}, \
             in trash {trashed_at_kill}",
            code(&deleted)
        );
        d.restart().await?;
        let t0 = Instant::now();
        let mut left = (true, true, true);
        while t0.elapsed() < Duration::from_secs(300) {
            left = (
                c.images()?.contains(&image),
                trash(c)?.contains(&image),
                !journal_keys(c, &image)?.is_empty(),
            );
            if left == (false, false, false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!("purged after the restart in {:?}", t0.elapsed());
        ensure!(deleted.is_ok(), "DeleteVolume answered {deleted:?}");
        ensure!(
            took < Duration::from_secs(1),
            "DeleteVolume of a 256 GiB image took {took:?}"
        );
        ensure!(
            !live_at_kill,
            "the image was still in the pool after DeleteVolume"
        );
        ensure!(
            left == (false, false, false),
            "not purged 300 s after the restart (image live, in trash, journal keys): {left:?}"
        );
        Ok(())
    })
}
