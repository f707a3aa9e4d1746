//! Redirects of one location for `render.rs`: `ssl-redirect` (a host with TLS) and
//! `force-ssl-redirect` (any host) answer plain HTTP with `308` to `https://`; `app-root`
//! answers a request for `/` with `302` to its path; `permanent-redirect` /
//! `temporal-redirect` answer every request with their code and URL. All values passed the
//! grammars of `translate/redirects.rs`; `if ($scheme = http)` / `if ($uri = /)` with a
//! `return` inside are the safe uses of nginx's `if`.

use std::fmt::Write as _;

use crate::model::RouteOptions;

/// Write the redirects of a location. `tls`: the host serves HTTPS with its own certificate.
/// Returns true when every request is redirected (the location needs no upstream).
pub(crate) fn redirects(out: &mut String, o: &RouteOptions, tls: bool, https_port: u16) -> bool {
    if (tls && o.ssl_redirect) || o.force_ssl_redirect {
        out.push_str("            if ($scheme = http) {\n                return 308 https://$host");
        if https_port != 443 {
            _ = write!(out, ":{https_port}");
        }
        out.push_str("$request_uri;\n            }\n");
    }
    if let Some(root) = &o.app_root {
        _ = writeln!(
            out,
            "            if ($uri = /) {{\n                return 302 $scheme://$http_host{root};\n            }}"
        );
    }
    if let Some((code, url)) = &o.redirect {
        _ = writeln!(out, "            return {code} {url};");
        return true;
    }
    false
}
