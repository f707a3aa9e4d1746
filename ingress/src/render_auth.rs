//! Access control of a location for `render.rs`: source ranges (`deny`, then `allow` +
//! `deny all`), basic authentication (`auth_basic` + the htpasswd file under `PREFIX/auth`),
//! external authentication (`auth_request` to an internal location, and that location).
//! Every value written here passed the grammars of `validate.rs` and `translate/`.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::model::{ExternalAuth, RouteOptions};

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

/// The access-control lines of one location. `prefix`: the checked nginx prefix.
pub(crate) fn access(out: &mut String, o: &RouteOptions, prefix: &str) {
    for c in &o.deny_source_ranges {
        _ = writeln!(out, "            deny {c};");
    }
    if !o.allow_source_ranges.is_empty() {
        for c in &o.allow_source_ranges {
            _ = writeln!(out, "            allow {c};");
        }
        out.push_str("            deny all;\n");
    }
    if let Some(a) = &o.basic_auth {
        _ = writeln!(out, "            auth_basic \"{}\";", a.realm);
        _ = writeln!(
            out,
            "            auth_basic_user_file {}/auth/{}.htpasswd;",
            prefix, a.file.id
        );
    }
    if let Some(a) = &o.external_auth {
        _ = writeln!(out, "            auth_request {};", auth_location(a));
        for h in &a.response_headers {
            let var = header_var(h);
            _ = writeln!(
                out,
                "            auth_request_set $berth_auth_{var} $upstream_http_{var};"
            );
        }
    }
}
