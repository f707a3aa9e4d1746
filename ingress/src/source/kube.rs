//! The kube source: kube-runtime reflectors for Service, Ingress, IngressClass, EndpointSlice
//! (only with `--upstream=endpoints`), `kubernetes.io/tls` Secrets and `Opaque` Secrets (for
//! `auth-secret` htpasswd files: only their `auth` key is kept in memory, everything else of
//! them is dropped as it arrives), in one namespace or all; and the Gateway API kinds once
//! the API server serves them (`kube_gateway.rs`).
//!
//! All Services in scope are watched and `--service-selector` is applied in translation: an
//! Ingress may point at any Service, and a Service whose labels stop matching then simply
//! drops out of the annotation routes on the next MODIFIED event. This module stays thin: it
//! only keeps stores current and bumps the change counter once every store has its initial
//! list, so the first rendered config is never a partial one.
//!
//! Watches that fail (API server unreachable, 5xx) are retried with [`WatchBackoff`]: 100 ms
//! doubling to at most 1 s, so a change made during an outage is seen within about a second
//! of the API server answering again (kube-runtime's default backs off to 30 s). Each watch
//! logs once when it starts failing and once when it works again.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::Source;
use super::kube_gateway::{GatewayApi, GatewayStores};
use crate::snapshot::Snapshot;

/// What to watch.
#[derive(Clone, Debug, Default)]
pub struct KubeConfig {
    /// `None` = all namespaces.
    pub namespace: Option<String>,
    /// Watch EndpointSlices (`--upstream=endpoints`).
    pub endpoint_slices: bool,
    /// Watch the Gateway API kinds (`--gateway-api`, see `kube_gateway.rs`).
    pub gateway_api: GatewayApi,
}

/// Reflector stores; `snapshot()` reads them.
#[derive(Clone)]
pub struct KubeSource {
    services: Store<Service>,
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    slices: Option<Store<EndpointSlice>>,
    secrets: Store<Secret>,
    /// `Opaque` Secrets reduced to their `auth` key ([`keep_only_auth`]).
    auth_secrets: Store<Secret>,
    gateway: GatewayStores,
}

impl Source for KubeSource {
    fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            services: self.services.state(),
            ingresses: self.ingresses.state(),
            ingress_classes: self.classes.state(),
            endpoint_slices: self.slices.as_ref().map(Store::state).unwrap_or_default(),
            secrets: (self.secrets.state().into_iter())
                .chain(
                    self.auth_secrets
                        .state()
                        .into_iter()
                        .filter(|s| s.data.as_ref().is_some_and(|d| d.contains_key("auth"))),
                )
                .collect(),
            ..Snapshot::default()
        };
        self.gateway.fill(&mut snapshot);
        snapshot
    }
}

pub(super) type Driver = future::BoxFuture<'static, ()>;

/// First retry of a failed watch.
pub const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between retries: bounds how late a change is seen after an outage.
pub const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Exponential backoff from [`WATCH_BACKOFF_MIN`] to [`WATCH_BACKOFF_MAX`], never giving up;
/// reset by any successful watch event.
#[derive(Clone, Debug)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: WATCH_BACKOFF_MIN,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(WATCH_BACKOFF_MAX);
        Some(d)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = WATCH_BACKOFF_MIN;
    }
}

/// One reflector: keeps `writer`'s store current and bumps `changes` on every event once
/// `ready` is set.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    changes: watch::Sender<u64>,
    ready: Arc<AtomicBool>,
) -> (Store<K>, Driver)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    reflect_pruned(api, config, changes, ready, |_| {})
}

/// Drop everything of an `Opaque` Secret but its name and its `auth` key (an htpasswd file):
/// other applications' secrets are never held (nor their `last-applied-configuration`).
fn keep_only_auth(s: &mut Secret) {
    s.metadata.annotations = None;
    s.metadata.labels = None;
    s.string_data = None;
    s.data = s
        .data
        .take()
        .and_then(|mut d| d.remove_entry("auth"))
        .map(|kv| [kv].into());
}

/// [`reflect`], with `prune` applied to each object before it is stored.
fn reflect_pruned<K>(
    api: Api<K>,
    config: watcher::Config,
    changes: watch::Sender<u64>,
    ready: Arc<AtomicBool>,
    prune: fn(&mut K),
) -> (Store<K>, Driver)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let driver = drive(writer, api, config, changes, ready, prune);
    (reader, driver)
}

/// The future that keeps `writer`'s store current (see [`reflect`]).
pub(super) fn drive<K>(
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    changes: watch::Sender<u64>,
    ready: Arc<AtomicBool>,
    prune: fn(&mut K),
) -> Driver
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .backoff(WatchBackoff::default())
            .modify(move |o: &mut K| {
                // managedFields are large and useless here: drop them to keep RSS low.
                o.managed_fields_mut().clear();
                prune(o);
            }),
    );
    let failing = Arc::new(AtomicBool::new(false));
    let (failed, resumed) = (failing.clone(), kind.clone());
    let driver = stream
        .map_err(move |e| {
            if !failed.swap(true, Ordering::AcqRel) {
                tracing::warn!(kind = %kind, error = %e, "watch failed; retrying (up to every second)");
            }
        })
        .inspect_ok(move |_| {
            if failing.swap(false, Ordering::AcqRel) {
                tracing::info!(kind = %resumed, "watch resumed");
            }
        })
        .for_each(move |event| {
            let relevant = matches!(
                event,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
            );
            if relevant && ready.load(Ordering::Acquire) {
                changes.send_modify(|n| *n += 1);
            }
            future::ready(())
        });
    Box::pin(driver)
}

pub(super) fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

impl KubeSource {
    /// Build the stores and the future that drives every watch (spawn it; it runs forever).
    /// `changes` is bumped first when all stores hold their initial list, then on every event.
    pub fn start(
        client: Client,
        config: &KubeConfig,
        changes: watch::Sender<u64>,
    ) -> (Self, Driver) {
        let ns = config.namespace.as_deref();
        let ready = Arc::new(AtomicBool::new(false));
        let wc = watcher::Config::default;
        let r = |c: &watch::Sender<u64>| (c.clone(), ready.clone());
        let (c, rd) = r(&changes);
        let (services, d1) = reflect(api::<Service>(&client, ns), wc(), c, rd);
        let (c, rd) = r(&changes);
        let (ingresses, d2) = reflect(api::<Ingress>(&client, ns), wc(), c, rd);
        let (c, rd) = r(&changes);
        let (classes, d3) = reflect(Api::<IngressClass>::all(client.clone()), wc(), c, rd);
        let (c, rd) = r(&changes);
        let tls_only = wc().fields("type=kubernetes.io/tls");
        let (secrets, d4) = reflect(api::<Secret>(&client, ns), tls_only, c, rd);
        let (c, rd) = r(&changes);
        let opaque = wc().fields("type=Opaque");
        let (auth_secrets, d5) =
            reflect_pruned(api::<Secret>(&client, ns), opaque, c, rd, keep_only_auth);
        let mut drivers = vec![d1, d2, d3, d4, d5];
        let slices = config.endpoint_slices.then(|| {
            let (c, rd) = r(&changes);
            let (store, d) = reflect(api::<EndpointSlice>(&client, ns), wc(), c, rd);
            drivers.push(d);
            store
        });
        let (gateway, gateway_drivers) =
            GatewayStores::start(&client, ns, config.gateway_api, &changes, &ready);
        drivers.extend(gateway_drivers);
        let source = KubeSource {
            services,
            ingresses,
            classes,
            slices,
            secrets,
            auth_secrets,
            gateway,
        };
        let waiting = source.clone();
        let announce = async move {
            waiting.wait_ready().await;
            ready.store(true, Ordering::Release);
            tracing::info!("initial lists received from the API server");
            changes.send_modify(|n| *n += 1);
            future::pending::<()>().await;
        };
        drivers.push(Box::pin(announce));
        let all = future::join_all(drivers).map(|_| ());
        (source, Box::pin(all))
    }

    /// Resolves when every store has received its initial list.
    pub async fn wait_ready(&self) {
        let _ = self.services.wait_until_ready().await;
        let _ = self.ingresses.wait_until_ready().await;
        let _ = self.classes.wait_until_ready().await;
        let _ = self.secrets.wait_until_ready().await;
        let _ = self.auth_secrets.wait_until_ready().await;
        if let Some(s) = &self.slices {
            let _ = s.wait_until_ready().await;
        }
        self.gateway.wait_ready().await;
    }
}

/// Names of the Services the store holds (test helper and debugging aid).
pub fn service_names(source: &KubeSource) -> Vec<String> {
    let mut v: Vec<String> = source
        .services
        .state()
        .iter()
        .map(|s| s.name_any())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
#[path = "kube_tests.rs"]
mod tests;
