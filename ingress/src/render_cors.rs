//! CORS and HSTS for `render.rs`.
//!
//! HSTS (`--hsts`): `map $scheme $berth_hsts` is the header value on HTTPS and empty on plain
//! HTTP (nginx sends no header with an empty value), added at the http level and repeated in
//! every location that has `add_header`s of its own (CORS, affinity's cookie), since nginx inherits `add_header`
//! only into blocks that define none. CORS: a preflight (`OPTIONS`) is answered `204` with the
//! `Access-Control-Allow-*` headers before authentication (browsers send it without
//! credentials); other responses get `Access-Control-Allow-Origin` (+ credentials, exposed
//! headers). A list of origins is a `map $http_origin` echoing the request's `Origin` when it
//! is one of them. Values come from `translate/cors.rs` (validated) and the flags.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::model::{Cors, Model};

/// The variable holding the allowed origin of an origin list.
fn origin_var(origins: &[String]) -> String {
    let digest = Sha256::digest(origins.join(",").as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("$berth_cors_{hex}")
}

/// The http-level maps (origin lists, HSTS) and the HSTS header.
pub(crate) fn http_level(out: &mut String, model: &Model, hsts: Option<&str>) {
    let corses: BTreeSet<&Cors> = model
        .servers
        .iter()
        .flat_map(|s| &s.locations)
        .filter_map(|l| l.options.cors.as_ref())
        .collect();
    let lists: BTreeSet<&Vec<String>> = corses.iter().filter_map(|c| c.origins.as_ref()).collect();
    let sticky = crate::render_affinity::any(model);
    if lists.is_empty() && corses.is_empty() && hsts.is_none() && !sticky {
        return;
    }
    for list in lists {
        _ = writeln!(
            out,
            "    map $http_origin {} {{\n        default \"\";",
            origin_var(list)
        );
        for o in list {
            _ = writeln!(out, "        \"{o}\" \"{o}\";");
        }
        out.push_str("    }\n");
    }
    if hsts.is_some() || !corses.is_empty() || sticky {
        _ = writeln!(
            out,
            "    map $scheme $berth_hsts {{\n        default \"\";\n        https \"{}\";\n    }}",
            hsts.unwrap_or_default()
        );
    }
    if hsts.is_some() {
        out.push_str("    add_header Strict-Transport-Security $berth_hsts always;\n");
    }
    out.push('\n');
}

/// The CORS lines of one location.
pub(crate) fn location_cors(out: &mut String, c: &Cors) {
    let origin = match &c.origins {
        None => "\"*\"".to_owned(),
        Some(list) => origin_var(list),
    };
    let pad = "            ";
    _ = writeln!(out, "{pad}if ($request_method = OPTIONS) {{");
    _ = writeln!(
        out,
        "{pad}    add_header Access-Control-Allow-Origin {origin} always;"
    );
    _ = writeln!(
        out,
        "{pad}    add_header Access-Control-Allow-Methods \"{}\" always;",
        c.methods
    );
    _ = writeln!(
        out,
        "{pad}    add_header Access-Control-Allow-Headers \"{}\" always;",
        c.headers
    );
    if c.credentials {
        _ = writeln!(
            out,
            "{pad}    add_header Access-Control-Allow-Credentials true always;"
        );
    }
    _ = writeln!(
        out,
        "{pad}    add_header Access-Control-Max-Age {} always;",
        c.max_age
    );
    _ = writeln!(
        out,
        "{pad}    add_header Strict-Transport-Security $berth_hsts always;"
    );
    _ = writeln!(out, "{pad}    return 204;\n{pad}}}");
    _ = writeln!(
        out,
        "{pad}add_header Access-Control-Allow-Origin {origin} always;"
    );
    if c.credentials {
        _ = writeln!(
            out,
            "{pad}add_header Access-Control-Allow-Credentials true always;"
        );
    }
    if !c.expose_headers.is_empty() {
        _ = writeln!(
            out,
            "{pad}add_header Access-Control-Expose-Headers \"{}\" always;",
            c.expose_headers
        );
    }
    _ = writeln!(
        out,
        "{pad}add_header Strict-Transport-Security $berth_hsts always;"
    );
}
