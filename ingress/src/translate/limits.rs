//! Rate-limit annotations -> [`RateLimit`] (pure), with their grammars.
//!
//! `limit-rps`, `limit-rpm`, `limit-connections`: a whole number 1..=[`MAX_LIMIT`];
//! `limit-burst-multiplier`: 1..=[`MAX_MULTIPLIER`] (default [`DEFAULT_MULTIPLIER`], as in
//! ingress-nginx). The counters are per client address and per Ingress (one zone per Ingress,
//! named after a hash of `namespace/name`); requests past a limit get `503`, as ingress-nginx
//! answers by default. A multiplier without a limit refuses the Ingress.

use sha2::{Digest as _, Sha256};

use super::auth::Field;
use super::report;
use crate::model::{ObjectRef, RateLimit, Reason, Report};
use crate::validate::{self, Invalid};

/// Largest accepted limit.
pub const MAX_LIMIT: u32 = 100_000;
/// Largest accepted burst multiplier.
pub const MAX_MULTIPLIER: u32 = 100;
/// ingress-nginx's default burst multiplier.
pub const DEFAULT_MULTIPLIER: u32 = 5;

/// The limit annotations an Ingress carries (either spelling).
#[derive(Debug, Default)]
pub struct LimitAnnotations<'a> {
    pub rps: Option<Field<'a>>,
    pub rpm: Option<Field<'a>>,
    pub connections: Option<Field<'a>>,
    pub burst_multiplier: Option<Field<'a>>,
}

/// A whole number in `1..=max`.
pub fn count(value: &str, max: u32) -> Result<u32, Invalid> {
    let ok = !value.is_empty() && value.len() <= 6 && value.bytes().all(|b| b.is_ascii_digit());
    let n: u32 = if ok { value.parse().unwrap_or(0) } else { 0 };
    if n == 0 || n > max {
        return Err(Invalid(format!(
            "'{}' is not a whole number in 1..{max}",
            validate::excerpt(value)
        )));
    }
    Ok(n)
}

/// The Ingress's limits, `None` when it sets none.
pub fn limits(origin: &ObjectRef, a: LimitAnnotations<'_>) -> Result<Option<RateLimit>, Report> {
    let parse = |f: &Option<Field<'_>>, max: u32| -> Result<Option<u32>, Report> {
        match f {
            None => Ok(None),
            Some((field, v)) => count(v, max)
                .map(Some)
                .map_err(|e| report(origin, field, Reason::InvalidAnnotation, e.to_string())),
        }
    };
    let rps = parse(&a.rps, MAX_LIMIT)?;
    let rpm = parse(&a.rpm, MAX_LIMIT)?;
    let connections = parse(&a.connections, MAX_LIMIT)?;
    let multiplier = parse(&a.burst_multiplier, MAX_MULTIPLIER)?;
    if let Some((field, _)) = &a.burst_multiplier
        && rps.is_none()
        && rpm.is_none()
    {
        return Err(report(
            origin,
            field,
            Reason::InvalidAnnotation,
            "limit-burst-multiplier needs limit-rps or limit-rpm",
        ));
    }
    if rps.is_none() && rpm.is_none() && connections.is_none() {
        return Ok(None);
    }
    let digest = Sha256::digest(format!("{}/{}", origin.namespace, origin.name).as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(RateLimit {
        zone: format!("berth_{hex}"),
        rps,
        rpm,
        connections,
        burst_multiplier: multiplier.unwrap_or(DEFAULT_MULTIPLIER),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    #[test]
    fn limits_grammar_and_zone() {
        assert_eq!(count("5", MAX_LIMIT), Ok(5));
        for v in ["0", "", "-1", "1.5", "5;", "100001", " 5", "9999999"] {
            assert!(count(v, MAX_LIMIT).is_err(), "{v:?}");
        }
        let o = ObjectRef::new(Kind::Ingress, "shop", "api");
        let f = |v: &'static str| Some(("f".to_owned(), v));
        let l = limits(
            &o,
            LimitAnnotations {
                rps: f("10"),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!((l.rps, l.burst_multiplier), (Some(10), 5));
        assert!(l.zone.starts_with("berth_") && l.zone.len() == 18);
        let only_mult = LimitAnnotations {
            burst_multiplier: f("2"),
            ..Default::default()
        };
        assert!(limits(&o, only_mult).is_err());
        assert_eq!(limits(&o, LimitAnnotations::default()), Ok(None));
    }
}
