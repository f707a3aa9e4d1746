//! Gateway API (standard channel): GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant.
//!
//! The objects arrive in the [`Snapshot`] like Ingresses (`types.rs` has their typed structs;
//! both sources decode them) and go through the same pipeline: translation here is pure, its
//! result joins the [`crate::model::Model`], render writes it, `nginx -t` checks it.
//!
//! - `attach.rs`: which GatewayClasses and Gateways are ours (`--gateway-controller-name`),
//!   each listener's validity and certificate, and which listeners each route's parentRefs
//!   attach to (sectionName, port, allowedRoutes, hostname intersection).
//! - [`statuses`]: the status of every object of ours, computed from the snapshot and what
//!   the live config serves, for the kube side to write (nothing here talks to the API server).
//!
//! # The status contract
//!
//! ```text
//! statuses(snapshot, config, addresses, serving, now) -> GatewayStatuses {
//!     classes:     BTreeMap<name, GatewayClassStatus>         // only classes whose controllerName is ours
//!     gateways:    BTreeMap<(ns, name), GatewayStatus>        // only Gateways of such a class
//!     http_routes: BTreeMap<(ns, name), RouteStatus>          // parents: only parentRefs to our Gateways
//!     grpc_routes: BTreeMap<(ns, name), RouteStatus>
//! }
//! ```
//!
//! `addresses` are the published addresses (as for Ingress status) and become
//! `Gateway.status.addresses`. `serving` is what the live nginx config serves
//! ([`crate::serving::Serving`], the set the Ingress status uses too): a route is `Accepted`
//! and a listener or Gateway `Programmed` only when nginx took it (see `status.rs`). Every condition's `lastTransitionTime` is `now`: the writer
//! should keep an existing condition's time when its `status` did not change
//! ([`keep_transition_times`] does that). `observedGeneration` is the object's
//! `metadata.generation`. A route's `status.parents` holds only the entries for our
//! controller; the writer must keep entries of other controllers.

mod attach;
mod build;
mod coexist;
pub mod grammar;
mod refs;
mod rules;
mod status;
pub mod types;
mod types_routes;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::serving::Serving;
use crate::snapshot::Snapshot;
use crate::translate::TranslateConfig;
pub use attach::{Attachment, ListenerInfo, Parents};
pub use build::{Output, translate};
pub use coexist::{Losses, join, losses, resolve};
pub use types::*;

/// `GatewayClass.spec.controllerName` that marks a class as ours, unless
/// `--gateway-controller-name` says otherwise.
pub const DEFAULT_GATEWAY_CONTROLLER_NAME: &str = "berth.dev/gateway";

/// `(namespace, name)` of a namespaced object.
pub type Key = (String, String);

/// The status of every Gateway API object this controller is responsible for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayStatuses {
    /// By GatewayClass name.
    pub classes: BTreeMap<String, GatewayClassStatus>,
    pub gateways: BTreeMap<Key, GatewayStatus>,
    pub http_routes: BTreeMap<Key, RouteStatus>,
    pub grpc_routes: BTreeMap<Key, RouteStatus>,
}

/// The statuses to write, computed from `snapshot` and what the live config serves (pure).
/// See the module doc.
pub fn statuses(
    snapshot: &Snapshot,
    config: &TranslateConfig,
    addresses: &[GatewayStatusAddress],
    serving: &Serving,
    now: &Time,
) -> GatewayStatuses {
    let parents = Parents::new(snapshot, config);
    let backends = crate::translate::backend::Backends::new(
        snapshot.services.iter().map(|s| &**s),
        snapshot.endpoint_slices.iter().map(|e| &**e),
        &config.backends,
    );
    let routes = status::facts(snapshot, &parents.grants, &backends);
    let (ingress, gateway) = crate::translate::sides(snapshot, config, &backends);
    let (lost, expected) = losses(ingress, gateway);
    let live = status::Live {
        serving,
        expected: &expected,
        lost: &lost,
    };
    parents.statuses_of(&routes, config, &backends, addresses, &live, now)
}

/// Copy `lastTransitionTime` from `old` into each condition of `new` whose type is in `old`
/// with the same `status` (the API's rule: the time changes only when the status does).
pub fn keep_transition_times(old: &[Condition], new: &mut [Condition]) {
    for c in new {
        if let Some(o) = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
}

/// A condition with `observedGeneration` and time filled in.
pub(crate) fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

#[cfg(test)]
mod build_tests;
#[cfg(test)]
mod status_live_tests;
#[cfg(test)]
pub(crate) mod status_tests;
