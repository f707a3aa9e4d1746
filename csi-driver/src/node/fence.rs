//! The node-side fence, which needs no Kubernetes: NodeStage of a volume with a SINGLE_NODE_*
//! access mode is refused (FAILED_PRECONDITION) while another client has the image open.
//!
//! An RBD client that opens an image read-write (krbd, rbd-nbd, rbd-fuse, a VM) registers a
//! *watch* on its header object; `rbd status` lists the watchers with their client id and
//! address. The check runs before attaching, so this node's own client is never among them,
//! and uses the CLI with the stage's client files ([`crate::attach::client`]) — the node
//! path never loads librbd.
//!
//! A client that died without closing the image (a killed rbd-fuse, a crashed or partitioned
//! node) keeps its watch until the OSD times it out (`osd_client_watch_timeout`, 30 s by
//! default); the refusal says so, so a retry after that is the obvious next step.

use std::process::Command;

use serde::Deserialize;

use crate::attach::client::ClientFiles;
use crate::csi::volume_capability::access_mode::Mode;
use crate::error::Error;
use crate::program::{self, SHORT};
use crate::volume_id::VolumeId;

/// One watcher of an image, as `rbd status --format json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Watcher {
    /// `ip:port/nonce` of the client.
    pub address: String,
    /// The client's global id (`client.<id>`).
    #[serde(default)]
    pub client: u64,
}

#[derive(Debug, Deserialize)]
struct Status {
    #[serde(default)]
    watchers: Vec<Watcher>,
}

/// The watchers in `rbd status --format json` output. Pure.
pub fn parse_status(json: &str) -> Result<Vec<Watcher>, Error> {
    serde_json::from_str::<Status>(json)
        .map(|s| s.watchers)
        .map_err(Error::StatusOutput)
}

/// Does `mode` (wire value) allow one node only?
pub fn single_node(mode: i32) -> bool {
    Mode::try_from(mode).is_ok_and(|m| m.as_str_name().starts_with("SINGLE_NODE_"))
}

/// Why staging must be refused, or `None` when nobody has the image open. Pure.
pub fn refusal(volume: &VolumeId, mode: i32, watchers: &[Watcher]) -> Option<Error> {
    if watchers.is_empty() {
        return None;
    }
    let who: Vec<String> = watchers
        .iter()
        .map(|w| format!("client.{} at {}", w.client, w.address))
        .collect();
    Some(Error::OpenElsewhere {
        spec: volume.spec(),
        watchers: who.join(", "),
        mode: Mode::try_from(mode).map_or("single-node", |m| m.as_str_name()),
    })
}

/// Refuse (FAILED_PRECONDITION) when `mode` is single-node and another client has the image
/// open. Fails closed: when the watchers cannot be read, the stage fails with the reason.
pub fn check(client: &ClientFiles, volume: &VolumeId, mode: i32) -> Result<(), Error> {
    if !single_node(mode) {
        return Ok(());
    }
    let spec = volume.spec();
    let out = program::run(
        Command::new("rbd")
            .arg("-c")
            .arg(&client.conf)
            .args(["--id", &client.user, "status", "--format", "json"])
            .arg(&spec),
        SHORT,
    )
    .map_err(|source| {
        // rbd's own words for a missing image (its exit code is not specific).
        if source.stderr().contains("No such file or directory") {
            Error::ImageNotFound { spec }
        } else {
            Error::WatchersUnknown {
                spec,
                source: Box::new(source),
            }
        }
    })?;
    match refusal(volume, mode, &parse_status(&out)?) {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_from_rbd_status() {
        let none = parse_status(r#"{"watchers":[]}"#).unwrap();
        assert!(none.is_empty());
        let two = parse_status(
            r#"{"watchers":[{"address":"127.0.0.1:0/3712829405","client":4215,"cookie":1},
                {"address":"10.0.0.7:0/99","client":4300,"cookie":2}]}"#,
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].client, 4215);
        assert!(parse_status("rbd: error").is_err());
    }

    #[test]
    fn refusal_names_the_client_and_the_lingering_watch() {
        let v = VolumeId::new("c", "rbd", "img");
        let w = [Watcher {
            address: "127.0.0.1:0/3712829405".into(),
            client: 4215,
        }];
        let mode = Mode::SingleNodeWriter as i32;
        assert!(refusal(&v, mode, &[]).is_none());
        let why = refusal(&v, mode, &w).unwrap();
        assert_eq!(why.code(), tonic::Code::FailedPrecondition);
        let why = why.to_string();
        for part in [
            "rbd/img",
            "client.4215 at 127.0.0.1:0/3712829405",
            "SINGLE_NODE_WRITER",
            "30 s",
        ] {
            assert!(why.contains(part), "{part:?} missing: {why}");
        }
        assert!(single_node(Mode::SingleNodeReaderOnly as i32));
        assert!(single_node(Mode::SingleNodeMultiWriter as i32));
        assert!(!single_node(Mode::MultiNodeMultiWriter as i32));
        assert!(!single_node(Mode::MultiNodeReaderOnly as i32));
    }
}
