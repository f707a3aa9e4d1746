//! The injection corpus through the Gateway API fields of an HTTPRoute (pure): nothing hostile
//! reaches nginx.conf, and a good route beside the hostile ones still renders.

use std::sync::Arc;

use berth_ingress::model::Kind;
use berth_ingress::render::{RenderConfig, render};
use berth_ingress::snapshot::Snapshot;
use berth_ingress::translate::{self, TranslateConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{corpus, leaked, svc};

/// The Gateway API fields (issue 15): every corpus value in every field of an HTTPRoute
/// attached to our Gateway. The route (or its rule) is refused and reported, nothing reaches
/// nginx.conf outside a quoted header value (where only `"`, `\` and `$` would matter, and
/// those are refused, as are braces), and a good route still renders.
#[test]
fn hostile_gateway_values_never_reach_nginx_conf() {
    use berth_ingress::gateway::*;
    let meta = |ns: &str, name: &str| ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..ObjectMeta::default()
    };
    let mut snap = Snapshot::default();
    snap.services.push(Arc::new(svc("default", "good", &[])));
    snap.gateway_classes.push(Arc::new(GatewayClass {
        metadata: ObjectMeta {
            name: Some("berth".into()),
            ..ObjectMeta::default()
        },
        spec: GatewayClassSpec {
            controller_name: DEFAULT_GATEWAY_CONTROLLER_NAME.into(),
            ..GatewayClassSpec::default()
        },
        status: None,
    }));
    snap.gateways.push(Arc::new(Gateway {
        metadata: meta("default", "gw"),
        spec: GatewaySpec {
            gateway_class_name: "berth".into(),
            listeners: vec![Listener {
                name: "http".into(),
                port: 80,
                protocol: "HTTP".into(),
                ..Listener::default()
            }],
            addresses: None,
        },
        status: None,
    }));
    let route = |name: &str, host: &str, rule: HTTPRouteRule| HTTPRoute {
        metadata: meta("default", name),
        spec: HTTPRouteSpec {
            parent_refs: vec![ParentReference {
                name: "gw".into(),
                ..ParentReference::default()
            }],
            hostnames: vec![host.into()],
            rules: vec![rule],
        },
        status: None,
    };
    let good_backend = || HTTPBackendRef {
        name: "good".into(),
        port: Some(80),
        ..HTTPBackendRef::default()
    };
    let plain = || HTTPRouteRule {
        backend_refs: vec![good_backend()],
        ..HTTPRouteRule::default()
    };
    snap.http_routes
        .push(Arc::new(route("good-route", "gw.example.com", plain())));
    let header = |n: &str, v: &str| HTTPHeaderMatch {
        type_: None,
        name: n.into(),
        value: v.into(),
    };
    let filter = |f: HTTPRouteFilter| HTTPRouteRule {
        filters: vec![f],
        ..plain()
    };
    let rc = RenderConfig::new("/run/berth", 80, 443).unwrap();
    let baseline = render(&translate::build(&snap, &TranslateConfig::default()), &rc);
    let mut hostile = 0;
    for (i, value) in corpus().iter().enumerate() {
        let v = value.as_str();
        let m = |f: &dyn Fn(&mut HTTPRouteMatch)| {
            let mut m = HTTPRouteMatch::default();
            f(&mut m);
            HTTPRouteRule {
                matches: vec![m],
                ..plain()
            }
        };
        let mods = |set: Vec<HTTPHeader>| HTTPHeaderFilter {
            set,
            ..HTTPHeaderFilter::default()
        };
        let kv = |n: &str, v: &str| {
            vec![HTTPHeader {
                name: n.into(),
                value: v.into(),
            }]
        };
        let redirect = |r: HTTPRequestRedirectFilter| HTTPRouteFilter {
            type_: "RequestRedirect".into(),
            request_redirect: Some(r),
            ..HTTPRouteFilter::default()
        };
        let rewrite = |r: HTTPURLRewriteFilter| HTTPRouteFilter {
            type_: "URLRewrite".into(),
            url_rewrite: Some(r),
            ..HTTPRouteFilter::default()
        };
        let path_mod = |t: &str| HTTPPathModifier {
            type_: t.into(),
            replace_full_path: Some(v.into()),
            replace_prefix_match: Some(v.into()),
        };
        let cases: Vec<(&str, HTTPRouteRule)> = vec![
            (
                "path",
                m(&|m| {
                    m.path = Some(HTTPPathMatch {
                        type_: None,
                        value: Some(v.into()),
                    })
                }),
            ),
            ("hname", m(&|m| m.headers = vec![header(v, "a")])),
            ("hvalue", m(&|m| m.headers = vec![header("x-a", v)])),
            ("qname", m(&|m| m.query_params = vec![header(v, "a")])),
            ("qvalue", m(&|m| m.query_params = vec![header("a", v)])),
            ("method", m(&|m| m.method = Some(v.into()))),
            (
                "setname",
                filter(HTTPRouteFilter {
                    type_: "RequestHeaderModifier".into(),
                    request_header_modifier: Some(mods(kv(v, "a"))),
                    ..HTTPRouteFilter::default()
                }),
            ),
            (
                "setvalue",
                filter(HTTPRouteFilter {
                    type_: "RequestHeaderModifier".into(),
                    request_header_modifier: Some(mods(kv("x-a", v))),
                    ..HTTPRouteFilter::default()
                }),
            ),
            (
                "respvalue",
                filter(HTTPRouteFilter {
                    type_: "ResponseHeaderModifier".into(),
                    response_header_modifier: Some(mods(kv("x-a", v))),
                    ..HTTPRouteFilter::default()
                }),
            ),
            (
                "rdhost",
                filter(redirect(HTTPRequestRedirectFilter {
                    hostname: Some(v.into()),
                    ..HTTPRequestRedirectFilter::default()
                })),
            ),
            (
                "rdpath",
                filter(redirect(HTTPRequestRedirectFilter {
                    path: Some(path_mod("ReplaceFullPath")),
                    ..HTTPRequestRedirectFilter::default()
                })),
            ),
            (
                "rdscheme",
                filter(redirect(HTTPRequestRedirectFilter {
                    scheme: Some(v.into()),
                    ..HTTPRequestRedirectFilter::default()
                })),
            ),
            (
                "rwhost",
                filter(rewrite(HTTPURLRewriteFilter {
                    hostname: Some(v.into()),
                    path: None,
                })),
            ),
            (
                "rwprefix",
                filter(rewrite(HTTPURLRewriteFilter {
                    hostname: None,
                    path: Some(path_mod("ReplacePrefixMatch")),
                })),
            ),
            (
                "backend",
                HTTPRouteRule {
                    backend_refs: vec![HTTPBackendRef {
                        name: v.into(),
                        ..good_backend()
                    }],
                    ..HTTPRouteRule::default()
                },
            ),
        ];
        for (field, rule) in cases {
            let name = format!("gw-{field}-{i}");
            snap.http_routes.push(Arc::new(route(
                &name,
                &format!("{field}.example.com"),
                rule,
            )));
            hostile += 1;
        }
        snap.http_routes
            .push(Arc::new(route(&format!("gw-host-{i}"), v, plain())));
        snap.http_routes
            .push(Arc::new(route(v, "name.example.com", plain())));
        hostile += 2;
    }
    let model = translate::build(&snap, &TranslateConfig::default());
    let conf = render(&model, &rc);
    for value in corpus()
        .into_iter()
        .filter(|v| !baseline.contains(v.as_str()))
    {
        for line in conf.lines().filter(|l| leaked(l, &value)) {
            let t = line.trim();
            let quoted = format!("\"{value}\"");
            let in_header = (t.starts_with("proxy_set_header x-a ")
                || t.starts_with("add_header x-a "))
                && t.contains(&quoted);
            // An exact match value inside a quoted, anchored regex with its punctuation escaped.
            let in_match = t.starts_with("\"~^") && t.ends_with("$\" 1;");
            assert!(
                in_header || in_match,
                "hostile value reached nginx.conf: {value:?} in {line:?}"
            );
        }
    }
    assert!(conf.contains("server_name gw.example.com;"), "{conf}");
    let reported: std::collections::BTreeSet<_> = model
        .reports
        .iter()
        .filter(|r| matches!(r.object.kind, Kind::HTTPRoute))
        .map(|r| r.object.name.clone())
        .collect();
    assert!(
        !reported.iter().any(|n| n.starts_with("good")),
        "{reported:?}"
    );
    // Values that are harmless in a field (a quoted header value) are served, not reported;
    // everything else is: at least the structural fields for every value.
    assert!(
        reported.len() >= hostile / 2,
        "{} of {hostile} reported",
        reported.len()
    );
    assert!(
        model
            .reports
            .iter()
            .all(|r| !r.detail.contains('\n') && r.detail.len() < 400)
    );
}
