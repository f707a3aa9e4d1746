//! Gateway API servers for `render.rs` (pure). What the text looks like and why:
//!
//! - One `location` per distinct path (`= /p`, `^~ /p/`, `/`), as for Ingress. When its best
//!   entry has no conditions, the location does that rule itself. Otherwise an http-level
//!   `map` picks the rule: its key is one `0`/`1` per condition the location's entries use
//!   (`$berth_gwc_<hash>`: a `map` of `$request_method`, `$http_<name>` or `$arg_<name>` to
//!   `1` on an exact regular expression), its entries are the rules' patterns in precedence
//!   order (nginx takes the first matching regular expression), the value a rule id:
//!   `rewrite ^ /_berth_gw/<id>$uri last;` reaches that rule's `internal` location; no rule:
//!   404.
//! - A rule: `RequestRedirect` is a `rewrite ... permanent|redirect` to the computed URL
//!   (the query is kept); otherwise `proxy_pass http://<upstream>$request_uri` (the original
//!   URI), or, with a `URLRewrite` path, `rewrite ... break` + `proxy_pass http://<upstream>`
//!   (the prefix of the match is cut by length: `.{N}`). Weighted backends:
//!   `split_clients $request_id` over the upstream names (`_500`: an unresolved backendRef,
//!   `_503`: no endpoints). Header modifiers: `proxy_set_header` (every default header
//!   repeated, since nginx inherits none once a location sets one), an `add` through a `map`
//!   that appends to the client's value; `add_header ... always` / `proxy_hide_header` for
//!   responses. GRPCRoute rules use `grpc_pass grpc://` (no URI: the path is restored first).
//!
//! Every name and value passed `gateway/grammar.rs` and is written verbatim.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::model::{
    GwAction, GwEntry, GwLocation, GwProxy, GwRedirect, GwRule, GwServer, HeaderMods, Model,
    PathKind, PathModifier,
};
use crate::render::{PROXY_HEADERS, Ports, RenderConfig, Wildcard, server_head};

fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// One condition: (nginx source variable, exact value).
type Cond<'a> = (String, &'a str);

fn conds(e: &GwEntry) -> Vec<Cond<'_>> {
    let mut v: Vec<Cond<'_>> = Vec::new();
    if let Some(m) = &e.method {
        v.push(("$request_method".into(), m));
    }
    for (n, val) in &e.headers {
        v.push((format!("$http_{}", n.replace('-', "_")), val));
    }
    for (n, val) in &e.query {
        v.push((format!("$arg_{n}"), val));
    }
    v
}

fn cond_var(c: &Cond<'_>) -> String {
    format!("$berth_gwc_{}", hash(&format!("{}\n{}", c.0, c.1)))
}

/// Does the location need a map (its first entry has conditions)?
fn needs_map(l: &GwLocation) -> bool {
    l.entries.first().is_some_and(|e| !e.unconditional())
}

fn location_var(host: &str, l: &GwLocation) -> String {
    format!(
        "$berth_gwr_{}",
        hash(&format!("{host}\n{:?}\n{}", l.kind, l.path))
    )
}

/// What names a server's location maps: its host, and the scheme (a host attached through
/// HTTP and HTTPS listeners has a server of each, with their own rules).
fn host_text(s: &GwServer) -> String {
    let host = s.host.as_ref().map_or("_".into(), |h| h.to_string());
    if s.https {
        format!("{host} https")
    } else {
        host
    }
}

fn live(name: &str, model: &Model) -> bool {
    model
        .upstreams
        .binary_search_by(|u| u.name.as_str().cmp(name))
        .is_ok_and(|i| !model.upstreams[i].endpoints.is_empty())
}

/// Where a proxied rule sends a request: a literal upstream, a split variable, or a status.
enum Target {
    Upstream(String),
    Split(String),
    Status(u16),
}

fn target(rule: &GwRule, p: &GwProxy, model: &Model) -> Target {
    match &p.backends[..] {
        [] => Target::Status(500),
        [(None, _)] => Target::Status(500),
        [(Some(u), _)] if live(u, model) => Target::Upstream(u.clone()),
        [(Some(_), _)] => Target::Status(503),
        _ => Target::Split(format!("$berth_gws_{}", rule.id)),
    }
}

fn add_var(name: &str, value: &str) -> String {
    format!("$berth_gwa_{}", hash(&format!("{name}\n{value}")))
}

/// Every http-level block the Gateway API servers need, once each.
pub(crate) fn http_level(out: &mut String, model: &Model) {
    let mut cond_maps: BTreeMap<String, (String, &str)> = BTreeMap::new();
    let mut splits: BTreeMap<&str, &GwProxy> = BTreeMap::new();
    let mut adds: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for s in &model.gateway {
        let host = host_text(s);
        for l in &s.locations {
            let reached: &[GwEntry] = if needs_map(l) {
                &l.entries
            } else {
                &l.entries[..1]
            };
            if needs_map(l) {
                let all: BTreeSet<(String, &str)> = l.entries.iter().flat_map(conds).collect();
                let all: Vec<(String, &str)> = all.into_iter().collect();
                for c in &all {
                    cond_maps.insert(cond_var(c), c.clone());
                }
                let key: String = all.iter().map(cond_var).collect();
                _ = writeln!(out, "    map \"{key}\" {} {{", location_var(&host, l));
                let mut default = "\"\"".to_owned();
                for e in &l.entries {
                    if e.unconditional() {
                        default = e.rule.id.clone();
                        break;
                    }
                    let mine = conds(e);
                    let pattern: String = all
                        .iter()
                        .map(|c| if mine.contains(c) { '1' } else { '.' })
                        .collect();
                    _ = writeln!(out, "        \"~^{pattern}\" {};", e.rule.id);
                }
                _ = writeln!(out, "        default {default};\n    }}\n");
            }
            for e in reached {
                if let GwAction::Proxy(p) = &e.rule.action {
                    if p.backends.len() > 1 {
                        splits.insert(&e.rule.id, p);
                    }
                    for (n, v) in &p.request_headers.add {
                        adds.insert(add_var(n, v), (n, v));
                    }
                }
            }
        }
    }
    for (var, (source, value)) in &cond_maps {
        let re = crate::gateway::grammar::exact_regex(value);
        _ = writeln!(
            out,
            "    map {source} {var} {{\n        \"~{re}\" 1;\n        default 0;\n    }}\n"
        );
    }
    for (var, (name, value)) in &adds {
        let client = format!("$http_{}", name.replace('-', "_"));
        _ = writeln!(
            out,
            "    map {client} {var} {{\n        \"\" \"{value}\";\n        default \"{client},{value}\";\n    }}\n"
        );
    }
    for (id, p) in splits {
        let total: u64 = p.backends.iter().map(|(_, w)| u64::from(*w)).sum();
        _ = writeln!(out, "    split_clients \"$request_id\" $berth_gws_{id} {{");
        let n = p.backends.len();
        for (i, (up, w)) in p.backends.iter().enumerate() {
            let value = match up {
                Some(u) if live(u, model) => u.as_str(),
                Some(_) => "_503",
                None => "_500",
            };
            if i + 1 == n {
                _ = writeln!(out, "        * {value};");
            } else {
                // Hundredths of a percent, rounded down (nginx allows two decimals).
                let share = u64::from(*w) * 10_000 / total.max(1);
                _ = writeln!(out, "        {}.{:02}% {value};", share / 100, share % 100);
            }
        }
        out.push_str("    }\n\n");
    }
}

/// One Gateway API server block (the catch-all when `s.host` is `None`).
pub(crate) fn server(
    out: &mut String,
    s: &GwServer,
    config: &RenderConfig,
    default_cert: Option<&str>,
    model: &Model,
) {
    server_head(
        out,
        &s.host,
        s.tls.as_ref(),
        config,
        default_cert,
        (
            if s.https { Ports::Https } else { Ports::Http },
            Wildcard::Labels,
        ),
    );
    let host = host_text(s);
    let mut internal: BTreeMap<&str, &GwRule> = BTreeMap::new();
    let mut has_root = false;
    for l in &s.locations {
        let (modifier, suffix) = match (l.kind, l.path.as_str()) {
            (PathKind::Exact, _) => ("= ", ""),
            (PathKind::Prefix, "/") => {
                has_root = true;
                ("", "")
            }
            (PathKind::Prefix, _) => ("^~ ", "/"),
        };
        let origins: BTreeSet<String> = l
            .entries
            .iter()
            .map(|e| e.rule.origin.to_string())
            .collect();
        for o in origins {
            _ = writeln!(out, "        # {o}");
        }
        _ = writeln!(out, "        location {modifier}{}{suffix} {{", l.path);
        if needs_map(l) {
            let var = location_var(&host, l);
            if l.entries.last().is_none_or(|e| !e.unconditional()) {
                _ = writeln!(
                    out,
                    "            if ({var} = \"\") {{\n                return 404;\n            }}"
                );
            }
            _ = writeln!(out, "            rewrite ^ /_berth_gw/{var}$uri last;");
            for e in &l.entries {
                internal.insert(&e.rule.id, &e.rule);
            }
        } else if let Some(e) = l.entries.first() {
            action(out, &e.rule, "", model);
        } else {
            out.push_str("            return 404;\n");
        }
        out.push_str("        }\n");
    }
    if !has_root {
        out.push_str("        location / {\n            return 404;\n        }\n");
    }
    for (id, rule) in internal {
        _ = writeln!(
            out,
            "        # {}\n        location ^~ /_berth_gw/{id}/ {{\n            internal;",
            rule.origin
        );
        action(out, rule, &format!("/_berth_gw/{id}"), model);
        out.push_str("        }\n");
    }
    out.push_str("    }\n\n");
}

/// `rewrite` directives applying `m` to `$uri` (which starts with `strip`) into `prefix`.
fn path_rewrites(out: &mut String, strip: &str, m: &PathModifier, prefix: &str, flag: &str) {
    match m {
        PathModifier::Full(p) => {
            _ = writeln!(out, "            rewrite \"(?s)^\" {prefix}{p} {flag};");
        }
        PathModifier::Prefix { skip, replace } => {
            let whole = if replace.is_empty() { "/" } else { replace };
            _ = writeln!(
                out,
                "            rewrite \"(?s)^{strip}.{{{skip}}}$\" {prefix}{whole} {flag};"
            );
            _ = writeln!(
                out,
                "            rewrite \"(?s)^{strip}.{{{skip}}}(.*)$\" {prefix}{replace}$1 {flag};"
            );
        }
    }
}

fn action(out: &mut String, rule: &GwRule, strip: &str, model: &Model) {
    match &rule.action {
        GwAction::Redirect(r) => redirect(out, r, strip),
        GwAction::Proxy(p) => proxy(out, rule, p, strip, model),
    }
}

fn redirect(out: &mut String, r: &GwRedirect, strip: &str) {
    let host = r.hostname.as_deref().unwrap_or("$host");
    // The spec's port: `port`, else the well-known port of an explicit scheme, else the
    // request's listener port; never written when it is 80 for http or 443 for https.
    let shown = |scheme: &str, port: Option<u16>| match (scheme, port) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => String::new(),
        (_, Some(p)) => format!(":{p}"),
    };
    let Some(scheme) = r.scheme else {
        let (plain, tls) = r.listener_ports;
        let plain = format!("http://{host}{}", shown("http", r.port.or(plain)));
        let tls = format!("https://{host}{}", shown("https", r.port.or(tls)));
        out.push_str("            if ($scheme = \"https\") {\n");
        redirect_to(out, r, strip, &tls);
        out.push_str("            }\n");
        redirect_to(out, r, strip, &plain);
        return;
    };
    redirect_to(
        out,
        r,
        strip,
        &format!("{scheme}://{host}{}", shown(scheme, r.port)),
    );
}

fn redirect_to(out: &mut String, r: &GwRedirect, strip: &str, prefix: &str) {
    let flag = if r.code == 301 {
        "permanent"
    } else {
        "redirect"
    };
    let prefix = prefix.to_owned();
    match &r.path {
        Some(m) => path_rewrites(out, strip, m, &prefix, flag),
        None => {
            _ = writeln!(
                out,
                "            rewrite \"(?s)^{strip}(.*)$\" {prefix}$1 {flag};"
            )
        }
    }
}

fn headers(out: &mut String, directive: &str, m: &HeaderMods, hostname: Option<&str>, grpc: bool) {
    let set = |name: &str| m.set.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    let removed = |name: &str| m.remove.iter().any(|n| n.eq_ignore_ascii_case(name));
    if !grpc {
        for (name, value) in PROXY_HEADERS {
            if set(name).is_some()
                || removed(name)
                || m.add.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                continue;
            }
            match (*name, hostname) {
                ("Host", Some(h)) => _ = writeln!(out, "            {directive} Host {h};"),
                _ => _ = writeln!(out, "            {directive} {name} {value};"),
            }
        }
    } else if let Some(h) = hostname {
        _ = writeln!(out, "            {directive} Host {h};");
    }
    for (n, v) in &m.set {
        _ = writeln!(out, "            {directive} {n} \"{v}\";");
    }
    for (n, v) in &m.add {
        if set(n).is_none() {
            _ = writeln!(out, "            {directive} {n} {};", add_var(n, v));
        }
    }
    for n in &m.remove {
        _ = writeln!(out, "            {directive} {n} \"\";");
    }
}

fn proxy(out: &mut String, rule: &GwRule, p: &GwProxy, strip: &str, model: &Model) {
    let up = match target(rule, p, model) {
        Target::Status(code) => {
            _ = writeln!(out, "            return {code};");
            return;
        }
        Target::Upstream(u) => u,
        Target::Split(var) => {
            for code in [500, 503] {
                _ = writeln!(
                    out,
                    "            if ({var} = _{code}) {{\n                return {code};\n            }}"
                );
            }
            var
        }
    };
    let (pass, set_header, hide) = if p.grpc {
        ("grpc_pass grpc://", "grpc_set_header", "grpc_hide_header")
    } else {
        (
            "proxy_pass http://",
            "proxy_set_header",
            "proxy_hide_header",
        )
    };
    if !p.request_headers.is_empty() || p.hostname.is_some() {
        headers(
            out,
            set_header,
            &p.request_headers,
            p.hostname.as_deref(),
            p.grpc,
        );
    }
    let r = &p.response_headers;
    for (n, v) in r.set.iter() {
        _ = writeln!(
            out,
            "            {hide} {n};\n            add_header {n} \"{v}\" always;"
        );
    }
    for (n, v) in &r.add {
        _ = writeln!(out, "            add_header {n} \"{v}\" always;");
    }
    for n in &r.remove {
        _ = writeln!(out, "            {hide} {n};");
    }
    match (&p.path, p.grpc) {
        (Some(m), false) => {
            path_rewrites(out, strip, m, "", "break");
            _ = writeln!(out, "            {pass}{up};");
        }
        (_, true) => {
            if !strip.is_empty() {
                _ = writeln!(out, "            rewrite \"(?s)^{strip}(.*)$\" $1 break;");
            }
            _ = writeln!(out, "            {pass}{up};");
        }
        (None, false) => _ = writeln!(out, "            {pass}{up}$request_uri;"),
    }
}
