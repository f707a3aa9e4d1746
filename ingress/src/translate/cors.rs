//! CORS annotations -> [`Cors`] (pure), with their grammars and ingress-nginx's defaults.
//!
//! `enable-cors`: `true`/`false`. `cors-allow-origin`: `*` or a comma list of at most
//! [`MAX_ORIGINS`] origins `http(s)://host[:port]` (lowercase DNS name or IPv4; no path, no
//! wildcard). `cors-allow-methods`: a comma list of methods (`GET PUT POST DELETE PATCH
//! OPTIONS HEAD`). `cors-allow-headers`, `cors-expose-headers`: comma lists of header names.
//! `cors-allow-credentials`: `true`/`false` (default `true`). `cors-max-age`: seconds
//! `0..=`[`MAX_AGE`] (default 1728000). Any `cors-*` without `enable-cors: "true"` refuses
//! the Ingress.

use super::auth::Field;
use super::{external_auth, report};
use crate::model::{Cors, ObjectRef, Reason, Report};
use crate::validate::{self, Invalid};

/// Most origins one `cors-allow-origin` may list.
pub const MAX_ORIGINS: usize = 32;
/// Longest accepted `cors-max-age` (a year).
pub const MAX_AGE: u32 = 31_536_000;
const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
const DEFAULT_HEADERS: &str = "DNT, Keep-Alive, User-Agent, X-Requested-With, If-Modified-Since, \
                               Cache-Control, Content-Type, Range, Authorization";
const DEFAULT_MAX_AGE: u32 = 1_728_000;
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"];

/// The CORS annotations an Ingress carries (either spelling).
#[derive(Debug, Default)]
pub struct CorsAnnotations<'a> {
    pub enable: Option<Field<'a>>,
    pub origin: Option<Field<'a>>,
    pub methods: Option<Field<'a>>,
    pub headers: Option<Field<'a>>,
    pub expose_headers: Option<Field<'a>>,
    pub credentials: Option<Field<'a>>,
    pub max_age: Option<Field<'a>>,
}

/// `cors-allow-origin`: `None` for `*`.
pub fn origins(value: &str) -> Result<Option<Vec<String>>, Invalid> {
    if value.trim_matches(' ') == "*" {
        return Ok(None);
    }
    let items: Vec<&str> = value.split(',').map(|s| s.trim_matches(' ')).collect();
    if items.len() > MAX_ORIGINS {
        return Err(Invalid(format!("more than {MAX_ORIGINS} origins")));
    }
    let mut out = Vec::new();
    for item in items {
        let (scheme, host, port, path) = external_auth::url(item)?;
        if path != "/" || item.ends_with('/') {
            return Err(Invalid(format!(
                "'{}' is not an origin (scheme://host[:port], no path)",
                validate::excerpt(item)
            )));
        }
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        out.push(format!("{scheme}://{host}{port}"));
    }
    out.sort();
    out.dedup();
    Ok(Some(out))
}

/// `cors-allow-methods`.
pub fn methods(value: &str) -> Result<String, Invalid> {
    let mut out = Vec::new();
    for m in value.split(',').map(|s| s.trim_matches(' ')) {
        let m = m.to_ascii_uppercase();
        if !METHODS.contains(&m.as_str()) {
            return Err(Invalid(format!(
                "'{}' is not a comma list of GET PUT POST DELETE PATCH OPTIONS HEAD",
                validate::excerpt(value)
            )));
        }
        out.push(m);
    }
    out.dedup();
    Ok(out.join(", "))
}

/// The Ingress's CORS settings, `None` without `enable-cors: "true"`.
pub fn cors(origin: &ObjectRef, a: CorsAnnotations<'_>) -> Result<Option<Cors>, Report> {
    let bad =
        |field: &str, e: Invalid| report(origin, field, Reason::InvalidAnnotation, e.to_string());
    let enabled = match &a.enable {
        Some((f, v)) => validate::boolean(v).map_err(|e| bad(f, e))?,
        None => false,
    };
    let rest = [
        &a.origin,
        &a.methods,
        &a.headers,
        &a.expose_headers,
        &a.credentials,
        &a.max_age,
    ];
    if !enabled {
        if let Some((field, _)) = rest.into_iter().flatten().next() {
            return Err(bad(field, Invalid("needs enable-cors: \"true\"".into())));
        }
        return Ok(None);
    }
    let list = |f: &Option<Field<'_>>, default: &str| -> Result<String, Report> {
        match f {
            None => Ok(default.to_owned()),
            Some((field, v)) => external_auth::header_names(v)
                .map(|v| v.join(", "))
                .map_err(|e| bad(field, e)),
        }
    };
    Ok(Some(Cors {
        origins: match &a.origin {
            Some((f, v)) => origins(v).map_err(|e| bad(f, e))?,
            None => None,
        },
        methods: match &a.methods {
            Some((f, v)) => methods(v).map_err(|e| bad(f, e))?,
            None => DEFAULT_METHODS.to_owned(),
        },
        headers: list(&a.headers, DEFAULT_HEADERS)?,
        expose_headers: list(&a.expose_headers, "")?,
        credentials: match &a.credentials {
            Some((f, v)) => validate::boolean(v).map_err(|e| bad(f, e))?,
            None => true,
        },
        max_age: match &a.max_age {
            Some((f, v)) => {
                let ok = !v.is_empty() && v.len() <= 8 && v.bytes().all(|b| b.is_ascii_digit());
                let n: u32 = if ok {
                    v.parse().unwrap_or(u32::MAX)
                } else {
                    u32::MAX
                };
                if n > MAX_AGE {
                    return Err(bad(f, Invalid(format!("not seconds in 0..{MAX_AGE}"))));
                }
                n
            }
            None => DEFAULT_MAX_AGE,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_grammars() {
        assert_eq!(origins("*"), Ok(None));
        assert_eq!(
            origins("https://b.example.com, http://a.example.com:8080"),
            Ok(Some(vec![
                "http://a.example.com:8080".to_owned(),
                "https://b.example.com".to_owned()
            ]))
        );
        for o in [
            "",
            "a.com",
            "https://a.com/",
            "https://a.com/x",
            "https://*.a.com",
            "*, https://a.com",
            "https://a.com\"; x",
        ] {
            assert!(origins(o).is_err(), "{o:?}");
        }
        assert_eq!(methods("get, POST").as_deref(), Ok("GET, POST"));
        for m in ["", "GET;", "CONNECT", "GET,,POST"] {
            assert!(methods(m).is_err(), "{m:?}");
        }
    }
}
