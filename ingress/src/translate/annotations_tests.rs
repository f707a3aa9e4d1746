//! Unit tests of `annotations.rs`: every annotation parses, both spellings, refusals.

use super::*;
use crate::model::{BackendProtocol, Kind};

fn parse(pairs: &[(&str, &str)]) -> Result<RouteOptions, Report> {
    let map = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let secrets = Secrets::new([]);
    route_options(
        &ObjectRef::new(Kind::Ingress, "ns", "i"),
        Some(&map),
        &[],
        &secrets,
    )
    .map(|(o, _)| o)
}

#[test]
fn parses_every_annotation() {
    let o = parse(&[
        (REWRITE_TARGET, "/api/"),
        (SSL_REDIRECT, "false"),
        (PROXY_BODY_SIZE, "1K"),
        (PROXY_READ_TIMEOUT, "30"),
        (PROXY_CONNECT_TIMEOUT, "5s"),
        (BACKEND_PROTOCOL, "HTTPS"),
        (ALLOW_SOURCE_RANGE, "10.0.0.0/8"),
        ("other.io/x", "anything; goes"),
    ])
    .unwrap();
    assert_eq!(o.rewrite_target.as_deref(), Some("/api"));
    assert!(!o.ssl_redirect);
    assert_eq!(o.proxy_body_size.as_deref(), Some("1k"));
    assert_eq!(
        (o.proxy_read_timeout, o.proxy_connect_timeout),
        (Some(30), Some(5))
    );
    assert_eq!(o.backend_protocol, BackendProtocol::Https);
    assert_eq!(o.allow_source_ranges.len(), 1);
    assert_eq!(parse(&[]).unwrap(), RouteOptions::default());
}

fn with_secret(pairs: &[(&str, &str)], auth: &str) -> Result<RouteOptions, Report> {
    let map = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("basic".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        string_data: Some([("auth".to_owned(), auth.to_owned())].into()),
        ..Default::default()
    };
    let secrets = Secrets::new([&secret]);
    let origin = ObjectRef::new(Kind::Ingress, "ns", "i");
    route_options(&origin, Some(&map), &[], &secrets).map(|(o, _)| o)
}

#[test]
fn basic_auth_both_spellings_and_every_refusal() {
    const GOOD: &str = "alice:$apr1$abcdefgh$abcdefghijklmnopqrstuv\n";
    let n = |k: &str| format!("{NGINX_PREFIX}{k}");
    let (ty, secret, realm) = (n("auth-type"), n("auth-secret"), n("auth-realm"));
    let o = with_secret(&[(&ty, "basic"), (&secret, "basic")], GOOD).unwrap();
    let a = o.basic_auth.unwrap();
    assert_eq!(a.realm, auth::DEFAULT_REALM);
    assert!(a.file.id.starts_with("ns_basic_"));
    let berth = with_secret(
        &[
            (AUTH_TYPE, "basic"),
            (AUTH_SECRET, "ns/basic"),
            (AUTH_REALM, "Staff"),
            (AUTH_SECRET_TYPE, "auth-file"),
        ],
        GOOD,
    )
    .unwrap();
    assert_eq!(berth.basic_auth.unwrap().realm, "Staff");
    for (pairs, auth_text, says) in [
        (
            vec![(ty.as_str(), "basic"), (&secret, "missing")],
            GOOD,
            "not found",
        ),
        (vec![(&ty, "basic")], GOOD, "needs auth-secret"),
        (vec![(&realm, "Staff")], GOOD, "needs auth-type"),
        (vec![(&secret, "basic")], GOOD, "needs auth-type"),
        (
            vec![(&ty, "digest"), (&secret, "basic")],
            GOOD,
            "only auth-type basic",
        ),
        (
            vec![(&ty, "basic"), (&secret, "other/basic")],
            GOOD,
            "namespace",
        ),
        (
            vec![(&ty, "basic"), (&secret, "basic"), (&realm, "a\"; evil")],
            GOOD,
            "realm",
        ),
        (
            vec![
                (&ty, "basic"),
                (&secret, "basic"),
                (&n("auth-secret-type"), "auth-map"),
            ],
            GOOD,
            "auth-file",
        ),
        (
            vec![(&ty, "basic"), (&secret, "basic")],
            "alice:{PLAIN}hunter2-marker\n",
            "line 1",
        ),
    ] {
        let r = with_secret(&pairs, auth_text).unwrap_err();
        assert_eq!(r.reason, Reason::InvalidAnnotation, "{r}");
        assert!(r.detail.contains(says), "{says}: {r}");
        assert!(
            !r.to_string().contains("hunter2") && !r.to_string().contains("apr1"),
            "{r}"
        );
    }
    let o = parse(&[(&n("denylist-source-range"), "10.0.0.0/8,127.0.0.1")]).unwrap();
    assert_eq!(o.deny_source_ranges.len(), 2);
}

#[test]
fn redirects_parse_and_conflicts_refuse() {
    let o = parse(&[
        (PERMANENT_REDIRECT, "https://a.example.com/x"),
        (PERMANENT_REDIRECT_CODE, "308"),
        (APP_ROOT, "/app"),
        (FORCE_SSL_REDIRECT, "true"),
        (UPSTREAM_VHOST, "b.internal"),
    ])
    .unwrap();
    assert_eq!(o.redirect, Some((308, "https://a.example.com/x".into())));
    assert!(o.force_ssl_redirect && o.app_root.as_deref() == Some("/app"));
    assert_eq!(
        parse(&[(TEMPORAL_REDIRECT, "http://a/")]).unwrap().redirect,
        Some((302, "http://a/".into()))
    );
    for pairs in [
        vec![
            (PERMANENT_REDIRECT, "http://a/"),
            (TEMPORAL_REDIRECT, "http://b/"),
        ],
        vec![(PERMANENT_REDIRECT_CODE, "301")],
        vec![(UPSTREAM_VHOST, "a"), (BACKEND_PROTOCOL, "GRPC")],
        vec![(APP_ROOT, "app")],
    ] {
        let r = parse(&pairs).unwrap_err();
        assert_eq!(r.reason, Reason::InvalidAnnotation, "{pairs:?}");
    }
}

#[test]
fn nginx_keys_refused_by_full_name_in_any_case_and_hostile_keys_escaped() {
    let long = "nginx.ingress.kubernetes.io/modsecurity-snippet";
    for (key, named) in [
        (long, long),
        (
            "NGINX.ingress.kubernetes.io/Server-Snippet",
            "Server-Snippet",
        ),
        ("nginx.ingress.kubernetes.io/x\n}evil", "x\\n}evil"),
    ] {
        let r = parse(&[(key, "x")]).unwrap_err();
        assert_eq!(r.reason, Reason::UnsupportedAnnotation, "{key}");
        assert!(r.field.contains(named), "{r}");
        assert!(!r.detail.contains('\n') && !r.field.contains('\n'), "{r}");
    }
}

#[test]
fn rejects_unknown_invalid_and_grpc_rewrite() {
    for pairs in [
        vec![("berth.dev/configuration-snippet", "return 200;")],
        vec![(PROXY_BODY_SIZE, "1m; evil")],
        vec![(ALLOW_SOURCE_RANGE, "0.0.0.0/0 }")],
        vec![(BACKEND_PROTOCOL, "GRPC"), (REWRITE_TARGET, "/")],
    ] {
        let r = parse(&pairs).unwrap_err();
        assert_eq!(r.reason, Reason::InvalidAnnotation, "{pairs:?}");
        assert!(!r.detail.contains("evil }"), "{r}");
    }
}

#[test]
fn rewrite_target_capture_groups_are_refused_with_the_reason() {
    for v in ["/$1", "/api/$2", "$1"] {
        let r = parse(&[(&format!("{NGINX_PREFIX}rewrite-target"), v)]).unwrap_err();
        assert_eq!(r.reason, Reason::InvalidAnnotation, "{r}");
        assert!(r.detail.contains("use-regex"), "{r}");
    }
}
