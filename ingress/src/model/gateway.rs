//! The Gateway API part of the model: hosts served by HTTPRoutes/GRPCRoutes, their path
//! locations and, per location, the (rule, match) entries in the spec's precedence order.
//!
//! Built by `gateway/build.rs`, rendered by `render_gateway.rs`. Every string passed
//! `gateway/rules.rs`' grammars (built on `validate.rs`), so render writes them verbatim.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Host, ObjectRef, PathKind, TlsChoice};

/// One host (or, `host: None`, any host: the catch-all) served by Gateway API routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GwServer {
    pub host: Option<Host>,
    /// Which listeners the server stands for: HTTPS ones (it listens on the HTTPS port only,
    /// presenting `tls`) or HTTP ones (the HTTP port only). A host attached through both kinds
    /// has one server of each, each with only the routes attached through that kind.
    pub https: bool,
    /// The certificate of the HTTPS listener the host is served through (`https` only).
    pub tls: Option<TlsChoice>,
    /// Sorted by (path, kind), unique. `Exact` renders `location = path`; `Prefix` renders
    /// `location ^~ path/` (`location /` for `/`); a Prefix route also gets an `Exact`
    /// location for its own path.
    pub locations: Vec<GwLocation>,
}

/// One nginx location and every (rule, match) that can answer a request reaching it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GwLocation {
    pub path: String,
    pub kind: PathKind,
    /// Precedence order; nothing after the first entry without conditions.
    pub entries: Vec<GwEntry>,
}

/// One match of one rule: the conditions besides the path, and the rule's action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GwEntry {
    /// Upper-case HTTP method.
    pub method: Option<String>,
    /// (lower-case header name, exact value).
    pub headers: Vec<(String, String)>,
    /// (query parameter name, exact value).
    pub query: Vec<(String, String)>,
    pub rule: Arc<GwRule>,
}

impl GwEntry {
    pub fn unconditional(&self) -> bool {
        self.method.is_none() && self.headers.is_empty() && self.query.is_empty()
    }
}

/// What a (rule, match) does; `id` names its internal location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GwRule {
    /// 12 hex digits, unique per (route, rule, match).
    pub id: String,
    pub origin: ObjectRef,
    pub action: GwAction,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GwAction {
    Redirect(GwRedirect),
    Proxy(GwProxy),
}

/// `RequestRedirect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GwRedirect {
    /// 301 or 302.
    pub code: u16,
    pub scheme: Option<&'static str>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathModifier>,
    /// The ports of the listeners (HTTP, HTTPS) the route is served through on this host:
    /// without `scheme`, the redirect keeps the request's listener port unless `port` is set.
    pub listener_ports: (Option<u16>, Option<u16>),
}

/// `ReplaceFullPath` or `ReplacePrefixMatch` (of a match whose prefix is `skip` bytes long).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathModifier {
    Full(String),
    Prefix { skip: usize, replace: String },
}

/// Header changes (names: letters, digits, `-`; values: the safe header charset).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMods {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

impl HeaderMods {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A proxied rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GwProxy {
    /// (upstream name, weight > 0); `None` upstream: an unresolved backendRef (its share of
    /// requests gets 500). Empty: every request gets 500.
    pub backends: Vec<(Option<String>, u32)>,
    /// `grpc_pass` (GRPCRoute) instead of `proxy_pass`.
    pub grpc: bool,
    pub request_headers: HeaderMods,
    pub response_headers: HeaderMods,
    /// `URLRewrite` path.
    pub path: Option<PathModifier>,
    /// `URLRewrite` hostname: the `Host` the backend gets.
    pub hostname: Option<String>,
}

/// The Gateway API servers without anything `excluded` objects contributed.
pub(super) fn without(servers: &[GwServer], excluded: &BTreeSet<ObjectRef>) -> Vec<GwServer> {
    servers
        .iter()
        .filter_map(|s| {
            let locations: Vec<GwLocation> = s
                .locations
                .iter()
                .filter_map(|l| {
                    let entries: Vec<GwEntry> = l
                        .entries
                        .iter()
                        .filter(|e| !excluded.contains(&e.rule.origin))
                        .cloned()
                        .collect();
                    (!entries.is_empty()).then(|| GwLocation {
                        entries,
                        ..l.clone()
                    })
                })
                .collect();
            let tls = s.tls.clone().filter(|t| !excluded.contains(&t.origin));
            // An HTTPS server whose certificate went is dropped, never served in the clear.
            let served = !locations.is_empty() && (!s.https || tls.is_some());
            served.then(|| GwServer {
                host: s.host.clone(),
                https: s.https,
                tls,
                locations,
            })
        })
        .collect()
}

impl GwServer {
    /// Names of the upstreams its rules proxy to.
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.locations
            .iter()
            .flat_map(|l| &l.entries)
            .filter_map(|e| match &e.rule.action {
                GwAction::Proxy(p) => Some(&p.backends),
                GwAction::Redirect(_) => None,
            })
            .flatten()
            .filter_map(|(u, _)| u.as_deref())
    }
}
