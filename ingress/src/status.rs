//! Ingress status and leader election.
//!
//! Only one replica writes `status.loadBalancer.ingress` of the Ingresses we own and serve:
//! the holder of the `coordination.k8s.io/v1` Lease named by `--election-id` in the
//! controller's namespace. Election ([`decide`], pure): no Lease -> create it; ours -> renew;
//! held by nobody, or its record unchanged for `leaseDurationSeconds` of OUR clock -> take over
//! (transitions + 1); else follow. Expiry is judged like client-go: by the local time at which
//! the record was last seen to change, never by comparing the holder's renewTime with our
//! clock (skewed clocks would make two leaders). Writes go through `replace` with the
//! resourceVersion we read, so two replicas racing for an expired Lease cannot both win (the
//! loser gets 409 and follows).
//!
//! Cost: the Lease is read and written on a timer only — the leader renews every
//! [`RENEW_EVERY`], followers look every [`RETRY_EVERY`] — never per object change. On
//! shutdown the leader releases the Lease (empty holder); each replica watches the Lease
//! ([`Elector::releases`]), so a follower takes it over as soon as the release is written,
//! instead of at its next look or after the Lease expires.
//!
//! Status: the Gateway API statuses are written by the same leader with the same addresses
//! (`status_gateway.rs`). The addresses come from `--publish-address` or the Service named by
//! `--publish-service` (its load-balancer ingress, else external IPs, else ClusterIP). An
//! Ingress is patched only when its status differs from that, and not again while the store
//! still shows the resourceVersion we patched (a lagging store must not cause a second write).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt as _, future};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::time::Instant;

use crate::status_gateway::GatewayStatusWriter;

/// How long a Lease stays valid without renewal: client-go's default (15 s).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews: a third of the duration, so two missed renewals still keep
/// the lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a follower looks at the Lease: bounds the takeover after a release.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How long a released Lease's holder waits for its release write at shutdown.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do with the Lease this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    Renew,
    TakeOver,
    Follow,
}

/// The election rule (pure). `unchanged_for`: how long (our clock) the record has looked the
/// same to us.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> Step {
    let Some(spec) = spec else {
        return Step::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => return Step::Renew,
        None | Some("") => return Step::TakeOver,
        Some(_) => {}
    }
    let duration = spec
        .lease_duration_seconds
        .map_or(LEASE_DURATION, |s| Duration::from_secs(s.max(0) as u64));
    if unchanged_for > duration {
        Step::TakeOver
    } else {
        Step::Follow
    }
}

/// What identifies one version of the Lease record (client-go compares the whole record).
fn record_key(lease: &Lease) -> String {
    let spec = lease.spec.clone().unwrap_or_default();
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}",
        lease.metadata.resource_version,
        spec.holder_identity,
        spec.renew_time.map(|t| t.0),
        spec.acquire_time.map(|t| t.0),
        spec.lease_transitions
    )
}

/// Nobody holds `lease` (released by its last holder).
fn is_released(lease: &Lease) -> bool {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .is_none_or(str::is_empty)
}

/// Lease-based leader election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// The record we saw last and when (our clock) we first saw it.
    observed: Mutex<Option<(String, Instant)>>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            observed: Mutex::new(None),
        }
    }

    /// How long the record has looked like `current` to us (0 when it just changed).
    fn unchanged_for(&self, current: Option<&Lease>) -> Duration {
        let key = current.map(record_key).unwrap_or_default();
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match &*observed {
            Some((k, since)) if *k == key => since.elapsed(),
            _ => {
                *observed = Some((key, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// One election round; true when we hold the Lease afterwards.
    pub async fn round(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let step = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            self.unchanged_for(current.as_ref()),
        );
        let mut spec = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(LEASE_DURATION.as_secs() as i32);
        spec.renew_time = Some(MicroTime(now));
        let result = match step {
            Step::Follow => return Ok(false),
            Step::Create => {
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(0);
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Step::Renew | Step::TakeOver => {
                if step == Step::TakeOver {
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    tracing::info!(lease = %self.name, "taking over the expired leader lease");
                }
                let mut lease = current.unwrap_or_default();
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(written) => {
                self.unchanged_for(Some(&written));
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A signal each time a watch of the Lease sees it released (empty holder) or deleted,
    /// so a follower takes it over at once instead of at its next look. A watch that fails
    /// (no `watch` right on leases) backs off and leaves the timer to do the work.
    pub fn releases(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let fields = format!("metadata.name={}", self.name);
        watcher::watcher(self.api.clone(), watcher::Config::default().fields(&fields))
            .default_backoff()
            .filter_map(|event| {
                future::ready(match event {
                    Ok(Event::Apply(l) | Event::InitApply(l)) if is_released(&l) => Some(()),
                    Ok(Event::Delete(_)) => Some(()),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::debug!(error = %e, "watch of the leader lease failed");
                        None
                    }
                })
            })
    }

    /// Give the Lease up (if we still hold it): empty holder, so the next replica takes over
    /// at its next look instead of after `leaseDurationSeconds`.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        tracing::info!(lease = %self.name, "leader lease released");
        Ok(())
    }
}

/// Where the published addresses come from.
#[derive(Clone, Debug)]
pub enum Publish {
    /// `--publish-address`: IPs or host names, already validated.
    Addresses(Vec<String>),
    /// `--publish-service namespace/name`.
    Service(String, String),
}

/// Addresses -> status entries (IP or hostname).
pub fn entries(addresses: &[String]) -> Vec<IngressLoadBalancerIngress> {
    addresses
        .iter()
        .map(|a| {
            if a.parse::<std::net::IpAddr>().is_ok() {
                IngressLoadBalancerIngress {
                    ip: Some(a.clone()),
                    ..Default::default()
                }
            } else {
                IngressLoadBalancerIngress {
                    hostname: Some(a.clone()),
                    ..Default::default()
                }
            }
        })
        .collect()
}

/// The addresses a Service publishes: load-balancer ingress, else external IPs, else ClusterIP.
pub fn service_addresses(svc: &Service) -> Vec<String> {
    let lb: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect();
    if !lb.is_empty() {
        return lb;
    }
    let spec = svc.spec.as_ref();
    if let Some(ext) = spec
        .and_then(|s| s.external_ips.clone())
        .filter(|e| !e.is_empty())
    {
        return ext;
    }
    spec.and_then(|s| s.cluster_ip.clone())
        .filter(|ip| !ip.is_empty() && ip != "None")
        .into_iter()
        .collect()
}

fn current(ing: &Ingress) -> Vec<IngressLoadBalancerIngress> {
    ing.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.clone())
        .unwrap_or_default()
}

/// The current snapshot and what the live config serves, for the Gateway API statuses.
pub type SnapshotFn =
    Box<dyn Fn() -> (crate::snapshot::Snapshot, Arc<crate::serving::Serving>) + Send + Sync>;

/// Writes the status of our Ingresses (leader only), and with [`StatusWriter::with_gateway`]
/// that of our Gateway API objects (`status_gateway.rs`) with the same addresses.
pub struct StatusWriter {
    client: Client,
    publish: Publish,
    /// (namespace, name) -> (resourceVersion we saw when we patched, value patched).
    written: HashMap<(String, String), (Option<String>, Vec<IngressLoadBalancerIngress>)>,
    gateway: Option<(GatewayStatusWriter, SnapshotFn)>,
}

impl StatusWriter {
    pub fn new(client: Client, publish: Publish) -> Self {
        Self {
            client,
            publish,
            written: HashMap::new(),
            gateway: None,
        }
    }

    /// Also write the Gateway API statuses of `snapshot()` (with what the live config
    /// serves) at every sync.
    pub fn with_gateway(mut self, writer: GatewayStatusWriter, snapshot: SnapshotFn) -> Self {
        self.gateway = Some((writer, snapshot));
        self
    }

    async fn addresses(&self) -> Result<Vec<String>, kube::Error> {
        match &self.publish {
            Publish::Addresses(a) => Ok(a.clone()),
            Publish::Service(ns, name) => {
                let svc = Api::<Service>::namespaced(self.client.clone(), ns)
                    .get(name)
                    .await?;
                Ok(service_addresses(&svc))
            }
        }
    }

    /// Patch every Ingress (and Gateway API object) whose status differs; returns how many
    /// were patched. A failing Gateway API write is logged and never stops the Ingress status.
    pub async fn sync(&mut self, ingresses: &[Arc<Ingress>]) -> Result<usize, kube::Error> {
        let published = self.addresses().await?;
        let want = entries(&published);
        let mut writes = 0;
        for ing in ingresses {
            let (Some(ns), Some(name)) = (&ing.metadata.namespace, &ing.metadata.name) else {
                continue;
            };
            if current(ing) == want {
                continue;
            }
            let key = (ns.clone(), name.clone());
            let rv = ing.metadata.resource_version.clone();
            if self.written.get(&key) == Some(&(rv.clone(), want.clone())) {
                continue; // our patch is not in the store yet
            }
            let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": want}}});
            Api::<Ingress>::namespaced(self.client.clone(), ns)
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            self.written.insert(key, (rv, want.clone()));
            writes += 1;
        }
        if let Some((writer, snapshot)) = &mut self.gateway {
            let (snapshot, serving) = snapshot();
            match writer.sync(&snapshot, &serving, &published).await {
                Ok(n) => writes += n,
                Err(e) => tracing::warn!(error = %e, "writing Gateway API status failed"),
            }
        }
        Ok(writes)
    }
}

/// Run election + status until `shutdown`: the Lease is renewed (leader) or looked at
/// (follower) on a timer only; the leader writes the status of `owned()`'s Ingresses when it
/// becomes leader, at each renewal and whenever `changes` signals; at shutdown a leader
/// releases the Lease.
pub async fn run<T>(
    elector: Elector,
    mut writer: StatusWriter,
    owned: impl Fn() -> Vec<Arc<Ingress>>,
    mut changes: tokio::sync::watch::Receiver<T>,
    releases: impl futures::Stream<Item = ()>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let releases = releases.fuse();
    tokio::pin!(releases);
    let mut leader = false;
    let mut next_round = Instant::now();
    loop {
        let write;
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(next_round) => {
                match elector.round().await {
                    Ok(now_leader) => {
                        if now_leader != leader {
                            tracing::info!(leader = now_leader, "leader election changed");
                        }
                        leader = now_leader;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election round failed");
                        leader = false;
                    }
                }
                next_round = Instant::now() + if leader { RENEW_EVERY } else { RETRY_EVERY };
                write = leader;
            }
            // Released by its holder: a follower looks now (a leader has nothing to do).
            Some(()) = releases.next() => {
                if !leader {
                    next_round = Instant::now();
                }
                write = false;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                write = leader;
            }
        }
        if write && let Err(e) = writer.sync(&owned()).await {
            tracing::warn!(error = %e, "writing Ingress status failed");
        }
    }
    if leader {
        match tokio::time::timeout(RELEASE_TIMEOUT, elector.release()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the leader lease failed"),
            Err(_) => tracing::warn!("releasing the leader lease timed out"),
        }
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
