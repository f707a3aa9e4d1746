//! berth-conformance: the `csi-conformance` tool and its library. It owns the spec-driven
//! suite (cases, runner, config), the CSI gRPC client it drives a driver with ([`csi_client`],
//! re-exported by berth-tests) and the fake driver that tests the suite itself ([`fake`]).
//!
//! A spec-driven CSI conformance suite that can be pointed at ANY CSI driver (berth-csi or
//! another), in the spirit of csi-sanity but written from the CSI v1.12.0 spec itself.
//!
//! ```text
//! Config (endpoints, dirs, params/secrets YAML, size, access type, filter)
//!   └─ runner::run ─ connect ─ caps::Capabilities::probe (plugin, controller, node)
//!        └─ for each Case: requirements met? ─ no ─▶ SKIPPED (never counted as passed)
//!                                            └ yes ─▶ body(Ctx) with timeout ─▶ Ctx cleanup
//!                                                      (unpublish, unstage, delete) ─▶ PASS/FAIL
//! ```
//!
//! - [`csi_client`]: a CSI gRPC client over a Unix socket.
//! - [`config`]: what a run is pointed at; csi-sanity's parameter and secrets file formats.
//! - [`caps`]: the capability probe and case requirements.
//! - [`ctx`]: per-case context: clients, unique names, CO-created directories, cleanup registry.
//! - [`check`]: status-code assertions.
//! - [`runner`]: running cases and the `N passed, N failed, N skipped` report.
//! - cases: [`identity`], [`controller`] (capabilities, capacity, listing), [`volumes`]
//!   (create/delete), [`validate`] (ValidateVolumeCapabilities), [`publish`]
//!   (ControllerPublish, ControllerGetVolume),
//!   [`snapshots`], [`expansion`], [`node`], [`lifecycle`].
//! - [`fake`]: an in-memory driver (correct, or with chosen bugs) to test the suite itself.
//!
//! Case names are `area/rpc/what`; each case cites the spec section it checks.

/// Build a [`runner::Case`] from a name, requirements and an `async fn(Ctx) -> Result<()>`.
macro_rules! case {
    ($name:expr, [$($req:expr),* $(,)?], $f:path) => {
        $crate::runner::Case {
            name: $name,
            requires: vec![$($req),*],
            run: |c| Box::pin($f(c)),
        }
    };
}

pub mod caps;
pub mod check;
pub mod config;
pub mod controller;
pub mod csi_client;
pub mod ctx;
pub mod expansion;
pub mod fake;
pub mod identity;
pub mod lifecycle;
pub mod node;
pub mod publish;
pub mod runner;
pub mod snapshots;
pub mod validate;
pub mod volumes;

pub use config::{AccessType, Config};

/// The current mount table (empty if it cannot be read): which CO-created paths are mounted.
fn mounts() -> Vec<berth_csi::mount::mountinfo::MountEntry> {
    berth_csi::mount::mountinfo::read().unwrap_or_default()
}
pub use runner::{Outcome, Report, run};

/// Every case, in run order.
pub fn all_cases() -> Vec<runner::Case> {
    let mut all = identity::cases();
    all.extend(controller::cases());
    all.extend(volumes::cases());
    all.extend(validate::cases());
    all.extend(publish::cases());
    all.extend(snapshots::cases());
    all.extend(expansion::cases());
    all.extend(node::cases());
    all.extend(lifecycle::cases());
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn case_names_are_unique_and_enough() {
        let cases = super::all_cases();
        let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate case names");
        assert!(n >= 80, "only {n} cases");
        assert!(
            names.iter().all(|n| n.split('/').count() == 3),
            "names are area/rpc/what"
        );
    }
}
