//! The Gateway API half of the kube source: GatewayClass, Gateway, HTTPRoute, GRPCRoute and
//! ReferenceGrant reflectors (and Namespaces, reduced to their labels, for `allowedRoutes`
//! selectors, once Gateways are served) that start only once the API server serves their kind, so
//! berth-ingress keeps serving Ingresses and Services on a cluster without the Gateway API
//! CRDs (deploy/ingress/gateway-api) and without a watch failing every second.
//!
//! `--gateway-api`: `off` never watches them; `on` watches all five from the start (the
//! first config then waits for their lists: use it when the CRDs are required); `auto` (the
//! default) asks discovery (`GET /apis/gateway.networking.k8s.io/{v1,v1beta1}`, allowed to
//! every authenticated client) at start and again every [`RECHECK_EVERY`] until all five are
//! served, and watches each kind from the moment it is. Kinds served at start are part of the
//! first config (waited for at most [`LISTS_TIMEOUT`]: a ClusterRole without the Gateway API
//! rules must not stop the Ingresses); kinds installed later arrive with their initial list. A failed discovery
//! counts as "not served yet" (it never holds up the Ingress config) and is retried within
//! [`WATCH_BACKOFF_MAX`]. CRDs removed while watched are not noticed by discovery: their
//! watches fail and log like any other watch.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures::future;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use k8s_openapi::api::core::v1::Namespace;

use super::kube::{Driver, WATCH_BACKOFF_MAX, api, drive};
use crate::gateway::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::snapshot::Snapshot;

/// `--gateway-api`: whether the kube source watches the Gateway API kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GatewayApi {
    /// Watch the kinds the API server serves (discovery at start, then every 30 s).
    #[default]
    Auto,
    /// Watch all five; the first config waits for their lists.
    On,
    /// Never watch them.
    Off,
}

/// How often `auto` looks again for kinds that are not served.
pub const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// With `auto`, how long the first config waits for the lists of the kinds served at start.
pub const LISTS_TIMEOUT: Duration = Duration::from_secs(10);

/// The API group of the Gateway API.
const GROUP: &str = "gateway.networking.k8s.io";

/// The five kinds as `version/plural`, the key discovery and the reflectors share.
pub const KINDS: [&str; 5] = [
    "v1/gatewayclasses",
    "v1/gateways",
    "v1/httproutes",
    "v1/grpcroutes",
    "v1beta1/referencegrants",
];

/// Which of [`KINDS`] the API server serves; `None` until the first answer.
pub type Served = Option<BTreeSet<String>>;

/// Which of [`KINDS`] the API server serves (a 404 for a group version: none of it).
pub async fn served(client: &Client) -> Result<BTreeSet<String>, kube::Error> {
    let mut out = BTreeSet::new();
    for version in ["v1", "v1beta1"] {
        match client
            .list_api_group_resources(&format!("{GROUP}/{version}"))
            .await
        {
            Ok(list) => out.extend(
                list.resources
                    .into_iter()
                    .map(|r| format!("{version}/{}", r.name)),
            ),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    out.retain(|k| KINDS.contains(&k.as_str()));
    Ok(out)
}

/// Keep `tx` current as the module doc describes (runs forever).
pub async fn discover(client: Client, mode: GatewayApi, tx: watch::Sender<Served>) {
    let all = || KINDS.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    match mode {
        GatewayApi::Off => {
            tx.send_replace(Some(BTreeSet::new()));
            return future::pending().await;
        }
        GatewayApi::On => {
            tx.send_replace(Some(all()));
            return future::pending().await;
        }
        GatewayApi::Auto => {}
    }
    let mut failing = false;
    loop {
        let wait = match served(&client).await {
            Ok(found) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("Gateway API discovery works again");
                }
                let changed = tx.send_if_modified(|cur| {
                    let changed = cur.as_ref() != Some(&found);
                    *cur = Some(found.clone());
                    changed
                });
                if changed {
                    log_served(&found);
                }
                if found.len() == KINDS.len() {
                    return future::pending().await;
                }
                RECHECK_EVERY
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "Gateway API discovery failed; retrying");
                }
                // Unknown counts as not served: the Ingress config is not held up.
                tx.send_if_modified(|cur| {
                    let first = cur.is_none();
                    if first {
                        *cur = Some(BTreeSet::new());
                    }
                    first
                });
                WATCH_BACKOFF_MAX
            }
        };
        tokio::time::sleep(wait).await;
    }
}

fn log_served(found: &BTreeSet<String>) {
    let every = RECHECK_EVERY.as_secs();
    if found.is_empty() {
        tracing::info!(
            "Gateway API CRDs not installed: serving Ingresses and Services; looking again every {every} s"
        );
    } else if found.len() < KINDS.len() {
        let missing: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| !found.contains(*k))
            .collect();
        tracing::info!(
            ?missing,
            "some Gateway API kinds are not served; looking again every {every} s"
        );
    } else {
        tracing::info!("Gateway API kinds served: watching them");
    }
}

/// A reflector for `K` that starts once discovery says `needs` is served; `prune` applies to
/// each object before it is stored.
fn optional<K>(
    api: Api<K>,
    needs: &'static str,
    mut served: watch::Receiver<Served>,
    changes: watch::Sender<u64>,
    ready: Arc<AtomicBool>,
    prune: fn(&mut K),
) -> (Store<K>, Driver)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let driver = async move {
        if served.wait_for(|s| is_served(s, needs)).await.is_err() {
            return future::pending().await;
        }
        drive(
            writer,
            api,
            watcher::Config::default(),
            changes,
            ready,
            prune,
        )
        .await
    };
    (reader, Box::pin(driver))
}

fn is_served(s: &Served, key: &str) -> bool {
    s.as_ref().is_some_and(|s| s.contains(key))
}

/// Drop everything of a Namespace but its name and labels (all a listener's
/// `allowedRoutes.namespaces.selector` looks at).
fn keep_only_labels(n: &mut Namespace) {
    n.metadata.annotations = None;
    n.spec = None;
    n.status = None;
}

/// The Gateway API stores (and Namespaces, for `allowedRoutes` selectors: watched once
/// Gateways are served).
#[derive(Clone)]
pub struct GatewayStores {
    mode: GatewayApi,
    served: watch::Receiver<Served>,
    classes: Store<GatewayClass>,
    gateways: Store<Gateway>,
    http_routes: Store<HTTPRoute>,
    grpc_routes: Store<GRPCRoute>,
    grants: Store<ReferenceGrant>,
    namespaces: Store<Namespace>,
}

impl GatewayStores {
    /// The stores and the futures that drive discovery and the watches (`namespace`: `None`
    /// = all; GatewayClasses and Namespaces are cluster-scoped).
    pub fn start(
        client: &Client,
        namespace: Option<&str>,
        mode: GatewayApi,
        changes: &watch::Sender<u64>,
        ready: &Arc<AtomicBool>,
    ) -> (Self, Vec<Driver>) {
        let (tx, served) = watch::channel(None);
        let mut drivers: Vec<Driver> = vec![Box::pin(discover(client.clone(), mode, tx))];
        let c = || (served.clone(), changes.clone(), ready.clone());
        let (s, ch, r) = c();
        let (classes, d) = optional(Api::all(client.clone()), KINDS[0], s, ch, r, |_| {});
        drivers.push(d);
        let (s, ch, r) = c();
        let (gateways, d) = optional(api(client, namespace), KINDS[1], s, ch, r, |_| {});
        drivers.push(d);
        let (s, ch, r) = c();
        let (http_routes, d) = optional(api(client, namespace), KINDS[2], s, ch, r, |_| {});
        drivers.push(d);
        let (s, ch, r) = c();
        let (grpc_routes, d) = optional(api(client, namespace), KINDS[3], s, ch, r, |_| {});
        drivers.push(d);
        let (s, ch, r) = c();
        let (grants, d) = optional(api(client, namespace), KINDS[4], s, ch, r, |_| {});
        drivers.push(d);
        let (s, ch, r) = c();
        let all_ns = Api::<Namespace>::all(client.clone());
        let (namespaces, d) = optional(all_ns, KINDS[1], s, ch, r, keep_only_labels);
        drivers.push(d);
        let stores = GatewayStores {
            mode,
            served,
            classes,
            gateways,
            http_routes,
            grpc_routes,
            grants,
            namespaces,
        };
        (stores, drivers)
    }

    /// Put the stores' objects into `snapshot`.
    pub fn fill(&self, snapshot: &mut Snapshot) {
        snapshot.gateway_classes = self.classes.state();
        snapshot.gateways = self.gateways.state();
        snapshot.http_routes = self.http_routes.state();
        snapshot.grpc_routes = self.grpc_routes.state();
        snapshot.reference_grants = self.grants.state();
        snapshot.namespaces = self.namespaces.state();
    }

    /// Resolves when discovery has answered once and every store of a kind served then
    /// holds its initial list. With `auto`, at most [`LISTS_TIMEOUT`] after that answer: a
    /// kind that is served but cannot be listed (an older ClusterRole without the Gateway API
    /// rules) must not keep the Ingresses from being served; its objects join when they come.
    pub async fn wait_ready(&self) {
        let mut served = self.served.clone();
        let at_start = match served.wait_for(Option::is_some).await {
            Ok(s) => s.clone(),
            Err(_) => None,
        };
        let lists = self.lists_at(&at_start);
        if self.mode != GatewayApi::Auto {
            return lists.await;
        }
        if tokio::time::timeout(LISTS_TIMEOUT, lists).await.is_err() {
            tracing::warn!(
                "Gateway API kinds are served but not all could be listed within {} s \
                 (RBAC?): serving without them until they can",
                LISTS_TIMEOUT.as_secs()
            );
        }
    }

    async fn lists_at(&self, at_start: &Served) {
        let now = |key: &str| is_served(at_start, key);
        if now(KINDS[0]) {
            let _ = self.classes.wait_until_ready().await;
        }
        if now(KINDS[1]) {
            let _ = self.gateways.wait_until_ready().await;
            let _ = self.namespaces.wait_until_ready().await;
        }
        if now(KINDS[2]) {
            let _ = self.http_routes.wait_until_ready().await;
        }
        if now(KINDS[3]) {
            let _ = self.grpc_routes.wait_until_ready().await;
        }
        if now(KINDS[4]) {
            let _ = self.grants.wait_until_ready().await;
        }
    }
}

#[cfg(test)]
#[path = "kube_gateway_tests.rs"]
mod tests;
