//! QoS through VolumeAttributesClass: mutable parameters `rbd_qos_*` at CreateVolume and
//! ControllerModifyVolume land in the image's metadata as `conf_rbd_qos_*`, which librbd
//! clients apply; bad keys and values are INVALID_ARGUMENT, unknown volumes NOT_FOUND.

use std::collections::HashMap;

use anyhow::{Result, ensure};
use berth_csi::csi::ControllerModifyVolumeRequest;
use berth_csi::volume_id::VolumeId;
use berth_tests::ceph::Cluster;
use tonic::Code;

use super::common::*;

/// One metadata value of an image (`rbd image-meta get`), `None` when unset.
fn meta(c: &Cluster, image: &str, key: &str) -> Option<String> {
    c.rbd(&["image-meta", "get", &format!("{}/{image}", c.pool), key])
        .ok()
        .map(|s| s.trim().to_string())
}

const QOS: [&str; 6] = [
    "rbd_qos_iops_limit",
    "rbd_qos_bps_limit",
    "rbd_qos_read_iops_limit",
    "rbd_qos_write_iops_limit",
    "rbd_qos_read_bps_limit",
    "rbd_qos_write_bps_limit",
];

fn mutable(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn qos_mutable_parameters(c: &Cluster) -> Result<()> {
    rt().block_on(async {
        let d = driver(c, &[]).await?;
        let mut cl = d.client().await?;
        let caps = cl
            .controller
            .controller_get_capabilities(berth_csi::csi::ControllerGetCapabilitiesRequest {})
            .await?
            .into_inner();
        use berth_csi::csi::controller_service_capability::{Type, rpc};
        let modify = rpc::Type::ModifyVolume as i32;
        ensure!(
            caps.capabilities
                .iter()
                .any(|c| matches!(&c.r#type, Some(Type::Rpc(r)) if r.r#type == modify)),
            "MODIFY_VOLUME not advertised"
        );
        let mut req = create_req(c, &name("qos"), GIB);
        req.mutable_parameters = mutable(&[("rbd_qos_iops_limit", "100")]);
        let vol = cl.controller.create_volume(req).await?.into_inner();
        let id = vol.volume.unwrap().volume_id;
        let image = VolumeId::decode(&id)?.image;
        let got = meta(c, &image, "conf_rbd_qos_iops_limit");
        ensure!(got.as_deref() == Some("100"), "iops at create: {got:?}");

        let modify = |params: &[(&str, &str)], id: &str| ControllerModifyVolumeRequest {
            volume_id: id.to_string(),
            secrets: secrets(c),
            mutable_parameters: mutable(params),
        };
        cl.controller
            .controller_modify_volume(modify(
                &[
                    ("rbd_qos_iops_limit", "0"),
                    ("rbd_qos_bps_limit", "1048576"),
                    ("rbd_qos_read_iops_limit", "10"),
                    ("rbd_qos_write_iops_limit", "20"),
                    ("rbd_qos_read_bps_limit", "30"),
                    ("rbd_qos_write_bps_limit", "40"),
                ],
                &id,
            ))
            .await?;
        for (k, want) in [
            ("iops", "0"),
            ("bps", "1048576"),
            ("read_iops", "10"),
            ("write_iops", "20"),
            ("read_bps", "30"),
            ("write_bps", "40"),
        ] {
            let got = meta(c, &image, &format!("conf_rbd_qos_{k}_limit"));
            ensure!(got.as_deref() == Some(want), "{k}: {got:?}, want {want}");
        }
        for bad in [
            &[("rbd_qos_iops_limit", "-1")][..],
            &[("rbd_qos_iops_limit", "ten")],
            &[("rbd_qos_iops_limit", "")],
            &[("rbd_qos_iops_limit", "18446744073709551616")],
            &[("XXX_FakeKey", "1")],
            &[("conf_rbd_cache", "false")],
        ] {
            let r = cl
                .controller
                .controller_modify_volume(modify(bad, &id))
                .await;
            ensure!(code(&r) == Code::InvalidArgument, "{bad:?}: {r:?}");
            let mut req = create_req(c, &name("qos-bad"), GIB);
            req.mutable_parameters = mutable(bad);
            let r = cl.controller.create_volume(req).await;
            ensure!(code(&r) == Code::InvalidArgument, "create {bad:?}: {r:?}");
        }
        let gone = VolumeId::new(CLUSTER_ID, &c.pool, "no-such-image")
            .encode()
            .unwrap();
        for id in ["not-ours", gone.as_str()] {
            let r = cl
                .controller
                .controller_modify_volume(modify(&[("rbd_qos_iops_limit", "1")], id))
                .await;
            ensure!(code(&r) == Code::NotFound, "{id}: {r:?}");
        }
        let r = cl
            .controller
            .controller_modify_volume(modify(&[("rbd_qos_iops_limit", "1")], ""))
            .await;
        ensure!(code(&r) == Code::InvalidArgument, "no id: {r:?}");
        // librbd applies it: 40 writes of one client at 10 IOPS take seconds, not milliseconds.
        let bench = |c: &Cluster| -> Result<std::time::Duration> {
            let t0 = std::time::Instant::now();
            c.rbd(&[
                "bench",
                "--io-type",
                "write",
                "--io-size",
                "4K",
                "--io-total",
                "160K",
                "--io-threads",
                "1",
                &format!("{}/{image}", c.pool),
            ])?;
            Ok(t0.elapsed())
        };
        let unlimited: Vec<(&str, &str)> = QOS.iter().map(|k| (*k, "0")).collect();
        cl.controller
            .controller_modify_volume(modify(&unlimited, &id))
            .await?;
        let free = bench(c)?;
        cl.controller
            .controller_modify_volume(modify(&[("rbd_qos_iops_limit", "10")], &id))
            .await?;
        let limited = bench(c)?;
        eprintln!("rbd bench, 40 x 4 KiB writes: {free:?} unlimited, {limited:?} at 10 IOPS");
        ensure!(
            limited >= std::time::Duration::from_secs(2) && limited > free * 3,
            "QoS not applied by librbd: {limited:?} limited vs {free:?} free"
        );
        cl.controller
            .delete_volume(berth_csi::csi::DeleteVolumeRequest {
                volume_id: id,
                secrets: secrets(c),
            })
            .await?;
        Ok(())
    })
}
