//! Ingress status and leader election.
//!
//! Only one replica writes `status.loadBalancer.ingress` of the Ingresses we own: the holder
//! of the `coordination.k8s.io/v1` Lease named by `--election-id` in the controller's
//! namespace. Election ([`decide`], pure): no Lease -> create it; ours -> renew; held by
//! nobody or not renewed for `leaseDurationSeconds` -> take over (transitions + 1); else
//! follow. Writes go through `replace` with the resourceVersion we read, so two replicas
//! racing for an expired Lease cannot both win (the loser gets 409 and follows).
//!
//! Status: the addresses come from `--publish-address` or the Service named by
//! `--publish-service` (its load-balancer ingress, else external IPs, else ClusterIP). An
//! Ingress is patched only when its status differs from that, and not again while the store
//! still shows the resourceVersion we patched (a lagging store must not cause a second write).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// How long a Lease stays valid without renewal: client-go's default (15 s).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews (and followers retry): a third of the duration, so two
/// missed renewals still keep the lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// What to do with the Lease this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    Renew,
    TakeOver,
    Follow,
}

/// The election rule (pure).
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Step {
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
        .map_or(LEASE_DURATION.as_secs() as i64, i64::from);
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    match renewed {
        Some(t) if now.duration_since(t) <= SignedDuration::from_secs(duration) => Step::Follow,
        _ => Step::TakeOver,
    }
}

/// Lease-based leader election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
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
        }
    }

    /// One election round; true when we hold the Lease afterwards.
    pub async fn round(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let step = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
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
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
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

/// Writes the status of our Ingresses (leader only).
pub struct StatusWriter {
    client: Client,
    publish: Publish,
    /// (namespace, name) -> (resourceVersion we saw when we patched, value patched).
    written: HashMap<(String, String), (Option<String>, Vec<IngressLoadBalancerIngress>)>,
}

impl StatusWriter {
    pub fn new(client: Client, publish: Publish) -> Self {
        Self {
            client,
            publish,
            written: HashMap::new(),
        }
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

    /// Patch every Ingress whose status differs; returns how many were patched.
    pub async fn sync(&mut self, ingresses: &[Arc<Ingress>]) -> Result<usize, kube::Error> {
        let want = entries(&self.addresses().await?);
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
        Ok(writes)
    }
}

/// Run election + status until `shutdown`: every [`RENEW_EVERY`] and whenever `changes` bumps,
/// renew/acquire the Lease and, when leader, sync the status of `owned()`'s Ingresses.
pub async fn run(
    elector: Elector,
    mut writer: StatusWriter,
    owned: impl Fn() -> Vec<Arc<Ingress>>,
    mut changes: tokio::sync::watch::Receiver<u64>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut leader = false;
    loop {
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
        if leader {
            if let Err(e) = writer.sync(&owned()).await {
                tracing::warn!(error = %e, "writing Ingress status failed");
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
