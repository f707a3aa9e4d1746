//! The conformance suite can pass and can fail: pointed at the in-memory fake driver it passes
//! the cases the fake implements, and the fake's deliberate bugs make exactly the cases that
//! check those rules fail. No Ceph, no mounts.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use berth_conformance::fake::{Bug, serve};
use berth_conformance::{AccessType, Config, Outcome, Report};
use libtest_mimic::{Arguments, Failed, Trial};

/// Cases that need a real mount, real writes or real stats: the fake cannot pass them.
const NEEDS_REAL_NODE: &[&str] = &[
    "node/lifecycle/full_cycle_each_step_10x",
    "node/lifecycle/data_survives_restage",
    "node/publish/target_is_mount_or_device",
    "node/publish/readonly_not_writable",
    "node/publish/two_targets_ok",
];

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("correct_fake_passes_mount", || {
            wrap(correct(AccessType::Mount))
        }),
        Trial::test("correct_fake_passes_block", || {
            wrap(correct(AccessType::Block))
        }),
        Trial::test("broken_fake_fails_the_right_cases", || wrap(broken())),
        Trial::test("unadvertised_capabilities_are_skipped", || wrap(skipped())),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn wrap(r: Result<()>) -> Result<(), Failed> {
    r.map_err(|e| Failed::from(format!("{e:#}")))
}

/// Run the suite against a fake with `bugs`.
fn run_against(bugs: &[Bug], access: AccessType, filter: Option<&str>) -> Result<Report> {
    let dir = berth_tests::new_state_dir("conformance-selftest")?;
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(async {
        let server = serve(&dir.join("fake.sock"), bugs)?;
        let mut cfg = Config::new(&server.socket);
        cfg.staging_dir = dir.join("staging");
        cfg.mount_dir = dir.join("mount");
        cfg.access_type = access;
        cfg.filter = filter.map(str::to_string);
        cfg.volume_size = 1 << 30;
        // The fake's expected failures must not print summary lines a CI log reader could
        // take for this run's verdict; the assertions below are the verdict.
        cfg.verbose = false;
        let r = berth_conformance::run(cfg).await;
        drop(server);
        r
    });
    berth_tests::sweep::directory(&dir);
    report
}

fn correct(access: AccessType) -> Result<()> {
    let r = run_against(&[], access, None)?;
    let failed: BTreeSet<_> = r.failures().into_iter().collect();
    let allowed: BTreeSet<_> = NEEDS_REAL_NODE.iter().copied().collect();
    let unexpected: Vec<_> = failed.difference(&allowed).collect();
    ensure!(
        unexpected.is_empty(),
        "the correct fake failed {unexpected:?}"
    );
    ensure!(
        r.passed() >= 60,
        "only {} passed: {}",
        r.passed(),
        r.summary()
    );
    Ok(())
}

fn broken() -> Result<()> {
    let bugs = [
        Bug::CreateWithoutNameOk,
        Bug::CreateNotIdempotent,
        Bug::DeleteUnknownNotFound,
        Bug::ListAcceptsAnyToken,
        Bug::ValidateUnknownOk,
        Bug::PublishWithoutStageOk,
        Bug::UnpublishNotPublishedNotFound,
    ];
    let r = run_against(&bugs, AccessType::Mount, None)?;
    for name in [
        "controller/create_volume/missing_name_invalid",
        "controller/create_volume/idempotent_same_name_10x",
        "controller/create_volume/same_name_other_size_already_exists",
        "controller/create_volume/name_128_bytes_ok",
        "controller/delete_volume/unknown_id_ok",
        "controller/list_volumes/bad_token_aborted",
        "controller/validate_capabilities/unknown_volume_not_found",
        "node/publish/without_stage_failed_precondition",
        "node/unpublish/not_published_ok",
    ] {
        ensure!(
            matches!(r.outcome(name), Some(Outcome::Failed(_))),
            "{name} did not fail against the broken fake: {:?}",
            r.outcome(name)
        );
    }
    // Rules the bugs do not touch still pass.
    for name in [
        "identity/probe/answers",
        "controller/create_volume/missing_capabilities_invalid",
        "snapshots/create_snapshot/same_name_other_source_already_exists",
    ] {
        ensure!(
            r.outcome(name) == Some(&Outcome::Passed),
            "{name}: {:?}",
            r.outcome(name)
        );
    }
    Ok(())
}

fn skipped() -> Result<()> {
    let r = run_against(&[], AccessType::Mount, None)?;
    for name in [
        "controller/publish/publish_unpublish_10x",
        "controller/get_volume/existing",
        "node/get_volume_stats/published_reports_bytes",
        "expansion/node_expand/published_volume_grows",
        "node/publish/readonly_not_writable",
    ] {
        let o = r.outcome(name);
        ensure!(
            matches!(o, Some(Outcome::Skipped(_))) || name == "node/publish/readonly_not_writable",
            "{name} should be skipped (capability not advertised): {o:?}"
        );
    }
    let block = run_against(&[], AccessType::Block, Some("readonly_not_writable"))?;
    ensure!(
        matches!(
            block.outcome("node/publish/readonly_not_writable"),
            Some(Outcome::Skipped(_))
        ),
        "mount-only case not skipped in block mode"
    );
    ensure!(
        r.skipped() > 0 && r.skipped() + r.passed() + r.failed() == r.results.len(),
        "counts"
    );
    Ok(())
}
