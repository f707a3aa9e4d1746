//! External authentication annotations -> [`ExternalAuth`] (pure), with their grammars.
//!
//! `auth-url` is `http://` or `https://`, a lowercase DNS name or an IPv4 address, an optional
//! port and an optional path (the Ingress path grammar); no query, no user info, no `$`
//! variables, at most [`MAX_URL_LEN`] bytes. `auth-method` is one upper-case method of
//! [`METHODS`]; `auth-response-headers` is a comma list of at most [`MAX_HEADERS`] header
//! names (letters, digits, `-`). `auth-signin` has the `auth-url` grammar;
//! `auth-signin-redirect-param` is 1..64 of letters, digits, `_`, `-` (default `rd`).
//! `auth-method`, `auth-response-headers` or `auth-signin` without `auth-url` (and
//! `auth-signin-redirect-param` without `auth-signin`) refuse the Ingress, as does anything
//! outside the grammars. Other `auth-*` annotations of ingress-nginx (`auth-cache-key`,
//! `auth-snippet`, ...) stay unsupported and refuse the Ingress too.

use std::net::Ipv4Addr;

use super::auth::Field;
use super::report;
use crate::model::{ExternalAuth, ObjectRef, PathKind, Reason, Report, RouteOptions, Signin};
use crate::validate::{self, Invalid};

/// Longest accepted `auth-url`.
pub const MAX_URL_LEN: usize = 512;
/// Most headers `auth-response-headers` may name.
pub const MAX_HEADERS: usize = 16;
/// Longest accepted header name.
const MAX_HEADER_LEN: usize = 64;
/// Methods `auth-method` accepts.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The external-auth annotations an Ingress carries (either spelling).
#[derive(Debug, Default)]
pub struct ExternalAuthAnnotations<'a> {
    pub url: Option<Field<'a>>,
    pub method: Option<Field<'a>>,
    pub response_headers: Option<Field<'a>>,
    pub signin: Option<Field<'a>>,
    pub signin_redirect_param: Option<Field<'a>>,
}

/// Longest accepted `auth-signin-redirect-param`.
const MAX_PARAM_LEN: usize = 64;

/// `auth-signin-redirect-param`: a query parameter name.
pub fn redirect_param(value: &str) -> Result<String, Invalid> {
    let ok = !value.is_empty()
        && value.len() <= MAX_PARAM_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(bad(value, "not 1..64 of letters, digits, _ and -"))
    }
}

fn bad(value: &str, why: &str) -> Invalid {
    Invalid(format!("'{}': {why}", validate::excerpt(value)))
}

/// `auth-url` -> (scheme, host, port, path).
pub fn url(value: &str) -> Result<(&'static str, String, Option<u16>, String), Invalid> {
    if value.len() > MAX_URL_LEN {
        return Err(bad(value, "longer than 512 bytes"));
    }
    let (scheme, rest) = if let Some(r) = value.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = value.strip_prefix("https://") {
        ("https", r)
    } else {
        return Err(bad(value, "not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => {
            let digits = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            let n: i64 = if digits { p.parse().unwrap_or(0) } else { 0 };
            let port = validate::port(n).map_err(|_| bad(value, "the port is not 1..65535"))?;
            (h, Some(port))
        }
        None => (authority, None),
    };
    if host.parse::<Ipv4Addr>().is_err() {
        validate::dns_name(host).map_err(|_| {
            bad(
                value,
                "the host is not a lowercase DNS name or an IPv4 address (no variables, no user info)",
            )
        })?;
    }
    let path = validate::path(path, PathKind::Exact).map_err(|e| {
        bad(
            value,
            &format!("the path is not accepted (no query, no variables): {e}"),
        )
    })?;
    Ok((scheme, host.to_owned(), port, path))
}

/// `auth-method`.
pub fn method(value: &str) -> Result<&'static str, Invalid> {
    METHODS
        .iter()
        .find(|m| **m == value)
        .copied()
        .ok_or_else(|| bad(value, "not one of GET HEAD POST PUT PATCH DELETE OPTIONS"))
}

/// `auth-response-headers`: comma-separated header names (spaces around commas allowed).
pub fn header_names(value: &str) -> Result<Vec<String>, Invalid> {
    let names: Vec<&str> = value.split(',').map(|s| s.trim_matches(' ')).collect();
    if names.len() > MAX_HEADERS {
        return Err(bad(value, "more than 16 headers"));
    }
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let ok = !n.is_empty()
            && n.len() <= MAX_HEADER_LEN
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !n.starts_with('-');
        if !ok {
            return Err(bad(
                value,
                "not a comma list of header names (letters, digits, -)",
            ));
        }
        out.push(n.to_owned());
    }
    out.sort_by_key(|n| n.to_ascii_lowercase());
    out.dedup_by_key(|n| n.to_ascii_lowercase());
    Ok(out)
}

/// The Ingress's external authentication, `None` when it asks for none.
pub fn external(
    origin: &ObjectRef,
    a: ExternalAuthAnnotations<'_>,
) -> Result<Option<ExternalAuth>, Report> {
    let refuse =
        |field: &str, detail: String| report(origin, field, Reason::InvalidAnnotation, detail);
    let Some((url_field, value)) = &a.url else {
        if let Some((field, _)) = a
            .method
            .iter()
            .chain(&a.response_headers)
            .chain(&a.signin)
            .next()
        {
            return Err(refuse(field, "needs auth-url".into()));
        }
        if let Some((field, _)) = &a.signin_redirect_param {
            return Err(refuse(field, "needs auth-signin".into()));
        }
        return Ok(None);
    };
    let (scheme, host, port, path) = url(value).map_err(|e| refuse(url_field, e.to_string()))?;
    let method = match &a.method {
        Some((f, v)) => Some(method(v).map_err(|e| refuse(f, e.to_string()))?),
        None => None,
    };
    let response_headers = match &a.response_headers {
        Some((f, v)) => header_names(v).map_err(|e| refuse(f, e.to_string()))?,
        None => Vec::new(),
    };
    let signin = match (&a.signin, &a.signin_redirect_param) {
        (None, Some((f, _))) => return Err(refuse(f, "needs auth-signin".into())),
        (None, None) => None,
        (Some((f, v)), param) => {
            let (scheme, host, port, path) = url(v).map_err(|e| refuse(f, e.to_string()))?;
            let redirect_param = match param {
                Some((pf, pv)) => redirect_param(pv).map_err(|e| refuse(pf, e.to_string()))?,
                None => "rd".to_owned(),
            };
            Some(Signin {
                scheme,
                host,
                port,
                path,
                redirect_param,
            })
        }
    };
    Ok(Some(ExternalAuth {
        scheme,
        host,
        port,
        path,
        method,
        response_headers,
        signin,
    }))
}

/// What `auth-signin` cannot be combined with in these options, if anything.
pub fn signin_conflict(o: &RouteOptions) -> Option<&'static str> {
    if o.external_auth.as_ref().is_none_or(|e| e.signin.is_none()) {
        None
    } else if o.backend_protocol.is_grpc() {
        Some("backend-protocol GRPC or GRPCS (a gRPC client follows no redirect)")
    } else if o.basic_auth.is_some() {
        Some("auth-type basic (its 401 would redirect too)")
    } else if o
        .custom_errors
        .as_ref()
        .is_some_and(|e| e.codes.contains(&401))
    {
        Some("custom-http-errors listing 401 (both would answer it)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_method_and_header_grammars() {
        assert_eq!(
            url("http://auth.shop.svc.cluster.local/oauth2/auth"),
            Ok((
                "http",
                "auth.shop.svc.cluster.local".into(),
                None,
                "/oauth2/auth".into()
            ))
        );
        assert_eq!(
            url("https://127.0.0.1:8443"),
            Ok(("https", "127.0.0.1".into(), Some(8443), "/".into()))
        );
        for u in [
            "",
            "ftp://a/b",
            "http://",
            "http://a/b?c=d",
            "http://$host/check",
            "https://user:pw@a/x",
            "http://a:0/x",
            "http://a:99999/x",
            "http://A.com/x",
            "http://a/x; return 200",
            "http://a/x\n",
            "http://a/x#f",
            "http://a/$request_uri",
            "http://[::1]/x",
        ] {
            assert!(url(u).is_err(), "{u:?}");
        }
        assert_eq!(method("POST"), Ok("POST"));
        for m in ["post", "GET;", "CONNECT", ""] {
            assert!(method(m).is_err(), "{m:?}");
        }
        assert_eq!(
            header_names("X-Auth-User, x-auth-user,X-Email"),
            Ok(vec!["X-Auth-User".to_owned(), "X-Email".to_owned()])
        );
        for h in ["", "X-A,", "X A", "X-A;", "-X", "X_A", "X:A"] {
            assert!(header_names(h).is_err(), "{h:?}");
        }
        assert_eq!(redirect_param("return_to"), Ok("return_to".to_owned()));
        for p in ["", "rd=x", "rd&x", "r d", "$arg", "rd;", &"r".repeat(65)] {
            assert!(redirect_param(p).is_err(), "{p:?}");
        }
    }
}
