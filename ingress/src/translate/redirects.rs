//! Grammars of the redirect and upstream-host annotations (pure).
//!
//! `permanent-redirect` / `temporal-redirect`: an absolute URL with the `auth-url` grammar
//! (`http://` or `https://`, lowercase DNS name or IPv4, optional port and path; no query, no
//! variables). `permanent-redirect-code`: `301`, `302`, `303`, `307` or `308`. `app-root`: an
//! Ingress path (Exact grammar). `upstream-vhost`: a lowercase DNS name, optionally `:port`.

use super::external_auth;
use crate::validate::{self, Invalid};

/// Codes `permanent-redirect-code` accepts.
pub const REDIRECT_CODES: &[u16] = &[301, 302, 303, 307, 308];

/// A redirect target, canonical (`scheme://host[:port]path`).
pub fn url(value: &str) -> Result<String, Invalid> {
    let (scheme, host, port, path) = external_auth::url(value)?;
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{scheme}://{host}{port}{path}"))
}

/// `permanent-redirect-code`.
pub fn code(value: &str) -> Result<u16, Invalid> {
    REDIRECT_CODES
        .iter()
        .find(|c| c.to_string() == value)
        .copied()
        .ok_or_else(|| {
            Invalid(format!(
                "'{}' is not one of 301 302 303 307 308",
                validate::excerpt(value)
            ))
        })
}

/// `upstream-vhost`: `name` or `name:port`.
pub fn vhost(value: &str) -> Result<String, Invalid> {
    let (name, port) = match value.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (value, None),
    };
    validate::dns_name(name)?;
    if let Some(p) = port {
        let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
        validate::port(if ok { p.parse().unwrap_or(0) } else { 0 })
            .map_err(|_| Invalid(format!("'{}': bad port", validate::excerpt(value))))?;
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_and_vhost_grammars() {
        assert_eq!(
            url("https://new.example.com/shop").as_deref(),
            Ok("https://new.example.com/shop")
        );
        assert_eq!(url("http://a:8080").as_deref(), Ok("http://a:8080/"));
        for u in [
            "/relative",
            "https://a/b?x=1",
            "https://$host/x",
            "https://a/x;",
        ] {
            assert!(url(u).is_err(), "{u:?}");
        }
        assert_eq!(code("308"), Ok(308));
        for c in ["300", "200", "301;", ""] {
            assert!(code(c).is_err(), "{c:?}");
        }
        assert!(vhost("api.internal").is_ok() && vhost("api.internal:8080").is_ok());
        for v in ["", "API.x", "a;b", "a:0", "a:x", "$host", "a b"] {
            assert!(vhost(v).is_err(), "{v:?}");
        }
    }
}
