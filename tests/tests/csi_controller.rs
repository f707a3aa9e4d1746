//! berth-csi Controller service against REAL Ceph: every RPC, every error code SPEC-FACTS lists
//! for the controller, idempotency under concurrency, crash recovery (SIGKILL mid-burst), a
//! dead cluster answered in bounded time, and secrets that never reach logs or errors.
//! One cluster is shared by the cases (a private one for the pause test).

#[path = "csi_controller/common.rs"]
mod common;
#[path = "csi_controller/flatten.rs"]
mod flatten;
#[path = "csi_controller/group.rs"]
mod group;
#[path = "csi_controller/introspection.rs"]
mod introspection;
#[path = "csi_controller/lean.rs"]
mod lean;
#[path = "csi_controller/lifecycle.rs"]
mod lifecycle;
#[path = "csi_controller/qos.rs"]
mod qos;
#[path = "csi_controller/resilience.rs"]
mod resilience;
#[path = "csi_controller/snapshots.rs"]
mod snapshots;
#[path = "csi_controller/topology.rs"]
mod topology;
#[path = "csi_controller/trash.rs"]
mod trash;

use berth_tests::suite::{Case, run_with_cluster, trial};

fn main() {
    let cases: Vec<(&str, Case)> = vec![
        (
            "create_delete_idempotent_10x",
            lifecycle::create_delete_idempotent,
        ),
        ("create_volume_error_codes", lifecycle::create_errors),
        (
            "delete_volume_unknown_ok_and_in_use",
            lifecycle::delete_cases,
        ),
        ("validate_volume_capabilities", lifecycle::validate),
        ("expand_volume", lifecycle::expand),
        ("qos_mutable_parameters", qos::qos_mutable_parameters),
        (
            "topology_constrained_pools",
            topology::topology_constrained_pools,
        ),
        (
            "list_volumes_paginated_and_bad_token",
            introspection::list_volumes,
        ),
        (
            "capabilities_and_capacity",
            introspection::capabilities_and_capacity,
        ),
        ("metrics_and_healthz", introspection::metrics),
        (
            "snapshots_create_list_delete",
            snapshots::snapshot_lifecycle,
        ),
        ("clone_from_snapshot_and_volume", snapshots::clones),
        (
            "group_snapshot_restore_and_delete",
            group::group_snapshot_restore_and_delete,
        ),
        (
            "delete_volume_with_snapshots_keeps_data",
            snapshots::delete_source_with_snapshot,
        ),
        (
            "deep_clone_chain_is_flattened",
            snapshots::deep_clone_chain_is_flattened,
        ),
        (
            "deep_flatten_runs_in_the_background",
            flatten::deep_flatten_runs_in_the_background,
        ),
        (
            "concurrent_50_creates_one_name",
            resilience::concurrent_same_name,
        ),
        (
            "sigkill_mid_burst_no_orphans",
            resilience::sigkill_mid_burst,
        ),
        ("ceph_paused_bounded_then_recovers", resilience::ceph_paused),
        (
            "stalled_create_retry_one_image",
            resilience::stalled_create_retry_one_image,
        ),
        (
            "journal_reservation_is_exclusive",
            resilience::journal_reservation_is_exclusive,
        ),
        (
            "gone_images_past_one_page",
            resilience::gone_images_past_one_page,
        ),
        (
            "big_delete_is_fast_and_purge_resumes",
            trash::big_delete_is_fast_and_purge_resumes,
        ),
        (
            "node_mode_maps_no_ceph_libraries",
            lean::node_mode_maps_no_ceph_libraries,
        ),
        (
            "secrets_never_in_logs_or_errors",
            resilience::secrets_hidden,
        ),
    ];
    run_with_cluster(false, |c| {
        cases
            .into_iter()
            .map(|(name, f)| trial(name, c, f))
            .collect()
    })
}
