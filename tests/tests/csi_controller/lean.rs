//! Lean at rest (issue 14 item 4): the node plugin attaches through the CLI tools, so it never
//! maps librados/librbd; the controller loads them when it first needs Ceph, and `--mode all`
//! serves both halves from one process.

use anyhow::{Result, ensure};
use berth_csi::csi::{DeleteVolumeRequest, NodeGetInfoRequest};
use berth_tests::ceph::Cluster;
use berth_tests::driver::Driver;

use super::common::*;

/// The Ceph client libraries mapped into process `pid` (from /proc/<pid>/maps).
fn ceph_libs(pid: u32) -> Result<Vec<String>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("librados") || p.contains("librbd"))
        .map(str::to_string)
        .collect();
    libs.sort();
    libs.dedup();
    Ok(libs)
}

pub fn node_mode_maps_no_ceph_libraries(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        // Node mode: serves NodeGetInfo, has never mapped librados or librbd.
        let node = Driver::start(&["--mode=node"], Some(&c.csi_cluster_config(CLUSTER_ID))).await?;
        let mut cl = node.client().await?;
        cl.node.node_get_info(NodeGetInfoRequest {}).await?;
        let pid = node.pid().expect("node pid");
        let libs = ceph_libs(pid)?;
        ensure!(libs.is_empty(), "--mode node maps {libs:?}");
        drop(node);

        // Controller mode: the libraries arrive with the first Ceph call (not vacuous).
        let ctrl = driver(c, &[]).await?;
        let mut cl = ctrl.client().await?;
        let v = cl
            .controller
            .create_volume(create_req(c, &name("lean"), GIB))
            .await?
            .into_inner()
            .volume
            .expect("volume");
        let libs = ceph_libs(ctrl.pid().expect("controller pid"))?;
        ensure!(
            libs.iter().any(|l| l.contains("librados"))
                && libs.iter().any(|l| l.contains("librbd")),
            "--mode controller after CreateVolume maps only {libs:?}"
        );
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: v.volume_id,
                secrets: secrets(c),
            })
            .await?;
        drop(ctrl);

        // --mode all: both services in one process; a create works through the loaded libraries.
        let all = Driver::start(&[], Some(&c.csi_cluster_config(CLUSTER_ID))).await?;
        let mut cl = all.client().await?;
        cl.node.node_get_info(NodeGetInfoRequest {}).await?;
        let v = cl
            .controller
            .create_volume(create_req(c, &name("lean-all"), GIB))
            .await?
            .into_inner()
            .volume
            .expect("volume");
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: v.volume_id,
                secrets: secrets(c),
            })
            .await?;
        Ok(())
    })
}
