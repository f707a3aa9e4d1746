//! `demo`: the README's main job. Plays the original design on this machine with no
//! Kubernetes cluster: a local Ceph cluster, berth-csi, and (as it grows) berth-ingress with
//! nginx, printing each step. Everything it starts is removed at the end, also on Ctrl-C, and
//! it exits non-zero if any step fails.

use std::time::Instant;

use anyhow::{Result, ensure};
use berth_csi::csi::{GetPluginInfoRequest, ProbeRequest};
use berth_tests::ceph::Cluster;
use berth_tests::driver::Driver;

/// The clusterID the demo's cluster config uses.
const CLUSTER_ID: &str = "berth-demo";

fn step(n: usize, what: &str) {
    println!("\n[{n}] {what}");
}

async fn play() -> Result<()> {
    let t0 = Instant::now();
    step(
        1,
        "start a throwaway Ceph cluster (1 mon + 1 osd, memstore, cephx) on 127.0.0.1",
    );
    let cluster = Cluster::start()?;
    println!(
        "    up in {:.1?}: monitors {}, pool {}, client.{}",
        cluster.started_in, cluster.mon_addr, cluster.pool, cluster.client_id
    );

    step(2, "start berth-csi (--mode all) on a unix socket");
    let driver = Driver::start(&[], Some(&cluster.csi_cluster_config(CLUSTER_ID))).await?;
    println!("    socket {}", driver.socket.display());

    step(3, "ask it who it is, as kubelet does");
    let mut csi = driver.client().await?;
    let info = csi
        .identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await?
        .into_inner();
    let ready = csi
        .identity
        .probe(ProbeRequest {})
        .await?
        .into_inner()
        .ready;
    println!(
        "    {} {} ready={:?}",
        info.name, info.vendor_version, ready
    );
    ensure!(ready == Some(true), "berth-csi is not ready");

    step(
        4,
        "clean up: stop berth-csi and Ceph, remove every mount, device and file",
    );
    drop(csi);
    drop(driver);
    drop(cluster);
    println!("\ndemo finished in {:.1?}", t0.elapsed());
    Ok(())
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        tokio::select! {
            r = play() => r,
            _ = tokio::signal::ctrl_c() => {
                // Dropping the future runs every guard's Drop: daemons, mounts, loops go away.
                anyhow::bail!("interrupted: cleaned up")
            }
        }
    })
}
