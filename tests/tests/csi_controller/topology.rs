//! Topology-aware provisioning on real Ceph: `topologyConstrainedPools` (ceph-csi's JSON)
//! places a volume in the pool whose domain matches the request's preferred, then requisite
//! topology; the volume's accessible_topology says where it is reachable from; no fitting
//! pool is RESOURCE_EXHAUSTED, bad JSON INVALID_ARGUMENT.

use std::collections::HashMap;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use berth_csi::csi::{DeleteVolumeRequest, Topology, TopologyRequirement};
use berth_csi::volume_id::VolumeId;
use berth_tests::ceph::Cluster;
use tonic::Code;

use super::common::*;

/// A second pool, removed at the end.
struct Pool<'a> {
    cluster: &'a Cluster,
    name: String,
}

impl<'a> Pool<'a> {
    fn create(cluster: &'a Cluster, name: &str) -> Result<Pool<'a>> {
        let pool = Pool {
            cluster,
            name: name.to_string(),
        };
        cluster.ceph(&["osd", "pool", "create", name, "8", "8"])?;
        let out = Command::new("rbd")
            .arg("-c")
            .arg(&cluster.conf)
            .args(["pool", "init", name])
            .output()?;
        ensure!(out.status.success(), "rbd pool init: {out:?}");
        Ok(pool)
    }
}

impl Drop for Pool<'_> {
    fn drop(&mut self) {
        let n = &self.name;
        let _ = self
            .cluster
            .ceph(&["osd", "pool", "rm", n, n, "--yes-i-really-really-mean-it"]);
    }
}

fn topo(zone: &str) -> Topology {
    Topology {
        segments: HashMap::from([(
            "topology.rbd.csi.berth.dev/zone".to_string(),
            zone.to_string(),
        )]),
    }
}

pub fn topology_constrained_pools(c: &Cluster) -> Result<()> {
    let other = Pool::create(c, &format!("topo-{}", std::process::id()))?;
    rt().block_on(async {
        use berth_csi::csi::plugin_capability::{Type, service};
        let wanted = service::Type::VolumeAccessibilityConstraints as i32;
        let advertises = |caps: &berth_csi::csi::GetPluginCapabilitiesResponse| {
            caps.capabilities
                .iter()
                .any(|c| matches!(&c.r#type, Some(Type::Service(s)) if s.r#type == wanted))
        };
        // Without --topology-aware a controller must not claim it: the external-provisioner
        // then refuses every PVC while no node reports a topology ("no available topology
        // found"), which is every cluster whose nodes run without --topology.
        {
            let plain = driver(c, &[]).await?;
            let caps = (plain.client().await?.identity)
                .get_plugin_capabilities(berth_csi::csi::GetPluginCapabilitiesRequest {})
                .await?
                .into_inner();
            ensure!(
                !advertises(&caps),
                "a controller without --topology-aware advertises VOLUME_ACCESSIBILITY_CONSTRAINTS"
            );
        }
        let d = driver(c, &["--topology-aware"]).await?;
        let mut cl = d.client().await?;
        let caps = cl
            .identity
            .get_plugin_capabilities(berth_csi::csi::GetPluginCapabilitiesRequest {})
            .await?
            .into_inner();
        ensure!(
            advertises(&caps),
            "VOLUME_ACCESSIBILITY_CONSTRAINTS not advertised"
        );
        // The admin may use both pools (the shared test client's caps name one).
        let admin = HashMap::from([
            ("userID".to_string(), "admin".to_string()),
            ("userKey".to_string(), c.admin_key.clone()),
        ]);
        let pools = serde_json::json!([
            {"poolName": c.pool, "domainSegments": [{"domainLabel": "zone", "value": "a"}]},
            {"poolName": other.name, "domainSegments": [{"domainLabel": "zone", "value": "b"}]},
        ])
        .to_string();
        let req = |requisite: Vec<Topology>, preferred: Vec<Topology>| {
            let mut r = create_req(c, &name("topo"), GIB);
            r.parameters.remove("pool");
            r.parameters
                .insert("topologyConstrainedPools".into(), pools.clone());
            r.secrets = admin.clone();
            if !requisite.is_empty() || !preferred.is_empty() {
                r.accessibility_requirements = Some(TopologyRequirement {
                    requisite,
                    preferred,
                });
            }
            r
        };
        let mut made = Vec::new();
        for (requisite, preferred, want_pool, want_zone) in [
            (vec![topo("b")], vec![], &other.name, "b"),
            (vec![topo("b"), topo("a")], vec![topo("a")], &c.pool, "a"),
            (
                vec![topo("c"), topo("b")],
                vec![topo("c")],
                &other.name,
                "b",
            ),
        ] {
            let v = cl
                .controller
                .create_volume(req(requisite, preferred))
                .await?
                .into_inner()
                .volume
                .context("no volume")?;
            let id = VolumeId::decode(&v.volume_id)?;
            ensure!(
                id.pool == *want_pool,
                "placed in {}, want {want_pool}",
                id.pool
            );
            ensure!(
                v.accessible_topology == vec![topo(want_zone)],
                "accessible {:?}",
                v.accessible_topology
            );
            let out = Command::new("rbd")
                .arg("-c")
                .arg(&c.conf)
                .args(["ls", want_pool])
                .output()?;
            ensure!(
                String::from_utf8_lossy(&out.stdout).contains(&id.image),
                "{} not in pool {want_pool}",
                id.image
            );
            made.push(v.volume_id);
        }
        let r = cl
            .controller
            .create_volume(req(vec![topo("z")], vec![]))
            .await;
        ensure!(
            code(&r) == Code::ResourceExhausted,
            "no fitting pool: {r:?}"
        );
        let r = cl.controller.create_volume(req(vec![], vec![])).await;
        ensure!(
            code(&r) == Code::InvalidArgument,
            "no topology, no pool: {r:?}"
        );
        let mut bad = req(vec![topo("a")], vec![]);
        bad.parameters
            .insert("topologyConstrainedPools".into(), "[{\"poolName\":".into());
        let r = cl.controller.create_volume(bad).await;
        ensure!(code(&r) == Code::InvalidArgument, "bad JSON: {r:?}");
        // Without topologyConstrainedPools a topology changes nothing (csi-sanity sends one).
        let mut plain = create_req(c, &name("topo-plain"), GIB);
        plain.accessibility_requirements = Some(TopologyRequirement {
            requisite: vec![topo("z")],
            preferred: vec![],
        });
        let v = cl.controller.create_volume(plain).await?.into_inner();
        let v = v.volume.context("no volume")?;
        ensure!(
            v.accessible_topology.is_empty(),
            "{:?}",
            v.accessible_topology
        );
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: v.volume_id,
                secrets: secrets(c),
            })
            .await?;
        // With `pool` too, a request without topology goes there.
        let mut plain = req(vec![], vec![]);
        plain.parameters.insert("pool".into(), c.pool.clone());
        let v = cl.controller.create_volume(plain).await?.into_inner();
        let v = v.volume.context("no volume")?;
        ensure!(
            v.accessible_topology.is_empty(),
            "{:?}",
            v.accessible_topology
        );
        made.push(v.volume_id);
        for id in made {
            cl.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: id,
                    secrets: admin.clone(),
                })
                .await?;
        }
        Ok(())
    })?;
    // The trash purger may still be removing the image from the other pool.
    for _ in 0..50 {
        let out = Command::new("rbd")
            .arg("-c")
            .arg(&c.conf)
            .args(["trash", "ls", &other.name])
            .output()?;
        if out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}
