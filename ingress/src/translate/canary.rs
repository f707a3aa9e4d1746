//! `canary` + `canary-weight` / `-by-header` / `-by-header-value` / `-by-cookie` -> [`Canary`]
//! (pure), with their grammars.
//!
//! `canary`: `true` | `false`; `canary-weight`: `0..=100` (percent); `canary-by-header`: one
//! header name (letters, digits, `-`); `canary-by-header-value`: `[A-Za-z0-9._~-]{1,64}`
//! (needs `canary-by-header`); `canary-by-cookie`: `[A-Za-z0-9_]{1,64}`. A `canary-*` without
//! `canary: "true"` refuses the Ingress. The split itself is attached to the main Ingress's
//! route of the same host, path and match kind in `merge.rs`.

use std::collections::BTreeMap;

use super::auth::Field;
use super::merge::Routes;
use super::{Candidate, affinity, external_auth, limits, report};
use crate::model::{BackendProtocol, Canary, Host, ObjectRef, Reason, Report, Upstream};
use crate::validate::{self, Invalid};

/// The canary annotations an Ingress carries (either spelling).
#[derive(Debug, Default)]
pub struct CanaryAnnotations<'a> {
    pub canary: Option<Field<'a>>,
    pub weight: Option<Field<'a>>,
    pub header: Option<Field<'a>>,
    pub header_value: Option<Field<'a>>,
    pub cookie: Option<Field<'a>>,
}

/// `canary-by-header-value`.
pub fn header_value(value: &str) -> Result<&str, Invalid> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
    ok.then_some(value).ok_or_else(|| {
        Invalid(format!(
            "'{}' is not 1..64 of letters, digits and . _ ~ -",
            validate::excerpt(value)
        ))
    })
}

/// The Ingress's canary split, `None` when it is no canary.
pub fn canary(origin: &ObjectRef, a: CanaryAnnotations<'_>) -> Result<Option<Box<Canary>>, Report> {
    let bad = |field: &str, e: Invalid| report(origin, field, Reason::InvalidAnnotation, e.0);
    let on = match &a.canary {
        Some((f, v)) => validate::boolean(v).map_err(|e| bad(f, e))?,
        None => false,
    };
    let rest = [&a.weight, &a.header, &a.header_value, &a.cookie];
    if !on {
        if let Some((field, _)) = rest.into_iter().flatten().next() {
            return Err(report(
                origin,
                field,
                Reason::InvalidAnnotation,
                "canary-* needs canary: \"true\"",
            ));
        }
        return Ok(None);
    }
    let weight = match &a.weight {
        Some((_, "0")) | None => 0,
        Some((f, v)) => limits::count(v, 100).map_err(|e| bad(f, e))?,
    };
    let header = match &a.header {
        Some((f, v)) => {
            let names = external_auth::header_names(v).map_err(|e| bad(f, e))?;
            if names.len() != 1 {
                return Err(bad(f, Invalid("one header name".into())));
            }
            names.into_iter().next()
        }
        None => None,
    };
    let header_value = match (&a.header_value, &header) {
        (Some((f, _)), None) => {
            return Err(report(
                origin,
                f,
                Reason::InvalidAnnotation,
                "canary-by-header-value needs canary-by-header",
            ));
        }
        (Some((f, v)), Some(_)) => Some(header_value(v).map_err(|e| bad(f, e))?.to_owned()),
        (None, _) => None,
    };
    let cookie = match &a.cookie {
        Some((f, v)) => Some(affinity::cookie_name(v).map_err(|e| bad(f, e))?.to_owned()),
        None => None,
    };
    Ok(Some(Box::new(Canary {
        origin: origin.clone(),
        upstream: String::new(),
        weight: u8::try_from(weight).unwrap_or(100),
        header,
        header_value,
        cookie,
    })))
}

/// Attach a canary route to the main route of its host, path and match kind (oldest canary
/// wins); a canary with no main route, or a main route it cannot split, is reported.
pub fn attach(
    c: Candidate,
    routes: &mut Routes,
    upstreams: &mut BTreeMap<String, Upstream>,
) -> Result<(), Report> {
    let host = c.host.as_ref().map_or("*".to_owned(), Host::to_string);
    let refuse = |why: String| {
        report(
            &c.origin,
            "metadata.annotations[berth.dev/canary]",
            Reason::Conflict,
            format!(
                "canary for {host} {:?} {}: {why}; not served",
                c.kind, c.path
            ),
        )
    };
    let Some(main) = routes.get_mut(&(c.host.clone(), (c.path.clone(), c.kind))) else {
        return Err(refuse(
            "no main (non-canary) Ingress serves that route".into(),
        ));
    };
    let o = &mut main.options;
    if o.canary.is_some() {
        return Err(refuse(format!(
            "{} already has an older canary",
            main.origin
        )));
    }
    if o.rewrite_target.is_some()
        || o.affinity.is_some()
        || o.backend_protocol != BackendProtocol::Http
    {
        return Err(refuse(format!(
            "{} uses rewrite-target, affinity or backend-protocol {:?}, which a split does not support",
            main.origin, o.backend_protocol
        )));
    }
    if let Some(mut split) = c.options.canary {
        split.upstream = c.upstream.name.clone();
        o.canary = Some(split);
    }
    upstreams
        .entry(c.upstream.name.clone())
        .or_insert(c.upstream);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    #[test]
    fn canary_grammar_and_pairing() {
        assert!(header_value("v1.2-beta").is_ok());
        for v in ["", "a b", "a;b", "$x", "a\"", &"a".repeat(65)] {
            assert!(header_value(v).is_err(), "{v:?}");
        }
        let o = ObjectRef::new(Kind::Ingress, "shop", "api");
        let f = |v: &'static str| Some(("f".to_owned(), v));
        let c = canary(
            &o,
            CanaryAnnotations {
                canary: f("true"),
                weight: f("30"),
                header: f("X-Canary"),
                header_value: f("yes"),
                cookie: f("beta"),
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!((c.weight, c.header.as_deref()), (30, Some("X-Canary")));
        for bad in [
            CanaryAnnotations {
                weight: f("30"),
                ..Default::default()
            },
            CanaryAnnotations {
                canary: f("true"),
                weight: f("101"),
                ..Default::default()
            },
            CanaryAnnotations {
                canary: f("true"),
                header_value: f("yes"),
                ..Default::default()
            },
            CanaryAnnotations {
                canary: f("true"),
                header: f("A,B"),
                ..Default::default()
            },
        ] {
            assert!(canary(&o, bad).is_err());
        }
        assert_eq!(canary(&o, CanaryAnnotations::default()), Ok(None));
    }
}
