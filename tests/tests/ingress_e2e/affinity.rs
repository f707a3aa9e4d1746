//! `affinity: cookie` through the real controller and nginx, over two real backends of one
//! Service (`--upstream endpoints`: two EndpointSlices on this host's non-loopback address, as
//! loopback endpoints are refused): a new client gets `Set-Cookie` (name, path, max-age as
//! annotated) on its first answer, and with that cookie 100 requests reach the same backend;
//! new clients are spread over both backends, each kept on its own. Both spellings.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener, TcpStream};

use anyhow::{Result, bail, ensure};
use berth_tests::ingress_ctl::{IngressCtl, ingress};
use berth_tests::nginx::http_request;
use serde_json::{Value, json};

use super::{served, started};

/// A backend on `ip` answering every request `200` with its `name`.
fn backend(ip: IpAddr, name: &'static str) -> Result<u16> {
    let listener = TcpListener::bind((ip, 0))?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || _ = serve(stream, name));
        }
    });
    Ok(port)
}

fn serve(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
        }
        // One write (piecewise writes meet Nagle + delayed ACK).
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
            name.len()
        );
        out.write_all(answer.as_bytes())?;
    }
}

fn slice(name: &str, ip: IpAddr, port: u16) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": "shop",
                        "labels": {"kubernetes.io/service-name": "web",
                                   "endpointslice.kubernetes.io/managed-by": "berth-tests"}},
           "addressType": "IPv4",
           "ports": [{"name": "http", "port": port}],
           "endpoints": [{"addresses": [ip.to_string()]}]})
}

/// (backend name, `Set-Cookie`) of one GET, with `cookie` when given.
fn visit(
    ctl: &IngressCtl,
    host: &str,
    path: &str,
    cookie: Option<&str>,
) -> Result<(String, String)> {
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", *c)).collect();
    let r = http_request(&ctl.http_addr(), "GET", host, path, &headers)?;
    ensure!(r.status == 200, "{host}{path}: {} {}", r.status, r.body);
    let set = r.header("set-cookie").unwrap_or_default().to_owned();
    Ok((r.body, set))
}

/// A new client: its backend and the cookie it was given (`name=value`), checked against the
/// attributes `want` (e.g. `Path=/; Max-Age=600; HttpOnly`).
fn new_client(
    ctl: &IngressCtl,
    host: &str,
    path: &str,
    name: &str,
    want: &str,
) -> Result<(String, String)> {
    let (backend, set) = visit(ctl, host, path, None)?;
    let Some((cookie, attrs)) = set.split_once("; ") else {
        bail!("{host}: no Set-Cookie for a new client: {set:?}");
    };
    ensure!(
        cookie.starts_with(&format!("{name}=")) && cookie.len() > name.len() + 8 && attrs == want,
        "{host}: Set-Cookie {set:?}, want {name}=<key>; {want}"
    );
    Ok((backend, cookie.to_owned()))
}

pub fn sticky_cookie_keeps_one_backend() -> Result<()> {
    // EndpointSlices never take loopback: the backends listen on the host side of a veth pair
    // (this machine only), so the test needs no particular network on the host.
    let ns = berth_tests::netns::NetNs::create()?;
    let ip = IpAddr::V4(ns.host_addr);
    let (a, b) = (backend(ip, "one")?, backend(ip, "two")?);
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let web = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}});
    let sticky = [
        (n("affinity"), "cookie"),
        (n("session-cookie-name"), "route"),
        (n("session-cookie-max-age"), "600"),
        (n("session-cookie-path"), "/"),
    ];
    let sticky: Vec<(&str, &str)> = sticky.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let manifests = vec![
        ("web", web),
        ("slice-a", slice("web-a", ip, a)),
        ("slice-b", slice("web-b", ip, b)),
        (
            "sticky",
            ingress(
                "shop",
                "sticky",
                "sticky.test",
                "/",
                ("web", 80),
                &sticky,
                None,
            ),
        ),
        (
            "berth",
            ingress(
                "shop",
                "berth",
                "berth.test",
                "/app",
                ("web", 80),
                &[("berth.dev/affinity", "cookie")],
                None,
            ),
        ),
    ];
    let extra = [
        "--upstream=endpoints".to_owned(),
        "--trust-endpointslice-managers=berth-tests".to_owned(),
    ];
    let ctl = started(&manifests, &extra)?;
    served(&ctl, "sticky.test", "/", 200, None)?;
    served(&ctl, "berth.test", "/app", 200, None)?;

    let attrs = "Path=/; Max-Age=600; HttpOnly";
    let (first, cookie) = new_client(&ctl, "sticky.test", "/", "route", attrs)?;
    for i in 0..100 {
        let (got, set) = visit(&ctl, "sticky.test", &format!("/r{i}"), Some(&cookie))?;
        ensure!(
            got == first && set.is_empty(),
            "request {i} with {cookie}: backend {got} (first {first}), Set-Cookie {set:?}"
        );
    }
    // New clients land on both backends, each kept where it landed.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let (got, cookie) = new_client(&ctl, "sticky.test", "/", "route", attrs)?;
        for _ in 0..3 {
            let (again, _) = visit(&ctl, "sticky.test", "/", Some(&cookie))?;
            ensure!(again == got, "{cookie}: {got} then {again}");
        }
        seen.insert(got);
    }
    ensure!(seen.len() == 2, "30 new clients all went to {seen:?}");
    // Defaults: ingress-nginx's cookie name, the route's path, a session cookie.
    let (first, cookie) = new_client(
        &ctl,
        "berth.test",
        "/app/x",
        "INGRESSCOOKIE",
        "Path=/app; HttpOnly",
    )?;
    for _ in 0..20 {
        ensure!(visit(&ctl, "berth.test", "/app/y", Some(&cookie))?.0 == first);
    }
    Ok(())
}
