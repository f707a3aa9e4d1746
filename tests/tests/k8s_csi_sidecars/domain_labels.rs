//! `--domain-labels` against the real API server, with deploy/csi's node ServiceAccount and
//! its RBAC (no kubelet: the test writes the Node object itself).
//!
//! - berth-csi (node + controller, `--topology-aware`) reads the labelled Node at start:
//!   NodeGetInfo reports `topology.rbd.csi.berth.dev/{zone,region}` from the labels merged with
//!   a `--topology` segment, and a CreateVolume whose `topologyConstrainedPools` domain is that
//!   node's, with the node's topology as requisite, comes back with the node's zone and
//!   region as accessible_topology; deleted -> the pool empty.
//! - a named label missing on the Node: the start is refused, exit non-zero, the label named
//!   on stderr, no socket;
//! - a ServiceAccount without `get nodes`: refused at once, stderr points at the RBAC;
//! - an API server nobody answers: retried for `--domain-labels-wait-ms`, then refused.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_csi::csi::plugin_capability::{Type, service};
use berth_csi::csi::{
    CreateVolumeRequest, DeleteVolumeRequest, GetPluginCapabilitiesRequest, NodeGetInfoRequest,
    Topology, TopologyRequirement,
};
use berth_tests::ceph::Cluster;
use berth_tests::driver::Driver;
use berth_tests::k8s::ControlPlane;
use serde_json::json;

use super::step;

const NODE: &str = "berth-domain-labels-node";
const LABELS: &str = "--domain-labels=topology.kubernetes.io/zone,topology.kubernetes.io/region";
const ZONE_KEY: &str = "topology.rbd.csi.berth.dev/zone";
const REGION_KEY: &str = "topology.rbd.csi.berth.dev/region";
const RACK_KEY: &str = "topology.rbd.csi.berth.dev/rack";

pub fn flow(cp: &ControlPlane, c: &Cluster, cluster_id: &str, ns: &str) -> Result<()> {
    let dir = cp.dir.join("domain-labels");
    std::fs::create_dir_all(&dir)?;
    let cfg = c.csi_cluster_config(cluster_id);
    let cfg_file = dir.join("cluster-config.json");
    std::fs::write(&cfg_file, &cfg)?;
    cp.apply(
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {
            "kubernetes.io/hostname": NODE,
            "topology.kubernetes.io/zone": "z1",
            "topology.kubernetes.io/region": "r1"}}})
        .to_string(),
    )?;
    // deploy/csi's node ServiceAccount: what its ClusterRole grants is what is tested.
    let node_sa = cp.service_account_kubeconfig(ns, "berth-csi-node")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    step(
        "--domain-labels: NodeGetInfo segments, CreateVolume there",
        || rt.block_on(segments_and_create(c, cluster_id, &cfg, &node_sa)),
    )?;

    step(
        "--domain-labels: a label missing on the Node refuses the start",
        || {
            let (ok, stderr, _) = refused_start(
                &dir,
                &cfg_file,
                &node_sa,
                "--domain-labels=topology.kubernetes.io/zone,berth.dev/missing-rack",
                10_000,
            )?;
            ensure!(!ok, "started without the label");
            ensure!(
                stderr.contains("berth.dev/missing-rack") && stderr.contains(NODE),
                "stderr does not name the missing label and the node: {stderr}"
            );
            Ok(())
        },
    )?;

    step(
        "--domain-labels: no get nodes -> refused, RBAC named",
        || {
            let default_sa = cp.service_account_kubeconfig(ns, "default")?;
            let (ok, stderr, took) = refused_start(&dir, &cfg_file, &default_sa, LABELS, 10_000)?;
            ensure!(!ok, "started without RBAC");
            ensure!(
                stderr.contains("403") && stderr.contains("get on nodes"),
                "{stderr}"
            );
            ensure!(took < Duration::from_secs(5), "forbidden retried: {took:?}");
            Ok(())
        },
    )?;

    step(
        "--domain-labels: API unreachable -> retried 1.5 s, refused",
        || {
            let port = berth_tests::proc::free_port()?;
            let text = std::fs::read_to_string(&node_sa)?;
            let dead = text.replace(&cp.server, &format!("https://127.0.0.1:{port}"));
            ensure!(dead != text, "server {} not in the kubeconfig", cp.server);
            let kc = dir.join("unreachable.kubeconfig");
            std::fs::write(&kc, dead)?;
            let (ok, stderr, took) = refused_start(&dir, &cfg_file, &kc, LABELS, 1_500)?;
            ensure!(!ok, "started without an API server");
            ensure!(stderr.contains("unreachable"), "{stderr}");
            ensure!(
                took >= Duration::from_millis(1_500) && took < Duration::from_secs(10),
                "gave up after {took:?}"
            );
            eprintln!("unreachable API: refused after {:.2} s", took.as_secs_f64());
            Ok(())
        },
    )?;
    cp.kubectl(&["delete", "node", NODE, "--wait=true"])?;
    Ok(())
}

async fn segments_and_create(
    c: &Cluster,
    cluster_id: &str,
    cfg: &str,
    kubeconfig: &Path,
) -> Result<()> {
    let kc = kubeconfig.display().to_string();
    let d = Driver::start_with_env(
        &[
            &format!("--node-id={NODE}"),
            LABELS,
            &format!("--topology={RACK_KEY}=k1"),
            "--topology-aware",
        ],
        Some(cfg),
        &[("KUBECONFIG", &kc)],
    )
    .await?;
    let mut cl = d.client().await?;
    let info = cl
        .node
        .node_get_info(NodeGetInfoRequest {})
        .await?
        .into_inner();
    let topo = info.accessible_topology.context("no accessible_topology")?;
    let want: HashMap<String, String> = [(ZONE_KEY, "z1"), (REGION_KEY, "r1"), (RACK_KEY, "k1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ensure!(topo.segments == want, "segments {:?}", topo.segments);
    let caps = cl
        .identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await?
        .into_inner();
    let wanted = service::Type::VolumeAccessibilityConstraints as i32;
    ensure!(
        caps.capabilities
            .iter()
            .any(|c| matches!(&c.r#type, Some(Type::Service(s)) if s.r#type == wanted)),
        "VOLUME_ACCESSIBILITY_CONSTRAINTS not advertised"
    );

    let pools = json!([{"poolName": c.pool, "domainSegments": [
        {"domainLabel": "zone", "value": "z1"}, {"domainLabel": "region", "value": "r1"}]}]);
    let req = CreateVolumeRequest {
        name: format!("domain-labels-{}", std::process::id()),
        capacity_range: Some(berth_csi::csi::CapacityRange {
            required_bytes: 1 << 30,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![berth_csi::csi::VolumeCapability {
            access_type: Some(berth_csi::csi::volume_capability::AccessType::Block(
                Default::default(),
            )),
            access_mode: Some(berth_csi::csi::volume_capability::AccessMode {
                mode: berth_csi::csi::volume_capability::access_mode::Mode::SingleNodeWriter as i32,
            }),
        }],
        parameters: HashMap::from([
            ("clusterID".to_string(), cluster_id.to_string()),
            ("topologyConstrainedPools".to_string(), pools.to_string()),
        ]),
        secrets: HashMap::from([
            ("userID".to_string(), c.client_id.clone()),
            ("userKey".to_string(), c.client_key.clone()),
        ]),
        accessibility_requirements: Some(TopologyRequirement {
            requisite: vec![topo.clone()],
            preferred: vec![],
        }),
        ..Default::default()
    };
    let vol = cl
        .controller
        .create_volume(req.clone())
        .await?
        .into_inner()
        .volume
        .context("no volume")?;
    let created: Vec<Topology> = vol.accessible_topology.clone();
    cl.controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: vol.volume_id.clone(),
            secrets: req.secrets.clone(),
        })
        .await?;
    // The segments the pool's domain matched (the rack does not narrow where it is reachable).
    let mut zone_region = topo.clone();
    zone_region.segments.remove(RACK_KEY);
    ensure!(
        created == vec![zone_region],
        "accessible_topology {created:?} is not the node's zone and region"
    );
    // The purge of the trashed image runs in this driver: wait for it before stopping it.
    let mut left = Vec::new();
    berth_tests::proc::wait_until("empty pool", Duration::from_secs(60), || {
        left = c.pool_leftovers();
        left.is_empty()
    })
    .with_context(|| format!("left in Ceph: {left:?}"))?;
    drop(d);
    Ok(())
}

/// Start `berth-csi --mode=node` expecting it to refuse: (exited 0?, stderr, time to exit).
/// Killed after 30 s; the socket must never appear.
fn refused_start(
    dir: &Path,
    cfg: &Path,
    kubeconfig: &Path,
    labels: &str,
    wait_ms: u64,
) -> Result<(bool, String, Duration)> {
    let socket = dir.join("refused.sock");
    let err_file = dir.join("refused.stderr");
    let t0 = Instant::now();
    let mut child = Command::new(berth_tests::driver::binary()?)
        .args([
            "--mode=node".to_string(),
            format!("--endpoint=unix://{}", socket.display()),
            format!("--state-dir={}", dir.join("state").display()),
            format!("--cluster-config={}", cfg.display()),
            format!("--node-id={NODE}"),
            labels.to_string(),
            format!("--domain-labels-wait-ms={wait_ms}"),
        ])
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_file)?)
        .spawn()?;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("berth-csi still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    let stderr = std::fs::read_to_string(&err_file)?;
    ensure!(!socket.exists(), "the socket was bound: {stderr}");
    Ok((status.success(), stderr, took))
}
