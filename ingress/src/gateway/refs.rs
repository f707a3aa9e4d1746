//! References across objects: ReferenceGrants and a route's backendRefs (pure).
//!
//! A reference into another namespace (a route's backendRef to a Service, a listener's
//! certificateRef to a Secret) is allowed only when a ReferenceGrant in the *target*
//! namespace lists the referring kind and namespace in `from` and the target kind (and
//! name, if given) in `to`.

use super::{GROUP, HTTPBackendRef};
use crate::model::Upstream;
use crate::snapshot::Snapshot;
use crate::translate::backend::Backends;
use crate::validate::PortRef;

/// Every ReferenceGrant of the snapshot.
pub struct Grants<'a>(Vec<&'a super::ReferenceGrant>);

impl<'a> Grants<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Self {
        Self(snapshot.reference_grants.iter().map(|g| &**g).collect())
    }

    /// May an object of `from = (kind, namespace)` (group gateway.networking.k8s.io) refer
    /// to `to = (group, kind, namespace, name)`?
    pub fn permits(&self, from: (&str, &str), to: (&str, &str, &str, &str)) -> bool {
        let (from_kind, from_ns) = from;
        let (to_group, to_kind, to_ns, to_name) = to;
        self.0.iter().any(|g| {
            g.metadata.namespace.as_deref().unwrap_or("default") == to_ns
                && g.spec
                    .from
                    .iter()
                    .any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns)
                && g.spec.to.iter().any(|t| {
                    t.group == to_group
                        && t.kind == to_kind
                        && t.name.as_deref().is_none_or(|n| n == to_name)
                })
        })
    }
}

/// Why a backendRef does not resolve: the spec's reason and a message.
pub type Unresolved = (&'static str, String);

/// Resolve a backendRef of a route (`route_kind` in `route_ns`) to an upstream (possibly
/// without endpoints: answers 503). Names are checked (DNS labels) before they form the
/// upstream name.
pub fn backend(
    route_kind: &str,
    route_ns: &str,
    r: &HTTPBackendRef,
    grants: &Grants<'_>,
    backends: &Backends<'_>,
) -> Result<Upstream, Unresolved> {
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err((
            "InvalidKind",
            "backendRefs must name a core Service".to_owned(),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(route_ns);
    if let Err(e) = crate::validate::dns_label(ns).and(crate::validate::dns_label(&r.name)) {
        return Err(("BackendNotFound", format!("invalid backend name: {e}")));
    }
    if ns != route_ns && !grants.permits((route_kind, route_ns), ("", "Service", ns, &r.name)) {
        return Err((
            "RefNotPermitted",
            format!(
                "no ReferenceGrant in namespace {ns} lets {route_kind}s of {route_ns} use Service {}",
                r.name
            ),
        ));
    }
    let Some(port) = r.port else {
        return Err(("UnsupportedValue", "backendRef needs a port".to_owned()));
    };
    let port = crate::validate::port(i64::from(port))
        .map_err(|e| ("UnsupportedValue", format!("port: {e}")))?;
    backends
        .resolve(ns, &r.name, &PortRef::Number(port))
        .map_err(|u| ("BackendNotFound", u.detail))
}
