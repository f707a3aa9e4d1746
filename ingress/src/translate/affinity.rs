//! `affinity` + `session-cookie-name` / `-max-age` / `-path` -> [`Affinity`] (pure), with
//! their grammars.
//!
//! `affinity`: `cookie` (the only mode, as in ingress-nginx); `session-cookie-name`:
//! `[A-Za-z0-9_]{1,64}` (default `INGRESSCOOKIE`; it becomes part of an nginx variable name, so
//! no `-`); `session-cookie-max-age`: seconds `1..=`[`MAX_AGE`]; `session-cookie-path`: a path.
//! A `session-cookie-*` without `affinity` refuses the Ingress.

use super::auth::Field;
use super::report;
use crate::model::{Affinity, ObjectRef, PathKind, Reason, Report};
use crate::validate::{self, Invalid};

/// ingress-nginx's default cookie name.
pub const DEFAULT_COOKIE: &str = "INGRESSCOOKIE";
/// Longest accepted `session-cookie-max-age` (ten years).
pub const MAX_AGE: u32 = 315_360_000;

/// The affinity annotations an Ingress carries (either spelling).
#[derive(Debug, Default)]
pub struct AffinityAnnotations<'a> {
    pub mode: Option<Field<'a>>,
    pub name: Option<Field<'a>>,
    pub max_age: Option<Field<'a>>,
    pub path: Option<Field<'a>>,
}

/// `session-cookie-name`.
pub fn cookie_name(value: &str) -> Result<&str, Invalid> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(value).ok_or_else(|| {
        Invalid(format!(
            "'{}' is not a cookie name of 1..64 letters, digits and '_'",
            validate::excerpt(value)
        ))
    })
}

/// `session-cookie-max-age`.
pub fn max_age(value: &str) -> Result<u32, Invalid> {
    let ok = !value.is_empty() && value.len() <= 9 && value.bytes().all(|b| b.is_ascii_digit());
    let n: u32 = if ok { value.parse().unwrap_or(0) } else { 0 };
    if n == 0 || n > MAX_AGE {
        return Err(Invalid(format!(
            "'{}' is not a number of seconds in 1..{MAX_AGE}",
            validate::excerpt(value)
        )));
    }
    Ok(n)
}

/// The Ingress's affinity, `None` when it asks for none.
pub fn affinity(
    origin: &ObjectRef,
    a: AffinityAnnotations<'_>,
) -> Result<Option<Box<Affinity>>, Report> {
    let bad = |field: &str, e: Invalid| report(origin, field, Reason::InvalidAnnotation, e.0);
    let Some((field, mode)) = a.mode else {
        if let Some((field, _)) = a.name.or(a.max_age).or(a.path) {
            return Err(report(
                origin,
                field,
                Reason::InvalidAnnotation,
                "session-cookie-* needs affinity: cookie",
            ));
        }
        return Ok(None);
    };
    if mode != "cookie" {
        return Err(bad(
            &field,
            Invalid(format!(
                "'{}' is not cookie (the only affinity berth-ingress implements)",
                validate::excerpt(mode)
            )),
        ));
    }
    let cookie = match a.name {
        Some((f, v)) => cookie_name(v).map_err(|e| bad(&f, e))?,
        None => DEFAULT_COOKIE,
    };
    let max_age = match a.max_age {
        Some((f, v)) => Some(max_age(v).map_err(|e| bad(&f, e))?),
        None => None,
    };
    let path = match a.path {
        Some((f, v)) => Some(validate::path(v, PathKind::Exact).map_err(|e| bad(&f, e))?),
        None => None,
    };
    Ok(Some(Box::new(Affinity {
        cookie: cookie.to_owned(),
        max_age,
        path,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    #[test]
    fn affinity_grammar_and_pairing() {
        assert_eq!(cookie_name("route_1"), Ok("route_1"));
        for v in ["", "a-b", "a b", "a;b", "a=b", "$x", &"a".repeat(65)] {
            assert!(cookie_name(v).is_err(), "{v:?}");
        }
        assert_eq!(max_age("3600"), Ok(3600));
        for v in ["0", "", "-1", "1s", "999999999", "60;"] {
            assert!(max_age(v).is_err(), "{v:?}");
        }
        let o = ObjectRef::new(Kind::Ingress, "shop", "api");
        let f = |v: &'static str| Some(("f".to_owned(), v));
        let a = affinity(
            &o,
            AffinityAnnotations {
                mode: f("cookie"),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (a.cookie.as_str(), a.max_age, a.path),
            (DEFAULT_COOKIE, None, None)
        );
        for bad in [
            AffinityAnnotations {
                mode: f("balanced"),
                ..Default::default()
            },
            AffinityAnnotations {
                name: f("x"),
                ..Default::default()
            },
            AffinityAnnotations {
                mode: f("cookie"),
                path: f("/a;b"),
                ..Default::default()
            },
        ] {
            assert!(affinity(&o, bad).is_err());
        }
        assert_eq!(affinity(&o, AffinityAnnotations::default()), Ok(None));
    }
}
