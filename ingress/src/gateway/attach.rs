//! Which GatewayClasses and Gateways are ours, what each listener offers, and which
//! listeners (and hostnames) each route's parentRefs attach to (pure).
//!
//! - A GatewayClass is ours when `spec.controllerName` is `--gateway-controller-name`; a
//!   Gateway is ours when its class is.
//! - Listeners: protocol `HTTP` or `HTTPS` (TLS `Terminate` with one `kubernetes.io/tls`
//!   Secret; another namespace's Secret only with a ReferenceGrant); the port is informative
//!   (nginx serves every HTTP listener on its HTTP port, every HTTPS listener on its TLS port).
//! - A parentRef attaches to the listeners it names (`sectionName`, `port`) that allow the
//!   route (namespace `Same` / `All` / `Selector`, kinds) and whose hostname intersects the
//!   route's: none named -> `NoMatchingParent`, none allowing -> `NotAllowedByListeners`, no
//!   common hostname -> `NoMatchingListenerHostname`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::refs::Grants;
use super::{GROUP, Key, ParentReference, RouteGroupKind};
use crate::model::{Certificate, Host};
use crate::snapshot::Snapshot;
use crate::translate::TranslateConfig;
use crate::translate::secrets::Secrets;

/// A refusal: the spec's reason and a message.
pub type Refusal = (&'static str, String);

/// Which namespaces a listener admits routes from.
#[derive(Clone, Debug)]
enum From {
    Same,
    All,
    Selector(LabelSelector),
}

/// One listener of one of our Gateways.
#[derive(Clone, Debug)]
pub struct ListenerInfo {
    pub name: String,
    pub port: i32,
    pub https: bool,
    /// `None`: any host.
    pub hostname: Option<Host>,
    /// HTTPS: the listener's certificate, when valid.
    pub certificate: Option<Certificate>,
    /// The route kinds it admits (those berth supports among the asked ones).
    pub kinds: Vec<RouteGroupKind>,
    from: From,
    /// `Err`: not accepted (unsupported protocol, bad hostname, TLS mode).
    pub accepted: Result<(), Refusal>,
    /// `Err`: a reference does not resolve (certificate, route kinds).
    pub resolved: Result<(), Refusal>,
}

impl ListenerInfo {
    /// Routes may attach (accepted and, for HTTPS, with a certificate).
    pub fn usable(&self) -> bool {
        self.accepted.is_ok() && (!self.https || self.certificate.is_some())
    }
}

/// One of our Gateways.
#[derive(Clone, Debug)]
pub struct GatewayInfo {
    pub generation: Option<i64>,
    pub listeners: Vec<ListenerInfo>,
}

/// A route's attachment to one listener, with the hostnames it serves there (`None`: any).
#[derive(Clone, Debug, PartialEq)]
pub struct Attachment {
    pub gateway: Key,
    pub listener: usize,
    pub hosts: Vec<Option<Host>>,
}

/// Our classes and Gateways, and the namespaces' labels (for `Selector`).
pub struct Parents<'a> {
    pub classes: BTreeMap<String, Option<i64>>,
    pub gateways: BTreeMap<Key, GatewayInfo>,
    namespaces: BTreeMap<&'a str, &'a BTreeMap<String, String>>,
    pub grants: Grants<'a>,
}

impl<'a> Parents<'a> {
    pub fn new(snapshot: &'a Snapshot, config: &TranslateConfig) -> Self {
        let classes: BTreeMap<String, Option<i64>> = snapshot
            .gateway_classes
            .iter()
            .filter(|c| c.spec.controller_name == config.gateway_controller_name)
            .filter_map(|c| Some((c.metadata.name.clone()?, c.metadata.generation)))
            .collect();
        let grants = Grants::new(snapshot);
        let secrets = Secrets::new(snapshot.secrets.iter().map(|s| &**s));
        let mut gateways = BTreeMap::new();
        for g in &snapshot.gateways {
            if !classes.contains_key(&g.spec.gateway_class_name) {
                continue;
            }
            let Some(key) = key(&g.metadata) else {
                continue;
            };
            let listeners = g
                .spec
                .listeners
                .iter()
                .map(|l| listener(&key.0, l, &secrets, &grants))
                .collect();
            gateways.insert(
                key,
                GatewayInfo {
                    generation: g.metadata.generation,
                    listeners,
                },
            );
        }
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        let empty = &EMPTY;
        let namespaces = snapshot
            .namespaces
            .iter()
            .filter_map(|n| {
                let labels = n.metadata.labels.as_ref().unwrap_or(empty);
                Some((n.metadata.name.as_deref()?, labels))
            })
            .collect();
        Self {
            classes,
            gateways,
            namespaces,
            grants,
        }
    }

    /// Is `parent` (of a route in `route_ns`) a Gateway of ours? Returns its key.
    pub fn ours(&self, route_ns: &str, parent: &ParentReference) -> Option<Key> {
        let group = parent.group.as_deref().unwrap_or(GROUP);
        let kind = parent.kind.as_deref().unwrap_or("Gateway");
        if group != GROUP || kind != "Gateway" {
            return None;
        }
        let ns = parent.namespace.as_deref().unwrap_or(route_ns);
        let key = (ns.to_owned(), parent.name.clone());
        self.gateways.contains_key(&key).then_some(key)
    }

    /// The listeners `parent` attaches a route (`kind`, namespace `route_ns`, `hostnames`)
    /// to, or why none.
    pub fn attach(
        &self,
        kind: &str,
        route_ns: &str,
        hostnames: &[Host],
        gateway: &Key,
        parent: &ParentReference,
    ) -> Result<Vec<Attachment>, Refusal> {
        let Some(g) = self.gateways.get(gateway) else {
            return Err(("NoMatchingParent", "no such Gateway of ours".into()));
        };
        let named: Vec<(usize, &ListenerInfo)> = g
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
            .filter(|(_, l)| parent.port.is_none_or(|p| p == l.port))
            .filter(|(_, l)| l.usable())
            .collect();
        if named.is_empty() {
            return Err((
                "NoMatchingParent",
                "no valid listener matches the parentRef's sectionName/port".into(),
            ));
        }
        let allowed: Vec<(usize, &ListenerInfo)> = named
            .into_iter()
            .filter(|(_, l)| l.kinds.iter().any(|k| k.kind == kind))
            .filter(|(_, l)| self.admits(&l.from, &gateway.0, route_ns))
            .collect();
        if allowed.is_empty() {
            return Err((
                "NotAllowedByListeners",
                "the listeners' allowedRoutes do not admit this route".into(),
            ));
        }
        let out: Vec<Attachment> = allowed
            .into_iter()
            .filter_map(|(i, l)| {
                let hosts = intersect(l.hostname.as_ref(), hostnames);
                (!hosts.is_empty()).then(|| Attachment {
                    gateway: gateway.clone(),
                    listener: i,
                    hosts,
                })
            })
            .collect();
        if out.is_empty() {
            return Err((
                "NoMatchingListenerHostname",
                "no hostname of the route matches a listener's hostname".into(),
            ));
        }
        Ok(out)
    }

    fn admits(&self, from: &From, gateway_ns: &str, route_ns: &str) -> bool {
        match from {
            From::Same => gateway_ns == route_ns,
            From::All => true,
            From::Selector(sel) => self
                .namespaces
                .get(route_ns)
                .is_some_and(|labels| selector_matches(sel, labels)),
        }
    }
}

/// `(namespace, name)`; a missing namespace is `default` (as the sources do).
pub fn key(meta: &ObjectMeta) -> Option<Key> {
    let ns = meta.namespace.as_deref().unwrap_or("default");
    Some((ns.to_owned(), meta.name.clone()?))
}

fn listener(
    gw_ns: &str,
    l: &super::Listener,
    secrets: &Secrets<'_>,
    grants: &Grants<'_>,
) -> ListenerInfo {
    let https = l.protocol == "HTTPS";
    let mut accepted = match l.protocol.as_str() {
        "HTTP" | "HTTPS" => Ok(()),
        _ => Err((
            "UnsupportedProtocol",
            "berth serves HTTP and HTTPS listeners only".to_owned(),
        )),
    };
    let hostname = match l.hostname.as_deref() {
        None | Some("") => None,
        Some(h) => match crate::validate::host(h) {
            Ok(h) => Some(h),
            Err(e) => {
                accepted = Err(("UnsupportedValue", format!("hostname: {e}")));
                None
            }
        },
    };
    let mut resolved = Ok(());
    let mut certificate = None;
    if https {
        let tls = l.tls.clone().unwrap_or_default();
        if tls.mode.as_deref().is_some_and(|m| m != "Terminate") {
            accepted = Err((
                "UnsupportedValue",
                "only TLS mode Terminate is supported".to_owned(),
            ));
        }
        let refs = tls.certificate_refs.unwrap_or_default();
        match refs.first() {
            None => resolved = Err(("InvalidCertificateRef", "no certificateRefs".to_owned())),
            Some(r) => {
                let ns = r.namespace.as_deref().unwrap_or(gw_ns);
                let group = r.group.as_deref().unwrap_or("");
                let kind = r.kind.as_deref().unwrap_or("Secret");
                if !group.is_empty() || kind != "Secret" {
                    resolved = Err((
                        "InvalidCertificateRef",
                        "certificateRefs must name a core Secret".to_owned(),
                    ));
                } else if ns != gw_ns
                    && !grants.permits(("Gateway", gw_ns), ("", "Secret", ns, &r.name))
                {
                    resolved = Err((
                        "RefNotPermitted",
                        format!(
                            "no ReferenceGrant in {ns} lets this Gateway use Secret {ns}/{}",
                            r.name
                        ),
                    ));
                } else {
                    match secrets.certificate(ns, &r.name) {
                        Ok(c) => certificate = Some(c),
                        Err(e) => resolved = Err(("InvalidCertificateRef", e)),
                    }
                }
            }
        }
    }
    let mut kinds = Vec::new();
    let allowed = l.allowed_routes.clone().unwrap_or_default();
    match allowed.kinds {
        None => {
            for k in ["HTTPRoute", "GRPCRoute"] {
                kinds.push(RouteGroupKind {
                    group: Some(GROUP.into()),
                    kind: k.into(),
                });
            }
        }
        Some(asked) => {
            for k in asked {
                let group_ok = k.group.as_deref().is_none_or(|g| g == GROUP);
                if group_ok && matches!(k.kind.as_str(), "HTTPRoute" | "GRPCRoute") {
                    kinds.push(RouteGroupKind {
                        group: Some(GROUP.into()),
                        kind: k.kind,
                    });
                } else if resolved.is_ok() {
                    resolved = Err((
                        "InvalidRouteKinds",
                        "berth supports HTTPRoute and GRPCRoute".to_owned(),
                    ));
                }
            }
        }
    }
    let ns = allowed.namespaces.unwrap_or_default();
    let from = match (ns.from.as_deref(), ns.selector) {
        (Some("All"), _) => From::All,
        (Some("Selector"), Some(sel)) => From::Selector(sel),
        (Some("Selector"), None) => From::Selector(LabelSelector {
            match_labels: Some(BTreeMap::from([("\u{0}".into(), String::new())])),
            ..LabelSelector::default()
        }),
        _ => From::Same,
    };
    ListenerInfo {
        name: l.name.clone(),
        port: l.port,
        https,
        hostname,
        certificate,
        kinds,
        from,
        accepted,
        resolved,
    }
}

/// Does the label selector (matchLabels and matchExpressions) select `labels`?
fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// Does the wildcard `*.suffix` cover `name` (one or more labels before `.suffix`)?
fn covers(suffix: &str, name: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// The hostnames a route serves on a listener: the route's hostnames intersected with the
/// listener's (the more specific of each matching pair), `[None]` when neither names one.
pub fn intersect(listener: Option<&Host>, route: &[Host]) -> Vec<Option<Host>> {
    let Some(l) = listener else {
        if route.is_empty() {
            return vec![None];
        }
        return route.iter().cloned().map(Some).collect();
    };
    if route.is_empty() {
        return vec![Some(l.clone())];
    }
    let mut out: Vec<Option<Host>> = route
        .iter()
        .filter_map(|r| match (l, r) {
            (Host::Exact(a), Host::Exact(b)) => (a == b).then(|| r.clone()),
            (Host::Exact(a), Host::Wildcard(s)) => covers(s, a).then(|| l.clone()),
            (Host::Wildcard(s), Host::Exact(b)) => covers(s, b).then(|| r.clone()),
            (Host::Wildcard(a), Host::Wildcard(b)) => {
                if a == b || covers(a, b) {
                    Some(r.clone())
                } else if covers(b, a) {
                    Some(l.clone())
                } else {
                    None
                }
            }
        })
        .map(Some)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Host {
        crate::validate::host(s).unwrap()
    }

    #[test]
    fn hostname_intersection_follows_the_spec_table() {
        let cases: &[(Option<&str>, &[&str], &[&str])] = &[
            (None, &[], &["*"]),
            (None, &["a.test"], &["a.test"]),
            (Some("a.test"), &[], &["a.test"]),
            (Some("a.test"), &["a.test", "b.test"], &["a.test"]),
            (Some("a.test"), &["*.test"], &["a.test"]),
            (
                Some("*.test"),
                &["a.test", "x.y.test", "test"],
                &["a.test", "x.y.test"],
            ),
            (Some("*.test"), &["*.a.test"], &["*.a.test"]),
            (Some("*.a.test"), &["*.test"], &["*.a.test"]),
            (Some("*.test"), &["*.other"], &[]),
            (Some("a.test"), &["b.test"], &[]),
        ];
        for (l, r, want) in cases {
            let l = l.map(h);
            let r: Vec<Host> = r.iter().map(|s| h(s)).collect();
            let got: Vec<String> = intersect(l.as_ref(), &r)
                .into_iter()
                .map(|x| x.map_or("*".to_owned(), |h| h.to_string()))
                .collect();
            assert_eq!(got, *want, "listener {l:?} route {r:?}");
        }
    }
}
