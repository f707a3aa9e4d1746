//! Ingress v1 objects of our class -> route candidates (per docs/ingress-semantics.md).
//!
//! Ownership: `spec.ingressClassName` (or the legacy `kubernetes.io/ingress.class` annotation)
//! names an IngressClass whose `spec.controller` is ours, or, when no IngressClass of that name
//! exists, equals `--ingress-class`. An Ingress without a class is ours when one of our
//! IngressClasses carries `ingressclass.kubernetes.io/is-default-class: "true"`.
//!
//! Paths: Exact, Prefix, ImplementationSpecific (= Prefix). Hosts: exact or one `*.` label; no
//! host means the catch-all server only (`merge.rs`). Backends: Service by port number or name; `resource` backends are
//! refused. Any invalid value rejects the whole Ingress (one report naming the field); a
//! missing Service keeps the route, answering 503, and is reported.
//!
//! TLS: every `spec.tls[].hosts` entry is served over HTTPS with the certificate of the
//! `kubernetes.io/tls` Secret `secretName` (same namespace). A missing or invalid Secret is
//! reported and the host gets the default certificate (as ingress-nginx does). Annotations:
//! `annotations.rs` (one [`RouteOptions`](crate::model::RouteOptions) for all routes).

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use super::backend::Backends;
use super::secrets::Secrets;
use super::{
    Age, Candidate, DefaultCandidate, TlsCandidate, TranslateConfig, Translated, origin, report,
};
use crate::model::{Host, Kind, ObjectRef, PathKind, Reason, Report, Upstream};
use crate::snapshot::Snapshot;
use crate::validate::{self, PortRef};

pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Which class names are ours, decided once per snapshot.
struct Classes {
    ours: BTreeSet<String>,
    foreign: BTreeSet<String>,
    flag: String,
    claim_classless: bool,
}

impl Classes {
    fn new(snapshot: &Snapshot, config: &TranslateConfig) -> Self {
        let mut c = Classes {
            ours: BTreeSet::new(),
            foreign: BTreeSet::new(),
            flag: config.ingress_class.clone(),
            claim_classless: false,
        };
        for class in &snapshot.ingress_classes {
            let Some(name) = class.metadata.name.clone() else {
                continue;
            };
            let controller = class.spec.as_ref().and_then(|s| s.controller.as_deref());
            if controller == Some(config.controller_name.as_str()) {
                let default = class
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true");
                c.claim_classless |= default;
                c.ours.insert(name);
            } else {
                c.foreign.insert(name);
            }
        }
        c
    }

    fn owns(&self, ingress: &Ingress) -> bool {
        let class = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref())
            .or_else(|| {
                ingress
                    .metadata
                    .annotations
                    .as_ref()?
                    .get(LEGACY_CLASS_ANNOTATION)
                    .map(|s| s.as_str())
            });
        match class {
            None => self.claim_classless,
            Some(name) if self.ours.contains(name) => true,
            Some(name) if self.foreign.contains(name) => false,
            Some(name) => name == self.flag,
        }
    }
}

pub fn translate(
    snapshot: &Snapshot,
    config: &TranslateConfig,
    backends: &Backends<'_>,
    secrets: &Secrets<'_>,
    out: &mut Translated,
) {
    let classes = Classes::new(snapshot, config);
    for ing in &snapshot.ingresses {
        if !classes.owns(ing) {
            continue;
        }
        match one(ing, backends, secrets, &config.ignore_annotations) {
            Ok(t) => {
                out.routes.extend(t.routes);
                out.defaults.extend(t.defaults);
                out.tls.extend(t.tls);
                out.reports.extend(t.reports);
            }
            Err(r) => out.reports.push(r),
        }
    }
}

/// The Ingresses of our class (the ones whose status we write).
pub fn owned(snapshot: &Snapshot, config: &TranslateConfig) -> Vec<std::sync::Arc<Ingress>> {
    let classes = Classes::new(snapshot, config);
    snapshot
        .ingresses
        .iter()
        .filter(|i| classes.owns(i))
        .cloned()
        .collect()
}

/// A validated Service backend reference.
struct BackendRef {
    service: String,
    port: PortRef,
}

fn backend_ref(origin: &ObjectRef, field: &str, b: &IngressBackend) -> Result<BackendRef, Report> {
    if b.resource.is_some() {
        return Err(report(
            origin,
            format!("{field}.resource"),
            Reason::UnsupportedBackend,
            "resource backends are not supported; use a Service",
        ));
    }
    let Some(svc) = &b.service else {
        return Err(report(
            origin,
            format!("{field}.service"),
            Reason::UnsupportedBackend,
            "no service",
        ));
    };
    let service = validate::dns_label(&svc.name)
        .map_err(|e| {
            report(
                origin,
                format!("{field}.service.name"),
                Reason::InvalidName,
                e.to_string(),
            )
        })?
        .to_owned();
    let port_field = format!("{field}.service.port");
    let port = match svc.port.as_ref().map(|p| (p.number, p.name.as_deref())) {
        Some((Some(n), None)) => PortRef::Number(
            validate::port(i64::from(n))
                .map_err(|e| report(origin, &port_field, Reason::InvalidPort, e.to_string()))?,
        ),
        Some((None, Some(name))) => PortRef::Name(
            validate::port_name(name)
                .map_err(|e| report(origin, &port_field, Reason::InvalidPort, e.to_string()))?
                .to_owned(),
        ),
        _ => {
            return Err(report(
                origin,
                port_field,
                Reason::InvalidPort,
                "exactly one of port.number and port.name is required",
            ));
        }
    };
    Ok(BackendRef { service, port })
}

fn resolve(
    origin: &ObjectRef,
    field: &str,
    ns: &str,
    b: &BackendRef,
    backends: &Backends<'_>,
    reports: &mut Vec<Report>,
) -> Upstream {
    match backends.resolve(ns, &b.service, &b.port) {
        Ok(u) => u,
        Err(u) => {
            reports.push(report(origin, field, u.reason, u.detail));
            u.upstream
        }
    }
}

/// The `default-backend` Service of `custom-http-errors`, on its first port (a missing Service
/// is reported; its error pages are then nginx's own).
fn error_backend(
    origin: &ObjectRef,
    ns: &str,
    service: &str,
    backends: &Backends<'_>,
    reports: &mut Vec<Report>,
) -> Upstream {
    let first = backends
        .service(ns, service)
        .and_then(|s| s.spec.as_ref()?.ports.as_ref()?.first())
        .and_then(|p| validate::port(i64::from(p.port)).ok());
    let b = BackendRef {
        service: service.to_owned(),
        port: PortRef::Number(first.unwrap_or(80)),
    };
    let field = format!(
        "metadata.annotations[{}]",
        super::annotations::DEFAULT_BACKEND
    );
    resolve(origin, &field, ns, &b, backends, reports)
}

/// Translate one Ingress: all its routes, or one report saying why none. Phases: validate
/// every value ([`rule_paths`], [`tls_entries`]; any invalid one rejects the whole object),
/// then the TLS hosts and their certificates ([`tls_candidates`]), then resolve the backends
/// and emit the candidates ([`emit`]).
fn one(
    ing: &Ingress,
    backends: &Backends<'_>,
    secrets: &Secrets<'_>,
    ignore_annotations: &[String],
) -> Result<Translated, Report> {
    // Ingress names are DNS subdomains; the namespace a label.
    let origin = origin(Kind::Ingress, &ing.metadata, false)?;
    let (options, ignored) = super::annotations::route_options(
        &origin,
        ing.metadata.annotations.as_ref(),
        ignore_annotations,
        secrets,
    )?;
    let age = Age::of(&ing.metadata, &origin);
    let mut out = Translated {
        reports: ignored,
        ..Translated::default()
    };
    let Some(spec) = &ing.spec else {
        return Ok(out);
    };

    // Validate everything first: any invalid value rejects the whole object.
    let default = match &spec.default_backend {
        Some(b) => Some(backend_ref(&origin, "spec.defaultBackend", b)?),
        None => None,
    };
    // The hosts this Ingress names: its defaultBackend may serve their unmatched paths.
    let (paths, mut own_hosts) = rule_paths(&origin, spec)?;
    let tls = tls_entries(&origin, spec)?;

    own_hosts.extend(tls.iter().flat_map(|(_, hosts, _)| hosts.iter().cloned()));
    out.tls = tls_candidates(&origin, &age, tls, secrets, &mut out.reports);
    let place = Place {
        origin: &origin,
        age: &age,
        backends,
    };
    emit(&place, options, default, own_hosts, paths, &mut out);
    Ok(out)
}

/// One validated path of a rule (host, path, kind, backend, its field), not resolved yet.
type RulePath = (Option<Host>, String, PathKind, BackendRef, String);

/// Every rule's host and paths, checked; with the hosts the rules name.
fn rule_paths(
    origin: &ObjectRef,
    spec: &k8s_openapi::api::networking::v1::IngressSpec,
) -> Result<(Vec<RulePath>, BTreeSet<Host>), Report> {
    let mut routes = Vec::new();
    let mut hosts = BTreeSet::new();
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let host = match rule.host.as_deref() {
            None | Some("") => None,
            Some(h) => Some(validate::host(h).map_err(|e| {
                report(
                    origin,
                    format!("spec.rules[{i}].host"),
                    Reason::InvalidHost,
                    e.to_string(),
                )
            })?),
        };
        hosts.extend(host.clone());
        let Some(http) = &rule.http else { continue };
        for (j, p) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let kind = match p.path_type.as_str() {
                "Exact" => PathKind::Exact,
                "Prefix" | "ImplementationSpecific" => PathKind::Prefix,
                other => {
                    return Err(report(
                        origin,
                        format!("{field}.pathType"),
                        Reason::InvalidPath,
                        format!("unknown pathType '{}'", validate::excerpt(other)),
                    ));
                }
            };
            let raw = p.path.as_deref().unwrap_or("/");
            let path = validate::path(raw, kind).map_err(|e| {
                report(
                    origin,
                    format!("{field}.path"),
                    Reason::InvalidPath,
                    e.to_string(),
                )
            })?;
            let backend = backend_ref(origin, &format!("{field}.backend"), &p.backend)?;
            routes.push((host.clone(), path, kind, backend, field));
        }
    }
    Ok((routes, hosts))
}

/// TLS hosts: the Secret's certificate, or the default one (reported) when it is unusable.
fn tls_candidates(
    origin: &ObjectRef,
    age: &Age,
    tls: Vec<TlsEntry>,
    secrets: &Secrets<'_>,
    reports: &mut Vec<Report>,
) -> Vec<TlsCandidate> {
    let mut out = Vec::new();
    for (i, hosts, secret) in tls {
        let certificate =
            secret.and_then(|name| match secrets.certificate(&origin.namespace, &name) {
                Ok(c) => Some(c),
                Err(detail) => {
                    reports.push(report(
                        origin,
                        format!("spec.tls[{i}].secretName"),
                        Reason::InvalidCertificate,
                        format!("{detail}; serving the default certificate"),
                    ));
                    None
                }
            });
        for host in hosts {
            out.push(TlsCandidate {
                host,
                certificate: certificate.clone(),
                origin: origin.clone(),
                age: age.clone(),
            });
        }
    }
    out
}

/// Where candidates come from: the Ingress, its age, the backends to resolve against.
struct Place<'a> {
    origin: &'a ObjectRef,
    age: &'a Age,
    backends: &'a Backends<'a>,
}

/// Resolve the backends (custom-errors, default, each path) and emit the candidates.
fn emit(
    place: &Place<'_>,
    mut options: crate::model::RouteOptions,
    default: Option<BackendRef>,
    own_hosts: BTreeSet<Host>,
    paths: Vec<RulePath>,
    out: &mut Translated,
) {
    let Place {
        origin,
        age,
        backends,
    } = *place;
    let ns = &origin.namespace;
    let error_upstream = options.custom_errors.as_mut().map(|e| {
        let u = error_backend(origin, ns, &e.service, backends, &mut out.reports);
        e.upstream = u.name.clone();
        u
    });
    if let Some(b) = default {
        let upstream = resolve(
            origin,
            "spec.defaultBackend",
            ns,
            &b,
            backends,
            &mut out.reports,
        );
        out.defaults.push(DefaultCandidate {
            upstream,
            origin: origin.clone(),
            age: age.clone(),
            hosts: own_hosts.into_iter().collect(),
            flag: false,
        });
    }
    for (host, path, kind, b, field) in paths {
        let upstream = resolve(
            origin,
            &format!("{field}.backend"),
            ns,
            &b,
            backends,
            &mut out.reports,
        );
        out.routes.push(Candidate {
            host,
            path,
            kind,
            upstream,
            origin: origin.clone(),
            age: age.clone(),
            options: options.clone(),
            error_upstream: error_upstream.clone(),
        });
    }
}

/// One validated `spec.tls` entry: its index, hosts, and Secret name (`None`: default cert).
type TlsEntry = (usize, Vec<Host>, Option<String>);

fn tls_entries(
    origin: &ObjectRef,
    spec: &k8s_openapi::api::networking::v1::IngressSpec,
) -> Result<Vec<TlsEntry>, Report> {
    let mut out = Vec::new();
    for (i, t) in spec.tls.iter().flatten().enumerate() {
        let mut hosts = Vec::new();
        for (j, h) in t.hosts.iter().flatten().enumerate() {
            hosts.push(validate::host(h).map_err(|e| {
                report(
                    origin,
                    format!("spec.tls[{i}].hosts[{j}]"),
                    Reason::InvalidHost,
                    e.to_string(),
                )
            })?);
        }
        let secret = match t.secret_name.as_deref() {
            None | Some("") => None,
            Some(name) => Some(
                validate::dns_name(name)
                    .map_err(|e| {
                        report(
                            origin,
                            format!("spec.tls[{i}].secretName"),
                            Reason::InvalidName,
                            e.to_string(),
                        )
                    })?
                    .to_owned(),
            ),
        };
        out.push((i, hosts, secret));
    }
    Ok(out)
}
