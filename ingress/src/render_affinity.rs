//! `affinity: cookie` for `render.rs`: sticky backends by a cookie.
//!
//! Per (upstream, cookie name) a dedicated `upstream <name>_sticky_<id>` with the same servers
//! and `hash $berth_sticky_<id> consistent`, where `map $cookie_<name> $berth_sticky_<id>` is the
//! cookie, or `$request_id` for a client without it. Per (cookie, path, max-age) a
//! `map $cookie_<name> $berth_sticky_set_<id>` holding the `Set-Cookie` value
//! `<name>=$request_id; Path=..; [Max-Age=..;] HttpOnly` only when the request had no cookie, so
//! the new client's first answer carries the key its backend was chosen by (an empty value
//! sends no header). The location's own `add_header` stops nginx inheriting the http-level
//! HSTS one, so it is repeated (as for CORS). Values come from `translate/affinity.rs`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::model::{Affinity, Model};

fn id(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\n").as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn key_var(a: &Affinity) -> String {
    format!("$berth_sticky_{}", id(&[&a.cookie]))
}

fn set_var(a: &Affinity, route_path: &str) -> String {
    let age = a.max_age.map(|n| n.to_string()).unwrap_or_default();
    let path = a.path.as_deref().unwrap_or(route_path);
    format!("$berth_sticky_set_{}", id(&[&a.cookie, path, &age]))
}

/// What the dedicated upstream's name adds to the route's upstream name.
pub(crate) fn upstream_suffix(a: &Affinity) -> String {
    format!("_sticky_{}", id(&[&a.cookie]))
}

/// Does any route ask for affinity? (Then `$berth_hsts` must exist: `render_cors.rs`.)
pub(crate) fn any(model: &Model) -> bool {
    model
        .servers
        .iter()
        .flat_map(|s| &s.locations)
        .any(|l| l.options.affinity.is_some())
}

/// The http-level maps and dedicated upstreams, once each.
pub(crate) fn http_level(out: &mut String, model: &Model) {
    let (mut keys, mut sets, mut ups) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for l in model.servers.iter().flat_map(|s| &s.locations) {
        let Some(a) = l.options.affinity.as_deref() else {
            continue;
        };
        let c = &a.cookie;
        keys.insert(format!(
            "    map $cookie_{c} {} {{\n        \"\" $request_id;\n        default $cookie_{c};\n    }}",
            key_var(a)
        ));
        let path = a.path.as_deref().unwrap_or(&l.path);
        let age = a
            .max_age
            .map(|n| format!(" Max-Age={n};"))
            .unwrap_or_default();
        sets.insert(format!(
            "    map $cookie_{c} {} {{\n        \"\" \"{c}=$request_id; Path={path};{age} HttpOnly\";\n        default \"\";\n    }}",
            set_var(a, &l.path)
        ));
        let found = model
            .upstreams
            .binary_search_by(|u| u.name.as_str().cmp(&l.upstream));
        if let Ok(i) = found
            && !model.upstreams[i].endpoints.is_empty()
        {
            let u = &model.upstreams[i];
            let mut block = format!(
                "    upstream {}{} {{\n        hash {} consistent;\n",
                u.name,
                upstream_suffix(a),
                key_var(a)
            );
            for (addr, port) in &u.endpoints {
                _ = writeln!(block, "        server {addr}:{port};");
            }
            block.push_str("        keepalive 32;\n    }");
            ups.insert(block);
        }
    }
    for line in keys.iter().chain(&sets).chain(&ups) {
        _ = writeln!(out, "{line}");
    }
    if !keys.is_empty() {
        out.push('\n');
    }
}

/// The location's lines: the cookie for a new client (and HSTS again unless CORS repeats it).
pub(crate) fn location(out: &mut String, a: &Affinity, route_path: &str, cors: bool) {
    _ = writeln!(
        out,
        "            add_header Set-Cookie {};",
        set_var(a, route_path)
    );
    if !cors {
        out.push_str("            add_header Strict-Transport-Security $berth_hsts always;\n");
    }
}
