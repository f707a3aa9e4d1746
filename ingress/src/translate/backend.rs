//! Resolving a backend reference (namespace, Service, port) to an [`Upstream`].
//!
//! `--upstream=clusterip` (default): the Service's ClusterIP and Service port, so pod churn
//! needs no reload. Headless Services (no ClusterIP) fall back to their endpoints.
//! `--upstream=endpoints`: the ready addresses of the Service's EndpointSlices (label
//! `kubernetes.io/service-name`), with the slice port whose name matches the Service port.
//! ExternalName Services become a DNS name that nginx resolves when it loads the config, only
//! with `--allow-external-name` (the name is the Service owner's to choose, and nginx would
//! proxy wherever it resolves).
//!
//! Trust: anyone who may write EndpointSlices in a namespace could point a
//! Service's traffic anywhere, so only slices whose `endpointslice.kubernetes.io/managed-by`
//! label names the EndpointSlice controller (or a manager listed in
//! `--trust-endpointslice-managers`) are used, and a slice address is never loopback,
//! unspecified, link-local (which includes the cloud metadata address 169.254.169.254),
//! multicast or broadcast, nor AWS's IPv6 metadata address `fd00:ec2::254`; IPv4-mapped IPv6
//! addresses are judged as the IPv4 address. Skipped slices and addresses are reported
//! ([`Reason::UntrustedEndpoint`]). ClusterIPs are not filtered: the API server allocates them
//! from its service range, and the files source is the operator's own (its tests route to
//! 127.0.0.1 ClusterIPs on purpose).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{Address, Kind, Reason, Report, Upstream};
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
/// The label naming the controller that manages an EndpointSlice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The EndpointSlice controller's `managed-by` value: it writes slices only for Services with
/// a selector, from the Pods that selector picks.
pub const ENDPOINTSLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// AWS's IPv6 instance metadata address (the IPv4 one, 169.254.169.254, is link-local).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// What backends may resolve to (flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendPolicy {
    pub mode: UpstreamMode,
    /// `managed-by` values trusted besides [`ENDPOINTSLICE_CONTROLLER`].
    pub trusted_slice_managers: Vec<String>,
    /// ExternalName Services may be backends (`--allow-external-name`).
    pub allow_external_name: bool,
}

impl Default for BackendPolicy {
    fn default() -> Self {
        Self {
            mode: UpstreamMode::ClusterIp,
            trusted_slice_managers: Vec::new(),
            allow_external_name: false,
        }
    }
}

/// Why an EndpointSlice address may not be an upstream, if it may not.
pub fn refused_address(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        _ if ip.is_loopback() => Some("loopback"),
        _ if ip.is_unspecified() => Some("unspecified"),
        _ if ip.is_multicast() => Some("multicast"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local (cloud metadata lives here)"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("link-local"),
        IpAddr::V6(v6) if v6 == AWS_METADATA_V6 => Some("a cloud metadata address"),
        _ => None,
    }
}

/// Services and EndpointSlices indexed by namespace and Service name.
pub struct Backends<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    policy: &'a BackendPolicy,
    /// Slices and addresses skipped while resolving (reported once each).
    skipped: RefCell<BTreeSet<Report>>,
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
        policy: &'a BackendPolicy,
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
            policy,
            skipped: RefCell::new(BTreeSet::new()),
        }
    }

    /// What was skipped while resolving: untrusted slices, refused addresses.
    pub fn take_reports(&self) -> Vec<Report> {
        std::mem::take(&mut *self.skipped.borrow_mut())
            .into_iter()
            .collect()
    }

    fn skip(&self, slice: &EndpointSlice, field: &str, detail: String) {
        let object = match super::origin(Kind::EndpointSlice, &slice.metadata, false) {
            Ok(o) => o,
            Err(r) => r.object,
        };
        self.skipped.borrow_mut().insert(Report {
            object,
            field: field.into(),
            reason: Reason::UntrustedEndpoint,
            detail,
        });
    }

    fn trusted(&self, slice: &EndpointSlice) -> bool {
        let manager = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .map_or("", String::as_str);
        let ok = manager == ENDPOINTSLICE_CONTROLLER
            || self
                .policy
                .trusted_slice_managers
                .iter()
                .any(|m| m == manager);
        if !ok {
            self.skip(
                slice,
                &format!("metadata.labels[{MANAGED_BY_LABEL}]"),
                format!(
                    "managed by '{}', not the EndpointSlice controller: not used \
                     (trust it with --trust-endpointslice-managers)",
                    crate::validate::excerpt(manager)
                ),
            );
        }
        ok
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
            if !self.policy.allow_external_name {
                return Err(unresolved(
                    Reason::UnsupportedBackend,
                    format!(
                        "Service {namespace}/{service} is of type ExternalName; such backends \
                         are off unless berth-ingress runs with --allow-external-name"
                    ),
                ));
            }
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
        if self.policy.mode == UpstreamMode::ClusterIp && !headless {
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
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") || !self.trusted(slice) {
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
                    let Ok(ip) = validate::ip(addr) else { continue };
                    match refused_address(ip) {
                        None => _ = out.insert((Address::Ip(ip), slice_port)),
                        Some(why) => self.skip(
                            slice,
                            "endpoints[].addresses",
                            format!("address {ip} is {why}: never an upstream"),
                        ),
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;

    const CORPUS: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: web, namespace: ns}, spec: {clusterIP: None, ports: [{port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: ext, namespace: ns}, spec: {type: ExternalName, externalName: db.example.org, ports: [{port: 5432}]}}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: ctl, namespace: ns, labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}}
  addressType: IPv4
  ports: [{port: 8080}]
  endpoints: [{addresses: [10.0.0.1, 127.0.0.2, 169.254.169.254]}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: harness, namespace: ns, labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: berth-tests}}
  addressType: IPv4
  ports: [{port: 8080}]
  endpoints: [{addresses: [10.0.0.2]}]
"#;

    fn resolve(
        policy: &BackendPolicy,
        service: &str,
        port: u16,
    ) -> (Result<Upstream, Unresolved>, Vec<Report>) {
        let mut snap = Snapshot::default();
        crate::source::files::parse_manifests(CORPUS, "c.yaml", &mut snap);
        let b = Backends::new(
            snap.services.iter().map(|s| &**s),
            snap.endpoint_slices.iter().map(|s| &**s),
            policy,
        );
        let r = b.resolve("ns", service, &PortRef::Number(port));
        (r, b.take_reports())
    }

    fn ips(u: &Upstream) -> Vec<String> {
        u.endpoints.iter().map(|(a, _)| a.to_string()).collect()
    }

    #[test]
    fn only_trusted_slices_and_safe_addresses() {
        let mut policy = BackendPolicy {
            mode: UpstreamMode::Endpoints,
            ..BackendPolicy::default()
        };
        let (u, reports) = resolve(&policy, "web", 80);
        assert_eq!(ips(&u.unwrap()), ["10.0.0.1"]);
        let details: Vec<String> = reports.iter().map(|r| r.to_string()).collect();
        assert_eq!(reports.len(), 3, "{details:#?}");
        assert!(
            reports
                .iter()
                .all(|r| r.reason == Reason::UntrustedEndpoint)
        );
        assert!(
            details
                .iter()
                .any(|d| d.contains("EndpointSlice/ns/harness") && d.contains("berth-tests"))
        );
        assert!(details.iter().any(|d| d.contains("127.0.0.2 is loopback")));
        assert!(
            details
                .iter()
                .any(|d| d.contains("169.254.169.254 is link-local"))
        );
        policy.trusted_slice_managers = vec!["berth-tests".into()];
        let (u, reports) = resolve(&policy, "web", 80);
        assert_eq!(ips(&u.unwrap()), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(reports.len(), 2);
    }

    #[test]
    fn external_name_only_behind_the_flag() {
        let mut policy = BackendPolicy::default();
        let (u, _) = resolve(&policy, "ext", 5432);
        let e = u.unwrap_err();
        assert!(e.upstream.endpoints.is_empty() && e.detail.contains("--allow-external-name"));
        policy.allow_external_name = true;
        let (u, _) = resolve(&policy, "ext", 5432);
        assert_eq!(ips(&u.unwrap()), ["db.example.org"]);
    }

    #[test]
    fn refused_addresses() {
        for bad in [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "ff02::1",
        ] {
            assert!(refused_address(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for ok in [
            "10.0.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00:10:244::5",
            "2001:db8::1",
        ] {
            assert!(refused_address(ok.parse().unwrap()).is_none(), "{ok}");
        }
    }
}
