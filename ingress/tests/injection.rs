//! Injection corpus (pure): hostile values in hosts, paths, annotations, names and ports never
//! reach nginx.conf; each carrying object is rejected with a report naming it; a good object
//! in the same snapshot still renders. (The same corpus runs through real nginx in tests/.)

#[path = "injection/gateway.rs"]
mod gateway;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_ingress::model::Kind;
use berth_ingress::render::{RenderConfig, render};
use berth_ingress::snapshot::Snapshot;
use berth_ingress::translate::{self, LabelSelector, TranslateConfig};
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// At least 30 hostile strings: nginx syntax, variables, quotes, comments, escapes, control
/// characters, unicode look-alikes, Lua, huge values.
fn corpus() -> Vec<String> {
    let mut v: Vec<String> = [
        "evil.com; return 200 pwned",
        "evil.com}",
        "evil.com{",
        "a.com\nserver { listen 81; }",
        "a.com\r\nX: y",
        "$host",
        "${upstream}",
        "\"quoted\"",
        "'single'",
        "a.com#comment",
        "a.com\\",
        "a.com\\x3b",
        "a.com\t",
        "a com",
        "a.com\0",
        "\u{1b}[31m",
        "exa\u{301}mple.com",
        "\u{440}\u{430}ypal.com",
        "\u{202e}moc.live",
        "content_by_lua_block { os.execute('id') }",
        "lua_code_cache off",
        "include /etc/passwd",
        "/foo; proxy_pass http://evil",
        "/foo { return 200 x; }",
        "/foo}",
        "/$request_uri",
        "/foo\nlocation /x",
        "/foo#",
        "/foo\\bar",
        "/foo'",
        "/foo\"",
        "/ spaces",
        "/%00",
        "/..",
        "/a/../../etc",
        "~* .*",
        "^~ /x",
        "@named",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    v.push(format!("{}.com", "a".repeat(10 * 1024)));
    v.push(format!("/{}", "a".repeat(10 * 1024)));
    v
}

/// Fragments a hostile value could leave in the config if it slipped through.
fn leaked(conf: &str, value: &str) -> bool {
    value.len() > 3 && conf.contains(value)
}

fn meta(ns: &str, name: &str, annotations: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/expose".into(),
            "true".into(),
        )])),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

fn svc(ns: &str, name: &str, annotations: &[(&str, &str)]) -> Service {
    let annotations = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Service {
        metadata: meta(ns, name, annotations),
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.0.0.9".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn ing(name: &str, host: &str, path: &str, backend: &str, annotations: &[(&str, &str)]) -> Ingress {
    let annotations = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ingress {
        metadata: meta("default", name, annotations),
        spec: Some(IngressSpec {
            ingress_class_name: Some("berth".into()),
            rules: Some(vec![IngressRule {
                host: Some(host.into()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(path.into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: backend.into(),
                                port: Some(ServiceBackendPort {
                                    number: Some(80),
                                    name: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// Secret default/basic holding a valid htpasswd file.
fn htpasswd_secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("basic".into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([(
            "auth".to_owned(),
            "alice:$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0\n".to_owned(),
        )])),
        ..Secret::default()
    }
}

/// `auth-realm` admits some corpus strings (letters, spaces, `@`...) as harmless quoted text:
/// each hostile realm is refused, or written only inside `auth_basic "...";` over the safe
/// charset; an htpasswd line with hostile text refuses the Ingress without echoing it.
#[test]
fn hostile_realms_and_htpasswd_lines_are_refused_or_quoted_safely() {
    let config = TranslateConfig::default();
    let rc = RenderConfig::new("/run/berth", 80, 443).unwrap();
    let mut accepted = 0;
    for value in corpus() {
        let mut snap = Snapshot::default();
        snap.secrets.push(Arc::new(htpasswd_secret()));
        let (t, s, r) = (
            format!("{NGINX}auth-type"),
            format!("{NGINX}auth-secret"),
            format!("{NGINX}auth-realm"),
        );
        snap.ingresses.push(Arc::new(ing(
            "realm",
            "k.example.com",
            "/",
            "good",
            &[(&t, "basic"), (&s, "basic"), (&r, &value)],
        )));
        let model = translate::build(&snap, &config);
        let conf = render(&model, &rc);
        let refused = model
            .reports
            .iter()
            .any(|r| r.object.name == "realm" && r.field.contains("auth-realm"));
        if refused {
            let base = render(&translate::build(&Snapshot::default(), &config), &rc);
            assert!(!leaked(&conf, &value) || base.contains(&value), "{value:?}");
        } else {
            accepted += 1;
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b" ._,:@()/-".contains(&b)),
                "{value:?} accepted"
            );
            assert!(
                conf.contains(&format!("auth_basic \"{value}\";")),
                "{value:?}"
            );
        }

        let mut hostile = htpasswd_secret();
        hostile.string_data = Some(BTreeMap::from([(
            "auth".to_owned(),
            format!("alice:$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0\n{value}\n"),
        )]));
        snap.secrets = vec![Arc::new(hostile)];
        snap.ingresses = vec![Arc::new(ing(
            "realm",
            "k.example.com",
            "/",
            "good",
            &[(&t, "basic"), (&s, "basic")],
        ))];
        let model = translate::build(&snap, &config);
        let report = model
            .reports
            .iter()
            .find(|r| r.object.name == "realm" && r.field.contains("auth-secret"))
            .unwrap_or_else(|| panic!("htpasswd line {value:?} accepted"));
        assert!(
            !report.to_string().contains(&value) && !report.to_string().contains("M2T3"),
            "{report}"
        );
    }
    // Accepted (harmless quoted text): "a com", "lua_code_cache off", "include /etc/passwd"...
    assert!(accepted <= 7, "{accepted} hostile realms accepted");
}

#[test]
fn hostile_values_never_reach_nginx_conf() {
    let mut snap = Snapshot::default();
    snap.services.push(Arc::new(svc(
        "default",
        "good",
        &[("berth.dev/host", "good.example.com")],
    )));
    snap.ingresses.push(Arc::new(ing(
        "good-ing",
        "ok.example.com",
        "/ok",
        "good",
        &[],
    )));
    snap.secrets.push(Arc::new(htpasswd_secret()));
    let baseline_snap = snap.clone();
    let mut hostile_objects = 0;
    for (i, value) in corpus().iter().enumerate() {
        let n = |what: &str| format!("{what}-{i}");
        // Hosts and paths via Service annotations.
        snap.services.push(Arc::new(svc(
            "default",
            &n("host"),
            &[("berth.dev/host", value)],
        )));
        snap.services.push(Arc::new(svc(
            "default",
            &n("path"),
            &[
                ("berth.dev/host", "p.example.com"),
                ("berth.dev/path", value),
            ],
        )));
        snap.services.push(Arc::new(svc(
            "default",
            &n("port"),
            &[
                ("berth.dev/host", "q.example.com"),
                ("berth.dev/port", value),
            ],
        )));
        // Unknown berth.dev annotation carrying the value, on both kinds.
        snap.services.push(Arc::new(svc(
            "default",
            &n("anno"),
            &[
                ("berth.dev/host", "r.example.com"),
                ("berth.dev/configuration-snippet", value),
            ],
        )));
        // Ingress host, path, backend name, annotation; and names/namespaces.
        snap.ingresses
            .push(Arc::new(ing(&n("ihost"), value, "/", "good", &[])));
        snap.ingresses.push(Arc::new(ing(
            &n("ipath"),
            "i.example.com",
            value,
            "good",
            &[],
        )));
        snap.ingresses
            .push(Arc::new(ing(&n("iback"), "j.example.com", "/", value, &[])));
        snap.ingresses.push(Arc::new(ing(
            &n("ianno"),
            "k.example.com",
            "/",
            "good",
            &[("berth.dev/server-snippet", value)],
        )));
        // ingress-nginx annotations: a snippet, an unimplemented one, honoured spellings (with
        // the companions that make the hostile value the one checked).
        for (what, key, companions) in [
            ("nsnip", "configuration-snippet", &[][..]),
            ("nauth", "auth-url", &[]),
            ("npredir", "permanent-redirect", &[]),
            ("ntredir", "temporal-redirect", &[]),
            (
                "npcode",
                "permanent-redirect-code",
                &[("permanent-redirect", "https://a.example.com/")],
            ),
            ("nroot", "app-root", &[]),
            ("nforce", "force-ssl-redirect", &[]),
            ("nvhost", "upstream-vhost", &[]),
            ("nrps", "limit-rps", &[]),
            ("nbuf", "proxy-buffering", &[]),
            ("nsend", "proxy-send-timeout", &[]),
            ("ncors", "enable-cors", &[]),
            ("ncorigin", "cors-allow-origin", &[("enable-cors", "true")]),
            (
                "ncmethods",
                "cors-allow-methods",
                &[("enable-cors", "true")],
            ),
            (
                "ncheaders",
                "cors-allow-headers",
                &[("enable-cors", "true")],
            ),
            (
                "ncexpose",
                "cors-expose-headers",
                &[("enable-cors", "true")],
            ),
            (
                "nccred",
                "cors-allow-credentials",
                &[("enable-cors", "true")],
            ),
            ("ncage", "cors-max-age", &[("enable-cors", "true")]),
            ("nrpm", "limit-rpm", &[]),
            ("nconn", "limit-connections", &[]),
            ("nburst", "limit-burst-multiplier", &[("limit-rps", "5")]),
            (
                "namethod",
                "auth-method",
                &[("auth-url", "http://auth.example.com/check")],
            ),
            (
                "naheaders",
                "auth-response-headers",
                &[("auth-url", "http://auth.example.com/check")],
            ),
            (
                "nsignin",
                "auth-signin",
                &[("auth-url", "http://auth.example.com/check")],
            ),
            (
                "nsparam",
                "auth-signin-redirect-param",
                &[
                    ("auth-url", "http://auth.example.com/check"),
                    ("auth-signin", "https://login.example.com/start"),
                ],
            ),
            ("nbody", "proxy-body-size", &[]),
            ("nproto", "backend-protocol", &[]),
            (
                "nerrs",
                "custom-http-errors",
                &[("default-backend", "good")],
            ),
            ("ndefb", "default-backend", &[("custom-http-errors", "503")]),
            ("naff", "affinity", &[]),
            ("nscname", "session-cookie-name", &[("affinity", "cookie")]),
            (
                "nscage",
                "session-cookie-max-age",
                &[("affinity", "cookie")],
            ),
            ("nscpath", "session-cookie-path", &[("affinity", "cookie")]),
            ("ncanary", "canary", &[]),
            ("ncweight", "canary-weight", &[("canary", "true")]),
            ("nchdr", "canary-by-header", &[("canary", "true")]),
            (
                "nchval",
                "canary-by-header-value",
                &[("canary", "true"), ("canary-by-header", "X-C")],
            ),
            ("ncookie", "canary-by-cookie", &[("canary", "true")]),
            ("ndeny", "denylist-source-range", &[]),
            ("natype", "auth-type", &[("auth-secret", "basic")]),
            ("nasecret", "auth-secret", &[("auth-type", "basic")]),
            (
                "nastype",
                "auth-secret-type",
                &[("auth-type", "basic"), ("auth-secret", "basic")],
            ),
        ] {
            let key = format!("{NGINX}{key}");
            let mut annotations: Vec<(String, &str)> = vec![(key, value)];
            annotations.extend(companions.iter().map(|(k, v)| (format!("{NGINX}{k}"), *v)));
            let pairs: Vec<(&str, &str)> =
                annotations.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            snap.ingresses.push(Arc::new(ing(
                &n(what),
                "k.example.com",
                "/",
                "good",
                &pairs,
            )));
        }
        let mut named = ing("x", "l.example.com", &format!("/l{i}"), "good", &[]);
        named.metadata.name = Some(value.clone());
        snap.ingresses.push(Arc::new(named));
        let mut spaced = svc("x", "ns-victim", &[("berth.dev/host", "m.example.com")]);
        spaced.metadata.namespace = Some(value.clone());
        snap.services.push(Arc::new(spaced));
        hostile_objects += 52;
    }
    assert!(corpus().len() >= 30);

    let config = TranslateConfig {
        service_selector: LabelSelector::parse("app.kubernetes.io/expose=true").unwrap(),
        ..TranslateConfig::default()
    };
    let model = translate::build(&snap, &config);
    let conf = render(&model, &RenderConfig::new("/run/berth", 80, 443).unwrap());

    // The hostile objects contribute nothing: the config equals the one without them.
    let baseline = render(
        &translate::build(&baseline_snap, &config),
        &RenderConfig::new("/run/berth", 80, 443).unwrap(),
    );
    assert_eq!(conf, baseline);
    for value in corpus() {
        assert!(
            !leaked(&conf, &value) || baseline.contains(&value),
            "hostile value reached nginx.conf: {value:?}"
        );
    }
    // Good objects still render.
    assert!(conf.contains("server_name good.example.com;"));
    assert!(conf.contains("server_name ok.example.com;"));
    assert!(conf.contains("location ^~ /ok/"));
    // Every hostile object is rejected with a report naming it; no good object is.
    let rejected: std::collections::BTreeSet<_> =
        model.reports.iter().map(|r| r.object.clone()).collect();
    assert_eq!(rejected.len(), hostile_objects, "{:#?}", model.reports);
    assert!(rejected.iter().all(|o| !o.name.starts_with("good")));
    assert!(
        model
            .reports
            .iter()
            .all(|r| !r.detail.contains('\n') && r.detail.len() < 400)
    );
    assert!(model.reports.iter().any(|r| r.object.kind == Kind::Ingress));
    // Only the validated hosts appear as server names.
    for line in conf
        .lines()
        .filter(|l| l.trim_start().starts_with("server_name "))
    {
        let name = line
            .trim()
            .trim_start_matches("server_name ")
            .trim_end_matches(';');
        assert!(
            name == "_"
                || name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'.'
                    || b == b'-'),
            "{line}"
        );
    }
}
