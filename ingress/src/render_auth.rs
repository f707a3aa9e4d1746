//! Rendering of external authentication (`auth-url`) for `render.rs`: the name of the
//! internal location an `auth_request` goes to, and that location. Every value written here
//! passed `translate/external_auth.rs`'s grammars.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::model::ExternalAuth;

/// The internal location an `auth_request` goes to. It starts with `//`, which no validated
/// Ingress path contains and no client request reaches (nginx merges slashes and the location
/// is `internal`).
pub(crate) fn auth_location(a: &ExternalAuth) -> String {
    let key = format!(
        "{}://{}:{:?}{} {:?} {:?}",
        a.scheme, a.host, a.port, a.path, a.method, a.response_headers
    );
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("//berth-auth/{hex}")
}

/// `X-Auth-User` -> `x_auth_user` (nginx's `$upstream_http_` spelling).
pub(crate) fn header_var(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// `location = //berth-auth/<hash>`: proxies the request's headers (not its body) to the
/// auth URL; 2xx lets the request through, 401/403 are returned to the client.
pub(crate) fn external_auth_location(out: &mut String, a: &ExternalAuth) {
    _ = writeln!(out, "        location = {} {{", auth_location(a));
    out.push_str("            internal;\n");
    let port = a.port.map(|p| format!(":{p}")).unwrap_or_default();
    _ = writeln!(
        out,
        "            proxy_pass {}://{}{port}{};",
        a.scheme, a.host, a.path
    );
    if let Some(m) = a.method {
        _ = writeln!(out, "            proxy_method {m};");
    }
    if a.scheme == "https" {
        out.push_str("            proxy_ssl_server_name on;\n");
    }
    out.push_str(concat!(
        "            proxy_pass_request_body off;\n",
        "            proxy_set_header Content-Length \"\";\n",
        "            proxy_set_header X-Original-URI $request_uri;\n",
        "            proxy_set_header X-Original-Method $request_method;\n",
        "            proxy_set_header X-Original-URL $scheme://$host$request_uri;\n",
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n",
        "            proxy_set_header X-Forwarded-Proto $scheme;\n",
        "            proxy_set_header X-Forwarded-Host $host;\n",
    ));
    _ = writeln!(out, "            proxy_set_header Host {}{port};", a.host);
    out.push_str("        }\n");
}
