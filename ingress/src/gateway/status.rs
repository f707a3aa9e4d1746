//! The statuses of our GatewayClasses, Gateways and routes (pure; `super::statuses`).
//!
//! - GatewayClass: `Accepted`.
//! - Gateway: `Accepted`, `Programmed` (some listener usable), `addresses` (the published
//!   ones), per listener `Accepted`, `ResolvedRefs`, `Programmed`, `Conflicted` (see
//!   [`conflict`]), `supportedKinds` and `attachedRoutes` (routes with at least one accepted
//!   attachment to it).
//! - Route, per parentRef to one of our Gateways: `Accepted` (attachment, or a refused rule:
//!   `UnsupportedValue`; every host lost to an Ingress/Service: `HostnameConflict`, see
//!   `coexist.rs`) and `ResolvedRefs` (every backendRef resolves).
//!
//! What nginx took ([`Live`]): a route the snapshot's config would serve is `Accepted` only
//! while the live config serves it: `Pending` before that (no config applied yet, or not
//! reloaded yet), `NginxRejected` (berth's reason: the spec has none for a data plane that
//! refuses) when `nginx -t` refused it, or the certificate of the Gateway it is served
//! through, and isolation dropped it. A listener is `Programmed` only once a config was
//! applied (`Pending` before) and, for HTTPS, while its Gateway's certificate is not refused
//! (`Invalid`, nginx's message) nor missing from the live config (`Pending`); the Gateway is
//! `Programmed` when one of its listeners is and nginx refused none of its certificates.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

use super::attach::{ListenerInfo, Parents, key};
use super::refs::{Grants, backend};
use super::rules::{Ctx, RouteRules};
use super::{
    GatewayClassStatus, GatewayStatus, GatewayStatusAddress, GatewayStatuses, HTTPBackendRef, Key,
    ListenerStatus, Losses, ParentReference, RouteParentStatus, RouteStatus, condition,
};
use crate::model::{Host, Kind, ObjectRef};
use crate::serving::Serving;
use crate::snapshot::Snapshot;
use crate::translate::TranslateConfig;
use crate::translate::backend::Backends;

/// What the live config serves, and what the snapshot's config would (the routes and
/// Gateways of its Gateway API servers, and the hosts routes lost, after host conflicts).
pub struct Live<'a> {
    pub serving: &'a Serving,
    pub expected: &'a BTreeSet<ObjectRef>,
    pub lost: &'a Losses,
}

/// The reason given for an object nginx refused (not in the spec's lists).
pub const NGINX_REJECTED: &str = "NginxRejected";

impl Live<'_> {
    /// Why `route`, attached through Gateway `gw`, is not accepted although attached: its
    /// config is not live (yet), or nginx refused it (or the Gateway's certificate).
    fn unserved(&self, route: &ObjectRef, gw: &ObjectRef) -> Option<(&'static str, String)> {
        if !self.expected.contains(route) {
            return None; // nothing of it would be served: nothing to wait for
        }
        if !self.serving.applied {
            return Some(("Pending", "no nginx config applied yet".into()));
        }
        if self.serving.serves(route) {
            return None;
        }
        if let Some(m) = self.serving.refused.get(route) {
            return Some((NGINX_REJECTED, m.clone()));
        }
        if let Some(m) = self.serving.refused.get(gw) {
            return Some((NGINX_REJECTED, format!("through {gw}: {m}")));
        }
        Some(("Pending", "not in the live nginx config yet".into()))
    }

    /// The listener's `Programmed` when it is usable: (ok, reason, message).
    fn programmed(&self, https: bool, gw: &ObjectRef) -> (bool, &'static str, String) {
        if !self.serving.applied {
            return (false, "Pending", "no nginx config applied yet".into());
        }
        if !https {
            return (true, "Programmed", String::new());
        }
        if let Some(m) = self.serving.refused.get(gw) {
            return (false, "Invalid", m.clone());
        }
        if self.expected.contains(gw) && !self.serving.serves(gw) {
            let m = "its certificate is not in the live nginx config yet";
            return (false, "Pending", m.into());
        }
        (true, "Programmed", String::new())
    }
}

/// Listener `i`'s conflict with another accepted listener of its Gateway on the same port:
/// the other kind (HTTP vs HTTPS: `ProtocolConflict`), or the same kind and hostname
/// (`HostnameConflict`). Reported only: berth serves HTTP listeners on its HTTP port and
/// HTTPS ones on its TLS port whatever their `port`, so neither is ambiguous to nginx.
fn conflict(listeners: &[ListenerInfo], i: usize) -> Option<(&'static str, String)> {
    let l = &listeners[i];
    if l.accepted.is_err() {
        return None;
    }
    let others = listeners
        .iter()
        .enumerate()
        .filter(|(j, o)| *j != i && o.accepted.is_ok() && o.port == l.port);
    let mut hostname = None;
    for (_, o) in others {
        if o.https != l.https {
            let m = format!(
                "listener {} on port {} has another protocol",
                o.name, l.port
            );
            return Some(("ProtocolConflict", m));
        }
        if o.hostname == l.hostname && hostname.is_none() {
            let m = format!(
                "listener {} on port {} has the same hostname",
                o.name, l.port
            );
            hostname = Some(("HostnameConflict", m));
        }
    }
    hostname
}

/// What statuses need to know about one route.
pub struct RouteFacts<'a> {
    pub kind: &'static str,
    pub meta: &'a ObjectMeta,
    pub hostnames: &'a [String],
    pub parent_refs: &'a [ParentReference],
    pub backend_refs: Vec<&'a HTTPBackendRef>,
    /// Rules refused by translation (`UnsupportedValue`): their messages.
    pub problems: Vec<String>,
    /// How many rules the route has.
    pub rules: usize,
}

/// The route's hostnames as hosts, or why one is invalid.
pub fn route_hosts(hostnames: &[String]) -> Result<Vec<Host>, String> {
    hostnames
        .iter()
        .map(|h| crate::validate::host(h).map_err(|e| format!("hostnames: {e}")))
        .collect()
}

/// The facts of every route of the snapshot (rules checked as translation does).
pub fn facts<'a>(
    snapshot: &'a Snapshot,
    grants: &Grants<'_>,
    backends: &Backends<'_>,
) -> Vec<RouteFacts<'a>> {
    let route = |kind: Kind,
                 meta: &'a ObjectMeta,
                 hostnames: &'a [String],
                 parent_refs: &'a [ParentReference],
                 backend_refs: Vec<&'a HTTPBackendRef>,
                 check: &dyn Fn(&Ctx<'_, '_>) -> RouteRules| {
        let ns = meta.namespace.as_deref().unwrap_or("default");
        let origin = ObjectRef::new(kind, ns, meta.name.as_deref().unwrap_or(""));
        let cx = Ctx {
            kind: kind.as_str(),
            namespace: ns,
            origin: &origin,
            grants,
            backends,
        };
        let rr = check(&cx);
        RouteFacts {
            kind: kind.as_str(),
            meta,
            hostnames,
            parent_refs,
            backend_refs,
            problems: rr
                .problems
                .into_iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect(),
            rules: rr.rules,
        }
    };
    let http = snapshot.http_routes.iter().map(|r| {
        let refs = r.spec.rules.iter().flat_map(|x| &x.backend_refs).collect();
        route(
            Kind::HTTPRoute,
            &r.metadata,
            &r.spec.hostnames,
            &r.spec.parent_refs,
            refs,
            &|cx| super::rules::http(cx, &r.spec.rules),
        )
    });
    let grpc = snapshot.grpc_routes.iter().map(|r| {
        let refs = r.spec.rules.iter().flat_map(|x| &x.backend_refs).collect();
        route(
            Kind::GRPCRoute,
            &r.metadata,
            &r.spec.hostnames,
            &r.spec.parent_refs,
            refs,
            &|cx| super::rules::grpc(cx, &r.spec.rules),
        )
    });
    http.chain(grpc).collect()
}

impl Parents<'_> {
    /// Every status (see the module doc).
    pub fn statuses_of(
        &self,
        routes: &[RouteFacts<'_>],
        config: &TranslateConfig,
        backends: &Backends<'_>,
        addresses: &[GatewayStatusAddress],
        live: &Live<'_>,
        now: &Time,
    ) -> GatewayStatuses {
        let mut out = GatewayStatuses::default();
        for (name, generation) in &self.classes {
            let accepted = condition("Accepted", true, "Accepted", "", *generation, now);
            out.classes.insert(
                name.clone(),
                GatewayClassStatus {
                    conditions: vec![accepted],
                },
            );
        }
        let mut attached: BTreeMap<(Key, usize), i32> = BTreeMap::new();
        // A route nginx refused, per listener it attaches to (isolation may blame the routes
        // of an HTTPS server whose certificate nginx refuses rather than their Gateway).
        let mut refused_via: BTreeMap<(Key, usize), String> = BTreeMap::new();
        for r in routes {
            let Some(rk) = key(r.meta) else { continue };
            let mut parents = Vec::new();
            let resolved = r
                .backend_refs
                .iter()
                .find_map(|b| backend(r.kind, &rk.0, b, &self.grants, backends).err());
            let hosts = route_hosts(r.hostnames);
            let kind = if r.kind == "HTTPRoute" {
                Kind::HTTPRoute
            } else {
                Kind::GRPCRoute
            };
            let origin = ObjectRef::new(kind, rk.0.clone(), rk.1.clone());
            let lost = live.lost.get(&origin);
            for p in r.parent_refs {
                let Some(gw) = self.ours(&rk.0, p) else {
                    continue;
                };
                let g = r.meta.generation;
                let all_refused = r.rules > 0 && r.problems.len() == r.rules;
                let problems = r.problems.join("; ");
                let accepted = match &hosts {
                    Err(e) => condition("Accepted", false, "UnsupportedValue", e, g, now),
                    Ok(hosts) => match self.attach(r.kind, &rk.0, hosts, &gw, p) {
                        Ok(_) if all_refused => {
                            condition("Accepted", false, "UnsupportedValue", &problems, g, now)
                        }
                        Ok(_) if lost.is_some_and(|l| l.0) => {
                            let m = lost.map_or("", |l| l.1.as_str());
                            condition("Accepted", false, "HostnameConflict", m, g, now)
                        }
                        Ok(atts) => {
                            let gw_ref = ObjectRef::new(Kind::Gateway, gw.0.clone(), gw.1.clone());
                            let unserved = live.unserved(&origin, &gw_ref);
                            for a in atts {
                                *attached.entry((gw.clone(), a.listener)).or_default() += 1;
                                if let Some((NGINX_REJECTED, m)) = &unserved {
                                    let m = format!("{origin}: {m}");
                                    refused_via.entry((gw.clone(), a.listener)).or_insert(m);
                                }
                            }
                            match unserved {
                                Some((reason, m)) => {
                                    condition("Accepted", false, reason, m, g, now)
                                }
                                None => {
                                    let m = lost.map_or("", |l| l.1.as_str());
                                    condition("Accepted", true, "Accepted", m, g, now)
                                }
                            }
                        }
                        Err((reason, m)) => condition("Accepted", false, reason, m, g, now),
                    },
                };
                let refs = match &resolved {
                    None => condition("ResolvedRefs", true, "ResolvedRefs", "", g, now),
                    Some((reason, m)) => condition("ResolvedRefs", false, reason, m, g, now),
                };
                let mut conditions = vec![accepted, refs];
                if !r.problems.is_empty() && !all_refused {
                    // Some rules dropped, the others served (Gateway API v1.2+).
                    let c = condition(
                        "PartiallyInvalid",
                        true,
                        "UnsupportedValue",
                        &problems,
                        g,
                        now,
                    );
                    conditions.push(c);
                }
                parents.push(RouteParentStatus {
                    parent_ref: p.clone(),
                    controller_name: config.gateway_controller_name.clone(),
                    conditions,
                });
            }
            if parents.is_empty() {
                continue;
            }
            let map = if r.kind == "HTTPRoute" {
                &mut out.http_routes
            } else {
                &mut out.grpc_routes
            };
            map.insert(rk, RouteStatus { parents });
        }
        for (k, g) in &self.gateways {
            let gen_ = g.generation;
            let gw_ref = ObjectRef::new(Kind::Gateway, k.0.clone(), k.1.clone());
            let listeners: Vec<ListenerStatus> = g
                .listeners
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let mut conditions: Vec<Condition> = Vec::new();
                    conditions.push(match &l.accepted {
                        Ok(()) => condition("Accepted", true, "Accepted", "", gen_, now),
                        Err((r, m)) => condition("Accepted", false, r, m.clone(), gen_, now),
                    });
                    conditions.push(match &l.resolved {
                        Ok(()) => condition("ResolvedRefs", true, "ResolvedRefs", "", gen_, now),
                        Err((r, m)) => condition("ResolvedRefs", false, r, m.clone(), gen_, now),
                    });
                    conditions.push(if l.usable() {
                        let (ok, reason, m) = live.programmed(l.https, &gw_ref);
                        // Its certificate is not live because nginx refused its routes with it.
                        let (reason, m) = match refused_via.get(&(k.clone(), i)) {
                            Some(r) if l.https && reason == "Pending" && live.serving.applied => {
                                ("Invalid", r.clone())
                            }
                            _ => (reason, m),
                        };
                        condition("Programmed", ok, reason, m, gen_, now)
                    } else {
                        condition("Programmed", false, "Invalid", "", gen_, now)
                    });
                    conditions.push(match conflict(&g.listeners, i) {
                        Some((reason, m)) => condition("Conflicted", true, reason, m, gen_, now),
                        None => condition("Conflicted", false, "NoConflicts", "", gen_, now),
                    });
                    ListenerStatus {
                        name: l.name.clone(),
                        supported_kinds: l.kinds.clone(),
                        attached_routes: attached.get(&(k.clone(), i)).copied().unwrap_or(0),
                        conditions,
                    }
                })
                .collect();
            let programmed = listeners.iter().any(|l| {
                let c = l.conditions.iter().find(|c| c.type_ == "Programmed");
                c.is_some_and(|c| c.status == "True")
            });
            let usable = g.listeners.iter().any(|l| l.usable());
            // nginx refused its certificate: the Gateway, or the routes served with it.
            let https_refused = (g.listeners.iter().enumerate())
                .filter(|(_, l)| l.https)
                .find_map(|(i, _)| refused_via.get(&(k.clone(), i)));
            let refused = live.serving.refused.get(&gw_ref).or(https_refused);
            let (ok, reason, m) = match refused {
                _ if !usable => (false, "Invalid", "no usable listener"),
                _ if !live.serving.applied => (false, "Pending", "no nginx config applied yet"),
                Some(m) => (false, "Invalid", m.as_str()),
                None if programmed => (true, "Programmed", ""),
                None => (false, "Pending", "no listener in the live nginx config yet"),
            };
            let conditions = vec![
                condition("Accepted", true, "Accepted", "", gen_, now),
                condition("Programmed", ok, reason, m, gen_, now),
            ];
            out.gateways.insert(
                k.clone(),
                GatewayStatus {
                    addresses: addresses.to_vec(),
                    conditions,
                    listeners,
                },
            );
        }
        out
    }
}
