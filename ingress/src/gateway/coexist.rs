//! One host, one side: Ingress/labelled Services or Gateway API routes (pure).
//!
//! The rule (docs/ingress-semantics.md): when a host (or the catch-all: routes without a
//! host) is claimed by both sides, the side whose oldest claimant is older serves it whole
//! (creationTimestamp, then namespace/name, as everywhere else); every object of the other
//! side loses that host and is reported ([`Reason::Conflict`]). Claims on the Ingress side:
//! a rule or labelled Service naming the host, a `spec.tls` host, a `spec.defaultBackend`'s
//! hosts; on the Gateway side: an attached route serving the host.

use std::collections::{BTreeMap, BTreeSet};

use super::build::Output;
use crate::model::{GwServer, Host, Model, ObjectRef, Reason, Report};
use crate::translate::{Age, Translated};

fn name(h: &Option<Host>) -> String {
    h.as_ref().map_or("(any host)".to_owned(), Host::to_string)
}

fn conflict(object: &ObjectRef, host: &Option<Host>, winner: &ObjectRef) -> Report {
    Report {
        object: object.clone(),
        field: "host".into(),
        reason: Reason::Conflict,
        detail: format!(
            "host {} is served by older {winner}; Ingress/Service routes and Gateway API \
             routes never share a host",
            name(host)
        ),
    }
}

/// Drop the losing side of every host both sides claim (see the module doc).
pub fn resolve(t: &mut Translated, gw: &mut Output) {
    let mut ingress: BTreeMap<Option<Host>, (&Age, &ObjectRef)> = BTreeMap::new();
    let claim = |h: Option<Host>, age: &Age, o: &ObjectRef| (h, age.clone(), o.clone());
    let mut all: Vec<(Option<Host>, Age, ObjectRef)> = Vec::new();
    for c in &t.routes {
        all.push(claim(c.host.clone(), &c.age, &c.origin));
    }
    for c in &t.tls {
        all.push(claim(Some(c.host.clone()), &c.age, &c.origin));
    }
    for d in t.defaults.iter().filter(|d| !d.flag) {
        for h in &d.hosts {
            all.push(claim(Some(h.clone()), &d.age, &d.origin));
        }
    }
    for (h, age, o) in &all {
        let e = ingress.entry(h.clone()).or_insert((age, o));
        if age < e.0 {
            *e = (age, o);
        }
    }
    let mut ingress_loses: BTreeMap<Option<Host>, ObjectRef> = BTreeMap::new();
    let mut gateway_loses: BTreeMap<Option<Host>, ObjectRef> = BTreeMap::new();
    for (host, &route) in &gw.claims {
        let (gage, gorigin) = &gw.routes[route];
        if let Some((iage, iorigin)) = ingress.get(host) {
            if gage < *iage {
                ingress_loses.insert(host.clone(), gorigin.clone());
            } else {
                gateway_loses.insert(host.clone(), (*iorigin).clone());
            }
        }
    }
    let reports = &mut t.reports;
    t.routes.retain(|c| match ingress_loses.get(&c.host) {
        Some(w) => {
            reports.push(conflict(&c.origin, &c.host, w));
            false
        }
        None => true,
    });
    t.tls
        .retain(|c| match ingress_loses.get(&Some(c.host.clone())) {
            Some(w) => {
                reports.push(conflict(&c.origin, &Some(c.host.clone()), w));
                false
            }
            None => true,
        });
    for d in &mut t.defaults {
        d.hosts
            .retain(|h| match ingress_loses.get(&Some(h.clone())) {
                Some(w) => {
                    reports.push(conflict(&d.origin, &Some(h.clone()), w));
                    false
                }
                None => true,
            });
    }
    let lost: BTreeSet<&Option<Host>> = gateway_loses.keys().collect();
    let gw_reports = &mut gw.reports;
    gw.servers.retain(|s: &GwServer| {
        if !lost.contains(&s.host) {
            return true;
        }
        let w = &gateway_loses[&s.host];
        let origins: BTreeSet<&ObjectRef> = s
            .locations
            .iter()
            .flat_map(|l| &l.entries)
            .map(|e| &e.rule.origin)
            .collect();
        gw_reports.extend(origins.into_iter().map(|o| conflict(o, &s.host, w)));
        false
    });
}

/// The hosts a route lost to the Ingress side: whether it lost every host it would serve, and
/// a message naming each lost host and the Ingress/Service holding it. For statuses: the
/// losers are reported there too, not only logged.
pub type Losses = BTreeMap<ObjectRef, (bool, String)>;

fn served(gw: &Output) -> BTreeSet<(ObjectRef, Option<Host>)> {
    gw.servers
        .iter()
        .flat_map(|s| {
            s.locations
                .iter()
                .flat_map(|l| &l.entries)
                .map(|e| (e.rule.origin.clone(), s.host.clone()))
        })
        .collect()
}

/// Run [`resolve`] on `t` and `gw` and say which routes lost hosts (see [`Losses`]), and
/// which objects the Gateway API servers left would serve (routes; a Gateway by the
/// certificate of its HTTPS listeners): what a live config should show (statuses).
pub fn losses(mut t: Translated, mut gw: Output) -> (Losses, BTreeSet<ObjectRef>) {
    let before = served(&gw);
    let from = gw.reports.len();
    resolve(&mut t, &mut gw);
    let after = served(&gw);
    let mut expected: BTreeSet<ObjectRef> = after.iter().map(|(o, _)| o.clone()).collect();
    expected.extend(
        gw.servers
            .iter()
            .flat_map(|s| &s.tls)
            .map(|t| t.origin.clone()),
    );
    let mut out: BTreeMap<ObjectRef, Vec<String>> = BTreeMap::new();
    for r in &gw.reports[from..] {
        out.entry(r.object.clone())
            .or_default()
            .push(r.detail.clone());
    }
    let lost = out
        .into_iter()
        .map(|(o, mut m)| {
            m.dedup();
            let all = before.iter().any(|(b, _)| *b == o) && !after.iter().any(|(a, _)| *a == o);
            (o, (all, m.join("; ")))
        })
        .collect();
    (lost, expected)
}

/// Add the Gateway API servers, their upstreams, certificates and reports to `model`.
pub fn join(model: &mut Model, gw: Output) {
    model.gateway = gw.servers;
    for (name, u) in gw.upstreams {
        if let Err(i) = model.upstreams.binary_search_by(|x| x.name.cmp(&name)) {
            model.upstreams.insert(i, u);
        }
    }
    for c in gw.certificates {
        if let Err(i) = model.certificates.binary_search_by(|x| x.id.cmp(&c.id)) {
            model.certificates.insert(i, c);
        }
    }
    model.reports.extend(gw.reports);
    model.reports.sort();
    model.reports.dedup();
}
