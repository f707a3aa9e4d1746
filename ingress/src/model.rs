//! The routing model: what nginx should serve, independent of where it came from.
//!
//! Translation (`translate/`) builds a [`Model`] from a snapshot of Kubernetes objects; rendering
//! (`render.rs`) turns it into nginx.conf text. Every string in here has already passed
//! `validate.rs`, so the renderer may write it verbatim. Each location remembers the object it
//! came from ([`ObjectRef`]) so a config nginx rejects can be re-rendered without that object.

use std::fmt;
use std::net::IpAddr;

pub use crate::htpasswd::HtpasswdFile;
pub use options::{
    Affinity, BasicAuth, Canary, Cors, CustomErrors, ExternalAuth, RateLimit, Signin,
};

mod gateway;
mod isolate;
mod options;
pub use crate::tls::Certificate;
pub use gateway::{
    GwAction, GwEntry, GwLocation, GwProxy, GwRedirect, GwRule, GwServer, HeaderMods, PathModifier,
};

/// Which kind of Kubernetes object (or manifest file) a route or report refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Service,
    Ingress,
    IngressClass,
    EndpointSlice,
    Secret,
    /// A manifest file of the files source that could not be parsed.
    File,
    GatewayClass,
    Gateway,
    HTTPRoute,
    GRPCRoute,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Secret => "Secret",
            Kind::File => "File",
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HTTPRoute => "HTTPRoute",
            Kind::GRPCRoute => "GRPCRoute",
        }
    }
}

/// `kind/namespace/name` of the object a route or a report belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind.as_str(), self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind.as_str(), self.namespace, self.name)
        }
    }
}

/// Which requests a server block answers, by `Host` header.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// `foo.example.com`
    Exact(String),
    /// `*.example.com`, stored without the `*.`; matches exactly one extra label.
    Wildcard(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Exact(h) => f.write_str(h),
            Host::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// How a location's path is matched (Ingress v1 `pathType`; ImplementationSpecific is Prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathKind {
    /// The whole path, case-sensitive.
    Exact,
    /// Element-wise on `/`: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`.
    Prefix,
}

/// One route inside a server: a path and the upstream it proxies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Starts with `/`; for Prefix, normalised without a trailing slash (except `/` itself).
    pub path: String,
    pub kind: PathKind,
    /// Name of an [`Upstream`] in the same model.
    pub upstream: String,
    pub origin: ObjectRef,
    /// Settings from the origin's `berth.dev/` annotations.
    pub options: RouteOptions,
}

/// What nginx speaks to the backend (`berth.dev/backend-protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackendProtocol {
    #[default]
    Http,
    Https,
    /// gRPC (HTTP/2 to the backend, `grpc_pass`); clients reach it over the TLS listener.
    Grpc,
    /// gRPC over TLS to the backend (`grpc_pass grpcs://`; the backend's certificate is not
    /// verified, as with `HTTPS`).
    Grpcs,
}

impl BackendProtocol {
    /// `GRPC` or `GRPCS`.
    pub fn is_grpc(self) -> bool {
        matches!(self, BackendProtocol::Grpc | BackendProtocol::Grpcs)
    }
}

/// An IP network, canonical (host bits may be set; nginx accepts and masks them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Per-route settings from `berth.dev/` annotations (all validated in `validate.rs`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteOptions {
    /// Replaces the matched path prefix (a validated path).
    pub rewrite_target: Option<String>,
    /// Redirect HTTP to HTTPS (308) when the host has TLS. Default true.
    pub ssl_redirect: bool,
    /// `client_max_body_size`, normalised nginx size text (`0`, `512`, `10k`, `8m`, `1g`).
    pub proxy_body_size: Option<String>,
    /// Seconds.
    pub proxy_read_timeout: Option<u32>,
    /// Seconds between two writes of the request to the backend.
    pub proxy_send_timeout: Option<u32>,
    /// Seconds.
    pub proxy_connect_timeout: Option<u32>,
    /// `false`: responses are passed to the client as they arrive (`proxy_buffering off`).
    pub proxy_buffering: bool,
    pub backend_protocol: BackendProtocol,
    /// Empty = every source; otherwise only these networks (403 for others).
    pub allow_source_ranges: Vec<Cidr>,
    /// These networks get 403 (checked before `allow_source_ranges`).
    pub deny_source_ranges: Vec<Cidr>,
    /// HTTP basic authentication (`auth-type: basic`): 401 without valid credentials.
    pub basic_auth: Option<BasicAuth>,
    /// External authentication (`auth-url`): nginx `auth_request` to that URL first.
    pub external_auth: Option<ExternalAuth>,
    /// Redirect plain HTTP to HTTPS (308) even when the host has no TLS of its own.
    pub force_ssl_redirect: bool,
    /// `(code, URL)`: every request is redirected there (permanent/temporal-redirect).
    pub redirect: Option<(u16, String)>,
    /// A request for `/` is redirected (302) to this path.
    pub app_root: Option<String>,
    /// The `Host` header the backend gets (a DNS name, optionally `:port`).
    pub upstream_vhost: Option<String>,
    /// Request and connection limits per client address (`503` past them).
    pub rate_limit: Option<RateLimit>,
    /// CORS headers and preflight answers (`enable-cors`).
    pub cors: Option<Cors>,
    /// Backend answers replaced by an error backend's (`custom-http-errors`).
    pub custom_errors: Option<Box<CustomErrors>>,
    /// Sticky backend choice by a cookie (`affinity: cookie`).
    pub affinity: Option<Box<Affinity>>,
    /// On a canary Ingress: its split; on a main route: the canary attached to it.
    pub canary: Option<Box<Canary>>,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self {
            rewrite_target: None,
            ssl_redirect: true,
            proxy_body_size: None,
            proxy_read_timeout: None,
            proxy_send_timeout: None,
            proxy_connect_timeout: None,
            proxy_buffering: true,
            backend_protocol: BackendProtocol::Http,
            allow_source_ranges: Vec::new(),
            deny_source_ranges: Vec::new(),
            basic_auth: None,
            external_auth: None,
            force_ssl_redirect: false,
            redirect: None,
            app_root: None,
            upstream_vhost: None,
            rate_limit: None,
            cors: None,
            custom_errors: None,
            affinity: None,
            canary: None,
        }
    }
}

/// Which certificate a TLS server presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTls {
    /// The catch-all's certificate (`--default-ssl-certificate` or the self-signed one): the
    /// Ingress named no Secret, or its Secret is missing or invalid (reported).
    Default,
    /// A [`Certificate`] of the model, by id.
    Certificate(String),
}

/// A host's HTTPS setting and the object that asked for it (so a certificate nginx refuses is
/// blamed on that object and dropped with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsChoice {
    pub certificate: ServerTls,
    pub origin: ObjectRef,
}

/// A virtual server: one host (or the catch-all, `host == None`) and its locations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub host: Option<Host>,
    /// Sorted by (path, kind); unique per (path, kind).
    pub locations: Vec<Location>,
    /// HTTPS for this host (`spec.tls`); `None` for the catch-all and plain hosts.
    pub tls: Option<TlsChoice>,
    /// Where requests that match no location go (`None`: 404). The catch-all: the flag's
    /// default backend, else the oldest Ingress `spec.defaultBackend`. A host: the flag's, else
    /// the `spec.defaultBackend` of an Ingress that routes this host (never another
    /// namespace's).
    pub fallback: Option<DefaultBackend>,
}

impl Server {
    /// A server with nothing in it yet.
    pub fn new(host: Option<Host>) -> Self {
        Self {
            host,
            locations: Vec::new(),
            tls: None,
            fallback: None,
        }
    }
}

/// One backend address: an IP (ClusterIP or pod IP) or, for ExternalName Services, a DNS name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    Ip(IpAddr),
    Dns(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Address::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Address::Dns(name) => f.write_str(name),
        }
    }
}

/// A named group of backend endpoints. No endpoints means requests get 503.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `namespace_service_port`: only DNS-label characters, `_` and digits.
    pub name: String,
    /// Sorted and deduplicated.
    pub endpoints: Vec<(Address, u16)>,
}

/// Why an object (or one of its routes) did not go live as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    InvalidHost,
    InvalidPath,
    InvalidPort,
    InvalidName,
    InvalidAnnotation,
    InvalidSelector,
    MissingAnnotation,
    UnsupportedBackend,
    /// Another, older object already serves this host + path.
    Conflict,
    /// A TLS Secret is missing or its certificate/key is invalid (the default certificate
    /// is served instead).
    InvalidCertificate,
    /// The backend Service or its port does not exist (the route answers 503).
    BackendNotFound,
    /// nginx -t refused a config that contained this object; it was dropped.
    NginxRejected,
    /// A manifest file could not be parsed.
    Unparseable,
    /// An EndpointSlice (or one of its addresses) berth does not trust as an upstream.
    UntrustedEndpoint,
    /// An ingress-nginx annotation berth does not honour (or a snippet): the Ingress is not
    /// served.
    UnsupportedAnnotation,
    /// An ingress-nginx annotation berth does not honour, ignored as `--ignore-annotations`
    /// asks: the Ingress is served without it.
    IgnoredAnnotation,
    /// A Gateway API value berth does not support or refuses (the rule is not served).
    UnsupportedValue,
    /// A Gateway API route that attaches to none of the listeners it names.
    NotAttached,
}

impl Reason {
    /// Stable snake_case label (metrics, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidHost => "invalid_host",
            Reason::InvalidPath => "invalid_path",
            Reason::InvalidPort => "invalid_port",
            Reason::InvalidName => "invalid_name",
            Reason::InvalidAnnotation => "invalid_annotation",
            Reason::InvalidSelector => "invalid_selector",
            Reason::MissingAnnotation => "missing_annotation",
            Reason::UnsupportedBackend => "unsupported_backend",
            Reason::Conflict => "conflict",
            Reason::InvalidCertificate => "invalid_certificate",
            Reason::BackendNotFound => "backend_not_found",
            Reason::NginxRejected => "nginx_rejected",
            Reason::Unparseable => "unparseable",
            Reason::UntrustedEndpoint => "untrusted_endpoint",
            Reason::UnsupportedAnnotation => "unsupported_annotation",
            Reason::IgnoredAnnotation => "ignored_annotation",
            Reason::UnsupportedValue => "unsupported_value",
            Reason::NotAttached => "not_attached",
        }
    }
}

/// A named complaint about one object: which field, why, and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Report {
    pub object: ObjectRef,
    /// JSON-path-like field name, e.g. `spec.rules[0].host`.
    pub field: String,
    pub reason: Reason,
    /// Human explanation. Never contains the offending value verbatim beyond a short,
    /// escaped excerpt (hostile values stay out of logs too).
    pub detail: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} ({})",
            self.object,
            self.field,
            self.detail,
            self.reason.as_str()
        )
    }
}

/// Everything nginx should serve, plus what was left out and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// Servers sorted by host; the catch-all (`host: None`, host-less routes) sorts first and
    /// may be absent (render then writes an empty one).
    pub servers: Vec<Server>,
    /// Sorted by name, unique; only upstreams some location or fallback uses.
    pub upstreams: Vec<Upstream>,
    /// Sorted.
    pub reports: Vec<Report>,
    /// Certificates some server (or the catch-all) uses, sorted by id, unique.
    pub certificates: Vec<Certificate>,
    /// Id of the `--default-ssl-certificate` Secret's certificate, when given and valid.
    pub default_certificate: Option<String>,
    /// Hosts served by Gateway API routes (`gateway/`), sorted by host; none of them is in
    /// `servers` (one side serves a host: docs/ingress-semantics.md). `host: None` replaces
    /// the catch-all's locations.
    pub gateway: Vec<GwServer>,
}

impl Model {
    /// The htpasswd files the locations use, sorted by id, unique.
    pub fn htpasswd_files(&self) -> Vec<HtpasswdFile> {
        let mut files: Vec<HtpasswdFile> = self
            .servers
            .iter()
            .flat_map(|s| &s.locations)
            .filter_map(|l| l.options.basic_auth.as_ref().map(|a| a.file.clone()))
            .collect();
        files.sort_by(|a, b| a.id.cmp(&b.id));
        files.dedup_by(|a, b| a.id == b.id);
        files
    }
}

/// A fallback backend and the object (or flag) that set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultBackend {
    pub upstream: String,
    pub origin: ObjectRef,
}

impl Model {
    /// The catch-all server, if the model has one.
    pub fn catch_all(&self) -> Option<&Server> {
        self.servers.iter().find(|s| s.host.is_none())
    }
}

/// A model with one default server holding a location `/<name>` of `kind` per Ingress `ns/<name>`,
/// all proxying to an empty upstream `u`: the fixture of the sync and quarantine tests.
#[cfg(test)]
pub(crate) fn one_server_model<S: Into<String>>(
    kind: PathKind,
    names: impl IntoIterator<Item = S>,
) -> Model {
    let locations = names
        .into_iter()
        .map(|n| {
            let name: String = n.into();
            Location {
                path: format!("/{name}"),
                kind,
                upstream: "u".into(),
                origin: ObjectRef::new(Kind::Ingress, "ns", name),
                options: Default::default(),
            }
        })
        .collect();
    Model {
        servers: vec![Server {
            locations,
            ..Server::new(None)
        }],
        upstreams: vec![Upstream {
            name: "u".into(),
            endpoints: vec![],
        }],
        ..Model::default()
    }
}
