//! Table-driven tests of the Gateway API statuses (`status.rs`, `attach.rs`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::serving::Serving;
use crate::snapshot::Snapshot;

/// A class of ours and one not, a Gateway with an HTTP listener for `*.example.com` (routes
/// of all namespaces), an HTTP listener `same` (this namespace only) and an HTTPS listener
/// whose Secret is missing, and Services `web` in `gw` and `other`.
pub(crate) const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: berth, generation: 2}
spec: {controllerName: berth.dev/gateway}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: theirs}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: gw, generation: 3}
spec:
  gatewayClassName: berth
  listeners:
  - {name: http, port: 80, protocol: HTTP, hostname: "*.example.com", allowedRoutes: {namespaces: {from: All}}}
  - {name: same, port: 8080, protocol: HTTP}
  - name: https
    port: 443
    protocol: HTTPS
    tls: {certificateRefs: [{name: missing}]}
  - {name: tcp, port: 9000, protocol: TCP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: foreign, namespace: gw}
spec: {gatewayClassName: theirs, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
{apiVersion: v1, kind: Service, metadata: {name: web, namespace: gw}, spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: web, namespace: other}, spec: {clusterIP: 10.0.0.2, ports: [{port: 80}]}}
"#;

pub(crate) fn route(ns: &str, name: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: {name}, namespace: {ns}, generation: 1}}\nspec:\n{extra}\n"
    )
}

pub(crate) fn conds(s: &GatewayStatuses, ns: &str, name: &str) -> Vec<(String, String, String)> {
    let r = &s.http_routes[&(ns.to_owned(), name.to_owned())];
    r.parents
        .iter()
        .flat_map(|p| &p.conditions)
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

pub(crate) fn snapshot(manifests: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    crate::source::files::parse_manifests(manifests, "t.yaml", &mut snap);
    assert!(snap.reports.is_empty(), "{:?}", snap.reports);
    snap
}

/// The statuses of `snap` with what `serving` says the live config serves.
pub(crate) fn with_serving(snap: &Snapshot, serving: &Serving) -> GatewayStatuses {
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let addr = [GatewayStatusAddress {
        type_: Some("IPAddress".into()),
        value: "192.0.2.1".into(),
    }];
    let config = crate::translate::TranslateConfig::default();
    statuses(snap, &config, &addr, serving, &now)
}

/// What the live config serves once the snapshot's whole config went live.
pub(crate) fn all_served(snap: &Snapshot) -> Serving {
    let config = crate::translate::TranslateConfig::default();
    Serving::of(&crate::translate::build(snap, &config))
}

fn run(extra: &str) -> GatewayStatuses {
    let snap = snapshot(&format!("{BASE}{extra}"));
    with_serving(&snap, &all_served(&snap))
}

#[test]
fn route_conditions_follow_the_spec_reasons() {
    let t = |ok: bool, r: &str| (if ok { "True" } else { "False" }.to_owned(), r.to_owned());
    type Want = (String, String);
    let cases: &[(&str, &str, &str, Want, Want)] = &[
        (
            "gw",
            "plain",
            "  parentRefs: [{name: gw}]\n  hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: web, port: 80}]}]",
            t(true, "Accepted"),
            t(true, "ResolvedRefs"),
        ),
        (
            "other",
            "same-only",
            "  parentRefs: [{name: gw, namespace: gw, sectionName: same}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]",
            t(false, "NotAllowedByListeners"),
            t(true, "ResolvedRefs"),
        ),
        (
            "gw",
            "nohost",
            "  parentRefs: [{name: gw, sectionName: http}]\n  hostnames: [a.other.org]\n  rules: [{backendRefs: [{name: web, port: 80}]}]",
            t(false, "NoMatchingListenerHostname"),
            t(true, "ResolvedRefs"),
        ),
        (
            "gw",
            "nosection",
            "  parentRefs: [{name: gw, sectionName: nope}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]",
            t(false, "NoMatchingParent"),
            t(true, "ResolvedRefs"),
        ),
        (
            "gw",
            "xns",
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: web, namespace: other, port: 80}]}]",
            t(true, "Accepted"),
            t(false, "RefNotPermitted"),
        ),
        (
            "gw",
            "missing",
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: nope, port: 80}]}]",
            t(true, "Accepted"),
            t(false, "BackendNotFound"),
        ),
        (
            "gw",
            "kind",
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{kind: Pod, name: web, port: 80}]}]",
            t(true, "Accepted"),
            t(false, "InvalidKind"),
        ),
    ];
    for (ns, name, spec, accepted, resolved) in cases {
        let s = run(&route(ns, name, spec));
        let c = conds(&s, ns, name);
        let got = |ty: &str| {
            let c = c.iter().find(|c| c.0 == ty).expect(ty);
            (c.1.clone(), c.2.clone())
        };
        assert_eq!(got("Accepted"), *accepted, "{name}: {c:?}");
        assert_eq!(got("ResolvedRefs"), *resolved, "{name}: {c:?}");
    }
}

#[test]
fn grant_permits_cross_namespace_backend() {
    let grant = "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n\
        metadata: {name: g, namespace: other}\n\
        spec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gw}], \
        to: [{group: \"\", kind: Service}]}\n";
    let r = route(
        "gw",
        "xns",
        "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: web, namespace: other, port: 80}]}]",
    );
    let s = run(&format!("{r}{grant}"));
    assert!(conds(&s, "gw", "xns").contains(&(
        "ResolvedRefs".into(),
        "True".into(),
        "ResolvedRefs".into()
    )));
}

#[test]
fn classes_gateways_and_listeners() {
    let r = route(
        "gw",
        "a",
        "  parentRefs: [{name: gw}, {name: foreign}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]",
    );
    let s = run(&r);
    assert_eq!(s.classes.keys().collect::<Vec<_>>(), ["berth"]);
    assert_eq!(
        s.classes["berth"].conditions[0].observed_generation,
        Some(2)
    );
    assert_eq!(
        s.gateways.len(),
        1,
        "the foreign class's Gateway is not ours"
    );
    let g = &s.gateways[&("gw".to_owned(), "gw".to_owned())];
    assert_eq!(g.addresses[0].value, "192.0.2.1");
    type Row<'a> = (&'a str, i32, Vec<(&'a str, &'a str)>);
    let l: Vec<Row<'_>> = g
        .listeners
        .iter()
        .map(|l| {
            let c = l.conditions.iter();
            let c = c.map(|c| (c.type_.as_str(), c.reason.as_str())).collect();
            (l.name.as_str(), l.attached_routes, c)
        })
        .collect();
    assert_eq!(l[0].1, 1, "{l:?}");
    assert_eq!(l[1].1, 1, "{l:?}");
    assert_eq!(l[2].1, 0, "https without certificate: {l:?}");
    assert!(
        l[2].2.contains(&("ResolvedRefs", "InvalidCertificateRef")),
        "{l:?}"
    );
    assert!(l[2].2.contains(&("Programmed", "Invalid")), "{l:?}");
    assert!(
        l[3].2.contains(&("Accepted", "UnsupportedProtocol")),
        "{l:?}"
    );
    // Only the parentRef to our Gateway gets an entry.
    let parents = &s.http_routes[&("gw".to_owned(), "a".to_owned())].parents;
    assert_eq!(parents.len(), 1);
    assert_eq!(parents[0].controller_name, "berth.dev/gateway");
}

#[test]
fn objects_serialise_with_api_version_and_kind() {
    let mut snap = Snapshot::default();
    crate::source::files::parse_manifests(BASE, "t.yaml", &mut snap);
    let v = serde_json::to_value(&*snap.gateways[0]).unwrap();
    assert_eq!(v["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(v["kind"], "Gateway");
    assert_eq!(
        v["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"],
        "All"
    );
    assert_eq!(
        <HTTPRoute as kube::Resource>::url_path(&(), Some("ns")),
        "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes"
    );
}

/// A route that loses its host to an older Ingress is not silently Accepted: its parent
/// status says which Ingress holds the host (docs/ingress-semantics.md, "one host, one side").
#[test]
fn route_losing_its_host_to_an_ingress_is_not_accepted() {
    let ing = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n\
        metadata: {name: old-ing, namespace: gw, creationTimestamp: \"2024-01-01T00:00:00Z\"}\n\
        spec: {ingressClassName: berth, rules: [{host: a.example.com, http: {paths: [{path: /, \
        pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}\n";
    let r = |name: &str, hosts: &str| {
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: {name}, namespace: gw, generation: 1, creationTimestamp: \"2024-06-01T00:00:00Z\"}}\n\
             spec:\n  parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: {hosts}\n  \
             rules: [{{backendRefs: [{{name: web, port: 80}}]}}]\n"
        )
    };
    // One route per snapshot: two equal routes on one host would shadow each other.
    let accepted = |name: &str, hosts: &str| {
        let s = run(&format!("{ing}{}", r(name, hosts)));
        let r = &s.http_routes[&("gw".to_owned(), name.to_owned())];
        let c = r.parents[0]
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted");
        let c = c.expect("Accepted condition");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    };
    let (status, reason, message) = accepted("lost", "[a.example.com]");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "HostnameConflict"),
        "{message}"
    );
    assert!(message.contains("Ingress/gw/old-ing"), "{message}");
    assert!(message.contains("a.example.com"), "{message}");
    // Still serves b.example.com: accepted, but the lost host is named.
    let (status, _, message) = accepted("half", "[a.example.com, b.example.com]");
    assert_eq!(status, "True");
    assert!(
        message.contains("a.example.com") && message.contains("old-ing"),
        "{message}"
    );
}
