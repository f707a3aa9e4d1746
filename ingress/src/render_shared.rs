//! Shared server blocks: many simple hosts in one `server`, their upstreams chosen by `map`.
//!
//! nginx's cost per host is its `server` block (a server and location configuration each,
//! parsed and merged at every reload, held twice while old workers drain). Hosts that need
//! nothing of their own share one: a host is *simple* when its name is exact (no wildcard
//! regex), it has no TLS, none of its routes carries an annotation (default
//! [`RouteOptions`]), and every route and its fallback proxy to an upstream with endpoints.
//! Simple hosts with the same *shape* (the same paths and kinds, a fallback or not) form a
//! group; a group of at least [`RenderConfig::shared_min_hosts`] hosts is rendered as
//!
//! ```text
//! map $host $berth_g0_0 { h1.example.com ns_web_80; h2.example.com ns_api_80; }  # per route
//! server { listen 8080; server_name h1.example.com h2.example.com;
//!          location = /app { proxy_pass http://$berth_g0_0; } location ^~ /app/ { ... }
//!          location / { proxy_pass http://$berth_g0_f; }   # or return 404 without fallback
//! }
//! ```
//!
//! Routing is unchanged: nginx picks the server by exact name as before (every name is still
//! in `server_name`), the locations are the ones the host's own block would have had, and
//! `$host` (the name the server was chosen by, lower-cased) selects the host's upstream. A
//! variable `proxy_pass` without a URI passes the request URI unchanged and names an
//! `upstream` block, as the literal one did. Everything else (wildcards, TLS hosts,
//! annotated routes, routes answering 503, small groups) keeps a dedicated server block.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Ctx, RenderConfig, Target, listen, location};
use crate::hash_size;
use crate::model::{Host, Location, Model, PathKind, RouteOptions, Server};

/// Fewest simple hosts of one shape rendered as a shared server: below it dedicated blocks
/// cost nothing noticeable and read better (the golden files keep them).
pub const DEFAULT_SHARED_MIN_HOSTS: usize = 32;

/// Words `map` reads as parameters, not as keys: such a host keeps its own block.
const MAP_KEYWORDS: [&str; 4] = ["default", "hostnames", "include", "volatile"];

/// The routes a group's hosts share: (path, kind) per location, and whether a fallback exists.
type Shape = (Vec<(String, PathKind)>, bool);

/// One shared server: its hosts (indexes into `model.servers`) and their shape.
pub(super) struct Group {
    shape: Shape,
    hosts: Vec<usize>,
}

/// The shared groups of `model`, and for each server whether it is rendered in one.
pub(super) fn plan(model: &Model, config: &RenderConfig) -> (Vec<Group>, Vec<bool>) {
    let mut by_shape: BTreeMap<Shape, Vec<usize>> = BTreeMap::new();
    for (i, s) in model.servers.iter().enumerate() {
        if let Some(shape) = simple_shape(s, model) {
            by_shape.entry(shape).or_default().push(i);
        }
    }
    let mut shared = vec![false; model.servers.len()];
    let groups: Vec<Group> = by_shape
        .into_iter()
        .filter(|(_, hosts)| hosts.len() >= config.shared_min_hosts.max(1))
        .map(|(shape, hosts)| {
            hosts.iter().for_each(|&i| shared[i] = true);
            Group { shape, hosts }
        })
        .collect();
    (groups, shared)
}

/// The shape of a simple host, `None` for hosts that keep their own block.
///
/// Destructured exhaustively: a new per-server or per-route setting fails to compile here
/// until it is decided whether such a host may share.
fn simple_shape(s: &Server, model: &Model) -> Option<Shape> {
    let Server {
        host,
        locations,
        tls,
        fallback,
    } = s;
    let Some(Host::Exact(name)) = host else {
        return None;
    };
    let proxies = |up: &str| matches!(Target::for_upstream(up, model), Target::Proxy(_));
    let plain_route = |l: &Location| {
        let Location {
            path: _,
            kind: _,
            upstream,
            origin: _,
            options,
        } = l;
        *options == RouteOptions::default() && proxies(upstream)
    };
    let plain = tls.is_none()
        && !locations.is_empty()
        && !MAP_KEYWORDS.contains(&name.as_str())
        && locations.iter().all(plain_route);
    // The fallback answers only where no route covers `/`.
    let has_root = locations
        .iter()
        .any(|l| l.kind == PathKind::Prefix && l.path == "/");
    let fallback = fallback.as_ref().filter(|_| !has_root);
    (plain && fallback.is_none_or(|f| proxies(&f.upstream))).then(|| {
        let paths = locations.iter().map(|l| (l.path.clone(), l.kind)).collect();
        (paths, fallback.is_some())
    })
}

/// `map_hash_*` for the maps' keys (`hash_size.rs`), when there are maps.
pub(super) fn map_hash(out: &mut String, groups: &[Group], model: &Model) {
    if groups.is_empty() {
        return;
    }
    let size = hash_size::for_keys(groups.iter().flat_map(|g| names(g, model)));
    _ = writeln!(out, "    map_hash_bucket_size {};", size.bucket_size);
    _ = writeln!(out, "    map_hash_max_size {};\n", size.max_size);
}

fn names<'a>(g: &'a Group, model: &'a Model) -> impl Iterator<Item = &'a str> + 'a {
    g.hosts
        .iter()
        .filter_map(|&i| match &model.servers[i].host {
            Some(Host::Exact(h)) => Some(h.as_str()),
            _ => None,
        })
}

/// The variable holding route `route` (`f`: the fallback) of group `g`.
fn var(g: usize, route: &str) -> String {
    format!("$berth_g{g}_{route}")
}

/// One `map $host` per route of each group.
pub(super) fn maps(out: &mut String, groups: &[Group], model: &Model) {
    for (gi, g) in groups.iter().enumerate() {
        let routes = g.shape.0.len();
        for r in 0..routes + usize::from(g.shape.1) {
            let route = if r < routes {
                r.to_string()
            } else {
                "f".to_owned()
            };
            _ = writeln!(out, "    map $host {} {{", var(gi, &route));
            for &i in &g.hosts {
                let s = &model.servers[i];
                let up = match s.locations.get(r) {
                    Some(l) => &l.upstream,
                    None => &s.fallback.as_ref().expect("shape has a fallback").upstream,
                };
                if let Some(Host::Exact(h)) = &s.host {
                    _ = writeln!(out, "        {h} {up};");
                }
            }
            out.push_str("    }\n\n");
        }
    }
}

/// The shared server blocks.
pub(super) fn servers(out: &mut String, groups: &[Group], model: &Model, config: &RenderConfig) {
    let ctx = Ctx {
        tls: false,
        https_port: config.https_port,
        prefix: config.prefix_str(),
        model,
    };
    let o = RouteOptions::default();
    for (gi, g) in groups.iter().enumerate() {
        _ = writeln!(out, "    # shared: {} hosts", g.hosts.len());
        out.push_str("    server {\n");
        listen(out, config, config.http_port, false, false);
        out.push_str("        server_name");
        for name in names(g, model) {
            out.push_str("\n            ");
            out.push_str(name);
        }
        out.push_str(";\n");
        let mut has_root = false;
        let mut last_exact: Option<&str> = None;
        for (r, (path, kind)) in g.shape.0.iter().enumerate() {
            let v = var(gi, &r.to_string());
            let target = Target::Proxy(&v);
            match (kind, path.as_str()) {
                (PathKind::Exact, p) => {
                    location(out, "= ", p, "", &target, &o, &ctx, false);
                    last_exact = Some(path);
                }
                (PathKind::Prefix, "/") => {
                    location(out, "", "/", "", &target, &o, &ctx, true);
                    has_root = true;
                }
                (PathKind::Prefix, p) => {
                    if last_exact != Some(p) {
                        location(out, "= ", p, "", &target, &o, &ctx, false);
                    }
                    location(out, "^~ ", p, "/", &target, &o, &ctx, true);
                }
            }
        }
        if !has_root {
            let v = var(gi, "f");
            let target = if g.shape.1 {
                Target::Proxy(&v)
            } else {
                Target::NotFound
            };
            location(out, "", "/", "", &target, &o, &ctx, true);
        }
        out.push_str("    }\n\n");
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::super::render;
    use super::*;
    use crate::model::{Address, DefaultBackend, Kind, ObjectRef, ServerTls, TlsChoice, Upstream};

    fn host(name: &str, upstream: &str, options: RouteOptions) -> Server {
        let origin = ObjectRef::new(Kind::Ingress, "ns", name);
        let host = match name.strip_prefix("*.") {
            Some(suffix) => Host::Wildcard(suffix.into()),
            None => Host::Exact(name.into()),
        };
        Server {
            locations: vec![Location {
                path: "/app".into(),
                kind: PathKind::Prefix,
                upstream: upstream.into(),
                origin: origin.clone(),
                options,
            }],
            fallback: Some(DefaultBackend {
                upstream: "ns_fb_80".into(),
                origin,
            }),
            ..Server::new(Some(host))
        }
    }

    #[test]
    fn only_simple_hosts_share_and_the_rest_keep_their_blocks() {
        let up = |name: &str, n: usize| Upstream {
            name: name.into(),
            endpoints: vec![(Address::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)), 80); n],
        };
        let plain = RouteOptions::default();
        let mut tls = host("tls.test", "ns_a_80", plain.clone());
        tls.tls = Some(TlsChoice {
            certificate: ServerTls::Default,
            origin: ObjectRef::new(Kind::Ingress, "ns", "tls"),
        });
        let annotated = RouteOptions {
            proxy_read_timeout: Some(5),
            ..RouteOptions::default()
        };
        let mut servers = vec![
            host("a.test", "ns_a_80", plain.clone()),
            host("b.test", "ns_b_80", plain.clone()),
            host("default", "ns_a_80", plain.clone()),
            host("empty.test", "ns_none_80", plain.clone()),
            host("slow.test", "ns_a_80", annotated),
            tls,
            host("*.wild.test", "ns_a_80", plain),
        ];
        servers.sort_by(|a, b| a.host.cmp(&b.host));
        let model = Model {
            servers,
            upstreams: vec![
                up("ns_a_80", 1),
                up("ns_b_80", 1),
                up("ns_fb_80", 1),
                up("ns_none_80", 0),
            ],
            ..Model::default()
        };
        let mut rc = RenderConfig::new("/run/b", 80, 443).unwrap();
        rc.shared_min_hosts = 2;
        let conf = render(&model, &rc);
        assert!(
            conf.contains("server_name\n            a.test\n            b.test;\n"),
            "{conf}"
        );
        assert!(conf.contains(
            "map $host $berth_g0_0 {\n        a.test ns_a_80;\n        b.test ns_b_80;\n    }"
        ));
        assert!(conf.contains(
            "map $host $berth_g0_f {\n        a.test ns_fb_80;\n        b.test ns_fb_80;\n    }"
        ));
        assert!(conf.contains("location ^~ /app/ {\n            proxy_pass http://$berth_g0_0;"));
        assert!(conf.contains("location / {\n            proxy_pass http://$berth_g0_f;"));
        for own in [
            "default",
            "empty.test",
            "slow.test",
            "tls.test",
            "~^[^.]+\\.wild\\.test$",
        ] {
            assert!(
                conf.contains(&format!("server_name {own};\n")),
                "{own}: {conf}"
            );
        }
        assert!(!conf.contains("server_name a.test;"));
        // Below the threshold nothing is shared: the text is what it always was.
        rc.shared_min_hosts = 3;
        let conf = render(&model, &rc);
        assert!(!conf.contains("map $host") && conf.contains("server_name a.test;\n"));
    }
}
