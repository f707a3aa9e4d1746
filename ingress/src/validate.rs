//! The strict grammars every value passes before it may reach nginx.conf.
//!
//! The renderer writes model strings verbatim, so this module is the injection boundary:
//! hosts are lowercase RFC 1123 names (optionally one leading `*.`), paths use a small safe
//! charset, ports are numbers, names are DNS labels, addresses parse as IPs. Anything else is
//! refused with a short explanation; callers turn that into a [`crate::model::Report`] naming
//! the object and field. There is deliberately no way to pass raw nginx text (no snippets).

use std::net::IpAddr;

use crate::model::{Host, PathKind};

/// Longest accepted path, in bytes. Real routes are short; the bound keeps hostile 10 KB values
/// (and nginx's own location buffer limits) out of the config.
pub const MAX_PATH_LEN: usize = 1024;
/// RFC 1123: a DNS name is at most 253 characters.
pub const MAX_HOST_LEN: usize = 253;
/// RFC 1123: one label is at most 63 characters.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a value was refused. The message never echoes more than a short escaped excerpt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(why: impl Into<String>) -> Invalid {
    Invalid(why.into())
}

/// A short, escaped excerpt of a hostile value, safe for logs.
pub fn excerpt(value: &str) -> String {
    const MAX: usize = 40;
    let mut out: String = value
        .chars()
        .take(MAX)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

/// One RFC 1123 label: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63 characters.
pub fn dns_label(value: &str) -> Result<&str, Invalid> {
    if value.is_empty() {
        return Err(invalid("empty name"));
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(invalid(format!("longer than {MAX_LABEL_LEN} characters")));
    }
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err(invalid(format!(
            "'{}' is not a DNS label (lowercase letters, digits and '-' only)",
            excerpt(value)
        )));
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err(invalid(format!(
            "'{}' starts or ends with '-'",
            excerpt(value)
        )));
    }
    Ok(value)
}

/// A lowercase RFC 1123 DNS name (one or more labels, at most 253 characters).
pub fn dns_name(value: &str) -> Result<&str, Invalid> {
    if value.len() > MAX_HOST_LEN {
        return Err(invalid(format!("longer than {MAX_HOST_LEN} characters")));
    }
    for label in value.split('.') {
        dns_label(label).map_err(|e| invalid(format!("'{}': {e}", excerpt(value))))?;
    }
    Ok(value)
}

/// An Ingress host: an exact DNS name or `*.` followed by a DNS name (one wildcard label).
pub fn host(value: &str) -> Result<Host, Invalid> {
    if value.is_empty() {
        return Err(invalid("empty host"));
    }
    if let Some(suffix) = value.strip_prefix("*.") {
        dns_name(suffix)?;
        if value.len() > MAX_HOST_LEN {
            return Err(invalid(format!("longer than {MAX_HOST_LEN} characters")));
        }
        return Ok(Host::Wildcard(suffix.to_owned()));
    }
    if value.contains('*') {
        return Err(invalid(format!(
            "'{}': a wildcard is allowed only as the whole first label ('*.')",
            excerpt(value)
        )));
    }
    dns_name(value)?;
    if value.parse::<IpAddr>().is_ok() {
        return Err(invalid("an IP address is not a host name"));
    }
    Ok(Host::Exact(value.to_owned()))
}

/// Bytes allowed in a path besides ASCII letters and digits: RFC 3986 unreserved characters
/// and a few sub-delimiters nginx treats literally in an unquoted location. Excluded on purpose:
/// `; { } $ " ' # \` whitespace, `%` (nginx matches the decoded URI, so an encoded location
/// could never match), `?` (query), `(` `)` and `|` (regex meaning elsewhere), `^` `<` `>` and
/// everything non-ASCII or control.
const PATH_PUNCT: &[u8] = b"/-._~+,=:@!*&";

/// A path: must start with `/`, safe charset, no `//`, `.`/`..` segments (nginx normalises
/// those away before matching, so such a location would never match). Prefix paths lose a
/// trailing slash (Ingress: "trailing slash in the rule is ignored"), except `/` itself.
pub fn path(value: &str, kind: PathKind) -> Result<String, Invalid> {
    if value.is_empty() {
        return Err(invalid("empty path"));
    }
    if value.len() > MAX_PATH_LEN {
        return Err(invalid(format!("longer than {MAX_PATH_LEN} bytes")));
    }
    if !value.starts_with('/') {
        return Err(invalid(format!(
            "'{}' does not start with '/'",
            excerpt(value)
        )));
    }
    if let Some(bad) = value
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || PATH_PUNCT.contains(b)))
    {
        let shown: String = if bad.is_ascii_graphic() {
            (bad as char).to_string()
        } else {
            format!("\\x{bad:02x}")
        };
        return Err(invalid(format!(
            "'{}' contains '{shown}' (allowed: letters, digits and / - . _ ~ + , = : @ ! * &)",
            excerpt(value)
        )));
    }
    if value.contains("//") {
        return Err(invalid(format!("'{}' contains '//'", excerpt(value))));
    }
    if value.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(invalid(format!(
            "'{}' contains a '.' or '..' segment",
            excerpt(value)
        )));
    }
    let normalised = match kind {
        PathKind::Prefix if value.len() > 1 => value.trim_end_matches('/'),
        _ => value,
    };
    Ok(normalised.to_owned())
}

/// A TCP port number, 1..=65535.
pub fn port(value: i64) -> Result<u16, Invalid> {
    match u16::try_from(value) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(invalid(format!("port {value} is outside 1..65535"))),
    }
}

/// A port given as text (an annotation): a number, or a named port (IANA service name).
pub fn port_ref(value: &str) -> Result<PortRef, Invalid> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = value
            .parse()
            .map_err(|_| invalid("port number too large"))?;
        return port(n).map(PortRef::Number);
    }
    port_name(value).map(|n| PortRef::Name(n.to_owned()))
}

/// A Service port, by number or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// An IANA service name (Kubernetes port names): DNS-label characters, at most 15, a letter.
pub fn port_name(value: &str) -> Result<&str, Invalid> {
    dns_label(value)?;
    if value.len() > 15 {
        return Err(invalid("a port name is at most 15 characters"));
    }
    if !value.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(invalid("a port name needs at least one letter"));
    }
    Ok(value)
}

/// An IP address (ClusterIP, pod IP).
pub fn ip(value: &str) -> Result<IpAddr, Invalid> {
    value
        .parse()
        .map_err(|_| invalid(format!("'{}' is not an IP address", excerpt(value))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let ok = [
            ("foo.example.com", Host::Exact("foo.example.com".into())),
            ("a", Host::Exact("a".into())),
            ("x-1.y2", Host::Exact("x-1.y2".into())),
            ("*.example.com", Host::Wildcard("example.com".into())),
        ];
        for (input, want) in ok {
            assert_eq!(host(input), Ok(want), "{input}");
        }
        let bad = [
            "",
            "Foo.example.com",
            "foo..com",
            ".foo.com",
            "foo.com.",
            "-foo.com",
            "foo-.com",
            "*",
            "*.",
            "**.foo.com",
            "foo.*.com",
            "*foo.com",
            "*.*.foo.com",
            "foo.com;",
            "foo.com }",
            "foo.com\n",
            "foo com",
            "foo_bar.com",
            "ex\u{e4}mple.com",
            "127.0.0.1",
            "$host",
        ];
        for input in bad {
            assert!(host(input).is_err(), "{input:?} accepted");
        }
        assert!(host(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(host(&vec!["a".repeat(63); 4].join(".")).is_err()); // 255 chars
        assert!(
            host(
                &[
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(61)
                ]
                .join(".")
            )
            .is_ok()
        );
    }

    #[test]
    fn paths() {
        let ok = [
            ("/", PathKind::Prefix, "/"),
            ("/", PathKind::Exact, "/"),
            ("/foo", PathKind::Prefix, "/foo"),
            ("/foo/", PathKind::Prefix, "/foo"),
            ("/foo/", PathKind::Exact, "/foo/"),
            ("/a-b_c.d~e/F9", PathKind::Exact, "/a-b_c.d~e/F9"),
            ("/v1:x@y+z,w=1!*&", PathKind::Prefix, "/v1:x@y+z,w=1!*&"),
            ("/.well-known/acme", PathKind::Prefix, "/.well-known/acme"),
        ];
        for (input, kind, want) in ok {
            assert_eq!(path(input, kind).as_deref(), Ok(want), "{input}");
        }
        let bad = [
            "",
            "foo",
            "/foo;",
            "/foo{",
            "/foo}",
            "/$uri",
            "/a\"b",
            "/a'b",
            "/a#b",
            "/a\\b",
            "/a b",
            "/a\tb",
            "/a\nb",
            "/a\0b",
            "/caf\u{e9}",
            "/a%20b",
            "/a?b",
            "/a//b",
            "/a/../b",
            "/a/./b",
            "/..",
            "/a(b)",
            "/a|b",
            "/a^b",
            "/a<b>",
        ];
        for input in bad {
            assert!(path(input, PathKind::Prefix).is_err(), "{input:?} accepted");
        }
        assert!(path(&format!("/{}", "a".repeat(MAX_PATH_LEN)), PathKind::Exact).is_err());
    }

    #[test]
    fn ports_and_names() {
        assert_eq!(port(80), Ok(80));
        assert_eq!(port(65535), Ok(65535));
        for p in [0, -1, 65536, i64::MAX] {
            assert!(port(p).is_err(), "{p}");
        }
        assert_eq!(port_ref("8080"), Ok(PortRef::Number(8080)));
        assert_eq!(port_ref("http"), Ok(PortRef::Name("http".into())));
        for p in [
            "",
            "0",
            "99999999999999999999",
            "HTTP",
            "a_b",
            "80;",
            "toolongportname1",
        ] {
            assert!(port_ref(p).is_err(), "{p:?}");
        }
        assert_eq!(dns_label("default"), Ok("default"));
        for n in ["", "Default", "a.b", "-a", "a-", "a b", "a;"] {
            assert!(dns_label(n).is_err(), "{n:?}");
        }
        assert!(ip("10.0.0.1").is_ok());
        assert!(ip("fd00::1").is_ok());
        assert!(ip("10.0.0.1; evil").is_err());
        assert!(ip("None").is_err());
    }

    #[test]
    fn excerpt_escapes_and_truncates() {
        assert_eq!(excerpt("a\nb"), "a\\nb");
        assert_eq!(excerpt(&"x".repeat(100)), format!("{}...", "x".repeat(40)));
    }
}
