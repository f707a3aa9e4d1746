//! Resolving a backend reference (namespace, Service, port) to an [`Upstream`].
//!
//! `--upstream=clusterip` (default): the Service's ClusterIP and Service port, so pod churn
//! needs no reload. Headless Services (no ClusterIP) fall back to their endpoints.
//! `--upstream=endpoints`: the ready addresses of the Service's EndpointSlices (label
//! `kubernetes.io/service-name`), with the slice port whose name matches the Service port.
//! ExternalName Services become a DNS name that nginx resolves when it loads the config.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{Address, Reason, Upstream};
use crate::validate::{self, PortRef};

/// Where upstream addresses come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamMode {
    #[default]
    ClusterIp,
    Endpoints,
}

/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Services and EndpointSlices indexed by namespace and Service name.
pub struct Backends<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    mode: UpstreamMode,
}

/// A backend that could not be resolved: the route still exists but answers 503.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// The (empty) upstream the route points at.
    pub upstream: Upstream,
    pub reason: Reason,
    pub detail: String,
}

fn upstream_name(namespace: &str, service: &str, port: &str) -> String {
    let mut name = String::with_capacity(namespace.len() + service.len() + port.len() + 2);
    name.push_str(namespace);
    name.push('_');
    name.push_str(service);
    name.push('_');
    name.push_str(port);
    name
}

impl<'a> Backends<'a> {
    pub fn new(
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        mode: UpstreamMode,
    ) -> Self {
        let mut by_name = HashMap::new();
        for s in services {
            if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                by_name.insert((ns.as_str(), name.as_str()), s);
            }
        }
        let mut by_service: HashMap<_, Vec<_>> = HashMap::new();
        for e in slices {
            let svc = e
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(ns), Some(svc)) = (&e.metadata.namespace, svc) {
                by_service
                    .entry((ns.as_str(), svc.as_str()))
                    .or_default()
                    .push(e);
            }
        }
        Self {
            services: by_name,
            slices: by_service,
            mode,
        }
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        self.services.get(&(namespace, name)).copied()
    }

    /// Resolve `namespace/service:port`. The namespace and name must already be valid DNS
    /// labels, and a named port a valid port name (they form the upstream name).
    pub fn resolve(
        &self,
        namespace: &str,
        service: &str,
        port: &PortRef,
    ) -> Result<Upstream, Unresolved> {
        let unresolved = |reason, detail: String| {
            let port_text = match port {
                PortRef::Number(n) => n.to_string(),
                PortRef::Name(n) => n.clone(),
            };
            Unresolved {
                upstream: Upstream {
                    name: upstream_name(namespace, service, &port_text),
                    endpoints: Vec::new(),
                },
                reason,
                detail,
            }
        };
        let Some(svc) = self.service(namespace, service) else {
            return Err(unresolved(
                Reason::BackendNotFound,
                format!("Service {namespace}/{service} not found"),
            ));
        };
        let spec = svc.spec.as_ref();
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let found = ports.iter().find(|p| match port {
            PortRef::Number(n) => i64::from(p.port) == i64::from(*n),
            PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
        });
        let Some(service_port) = found else {
            return Err(unresolved(
                Reason::BackendNotFound,
                format!("Service {namespace}/{service} has no such port"),
            ));
        };
        let number = validate::port(i64::from(service_port.port))
            .map_err(|e| unresolved(Reason::InvalidPort, e.to_string()))?;
        let name = upstream_name(namespace, service, &number.to_string());
        let ty = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
        if ty == "ExternalName" {
            let external = spec
                .and_then(|s| s.external_name.as_deref())
                .unwrap_or_default();
            let dns = validate::dns_name(external).map_err(|e| {
                unresolved(Reason::UnsupportedBackend, format!("externalName: {e}"))
            })?;
            return Ok(Upstream {
                name,
                endpoints: vec![(Address::Dns(dns.to_owned()), number)],
            });
        }
        let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("None");
        let headless = cluster_ip.is_empty() || cluster_ip == "None";
        if self.mode == UpstreamMode::ClusterIp && !headless {
            let ip = validate::ip(cluster_ip)
                .map_err(|e| unresolved(Reason::UnsupportedBackend, format!("clusterIP: {e}")))?;
            return Ok(Upstream {
                name,
                endpoints: vec![(Address::Ip(ip), number)],
            });
        }
        let endpoints = self.ready_endpoints(namespace, service, service_port);
        Ok(Upstream { name, endpoints })
    }

    /// Ready addresses of the Service's EndpointSlices for one Service port, sorted.
    fn ready_endpoints(
        &self,
        namespace: &str,
        service: &str,
        port: &ServicePort,
    ) -> Vec<(Address, u16)> {
        let mut out = BTreeSet::new();
        let want = port.name.as_deref().unwrap_or("");
        for slice in self.slices.get(&(namespace, service)).into_iter().flatten() {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            let slice_port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or("") == want)
                .and_then(|p| p.port)
                .and_then(|p| validate::port(i64::from(p)).ok());
            let Some(slice_port) = slice_port else {
                continue;
            };
            for ep in &slice.endpoints {
                // The API: a nil `ready` condition is to be read as ready.
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for addr in &ep.addresses {
                    if let Ok(ip) = validate::ip(addr) {
                        out.insert((Address::Ip(ip), slice_port));
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}
