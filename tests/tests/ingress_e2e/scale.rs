//! Thousands of hosts through a real nginx: the rendered config of 6 000 hosts (short,
//! long and maximal names) passes `nginx -t` without a single warning (the server-name and
//! map hashes are sized from the names), and nginx started on it routes a sample of them.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, ensure};
use berth_ingress::model::{
    Address, Host, Kind, Location, Model, ObjectRef, PathKind, RouteOptions, Server, Upstream,
};
use berth_ingress::render::{RenderConfig, render};
use berth_tests::backend::Backend;
use berth_tests::nginx::{Nginx, http_get};

/// Hosts in the scale config: above the 5 000 the issue measured.
const HOSTS: usize = 6_000;

/// Name sets nginx's default-ish sizing gets wrong: all short (one per 64-byte bucket), all
/// 90+ characters (one per 128-byte bucket), and mixed with a few at the DNS limit (253).
#[derive(Clone, Copy, Debug)]
enum Names {
    Short,
    Long,
    Mixed,
}

/// The `i`-th host name of a set.
fn host_name(names: Names, i: usize) -> String {
    let long = || {
        format!(
            "host-{i:05}-with-a-rather-long-label.team-{:02}.apps.eu-west.example.com",
            i % 97
        )
    };
    match names {
        Names::Short => format!("h{i}.example.com"),
        Names::Long => format!("{}.cluster.example.com", long()),
        Names::Mixed if i.is_multiple_of(3500) => {
            let label = "l".repeat(63);
            let mut name = format!("m{i:05}.{label}.{label}.{label}");
            name.truncate(253 - ".example.com".len());
            format!("{}.example.com", name.trim_end_matches('.'))
        }
        Names::Mixed if i.is_multiple_of(7) => long(),
        Names::Mixed => format!("h{i}.example.com"),
    }
}

/// `HOSTS` hosts, each with its own upstream on 127.0.0.1: host `i` on `ports[i % 2]`.
/// Short and mixed names route `/`; long names route `/api` (Exact) and `/app` (Prefix) and
/// answer 404 elsewhere. Every 100th mixed host has an annotation (a dedicated block).
fn model(names: Names, ports: [u16; 2]) -> Model {
    let mut servers = Vec::with_capacity(HOSTS);
    let mut upstreams = Vec::with_capacity(HOSTS);
    for i in 0..HOSTS {
        let up = format!("scale_h{i:05}_80");
        let origin = ObjectRef::new(Kind::Ingress, "scale", format!("h{i}"));
        let route = |path: &str, kind| Location {
            path: path.into(),
            kind,
            upstream: up.clone(),
            origin: origin.clone(),
            options: RouteOptions {
                proxy_read_timeout: (matches!(names, Names::Mixed) && i % 100 == 0).then_some(5),
                ..RouteOptions::default()
            },
        };
        let locations = match names {
            Names::Long => vec![
                route("/api", PathKind::Exact),
                route("/app", PathKind::Prefix),
            ],
            _ => vec![route("/", PathKind::Prefix)],
        };
        servers.push(Server {
            locations,
            ..Server::new(Some(Host::Exact(host_name(names, i))))
        });
        upstreams.push(Upstream {
            name: up,
            endpoints: vec![(Address::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)), ports[i % 2])],
        });
    }
    servers.sort_by(|a, b| a.host.cmp(&b.host));
    upstreams.sort_by(|a, b| a.name.cmp(&b.name));
    Model {
        servers,
        upstreams,
        ..Model::default()
    }
}

/// 6 000 hosts, for each name set: `nginx -t` says nothing but "syntax is ok" / "test is
/// successful", and a sample of the names is routed.
pub fn six_thousand_hosts_pass_nginx_t_without_warnings() -> Result<()> {
    let backends = [Backend::start("even")?, Backend::start("odd")?];
    for names in [Names::Short, Names::Long, Names::Mixed] {
        check(names, &backends).with_context(|| format!("{names:?} names"))?;
    }
    Ok(())
}

fn check(names: Names, backends: &[Backend; 2]) -> Result<()> {
    let m = model(names, [backends[0].port, backends[1].port]);
    let nginx = Nginx::start_with(|prefix, port| {
        let mut rc = RenderConfig::new(prefix, port, port + 1).expect("safe prefix");
        rc.listen_address = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        rc.worker_processes = Some(1);
        render(&m, &rc)
    })?;
    let out = nginx.command().arg("-t").output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "nginx -t failed:\n{stderr}");
    let noise: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("syntax is ok") && !l.contains("test is successful"))
        .collect();
    ensure!(
        noise.is_empty(),
        "nginx -t on {HOSTS} hosts warned:\n{}",
        noise.join("\n")
    );
    let paths: &[(&str, bool)] = match names {
        Names::Long => &[
            ("/api", true),
            ("/api/x", false),
            ("/app", true),
            ("/app/", true),
            ("/app/x", true),
            ("/apple", false),
            ("/", false),
        ],
        _ => &[("/", true), ("/x/y", true)],
    };
    for i in [0, 1, 7, 100, 1000, 2999, 3500, HOSTS - 1] {
        let host = host_name(names, i);
        let backend = &backends[i % 2];
        for &(path, routed) in paths {
            let r = http_get(&nginx.addr(), &host, path).with_context(|| format!("GET {host}"))?;
            let ok = if routed {
                r.status == 200 && r.body == backend.body_for(path)
            } else {
                r.status == 404
            };
            ensure!(ok, "{host}{path} answered {} {}", r.status, r.body);
        }
    }
    let r = http_get(&nginx.addr(), "unknown.example.com", "/")?;
    ensure!(r.status == 404, "an unknown host answered {}", r.status);
    Ok(())
}
