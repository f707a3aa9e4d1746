//! Leader election and status writes against a mocked API server (tower-test): the fake keeps
//! one Lease with resourceVersion checks (409 on a stale replace) and records every request.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ingress/leases/berth-leader";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ingress/leases";

#[derive(Default)]
struct FakeApi {
    lease: Option<Value>,
    rv: u64,
    /// (method, path) of every request.
    requests: Vec<(Method, String)>,
    patches: Vec<Value>,
    /// Bump the stored resourceVersion before the next PUT (another writer got there first).
    race: bool,
}

type Shared = Arc<Mutex<FakeApi>>;

fn status(code: u16, reason: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(v: &Value) -> Response<Body> {
    Response::builder()
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

async fn serve(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>, state: Shared) {
    while let Some((req, send)) = handle.next_request().await {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let path = parts.uri.path().to_owned();
        let mut st = state.lock().unwrap();
        st.requests.push((parts.method.clone(), path.clone()));
        let resp = match (parts.method.clone(), path.as_str()) {
            (Method::GET, LEASE_PATH) => match &st.lease {
                Some(l) => ok(l),
                None => status(404, "NotFound"),
            },
            (Method::POST, LEASES) if st.lease.is_some() => status(409, "AlreadyExists"),
            (Method::POST, LEASES) | (Method::PUT, LEASE_PATH) => {
                if std::mem::take(&mut st.race) {
                    if let Some(l) = st.lease.as_mut() {
                        l["metadata"]["resourceVersion"] = json!("racer");
                    }
                }
                let mut v: Value = serde_json::from_slice(&bytes).unwrap();
                let sent_rv = v["metadata"]["resourceVersion"].as_str().map(str::to_owned);
                let have_rv = st.lease.as_ref().map(|l| {
                    l["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                });
                if parts.method == Method::PUT && sent_rv != have_rv {
                    status(409, "Conflict")
                } else {
                    st.rv += 1;
                    v["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                    st.lease = Some(v.clone());
                    ok(&v)
                }
            }
            (Method::PATCH, p) if p.ends_with("/status") => {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                st.patches.push(v.clone());
                let name = p.rsplit('/').nth(1).unwrap();
                ok(
                    &json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": name, "namespace": "shop", "resourceVersion": "99"},
                    "status": v["status"]}),
                )
            }
            _ => status(404, "NotFound"),
        };
        drop(st);
        send.send_response(resp);
    }
}

fn fake() -> (Client, Shared) {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let state = Shared::default();
    tokio::spawn(serve(handle, state.clone()));
    (Client::new(mock, "default"), state)
}

fn lease(holder: &str, renewed: Timestamp, transitions: i32) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "berth-leader", "namespace": "ingress", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "renewTime": MicroTime(renewed), "leaseTransitions": transitions}})
}

fn ingress(name: &str, lb: Option<Value>) -> Arc<Ingress> {
    let mut v = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "5"},
        "spec": {"ingressClassName": "berth"}});
    if let Some(lb) = lb {
        v["status"] = json!({"loadBalancer": {"ingress": lb}});
    }
    Arc::new(serde_json::from_value(v).unwrap())
}

fn elector(client: &Client, me: &str) -> Elector {
    Elector::new(client.clone(), "ingress", "berth-leader", me)
}

#[test]
fn decide_follows_the_rules() {
    let now = Timestamp::now();
    let spec = |holder: &str, ago: i64| LeaseSpec {
        holder_identity: Some(holder.into()),
        lease_duration_seconds: Some(15),
        renew_time: Some(MicroTime(now - SignedDuration::from_secs(ago))),
        ..LeaseSpec::default()
    };
    assert_eq!(decide(None, "me", now), Step::Create);
    assert_eq!(decide(Some(&spec("me", 100)), "me", now), Step::Renew);
    assert_eq!(decide(Some(&spec("other", 3)), "me", now), Step::Follow);
    assert_eq!(decide(Some(&spec("other", 16)), "me", now), Step::TakeOver);
    assert_eq!(decide(Some(&spec("", 1)), "me", now), Step::TakeOver);
    assert_eq!(
        decide(Some(&LeaseSpec::default()), "me", now),
        Step::TakeOver
    );
}

#[tokio::test]
async fn lease_acquire_renew_and_takeover_after_expiry() {
    let (client, state) = fake();
    // Acquire: no Lease yet -> created with us as holder.
    assert!(elector(&client, "pod-a").round().await.unwrap());
    let holder =
        |s: &Shared| s.lock().unwrap().lease.as_ref().unwrap()["spec"]["holderIdentity"].clone();
    assert_eq!(holder(&state), "pod-a");
    // Renew: still ours, resourceVersion advances.
    assert!(elector(&client, "pod-a").round().await.unwrap());
    assert_eq!(state.lock().unwrap().rv, 2);
    // Another replica follows while the lease is fresh, and writes nothing.
    let before = state.lock().unwrap().requests.len();
    assert!(!elector(&client, "pod-b").round().await.unwrap());
    let reqs = state.lock().unwrap().requests[before..].to_vec();
    assert_eq!(reqs, [(Method::GET, LEASE_PATH.to_owned())]);
    // Expired: pod-b takes over, transitions + 1.
    state.lock().unwrap().lease = Some(lease(
        "pod-a",
        Timestamp::now() - SignedDuration::from_secs(60),
        0,
    ));
    assert!(elector(&client, "pod-b").round().await.unwrap());
    let l = state.lock().unwrap().lease.clone().unwrap();
    assert_eq!(l["spec"]["holderIdentity"], "pod-b");
    assert_eq!(l["spec"]["leaseTransitions"], 1);
    // The old holder, back from a pause, now follows.
    assert!(!elector(&client, "pod-a").round().await.unwrap());
}

#[tokio::test]
async fn losing_a_race_for_the_lease_means_follow() {
    let (client, state) = fake();
    let old = Timestamp::now() - SignedDuration::from_secs(60);
    state.lock().unwrap().lease = Some(lease("gone", old, 3));
    // Another replica replaces the Lease between our GET and our PUT: 409 -> follow.
    state.lock().unwrap().race = true;
    assert!(!elector(&client, "pod-a").round().await.unwrap());
    let l = state.lock().unwrap().lease.clone().unwrap();
    assert_eq!(l["spec"]["holderIdentity"], "gone");
}

#[tokio::test]
async fn only_the_leader_writes_status_and_only_once() {
    let (client, state) = fake();
    let publish = Publish::Addresses(vec!["192.0.2.10".into(), "lb.example.com".into()]);
    let mut writer = StatusWriter::new(client.clone(), publish);
    let leader = elector(&client, "pod-a");
    assert!(leader.round().await.unwrap());

    let fresh = vec![ingress("web", None), ingress("api", None)];
    assert_eq!(writer.sync(&fresh).await.unwrap(), 2);
    let patches = state.lock().unwrap().patches.clone();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[0],
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"hostname": "lb.example.com"}]}}})
    );
    let paths: Vec<String> = state
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| r.1.clone())
        .collect();
    assert!(
        paths.contains(
            &"/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status".to_owned()
        )
    );

    // Same value again: the store still shows the old objects (lag) -> no request.
    let before = state.lock().unwrap().requests.len();
    assert_eq!(writer.sync(&fresh).await.unwrap(), 0);
    // And once the store has our status -> still no request.
    let lb = json!([{"ip": "192.0.2.10"}, {"hostname": "lb.example.com"}]);
    let updated = vec![ingress("web", Some(lb.clone())), ingress("api", Some(lb))];
    assert_eq!(writer.sync(&updated).await.unwrap(), 0);
    assert_eq!(state.lock().unwrap().requests.len(), before);

    // Someone overwrote it (a new resourceVersion): written again.
    let mut other = (*ingress("web", Some(json!([{"ip": "203.0.113.1"}])))).clone();
    other.metadata.resource_version = Some("12".into());
    let tampered = vec![Arc::new(other)];
    assert_eq!(writer.sync(&tampered).await.unwrap(), 1);
}

#[tokio::test]
async fn a_follower_makes_no_status_writes() {
    let (client, state) = fake();
    state.lock().unwrap().lease = Some(lease("pod-a", Timestamp::now(), 0));
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    let writer = StatusWriter::new(
        client.clone(),
        Publish::Addresses(vec!["192.0.2.10".into()]),
    );
    let task = tokio::spawn(run(
        elector(&client, "pod-b"),
        writer,
        || vec![ingress("web", None)],
        rx,
        std::future::pending(),
    ));
    for _ in 0..3 {
        tx.send_modify(|n| *n += 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let st = state.lock().unwrap();
    assert!(st.patches.is_empty());
    assert!(
        st.requests
            .iter()
            .all(|(m, p)| *m == Method::GET && p == LEASE_PATH),
        "{:?}",
        st.requests
    );
    assert!(st.requests.len() >= 2);
}

#[test]
fn service_addresses_prefer_load_balancer() {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "spec": {"clusterIP": "10.0.0.5", "externalIPs": ["198.51.100.1"]},
        "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}
    }))
    .unwrap();
    assert_eq!(service_addresses(&svc), ["lb.example.com"]);
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.5"}}),
    )
    .unwrap();
    assert_eq!(service_addresses(&svc), ["10.0.0.5"]);
}
