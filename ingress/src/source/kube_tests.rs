//! The kube source against a mocked API server (tower-test): initial list, watch events, a
//! relist after the watch is dropped with 410 Gone, and a Service that stops matching the
//! selector dropping out of the routes.

use std::collections::VecDeque;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use super::*;
use crate::model::Host;
use crate::translate::{self, LabelSelector, TranslateConfig};

fn service(name: &str, rv: &str, exposed: bool) -> Value {
    let labels = if exposed {
        json!({"app.kubernetes.io/expose": "true"})
    } else {
        json!({})
    };
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": "default", "resourceVersion": rv, "labels": labels,
            "annotations": {"berth.dev/host": format!("{name}.example.com")},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
        },
        "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}
    })
}

fn list(rv: &str, items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}))
        .unwrap()
}

fn events(events: &[(&str, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ty, obj) in events {
        out.extend(serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap());
        out.push(b'\n');
    }
    out
}

/// What the fake API server answers for Services, in order; other kinds get empty lists and
/// watches that never answer.
struct Script {
    lists: VecDeque<Vec<u8>>,
    /// Each watch body, optionally held until the test says go.
    watches: VecDeque<(Option<oneshot::Receiver<()>>, Vec<u8>)>,
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

async fn api_server(mut handle: Handle, mut script: Script, list_count: watch::Sender<usize>) {
    let mut hanging = Vec::new();
    while let Some((req, send)) = handle.next_request().await {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let is_watch = query.contains("watch=true");
        let ok = |body: Vec<u8>| Response::builder().body(Body::from(body)).unwrap();
        match (path.as_str(), is_watch) {
            ("/api/v1/services", false) => {
                list_count.send_modify(|n| *n += 1);
                let body = script
                    .lists
                    .pop_front()
                    .expect("unexpected extra Service list");
                send.send_response(ok(body));
            }
            ("/api/v1/services", true) => match script.watches.pop_front() {
                Some((gate, body)) => {
                    tokio::spawn(async move {
                        if let Some(g) = gate {
                            _ = g.await;
                        }
                        send.send_response(ok(body));
                    });
                }
                None => hanging.push(send),
            },
            (_, false) => {
                if path.ends_with("/secrets") {
                    assert!(
                        query.contains("fieldSelector=type%3Dkubernetes.io%2Ftls")
                            || query.contains("fieldSelector=type%3DOpaque"),
                        "{query}"
                    );
                }
                send.send_response(ok(list("1", vec![])));
            }
            (_, true) => hanging.push(send),
        }
    }
}

fn routed_hosts(source: &KubeSource) -> Vec<String> {
    let config = TranslateConfig {
        service_selector: LabelSelector::parse("app.kubernetes.io/expose=true").unwrap(),
        ..TranslateConfig::default()
    };
    let model = translate::build(&source.snapshot(), &config);
    model
        .servers
        .iter()
        .filter_map(|s| match &s.host {
            Some(Host::Exact(h)) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

/// Wait (bounded) until `cond` holds, re-checking on every change bump.
async fn until(changes: &mut watch::Receiver<u64>, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("timed out waiting for: {what}"),
        }
    }
}

#[tokio::test]
async fn list_watch_relist_and_selector() {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock, "default");
    let (go_tx, go_rx) = oneshot::channel();
    let gone = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410});
    let script = Script {
        lists: VecDeque::from([
            list("1", vec![service("a", "1", true), service("b", "1", false)]),
            // Relist after 410: "a" was deleted while we were not watching.
            list("10", vec![service("b", "2", true), service("c", "4", true)]),
        ]),
        watches: VecDeque::from([
            (
                Some(go_rx),
                events(&[
                    ("MODIFIED", service("b", "2", true)),  // starts matching
                    ("MODIFIED", service("a", "3", false)), // stops matching
                    ("ADDED", service("c", "4", true)),
                ]),
            ),
            (None, events(&[("ERROR", gone)])),
        ]),
    };
    let (list_tx, list_count) = watch::channel(0usize);
    tokio::spawn(api_server(handle, script, list_tx));

    let (tx, mut changes) = watch::channel(0u64);
    let (source, driver) = KubeSource::start(client, &KubeConfig::default(), tx);
    tokio::spawn(driver);

    // Initial list: only the labelled Service is routed; readiness bumps the counter.
    let mut ready = changes.clone();
    until(&mut changes, "initial lists", || {
        *ready.borrow_and_update() > 0
    })
    .await;
    assert_eq!(routed_hosts(&source), ["a.example.com"]);
    assert!(source.snapshot().services.iter().all(|s| {
        s.metadata.managed_fields.is_none()
            || s.metadata
                .managed_fields
                .as_ref()
                .is_some_and(Vec::is_empty)
    }));

    // Watch events: b starts matching, a stops matching (still in the store), c is added.
    go_tx.send(()).unwrap();
    let s = source.clone();
    until(&mut changes, "watch events", || {
        routed_hosts(&s) == ["b.example.com", "c.example.com"]
    })
    .await;
    assert_eq!(service_names(&source), ["a", "b", "c"]);

    // 410 Gone on the next watch -> relist; "a" disappears from the store.
    let s = source.clone();
    until(&mut changes, "relist", || service_names(&s) == ["b", "c"]).await;
    assert_eq!(*list_count.borrow(), 2);
    assert_eq!(routed_hosts(&source), ["b.example.com", "c.example.com"]);
}

/// An API server that answers the first Service list, then 503 while `down` is set; once it
/// is back, a watch delivers `new`.
async fn flaky_api_server(
    mut handle: Handle,
    down: watch::Receiver<bool>,
    requests_while_down: watch::Sender<usize>,
) {
    let mut hanging = Vec::new();
    let (mut delivered, mut listed) = (false, false);
    while let Some((req, send)) = handle.next_request().await {
        let path = req.uri().path().to_owned();
        let is_watch = req.uri().query().unwrap_or("").contains("watch=true");
        let ok = |body: Vec<u8>| Response::builder().body(Body::from(body)).unwrap();
        if path != "/api/v1/services" {
            match is_watch {
                false => send.send_response(ok(list("1", vec![]))),
                true => hanging.push(send),
            }
            continue;
        }
        if !listed && !is_watch {
            listed = true;
            send.send_response(ok(list("1", vec![service("a", "1", true)])));
        } else if *down.borrow() {
            requests_while_down.send_modify(|n| *n += 1);
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "message": "unavailable", "reason": "ServiceUnavailable", "code": 503});
            send.send_response(
                Response::builder()
                    .status(503)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        } else if !is_watch {
            send.send_response(ok(list("1", vec![service("a", "1", true)])));
        } else if !delivered {
            delivered = true;
            send.send_response(ok(events(&[("ADDED", service("new", "2", true))])));
        } else {
            hanging.push(send);
        }
    }
}

/// Issue 12 item 3: after the API server was unreachable for 20 s, a change made meanwhile
/// is in the store within 2 s of the API server answering again (not after the watcher's
/// default back-off of up to 30 s).
#[tokio::test(start_paused = true)]
async fn a_change_made_during_an_api_outage_arrives_within_2s_of_recovery() {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock, "default");
    let (down_tx, down_rx) = watch::channel(true);
    let (count_tx, count) = watch::channel(0usize);
    tokio::spawn(flaky_api_server(handle, down_rx, count_tx));
    let (tx, mut changes) = watch::channel(0u64);
    let (source, driver) = KubeSource::start(client, &KubeConfig::default(), tx);
    tokio::spawn(driver);
    let mut ready = changes.clone();
    until(&mut changes, "initial lists", || {
        *ready.borrow_and_update() > 0
    })
    .await;
    assert_eq!(service_names(&source), ["a"]);
    // The first watch finds the API server down; it stays down for 20 s.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        *count.borrow() >= 1,
        "the watch was retried during the outage"
    );
    down_tx.send_replace(false);
    let back = tokio::time::Instant::now();
    let deadline = back + Duration::from_secs(60);
    while service_names(&source) != ["a", "new"] {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = back.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "served {took:?} after the API came back"
    );
}

#[test]
fn opaque_secrets_keep_only_their_auth_key() {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let mut s = Secret {
        metadata: ObjectMeta {
            name: Some("db".into()),
            namespace: Some("shop".into()),
            annotations: Some(
                [(
                    "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                    "{\"data\":{\"password\":\"aHVudGVyMg==\"}}".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(
            [
                ("auth".to_owned(), bytes("alice:$apr1$x$y")),
                ("password".to_owned(), bytes("hunter2")),
            ]
            .into(),
        ),
        string_data: Some([("token".to_owned(), "t".to_owned())].into()),
        ..Secret::default()
    };
    keep_only_auth(&mut s);
    assert_eq!(s.metadata.name.as_deref(), Some("db"));
    assert!(s.metadata.annotations.is_none() && s.string_data.is_none());
    let keys: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["auth"]);
    let mut other = Secret {
        data: Some([("password".to_owned(), bytes("hunter2"))].into()),
        ..Secret::default()
    };
    keep_only_auth(&mut other);
    assert!(other.data.is_none());
}
