//! `custom-http-errors` for `render.rs`: per location, `proxy_intercept_errors on` and one
//! `error_page <code> = @berth_err_<upstream>_<code>`; per server, those named locations, each
//! proxying to the error backend a request for `/` (query kept) with `X-Code: <code>`, `X-Format` (the
//! client's `Accept`) and `X-Original-URI`, as ingress-nginx does. The client gets the error
//! backend's answer. Codes are numbers and upstream names `[a-z0-9_-]`
//! (`translate/errors.rs`); an error backend without endpoints leaves nginx's own pages.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::model::{CustomErrors, Model, Server};

/// Does the error backend have endpoints (an `upstream` block)?
fn live(e: &CustomErrors, model: &Model) -> bool {
    model
        .upstreams
        .binary_search_by(|u| u.name.as_str().cmp(&e.upstream))
        .is_ok_and(|i| !model.upstreams[i].endpoints.is_empty())
}

/// The lines of a location whose answers may be replaced (`proxied`: it proxies to a backend,
/// else it answers nginx's own 503).
pub(crate) fn location_errors(out: &mut String, e: &CustomErrors, proxied: bool) {
    if proxied {
        out.push_str("            proxy_intercept_errors on;\n");
    }
    for code in &e.codes {
        _ = writeln!(
            out,
            "            error_page {code} = @berth_err_{}_{code};",
            e.upstream
        );
    }
}

/// The named locations the server's locations refer to, once each.
pub(crate) fn named_locations(out: &mut String, s: &Server, model: &Model) {
    let mut seen = BTreeSet::new();
    for e in s
        .locations
        .iter()
        .filter_map(|l| l.options.custom_errors.as_deref())
    {
        for code in &e.codes {
            if !seen.insert((e.upstream.as_str(), *code)) {
                continue;
            }
            _ = writeln!(out, "        location @berth_err_{}_{code} {{", e.upstream);
            if !live(e, model) {
                _ = writeln!(out, "            return {code};\n        }}");
                continue;
            }
            out.push_str("            proxy_intercept_errors off;\n");
            for (name, value) in crate::render::PROXY_HEADERS {
                _ = writeln!(out, "            proxy_set_header {name} {value};");
            }
            _ = writeln!(out, "            proxy_set_header X-Code {code};");
            out.push_str("            proxy_set_header X-Format $http_accept;\n");
            out.push_str("            proxy_set_header X-Original-URI $request_uri;\n");
            out.push_str("            rewrite ^ / break;\n");
            _ = writeln!(
                out,
                "            proxy_pass http://{};\n        }}",
                e.upstream
            );
        }
    }
}
