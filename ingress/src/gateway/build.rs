//! Routes attached to our Gateways -> [`GwServer`]s (pure), in the spec's precedence order.
//!
//! Per host (the route's hostnames intersected with each listener's) and listener kind (HTTP
//! or HTTPS: a server each, serving only the routes attached through that kind), every (rule, match)
//! lands on nginx locations: an Exact path `/p` on `location = /p`; a PathPrefix `/p` on
//! `location = /p` and `location ^~ /p/` (`location /` for `/`) *and* on every longer
//! location beneath it, so a request whose conditions fail at `/p/x` still reaches the
//! `/p` rules. Within a location the entries are ordered as HTTPRoute precedence says,
//! across all routes of the host: Exact path before prefix, longer prefix first, a method
//! match first, more header matches first, more query matches first, then the older route
//! (creationTimestamp), then namespace/name, then rule and match order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::ParentReference;
use super::attach::Parents;
use super::refs::Grants;
use super::rules::{self, Ctx, Located, RouteRules};
use super::status::route_hosts;
use crate::model::{
    Certificate, GwEntry, GwLocation, GwServer, Host, Kind, ObjectRef, PathKind, Reason, Report,
    ServerTls, TlsChoice, Upstream,
};
use crate::snapshot::Snapshot;
use crate::translate::backend::Backends;
use crate::translate::{Age, TranslateConfig, report};

/// What Gateway API translation produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Sorted by host.
    pub servers: Vec<GwServer>,
    pub certificates: Vec<Certificate>,
    pub upstreams: BTreeMap<String, Upstream>,
    pub reports: Vec<Report>,
    /// The oldest route serving each host (host conflicts with Ingress use it): an index
    /// into `routes`.
    pub claims: BTreeMap<Option<Host>, usize>,
    /// Age and reference of every route that serves something.
    pub routes: Vec<(Age, ObjectRef)>,
}

type Rank = (u8, Reverse<usize>, u8, Reverse<usize>, Reverse<usize>);

/// One (rule, match) on one host. `route` indexes the routes' ages (no `Age` clone per
/// entry: 10 000 routes must stay cheap).
struct Ranked {
    rank: Rank,
    route: usize,
    order: (usize, usize),
    located: Located,
}

#[derive(Default)]
struct HostAcc {
    tls: Option<TlsChoice>,
    entries: Vec<Ranked>,
    /// The last route added (a route attached through two listeners adds its entries once);
    /// an index, not a set: a B-tree node per host cost ~700 bytes at 10 000 hosts.
    last_route: Option<usize>,
}

/// One route of either kind, as build needs it.
struct Route<'a> {
    kind: Kind,
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    hostnames: &'a [String],
    parent_refs: &'a [ParentReference],
    rules: Box<dyn Fn(&Ctx<'_, '_>) -> RouteRules + 'a>,
}

/// Translate every route attached to one of our Gateways.
pub fn translate(snapshot: &Snapshot, config: &TranslateConfig, backends: &Backends<'_>) -> Output {
    let parents = Parents::new(snapshot, config);
    let grants = Grants::new(snapshot);
    let mut out = Output::default();
    let mut hosts: BTreeMap<(Option<Host>, bool), HostAcc> = BTreeMap::new();
    let http = snapshot.http_routes.iter().map(|r| Route {
        kind: Kind::HTTPRoute,
        meta: &r.metadata,
        hostnames: &r.spec.hostnames,
        parent_refs: &r.spec.parent_refs,
        rules: Box::new(move |cx: &Ctx<'_, '_>| rules::http(cx, &r.spec.rules)),
    });
    let grpc = snapshot.grpc_routes.iter().map(|r| Route {
        kind: Kind::GRPCRoute,
        meta: &r.metadata,
        hostnames: &r.spec.hostnames,
        parent_refs: &r.spec.parent_refs,
        rules: Box::new(move |cx: &Ctx<'_, '_>| rules::grpc(cx, &r.spec.rules)),
    });
    let mut certs: BTreeMap<String, Certificate> = BTreeMap::new();
    for r in http.chain(grpc) {
        let ns = r.meta.namespace.as_deref().unwrap_or("default");
        let ours: Vec<_> = r
            .parent_refs
            .iter()
            .filter_map(|p| Some((parents.ours(ns, p)?, p)))
            .collect();
        if ours.is_empty() {
            continue;
        }
        let origin = match crate::translate::origin(r.kind, r.meta, false) {
            Ok(o) => o,
            Err(rep) => {
                out.reports.push(rep);
                continue;
            }
        };
        let route_hosts = match route_hosts(r.hostnames) {
            Ok(h) => h,
            Err(e) => {
                out.reports.push(report(
                    &origin,
                    "spec.hostnames",
                    Reason::UnsupportedValue,
                    e,
                ));
                continue;
            }
        };
        let kind_str = r.kind.as_str();
        let cx = Ctx {
            kind: kind_str,
            namespace: ns,
            origin: &origin,
            grants: &grants,
            backends,
        };
        let rr = (r.rules)(&cx);
        for (field, problem) in &rr.problems {
            let detail = format!("rule not served: {problem}");
            out.reports.push(report(
                &origin,
                field.clone(),
                Reason::UnsupportedValue,
                detail,
            ));
        }
        for (field, problem) in &rr.unresolved {
            let detail = format!("backend not resolved (its share answers 500): {problem}");
            out.reports.push(report(
                &origin,
                field.clone(),
                Reason::BackendNotFound,
                detail,
            ));
        }
        for (name, u) in rr.upstreams {
            out.upstreams.entry(name).or_insert(u);
        }
        if rr.located.is_empty() {
            continue; // nothing to serve: it claims no host either
        }
        let age = Age::of(r.meta, &origin);
        let route = out.routes.len();
        let mut targets: Vec<(Option<Host>, bool)> = Vec::new();
        let mut ports: BTreeMap<Option<Host>, (Option<u16>, Option<u16>)> = BTreeMap::new();
        for (gw, p) in ours {
            let atts = match parents.attach(kind_str, ns, &route_hosts, &gw, p) {
                Ok(a) => a,
                Err((reason, m)) => {
                    let detail =
                        format!("not attached to Gateway {}/{}: {reason}: {m}", gw.0, gw.1);
                    out.reports.push(report(
                        &origin,
                        "spec.parentRefs",
                        Reason::NotAttached,
                        detail,
                    ));
                    continue;
                }
            };
            for a in atts {
                let l = &parents.gateways[&gw].listeners[a.listener];
                for host in a.hosts {
                    let p = ports.entry(host.clone()).or_default();
                    let port = u16::try_from(l.port).ok();
                    if l.https {
                        p.1 = p.1.or(port);
                    } else {
                        p.0 = p.0.or(port);
                    }
                    // An HTTPS listener without a usable certificate serves nothing (its
                    // status says why); its routes are never served in the clear instead.
                    if l.https && l.certificate.is_none() {
                        continue;
                    }
                    let key = (host.clone(), l.https);
                    let acc = hosts.entry(key.clone()).or_default();
                    if let (Some(c), None) = (&l.certificate, &acc.tls) {
                        certs.entry(c.id.clone()).or_insert_with(|| c.clone());
                        acc.tls = Some(TlsChoice {
                            certificate: ServerTls::Certificate(c.id.clone()),
                            origin: ObjectRef::new(Kind::Gateway, gw.0.clone(), gw.1.clone()),
                        });
                    }
                    if acc.last_route == Some(route) {
                        continue;
                    }
                    acc.last_route = Some(route);
                    match out.claims.get_mut(&host) {
                        Some(claim) if age < out.routes[*claim].0 => *claim = route,
                        Some(_) => {}
                        None => _ = out.claims.insert(host.clone(), route),
                    }
                    targets.push(key);
                }
            }
        }
        // Every host gets the route's entries; the last one takes them without a copy.
        let mut located = Some(rr.located);
        let n = targets.len();
        for (i, key) in targets.into_iter().enumerate() {
            let Some(acc) = hosts.get_mut(&key) else {
                continue;
            };
            let mine = if i + 1 == n {
                located.take().unwrap_or_default()
            } else {
                located.clone().unwrap_or_default()
            };
            let listener_ports = ports.get(&key.0).copied().unwrap_or_default();
            let mine = mine.into_iter().map(|mut l| {
                if let crate::model::GwAction::Redirect(r) = &l.entry.rule.action
                    && r.listener_ports != listener_ports
                {
                    let rule = std::sync::Arc::make_mut(&mut l.entry.rule);
                    if let crate::model::GwAction::Redirect(r) = &mut rule.action {
                        r.listener_ports = listener_ports;
                    }
                }
                l
            });
            acc.entries.extend(mine.map(|l| Ranked {
                rank: rank(&l),
                route,
                order: l.order,
                located: l,
            }));
        }
        out.routes.push((age, origin));
    }
    out.certificates = certs.into_values().collect();
    out.servers = hosts
        .into_iter()
        .filter(|(_, acc)| !acc.entries.is_empty())
        .map(|((host, https), acc)| GwServer {
            host,
            https,
            tls: acc.tls,
            locations: locations(acc.entries, &out.routes),
        })
        .collect();
    out
}

fn rank(l: &Located) -> Rank {
    let e = &l.entry;
    (
        u8::from(l.kind == PathKind::Prefix),
        Reverse(l.path.len()),
        u8::from(e.method.is_none()),
        Reverse(e.headers.len()),
        Reverse(e.query.len()),
    )
}

/// The parent of prefix `p` (element-wise), `None` for `/`.
fn parent(p: &str) -> Option<&str> {
    if p == "/" {
        return None;
    }
    Some(match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    })
}

/// The prefix entries covering `path`: its own prefix and every ancestor's.
fn covering<'a>(prefix: &BTreeMap<&str, Vec<&'a Ranked>>, path: &str, out: &mut Vec<&'a Ranked>) {
    let mut p = Some(path);
    while let Some(q) = p {
        out.extend(prefix.get(q).into_iter().flatten().copied());
        p = parent(q);
    }
}

/// The locations of one host and their entries in precedence order.
fn locations(mut entries: Vec<Ranked>, routes: &[(Age, ObjectRef)]) -> Vec<GwLocation> {
    let key = |r: &Ranked| (r.rank, &routes[r.route].0, r.order);
    entries.sort_by(|a, b| key(a).cmp(&key(b)));
    let mut exact: BTreeMap<&str, Vec<&Ranked>> = BTreeMap::new();
    let mut prefix: BTreeMap<&str, Vec<&Ranked>> = BTreeMap::new();
    for r in &entries {
        let l = &r.located;
        match l.kind {
            PathKind::Exact => exact.entry(&l.path).or_default().push(r),
            PathKind::Prefix => prefix.entry(&l.path).or_default().push(r),
        }
    }
    let mut keys: BTreeSet<(&str, PathKind)> = BTreeSet::new();
    keys.extend(exact.keys().map(|p| (*p, PathKind::Exact)));
    for p in prefix.keys() {
        keys.insert((p, PathKind::Prefix));
        if *p != "/" {
            keys.insert((p, PathKind::Exact));
        }
    }
    let located: Vec<GwLocation> = keys
        .into_iter()
        .map(|(path, kind)| {
            let mut found: Vec<&Ranked> = Vec::new();
            if kind == PathKind::Exact {
                found.extend(exact.get(path).into_iter().flatten().copied());
            }
            covering(&prefix, path, &mut found);
            found.sort_by(|a, b| key(a).cmp(&key(b)));
            let mut out: Vec<GwEntry> = Vec::new();
            for r in found {
                out.push(r.located.entry.clone());
                if r.located.entry.unconditional() {
                    break;
                }
            }
            GwLocation {
                path: path.to_owned(),
                kind,
                entries: out,
            }
        })
        .collect();
    located
}
