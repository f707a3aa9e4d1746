//! ingress-nginx annotations (issue 16 item 1), pure: an Ingress carrying a
//! `nginx.ingress.kubernetes.io/*` annotation berth does not implement is not served and is
//! reported by name (an app protected by `auth-type: basic` must never become public after the
//! move); snippets are refused even when `--ignore-annotations` names them; the flag downgrades
//! the others to a report; the spellings of berth's own annotations behave as `berth.dev/` ones.

use berth_ingress::model::{Model, Report, RouteOptions};
use berth_ingress::render::{RenderConfig, render};
use berth_ingress::snapshot::Snapshot;
use berth_ingress::source::files::parse_manifests;
use berth_ingress::translate::{self, TranslateConfig};

const N: &str = "nginx.ingress.kubernetes.io/";

/// A Service `web` and two Ingresses: `open` (open.test, no annotations) and `guarded`
/// (guarded.test, path `/api`) carrying `annotations`.
fn manifests(annotations: &[(&str, &str)]) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {v:?}\n"))
        .collect();
    let ing = |name: &str, ann: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  \
             namespace: shop\n  annotations:\n{ann}    x.example/ok: \"1\"\nspec:\n  \
             ingressClassName: berth\n  rules:\n  - host: {name}.test\n    http:\n      paths:\n      \
             - path: /api\n        pathType: Prefix\n        backend: {{service: {{name: web, port: {{number: 80}}}}}}\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\n\
         spec: {{clusterIP: 10.0.0.9, ports: [{{port: 80}}]}}\n---\napiVersion: v1\nkind: Secret\n\
         metadata: {{name: basic, namespace: shop}}\n\
         stringData: {{auth: \"alice:$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0\"}}\n{}{}",
        ing("open", ""),
        ing("guarded", &ann)
    )
}

fn build(annotations: &[(&str, &str)], ignore: &[&str]) -> (Model, String) {
    let mut snapshot = Snapshot::default();
    parse_manifests(&manifests(annotations), "t.yaml", &mut snapshot);
    assert!(snapshot.reports.is_empty(), "{:?}", snapshot.reports);
    let config = TranslateConfig {
        ignore_annotations: ignore.iter().map(|s| s.to_string()).collect(),
        ..TranslateConfig::default()
    };
    let model = translate::build(&snapshot, &config);
    let conf = render(&model, &RenderConfig::new("/run/berth", 80, 443).unwrap());
    (model, conf)
}

fn served(conf: &str, host: &str) -> bool {
    conf.contains(&format!("server_name {host};"))
}

/// The reports about Ingress shop/guarded.
fn guarded_reports(model: &Model) -> Vec<&Report> {
    model
        .reports
        .iter()
        .filter(|r| r.object.name == "guarded" && r.object.namespace == "shop")
        .collect()
}

fn names(r: &Report, annotation: &str) -> bool {
    r.field.contains(annotation) || r.detail.contains(annotation)
}

#[test]
fn auth_type_basic_is_not_served_and_reported_by_name() {
    // auth-type basic is honoured, so without its Secret the Ingress is
    // refused as invalid; the others are not implemented.
    for (pairs, reason, named) in [
        (
            vec![
                ("nginx.ingress.kubernetes.io/auth-type", "basic"),
                ("nginx.ingress.kubernetes.io/auth-secret", "basic-auth"),
            ],
            "invalid_annotation",
            &["nginx.ingress.kubernetes.io/auth-secret"][..],
        ),
        (
            vec![("nginx.ingress.kubernetes.io/auth-tls-verify-client", "on")],
            "unsupported_annotation",
            &["nginx.ingress.kubernetes.io/auth-tls-verify-client"],
        ),
        (
            vec![("nginx.ingress.kubernetes.io/auth-cache-key", "$remote_user")],
            "unsupported_annotation",
            &["nginx.ingress.kubernetes.io/auth-cache-key"],
        ),
        (
            vec![(
                "nginx.ingress.kubernetes.io/auth-signin",
                "https://login.example.com/",
            )],
            "invalid_annotation",
            &["nginx.ingress.kubernetes.io/auth-signin"],
        ),
        (
            vec![
                ("nginx.ingress.kubernetes.io/auth-url", "http://auth.test/"),
                (
                    "nginx.ingress.kubernetes.io/auth-signin",
                    "https://login.example.com/?rd=$request_uri",
                ),
            ],
            "invalid_annotation",
            &["nginx.ingress.kubernetes.io/auth-signin"],
        ),
        (
            vec![
                ("nginx.ingress.kubernetes.io/auth-url", "http://auth.test/"),
                (
                    "nginx.ingress.kubernetes.io/auth-signin",
                    "https://login.example.com/",
                ),
                ("nginx.ingress.kubernetes.io/backend-protocol", "GRPC"),
            ],
            "invalid_annotation",
            &["auth-signin", "GRPC"],
        ),
        (
            vec![
                ("nginx.ingress.kubernetes.io/backend-protocol", "GRPCS"),
                ("nginx.ingress.kubernetes.io/rewrite-target", "/v2"),
            ],
            "invalid_annotation",
            &["rewrite-target", "GRPCS"],
        ),
        (
            vec![("nginx.ingress.kubernetes.io/backend-protocol", "AJP")],
            "invalid_annotation",
            &["nginx.ingress.kubernetes.io/backend-protocol"],
        ),
    ] {
        let (model, conf) = build(&pairs, &[]);
        assert!(
            served(&conf, "open.test"),
            "the rest keeps serving:\n{conf}"
        );
        assert!(
            !served(&conf, "guarded.test"),
            "{pairs:?}: the Ingress is served without what its annotations asked:\n{conf}"
        );
        let reports = guarded_reports(&model);
        assert_eq!(reports.len(), 1, "{:#?}", model.reports);
        let r = reports[0];
        assert_eq!(r.reason.as_str(), reason, "{r}");
        for key in named {
            assert!(names(r, key), "the report names {key}: {r}");
        }
    }
}

#[test]
fn snippets_are_refused_even_when_the_flag_names_them() {
    let snippets = [
        "configuration-snippet",
        "server-snippet",
        "auth-snippet",
        "stream-snippet",
        "modsecurity-snippet",
    ];
    for s in snippets {
        let key = format!("{N}{s}");
        let (model, conf) = build(&[(&key, "more_set_headers 'X: y';")], &snippets);
        assert!(served(&conf, "open.test"));
        assert!(!served(&conf, "guarded.test"), "{s} served:\n{conf}");
        assert!(!conf.contains("more_set_headers"));
        let reports = guarded_reports(&model);
        assert_eq!(reports.len(), 1, "{:#?}", model.reports);
        assert_eq!(reports[0].reason.as_str(), "unsupported_annotation");
        assert!(names(reports[0], &key), "{}", reports[0]);
        assert!(reports[0].detail.contains("snippet"), "{}", reports[0]);
    }
}

#[test]
fn the_flag_downgrades_named_annotations_to_a_report() {
    let pairs = [
        ("nginx.ingress.kubernetes.io/auth-tls-verify-client", "on"),
        ("nginx.ingress.kubernetes.io/auth-cache-key", "$remote_user"),
    ];
    // Only one of the two named: still refused, naming the other.
    let (model, conf) = build(&pairs, &["auth-tls-verify-client"]);
    assert!(!served(&conf, "guarded.test"));
    let r = guarded_reports(&model);
    assert!(r.len() == 1 && names(r[0], "auth-cache-key"), "{r:#?}");
    assert_eq!(r[0].reason.as_str(), "unsupported_annotation");
    // Both named: served, with one warning report per ignored annotation.
    let (model, conf) = build(&pairs, &["auth-tls-verify-client", "auth-cache-key"]);
    assert!(served(&conf, "guarded.test"), "{:#?}", model.reports);
    assert!(served(&conf, "open.test"));
    let r = guarded_reports(&model);
    assert_eq!(r.len(), 2, "{r:#?}");
    for (key, _) in pairs {
        assert!(
            r.iter()
                .any(|r| r.reason.as_str() == "ignored_annotation" && names(r, key)),
            "{key}: {r:#?}"
        );
    }
    // A snippet beside a downgraded annotation still refuses the Ingress.
    let (_, conf) = build(
        &[pairs[0], (&format!("{N}server-snippet"), "return 200;")],
        &["auth-tls-verify-client", "server-snippet"],
    );
    assert!(!served(&conf, "guarded.test"));
}

#[test]
fn berths_own_annotations_are_honoured_under_the_nginx_spelling() {
    let same = [
        ("rewrite-target", "rewrite-target", "/v2"),
        ("ssl-redirect", "ssl-redirect", "false"),
        ("proxy-body-size", "proxy-body-size", "8m"),
        ("proxy-read-timeout", "proxy-read-timeout", "30"),
        ("proxy-connect-timeout", "proxy-connect-timeout", "5"),
        ("backend-protocol", "backend-protocol", "HTTPS"),
        ("whitelist-source-range", "allow-source-range", "10.0.0.0/8"),
        ("allowlist-source-range", "allow-source-range", "10.0.0.0/8"),
        ("denylist-source-range", "deny-source-range", "10.0.0.0/8"),
        ("force-ssl-redirect", "force-ssl-redirect", "true"),
        (
            "permanent-redirect",
            "permanent-redirect",
            "https://a.example.com/",
        ),
        (
            "temporal-redirect",
            "temporal-redirect",
            "https://a.example.com/",
        ),
        ("app-root", "app-root", "/app"),
        ("upstream-vhost", "upstream-vhost", "b.internal"),
        ("auth-url", "auth-url", "http://127.0.0.1:9/check"),
        ("limit-rps", "limit-rps", "10"),
        ("limit-rpm", "limit-rpm", "100"),
        ("limit-connections", "limit-connections", "5"),
        ("enable-cors", "enable-cors", "true"),
        ("proxy-buffering", "proxy-buffering", "off"),
        ("proxy-send-timeout", "proxy-send-timeout", "30"),
    ];
    for (nginx, berth, value) in same {
        let (nginx_key, berth_key) = (format!("{N}{nginx}"), format!("berth.dev/{berth}"));
        let (m1, via_nginx) = build(&[(&nginx_key, value)], &[]);
        let (m2, via_berth) = build(&[(&berth_key, value)], &[]);
        let (r1, r2) = (guarded_reports(&m1), guarded_reports(&m2));
        assert!(r1.is_empty() && r2.is_empty(), "{r1:#?} {r2:#?}");
        assert_eq!(via_nginx, via_berth, "{nginx_key}");
        let options = |m: &Model| {
            m.servers
                .iter()
                .flat_map(|s| &s.locations)
                .find(|l| l.origin.name == "guarded")
                .map(|l| l.options.clone())
        };
        assert_eq!(options(&m1), options(&m2), "{nginx_key}");
        assert_ne!(
            options(&m1),
            Some(RouteOptions::default()),
            "{nginx_key} changed nothing"
        );
    }
    // Basic auth: the three annotations in either spelling (or mixed) render the same.
    let auth = |p: &str| {
        [
            (format!("{p}auth-type"), "basic"),
            (format!("{p}auth-secret"), "basic"),
            (format!("{p}auth-realm"), "Staff only"),
        ]
    };
    let (a1, a2) = (auth(N), auth("berth.dev/"));
    let r1: Vec<(&str, &str)> = a1.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let r2: Vec<(&str, &str)> = a2.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let (m1, c1) = build(&r1, &[]);
    let (_, c2) = build(&r2, &[]);
    assert!(guarded_reports(&m1).is_empty(), "{:#?}", m1.reports);
    assert_eq!(c1, c2);
    assert!(c1.contains("auth_basic \"Staff only\";") && !c1.contains("M2T3"));
    // Same strict grammar: a hostile value refuses the Ingress.
    let (model, conf) = build(&[(&format!("{N}proxy-body-size"), "1m; evil")], &[]);
    assert!(!served(&conf, "guarded.test") && !conf.contains("evil"));
    assert_eq!(
        guarded_reports(&model)[0].reason.as_str(),
        "invalid_annotation"
    );
    // Both spellings with different values: refused, not one silently winning.
    let (model, conf) = build(
        &[
            ("berth.dev/proxy-body-size", "1m"),
            (&format!("{N}proxy-body-size"), "8m"),
        ],
        &[],
    );
    assert!(!served(&conf, "guarded.test"), "{:#?}", model.reports);
}

/// A canary Ingress and a custom-errors backend contribute to the main route: the canary is
/// one of the model's objects (served, quarantined on its own), and isolating another object
/// keeps the error and canary upstreams.
#[test]
fn canary_and_error_backend_are_part_of_the_model() {
    use berth_ingress::model::{Kind, ObjectRef};
    use std::collections::BTreeSet;
    let svc = |name: &str, ip: &str| {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\n\
             spec: {{clusterIP: {ip}, ports: [{{port: 80}}]}}\n"
        )
    };
    let ing = |name: &str, backend: &str, ann: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  \
             namespace: shop\n  annotations: {{{ann}}}\nspec:\n  ingressClassName: berth\n  \
             rules: [{{host: m.test, http: {{paths: [{{path: /, pathType: Prefix, backend: \
             {{service: {{name: {backend}, port: {{number: 80}}}}}}}}]}}}}]\n"
        )
    };
    let text = [
        svc("web", "10.0.0.9"),
        svc("errors", "10.0.0.10"),
        svc("new", "10.0.0.11"),
        ing(
            "main",
            "web",
            &format!("{N}custom-http-errors: \"503\", {N}default-backend: errors"),
        ),
        ing(
            "canary",
            "new",
            &format!("{N}canary: \"true\", {N}canary-weight: \"50\""),
        ),
    ]
    .concat();
    let mut snapshot = Snapshot::default();
    parse_manifests(&text, "t.yaml", &mut snapshot);
    let model = translate::build(&snapshot, &TranslateConfig::default());
    let ingress_reports = model
        .reports
        .iter()
        .filter(|r| r.object.kind == Kind::Ingress);
    assert_eq!(ingress_reports.count(), 0, "{:#?}", model.reports);
    let rc = RenderConfig::new("/run/berth", 80, 443).unwrap();
    let conf = render(&model, &rc);
    assert!(conf.contains("split_clients") && conf.contains("error_page 503 = @berth_err_"));
    let canary = ObjectRef::new(Kind::Ingress, "shop", "canary");
    assert!(model.origins().contains(&canary));
    assert_eq!(render(&model.without(&BTreeSet::new()), &rc), conf);
    let alone = render(&model.without(&BTreeSet::from([canary])), &rc);
    assert!(!alone.contains("split_clients") && !alone.contains("shop_new_80"));
    assert!(
        alone.contains("proxy_pass http://shop_errors_80;"),
        "{alone}"
    );
}
