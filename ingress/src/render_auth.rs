//! Access control of a location for `render.rs`: source ranges (`deny`, then `allow` +
//! `deny all`), basic authentication (`auth_basic` + the htpasswd file under `PREFIX/auth`),
//! external authentication (`auth_request` to an internal location, and that location), and
//! `auth-signin` (`error_page 401` to a named location answering `302` to the sign-in URL with
//! the original URL in its query, built by two http-level `map`s that pass only unreserved
//! characters: a client-controlled value never reaches the `Location` header unchecked).
//! Every value written here passed the grammars of `validate.rs` and `translate/`.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::model::{ExternalAuth, Model, RouteOptions, Signin};

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

/// The named location a `401` of the auth service goes to with `auth-signin`.
pub(crate) fn signin_location(s: &Signin) -> String {
    let key = format!(
        "{}://{}:{:?}{} {}",
        s.scheme, s.host, s.port, s.path, s.redirect_param
    );
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("@berth_signin_{hex}")
}

/// The http-level maps `auth-signin` needs (when a route has one): `$berth_signin_path` is
/// the request URI up to its first character outside `A-Z a-z 0-9 / . _ ~ -` (so never a
/// query, a `%`, `&` or a control character), `$berth_signin_host` the `Host` when it is a
/// plain lowercase name, else empty.
pub(crate) fn http_level(out: &mut String, model: &Model) {
    let any = model.servers.iter().flat_map(|s| &s.locations).any(|l| {
        l.options
            .external_auth
            .as_ref()
            .is_some_and(|a| a.signin.is_some())
    });
    if any {
        out.push_str(concat!(
            "    map $request_uri $berth_signin_path {\n",
            "        \"~^(?<berth_signin_p>/[A-Za-z0-9/._~-]*)\" $berth_signin_p;\n",
            "        default /;\n",
            "    }\n",
            "    map $host $berth_signin_host {\n",
            "        \"~^[a-z0-9.-]+$\" $host;\n",
            "        default \"\";\n",
            "    }\n\n",
        ));
    }
}

/// `location @berth_signin_<hash>`: `302` to the sign-in URL, the original URL (scheme, host,
/// path; no query) percent-encoded in the redirect parameter.
pub(crate) fn signin_named_location(out: &mut String, s: &Signin) {
    let port = s.port.map(|p| format!(":{p}")).unwrap_or_default();
    _ = writeln!(out, "        location {} {{", signin_location(s));
    _ = writeln!(
        out,
        "            return 302 {}://{}{port}{}?{}=$scheme%3A%2F%2F$berth_signin_host$berth_signin_path;",
        s.scheme, s.host, s.path, s.redirect_param
    );
    out.push_str("        }\n");
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
        if let Some(s) = &a.signin {
            _ = writeln!(out, "            error_page 401 = {};", signin_location(s));
        }
        for h in &a.response_headers {
            let var = header_var(h);
            _ = writeln!(
                out,
                "            auth_request_set $berth_auth_{var} $upstream_http_{var};"
            );
        }
    }
}
