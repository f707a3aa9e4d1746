//! [`plan`] and [`merge_parents`]: only changes are written, other controllers' parent
//! entries are kept, transition times survive an unchanged status, server-side defaults do
//! not cause rewrites.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::json;

use super::*;
use crate::gateway::{GatewayClassStatus, RouteStatus};

const OURS: &str = "berth.dev/gateway";

fn time(s: &str) -> Time {
    Time(s.parse().unwrap())
}

fn cond(type_: &str, ok: bool, reason: &str, generation: i64, at: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: Some(generation),
        last_transition_time: time(at),
    }
}

fn parent(name: &str, controller: &str, conditions: Vec<Condition>) -> RouteParentStatus {
    RouteParentStatus {
        parent_ref: ParentReference {
            name: name.into(),
            ..ParentReference::default()
        },
        controller_name: controller.into(),
        conditions,
    }
}

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-06-01T00:00:00Z";

fn route(parents: &[RouteParentStatus]) -> HTTPRoute {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "default", "resourceVersion": "7", "generation": 1},
        "spec": {"parentRefs": [{"name": "gw"}]},
        "status": {"parents": parents}
    }))
    .unwrap()
}

fn want_route(parents: Vec<RouteParentStatus>) -> GatewayStatuses {
    let mut want = GatewayStatuses::default();
    want.http_routes
        .insert(("default".into(), "r".into()), RouteStatus { parents });
    want
}

fn snapshot_with(r: HTTPRoute) -> Snapshot {
    Snapshot {
        http_routes: vec![Arc::new(r)],
        ..Snapshot::default()
    }
}

#[test]
fn other_controllers_entries_are_kept_and_ours_replaced() {
    let theirs = parent("their-gw", "example.com/other", vec![]);
    let old_ours = parent(
        "gw",
        OURS,
        vec![cond("Accepted", false, "NotAllowedByListeners", 1, T0)],
    );
    let new_ours = parent("gw", OURS, vec![cond("Accepted", true, "Accepted", 1, T1)]);
    let merged = merge_parents(&[theirs.clone(), old_ours], &[new_ours], OURS);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0], theirs);
    assert_eq!(merged[1].conditions[0].reason, "Accepted");
    // The status changed: the new time.
    assert_eq!(merged[1].conditions[0].last_transition_time, time(T1));
    // Defaults filled in as the server would.
    assert_eq!(merged[1].parent_ref.group.as_deref(), Some(GROUP));
    assert_eq!(merged[1].parent_ref.kind.as_deref(), Some("Gateway"));
}

#[test]
fn an_unchanged_route_status_is_not_written_again() {
    // What the server stores after our write: defaults filled, our earlier time.
    let stored = merge_parents(
        &[],
        &[parent(
            "gw",
            OURS,
            vec![cond("Accepted", true, "Accepted", 1, T0)],
        )],
        OURS,
    );
    let snap = snapshot_with(route(&stored));
    // Recomputed later: same conditions, a later `now`.
    let want = want_route(vec![parent(
        "gw",
        OURS,
        vec![cond("Accepted", true, "Accepted", 1, T1)],
    )]);
    assert_eq!(plan(&snap, want, OURS), []);
    // A new generation is a change.
    let want = want_route(vec![parent(
        "gw",
        OURS,
        vec![cond("Accepted", true, "Accepted", 2, T1)],
    )]);
    let writes = plan(&snap, want, OURS);
    assert_eq!(writes.len(), 1);
    let w = &writes[0];
    assert_eq!(w.kind, StatusKind::HTTPRoute);
    assert_eq!(w.resource_version.as_deref(), Some("7"));
    assert_eq!(w.patch()["metadata"]["resourceVersion"], "7");
    let c = &w.status["parents"][0]["conditions"][0];
    assert_eq!(c["observedGeneration"], 2);
    assert_eq!(c["lastTransitionTime"], T0, "status unchanged: time kept");
}

#[test]
fn our_entry_goes_when_the_route_leaves_our_gateways() {
    let theirs = parent("their-gw", "example.com/other", vec![]);
    let ours = parent("gw", OURS, vec![cond("Accepted", true, "Accepted", 1, T0)]);
    let snap = snapshot_with(route(&[theirs.clone(), ours]));
    let writes = plan(&snap, GatewayStatuses::default(), OURS);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].status, json!({"parents": [theirs]}));
    // Nothing of ours there: nothing to write.
    let snap = snapshot_with(route(std::slice::from_ref(&theirs)));
    assert_eq!(plan(&snap, GatewayStatuses::default(), OURS), []);
}

#[test]
fn gateway_class_written_once_per_change() {
    let class: GatewayClass = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "berth", "resourceVersion": "3", "generation": 1},
        "spec": {"controllerName": OURS},
        "status": {"conditions": [{"type": "Accepted", "status": "Unknown", "reason": "Pending",
            "message": "Waiting for controller", "lastTransitionTime": "1970-01-01T00:00:00Z"}]}
    }))
    .unwrap();
    let mut snap = Snapshot {
        gateway_classes: vec![Arc::new(class.clone())],
        ..Snapshot::default()
    };
    let mut want = GatewayStatuses::default();
    want.classes.insert(
        "berth".into(),
        GatewayClassStatus {
            conditions: vec![cond("Accepted", true, "Accepted", 1, T1)],
        },
    );
    let writes = plan(&snap, want.clone(), OURS);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].namespace, None);
    assert_eq!(writes[0].status["conditions"][0]["status"], "True");
    // Once stored, the same result at a later time writes nothing.
    let mut stored = class;
    stored.status = Some(serde_json::from_value(writes[0].status.clone()).unwrap());
    snap.gateway_classes = vec![Arc::new(stored)];
    want.classes.get_mut("berth").unwrap().conditions[0].last_transition_time =
        time("2027-01-01T00:00:00Z");
    assert_eq!(plan(&snap, want, OURS), []);
}

#[test]
fn published_addresses_become_typed_gateway_addresses() {
    let a = addresses(&[
        "192.0.2.1".into(),
        "2001:db8::1".into(),
        "lb.example.com".into(),
    ]);
    let types: Vec<_> = a.iter().map(|a| a.type_.as_deref().unwrap()).collect();
    assert_eq!(types, ["IPAddress", "IPAddress", "Hostname"]);
    assert_eq!(a[2].value, "lb.example.com");
}

/// A status round recomputes only when the snapshot's objects, the served set or the
/// addresses changed; a reused result carries the round's time.
#[test]
fn statuses_are_computed_again_only_when_an_input_changed() {
    let manifests = format!(
        "{}{}",
        crate::gateway::status_tests::BASE,
        crate::gateway::status_tests::route(
            "gw",
            "a",
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]"
        )
    );
    let snap = crate::gateway::status_tests::snapshot(&manifests);
    let config = TranslateConfig::default();
    let serving = Arc::new(crate::gateway::status_tests::all_served(&snap));
    let addr = addresses(&["192.0.2.1".to_owned()]);
    let mut cache = StatusCache::default();
    let first = cache.want(
        &snap,
        &config,
        &serving,
        addr.clone(),
        &time("2026-01-01T00:00:00Z"),
    );
    assert_eq!(cache.computed, 1);
    // The same objects (another snapshot of the same store, in another order): reused, with
    // the round's time.
    let mut again = snap.clone();
    again.services.reverse();
    let later = time("2026-01-01T00:00:05Z");
    let reused = cache.want(&again, &config, &serving, addr.clone(), &later);
    assert_eq!(cache.computed, 1, "nothing changed: not computed again");
    let mut expected = first.clone();
    restamp(&mut expected, &later);
    assert_eq!(reused, expected);
    // An equal served set in a new Arc: reused too.
    let copy = Arc::new((*serving).clone());
    cache.want(&snap, &config, &copy, addr.clone(), &later);
    assert_eq!(cache.computed, 1);
    // A changed object (a new allocation, as the store holds after an event): computed.
    let mut changed = snap.clone();
    changed.http_routes[0] = Arc::new((*changed.http_routes[0]).clone());
    cache.want(&changed, &config, &serving, addr.clone(), &later);
    assert_eq!(cache.computed, 2);
    // Another served set: computed, and it shows (the route is no longer served).
    let mut unserved = (*serving).clone();
    unserved.origins.clear();
    let s = cache.want(&changed, &config, &Arc::new(unserved), addr.clone(), &later);
    assert_eq!(cache.computed, 3);
    let a = &s.http_routes[&("gw".to_owned(), "a".to_owned())].parents[0].conditions[0];
    assert_eq!((a.status.as_str(), a.reason.as_str()), ("False", "Pending"));
    // Other addresses: computed.
    cache.want(
        &changed,
        &config,
        &serving,
        addresses(&["192.0.2.2".into()]),
        &later,
    );
    assert_eq!(cache.computed, 4);
}

mod writer {
    //! [`GatewayStatusWriter`] against a mocked API server (tower-test): the patch carries the
    //! resourceVersion it was computed from; no second write while the store shows the version
    //! written from or the one the write produced; a 409 is skipped, not an error.

    use http::{Request, Response};
    use kube::client::Body;
    use tokio::sync::watch;

    use super::*;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    /// Answers status patches of GatewayClass `berth`: 409 when `conflict` is set, else the
    /// object at resourceVersion "4". Records each patch body.
    async fn api_server(
        mut handle: Handle,
        conflict: watch::Receiver<bool>,
        bodies: watch::Sender<Vec<Value>>,
    ) {
        while let Some((req, send)) = handle.next_request().await {
            assert_eq!(req.method(), http::Method::PATCH);
            assert_eq!(
                req.uri().path(),
                "/apis/gateway.networking.k8s.io/v1/gatewayclasses/berth/status"
            );
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            bodies.send_modify(|b| b.push(body.clone()));
            let resp = if *conflict.borrow() {
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "the object has been modified", "reason": "Conflict", "code": 409});
                Response::builder()
                    .status(409)
                    .body(Body::from(serde_json::to_vec(&status).unwrap()))
                    .unwrap()
            } else {
                let obj = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                    "metadata": {"name": "berth", "resourceVersion": "4", "generation": 1},
                    "spec": {"controllerName": OURS}, "status": body["status"]});
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&obj).unwrap()))
                    .unwrap()
            };
            send.send_response(resp);
        }
    }

    fn class(rv: &str, status: Value) -> Snapshot {
        let class: GatewayClass = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "berth", "resourceVersion": rv, "generation": 1},
            "spec": {"controllerName": OURS}, "status": status}))
        .unwrap();
        Snapshot {
            gateway_classes: vec![Arc::new(class)],
            ..Snapshot::default()
        }
    }

    #[tokio::test]
    async fn writes_once_with_a_precondition_and_skips_conflicts() {
        let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(mock, "default");
        let (conflict_tx, conflict) = watch::channel(false);
        let (bodies_tx, bodies) = watch::channel(Vec::new());
        tokio::spawn(api_server(handle, conflict, bodies_tx));
        let mut w = GatewayStatusWriter::new(client, crate::translate::TranslateConfig::default());
        let pending = json!({"conditions": [{"type": "Accepted", "status": "Unknown",
            "reason": "Pending", "message": "Waiting for controller",
            "lastTransitionTime": "1970-01-01T00:00:00Z"}]});
        let published = ["192.0.2.1".to_owned()];
        assert_eq!(
            w.sync(
                &class("3", pending.clone()),
                &Default::default(),
                &published
            )
            .await
            .unwrap(),
            1
        );
        let first = bodies.borrow()[0].clone();
        assert_eq!(first["metadata"]["resourceVersion"], "3");
        assert_eq!(first["status"]["conditions"][0]["status"], "True");
        // The store still shows "3", then shows our write ("4"): no second write.
        assert_eq!(
            w.sync(
                &class("3", pending.clone()),
                &Default::default(),
                &published
            )
            .await
            .unwrap(),
            0
        );
        let stored = first["status"].clone();
        assert_eq!(
            w.sync(&class("4", stored), &Default::default(), &published)
                .await
                .unwrap(),
            0
        );
        assert_eq!(bodies.borrow().len(), 1);
        // Someone else changed it meanwhile: our write loses (409), no error, tried again later.
        conflict_tx.send_replace(true);
        assert_eq!(
            w.sync(&class("5", pending), &Default::default(), &published)
                .await
                .unwrap(),
            0
        );
        assert_eq!(bodies.borrow().len(), 2);
    }
}
