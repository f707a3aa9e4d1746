//! `demo`: the README's main job. Plays the original design on this machine, with no
//! Kubernetes cluster, printing each step:
//!
//! 1. storage: a local Ceph cluster and berth-csi; a volume is provisioned (CreateVolume),
//!    staged and published as kubelet would, a "pod" writes "hello ceph", the pod goes away
//!    (unpublish + unstage), a new pod gets the volume at a new path and reads "hello ceph";
//! 2. front door: two local backends and berth-ingress with nginx, fed by Service manifests in
//!    a watched directory; curl both, change a manifest, see the reload and the new route.
//!
//! Everything it starts is removed at the end, also on Ctrl-C (every resource is a Drop guard),
//! and it exits non-zero if any step fails.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_csi::csi::volume_capability::{AccessMode, AccessType, MountVolume};
use berth_csi::csi::{
    CapacityRange, CreateVolumeRequest, DeleteVolumeRequest, GetPluginInfoRequest,
    NodePublishVolumeRequest, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
    NodeUnstageVolumeRequest, VolumeCapability,
};
use berth_tests::backend::Backend;
use berth_tests::ceph::Cluster;
use berth_tests::csi_client::CsiClient;
use berth_tests::driver::Driver;
use berth_tests::ingress_ctl::IngressCtl;
use berth_tests::nginx::http_get;
use berth_tests::proc::wait_until;
use serde_json::{Value, json};

/// The clusterID the demo's cluster config uses.
const CLUSTER_ID: &str = "berth-demo";

struct Steps(usize, Instant);

impl Steps {
    fn next(&mut self, what: &str) {
        self.0 += 1;
        println!("\n[{:>2}] {what}   (+{:.1?})", self.0, self.1.elapsed());
    }
}

fn mount_cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: "ext4".into(),
            ..Default::default()
        })),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    }
}

/// What kubelet sends to stage and publish a volume for a pod, and to take it down again.
struct Pod<'a> {
    csi: &'a mut CsiClient,
    volume_id: &'a str,
    context: &'a HashMap<String, String>,
    secrets: &'a HashMap<String, String>,
}

impl Pod<'_> {
    async fn start(&mut self, staging: &Path, target: &Path) -> Result<()> {
        self.csi
            .node
            .node_stage_volume(NodeStageVolumeRequest {
                volume_id: self.volume_id.into(),
                staging_target_path: staging.display().to_string(),
                volume_capability: Some(mount_cap()),
                secrets: self.secrets.clone(),
                volume_context: self.context.clone(),
                ..Default::default()
            })
            .await?;
        self.csi
            .node
            .node_publish_volume(NodePublishVolumeRequest {
                volume_id: self.volume_id.into(),
                staging_target_path: staging.display().to_string(),
                target_path: target.display().to_string(),
                volume_capability: Some(mount_cap()),
                volume_context: self.context.clone(),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    async fn stop(&mut self, staging: &Path, target: &Path) -> Result<()> {
        self.csi
            .node
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: self.volume_id.into(),
                target_path: target.display().to_string(),
            })
            .await?;
        self.csi
            .node
            .node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: self.volume_id.into(),
                staging_target_path: staging.display().to_string(),
            })
            .await?;
        Ok(())
    }
}

async fn storage(s: &mut Steps) -> Result<()> {
    s.next("start a throwaway Ceph cluster (1 mon + 1 osd, memstore, cephx) on 127.0.0.1");
    let cluster = Cluster::start()?;
    println!(
        "     up in {:.1?}: monitors {}, pool {}, client.{}",
        cluster.started_in, cluster.mon_addr, cluster.pool, cluster.client_id
    );

    s.next("start berth-csi (--mode all) on a unix socket, as the DaemonSet and Deployment do");
    let driver = Driver::start(&[], Some(&cluster.csi_cluster_config(CLUSTER_ID))).await?;
    let mut csi = driver.client().await?;
    let info = csi
        .identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await?
        .into_inner();
    println!(
        "     {} {} on {}",
        info.name,
        info.vendor_version,
        driver.socket.display()
    );

    s.next("a PVC appears: CreateVolume (1 GiB, StorageClass parameters, mounter=fuse)");
    let secrets = HashMap::from([
        ("userID".to_string(), cluster.client_id.clone()),
        ("userKey".to_string(), cluster.client_key.clone()),
    ]);
    let params = HashMap::from([
        ("clusterID".to_string(), CLUSTER_ID.to_string()),
        ("pool".to_string(), cluster.pool.clone()),
        ("imageFeatures".to_string(), "layering".to_string()),
        ("mounter".to_string(), "fuse".to_string()),
    ]);
    let volume = csi
        .controller
        .create_volume(CreateVolumeRequest {
            name: "pvc-hello-ceph".into(),
            capacity_range: Some(CapacityRange {
                required_bytes: 1 << 30,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![mount_cap()],
            parameters: params,
            secrets: secrets.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .volume
        .context("CreateVolume returned no volume")?;
    println!(
        "     volume {} ({} bytes); RBD images in the pool: {:?}",
        volume.volume_id,
        volume.capacity_bytes,
        cluster.images()?
    );

    let pods = driver.dir.join("pods");
    let (staging, target1, target2) = (
        pods.join("staging"),
        pods.join("pod-1/volume"),
        pods.join("pod-2/volume"),
    );
    for d in [&staging, &target1, &target2] {
        std::fs::create_dir_all(d)?;
    }
    let mut pod = Pod {
        csi: &mut csi,
        volume_id: &volume.volume_id,
        context: &volume.volume_context,
        secrets: &secrets,
    };

    s.next("pod 1 starts: NodeStage (rbd-fuse + loop, mkfs once, mount) + NodePublish (bind)");
    pod.start(&staging, &target1).await?;
    std::fs::write(target1.join("hello"), "hello ceph\n")?;
    println!(
        "     pod 1 wrote \"hello ceph\" to {}",
        target1.join("hello").display()
    );

    s.next("pod 1 is deleted: NodeUnpublish + NodeUnstage (unmount, detach)");
    pod.stop(&staging, &target1).await?;
    ensure!(
        !target1.join("hello").exists(),
        "pod 1's path still shows the volume"
    );
    println!("     nothing mounted at {} any more", target1.display());

    s.next("pod 2 starts with the same claim at a new path, and reads it");
    pod.start(&staging, &target2).await?;
    let text = std::fs::read_to_string(target2.join("hello"))?;
    println!("     pod 2 read: {}", text.trim());
    ensure!(text == "hello ceph\n", "pod 2 read {text:?}");
    pod.stop(&staging, &target2).await?;

    s.next("the PVC is deleted: DeleteVolume");
    csi.controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: volume.volume_id.clone(),
            secrets,
        })
        .await?;
    let images = cluster.images()?;
    println!("     RBD images in the pool: {images:?}");
    ensure!(images.is_empty(), "images left: {images:?}");
    drop(csi);
    drop(driver);
    drop(cluster);
    Ok(())
}

/// A Service as the original design exposed it: labelled, routed by annotations.
fn exposed_service(name: &str, host: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "demo",
                        "labels": {"berth.dev/expose": "true"},
                        "annotations": {"berth.dev/host": host, "berth.dev/path": "/"}},
           "spec": {"clusterIP": "127.0.0.1", "ports": [{"name": "http", "port": port}]}})
}

fn curl(ctl: &IngressCtl, host: &str) -> Result<String> {
    let r = http_get(&ctl.http_addr(), host, "/")?;
    let first_line = r.body.lines().next().unwrap_or_default().trim().to_string();
    Ok(format!("{} {first_line}", r.status))
}

/// Make `change`, wait until berth-ingress has verified the reload (it publishes the new
/// config hash only once nginx serves it on every new connection), then check that 20 new
/// connections in a row answer `want`: what the demo prints is what every client gets.
fn served_everywhere(
    ctl: &IngressCtl,
    host: &str,
    want: &str,
    change: impl FnOnce() -> Result<()>,
) -> Result<Duration> {
    let hash = ctl.metric("berth_ingress_config_hash")?;
    let t0 = Instant::now();
    change()?;
    wait_until(
        "berth-ingress to verify the reload",
        Duration::from_secs(10),
        || {
            ctl.metric("berth_ingress_config_hash")
                .is_ok_and(|h| h != hash)
        },
    )?;
    let took = t0.elapsed();
    let answers: Vec<String> = (0..20).map(|_| curl(ctl, host)).collect::<Result<_>>()?;
    // A backend answers "<name> <path>": compare the status and name words only.
    let words = want.split_whitespace().count();
    ensure!(
        answers
            .iter()
            .all(|a| a.split_whitespace().take(words).eq(want.split_whitespace())),
        "after the verified reload, {host} answered {answers:?} (want {want})"
    );
    Ok(took)
}

fn front_door(s: &mut Steps) -> Result<()> {
    s.next("start two backends on 127.0.0.1 (they answer with their own name)");
    let (one, two) = (Backend::start("backend-1")?, Backend::start("backend-2")?);
    println!("     backend-1 :{}   backend-2 :{}", one.port, two.port);

    s.next("berth-ingress watches a directory of Service manifests; it writes and validates the first nginx config, then starts nginx");
    let ctl = IngressCtl::start(
        &[
            ("shop", exposed_service("shop", "shop.demo.test", one.port)),
            ("blog", exposed_service("blog", "blog.demo.test", two.port)),
        ],
        &[],
    )?;
    ctl.wait_ready()?;
    println!(
        "     nginx on {}, manifests in {}",
        ctl.http_addr(),
        ctl.manifests.display()
    );

    s.next("curl both hosts through nginx");
    for host in ["shop.demo.test", "blog.demo.test"] {
        let got = curl(&ctl, host)?;
        println!("     curl -H 'Host: {host}' {}  ->  {got}", ctl.http_addr());
        ensure!(got.starts_with("200"), "{host}: {got}");
    }

    s.next("change a manifest: shop.demo.test now routes to backend-2");
    let reloads = ctl.metric("berth_ingress_reloads_total")?;
    let took = served_everywhere(&ctl, "shop.demo.test", "200 backend-2", || {
        ctl.write("shop", &exposed_service("shop", "shop.demo.test", two.port))
    })?;
    println!(
        "     served {took:.0?} after the write (reload verified); reloads {} -> {}",
        reloads,
        ctl.metric("berth_ingress_reloads_total")?
    );
    println!(
        "     curl -H 'Host: shop.demo.test' x20 (new connections)  ->  20/20 {}",
        curl(&ctl, "shop.demo.test")?
    );

    s.next("a hostile manifest is refused, named, and everything else keeps serving");
    ctl.write(
        "evil",
        &exposed_service("evil", "x.test;return 200 pwned", one.port),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf")).unwrap_or_default();
    ensure!(
        !conf.contains("pwned"),
        "a hostile value reached nginx.conf"
    );
    let refused = ctl
        .log_text()
        .lines()
        .find(|l| l.contains("evil"))
        .map(str::to_string)
        .unwrap_or_default();
    println!("     berth-ingress: {}", refused.trim());
    println!(
        "     curl -H 'Host: blog.demo.test'  ->  {}",
        curl(&ctl, "blog.demo.test")?
    );

    s.next("a Service manifest is deleted: its host is gone (404)");
    served_everywhere(&ctl, "blog.demo.test", "404", || {
        Ok(std::fs::remove_file(ctl.manifests.join("blog.json"))?)
    })?;
    println!(
        "     curl -H 'Host: blog.demo.test' x20 (new connections)  ->  20/20 {}",
        curl(&ctl, "blog.demo.test")?
    );
    Ok(())
}

async fn play() -> Result<()> {
    let mut s = Steps(0, Instant::now());
    println!("berth demo: the original design, on this machine, no Kubernetes cluster needed");
    storage(&mut s).await?;
    tokio::task::block_in_place(|| front_door(&mut s))?;
    s.next("clean up: every process, mount, loop device and file the demo made is gone");
    println!(
        "\ndemo finished in {:.1?}: hello ceph survived its pod; routes followed their manifests",
        s.1.elapsed()
    );
    Ok(())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        tokio::select! {
            r = play() => r,
            _ = tokio::signal::ctrl_c() => {
                // Dropping `play` runs every guard's Drop: daemons, mounts, loops go away.
                Err(anyhow::anyhow!("interrupted: cleaned up"))
            }
        }
    });
    let leftovers = berth_tests::sweep::own_leftovers();
    if let Err(e) = result {
        eprintln!("\ndemo FAILED: {e:#}");
        std::process::exit(1);
    }
    if !leftovers.is_empty() {
        eprintln!("\ndemo left things behind: {leftovers:#?}");
        std::process::exit(1);
    }
}
