//! The fixture of the Gateway API trials (`gateway.rs`): a backend that echoes the path and
//! headers nginx sent, builders of GatewayClass / Gateway / HTTPRoute / ReferenceGrant
//! manifests, a request-until-answer helper, and the route statuses `gateway::statuses`
//! computes from the controller's manifests directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use anyhow::{Context, Result};
use berth_ingress::gateway::{GatewayStatuses, statuses};
use berth_ingress::source::Source as _;
use berth_ingress::source::files::FilesSource;
use berth_tests::ingress_ctl::IngressCtl;
use berth_tests::nginx::{Response, http_request};
use berth_tests::proc::wait_until;
use serde_json::{Value, json};

use super::SERVED_WITHIN;

/// A backend answering `200` with `NAME URI` and then one `name: value` line per request
/// header (lower-case names), so a test sees the path and headers nginx sent.
pub(super) struct HeaderEcho {
    pub(super) port: u16,
}

impl HeaderEcho {
    pub(super) fn start(name: &str) -> Result<HeaderEcho> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let name = name.to_owned();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let name = name.clone();
                std::thread::spawn(move || _ = echo(s, &name));
            }
        });
        Ok(HeaderEcho { port })
    }
}

fn echo(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let uri = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut body = format!("{name} {uri}\n");
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                }
                body.push_str(&format!("{k}: {}\n", v.trim()));
            }
        }
        let mut skip = vec![0u8; len];
        reader.read_exact(&mut skip)?;
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Drop: gone\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
}

pub(super) const API: &str = "gateway.networking.k8s.io/v1";

pub(super) fn class() -> Value {
    json!({"apiVersion": API, "kind": "GatewayClass", "metadata": {"name": "berth"},
           "spec": {"controllerName": "berth.dev/gateway"}})
}

pub(super) fn gateway(listeners: Value) -> Value {
    json!({"apiVersion": API, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "gw"},
           "spec": {"gatewayClassName": "berth", "listeners": listeners}})
}

pub(super) fn route(
    ns: &str,
    name: &str,
    ts: &str,
    parent: Value,
    hostnames: &[&str],
    rules: Value,
) -> Value {
    json!({"apiVersion": API, "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": ns, "creationTimestamp": ts},
           "spec": {"parentRefs": [parent], "hostnames": hostnames, "rules": rules}})
}

pub(super) fn grant(ns: &str, from_ns: &str, from_kind: &str, to_kind: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
           "metadata": {"name": format!("allow-{from_ns}"), "namespace": ns},
           "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": from_kind, "namespace": from_ns}],
                    "to": [{"group": "", "kind": to_kind}]}})
}

pub(super) fn backend(name: &str, port: u16, weight: Option<u32>) -> Value {
    let mut v = json!({"name": name, "port": port});
    if let Some(w) = weight {
        v["weight"] = json!(w);
    }
    v
}

pub(super) fn ask(
    ctl: &IngressCtl,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    http_request(&ctl.http_addr(), method, host, path, headers).unwrap_or(Response {
        status: 0,
        headers: Vec::new(),
        body: String::new(),
    })
}

/// Wait until `check` holds for the answer to `method host path headers`.
pub(super) fn until(
    ctl: &IngressCtl,
    (method, host, path): (&str, &str, &str),
    headers: &[(&str, &str)],
    what: &str,
    check: impl Fn(&Response) -> bool,
) -> Result<()> {
    let mut last = None;
    wait_until(
        &format!("{method} {host}{path} {headers:?}: {what}"),
        SERVED_WITHIN,
        || {
            let r = ask(ctl, method, host, path, headers);
            let ok = check(&r);
            last = Some((r.status, r.headers, r.body));
            ok
        },
    )
    .with_context(|| format!("last answer {last:?}; log:\n{}", ctl.log_text()))
}

/// The first line of the body is `NAME URI`.
pub(super) fn first(r: &Response) -> &str {
    r.body.lines().next().unwrap_or_default()
}

pub(super) fn gw_statuses(ctl: &IngressCtl) -> GatewayStatuses {
    let snap = FilesSource::new(&ctl.manifests).snapshot();
    let config = berth_ingress::translate::TranslateConfig::default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    );
    // As if the snapshot's whole config were live (the controller's own served set is not
    // visible from here; k8s_ingress checks the statuses it writes).
    let serving =
        berth_ingress::serving::Serving::of(&berth_ingress::translate::build(&snap, &config));
    statuses(&snap, &config, &[], &serving, &now)
}

/// (type, status, reason) of a route's conditions for its first parent.
pub(super) fn route_conditions(
    s: &GatewayStatuses,
    ns: &str,
    name: &str,
) -> Vec<(String, String, String)> {
    let key = (ns.to_owned(), name.to_owned());
    s.http_routes.get(&key).map_or_else(Vec::new, |r| {
        r.parents[0]
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    })
}

pub(super) fn has(c: &[(String, String, String)], t: &str, s: &str, r: &str) -> bool {
    c.iter().any(|x| x.0 == t && x.1 == s && x.2 == r)
}
