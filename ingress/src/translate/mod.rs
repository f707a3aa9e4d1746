//! Objects -> routing model (pure).
//!
//! `services.rs` turns label-selected, annotated Services into route candidates (the original
//! design), `ingress.rs` does the same for Ingress v1 objects of our class, `backend.rs` resolves
//! a backend to an upstream. `merge.rs` merges the candidates: a host belongs to one namespace,
//! the oldest object wins a (host, path, match kind) key (creationTimestamp, then
//! namespace/name; objects without a timestamp count as newest), each loser is reported, and
//! routes without a host are served by the catch-all server only.

pub mod affinity;
pub mod annotations;
pub mod auth;
pub mod backend;
pub mod canary;
pub mod cors;
pub mod errors;
pub mod external_auth;
pub mod ingress;
pub mod limits;
pub mod merge;
pub mod redirects;
pub mod secrets;
pub mod selector;
pub mod services;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::model::{
    Certificate, Host, Kind, Model, ObjectRef, PathKind, Reason, Report, RouteOptions, Upstream,
};
use crate::snapshot::Snapshot;
pub use backend::{BackendPolicy, UpstreamMode};
pub use merge::merge;
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
    /// Upstream mode, trusted EndpointSlice managers, ExternalName.
    pub backends: BackendPolicy,
    /// `--default-backend-service namespace/name` (its first port).
    pub default_backend_service: Option<(String, String)>,
    /// `--default-ssl-certificate namespace/name`: the catch-all server's certificate.
    pub default_ssl_certificate: Option<(String, String)>,
    /// `--ignore-annotations`: ingress-nginx annotation names (without the
    /// `nginx.ingress.kubernetes.io/` prefix) berth does not implement that are ignored with a
    /// report instead of refusing the Ingress. Snippets are refused whatever this says.
    pub ignore_annotations: Vec<String>,
    /// `--gateway-controller-name`: `GatewayClass.spec.controllerName` that marks a class
    /// as ours.
    pub gateway_controller_name: String,
}

impl Default for TranslateConfig {
    fn default() -> Self {
        Self {
            service_selector: LabelSelector::default(),
            ingress_class: DEFAULT_INGRESS_CLASS.into(),
            controller_name: DEFAULT_CONTROLLER_NAME.into(),
            backends: BackendPolicy::default(),
            default_backend_service: None,
            default_ssl_certificate: None,
            ignore_annotations: Vec::new(),
            gateway_controller_name: crate::gateway::DEFAULT_GATEWAY_CONTROLLER_NAME.into(),
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
    /// The `custom-http-errors` backend's upstream, when the options name one.
    pub error_upstream: Option<Upstream>,
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
    /// The Ingress's own hosts (rules and `spec.tls`): it may serve their unmatched paths.
    pub hosts: Vec<Host>,
    /// `--default-backend-service`: serves unmatched requests of every server.
    pub flag: bool,
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
        &config.backends,
    );
    let (mut out, mut gateway) = sides(snapshot, config, &backends);
    crate::gateway::resolve(&mut out, &mut gateway);
    let secrets = secrets::Secrets::new(snapshot.secrets.iter().map(|s| &**s));
    flag_default_backend(config, &backends, &mut out);
    let default_cert = flag_default_certificate(config, &secrets, &mut out.reports);
    out.reports.extend(backends.take_reports());
    out.reports.extend(snapshot.reports.iter().cloned());
    let mut model = merge(out);
    crate::gateway::join(&mut model, gateway);
    if let Some(c) = default_cert {
        model.default_certificate = Some(c.id.clone());
        if let Err(i) = model.certificates.binary_search_by(|x| x.id.cmp(&c.id)) {
            model.certificates.insert(i, c);
        }
    }
    model
}

/// Both sides before [`crate::gateway::resolve`]: the Ingress/Service candidates and the
/// Gateway API output.
pub(crate) fn sides(
    snapshot: &Snapshot,
    config: &TranslateConfig,
    backends: &backend::Backends<'_>,
) -> (Translated, crate::gateway::Output) {
    let secrets = secrets::Secrets::new(snapshot.secrets.iter().map(|s| &**s));
    let mut out = Translated::default();
    services::translate(snapshot, config, backends, &mut out);
    ingress::translate(snapshot, config, backends, &secrets, &mut out);
    let gateway = crate::gateway::translate(snapshot, config, backends);
    (out, gateway)
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
    // Sorted last; `flag` (not the age) makes it win.
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
        hosts: Vec::new(),
        flag: true,
    });
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
