//! What the controller tells about itself and its volumes: ListVolumes pagination,
//! capabilities, GetCapacity, Prometheus metrics and /healthz.

use std::io::{Read, Write};

use anyhow::{Result, ensure};
use berth_csi::csi::{
    ControllerGetCapabilitiesRequest, DeleteVolumeRequest, GetCapacityRequest, ListVolumesRequest,
    controller_service_capability as csc,
};
use berth_tests::ceph::Cluster;
use tonic::Code;

use super::common::*;

pub fn list_volumes(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let mut mine = Vec::new();
        for _ in 0..5 {
            let v = cl
                .controller
                .create_volume(create_req(c, &name("list"), GIB))
                .await?
                .into_inner();
            mine.push(v.volume.unwrap().volume_id);
        }
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let r = cl
                .controller
                .list_volumes(ListVolumesRequest {
                    max_entries: 2,
                    starting_token: token,
                })
                .await?
                .into_inner();
            ensure!(r.entries.len() <= 2, "page too big");
            seen.extend(r.entries.into_iter().map(|e| e.volume.unwrap().volume_id));
            pages += 1;
            token = r.next_token;
            if token.is_empty() {
                break;
            }
        }
        ensure!(pages >= 3, "pages {pages}");
        for id in &mine {
            ensure!(
                seen.iter().filter(|s| *s == id).count() == 1,
                "{id} listed {} times",
                seen.iter().filter(|s| *s == id).count()
            );
        }
        let r = cl
            .controller
            .list_volumes(ListVolumesRequest {
                max_entries: 0,
                starting_token: "bogus".into(),
            })
            .await;
        ensure!(code(&r) == Code::Aborted, "bad token: {r:?}");
        let r = cl
            .controller
            .list_volumes(ListVolumesRequest {
                max_entries: -1,
                starting_token: String::new(),
            })
            .await;
        ensure!(code(&r) == Code::InvalidArgument, "negative max");
        for id in mine {
            cl.controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: id,
                    secrets: secrets(c),
                })
                .await?;
        }
        Ok(())
    })
}

pub fn capabilities_and_capacity(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let caps = cl.controller.controller_get_capabilities(ControllerGetCapabilitiesRequest {}).await?.into_inner();
        let types: Vec<i32> = caps
            .capabilities
            .iter()
            .filter_map(|c| c.r#type.as_ref().map(|csc::Type::Rpc(r)| r.r#type))
            .collect();
        use csc::rpc::Type as T;
        for t in [T::CreateDeleteVolume, T::CreateDeleteSnapshot, T::CloneVolume, T::ExpandVolume, T::ListVolumes, T::ListSnapshots, T::GetCapacity] {
            ensure!(types.contains(&(t as i32)), "{t:?} not advertised");
        }
        // ControllerPublish records which nodes hold a volume (the attacher's multi-attach fence).
        ensure!(types.contains(&(T::PublishUnpublishVolume as i32)), "publish not advertised");
        // The figure is the cluster's own (`ceph df`; 0 here: usage stats come from a mgr,
        // which the test cluster does not run).
        let df: serde_json::Value = serde_json::from_str(&c.ceph(&["df", "--format", "json"])?)?;
        let avail = df["stats"]["total_avail_bytes"].as_i64().unwrap_or(-1);
        for p in [Default::default(), params(c)] {
            let r = cl.controller.get_capacity(GetCapacityRequest { parameters: p, ..Default::default() }).await?.into_inner();
            ensure!(r.available_capacity == avail, "capacity {} vs ceph df {avail}", r.available_capacity);
            ensure!(r.maximum_volume_size == Some(1 << 50), "max size {:?}", r.maximum_volume_size);
        }
        let mut bad = params(c);
        bad.remove("pool");
        let r = cl.controller.get_capacity(GetCapacityRequest { parameters: bad, ..Default::default() }).await;
        ensure!(code(&r) == Code::InvalidArgument, "params without pool");
        let pubr = cl.controller.controller_publish_volume(berth_csi::csi::ControllerPublishVolumeRequest::default()).await;
        ensure!(code(&pubr) == Code::InvalidArgument, "publish without a volume id");
        // Without controller credentials, LIST_VOLUMES / GET_CAPACITY are not advertised.
        let bare = berth_tests::driver::Driver::start(&["--mode=controller"], Some(&c.csi_cluster_config(CLUSTER_ID))).await?;
        let caps = bare.client().await?.controller.controller_get_capabilities(ControllerGetCapabilitiesRequest {}).await?.into_inner();
        ensure!(!caps.capabilities.iter().any(|c| matches!(&c.r#type, Some(csc::Type::Rpc(r)) if r.r#type == T::ListVolumes as i32 || r.r#type == T::GetCapacity as i32)), "advertised without creds");
        Ok(())
    })
}

pub fn metrics(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let port = berth_tests::proc::free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let d = driver(c, &[&format!("--metrics-address={addr}")]).await?;
        let mut cl = d.client().await?;
        let v = cl
            .controller
            .create_volume(create_req(c, &name("metrics"), GIB))
            .await?
            .into_inner();
        let _ = cl
            .controller
            .delete_volume(DeleteVolumeRequest::default())
            .await;
        cl.controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: v.volume.unwrap().volume_id,
                secrets: secrets(c),
            })
            .await?;
        let get = |path: &str| -> Result<String> {
            let mut s = std::net::TcpStream::connect(&addr)?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        };
        let m = get("/metrics")?;
        ensure!(
            m.contains("berth_csi_rpc_total{method=\"CreateVolume\",code=\"OK\"} 1"),
            "{m}"
        );
        ensure!(
            m.contains("berth_csi_rpc_total{method=\"DeleteVolume\",code=\"INVALID_ARGUMENT\"} 1"),
            "{m}"
        );
        ensure!(
            m.contains("berth_csi_rpc_duration_seconds_count{method=\"DeleteVolume\"} 2"),
            "{m}"
        );
        ensure!(m.contains("berth_csi_ceph_connections 1"), "{m}");
        ensure!(get("/healthz")?.starts_with("HTTP/1.1 200"), "healthz");
        Ok(())
    })
}
