//! The statuses follow what the live nginx config serves ([`Serving`]): a route or listener
//! nginx has not taken (no config yet, not reloaded yet, refused and isolated) is not said to
//! be `Accepted` or `Programmed`.

use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::status_tests::{all_served, conds, route, snapshot, with_serving};
use super::*;
use crate::model::{Kind, ObjectRef};
use crate::serving::Serving;
use crate::snapshot::Snapshot;

/// A Gateway `tls` (namespace `gw`) with an HTTP listener and an HTTPS listener for
/// `secure.test` whose Secret `cert` is valid; route `plain` on the first, `secure` on the
/// second.
fn gateway_with_tls() -> Snapshot {
    let manifests = format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: berth}}
spec: {{controllerName: berth.dev/gateway}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: tls, namespace: gw, generation: 1}}
spec:
  gatewayClassName: berth
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: secure.test
    tls: {{certificateRefs: [{{name: cert}}]}}
---
{{apiVersion: v1, kind: Service, metadata: {{name: web, namespace: gw}}, spec: {{clusterIP: 10.0.0.1, ports: [{{port: 80}}]}}}}
{}{}"#,
        route(
            "gw",
            "plain",
            "  parentRefs: [{name: tls, sectionName: http}]\n  hostnames: [a.test]\n  rules: [{backendRefs: [{name: web, port: 80}]}]"
        ),
        route(
            "gw",
            "secure",
            "  parentRefs: [{name: tls, sectionName: https}]\n  hostnames: [secure.test]\n  rules: [{backendRefs: [{name: web, port: 80}]}]"
        ),
    );
    let mut snap = snapshot(&manifests);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["secure.test".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let data = [
        ("tls.crt", cert.pem().into_bytes()),
        ("tls.key", key.serialize_pem().into_bytes()),
    ];
    snap.secrets.push(Arc::new(Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("cert".into()),
            namespace: Some("gw".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v)))
                .collect(),
        ),
        ..Default::default()
    }));
    snap
}

fn route_ref(name: &str) -> ObjectRef {
    ObjectRef::new(Kind::HTTPRoute, "gw", name)
}

fn gateway_ref() -> ObjectRef {
    ObjectRef::new(Kind::Gateway, "gw", "tls")
}

/// (status, reason, message) of `type_` in `conditions`.
fn find(conditions: &[Condition], type_: &str) -> (String, String, String) {
    let c = conditions.iter().find(|c| c.type_ == type_).expect(type_);
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn accepted(s: &GatewayStatuses, name: &str) -> (String, String, String) {
    let r = &s.http_routes[&("gw".to_owned(), name.to_owned())];
    find(&r.parents[0].conditions, "Accepted")
}

/// (Gateway Programmed, [listener Programmed]).
type Programmed = ((String, String, String), Vec<(String, String, String)>);

fn programmed(s: &GatewayStatuses) -> Programmed {
    let g = &s.gateways[&("gw".to_owned(), "tls".to_owned())];
    let listeners = g.listeners.iter();
    (
        find(&g.conditions, "Programmed"),
        listeners
            .map(|l| find(&l.conditions, "Programmed"))
            .collect(),
    )
}

fn short(c: &(String, String, String)) -> (&str, &str) {
    (c.0.as_str(), c.1.as_str())
}

#[test]
fn a_route_the_live_config_does_not_serve_is_not_accepted() {
    let snap = gateway_with_tls();
    let all = all_served(&snap);
    assert!(all.serves(&route_ref("plain")) && all.serves(&gateway_ref()));
    // Everything live: accepted and programmed.
    let s = with_serving(&snap, &all);
    assert_eq!(short(&accepted(&s, "plain")), ("True", "Accepted"));
    assert_eq!(short(&accepted(&s, "secure")), ("True", "Accepted"));
    let (gw, ls) = programmed(&s);
    assert_eq!(short(&gw), ("True", "Programmed"), "{gw:?}");
    assert!(
        ls.iter().all(|l| short(l) == ("True", "Programmed")),
        "{ls:?}"
    );

    // `plain` not in the live config (not reloaded yet): Pending, not Accepted.
    let mut live = all.clone();
    live.origins.remove(&route_ref("plain"));
    let s = with_serving(&snap, &live);
    let a = accepted(&s, "plain");
    assert_eq!(short(&a), ("False", "Pending"), "{a:?}");
    assert!(a.2.contains("not in the live nginx config"), "{a:?}");
    assert_eq!(short(&accepted(&s, "secure")), ("True", "Accepted"));
    assert_eq!(
        conds(&s, "gw", "plain")
            .iter()
            .find(|c| c.0 == "ResolvedRefs")
            .map(|c| c.1.as_str()),
        Some("True"),
        "ResolvedRefs is about the references, not the config"
    );

    // nginx refused it and isolation dropped it: NginxRejected with nginx's message.
    let why = "nginx -t refused a config containing it: [emerg] something in it";
    live.refused.insert(route_ref("plain"), why.into());
    let a = accepted(&with_serving(&snap, &live), "plain");
    assert_eq!(short(&a), ("False", "NginxRejected"), "{a:?}");
    assert!(
        a.2.contains("nginx -t refused") && a.2.contains("[emerg]"),
        "{a:?}"
    );

    // No config applied yet: nothing accepted, nothing programmed, all Pending.
    let s = with_serving(&snap, &Serving::default());
    for name in ["plain", "secure"] {
        assert_eq!(short(&accepted(&s, name)), ("False", "Pending"), "{name}");
    }
    let (gw, ls) = programmed(&s);
    assert_eq!(short(&gw), ("False", "Pending"), "{gw:?}");
    assert!(
        ls.iter().all(|l| short(l) == ("False", "Pending")),
        "{ls:?}"
    );
}

#[test]
fn a_refused_https_listener_certificate_is_not_programmed() {
    let snap = gateway_with_tls();
    // Isolation dropped the Gateway's certificate (its origin is the Gateway), and with it
    // the HTTPS server and the route served only there.
    let mut live = all_served(&snap);
    live.origins.remove(&gateway_ref());
    live.origins.remove(&route_ref("secure"));
    let why = "nginx -t refused a config containing it: [emerg] SSL_CTX_use_certificate failed";
    live.refused.insert(gateway_ref(), why.into());
    let s = with_serving(&snap, &live);
    let (gw, ls) = programmed(&s);
    assert_eq!(
        short(&ls[0]),
        ("True", "Programmed"),
        "the HTTP listener: {ls:?}"
    );
    assert_eq!(
        short(&ls[1]),
        ("False", "Invalid"),
        "the HTTPS listener: {ls:?}"
    );
    assert!(ls[1].2.contains("SSL_CTX_use_certificate"), "{ls:?}");
    assert_eq!(short(&gw), ("False", "Invalid"), "{gw:?}");
    assert!(gw.2.contains("nginx -t refused"), "{gw:?}");
    let a = accepted(&s, "secure");
    assert_eq!(short(&a), ("False", "NginxRejected"), "{a:?}");
    assert!(
        a.2.contains("Gateway/gw/tls") && a.2.contains("SSL_CTX"),
        "{a:?}"
    );
    assert_eq!(short(&accepted(&s, "plain")), ("True", "Accepted"));

    // Isolation blamed the route rather than the Gateway (bisection finds the last object a
    // failing prefix needs: the route sorts after its Gateway): the same for the listener.
    let mut live = all_served(&snap);
    live.origins.remove(&gateway_ref());
    live.origins.remove(&route_ref("secure"));
    live.refused.insert(route_ref("secure"), why.into());
    let s = with_serving(&snap, &live);
    let (gw, ls) = programmed(&s);
    assert_eq!(short(&ls[1]), ("False", "Invalid"), "{ls:?}");
    assert!(
        ls[1].2.contains("HTTPRoute/gw/secure") && ls[1].2.contains("SSL_CTX"),
        "{ls:?}"
    );
    assert_eq!(short(&gw), ("False", "Invalid"), "{gw:?}");
    assert_eq!(short(&ls[0]), ("True", "Programmed"), "{ls:?}");
    let a = accepted(&s, "secure");
    assert_eq!(short(&a), ("False", "NginxRejected"), "{a:?}");

    // The certificate not live yet (not refused): the HTTPS listener is Pending.
    let mut live = all_served(&snap);
    live.origins.remove(&gateway_ref());
    let (_, ls) = programmed(&with_serving(&snap, &live));
    assert_eq!(short(&ls[1]), ("False", "Pending"), "{ls:?}");
}

/// `Conflicted`: two accepted listeners on one port with another protocol, or with the same
/// protocol and hostname; distinct hostnames (or ports) do not conflict, nor does a listener
/// that is not accepted.
#[test]
fn listeners_on_one_port_conflict_by_protocol_or_hostname() {
    let snap = snapshot(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: berth}
spec: {controllerName: berth.dev/gateway}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: c, namespace: gw, generation: 1}
spec:
  gatewayClassName: berth
  listeners:
  - {name: a, port: 80, protocol: HTTP, hostname: a.test}
  - {name: a-again, port: 80, protocol: HTTP, hostname: a.test}
  - {name: b, port: 80, protocol: HTTP, hostname: b.test}
  - {name: any, port: 8080, protocol: HTTP}
  - {name: tls, port: 8080, protocol: HTTPS, tls: {certificateRefs: [{name: missing}]}}
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: other, port: 9000, protocol: HTTP}
"#,
    );
    let s = with_serving(&snap, &all_served(&snap));
    let g = &s.gateways[&("gw".to_owned(), "c".to_owned())];
    let got: Vec<(&str, &str, &str)> = g
        .listeners
        .iter()
        .map(|l| {
            let c = l.conditions.iter().find(|c| c.type_ == "Conflicted");
            let c = c.expect("Conflicted");
            (l.name.as_str(), c.status.as_str(), c.reason.as_str())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a", "True", "HostnameConflict"),
            ("a-again", "True", "HostnameConflict"),
            ("b", "False", "NoConflicts"),
            ("any", "True", "ProtocolConflict"),
            ("tls", "True", "ProtocolConflict"),
            ("tcp", "False", "NoConflicts"),
            ("other", "False", "NoConflicts"),
        ]
    );
    let any = &g.listeners[3].conditions;
    let m = &any
        .iter()
        .find(|c| c.type_ == "Conflicted")
        .unwrap()
        .message;
    assert!(m.contains("tls") && m.contains("8080"), "{m}");
}
