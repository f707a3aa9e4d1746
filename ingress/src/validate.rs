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
#[path = "validate_tests.rs"]
mod tests;
