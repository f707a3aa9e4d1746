//! `auth-url` (+ `auth-method`, `auth-response-headers`) through the real controller and
//! nginx: nginx asks a local auth service before every request; the service allows a good
//! bearer token (200 + `X-Auth-User`) and denies the rest (401). Without or with a bad token
//! the client gets 401 and the app is never reached; with the good one the app gets the
//! request with the auth service's `X-Auth-User` (a client-sent one is overwritten, headers
//! not listed are not copied); `auth-method POST` is what the service sees; an auth service
//! that is down answers 500, never the app; an `auth-url` outside the grammar refuses the
//! Ingress (404, reported).

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use berth_tests::ingress_ctl::{IngressCtl, RequestHead, ingress, local_service};
use berth_tests::nginx::http_request;
use berth_tests::proc::{free_port, wait_until};
use serde_json::Value;

use super::{SERVED_WITHIN, answered, refused_in_log, served, started};

/// One local server playing both parts: `/check*` is the auth service, the rest is the app
/// (`/vhost*` answers `host=<the Host header it got>`).
pub struct AuthAndApp {
    pub port: u16,
    /// Methods the auth service saw, in order.
    methods: Arc<Mutex<Vec<String>>>,
    /// Requests the app answered.
    app_hits: Arc<AtomicUsize>,
}

impl AuthAndApp {
    pub fn start() -> Result<AuthAndApp> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let methods = Arc::new(Mutex::new(Vec::new()));
        let app_hits = Arc::new(AtomicUsize::new(0));
        let (m, hits) = (methods.clone(), app_hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, hits) = (m.clone(), hits.clone());
                std::thread::spawn(move || _ = serve(stream, &m, &hits));
            }
        });
        Ok(AuthAndApp {
            port,
            methods,
            app_hits,
        })
    }
}

impl AuthAndApp {
    /// The auth service's URL.
    fn check_url(&self) -> String {
        format!("http://127.0.0.1:{}/check", self.port)
    }

    /// Ingress `shop/<name>` for `<name>.test`, `/` to the app, with annotations `ann`.
    fn ingress(&self, name: &str, ann: &[(&str, &str)]) -> Value {
        ingress(
            "shop",
            name,
            &format!("{name}.test"),
            "/",
            ("app", self.port),
            ann,
            None,
        )
    }
}

fn serve(stream: TcpStream, methods: &Mutex<Vec<String>>, hits: &AtomicUsize) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    while let Some(head) = RequestHead::read(&mut reader)? {
        let (method, uri) = (&head.method, &head.uri);
        let header = |name: &str| head.header(name);
        let (status, extra, body) = if uri.starts_with("/check") {
            methods.lock().unwrap().push(method.clone());
            if header("authorization") == Some("Bearer good") {
                (
                    "200 OK",
                    "X-Auth-User: alice\r\nX-Other: nope\r\n",
                    String::new(),
                )
            } else {
                ("401 Unauthorized", "", String::new())
            }
        } else if uri.starts_with("/vhost") {
            let host = header("host").unwrap_or_default();
            ("200 OK", "", format!("host={host}"))
        } else {
            hits.fetch_add(1, Ordering::SeqCst);
            let user = header("x-auth-user").unwrap_or("-");
            let other = header("x-other").unwrap_or("-");
            ("200 OK", "", format!("app {uri} user={user} other={other}"))
        };
        write!(
            out,
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
    Ok(())
}

/// (status, body) of GET /x on `host` with `headers`.
fn ask(ctl: &IngressCtl, host: &str, headers: &[(&str, &str)]) -> (u16, String) {
    match http_request(&ctl.http_addr(), "GET", host, "/x", headers) {
        Ok(r) => (r.status, r.body),
        Err(e) => (0, format!("{e:#}")),
    }
}

fn answers(
    ctl: &IngressCtl,
    host: &str,
    headers: &[(&str, &str)],
    want: (u16, Option<&str>),
) -> Result<()> {
    answered(
        ctl,
        &format!("{host} {headers:?} -> {want:?}"),
        || ask(ctl, host, headers),
        |last| last.0 == want.0 && want.1.is_none_or(|b| last.1 == b),
    )
}

pub fn auth_url_allows_and_denies() -> Result<()> {
    let svc = AuthAndApp::start()?;
    let down = free_port()?;
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let check = svc.check_url();
    let (url, headers) = (n("auth-url"), n("auth-response-headers"));
    let down_url = format!("http://127.0.0.1:{down}/check");
    let manifests = vec![
        ("app", local_service("shop", "app", svc.port)),
        (
            "ext",
            svc.ingress("ext", &[(&url, &check), (&headers, "X-Auth-User")]),
        ),
        (
            "ext-berth",
            svc.ingress(
                "ext-berth",
                &[
                    ("berth.dev/auth-url", &format!("{check}-post")),
                    ("berth.dev/auth-method", "POST"),
                ],
            ),
        ),
        ("ext-down", svc.ingress("ext-down", &[(&url, &down_url)])),
        (
            "ext-bad",
            svc.ingress("ext-bad", &[(&url, "http://$host/check?rd=$request_uri")]),
        ),
    ];
    let ctl = started(&manifests, &[])?;

    let good = [("Authorization", "Bearer good")];
    answers(&ctl, "ext.test", &[], (401, None))?;
    answers(
        &ctl,
        "ext.test",
        &[("Authorization", "Bearer bad")],
        (401, None),
    )?;
    ensure!(
        svc.app_hits.load(Ordering::SeqCst) == 0,
        "the app was reached without auth"
    );
    answers(
        &ctl,
        "ext.test",
        &good,
        (200, Some("app /x user=alice other=-")),
    )?;
    // A client cannot claim a user: the auth service's answer overwrites the header.
    answers(
        &ctl,
        "ext.test",
        &[good[0], ("X-Auth-User", "mallory")],
        (200, Some("app /x user=alice other=-")),
    )?;

    svc.methods.lock().unwrap().clear();
    answers(&ctl, "ext-berth.test", &[], (401, None))?;
    answers(
        &ctl,
        "ext-berth.test",
        &good,
        (200, Some("app /x user=- other=-")),
    )?;
    let seen = svc.methods.lock().unwrap().clone();
    ensure!(
        !seen.is_empty() && seen.iter().all(|m| m == "POST"),
        "auth methods {seen:?}"
    );

    let before = svc.app_hits.load(Ordering::SeqCst);
    answers(&ctl, "ext-down.test", &good, (500, None))?;
    ensure!(
        svc.app_hits.load(Ordering::SeqCst) == before,
        "the app was reached with auth down"
    );

    served(&ctl, "ext-bad.test", "/x", 404, None)?;
    refused_in_log(&ctl, "shop", "ext-bad", &["auth-url", "invalid_annotation"])?;
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(
        !conf.contains("$host/check"),
        "refused auth-url in nginx.conf"
    );
    Ok(())
}

/// (status, Location) of GET `path` on `host` without credentials.
fn location_of(ctl: &IngressCtl, host: &str, path: &str) -> (u16, String) {
    match http_request(&ctl.http_addr(), "GET", host, path, &[]) {
        Ok(r) => (r.status, r.header("location").unwrap_or("-").to_owned()),
        Err(e) => (0, format!("{e:#}")),
    }
}

/// `auth-signin` (+ `auth-signin-redirect-param`): a 401 of the auth service becomes a 302 to
/// the sign-in URL with the original URL percent-encoded in `rd` (the query and anything
/// after the first character outside `A-Z a-z 0-9 / . _ ~ -` left out, so nothing the client
/// sends reaches the `Location` header unchecked); allowed requests reach the app; a hostile
/// `auth-signin` and one without `auth-url` refuse the Ingress.
pub fn auth_signin_redirects_to_sign_in() -> Result<()> {
    let svc = AuthAndApp::start()?;
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let check = svc.check_url();
    let (url, signin) = (n("auth-url"), n("auth-signin"));
    let manifests = vec![
        ("app", local_service("shop", "app", svc.port)),
        (
            "sign",
            svc.ingress(
                "sign",
                &[(&url, &check), (&signin, "https://login.example.com/start")],
            ),
        ),
        (
            "sign-berth",
            svc.ingress(
                "sign-berth",
                &[
                    ("berth.dev/auth-url", &check),
                    ("berth.dev/auth-signin", "http://login.example.com:8080/"),
                    ("berth.dev/auth-signin-redirect-param", "return_to"),
                ],
            ),
        ),
        (
            "sign-bad",
            svc.ingress(
                "sign-bad",
                &[
                    (&url, &check),
                    (&signin, "https://login.example.com/?rd=$scheme://$host"),
                ],
            ),
        ),
        (
            "sign-alone",
            svc.ingress("sign-alone", &[(&signin, "https://login.example.com/")]),
        ),
    ];
    let ctl = started(&manifests, &[])?;

    let want = |host: &str, path: &str, location: &str| -> Result<()> {
        let mut last = (0, String::new());
        wait_until(&format!("{host}{path} -> 302"), SERVED_WITHIN, || {
            last = location_of(&ctl, host, path);
            last == (302, location.to_owned())
        })
        .with_context(|| format!("{host}{path}: last {last:?}, want 302 {location}"))
    };
    want(
        "sign.test",
        "/x",
        "https://login.example.com/start?rd=http%3A%2F%2Fsign.test/x",
    )?;
    want(
        "sign.test",
        "/a/b-c.d_e~f",
        "https://login.example.com/start?rd=http%3A%2F%2Fsign.test/a/b-c.d_e~f",
    )?;
    // The query and what follows an unusual character are left out, never passed raw.
    want(
        "sign.test",
        "/p/q?next=%0d%0aSet-Cookie:x&a=b",
        "https://login.example.com/start?rd=http%3A%2F%2Fsign.test/p/q",
    )?;
    want(
        "sign.test",
        "/p%22%3E<x>",
        "https://login.example.com/start?rd=http%3A%2F%2Fsign.test/p",
    )?;
    want(
        "sign-berth.test",
        "/x",
        "http://login.example.com:8080/?return_to=http%3A%2F%2Fsign-berth.test/x",
    )?;
    ensure!(
        svc.app_hits.load(Ordering::SeqCst) == 0,
        "the app was reached without auth"
    );
    answers(
        &ctl,
        "sign.test",
        &[("Authorization", "Bearer good")],
        (200, Some("app /x user=- other=-")),
    )?;

    for (name, what) in [("sign-bad", "auth-signin"), ("sign-alone", "auth-url")] {
        served(&ctl, &format!("{name}.test"), "/x", 404, None)?;
        refused_in_log(
            &ctl,
            "shop",
            name,
            &["auth-signin", what, "invalid_annotation"],
        )?;
    }
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(
        !conf.contains("rd=$scheme://"),
        "refused auth-signin in nginx.conf"
    );
    Ok(())
}
