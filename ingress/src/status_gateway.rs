//! Gateway API status: written by the replica that writes the Ingress status (the Lease
//! holder, see `status.rs`), with the same published addresses, at the same moments.
//!
//! What to write comes from [`crate::gateway::statuses`] (pure); [`plan`] (pure) turns it into
//! the writes that change something: an existing condition keeps its `lastTransitionTime`
//! while its `status` is unchanged, values the CRDs default on the server (a parentRef's group
//! and kind, a supported kind's group, an address's type) are filled in first so a written
//! status compares equal to what the server stores, and a route's `status.parents` keeps the
//! entries of other controllers (ours are replaced; removed when the route no longer names
//! one of our Gateways). Each write is a JSON merge patch of the status subresource carrying
//! the `resourceVersion` it was computed from: a concurrent change (another controller's
//! parent entry) makes it fail with 409 and it is recomputed at the next round instead of
//! overwriting. The statuses are computed again only when the snapshot's objects, the served
//! set or the addresses changed ([`StatusCache`]). An object is not written again while it still shows the resourceVersion we
//! wrote from or the one our write produced (a lagging store must not cause a second write).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};

use crate::gateway::{
    self, GROUP, GRPCRoute, Gateway, GatewayClass, GatewayStatusAddress, GatewayStatuses,
    HTTPRoute, ParentReference, RouteParentStatus, keep_transition_times,
};
use crate::serving::Serving;
use crate::snapshot::Snapshot;
use crate::translate::TranslateConfig;

/// The kinds whose status we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusKind {
    GatewayClass,
    Gateway,
    HTTPRoute,
    GRPCRoute,
}

/// One status write.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub kind: StatusKind,
    /// `None` for GatewayClasses.
    pub namespace: Option<String>,
    pub name: String,
    /// The resourceVersion the status was computed from.
    pub resource_version: Option<String>,
    /// The new `status`.
    pub status: Value,
}

impl Write {
    /// The merge patch: the status, with the resourceVersion as a precondition.
    pub fn patch(&self) -> Value {
        json!({"metadata": {"resourceVersion": self.resource_version}, "status": self.status})
    }
}

/// Published addresses as Gateway status addresses (`IPAddress` or `Hostname`).
pub fn addresses(published: &[String]) -> Vec<GatewayStatusAddress> {
    published
        .iter()
        .map(|a| GatewayStatusAddress {
            type_: Some(
                match a.parse::<std::net::IpAddr>() {
                    Ok(_) => "IPAddress",
                    Err(_) => "Hostname",
                }
                .to_owned(),
            ),
            value: a.clone(),
        })
        .collect()
}

/// `parentRef` with the CRD's defaults (group, kind) filled in.
fn defaulted(p: &ParentReference) -> ParentReference {
    let mut p = p.clone();
    p.group.get_or_insert_with(|| GROUP.to_owned());
    p.kind.get_or_insert_with(|| "Gateway".to_owned());
    p
}

/// `(namespace, name)` of a namespaced object.
fn key(meta: &ObjectMeta) -> Option<gateway::Key> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

fn meta_key(meta: &ObjectMeta) -> (Option<String>, String, Option<String>) {
    (
        meta.namespace.clone(),
        meta.name.clone().unwrap_or_default(),
        meta.resource_version.clone(),
    )
}

/// A route's new `status.parents`: other controllers' entries as they are, then ours
/// (transition times kept from our previous entry for the same parent).
pub fn merge_parents(
    current: &[RouteParentStatus],
    ours: &[RouteParentStatus],
    controller: &str,
) -> Vec<RouteParentStatus> {
    let mut out: Vec<RouteParentStatus> = current
        .iter()
        .filter(|p| p.controller_name != controller)
        .cloned()
        .collect();
    for new in ours {
        let mut new = new.clone();
        new.parent_ref = defaulted(&new.parent_ref);
        if let Some(old) = current
            .iter()
            .find(|o| o.controller_name == controller && defaulted(&o.parent_ref) == new.parent_ref)
        {
            keep_transition_times(&old.conditions, &mut new.conditions);
        }
        out.push(new);
    }
    out
}

/// The writes that bring the snapshot's objects to `want` (pure).
pub fn plan(snapshot: &Snapshot, mut want: GatewayStatuses, controller: &str) -> Vec<Write> {
    let mut out = Vec::new();
    let mut push = |kind, meta: &ObjectMeta, status: Value| {
        let (namespace, name, resource_version) = meta_key(meta);
        out.push(Write {
            kind,
            namespace,
            name,
            resource_version,
            status,
        });
    };
    for class in &snapshot.gateway_classes {
        let name = class.metadata.name.clone().unwrap_or_default();
        let Some(mut new) = want.classes.remove(&name) else {
            continue;
        };
        let old = class.status.clone().unwrap_or_default();
        keep_transition_times(&old.conditions, &mut new.conditions);
        if class.status.as_ref() != Some(&new) {
            push(StatusKind::GatewayClass, &class.metadata, json!(new));
        }
    }
    for gw in &snapshot.gateways {
        let Some(key) = key(&gw.metadata) else {
            continue;
        };
        let Some(mut new) = want.gateways.remove(&key) else {
            continue;
        };
        let old = gw.status.clone().unwrap_or_default();
        keep_transition_times(&old.conditions, &mut new.conditions);
        for l in &mut new.listeners {
            for k in &mut l.supported_kinds {
                k.group.get_or_insert_with(|| GROUP.to_owned());
            }
            if let Some(o) = old.listeners.iter().find(|o| o.name == l.name) {
                keep_transition_times(&o.conditions, &mut l.conditions);
            }
        }
        for a in &mut new.addresses {
            a.type_.get_or_insert_with(|| "IPAddress".to_owned());
        }
        if gw.status.as_ref() != Some(&new) {
            push(StatusKind::Gateway, &gw.metadata, json!(new));
        }
    }
    let routes = (snapshot.http_routes.iter())
        .map(|r| (StatusKind::HTTPRoute, &r.metadata, r.status.as_ref()))
        .chain(
            (snapshot.grpc_routes.iter())
                .map(|r| (StatusKind::GRPCRoute, &r.metadata, r.status.as_ref())),
        );
    for (kind, meta, status) in routes {
        let Some(key) = key(meta) else {
            continue;
        };
        let ours = match kind {
            StatusKind::HTTPRoute => want.http_routes.remove(&key),
            _ => want.grpc_routes.remove(&key),
        };
        let ours = ours.map(|s| s.parents).unwrap_or_default();
        let current = status.map(|s| s.parents.as_slice()).unwrap_or_default();
        let new = merge_parents(current, &ours, controller);
        if new.as_slice() != current {
            push(kind, meta, json!({"parents": new}));
        }
    }
    out
}

/// The last round's statuses and what they were computed from. A round whose snapshot holds
/// the same objects ([`Snapshot::same_objects`]: the reflector stores keep an unchanged
/// object's allocation), with the same served set and addresses, reuses them instead of
/// translating the whole snapshot again (at rest every renewal is such a round).
#[derive(Default)]
pub struct StatusCache {
    last: Option<Computed>,
    /// How many rounds computed the statuses (the others reused them).
    pub computed: u64,
}

struct Computed {
    /// Held, so its objects' allocations cannot be reused by others meanwhile.
    snapshot: Snapshot,
    serving: Arc<Serving>,
    addresses: Vec<GatewayStatusAddress>,
    want: GatewayStatuses,
}

impl StatusCache {
    /// The statuses of `snapshot` with `serving` and `addresses` (see [`gateway::statuses`]),
    /// computed again only when one of them changed. A reused condition gets `now` as its time,
    /// as a computed one would (the writer keeps the stored time while the status is unchanged).
    pub fn want(
        &mut self,
        snapshot: &Snapshot,
        config: &TranslateConfig,
        serving: &Arc<Serving>,
        addresses: Vec<GatewayStatusAddress>,
        now: &Time,
    ) -> GatewayStatuses {
        if let Some(c) = &self.last
            && (Arc::ptr_eq(&c.serving, serving) || c.serving == *serving)
            && c.addresses == addresses
            && c.snapshot.same_objects(snapshot)
        {
            let mut want = c.want.clone();
            restamp(&mut want, now);
            return want;
        }
        let want = gateway::statuses(snapshot, config, &addresses, serving, now);
        self.computed += 1;
        self.last = Some(Computed {
            snapshot: snapshot.clone(),
            serving: serving.clone(),
            addresses,
            want: want.clone(),
        });
        want
    }
}

/// Every condition's `lastTransitionTime` set to `now`.
fn restamp(s: &mut GatewayStatuses, now: &Time) {
    let classes = s.classes.values_mut().flat_map(|c| &mut c.conditions);
    let gateways = s.gateways.values_mut().flat_map(|g| {
        let listeners = g.listeners.iter_mut().flat_map(|l| &mut l.conditions);
        g.conditions.iter_mut().chain(listeners)
    });
    let routes = (s.http_routes.values_mut().chain(s.grpc_routes.values_mut()))
        .flat_map(|r| &mut r.parents)
        .flat_map(|p| &mut p.conditions);
    for c in classes.chain(gateways).chain(routes) {
        c.last_transition_time = now.clone();
    }
}

/// (kind, namespace, name).
type ObjectKey = (StatusKind, Option<String>, String);
/// (resourceVersion written from, resourceVersion our write produced, status written).
type Written = (Option<String>, Option<String>, Value);

/// Writes the status of our Gateway API objects (leader only).
pub struct GatewayStatusWriter {
    client: Client,
    config: TranslateConfig,
    written: HashMap<ObjectKey, Written>,
    cache: StatusCache,
}

fn is_gone_or_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 404)
}

impl GatewayStatusWriter {
    pub fn new(client: Client, config: TranslateConfig) -> Self {
        Self {
            client,
            config,
            written: HashMap::new(),
            cache: StatusCache::default(),
        }
    }

    /// The API for `w`'s object (cluster-scoped when it has no namespace).
    fn api<K>(&self, w: &Write) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match &w.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    async fn patch<K>(api: Api<K>, w: &Write) -> Result<Option<String>, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let done = api
            .patch_status(&w.name, &PatchParams::default(), &Patch::Merge(&w.patch()))
            .await?;
        Ok(done.meta().resource_version.clone())
    }

    /// Write every status that differs; returns how many were written. A write that loses
    /// a race (409) or whose object is gone (404) is skipped: the next round recomputes it.
    pub async fn sync(
        &mut self,
        snapshot: &Snapshot,
        serving: &Arc<Serving>,
        published: &[String],
    ) -> Result<usize, kube::Error> {
        let now = Time(Timestamp::now());
        let addresses = addresses(published);
        let want = (self.cache).want(snapshot, &self.config, serving, addresses, &now);
        let mut writes = 0;
        for w in plan(snapshot, want, &self.config.gateway_controller_name) {
            let key = (w.kind, w.namespace.clone(), w.name.clone());
            if let Some((from, to, status)) = self.written.get(&key)
                && *status == w.status
                && (w.resource_version == *from || w.resource_version == *to)
            {
                continue; // our write is not in the store yet, or is what it shows
            }
            let result = match w.kind {
                StatusKind::GatewayClass => {
                    let api = Api::<GatewayClass>::all(self.client.clone());
                    Self::patch(api, &w).await
                }
                StatusKind::Gateway => Self::patch(self.api::<Gateway>(&w), &w).await,
                StatusKind::HTTPRoute => Self::patch(self.api::<HTTPRoute>(&w), &w).await,
                StatusKind::GRPCRoute => Self::patch(self.api::<GRPCRoute>(&w), &w).await,
            };
            match result {
                Ok(after) => {
                    self.written
                        .insert(key, (w.resource_version.clone(), after, w.status));
                    writes += 1;
                }
                Err(e) if is_gone_or_conflict(&e) => {
                    tracing::debug!(kind = ?w.kind, name = %w.name, error = %e, "status write skipped; retried next round");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(writes)
    }
}

#[cfg(test)]
#[path = "status_gateway_tests.rs"]
mod tests;
