//! Objects -> routing model (pure).
//!
//! `services.rs` turns label-selected, annotated Services into route candidates (the original
//! design), `ingress.rs` does the same for Ingress v1 objects of our class, `backend.rs` resolves
//! a backend to an upstream. This module merges the candidates: oldest object wins a
//! (host, path, match kind) key (creationTimestamp, then namespace/name; objects without a
//! timestamp count as newest), each loser is reported, and routes without a host are served
//! for every host that has no route of its own for that path.

pub mod annotations;
pub mod backend;
pub mod ingress;
pub mod secrets;
pub mod selector;
pub mod services;

use std::collections::{BTreeMap, btree_map::Entry};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::model::{
    Certificate, DefaultBackend, Host, Kind, Location, Model, ObjectRef, PathKind, Reason, Report,
    RouteOptions, Server, ServerTls, Upstream,
};
use crate::snapshot::Snapshot;
pub use backend::UpstreamMode;
pub use selector::LabelSelector;

/// The controller's name in `IngressClass.spec.controller`, unless `--controller-name` says
/// otherwise.
pub const DEFAULT_CONTROLLER_NAME: &str = "berth.dev/ingress-nginx";
/// The IngressClass name we answer to, unless `--ingress-class` says otherwise.
pub const DEFAULT_INGRESS_CLASS: &str = "berth";

/// What translation needs to know besides the objects.
#[derive(Clone, Debug)]
pub struct TranslateConfig {
    pub service_selector: LabelSelector,
    pub ingress_class: String,
    pub controller_name: String,
    pub upstream_mode: UpstreamMode,
    /// `--default-backend-service namespace/name` (its first port).
    pub default_backend_service: Option<(String, String)>,
    /// `--default-ssl-certificate namespace/name`: the catch-all server's certificate.
    pub default_ssl_certificate: Option<(String, String)>,
}

impl Default for TranslateConfig {
    fn default() -> Self {
        Self {
            service_selector: LabelSelector::default(),
            ingress_class: DEFAULT_INGRESS_CLASS.into(),
            controller_name: DEFAULT_CONTROLLER_NAME.into(),
            upstream_mode: UpstreamMode::ClusterIp,
            default_backend_service: None,
            default_ssl_certificate: None,
        }
    }
}

/// Ordering key: older first; no timestamp sorts as newest; then namespace/name, then kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Age {
    missing_timestamp: bool,
    created: Option<Time>,
    namespace: String,
    name: String,
    kind: Kind,
}

impl Age {
    pub fn of(meta: &ObjectMeta, origin: &ObjectRef) -> Self {
        Self {
            missing_timestamp: meta.creation_timestamp.is_none(),
            created: meta.creation_timestamp.clone(),
            namespace: origin.namespace.clone(),
            name: origin.name.clone(),
            kind: origin.kind,
        }
    }
}

/// One route an object asks for, before conflicts are resolved.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub host: Option<Host>,
    pub path: String,
    pub kind: PathKind,
    pub upstream: Upstream,
    pub origin: ObjectRef,
    pub age: Age,
    pub options: RouteOptions,
}

/// A host an object wants served over HTTPS; `certificate: None` = the default certificate.
#[derive(Clone, Debug)]
pub struct TlsCandidate {
    pub host: Host,
    pub certificate: Option<Certificate>,
    pub origin: ObjectRef,
    pub age: Age,
}

/// A default backend an object asks for.
#[derive(Clone, Debug)]
pub struct DefaultCandidate {
    pub upstream: Upstream,
    pub origin: ObjectRef,
    pub age: Age,
}

/// What one translator produced.
#[derive(Debug, Default)]
pub struct Translated {
    pub routes: Vec<Candidate>,
    pub defaults: Vec<DefaultCandidate>,
    pub tls: Vec<TlsCandidate>,
    pub reports: Vec<Report>,
}

/// Build the whole model from a snapshot.
pub fn build(snapshot: &Snapshot, config: &TranslateConfig) -> Model {
    let backends = backend::Backends::new(
        snapshot.services.iter().map(|s| &**s),
        snapshot.endpoint_slices.iter().map(|e| &**e),
        config.upstream_mode,
    );
    let secrets = secrets::Secrets::new(snapshot.secrets.iter().map(|s| &**s));
    let mut out = Translated::default();
    services::translate(snapshot, config, &backends, &mut out);
    ingress::translate(snapshot, config, &backends, &secrets, &mut out);
    flag_default_backend(config, &backends, &mut out);
    let default_cert = flag_default_certificate(config, &secrets, &mut out.reports);
    out.reports.extend(snapshot.reports.iter().cloned());
    let mut model = merge(out);
    if let Some(c) = default_cert {
        model.default_certificate = Some(c.id.clone());
        if let Err(i) = model.certificates.binary_search_by(|x| x.id.cmp(&c.id)) {
            model.certificates.insert(i, c);
        }
    }
    model
}

fn flag_default_certificate(
    config: &TranslateConfig,
    secrets: &secrets::Secrets<'_>,
    reports: &mut Vec<Report>,
) -> Option<Certificate> {
    let (ns, name) = config.default_ssl_certificate.as_ref()?;
    match secrets.certificate(ns, name) {
        Ok(c) => Some(c),
        Err(detail) => {
            reports.push(Report {
                object: ObjectRef::new(Kind::Secret, ns.clone(), name.clone()),
                field: "--default-ssl-certificate".into(),
                reason: Reason::InvalidCertificate,
                detail: format!("{detail}; serving the self-signed certificate"),
            });
            None
        }
    }
}

fn flag_default_backend(
    config: &TranslateConfig,
    backends: &backend::Backends<'_>,
    out: &mut Translated,
) {
    let Some((ns, name)) = &config.default_backend_service else {
        return;
    };
    let origin = ObjectRef::new(Kind::Service, ns.clone(), name.clone());
    let port = backends
        .service(ns, name)
        .and_then(|s| s.spec.as_ref()?.ports.as_ref()?.first().map(|p| p.port))
        .and_then(|p| crate::validate::port(i64::from(p)).ok());
    let Some(port) = port else {
        out.reports.push(Report {
            object: origin,
            field: "--default-backend-service".into(),
            reason: Reason::BackendNotFound,
            detail: "default backend Service not found or has no port".into(),
        });
        return;
    };
    let upstream = match backends.resolve(ns, name, &crate::validate::PortRef::Number(port)) {
        Ok(u) => u,
        Err(e) => e.upstream,
    };
    // The flag is the fallback: sort it after every object's own defaultBackend.
    let age = Age {
        missing_timestamp: true,
        created: None,
        namespace: "\u{10FFFF}".into(),
        name: String::new(),
        kind: Kind::Service,
    };
    out.defaults.push(DefaultCandidate {
        upstream,
        origin,
        age,
    });
}

/// Resolve conflicts (oldest wins) and assemble the model.
pub fn merge(mut t: Translated) -> Model {
    t.routes.sort_by(|a, b| a.age.cmp(&b.age));
    t.defaults.sort_by(|a, b| a.age.cmp(&b.age));

    let mut upstreams: BTreeMap<String, Upstream> = BTreeMap::new();
    let mut hosts: BTreeMap<Option<Host>, BTreeMap<(String, PathKind), Location>> = BTreeMap::new();
    hosts.insert(None, BTreeMap::new());
    let mut reports = t.reports;

    for c in t.routes {
        let key = (c.path, c.kind);
        match hosts.entry(c.host.clone()).or_default().entry(key) {
            Entry::Occupied(winner) => {
                let (path, _) = winner.key();
                reports.push(Report {
                    object: c.origin,
                    field: "route".into(),
                    reason: Reason::Conflict,
                    detail: format!(
                        "{} {:?} {path} is already served by older {}",
                        c.host.as_ref().map_or("*".to_owned(), Host::to_string),
                        c.kind,
                        winner.get().origin
                    ),
                });
            }
            Entry::Vacant(slot) => {
                let (path, kind) = slot.key().clone();
                let name = c.upstream.name.clone();
                upstreams.entry(name.clone()).or_insert(c.upstream);
                slot.insert(Location {
                    path,
                    kind,
                    upstream: name,
                    origin: c.origin,
                    options: c.options,
                });
            }
        }
    }

    let mut defaults = t.defaults.into_iter();
    let default_backend = defaults.next().map(|d| {
        let name = d.upstream.name.clone();
        upstreams.entry(name.clone()).or_insert(d.upstream);
        DefaultBackend {
            upstream: name,
            origin: d.origin,
        }
    });
    if let Some(winner) = &default_backend {
        for loser in defaults.filter(|d| d.origin.kind != Kind::Service) {
            reports.push(Report {
                object: loser.origin,
                field: "spec.defaultBackend".into(),
                reason: Reason::Conflict,
                detail: format!(
                    "the default backend is already set by older {}",
                    winner.origin
                ),
            });
        }
    }

    let (tls, certificates) = merge_tls(t.tls, &mut reports);
    for host in tls.keys() {
        hosts.entry(Some(host.clone())).or_default();
    }

    // Routes without a host apply to every host that lacks that (path, kind).
    let catch_all = hosts.get(&None).cloned().unwrap_or_default();
    let servers = hosts
        .into_iter()
        .map(|(host, mut locations)| {
            if host.is_some() {
                for (key, loc) in &catch_all {
                    locations.entry(key.clone()).or_insert_with(|| loc.clone());
                }
            }
            Server {
                tls: host.as_ref().and_then(|h| tls.get(h).cloned()),
                host,
                locations: locations.into_values().collect(),
            }
        })
        .collect();

    reports.sort();
    reports.dedup();
    Model {
        servers,
        upstreams: upstreams.into_values().collect(),
        default_backend,
        reports,
        certificates,
        default_certificate: None,
    }
}

/// TLS per host: the oldest object's choice wins; a younger object naming a different
/// certificate is reported. Returns the per-host choice and the certificates in use.
fn merge_tls(
    mut candidates: Vec<TlsCandidate>,
    reports: &mut Vec<Report>,
) -> (BTreeMap<Host, ServerTls>, Vec<Certificate>) {
    candidates.sort_by(|a, b| a.age.cmp(&b.age));
    let mut chosen: BTreeMap<Host, (ServerTls, ObjectRef)> = BTreeMap::new();
    let mut certs: BTreeMap<String, Certificate> = BTreeMap::new();
    for c in candidates {
        let want = match &c.certificate {
            Some(cert) => ServerTls::Certificate(cert.id.clone()),
            None => ServerTls::Default,
        };
        match chosen.entry(c.host.clone()) {
            Entry::Occupied(winner) => {
                if winner.get().0 != want {
                    reports.push(Report {
                        object: c.origin,
                        field: "spec.tls".into(),
                        reason: Reason::Conflict,
                        detail: format!(
                            "host {} already has its TLS certificate from older {}",
                            c.host,
                            winner.get().1
                        ),
                    });
                }
            }
            Entry::Vacant(slot) => {
                if let Some(cert) = c.certificate {
                    certs.entry(cert.id.clone()).or_insert(cert);
                }
                slot.insert((want, c.origin));
            }
        }
    }
    let tls = chosen.into_iter().map(|(h, (t, _))| (h, t)).collect();
    (tls, certs.into_values().collect())
}

/// The object's reference, after checking its namespace (DNS label) and name (DNS label when
/// `name_is_label`, else DNS subdomain). An invalid one yields a report whose reference holds
/// escaped excerpts only, so hostile names never reach a log line verbatim.
pub(crate) fn origin(
    kind: Kind,
    meta: &ObjectMeta,
    name_is_label: bool,
) -> Result<ObjectRef, Report> {
    let ns = meta.namespace.as_deref().unwrap_or("default");
    let name = meta.name.as_deref().unwrap_or("");
    let ns_ok = crate::validate::dns_label(ns);
    let name_ok = if name_is_label {
        crate::validate::dns_label(name)
    } else {
        crate::validate::dns_name(name)
    };
    match (ns_ok, name_ok) {
        (Ok(_), Ok(_)) => Ok(ObjectRef::new(kind, ns, name)),
        (ns_res, name_res) => {
            let safe = ObjectRef::new(
                kind,
                crate::validate::excerpt(ns),
                crate::validate::excerpt(name),
            );
            let (field, err) = match (ns_res, name_res) {
                (Err(e), _) => ("metadata.namespace", e),
                (_, Err(e)) => ("metadata.name", e),
                _ => unreachable!("one of them failed"),
            };
            Err(report(&safe, field, Reason::InvalidName, err.to_string()))
        }
    }
}

/// Report helper for translators.
pub(crate) fn report(
    object: &ObjectRef,
    field: impl Into<String>,
    reason: Reason,
    detail: impl Into<String>,
) -> Report {
    Report {
        object: object.clone(),
        field: field.into(),
        reason,
        detail: detail.into(),
    }
}
