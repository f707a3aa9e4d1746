//! The head of a `server` block for `render.rs` and `render_gateway.rs` (pure): its `listen`
//! lines (HTTP, HTTPS with `ssl http2`, `default_server` for the catch-all), the certificate
//! it presents and its `server_name` (an exact host, or the regex a `*.` wildcard stands for).

use std::fmt::Write as _;
use std::net::IpAddr;

use super::RenderConfig;
use crate::model::{Host, ServerTls};

pub(crate) fn listen(out: &mut String, config: &RenderConfig, port: u16, ssl: bool, default: bool) {
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

/// How many labels a `*.` host name stands for: Ingress one, Gateway API one or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wildcard {
    OneLabel,
    Labels,
}

/// Which ports a server block listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ports {
    /// HTTP, and HTTPS when it has a certificate (an Ingress host).
    Both,
    /// The HTTP port only (Gateway API routes of HTTP listeners).
    Http,
    /// The HTTPS port only (Gateway API routes of HTTPS listeners); without a certificate
    /// nginx refuses the config rather than serve it in the clear.
    Https,
}

/// `server {`, its listeners, certificate and `server_name`; returns the certificate id the
/// server presents, if any.
pub(crate) fn server_head<'a>(
    out: &mut String,
    host: &Option<Host>,
    tls: Option<&'a crate::model::TlsChoice>,
    config: &RenderConfig,
    default_cert: Option<&'a str>,
    (ports, wildcard_labels): (Ports, Wildcard),
) -> Option<&'a str> {
    out.push_str("    server {\n");
    if ports != Ports::Https {
        listen(out, config, config.http_port, false, host.is_none());
    }
    let cert = match (host, tls.map(|t| &t.certificate)) {
        _ if ports == Ports::Http => None,
        (None, _) => default_cert,
        (Some(_), Some(ServerTls::Certificate(id))) => Some(id.as_str()),
        (Some(_), Some(ServerTls::Default)) => default_cert,
        (Some(_), None) => None,
    };
    if cert.is_some() || ports == Ports::Https {
        listen(out, config, config.https_port, true, host.is_none());
    }
    if let Some(id) = cert {
        let dir = config.tls_dir();
        let dir = dir.to_str().unwrap_or("/");
        _ = writeln!(out, "        ssl_certificate {dir}/{id}.pem;");
        _ = writeln!(out, "        ssl_certificate_key {dir}/{id}.pem;");
    }
    match host {
        None => out.push_str("        server_name _;\n"),
        Some(Host::Exact(h)) => _ = writeln!(out, "        server_name {h};"),
        Some(Host::Wildcard(suffix)) => {
            out.push_str(match wildcard_labels {
                Wildcard::OneLabel => "        server_name ~^[^.]+",
                Wildcard::Labels => "        server_name ~^[^.]+(\\.[^.]+)*",
            });
            for label in suffix.split('.') {
                out.push_str("\\.");
                out.push_str(label);
            }
            out.push_str("$;\n");
        }
    }
    cert
}
