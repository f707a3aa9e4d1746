//! Leader election and status writes against a mocked API server (tower-test): the fake keeps
//! one Lease with resourceVersion checks (409 on a stale replace) and records every request.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response};
use k8s_openapi::jiff::SignedDuration;
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
                if std::mem::take(&mut st.race)
                    && let Some(l) = st.lease.as_mut()
                {
                    l["metadata"]["resourceVersion"] = json!("racer");
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
    let spec = |holder: &str| LeaseSpec {
        holder_identity: Some(holder.into()),
        lease_duration_seconds: Some(15),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..LeaseSpec::default()
    };
    let secs = Duration::from_secs;
    assert_eq!(decide(None, "me", secs(0)), Step::Create);
    assert_eq!(decide(Some(&spec("me")), "me", secs(100)), Step::Renew);
    assert_eq!(decide(Some(&spec("other")), "me", secs(3)), Step::Follow);
    assert_eq!(decide(Some(&spec("other")), "me", secs(15)), Step::Follow);
    assert_eq!(decide(Some(&spec("other")), "me", secs(16)), Step::TakeOver);
    assert_eq!(decide(Some(&spec("")), "me", secs(0)), Step::TakeOver);
    assert_eq!(
        decide(Some(&LeaseSpec::default()), "me", secs(0)),
        Step::TakeOver
    );
}

#[tokio::test(start_paused = true)]
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
    let b = elector(&client, "pod-b");
    assert!(!b.round().await.unwrap());
    let reqs = state.lock().unwrap().requests[before..].to_vec();
    assert_eq!(reqs, [(Method::GET, LEASE_PATH.to_owned())]);
    // Expired: unchanged for longer than its duration (our clock): pod-b takes over,
    // transitions + 1.
    state.lock().unwrap().lease = Some(lease(
        "pod-a",
        Timestamp::now() - SignedDuration::from_secs(60),
        0,
    ));
    assert!(!b.round().await.unwrap());
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert!(b.round().await.unwrap());
    let l = state.lock().unwrap().lease.clone().unwrap();
    assert_eq!(l["spec"]["holderIdentity"], "pod-b");
    assert_eq!(l["spec"]["leaseTransitions"], 1);
    // The old holder, back from a pause, now follows.
    assert!(!elector(&client, "pod-a").round().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn losing_a_race_for_the_lease_means_follow() {
    let (client, state) = fake();
    let old = Timestamp::now() - SignedDuration::from_secs(60);
    state.lock().unwrap().lease = Some(lease("gone", old, 3));
    let a = elector(&client, "pod-a");
    assert!(!a.round().await.unwrap());
    tokio::time::sleep(Duration::from_secs(16)).await;
    // Another replica replaces the Lease between our GET and our PUT: 409 -> follow.
    state.lock().unwrap().race = true;
    assert!(!a.round().await.unwrap());
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
        futures::stream::pending(),
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
    assert!(!st.requests.is_empty());
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

fn lease_requests(state: &Shared) -> Vec<(Method, String)> {
    state
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(_, p)| p.starts_with(LEASES))
        .cloned()
        .collect()
}

/// Issue 12 item 5: 20 unrelated changes cost the leader no Lease request, and a follower
/// none either: the Lease is read and written on a timer only.
#[tokio::test(start_paused = true)]
async fn lease_requests_are_on_a_timer_not_per_change() {
    for (holder, me) in [(None, "pod-a"), (Some("pod-a"), "pod-b")] {
        let (client, state) = fake();
        if let Some(h) = holder {
            state.lock().unwrap().lease = Some(lease(h, Timestamp::now(), 0));
        }
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let writer = StatusWriter::new(
            client.clone(),
            Publish::Addresses(vec!["192.0.2.10".into()]),
        );
        let task = tokio::spawn(run(
            elector(&client, me),
            writer,
            || vec![ingress("web", None)],
            rx,
            futures::stream::pending(),
            std::future::pending(),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let first = lease_requests(&state).len();
        for _ in 0..20 {
            tx.send_modify(|n| *n += 1);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        let after = lease_requests(&state);
        assert_eq!(
            after.len(),
            first,
            "{me}: lease requests per change: {after:?}"
        );
    }
}

/// Issue 12 item 5: a holder whose clock runs 60 s behind ours keeps renewing (its Lease
/// record changes): we must not take over by comparing its renewTime with our clock. A holder
/// that stops renewing loses the Lease after leaseDurationSeconds of our own time.
#[tokio::test(start_paused = true)]
async fn clock_skew_does_not_make_two_leaders() {
    let (client, state) = fake();
    let skewed = Timestamp::now() - SignedDuration::from_secs(60);
    state.lock().unwrap().lease = Some(lease("pod-a", skewed, 0));
    let me = elector(&client, "pod-b");
    assert!(!me.round().await.unwrap(), "took over a live holder");
    for i in 0..5 {
        // pod-a renews (its clock still 60 s behind): a new resourceVersion each time.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut l = lease("pod-a", skewed + SignedDuration::from_secs(5 * i), 0);
        l["metadata"]["resourceVersion"] = json!(format!("r{i}"));
        state.lock().unwrap().lease = Some(l);
        assert!(
            !me.round().await.unwrap(),
            "took over a live holder (round {i})"
        );
    }
    // pod-a stops renewing; its renewTime is from our future (clock ahead is the same bug).
    let ahead = Timestamp::now() + SignedDuration::from_secs(3600);
    let mut l = lease("pod-a", ahead, 0);
    l["metadata"]["resourceVersion"] = json!("frozen");
    state.lock().unwrap().lease = Some(l);
    assert!(!me.round().await.unwrap());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !me.round().await.unwrap(),
        "expired before leaseDurationSeconds"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(me.round().await.unwrap(), "never took over a dead holder");
}

/// Issue 12 item 5: on shutdown the leader releases the Lease, and another replica takes
/// over at once instead of waiting for it to expire.
#[tokio::test(start_paused = true)]
async fn the_leader_releases_the_lease_on_shutdown() {
    let (client, state) = fake();
    let (_tx, rx) = tokio::sync::watch::channel(0u64);
    let writer = StatusWriter::new(
        client.clone(),
        Publish::Addresses(vec!["192.0.2.10".into()]),
    );
    run(
        elector(&client, "pod-a"),
        writer,
        Vec::new,
        rx,
        futures::stream::pending(),
        tokio::time::sleep(Duration::from_millis(100)),
    )
    .await;
    let l = state.lock().unwrap().lease.clone().unwrap();
    assert!(
        l["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "still held: {l}"
    );
    assert!(elector(&client, "pod-b").round().await.unwrap());
}

/// A follower told that the Lease was released (the watch of the Lease, [`Elector::releases`])
/// takes it over at once, not at its next look [`RETRY_EVERY`] later: a SIGTERMed leader's
/// successor is in charge within the time of two API writes.
#[tokio::test(start_paused = true)]
async fn a_follower_takes_a_released_lease_at_once() {
    let (client, state) = fake();
    state.lock().unwrap().lease = Some(lease("pod-a", Timestamp::now(), 0));
    let (_tx, rx) = tokio::sync::watch::channel(0u64);
    let (released, releases) = futures::channel::mpsc::unbounded();
    let writer = StatusWriter::new(client.clone(), Publish::Addresses(vec![]));
    let task = tokio::spawn(run(
        elector(&client, "pod-b"),
        writer,
        Vec::new,
        rx,
        releases,
        std::future::pending(),
    ));
    // Two looks: pod-a holds it, pod-b follows.
    tokio::time::sleep(RETRY_EVERY + RETRY_EVERY / 2).await;
    let holder = |state: &Shared| {
        let st = state.lock().unwrap();
        st.lease.as_ref().unwrap()["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(holder(&state), "pod-a");
    // pod-a releases; the watch reports it.
    elector(&client, "pod-a").release().await.unwrap();
    released.unbounded_send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        holder(&state),
        "pod-b",
        "not taken within 50 ms of the release"
    );
    task.abort();
}
