//! Canary splits for `render.rs`: the main route proxies to `$berth_canary_<id>`, an upstream
//! name chosen per request by a chain at the http level (ingress-nginx's order):
//! `canary-by-header` (`map $http_<name>`: the value, or `always` / `never`), else
//! `canary-by-cookie` (`map $cookie_<name>`: `always` / `never`), else the weight
//! (`split_clients $request_id`: `<weight>%` to the canary). Both upstreams must have
//! endpoints, else the main route is rendered alone (the missing backend is reported). Names
//! and values come from `translate/canary.rs` (letters, digits and a few marks).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::model::{Canary, Model};

fn live(name: &str, model: &Model) -> bool {
    model
        .upstreams
        .binary_search_by(|u| u.name.as_str().cmp(name))
        .is_ok_and(|i| !model.upstreams[i].endpoints.is_empty())
}

fn id(main: &str, c: &Canary) -> String {
    let text = format!("{main}\n{c:?}");
    let digest = Sha256::digest(text.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The variable naming the upstream of a request to `main` split by `c`, when both are live.
pub(crate) fn variable(main: &str, c: &Canary, model: &Model) -> Option<String> {
    (live(main, model) && live(&c.upstream, model))
        .then(|| format!("$berth_canary_{}", id(main, c)))
}

/// The http-level chains, once each.
pub(crate) fn http_level(out: &mut String, model: &Model) {
    let mut blocks = BTreeSet::new();
    for l in model.servers.iter().flat_map(|s| &s.locations) {
        let Some(c) = l.options.canary.as_deref() else {
            continue;
        };
        let Some(top) = variable(&l.upstream, c, model) else {
            continue;
        };
        let (main, canary) = (&l.upstream, &c.upstream);
        let weight_var = format!("{top}_w");
        let mut b = format!("    split_clients $request_id {weight_var} {{\n");
        match c.weight {
            0 => _ = writeln!(b, "        * {main};"),
            100 => _ = writeln!(b, "        * {canary};"),
            w => _ = writeln!(b, "        {w}% {canary};\n        * {main};"),
        }
        b.push_str("    }\n");
        let mut next = weight_var;
        if let Some(cookie) = &c.cookie {
            let var = format!("{top}_c");
            _ = writeln!(
                b,
                "    map $cookie_{cookie} {var} {{\n        always {canary};\n        never {main};\n        default {next};\n    }}"
            );
            next = var;
        }
        let header = c
            .header
            .as_ref()
            .map(|h| h.to_ascii_lowercase().replace('-', "_"));
        match (&header, &c.header_value) {
            (Some(h), Some(v)) => {
                let v = v.replace('.', "\\.");
                _ = writeln!(
                    b,
                    "    map $http_{h} {top} {{\n        \"~^{v}$\" {canary};\n        default {next};\n    }}"
                );
            }
            (Some(h), None) => {
                _ = writeln!(
                    b,
                    "    map $http_{h} {top} {{\n        always {canary};\n        never {main};\n        default {next};\n    }}"
                )
            }
            (None, _) => {
                _ = writeln!(
                    b,
                    "    map $request_method {top} {{\n        default {next};\n    }}"
                )
            }
        }
        blocks.insert(b);
    }
    for b in &blocks {
        out.push_str(b);
    }
    if !blocks.is_empty() {
        out.push('\n');
    }
}
