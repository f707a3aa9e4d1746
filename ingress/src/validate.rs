//! The strict grammars every value passes before it may reach nginx.conf.
//!
//! The renderer writes model strings verbatim, so this module is the injection boundary:
//! hosts are lowercase RFC 1123 names (optionally one leading `*.`), paths use a small safe
//! charset, ports are numbers, names are DNS labels, addresses parse as IPs. Anything else is
//! refused with a short explanation; callers turn that into a [`crate::model::Report`] naming
//! the object and field. There is deliberately no way to pass raw nginx text (no snippets).

use std::net::IpAddr;

use crate::model::{BackendProtocol, Cidr, Host, PathKind};

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

/// `berth.dev/ssl-redirect`: exactly `true` or `false`.
pub fn boolean(value: &str) -> Result<bool, Invalid> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(format!(
            "'{}' is not 'true' or 'false'",
            excerpt(value)
        ))),
    }
}

/// Most digits a size may have: 999999 with a `g` unit is already far beyond any real body.
const MAX_SIZE_DIGITS: usize = 6;

/// `berth.dev/proxy-body-size`: digits with an optional unit `k`, `m` or `g` (either case);
/// `0` means unlimited. Normalised to a lowercase unit.
pub fn size(value: &str) -> Result<String, Invalid> {
    let (digits, unit) = match value.as_bytes().last() {
        Some(b'k' | b'K' | b'm' | b'M' | b'g' | b'G') => value.split_at(value.len() - 1),
        _ => (value, ""),
    };
    if digits.is_empty()
        || digits.len() > MAX_SIZE_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid(format!(
            "'{}' is not a size like 512, 10k, 8m or 1g",
            excerpt(value)
        )));
    }
    let n: u64 = digits.parse().map_err(|_| invalid("size out of range"))?;
    Ok(format!("{n}{}", unit.to_ascii_lowercase()))
}

/// Longest accepted proxy timeout: one day (longer is a hung connection, not a slow one).
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;

/// `berth.dev/proxy-read-timeout`, `proxy-connect-timeout`: whole seconds, optionally with an
/// `s` suffix, 1..=86400.
pub fn timeout_seconds(value: &str) -> Result<u32, Invalid> {
    let digits = value.strip_suffix('s').unwrap_or(value);
    let ok = !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit());
    let n: u32 = if ok { digits.parse().unwrap_or(0) } else { 0 };
    if n == 0 || n > MAX_TIMEOUT_SECONDS {
        return Err(invalid(format!(
            "'{}' is not a number of seconds in 1..{MAX_TIMEOUT_SECONDS}",
            excerpt(value)
        )));
    }
    Ok(n)
}

/// `berth.dev/backend-protocol`: `HTTP`, `HTTPS` or `GRPC` (ASCII case-insensitive).
pub fn backend_protocol(value: &str) -> Result<BackendProtocol, Invalid> {
    match value.to_ascii_uppercase().as_str() {
        "HTTP" => Ok(BackendProtocol::Http),
        "HTTPS" => Ok(BackendProtocol::Https),
        "GRPC" => Ok(BackendProtocol::Grpc),
        "GRPCS" => Ok(BackendProtocol::Grpcs),
        _ => Err(invalid(format!(
            "'{}' is not one of HTTP, HTTPS, GRPC, GRPCS",
            excerpt(value)
        ))),
    }
}

/// Most networks one `allow-source-range` may list.
pub const MAX_CIDRS: usize = 64;

/// One network: `ip/prefix` or a bare IP (a /32 or /128).
pub fn cidr(value: &str) -> Result<Cidr, Invalid> {
    let (ip_text, prefix_text) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let addr = ip(ip_text)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().unwrap_or(u8::MAX)
        }
        Some(_) => u8::MAX,
    };
    if prefix > max {
        return Err(invalid(format!(
            "'{}' has no valid prefix length (0..{max})",
            excerpt(value)
        )));
    }
    Ok(Cidr { addr, prefix })
}

/// `berth.dev/allow-source-range`: comma-separated networks (spaces around commas allowed),
/// at least one, at most [`MAX_CIDRS`].
pub fn cidr_list(value: &str) -> Result<Vec<Cidr>, Invalid> {
    let items: Vec<&str> = value.split(',').map(|s| s.trim_matches(' ')).collect();
    if items.len() > MAX_CIDRS {
        return Err(invalid(format!("more than {MAX_CIDRS} networks")));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(cidr(item)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `berth.dev/rewrite-target`: a path (same grammar as Ingress paths); a trailing slash is
/// dropped (except for `/`), since the matched prefix is replaced element-wise.
pub fn rewrite_target(value: &str) -> Result<String, Invalid> {
    path(value, PathKind::Prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_grammars() {
        assert_eq!(boolean("false"), Ok(false));
        for b in ["False", "no", "", "true;"] {
            assert!(boolean(b).is_err(), "{b:?}");
        }
        for (v, want) in [
            ("0", "0"),
            ("512", "512"),
            ("10k", "10k"),
            ("8M", "8m"),
            ("1g", "1g"),
        ] {
            assert_eq!(size(v).as_deref(), Ok(want));
        }
        for v in [
            "", "k", "1t", "1kb", "-1", "1 m", "1m;", "1234567", "1.5m", "1m\n",
        ] {
            assert!(size(v).is_err(), "{v:?}");
        }
        assert_eq!(timeout_seconds("60"), Ok(60));
        assert_eq!(timeout_seconds("5s"), Ok(5));
        for v in ["0", "", "s", "86401", "1m", "10;", "-1", "999999"] {
            assert!(timeout_seconds(v).is_err(), "{v:?}");
        }
        assert_eq!(backend_protocol("grpc"), Ok(BackendProtocol::Grpc));
        assert_eq!(backend_protocol("grpcs"), Ok(BackendProtocol::Grpcs));
        for v in ["h2", "GRPCS;", "AJP", "FCGI", "", "HTTP;"] {
            assert!(backend_protocol(v).is_err(), "{v:?}");
        }
        let l = cidr_list("10.0.0.0/8, 192.168.1.1,fd00::/8").unwrap();
        let shown: Vec<String> = l.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.1.1/32", "fd00::/8"]);
        for v in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "::/129",
            "10.0.0.0/8;",
            "all",
            "10.0.0.0/8,,",
            "1.2.3.4/+8",
        ] {
            assert!(cidr_list(v).is_err(), "{v:?}");
        }
        assert!(cidr_list(&vec!["10.0.0.1"; 65].join(",")).is_err());
        assert_eq!(rewrite_target("/api/").as_deref(), Ok("/api"));
        assert!(rewrite_target("/$1").is_err());
        assert!(rewrite_target("http://x/").is_err());
    }

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
