//! Model -> one complete nginx.conf (pure, deterministic).
//!
//! The template contract (what the text looks like and why):
//! - main context: `worker_processes`, `pid` and every temp path under [`RenderConfig::prefix`]
//!   (so tests can run a private nginx), `error_log stderr`; `events`; one `http` block.
//! - `http`: access log off (or to stderr), proxy headers set once (Host, X-Real-IP,
//!   X-Forwarded-For/-Proto/-Host, Upgrade/Connection via a `map`), one `upstream` per backend
//!   that has endpoints (an upstream without endpoints is never written; its routes `return 503`).
//! - a catch-all `server` (`default_server`, `server_name _`) with the host-less routes (and
//!   only there), then one `server` per host. Exact hosts use `server_name host`; a `*.example.com` wildcard uses the
//!   regex `~^[^.]+\.example\.com$` because nginx's own `*.` form would match several labels.
//! - locations: Exact `/p` -> `location = /p`; Prefix `/p` -> `location = /p` plus
//!   `location ^~ /p/` (element-wise: `/p`, `/p/`, `/p/x`, never `/px`); Prefix `/` ->
//!   `location /`. Exact wins over Prefix for the same path. A server without a `/` route falls
//!   back to its own fallback ([`Server::fallback`], commented with its origin), else
//!   `return 404`.
//! - TLS (only when a certificate exists: [`RenderConfig::self_signed_default`], the model's
//!   default certificate or a server's own): the catch-all also listens on `https_port` with
//!   `ssl http2 default_server`; a host with `spec.tls` listens there too with its certificate
//!   (`ssl_certificate` and `_key` name the same file, `PREFIX/tls/<id>.pem`, chain + key).
//!   HTTP/2 is on the TLS listener only (ALPN), so plain HTTP/1.1 clients are unaffected and
//!   gRPC works over TLS.
//! - per location (annotations): `allow CIDR; deny all;`, then on a TLS host
//!   `if ($scheme = http) { return 308 https://$host[:port]$request_uri; }` (the one safe use
//!   of `if`), `client_max_body_size`, `proxy_pass http|https://up[TARGET]` (rewrite-target =
//!   the URI part of proxy_pass, which replaces the matched prefix) or `grpc_pass grpc://up`,
//!   and the proxy/grpc read and connect timeouts.
//!
//! Every model string was validated (`validate.rs`), so it is written verbatim; the only other
//! inputs are numbers and the prefix path, which [`RenderConfig::new`] checks.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::model::{
    BackendProtocol, Host, Location, Model, PathKind, RouteOptions, Server, ServerTls, Upstream,
};
use crate::tls::SELF_SIGNED_ID;

/// Settings of the rendered config that do not come from objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderConfig {
    prefix: PathBuf,
    pub http_port: u16,
    /// Reserved for TLS servers.
    pub https_port: u16,
    /// Listen on this address only (tests: 127.0.0.1); `None` = all IPv4 addresses.
    pub listen_address: Option<IpAddr>,
    /// `None` = `auto`.
    pub worker_processes: Option<u16>,
    /// Access log to stderr instead of off.
    pub access_log: bool,
    /// `PREFIX/tls/berth-default-self-signed.pem` exists (written at start): the catch-all
    /// presents it unless the model has a default certificate.
    pub self_signed_default: bool,
}

/// The prefix path contains characters that cannot be written safely into nginx.conf.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("nginx prefix '{0}' must be absolute and use only letters, digits and / . _ - +")]
pub struct UnsafePrefix(pub String);

/// Keepalive connections each nginx worker keeps per upstream: reuse saves a TCP handshake per
/// request; 32 is nginx's documented example and ingress-nginx's default.
const UPSTREAM_KEEPALIVE: u32 = 32;
/// Per-worker connections: enough for the load tests without touching rlimits (nofile 1024 *
/// 4 would exceed it only under real production load, where it is raised anyway).
const WORKER_CONNECTIONS: u32 = 4096;

impl RenderConfig {
    pub fn new(
        prefix: impl Into<PathBuf>,
        http_port: u16,
        https_port: u16,
    ) -> Result<Self, UnsafePrefix> {
        let prefix = prefix.into();
        let text = prefix.to_str().unwrap_or("");
        let safe = text.starts_with('/')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b));
        if !safe {
            return Err(UnsafePrefix(
                prefix.to_string_lossy().escape_default().to_string(),
            ));
        }
        Ok(Self {
            prefix,
            http_port,
            https_port,
            listen_address: None,
            worker_processes: None,
            access_log: false,
            self_signed_default: false,
        })
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Where nginx writes its master pid.
    pub fn pid_file(&self) -> PathBuf {
        self.prefix.join("nginx.pid")
    }

    /// Directory of the certificate files (0700; files 0600).
    pub fn tls_dir(&self) -> PathBuf {
        self.prefix.join("tls")
    }

    fn prefix_str(&self) -> &str {
        // Checked in `new`.
        self.prefix.to_str().unwrap_or("/")
    }
}

/// Rough bytes per location, to size the output buffer once.
const BYTES_PER_LOCATION: usize = 160;

/// Render the whole nginx.conf.
pub fn render(model: &Model, config: &RenderConfig) -> String {
    let locations: usize = model.servers.iter().map(|s| s.locations.len()).sum();
    let mut out = String::with_capacity(4096 + locations * BYTES_PER_LOCATION * 2);
    main_context(&mut out, model, config);
    for u in &model.upstreams {
        upstream(&mut out, u);
    }
    let empty = Server::new(None);
    let catch_all = model
        .servers
        .iter()
        .find(|s| s.host.is_none())
        .unwrap_or(&empty);
    let default_cert = default_certificate(model, config);
    server(&mut out, catch_all, model, config, default_cert);
    for s in model.servers.iter().filter(|s| s.host.is_some()) {
        server(&mut out, s, model, config, default_cert);
    }
    out.push_str("}\n");
    out
}

/// Id of the catch-all's certificate, if any.
fn default_certificate<'a>(model: &'a Model, config: &RenderConfig) -> Option<&'a str> {
    match &model.default_certificate {
        Some(id) => Some(id),
        None if config.self_signed_default => Some(SELF_SIGNED_ID),
        None => None,
    }
}

/// Does any server listen for TLS?
fn any_tls(model: &Model, config: &RenderConfig) -> bool {
    default_certificate(model, config).is_some()
        || model.servers.iter().any(|s| {
            s.tls
                .as_ref()
                .is_some_and(|t| matches!(t.certificate, ServerTls::Certificate(_)))
        })
}

fn main_context(out: &mut String, model: &Model, config: &RenderConfig) {
    let prefix = config.prefix_str();
    out.push_str("# Generated by berth-ingress; every change here is overwritten.\n");
    match config.worker_processes {
        Some(n) => _ = writeln!(out, "worker_processes {n};"),
        None => out.push_str("worker_processes auto;\n"),
    }
    _ = writeln!(out, "pid {prefix}/nginx.pid;");
    out.push_str("error_log stderr warn;\n\n");
    _ = writeln!(
        out,
        "events {{\n    worker_connections {WORKER_CONNECTIONS};\n}}\n"
    );
    out.push_str("http {\n");
    out.push_str(if config.access_log {
        "    access_log /dev/stderr;\n"
    } else {
        "    access_log off;\n"
    });
    out.push_str(
        "    default_type application/octet-stream;\n    server_tokens off;\n    tcp_nodelay on;\n    keepalive_timeout 65s;\n",
    );
    for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        _ = writeln!(out, "    {temp}_temp_path {prefix}/{temp}_temp;");
    }
    let (bucket, max) = server_names_hash(model);
    _ = writeln!(out, "    server_names_hash_bucket_size {bucket};");
    _ = writeln!(out, "    server_names_hash_max_size {max};\n");
    out.push_str(
        "    map $http_upgrade $connection_upgrade {\n        default upgrade;\n        '' '';\n    }\n\n",
    );
    out.push_str(concat!(
        "    proxy_http_version 1.1;\n",
        "    proxy_set_header Host $host;\n",
        "    proxy_set_header X-Real-IP $remote_addr;\n",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n",
        "    proxy_set_header X-Forwarded-Proto $scheme;\n",
        "    proxy_set_header X-Forwarded-Host $host;\n",
        "    proxy_set_header Upgrade $http_upgrade;\n",
        "    proxy_set_header Connection $connection_upgrade;\n",
        "\n",
    ));
    if any_tls(model, config) {
        out.push_str(concat!(
            "    ssl_protocols TLSv1.2 TLSv1.3;\n",
            "    ssl_prefer_server_ciphers off;\n",
            "    ssl_session_cache shared:berth_ssl:10m;\n",
            "    ssl_session_timeout 10m;\n",
            "\n",
        ));
    }
}

/// `server_names_hash_*` sized for the hosts present: nginx refuses to start when a name does
/// not fit a bucket or the names do not fit the table.
fn server_names_hash(model: &Model) -> (usize, usize) {
    let (mut count, mut longest) = (0usize, 0usize);
    for s in &model.servers {
        if let Some(Host::Exact(h)) = &s.host {
            count += 1;
            longest = longest.max(h.len());
        }
    }
    let bucket = (longest + 32).next_power_of_two().max(64);
    let max = (count * 2).next_power_of_two().max(1024);
    (bucket, max)
}

fn upstream(out: &mut String, u: &Upstream) {
    if u.endpoints.is_empty() {
        return;
    }
    _ = writeln!(out, "    upstream {} {{", u.name);
    for (addr, port) in &u.endpoints {
        _ = writeln!(out, "        server {addr}:{port};");
    }
    _ = writeln!(out, "        keepalive {UPSTREAM_KEEPALIVE};\n    }}\n");
}

fn listen(out: &mut String, config: &RenderConfig, port: u16, ssl: bool, default: bool) {
    out.push_str("        listen ");
    match config.listen_address {
        Some(IpAddr::V4(ip)) => _ = write!(out, "{ip}:"),
        Some(IpAddr::V6(ip)) => _ = write!(out, "[{ip}]:"),
        None => {}
    }
    _ = write!(out, "{port}");
    if ssl {
        out.push_str(" ssl http2");
    }
    out.push_str(if default { " default_server;\n" } else { ";\n" });
}

fn server(
    out: &mut String,
    s: &Server,
    model: &Model,
    config: &RenderConfig,
    default_cert: Option<&str>,
) {
    out.push_str("    server {\n");
    listen(out, config, config.http_port, false, s.host.is_none());
    let cert = match (&s.host, s.tls.as_ref().map(|t| &t.certificate)) {
        (None, _) => default_cert,
        (Some(_), Some(ServerTls::Certificate(id))) => Some(id.as_str()),
        (Some(_), Some(ServerTls::Default)) => default_cert,
        (Some(_), None) => None,
    };
    if let Some(id) = cert {
        listen(out, config, config.https_port, true, s.host.is_none());
        let dir = config.tls_dir();
        let dir = dir.to_str().unwrap_or("/");
        _ = writeln!(out, "        ssl_certificate {dir}/{id}.pem;");
        _ = writeln!(out, "        ssl_certificate_key {dir}/{id}.pem;");
    }
    match &s.host {
        None => out.push_str("        server_name _;\n"),
        Some(Host::Exact(h)) => _ = writeln!(out, "        server_name {h};"),
        Some(Host::Wildcard(suffix)) => {
            out.push_str("        server_name ~^[^.]+");
            for label in suffix.split('.') {
                out.push_str("\\.");
                out.push_str(label);
            }
            out.push_str("$;\n");
        }
    }
    // Redirects apply to hosts with TLS, not to the catch-all's self-signed listener.
    let ctx = Ctx {
        tls: s.host.is_some() && cert.is_some(),
        https_port: config.https_port,
    };
    let mut has_root = false;
    let mut last_exact: Option<&str> = None;
    for loc in &s.locations {
        let target = Target::of(loc, model);
        _ = writeln!(out, "        # {}", loc.origin);
        let o = &loc.options;
        match (loc.kind, loc.path.as_str()) {
            (PathKind::Exact, p) => {
                location(out, "= ", p, "", &target, o, &ctx, false);
                last_exact = Some(&loc.path);
            }
            (PathKind::Prefix, "/") => {
                location(out, "", "/", "", &target, o, &ctx, true);
                has_root = true;
            }
            (PathKind::Prefix, p) => {
                if last_exact != Some(p) {
                    location(out, "= ", p, "", &target, o, &ctx, false);
                }
                location(out, "^~ ", p, "/", &target, o, &ctx, true);
            }
        }
    }
    if !has_root {
        if let Some(d) = &s.fallback {
            _ = writeln!(out, "        # {} (default backend)", d.origin);
        }
        let target = match &s.fallback {
            Some(d) => Target::for_upstream(&d.upstream, model),
            None => Target::NotFound,
        };
        let o = RouteOptions::default();
        location(out, "", "/", "", &target, &o, &ctx, true);
    }
    out.push_str("    }\n\n");
}

/// Per-server facts a location needs.
struct Ctx {
    tls: bool,
    https_port: u16,
}

/// What a location does.
enum Target<'a> {
    Proxy(&'a str),
    Unavailable,
    NotFound,
}

impl<'a> Target<'a> {
    fn of(loc: &'a Location, model: &'a Model) -> Self {
        Self::for_upstream(&loc.upstream, model)
    }

    fn for_upstream(name: &'a str, model: &'a Model) -> Self {
        let found = model
            .upstreams
            .binary_search_by(|u| u.name.as_str().cmp(name));
        match found {
            Ok(i) if !model.upstreams[i].endpoints.is_empty() => {
                Target::Proxy(&model.upstreams[i].name)
            }
            _ => Target::Unavailable,
        }
    }
}

/// One location block. `slash`: the location ends in `/` (or is `/`), so a rewrite target
/// gets a trailing slash too (element-wise prefix replacement).
#[allow(clippy::too_many_arguments)]
fn location(
    out: &mut String,
    modifier: &str,
    path: &str,
    suffix: &str,
    target: &Target<'_>,
    o: &RouteOptions,
    ctx: &Ctx,
    slash: bool,
) {
    out.push_str("        location ");
    out.push_str(modifier);
    out.push_str(path);
    out.push_str(suffix);
    out.push_str(" {\n");
    if !o.allow_source_ranges.is_empty() {
        for c in &o.allow_source_ranges {
            _ = writeln!(out, "            allow {c};");
        }
        out.push_str("            deny all;\n");
    }
    if ctx.tls && o.ssl_redirect {
        out.push_str("            if ($scheme = http) {\n                return 308 https://$host");
        if ctx.https_port != 443 {
            _ = write!(out, ":{}", ctx.https_port);
        }
        out.push_str("$request_uri;\n            }\n");
    }
    if let Some(size) = &o.proxy_body_size {
        _ = writeln!(out, "            client_max_body_size {size};");
    }
    match target {
        Target::Proxy(name) => {
            let (directive, scheme, prefix) = match o.backend_protocol {
                BackendProtocol::Http => ("proxy_pass", "http", "proxy"),
                BackendProtocol::Https => ("proxy_pass", "https", "proxy"),
                BackendProtocol::Grpc => ("grpc_pass", "grpc", "grpc"),
            };
            _ = write!(out, "            {directive} {scheme}://{name}");
            if let Some(t) = &o.rewrite_target {
                out.push_str(t);
                if slash && t != "/" {
                    out.push('/');
                }
            }
            out.push_str(";\n");
            if let Some(n) = o.proxy_read_timeout {
                _ = writeln!(out, "            {prefix}_read_timeout {n}s;");
            }
            if let Some(n) = o.proxy_connect_timeout {
                _ = writeln!(out, "            {prefix}_connect_timeout {n}s;");
            }
        }
        Target::Unavailable => out.push_str("            return 503;\n"),
        Target::NotFound => out.push_str("            return 404;\n"),
    }
    out.push_str("        }\n");
}
