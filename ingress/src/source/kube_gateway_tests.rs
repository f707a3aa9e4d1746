//! Gateway API discovery against a mocked API server (tower-test): kinds absent (404),
//! installed later (seen at the next look, then no more looks), a discovery error (counts as
//! absent, retried within a second), and `on`/`off` never asking.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::json;
use tokio::sync::watch;

use super::*;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// What the fake discovery endpoint says.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Api {
    Absent,
    Installed,
    Broken,
}

fn resources(gv: &str, names: &[&str]) -> Vec<u8> {
    let list: Vec<_> = names
        .iter()
        .map(|n| json!({"name": n, "namespaced": true, "kind": "X", "verbs": ["list", "watch"]}))
        .collect();
    serde_json::to_vec(&json!({"kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": gv, "resources": list}))
    .unwrap()
}

fn status(code: u16) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "message": "m", "reason": "r", "code": code});
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

/// Answers discovery as `state` says; counts requests.
async fn api_server(mut handle: Handle, state: watch::Receiver<Api>, asked: watch::Sender<usize>) {
    while let Some((req, send)) = handle.next_request().await {
        let path = req.uri().path().to_owned();
        asked.send_modify(|n| *n += 1);
        let resp = match *state.borrow() {
            Api::Absent => status(404),
            Api::Broken => status(503),
            Api::Installed => {
                let body = match path.as_str() {
                    "/apis/gateway.networking.k8s.io/v1" => resources(
                        "gateway.networking.k8s.io/v1",
                        &[
                            "gatewayclasses",
                            "gatewayclasses/status",
                            "gateways",
                            "httproutes",
                            "grpcroutes",
                        ],
                    ),
                    "/apis/gateway.networking.k8s.io/v1beta1" => resources(
                        "gateway.networking.k8s.io/v1beta1",
                        &["referencegrants", "httproutes"],
                    ),
                    other => panic!("unexpected request {other}"),
                };
                Response::builder().body(Body::from(body)).unwrap()
            }
        };
        send.send_response(resp);
    }
}

struct Fixture {
    state: watch::Sender<Api>,
    asked: watch::Receiver<usize>,
    served: watch::Receiver<Served>,
}

fn start(mode: GatewayApi, initial: Api) -> Fixture {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock, "default");
    let (state, state_rx) = watch::channel(initial);
    let (asked_tx, asked) = watch::channel(0);
    tokio::spawn(api_server(handle, state_rx, asked_tx));
    let (tx, served) = watch::channel(None);
    tokio::spawn(discover(client, mode, tx));
    Fixture {
        state,
        asked,
        served,
    }
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn all() -> BTreeSet<String> {
    KINDS.iter().map(|k| k.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn absent_kinds_are_looked_for_every_30s_and_watched_once_installed() {
    let mut f = start(GatewayApi::Auto, Api::Absent);
    f.served.wait_for(Option::is_some).await.unwrap();
    assert_eq!(*f.served.borrow(), Some(BTreeSet::new()));
    settle().await;
    assert_eq!(*f.asked.borrow(), 2, "one look: v1 and v1beta1");
    // No look before RECHECK_EVERY: a cluster without the CRDs is not polled every second.
    tokio::time::sleep(RECHECK_EVERY - Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(*f.asked.borrow(), 2);
    f.state.send_replace(Api::Installed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(*f.served.borrow(), Some(all()));
    // All five served: no more discovery.
    let n = *f.asked.borrow();
    tokio::time::sleep(RECHECK_EVERY * 4).await;
    settle().await;
    assert_eq!(*f.asked.borrow(), n);
}

#[tokio::test(start_paused = true)]
async fn a_failing_discovery_does_not_hold_up_the_ingress_config() {
    let mut f = start(GatewayApi::Auto, Api::Broken);
    f.served.wait_for(Option::is_some).await.unwrap();
    assert_eq!(*f.served.borrow(), Some(BTreeSet::new()));
    f.state.send_replace(Api::Installed);
    tokio::time::sleep(WATCH_BACKOFF_MAX + Duration::from_millis(100)).await;
    settle().await;
    assert_eq!(*f.served.borrow(), Some(all()));
}

#[tokio::test(start_paused = true)]
async fn on_and_off_never_ask() {
    for (mode, want) in [(GatewayApi::On, all()), (GatewayApi::Off, BTreeSet::new())] {
        let mut f = start(mode, Api::Installed);
        f.served.wait_for(Option::is_some).await.unwrap();
        assert_eq!(*f.served.borrow(), Some(want));
        tokio::time::sleep(RECHECK_EVERY * 2).await;
        settle().await;
        assert_eq!(*f.asked.borrow(), 0, "{mode:?}");
    }
}

/// A whole kube source against an API server that has the Gateway API CRDs or not (and
/// forbids listing them or not): lists hold one HTTPRoute and one Namespace; every watch
/// hangs. Records every path asked for.
async fn cluster(
    mut handle: Handle,
    installed: watch::Receiver<(bool, bool)>,
    paths: watch::Sender<Vec<String>>,
) {
    let mut hanging = Vec::new();
    while let Some((req, send)) = handle.next_request().await {
        let (installed, forbidden) = *installed.borrow();
        let path = req.uri().path().to_owned();
        let watch = req.uri().query().unwrap_or("").contains("watch=true");
        paths.send_modify(|p| p.push(path.clone()));
        if watch {
            hanging.push(send);
            continue;
        }
        let list = |items: Vec<serde_json::Value>| {
            let body = json!({"apiVersion": "v1", "kind": "List",
                              "metadata": {"resourceVersion": "1"}, "items": items});
            Response::builder()
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap()
        };
        let resp = match path.as_str() {
            "/apis/gateway.networking.k8s.io/v1" | "/apis/gateway.networking.k8s.io/v1beta1"
                if !installed =>
            {
                status(404)
            }
            "/apis/gateway.networking.k8s.io/v1" => Response::builder()
                .body(Body::from(resources(
                    "gateway.networking.k8s.io/v1",
                    &["gatewayclasses", "gateways", "httproutes", "grpcroutes"],
                )))
                .unwrap(),
            "/apis/gateway.networking.k8s.io/v1beta1" => Response::builder()
                .body(Body::from(resources(
                    "gateway.networking.k8s.io/v1beta1",
                    &["referencegrants"],
                )))
                .unwrap(),
            p if p.starts_with("/apis/gateway.networking.k8s.io/v1/") && forbidden => status(403),
            "/apis/gateway.networking.k8s.io/v1/httproutes" => list(vec![json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": "r", "namespace": "default", "resourceVersion": "1",
                             "managedFields": [{"manager": "kubectl"}]},
                "spec": {"parentRefs": [{"name": "gw"}]}})]),
            "/api/v1/namespaces" => list(vec![json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "default", "labels": {"team": "a"},
                             "annotations": {"big": "x"}}})]),
            p if p.starts_with("/apis/gateway.networking.k8s.io/") && !installed => {
                panic!("watched {p} without the CRDs")
            }
            _ => list(vec![]),
        };
        send.send_response(resp);
    }
}

async fn start_source(
    installed: (bool, bool),
) -> (
    KubeSource,
    watch::Receiver<Vec<String>>,
    watch::Sender<(bool, bool)>,
    watch::Receiver<u64>,
) {
    use super::super::kube::{KubeConfig, KubeSource};
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock, "default");
    let (paths_tx, paths) = watch::channel(Vec::new());
    let (installed_tx, installed_rx) = watch::channel(installed);
    tokio::spawn(cluster(handle, installed_rx, paths_tx));
    let (changes, mut seen) = watch::channel(0u64);
    let (source, driver) = KubeSource::start(client, &KubeConfig::default(), changes);
    tokio::spawn(driver);
    tokio::time::timeout(Duration::from_secs(15), seen.wait_for(|n| *n > 0))
        .await
        .expect("initial lists announced")
        .unwrap();
    (source, paths, installed_tx, seen)
}

use super::super::Source as _;
use super::super::kube::KubeSource;

#[tokio::test]
async fn without_the_crds_the_source_is_ready_and_never_watches_them() {
    let (source, paths, _, _) = start_source((false, false)).await;
    let snap = source.snapshot();
    assert!(snap.http_routes.is_empty() && snap.namespaces.is_empty());
    let asked = paths.borrow().clone();
    assert!(asked.iter().any(|p| p == "/api/v1/services"), "{asked:?}");
    assert!(
        !asked.iter().any(|p| p == "/api/v1/namespaces"),
        "{asked:?}"
    );
    // Discovery only: no list or watch of a Gateway API kind.
    let gateway: Vec<&String> = asked
        .iter()
        .filter(|p| p.starts_with("/apis/gateway.networking.k8s.io/"))
        .collect();
    assert!(!gateway.is_empty(), "discovery was asked");
    assert!(
        gateway.iter().all(|p| p.matches('/').count() == 3),
        "{gateway:?}"
    );
}

#[tokio::test]
async fn with_the_crds_routes_and_namespace_labels_are_in_the_first_snapshot() {
    let (source, _, _, _) = start_source((true, false)).await;
    let snap = source.snapshot();
    assert_eq!(snap.http_routes.len(), 1);
    assert!(
        snap.http_routes[0]
            .metadata
            .managed_fields
            .as_ref()
            .is_none_or(Vec::is_empty)
    );
    assert_eq!(snap.namespaces.len(), 1);
    let ns = &snap.namespaces[0].metadata;
    assert_eq!(ns.labels.as_ref().unwrap()["team"], "a");
    assert!(ns.annotations.is_none(), "only labels are kept");
}

#[tokio::test(start_paused = true)]
async fn crds_installed_later_are_watched_at_the_next_look() {
    let (source, _, installed, mut seen) = start_source((false, false)).await;
    assert!(source.snapshot().http_routes.is_empty());
    installed.send_replace((true, false));
    let before = *seen.borrow_and_update();
    // Within one RECHECK_EVERY (paused clock), the route arrives and the sync loop is told.
    tokio::time::timeout(RECHECK_EVERY + Duration::from_secs(2), async {
        while source.snapshot().http_routes.is_empty() {
            seen.changed().await.unwrap();
        }
    })
    .await
    .expect("the HTTPRoute in the snapshot after the next look");
    assert!(*seen.borrow() > before);
    assert_eq!(source.snapshot().namespaces.len(), 1);
}

/// A ClusterRole from before the Gateway API (CRDs served, lists forbidden): the Ingress
/// config is held up for at most LISTS_TIMEOUT.
#[tokio::test(start_paused = true)]
async fn served_but_forbidden_kinds_hold_up_the_first_config_at_most_10s() {
    let t = tokio::time::Instant::now();
    let (source, paths, _, _) = start_source((true, true)).await;
    let waited = t.elapsed();
    assert!(
        waited >= LISTS_TIMEOUT && waited < LISTS_TIMEOUT + Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(source.snapshot().http_routes.is_empty());
    let asked = paths.borrow().clone();
    assert!(asked.iter().any(|p| p == "/api/v1/services"), "{asked:?}");
}
