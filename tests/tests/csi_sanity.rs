//! csi-sanity (kubernetes-csi/csi-test, the version tests/tools/tools.txt pins) against berth-csi
//! on a real local Ceph cluster, as the README's "Checking berth-csi with csi-sanity" recipe runs
//! it: the files `testenv up` writes (same writer), berth-csi with the recipe's flags, csi-sanity
//! with the recipe's flags. Three runs: ext4 mount, xfs mount, block.
//!
//! Every csi-sanity spec is one counted case here (read from its JUnit report): passed, failed
//! or ignored. A skipped spec is expected only when its reason is in [`SKIPS`] AND berth does not
//! advertise the capability named there; any other skip fails, so a new skip cannot hide.
//!
//! Each mount run proves its filesystem was the one made: berth-csi's log (debug) says
//! "made <fs> and marked the image" right after each mkfs; the run must show at least one for
//! its fs type and none for another (the block run: none at all).
//!
//! Needs `bash tests/scripts/build-k8s-tools.sh` (csi-sanity) and the berth-csi binary.

use anyhow::{Result, ensure};
use berth_csi::csi::{
    self, controller_service_capability as csc, group_controller_service_capability as gcc,
    plugin_capability as pc,
};
use berth_tests::ceph::Cluster;
use berth_tests::csi_sanity::{self, Case, Outcome};
use berth_tests::driver::Driver;
use libtest_mimic::{Failed, Trial};

const CLUSTER_ID: &str = "berth-local";

/// What berth would have to advertise for csi-sanity to run a spec it skipped.
#[derive(Debug, Clone, Copy)]
enum Needs {
    Controller(csc::rpc::Type),
    Plugin(pc::service::Type),
    /// A GroupController capability (GroupControllerGetCapabilities).
    Group(gcc::rpc::Type),
    /// A capability of CSI v1.13 (csi-test's spec), absent from berth's v1.12 proto.
    Csi113,
    /// NodeGetInfo's max_volumes_per_node: berth reports none (0: no limit of its own), so the
    /// recipe does not pass csi-sanity's `--csi.testnodevolumeattachlimit`.
    AttachLimit,
}

/// csi-sanity's skip reasons (its `Skip("...")` texts) for capabilities berth does not advertise.
const SKIPS: &[(&str, Needs)] = {
    use Needs::*;
    use csc::rpc::Type as T;
    &[
        (
            "skipped - ControllerPublishVolume not supported",
            Controller(T::PublishUnpublishVolume),
        ),
        (
            "skipped - ControllerUnpublishVolume not supported",
            Controller(T::PublishUnpublishVolume),
        ),
        (
            "skipped - Controller Publish, UnpublishVolume not supported",
            Controller(T::PublishUnpublishVolume),
        ),
        (
            "skipped - ControllerPublishVolume.readonly field not supported",
            Controller(T::PublishReadonly),
        ),
        (
            "skipped - testnodevolumeattachlimit not enabled",
            AttachLimit,
        ),
        (
            "skipped - Modify volume not supported",
            Controller(T::ModifyVolume),
        ),
        (
            "skipped - Modify Volume not supported",
            Controller(T::ModifyVolume),
        ),
        (
            "skipped - ControllerModifyVolume not supported",
            Controller(T::ModifyVolume),
        ),
        (
            "skipped - GroupControllerService not supported",
            Plugin(pc::service::Type::GroupControllerService),
        ),
        (
            "skipped - VolumeGroupSnapshots not supported",
            Group(gcc::rpc::Type::CreateDeleteGetVolumeGroupSnapshot),
        ),
        ("skipped - ControllerGetVolumeHealth not supported", Csi113),
        ("skipped - ControllerListVolumeHealth not supported", Csi113),
        ("skipped - NodeGetVolumeHealth not supported", Csi113),
        ("skipped - NodeGetStorageHealth not supported", Csi113),
        (
            "skipped - SNAPSHOT_ACCESSIBILITY_CONSTRAINTS not supported",
            Csi113,
        ),
        (
            "skipped - GetCapacity not supported",
            Controller(T::GetCapacity),
        ),
        (
            "skipped - ListVolumes not supported",
            Controller(T::ListVolumes),
        ),
        (
            "skipped - ListSnapshots not supported",
            Controller(T::ListSnapshots),
        ),
    ]
};

/// Specs csi-test itself marks pending (`PIt`): they never run, in any driver.
const PENDING_IN_CSI_TEST: &[&str] = &[
    "Controller Service [Controller Server] ListVolumes pagination should detect volumes added between pages and accept tokens when the last volume from a page is deleted",
];

/// One run of the recipe: its name and csi-sanity's extra flags.
struct Run {
    name: &'static str,
    xfs: bool,
    block: bool,
}

/// The filesystems berth-csi can make.
const FILESYSTEMS: [&str; 2] = ["ext4", "xfs"];

impl Run {
    /// The filesystem this run must make (`None`: block, nothing is formatted).
    fn fs(&self) -> Option<&'static str> {
        match (self.block, self.xfs) {
            (true, _) => None,
            (false, true) => Some("xfs"),
            (false, false) => Some("ext4"),
        }
    }
}

/// How many filesystems of each type berth-csi made during a run, from its log.
fn made_counts(log: &str) -> Vec<(&'static str, usize)> {
    FILESYSTEMS
        .iter()
        .map(|fs| {
            (
                *fs,
                log.matches(&format!("made {fs} and marked the image"))
                    .count(),
            )
        })
        .collect()
}

/// The run made its own filesystem (at least once) and no other.
fn check_made(want: Option<&str>, made: &[(&str, usize)]) -> Result<(), String> {
    let wrong: Vec<String> = made
        .iter()
        .filter(|(fs, n)| Some(*fs) != want && *n > 0)
        .map(|(fs, n)| format!("{n} x {fs}"))
        .collect();
    let own = made
        .iter()
        .find(|(fs, _)| Some(*fs) == want)
        .map_or(0, |(_, n)| *n);
    if !wrong.is_empty() {
        return Err(format!(
            "berth-csi made {} in a run that asked for {}",
            wrong.join(", "),
            want.unwrap_or("no filesystem (block)")
        ));
    }
    match want {
        Some(fs) if own == 0 => Err(format!("berth-csi never made {fs} (made: {made:?})")),
        _ => Ok(()),
    }
}

const RUNS: [Run; 3] = [
    Run {
        name: "ext4",
        xfs: false,
        block: false,
    },
    Run {
        name: "xfs",
        xfs: true,
        block: false,
    },
    Run {
        name: "block",
        xfs: false,
        block: true,
    },
];

fn main() {
    // csi-sanity runs up front (each run on the shared cluster, one at a time); its specs
    // then become the trials.
    berth_tests::suite::run_with_cluster(true, |cluster| {
        RUNS.iter()
            .flat_map(|run| run_recipe(cluster, run))
            .collect()
    })
}

/// Run the recipe once; one trial per spec, plus the run's own checks.
fn run_recipe(c: &Cluster, run: &Run) -> Vec<Trial> {
    let prefix = format!("csi_sanity_{}", run.name);
    match run_sanity(c, run) {
        Ok((cases, advertised, pool_left, made)) => {
            let mut trials: Vec<Trial> = cases
                .into_iter()
                .map(|case| case_trial(&prefix, case, &advertised))
                .collect();
            trials.push(Trial::test(
                format!("{prefix}::leaves_the_pool_trash_and_journal_empty"),
                move || {
                    if pool_left.is_empty() {
                        Ok(())
                    } else {
                        Err(Failed::from(format!("left in the pool: {pool_left:?}")))
                    }
                },
            ));
            let want = run.fs();
            let name = match want {
                Some(fs) => format!("{prefix}::formats_{fs}_only"),
                None => format!("{prefix}::formats_nothing"),
            };
            trials.push(Trial::test(name, move || {
                check_made(want, &made).map_err(Failed::from)
            }));
            trials
        }
        Err(e) => vec![Trial::test(format!("{prefix}::runs"), move || {
            Err(Failed::from(format!("{e:#}")))
        })],
    }
}

/// Capabilities the driver advertises, as csi-sanity sees them.
#[derive(Debug, Default)]
struct Advertised {
    controller: Vec<i32>,
    plugin: Vec<i32>,
    group: Vec<i32>,
}

fn case_trial(prefix: &str, case: Case, adv: &Advertised) -> Trial {
    let name = format!("{prefix}::{}", case.name);
    match case.outcome {
        Outcome::Passed => Trial::test(name, || Ok(())),
        Outcome::Failed => {
            let msg = case.message;
            Trial::test(name, move || Err(Failed::from(msg)))
        }
        Outcome::Pending if PENDING_IN_CSI_TEST.contains(&case.name.as_str()) => {
            Trial::test(name, || Ok(())).with_ignored_flag(true)
        }
        Outcome::Pending => Trial::test(name, || {
            Err(Failed::from(
                "pending in csi-sanity but not listed in PENDING_IN_CSI_TEST",
            ))
        }),
        Outcome::Skipped => {
            let why = match SKIPS.iter().find(|(m, _)| *m == case.message) {
                None => Some(format!("unexpected skip: {:?}", case.message)),
                Some((_, Needs::Controller(t))) if adv.controller.contains(&(*t as i32)) => {
                    Some(format!(
                        "skipped although berth advertises {t:?}: {:?}",
                        case.message
                    ))
                }
                Some((_, Needs::Plugin(t))) if adv.plugin.contains(&(*t as i32)) => Some(format!(
                    "skipped although berth advertises {t:?}: {:?}",
                    case.message
                )),
                Some((_, Needs::Group(t))) if adv.group.contains(&(*t as i32)) => Some(format!(
                    "skipped although berth advertises {t:?}: {:?}",
                    case.message
                )),
                Some(_) => None,
            };
            match why {
                None => Trial::test(name, || Ok(())).with_ignored_flag(true),
                Some(why) => Trial::test(name, move || Err(Failed::from(why))),
            }
        }
    }
}

/// The recipe: berth-csi with the README's flags, then csi-sanity with the README's flags.
type Ran = (
    Vec<Case>,
    Advertised,
    Vec<String>,
    Vec<(&'static str, usize)>,
);

fn run_sanity(c: &Cluster, run: &Run) -> Result<Ran> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = berth_tests::new_state_dir("csi-sanity")?;
        let files = csi_sanity::write_files(&dir, c, CLUSTER_ID)?;
        let flags = [
            format!(
                "--controller-secrets-dir={}",
                files.controller_secrets_dir.display()
            ),
            format!("--list-pools={}", files.list_pools),
            // The node reports a topology segment, so VOLUME_ACCESSIBILITY_CONSTRAINTS is
            // advertised and csi-sanity sends the node's topology with its CreateVolume calls.
            "--topology=topology.rbd.csi.berth.dev/zone=sanity".to_string(),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let driver = Driver::start(&flags, Some(&c.csi_cluster_config(CLUSTER_ID))).await?;
        let mut client = driver.client().await?;
        let adv = Advertised {
            controller: client
                .controller
                .controller_get_capabilities(csi::ControllerGetCapabilitiesRequest {})
                .await?
                .into_inner()
                .capabilities
                .iter()
                .filter_map(|c| c.r#type.as_ref().map(|csc::Type::Rpc(r)| r.r#type))
                .collect(),
            plugin: client
                .identity
                .get_plugin_capabilities(csi::GetPluginCapabilitiesRequest {})
                .await?
                .into_inner()
                .capabilities
                .iter()
                .filter_map(|c| match c.r#type.as_ref()? {
                    pc::Type::Service(s) => Some(s.r#type),
                    _ => None,
                })
                .collect(),
            group: match client
                .group
                .group_controller_get_capabilities(csi::GroupControllerGetCapabilitiesRequest {})
                .await
            {
                Ok(r) => r
                    .into_inner()
                    .capabilities
                    .iter()
                    .filter_map(|c| c.r#type.as_ref().map(|gcc::Type::Rpc(r)| r.r#type))
                    .collect(),
                // Not served: nothing advertised.
                Err(s) if s.code() == tonic::Code::Unimplemented => Vec::new(),
                Err(s) => return Err(s.into()),
            },
        };
        let params = if run.xfs {
            &files.params_xfs
        } else {
            &files.params_ext4
        };
        let mut args = vec![
            format!("--csi.endpoint=unix://{}", driver.socket.display()),
            format!("--csi.stagingdir={}", dir.join("csi-staging").display()),
            format!("--csi.mountdir={}", dir.join("csi-mount").display()),
            format!("--csi.testvolumeparameters={}", params.display()),
            format!("--csi.secrets={}", files.secrets.display()),
            format!(
                "--csi.testvolumemutableparameters={}",
                files.mutable_params.display()
            ),
        ];
        if run.block {
            args.push("--csi.testvolumeaccesstype=block".into());
        }
        let t0 = std::time::Instant::now();
        let cases = tokio::task::block_in_place(|| {
            csi_sanity::run(&args, &dir.join("junit.xml"), &dir.join("csi-sanity.log"))
        })?;
        let count = |o| cases.iter().filter(|c| c.outcome == o).count();
        eprintln!(
            "csi-sanity {}: {} passed, {} failed, {} skipped, {} pending in {:.1?}",
            run.name,
            count(Outcome::Passed),
            count(Outcome::Failed),
            count(Outcome::Skipped),
            count(Outcome::Pending),
            t0.elapsed()
        );
        ensure!(!cases.is_empty(), "csi-sanity reported no specs");
        let made = made_counts(&driver.log_text());
        eprintln!("csi-sanity {}: berth-csi made {made:?}", run.name);
        // DeleteVolume answers once the image is in the RBD trash; the driver's purger removes
        // it in the background, retrying a busy image every 10 s (a killed client's watch
        // lasts ~30 s). So wait with the driver still running: dropped first, it leaves the
        // purge to its next start and the pool is never empty here.
        let mut left = Vec::new();
        let _ = berth_tests::proc::wait_until(
            "an empty pool",
            std::time::Duration::from_secs(90),
            || {
                left = c.pool_leftovers();
                left.is_empty()
            },
        );
        drop(driver);
        berth_tests::sweep::directory(&dir);
        Ok((cases, adv, left, made))
    })
}
