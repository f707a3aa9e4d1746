//! Grammars for Gateway API values that reach nginx.conf (the injection boundary for
//! `gateway/`, on top of `validate.rs`). Each returns the value to write, or why not.

use crate::model::PathKind;
use crate::validate::{Invalid, excerpt};

/// Paths under this prefix are berth's internal rule locations.
pub const INTERNAL_PREFIX: &str = "/_berth_gw";

/// Longest match value and header value accepted.
const MAX_VALUE: usize = 256;
const MAX_HEADER_VALUE: usize = 1024;

fn bad(what: &str, value: &str, allowed: &str) -> Invalid {
    Invalid(format!(
        "{what} '{}' refused (allowed: {allowed})",
        excerpt(value)
    ))
}

/// A match or rewrite path (validate.rs rules), never under [`INTERNAL_PREFIX`].
pub fn path(value: &str, kind: PathKind) -> Result<String, Invalid> {
    let p = crate::validate::path(value, kind)?;
    if p == INTERNAL_PREFIX || p.starts_with("/_berth_gw/") || p.starts_with("/_berth_gw_") {
        return Err(Invalid(format!(
            "paths under {INTERNAL_PREFIX} are reserved"
        )));
    }
    Ok(p)
}

/// A header name (match or modifier): 1..64 letters, digits and `-` (nginx drops headers with
/// `_` by default), returned lower-case.
pub fn header_name(value: &str) -> Result<String, Invalid> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then(|| value.to_ascii_lowercase())
        .ok_or_else(|| bad("header name", value, "1..64 of letters, digits, '-'"))
}

/// A query parameter name: 1..64 letters, digits and `_` (it becomes `$arg_<name>`).
pub fn query_name(value: &str) -> Result<String, Invalid> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then(|| value.to_owned()).ok_or_else(|| {
        bad(
            "query parameter name",
            value,
            "1..64 of letters, digits, '_'",
        )
    })
}

/// Punctuation allowed in an exact match value (each is escaped in the regex).
const MATCH_PUNCT: &[u8] = b"-._~:/=+,@%*!&()";

/// An exact header or query match value: 1..256 of letters, digits and `- . _ ~ : / = + , @ %
/// * ! & ( )` (written into a regular expression with every punctuation escaped).
pub fn match_value(value: &str) -> Result<String, Invalid> {
    let ok = (1..=MAX_VALUE).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || MATCH_PUNCT.contains(&b));
    ok.then(|| value.to_owned()).ok_or_else(|| {
        bad(
            "match value",
            value,
            "1..256 of letters, digits and - . _ ~ : / = + , @ % * ! & ( )",
        )
    })
}

/// `value` as a regular expression matching exactly it (`^...$`, punctuation escaped).
pub fn exact_regex(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2 + 2);
    out.push('^');
    for c in value.chars() {
        if !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

/// A header value a modifier sets (written inside double quotes): 0..1024 printable ASCII
/// characters except `"`, `\` and `$` (which mean something inside quotes) and `{` `}` (so
/// every config line keeps its braces balanced, as the fuzz check of the config reads it).
pub fn header_value(value: &str) -> Result<String, Invalid> {
    let ok = value.len() <= MAX_HEADER_VALUE
        && value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !b"\"\\${}".contains(&b));
    ok.then(|| value.to_owned()).ok_or_else(|| {
        bad(
            "header value",
            value,
            "up to 1024 printable ASCII characters except \" \\ $ { }",
        )
    })
}

/// An HTTP method of the spec's enum.
pub fn method(value: &str) -> Result<String, Invalid> {
    const METHODS: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    METHODS
        .contains(&value)
        .then(|| value.to_owned())
        .ok_or_else(|| {
            bad(
                "method",
                value,
                "GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH",
            )
        })
}

/// A hostname for a redirect or rewrite: an exact lower-case DNS name.
pub fn hostname(value: &str) -> Result<String, Invalid> {
    crate::validate::dns_name(value).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_refused() {
        for v in [
            "a b", "x;y", "a\"b", "$host", "a\nb", "a{b", "ä", "a|b", "^a", "",
        ] {
            assert!(match_value(v).is_err(), "{v:?}");
        }
        for v in ["a\"b", "a\\b", "$host", "a\nb", "a\u{7f}", "a{b", "}"] {
            assert!(header_value(v).is_err(), "{v:?}");
        }
        for v in ["x_y", "a b", "a:b", "", "a;"] {
            assert!(header_name(v).is_err(), "{v:?}");
        }
        for v in ["a-b", "a.b", "", "a$"] {
            assert!(query_name(v).is_err(), "{v:?}");
        }
        assert!(method("get").is_err() && method("GET;").is_err());
        assert!(path("/_berth_gw/abc", PathKind::Prefix).is_err());
        assert_eq!(exact_regex("a.b(c)"), "^a\\.b\\(c\\)$");
        assert_eq!(
            header_value("text/html; charset=utf-8").unwrap(),
            "text/html; charset=utf-8"
        );
    }
}
