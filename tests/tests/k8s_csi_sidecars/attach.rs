//! The attach path through the real csi-attacher: a ReadWriteOnce volume is on one node at a
//! time. There is no kubelet, so the test writes what kubelet and the attach/detach controller
//! would: a Node and a CSINode (berth's node ID) per node, and the VolumeAttachments.
//!
//! berth-csi runs `--mode controller`, which takes the CO's node IDs as they come (Kubernetes
//! sends only IDs its nodes registered through NodeGetInfo, i.e. the CSINode's `nodeID`); the
//! attacher maps a VolumeAttachment's node name to that ID through the CSINode.
//!
//! node A's attachment -> attached; node B's -> not attached, its attachError is berth's
//! FAILED_PRECONDITION naming node A; A's deleted -> detached (ControllerUnpublish, the
//! attacher's finalizer removed); then B's attaches. Seconds per step are printed.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_tests::k8s::{ControlPlane, wait_for};
use serde_json::json;

use super::step;

const DRIVER: &str = "rbd.csi.berth.dev";
const NODE_A: &str = "berth-node-a";
const NODE_B: &str = "berth-node-b";
/// The attacher retries a refused attachment with exponential backoff (1 s doubling, up to
/// 5 min): B's attachment waits for its next retry after A's is gone.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(120);

fn va_name(node: &str) -> String {
    format!("va-{node}")
}

/// A Node and its CSINode naming berth's node ID (what kubelet's registration writes).
fn register_node(cp: &ControlPlane, node: &str) -> Result<()> {
    let n = cp.kubectl(&["get", "node", node, "-o", "name"]);
    if n.is_err() {
        cp.apply(
            &json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}}})
            .to_string(),
        )?;
    }
    let uid = cp.kubectl(&["get", "node", node, "-o=jsonpath={.metadata.uid}"])?;
    cp.apply(
        &json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
            "metadata": {"name": node, "ownerReferences": [{"apiVersion": "v1",
                "kind": "Node", "name": node, "uid": uid.trim()}]},
            "spec": {"drivers": [{"name": DRIVER, "nodeID": node, "topologyKeys": null}]}})
        .to_string(),
    )?;
    Ok(())
}

fn attach(cp: &ControlPlane, node: &str, pv: &str) -> Result<()> {
    cp.apply(
        &json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
            "metadata": {"name": va_name(node)},
            "spec": {"attacher": DRIVER, "nodeName": node,
                     "source": {"persistentVolumeName": pv}}})
        .to_string(),
    )?;
    Ok(())
}

fn attached(cp: &ControlPlane, node: &str) -> Result<()> {
    wait_for(
        cp,
        &["volumeattachment", &va_name(node)],
        "{.status.attached}",
        "true",
    )
}

fn va_field(cp: &ControlPlane, node: &str, jsonpath: &str) -> Result<String> {
    Ok(cp
        .kubectl(&[
            "get",
            "volumeattachment",
            &va_name(node),
            &format!("-o=jsonpath={jsonpath}"),
        ])?
        .trim()
        .to_owned())
}

fn detach(cp: &ControlPlane, node: &str) -> Result<()> {
    cp.kubectl(&[
        "delete",
        "volumeattachment",
        &va_name(node),
        "--wait=true",
        "--timeout=120s",
    ])?;
    Ok(())
}

/// The flow on PV `pv` (a bound ReadWriteOnce volume).
pub fn flow(cp: &ControlPlane, pv: &str) -> Result<()> {
    step("two nodes registered (Node + CSINode)", || {
        register_node(cp, NODE_A)?;
        register_node(cp, NODE_B)
    })?;
    step("VolumeAttachment on node A -> attached", || {
        attach(cp, NODE_A, pv)?;
        attached(cp, NODE_A)
    })?;
    step(
        "VolumeAttachment on node B -> refused, naming node A",
        || {
            attach(cp, NODE_B, pv)?;
            let mut msg = String::new();
            berth_tests::proc::wait_until("node B's attachError", ATTACH_TIMEOUT, || {
                msg = va_field(cp, NODE_B, "{.status.attachError.message}").unwrap_or_default();
                !msg.is_empty()
            })?;
            eprintln!("node B's attachError: {msg}");
            ensure!(
                msg.contains("FailedPrecondition") && msg.contains(NODE_A),
                "node B's attachError is not berth's FAILED_PRECONDITION naming {NODE_A}: {msg:?}"
            );
            let b = va_field(cp, NODE_B, "{.status.attached}")?;
            ensure!(b != "true", "node B attached while node A holds the volume");
            let a = va_field(cp, NODE_A, "{.status.attached}")?;
            ensure!(a == "true", "node A's attachment changed: attached={a:?}");
            Ok(())
        },
    )?;
    step("node A's VolumeAttachment deleted -> detached", || {
        detach(cp, NODE_A)
    })?;
    step("node B's VolumeAttachment -> attached", || {
        berth_tests::proc::wait_until("node B attached", ATTACH_TIMEOUT, || {
            va_field(cp, NODE_B, "{.status.attached}").is_ok_and(|s| s == "true")
        })
        .with_context(|| {
            format!(
                "node B's status: {:?}",
                va_field(cp, NODE_B, "{.status}").unwrap_or_default()
            )
        })
    })?;
    step("node B's VolumeAttachment deleted -> detached", || {
        detach(cp, NODE_B)
    })?;
    Ok(())
}
