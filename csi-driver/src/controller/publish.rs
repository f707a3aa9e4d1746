//! ControllerPublishVolume / ControllerUnpublishVolume: the durable record of which nodes hold
//! a volume, so Kubernetes' attach/detach controller (through the external-attacher) never
//! gets one single-node volume onto two nodes.
//!
//! The record is `pub/<image>` in the pool's journal object (see [`crate::ceph::journal`]),
//! rewritten with a compare-and-swap: two controllers racing for one volume cannot both win,
//! and a crash leaves the old or the new record, which a retry completes. Nothing is attached
//! here (the node attaches at NodeStage); publish_context is empty.
//!
//! Rules ([`admit`], pure):
//! - the same node again with the same capability and readonly flag: OK (idempotent); with a
//!   different one: ALREADY_EXISTS;
//! - another node holds the volume and either side is SINGLE_NODE_*: FAILED_PRECONDITION
//!   naming the holder(s); MULTI_NODE_SINGLE_WRITER allows one writer and readers;
//!   MULTI_NODE_* otherwise allow any number of nodes;
//! - unknown volume (undecodable, missing image, deleted through CSI): NOT_FOUND; unknown node:
//!   NOT_FOUND when this process serves the node itself (`--mode all`: it is the only node
//!   it knows); a split controller takes the CO's node IDs as they come (Kubernetes only sends
//!   IDs its nodes registered through NodeGetInfo).
//!
//! Static volumes (see [`crate::static_volume`]) are published without a record: only the
//! image's existence is checked.
//!
//! Unpublish: removes the node (every node when node_id is empty); a node that does not hold
//! the volume, an unknown volume or node: OK (the spec lets a volume that cannot be found be
//! regarded as unpublished).

use crate::ceph::ceph_err;
use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::Image;
use crate::ceph::journal::{self, Holder, Publications};
use crate::csi::volume_capability::AccessType;
use crate::csi::volume_capability::access_mode::Mode;
use crate::csi::{
    ControllerPublishVolumeRequest, ControllerPublishVolumeResponse,
    ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse,
};
use crate::error::{Error, Result};
use crate::params;
use crate::volume_id::VolumeId;

use super::Controller;

/// Compare-and-swap rounds before giving up with ABORTED (the CO retries). Each lost round
/// means another controller wrote this volume's record in between: a handful is plenty.
const SWAP_ROUNDS: usize = 16;

/// Longest node ID (NodeGetInfo allows 256 bytes).
const MAX_NODE_ID: usize = 256;

fn single_node(mode: i32) -> bool {
    Mode::try_from(mode).is_ok_and(|m| m.as_str_name().starts_with("SINGLE_NODE_"))
}

fn mode_name(mode: i32) -> &'static str {
    Mode::try_from(mode).map_or("UNKNOWN", |m| m.as_str_name())
}

/// The publications after adding `node` with `want`, `None` when it already holds it so
/// (idempotent), or why not. Pure.
pub fn admit(p: &Publications, node: &str, want: &Holder) -> Result<Option<Publications>> {
    if let Some(h) = p.nodes.get(node) {
        if h == want {
            return Ok(None);
        }
        return Err(Error::PublishedAs {
            node: node.to_string(),
            how: format!(
                "{}{} ({})",
                mode_name(h.mode),
                if h.readonly { ", read-only" } else { "" },
                if h.block { "block" } else { "filesystem" }
            ),
        });
    }
    let others: Vec<(&String, &Holder)> = p.nodes.iter().collect();
    if !others.is_empty() {
        let names = || {
            others
                .iter()
                .map(|(n, h)| format!("{n:?} ({})", mode_name(h.mode)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if single_node(want.mode) || others.iter().any(|(_, h)| single_node(h.mode)) {
            return Err(Error::HeldBySingleNode { holders: names() });
        }
        let writer = |h: &Holder| h.mode == Mode::MultiNodeSingleWriter as i32 && !h.readonly;
        if writer(want) && others.iter().any(|(_, h)| writer(h)) {
            return Err(Error::SingleWriterTaken { holders: names() });
        }
    }
    let mut next = p.clone();
    next.nodes.insert(node.to_string(), want.clone());
    Ok(Some(next))
}

pub(super) async fn publish_volume(
    c: &Controller,
    req: ControllerPublishVolumeRequest,
) -> Result<ControllerPublishVolumeResponse> {
    if req.volume_id.is_empty() {
        return Err(Error::Missing { field: "volume_id" });
    }
    if req.node_id.is_empty() {
        return Err(Error::Missing { field: "node_id" });
    }
    let cap = req.volume_capability.as_ref().ok_or(Error::Missing {
        field: "volume_capability",
    })?;
    params::check_capability(cap)?;
    let missing = || Error::VolumeNotFound {
        id: req.volume_id.clone(),
    };
    let id = crate::static_volume::resolve(&req.volume_id, &req.volume_context)
        .map_err(|e| e.unwrap_or_else(missing))?;
    let is_static = crate::static_volume::is_static(&req.volume_context);
    if req.node_id.len() > MAX_NODE_ID {
        return Err(Error::NodeNotFound {
            node: req.node_id.clone(),
        });
    }
    if let Some(own) = &c.opts().local_node
        && *own != req.node_id
    {
        return Err(Error::NotThisNode {
            node: req.node_id.clone(),
            own: own.clone(),
        });
    }
    let target = c
        .target_with(&id.cluster_id, &id.pool, &id.namespace, &req.secrets, true)?
        .ok_or_else(missing)?;
    let want = Holder {
        mode: cap.access_mode.as_ref().map_or(0, |m| m.mode),
        readonly: req.readonly,
        block: matches!(cap.access_type, Some(AccessType::Block(_))),
    };
    let guard = c.locks().try_lock(&format!("volume/{}", req.volume_id))?;
    let (image, node, vid) = (id.image.clone(), req.node_id.clone(), req.volume_id.clone());
    c.ceph()
        .with_pool_held(&target, guard, move |io| {
            let missing = || Error::VolumeNotFound { id: vid.clone() };
            if journal::is_gone(io, &image)? {
                return Err(missing());
            }
            // Static volumes (images berth did not create) are published too: the record is
            // berth's own key, the image is only looked at.
            Image::open(io, &image, true).map_err(|e| match e {
                Errno(libc::ENOENT) => missing(),
                e => ceph_err(format!("open image {image}"), e),
            })?;
            if is_static {
                // No record: ControllerUnpublish (no volume context) could not find it again.
                return Ok(());
            }
            swap(io, &image, |p| admit(p, &node, &want))
        })
        .await?;
    tracing::info!(volume = %req.volume_id, node = %req.node_id, "published");
    Ok(ControllerPublishVolumeResponse {
        publish_context: Default::default(),
    })
}

/// Read the record, let `change` decide (`None`: nothing to write), swap; again when another
/// writer won the round.
fn swap(
    io: &IoCtx<'_>,
    image: &str,
    change: impl Fn(&Publications) -> Result<Option<Publications>>,
) -> Result<()> {
    for _ in 0..SWAP_ROUNDS {
        let (raw, current) = journal::publications(io, image)?;
        let Some(next) = change(&current)? else {
            return Ok(());
        };
        if journal::swap_publications(io, image, raw.as_deref(), &next)? {
            return Ok(());
        }
    }
    Err(Error::PublishRecordContended {
        image: image.to_string(),
    })
}

pub(super) async fn unpublish_volume(
    c: &Controller,
    req: ControllerUnpublishVolumeRequest,
) -> Result<ControllerUnpublishVolumeResponse> {
    if req.volume_id.is_empty() {
        return Err(Error::Missing { field: "volume_id" });
    }
    // A volume we cannot find is not published anywhere we know of.
    let Ok(id) = VolumeId::decode(&req.volume_id) else {
        return Ok(ControllerUnpublishVolumeResponse {});
    };
    let Some(target) =
        c.target_with(&id.cluster_id, &id.pool, &id.namespace, &req.secrets, true)?
    else {
        return Ok(ControllerUnpublishVolumeResponse {});
    };
    let guard = c.locks().try_lock(&format!("volume/{}", req.volume_id))?;
    let (image, node) = (id.image.clone(), req.node_id.clone());
    let result = c
        .ceph()
        .with_pool_held(&target, guard, move |io| {
            swap(io, &image, |p| {
                let mut next = p.clone();
                if node.is_empty() {
                    next.nodes.clear();
                } else {
                    next.nodes.remove(&node);
                }
                Ok((next != *p).then_some(next))
            })
        })
        .await;
    match result {
        Ok(()) | Err(Error::PoolNotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    tracing::info!(volume = %req.volume_id, node = %req.node_id, "unpublished");
    Ok(ControllerUnpublishVolumeResponse {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(mode: Mode, readonly: bool) -> Holder {
        Holder {
            mode: mode as i32,
            readonly,
            block: false,
        }
    }

    fn with(nodes: &[(&str, Holder)]) -> Publications {
        Publications {
            nodes: nodes
                .iter()
                .map(|(n, h)| (n.to_string(), h.clone()))
                .collect(),
        }
    }

    #[test]
    fn single_node_modes_hold_one_node() {
        let snw = h(Mode::SingleNodeWriter, false);
        let a = admit(&Publications::default(), "a", &snw).unwrap().unwrap();
        assert_eq!(admit(&a, "a", &snw).unwrap(), None, "idempotent");
        for mode in [
            Mode::SingleNodeWriter,
            Mode::SingleNodeReaderOnly,
            Mode::SingleNodeSingleWriter,
            Mode::SingleNodeMultiWriter,
            Mode::MultiNodeMultiWriter,
            Mode::MultiNodeReaderOnly,
        ] {
            let e = admit(&a, "b", &h(mode, true)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{mode:?}");
            assert!(e.to_string().contains("\"a\""), "names the holder: {e}");
        }
        let e = admit(&a, "a", &h(Mode::SingleNodeWriter, true)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists);
    }

    #[test]
    fn multi_node_modes_share() {
        let mnmw = h(Mode::MultiNodeMultiWriter, false);
        let p = admit(&Publications::default(), "a", &mnmw)
            .unwrap()
            .unwrap();
        let p = admit(&p, "b", &mnmw).unwrap().unwrap();
        assert_eq!(p.nodes.len(), 2);
        let e = admit(&p, "c", &h(Mode::SingleNodeWriter, false)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        let w = h(Mode::MultiNodeSingleWriter, false);
        let r = h(Mode::MultiNodeSingleWriter, true);
        let p = with(&[("a", w.clone())]);
        let p = admit(&p, "b", &r).unwrap().unwrap();
        assert_eq!(
            admit(&p, "c", &w).unwrap_err().code(),
            tonic::Code::FailedPrecondition,
            "a second writer"
        );
    }
}
