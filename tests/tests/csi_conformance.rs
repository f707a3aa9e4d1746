//! berth-csi passes the conformance suite on a real local Ceph cluster, in mount and in block
//! access, with the parameters csi-sanity would use (clusterID, pool, mounter=fuse,
//! imageFeatures=layering) and secrets in the request (userID / userKey).
//!
//! Needs the berth-csi binary next to this test (`cargo build -p berth-csi`) or $BERTH_CSI_BIN.
//! `CONFORMANCE_FILTER=node/` narrows the run; `CONFORMANCE_SIZE` overrides the 10 GiB size.
//!
//! Every case of each run is one counted trial (`berth_csi_conforms_<access>::<case>`); a skip
//! is expected only when it is in [`EXPECTED_SKIPS`] with its reason, so a capability that
//! silently stops being advertised fails.

use std::collections::HashMap;

use std::sync::Arc;

use anyhow::Result;
use berth_conformance::config::SecretFor;
use berth_conformance::{AccessType, Config, Outcome, Report};
use berth_tests::ceph::Cluster;
use berth_tests::driver::Driver;
use berth_tests::suite::run_with_cluster;
use libtest_mimic::{Failed, Trial};

const CLUSTER_ID: &str = "berth-local";

fn main() {
    // The runs go first, one at a time on the shared cluster (each checks afterwards that the
    // pool is empty, so they must not overlap); every case of each run then becomes a trial.
    run_with_cluster(true, |c| {
        [AccessType::Mount, AccessType::Block]
            .into_iter()
            .flat_map(|access| run_trials(c, access))
            .collect()
    })
}

/// The cases skipped because berth does not advertise what they need, with the reason the
/// suite gives: any other skip fails (a capability that silently stops being advertised, or a
/// case that stops running, cannot hide).
const EXPECTED_SKIPS: &[(&str, &str)] = &[
    (
        "controller/get_volume/unknown_not_found",
        "controller does not advertise GET_VOLUME",
    ),
    (
        "controller/get_volume/existing",
        "controller does not advertise GET_VOLUME",
    ),
    (
        "node/publish/readonly_not_writable",
        "only for mount access (this run: block)",
    ),
];

/// One run of the suite; one trial per case, plus the run's cleanup check.
fn run_trials(c: &Arc<Cluster>, access: AccessType) -> Vec<Trial> {
    let prefix = format!("berth_csi_conforms_{access}");
    let (report, left) = match suite(c, access) {
        Ok(r) => r,
        Err(e) => {
            return vec![Trial::test(format!("{prefix}::runs"), move || {
                Err(Failed::from(format!("{e:#}")))
            })];
        }
    };
    let mut trials: Vec<Trial> = report
        .results
        .into_iter()
        .map(|r| {
            let name = format!("{prefix}::{}", r.name);
            match r.outcome {
                Outcome::Passed => Trial::test(name, || Ok(())),
                Outcome::Failed(why) => Trial::test(name, move || Err(Failed::from(why))),
                Outcome::Skipped(why) if EXPECTED_SKIPS.contains(&(r.name, why.as_str())) => {
                    Trial::test(name, || Ok(())).with_ignored_flag(true)
                }
                Outcome::Skipped(why) => Trial::test(name, move || {
                    Err(Failed::from(format!(
                        "skipped, and not in EXPECTED_SKIPS: {why}"
                    )))
                }),
            }
        })
        .collect();
    trials.push(Trial::test(
        format!("{prefix}::leaves_the_pool_trash_and_journal_empty"),
        move || match left.is_empty() {
            true => Ok(()),
            false => Err(Failed::from(format!(
                "left behind after cleanup (images, trash, journal): {left:?}"
            ))),
        },
    ));
    trials
}

/// The secrets file csi-sanity would get: every section holds the CSI user's credentials.
fn secrets_yaml(c: &Cluster) -> String {
    let mut s = String::new();
    for rpc in [
        SecretFor::CreateVolume,
        SecretFor::DeleteVolume,
        SecretFor::ControllerPublish,
        SecretFor::ControllerUnpublish,
        SecretFor::ValidateVolumeCapabilities,
        SecretFor::NodeStage,
        SecretFor::NodePublish,
        SecretFor::CreateSnapshot,
        SecretFor::DeleteSnapshot,
        SecretFor::ListSnapshots,
        SecretFor::ControllerExpand,
        SecretFor::NodeExpand,
        SecretFor::ControllerGetVolume,
    ] {
        s.push_str(&format!(
            "{}:\n  userID: {}\n  userKey: {}\n",
            rpc.yaml_key(),
            c.client_id,
            c.client_key
        ));
    }
    s
}

/// Run the suite against berth-csi; the report and what the run left in the pool.
fn suite(c: &Cluster, access: AccessType) -> Result<(Report, Vec<String>)> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // As deployed: the controller's own credentials (a mounted Secret) for RPCs that carry
        // none, and the pool ListVolumes / ListSnapshots cover.
        let secrets_dir = berth_tests::new_state_dir("csi-controller-secrets")?;
        berth_tests::ceph::write_private(&secrets_dir.join("userID"), &c.client_id)?;
        berth_tests::ceph::write_private(&secrets_dir.join("userKey"), &c.client_key)?;
        let flags = [
            "--mode=all".to_string(),
            format!("--controller-secrets-dir={}", secrets_dir.display()),
            format!("--list-pools={CLUSTER_ID}/{}", c.pool),
            // VOLUME_ACCESSIBILITY_CONSTRAINTS is advertised: the node reports a segment.
            "--topology=topology.rbd.csi.berth.dev/zone=conformance".to_string(),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let driver = Driver::start(&flags, Some(&c.csi_cluster_config(CLUSTER_ID))).await?;
        let mut cfg = Config::new(&driver.socket);
        cfg.staging_dir = driver.dir.join("csi-staging");
        cfg.mount_dir = driver.dir.join("csi-mount");
        cfg.parameters = HashMap::from([
            ("clusterID".to_string(), CLUSTER_ID.to_string()),
            ("pool".to_string(), c.pool.clone()),
            ("mounter".to_string(), "fuse".to_string()),
            ("imageFeatures".to_string(), "layering".to_string()),
        ]);
        cfg.secrets = berth_conformance::config::Secrets::from_yaml(&secrets_yaml(c))?;
        cfg.access_type = access;
        // Online expansion of a mounted ext4 needs CAP_SYS_RESOURCE, which these machines lack
        // (berth-csi answers FAILED_PRECONDITION); xfs grows online, so the mount run uses it.
        if access == AccessType::Mount {
            cfg.fs_type = "xfs".into();
        }
        cfg.filter = std::env::var("CONFORMANCE_FILTER").ok();
        if let Some(size) = std::env::var("CONFORMANCE_SIZE")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            cfg.volume_size = size;
        }
        let report = berth_conformance::run(cfg).await?;
        // DeleteVolume answers once the image is in the RBD trash; the driver's purger (still
        // running here) removes it, and puts back a parent a clone still needs until that
        // clone is gone. So the run is clean once pool, trash and journal are all empty.
        let mut left = Vec::new();
        let _ = berth_tests::proc::wait_until(
            "an empty pool, trash and journal",
            std::time::Duration::from_secs(60),
            || {
                left = c.pool_leftovers();
                left.is_empty()
            },
        );
        berth_tests::sweep::directory(&secrets_dir);
        if report.failed() > 0 {
            let log = driver.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "berth-csi log tail ({access}):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok((report, left))
    })
}
