//! Table-driven tests of Gateway API translation and precedence (`build.rs`, `rules.rs`,
//! `coexist.rs`): the model is built from manifests, then a request is resolved the way the
//! rendered nginx config resolves it (server by name, location `=` / longest `^~` / `/`, then
//! the location's first entry whose conditions hold).

use crate::model::{GwAction, GwEntry, GwServer, Host, Model, PathKind};
use crate::snapshot::Snapshot;
use crate::translate::{TranslateConfig, build};

const HEAD: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: berth}
spec: {controllerName: berth.dev/gateway}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: gw}
spec:
  gatewayClassName: berth
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: wild, port: 80, protocol: HTTP, hostname: "*.wild.test", allowedRoutes: {namespaces: {from: All}}}
"#;

fn svc(ns: &str, name: &str) -> String {
    format!(
        "---\n{{apiVersion: v1, kind: Service, metadata: {{name: {name}, namespace: {ns}}}, \
         spec: {{clusterIP: 10.0.0.1, ports: [{{port: 80}}]}}}}\n"
    )
}

fn model(extra: &str) -> Model {
    let mut text = HEAD.to_owned();
    for (ns, n) in [("gw", "v1"), ("gw", "v2"), ("gw", "v3"), ("other", "v1")] {
        text.push_str(&svc(ns, n));
    }
    text.push_str(extra);
    let mut snap = Snapshot::default();
    crate::source::files::parse_manifests(&text, "t.yaml", &mut snap);
    assert!(snap.reports.is_empty(), "{:?}", snap.reports);
    build(&snap, &TranslateConfig::default())
}

/// A request: host, method, path, headers, query.
struct Req<'a>(
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
);

fn server<'a>(m: &'a Model, host: &str) -> Option<&'a GwServer> {
    let exact = m
        .gateway
        .iter()
        .find(|s| s.host == Some(Host::Exact(host.into())));
    let wild = || {
        m.gateway.iter().find(|s| match &s.host {
            Some(Host::Wildcard(sfx)) => host.ends_with(&format!(".{sfx}")),
            _ => false,
        })
    };
    exact
        .or_else(wild)
        .or_else(|| m.gateway.iter().find(|s| s.host.is_none()))
}

fn entry<'a>(m: &'a Model, r: &Req<'_>) -> Option<&'a GwEntry> {
    let s = server(m, r.0)?;
    let exact = s
        .locations
        .iter()
        .find(|l| l.kind == PathKind::Exact && l.path == r.2);
    let prefix = || {
        s.locations
            .iter()
            .filter(|l| l.kind == PathKind::Prefix)
            .filter(|l| l.path == "/" || r.2.starts_with(&format!("{}/", l.path)))
            .max_by_key(|l| l.path.len())
    };
    let l = exact.or_else(prefix)?;
    l.entries.iter().find(|e| {
        e.method.as_deref().is_none_or(|x| x == r.1)
            && e.headers.iter().all(|(n, v)| {
                r.3.iter()
                    .any(|(rn, rv)| rn.eq_ignore_ascii_case(n) && rv == v)
            })
            && e.query
                .iter()
                .all(|(n, v)| r.4.iter().any(|(rn, rv)| rn == n && rv == v))
    })
}

/// `route/backend` (or `route/redirect`) answering `r`, `404` when none.
fn who(m: &Model, r: &Req<'_>) -> String {
    match entry(m, r) {
        None => "404".into(),
        Some(e) => {
            let what = match &e.rule.action {
                GwAction::Redirect(_) => "redirect".to_owned(),
                GwAction::Proxy(p) => p
                    .backends
                    .iter()
                    .map(|(u, _)| u.clone().unwrap_or("500".into()))
                    .collect::<Vec<_>>()
                    .join("+"),
            };
            format!("{}/{what}", e.rule.origin.name)
        }
    }
}

fn route(name: &str, ts: &str, hostnames: &str, rules: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: {name}, namespace: gw, creationTimestamp: \"{ts}\"}}\n\
         spec:\n  parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: {hostnames}\n  rules:\n{rules}\n"
    )
}

/// The spec's precedence list (HTTPRouteRule.matches), each criterion once, across routes.
#[test]
fn precedence_across_routes_follows_the_spec() {
    let a = route(
        "a",
        "2024-01-01T00:00:00Z",
        "[p.test]",
        "  - matches: [{path: {type: PathPrefix, value: /}}]\n    backendRefs: [{name: v1, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /foo}}]\n    backendRefs: [{name: v1, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /foo}, headers: [{name: X-A, value: '1'}]}]\n    backendRefs: [{name: v2, port: 80}]",
    );
    let b = route(
        "b",
        "2024-02-01T00:00:00Z",
        "[p.test]",
        "  - matches: [{path: {type: Exact, value: /foo/bar}}]\n    backendRefs: [{name: v3, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /foo/bar}}]\n    backendRefs: [{name: v2, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /foo}, headers: [{name: X-A, value: '1'}, {name: X-B, value: '2'}]}]\n    backendRefs: [{name: v3, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /foo}, method: POST}]\n    backendRefs: [{name: v3, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /foo}, queryParams: [{name: q, value: x}]}]\n    backendRefs: [{name: v2, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /}}]\n    backendRefs: [{name: v3, port: 80}]",
    );
    let m = model(&format!("{a}{b}"));
    let h: &[(&str, &str)] = &[];
    let cases: &[(Req<'_>, &str)] = &[
        // Exact beats every prefix.
        (
            Req("p.test", "POST", "/foo/bar", &[("X-A", "1")], h),
            "b/gw_v3_80",
        ),
        // Longer prefix beats method and headers of a shorter one.
        (Req("p.test", "POST", "/foo/bar/x", h, h), "b/gw_v2_80"),
        // Same prefix: method beats headers.
        (
            Req("p.test", "POST", "/foo/x", &[("X-A", "1"), ("X-B", "2")], h),
            "b/gw_v3_80",
        ),
        // Same prefix, no method: more headers win (b's two over a's one, though a is older).
        (
            Req("p.test", "GET", "/foo/x", &[("x-a", "1"), ("X-B", "2")], h),
            "b/gw_v3_80",
        ),
        // One header: a's rule; headers beat query params.
        (
            Req("p.test", "GET", "/foo", &[("X-A", "1")], &[("q", "x")]),
            "a/gw_v2_80",
        ),
        (Req("p.test", "GET", "/foo", h, &[("q", "x")]), "b/gw_v2_80"),
        // Equal matches: the older route wins.
        (Req("p.test", "GET", "/foo/y", h, h), "a/gw_v1_80"),
        (Req("p.test", "GET", "/", h, h), "a/gw_v1_80"),
        // Element-wise prefix: /foobar is not under /foo.
        (
            Req("p.test", "GET", "/foobar", &[("X-A", "1")], h),
            "a/gw_v1_80",
        ),
        (Req("other.test", "GET", "/", h, h), "404"),
    ];
    for (r, want) in cases {
        assert_eq!(
            who(&m, r),
            *want,
            "{} {} {} {:?} {:?}",
            r.0,
            r.1,
            r.2,
            r.3,
            r.4
        );
    }
}

/// Ties between routes of equal age: namespace/name alphabetically.
#[test]
fn ties_go_to_the_first_name() {
    let ts = "2024-01-01T00:00:00Z";
    let rule = "  - backendRefs: [{name: v1, port: 80}]";
    let rule2 = "  - backendRefs: [{name: v2, port: 80}]";
    let m = model(&format!(
        "{}{}",
        route("zeta", ts, "[t.test]", rule2),
        route("alpha", ts, "[t.test]", rule)
    ));
    let h: &[(&str, &str)] = &[];
    assert_eq!(who(&m, &Req("t.test", "GET", "/x", h, h)), "alpha/gw_v1_80");
}

#[test]
fn refused_rules_are_dropped_the_rest_served() {
    let r = route(
        "r",
        "2024-01-01T00:00:00Z",
        "[r.test]",
        "  - matches: [{path: {type: RegularExpression, value: '/a.*'}}]\n    backendRefs: [{name: v1, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /b}, headers: [{name: X, value: 'a;b'}]}]\n    backendRefs: [{name: v1, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /c}}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: v1, port: 80}}}]\n    backendRefs: [{name: v1, port: 80}]\n\
         \x20 - matches: [{path: {type: PathPrefix, value: /ok}}]\n    backendRefs: [{name: v2, port: 80}, {name: v3, port: 80, namespace: nope}]",
    );
    let m = model(&r);
    let h: &[(&str, &str)] = &[];
    assert_eq!(
        who(&m, &Req("r.test", "GET", "/ok", h, h)),
        "r/gw_v2_80+500"
    );
    for p in ["/a", "/b", "/c"] {
        assert_eq!(who(&m, &Req("r.test", "GET", p, h, h)), "404", "{p}");
    }
    let fields: Vec<&str> = m
        .reports
        .iter()
        .filter(|r| r.object.name == "r" && r.reason == crate::model::Reason::UnsupportedValue)
        .map(|r| r.field.as_str())
        .collect();
    assert_eq!(
        fields,
        ["spec.rules[0]", "spec.rules[1]", "spec.rules[2]"],
        "{:#?}",
        m.reports
    );
}

#[test]
fn listener_hostname_intersection_and_wildcards() {
    let r = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
        metadata: {name: w, namespace: gw}\nspec:\n  parentRefs: [{name: gw, sectionName: wild}]\n\
        \x20 hostnames: [a.wild.test, other.test, '*.b.wild.test']\n  rules: [{backendRefs: [{name: v1, port: 80}]}]\n";
    let m = model(r);
    let hosts: Vec<String> = m
        .gateway
        .iter()
        .map(|s| s.host.as_ref().map_or("*".into(), |h| h.to_string()))
        .collect();
    assert_eq!(hosts, ["a.wild.test", "*.b.wild.test"]);
}

/// One host, one side: the older of the Ingress and the HTTPRoute serves it.
#[test]
fn ingress_and_route_on_one_host_oldest_side_wins() {
    let ing = |name: &str, ts: &str, host: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n\
             metadata: {{name: {name}, namespace: gw, creationTimestamp: \"{ts}\"}}\n\
             spec: {{ingressClassName: berth, rules: [{{host: {host}, http: {{paths: [{{path: /, \
             pathType: Prefix, backend: {{service: {{name: v1, port: {{number: 80}}}}}}}}]}}}}]}}\n"
        )
    };
    let rule = "  - backendRefs: [{name: v2, port: 80}]";
    let m = model(&format!(
        "{}{}{}{}",
        ing("old-ing", "2024-01-01T00:00:00Z", "one.test"),
        route("new-route", "2024-06-01T00:00:00Z", "[one.test]", rule),
        ing("new-ing", "2024-06-01T00:00:00Z", "two.test"),
        route("old-route", "2024-01-01T00:00:00Z", "[two.test]", rule),
    ));
    let ingress_hosts: Vec<String> = m
        .servers
        .iter()
        .filter_map(|s| s.host.as_ref().map(|h| h.to_string()))
        .collect();
    assert_eq!(ingress_hosts, ["one.test"]);
    let gw_hosts: Vec<String> = m
        .gateway
        .iter()
        .filter_map(|s| s.host.as_ref().map(|h| h.to_string()))
        .collect();
    assert_eq!(gw_hosts, ["two.test"]);
    let lost: Vec<&str> = m
        .reports
        .iter()
        .filter(|r| r.reason == crate::model::Reason::Conflict)
        .map(|r| r.object.name.as_str())
        .collect();
    assert_eq!(lost, ["new-ing", "new-route"], "{:#?}", m.reports);
}

/// RequestRedirect without scheme and port keeps the Gateway listener's port (the spec:
/// "If redirect scheme is empty, the redirect port MUST be the Gateway Listener port"), and
/// omits only 80 for http and 443 for https.
#[test]
fn redirect_without_port_uses_the_listener_port() {
    let alt = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
        metadata: {name: alt, namespace: gw}\n\
        spec: {gatewayClassName: berth, listeners: [{name: http, port: 8080, protocol: HTTP}]}\n\
        ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
        metadata: {name: moved, namespace: gw}\n\
        spec:\n  parentRefs: [{name: alt}]\n  hostnames: [moved.test]\n  rules:\n  \
        - filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]\n";
    let m = model(alt);
    let config = crate::render::RenderConfig::new("/tmp/gwredirect", 80, 443).unwrap();
    let text = crate::render::render(&m, &config);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("example.org")).collect();
    assert!(!lines.is_empty(), "{text}");
    // Plain requests (the only listener is HTTP on 8080) keep 8080.
    let plain: Vec<&&str> = lines.iter().filter(|l| !l.contains("https://")).collect();
    assert!(!plain.is_empty(), "{lines:#?}");
    assert!(
        plain.iter().all(|l| l.contains("http://example.org:8080")),
        "{lines:#?}"
    );
}
