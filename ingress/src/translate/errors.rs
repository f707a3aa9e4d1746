//! `custom-http-errors` + `default-backend` -> [`CustomErrors`] (pure), with their grammars.
//!
//! `custom-http-errors`: comma-separated HTTP codes in `400..=599` (at most [`MAX_CODES`]);
//! `default-backend`: a Service name (DNS label) of the Ingress's own namespace, reached on its
//! first port. The route's answers with one of the codes (from the backend, or nginx's own 503
//! when the backend has no endpoints) are replaced by the error backend's answer to a request
//! for `/` carrying `X-Code`, `X-Format` and `X-Original-URI`, as ingress-nginx does. Either
//! annotation without the other refuses the Ingress (berth has no built-in error backend, and
//! unmatched paths go to `spec.defaultBackend`).

use super::auth::Field;
use super::report;
use crate::model::{CustomErrors, ObjectRef, Reason, Report};
use crate::validate::{self, Invalid};

/// Most codes one Ingress may list.
pub const MAX_CODES: usize = 32;

/// The two annotations as written (either spelling).
#[derive(Debug, Default)]
pub struct ErrorAnnotations<'a> {
    pub codes: Option<Field<'a>>,
    pub backend: Option<Field<'a>>,
}

/// `custom-http-errors`: sorted, unique codes.
pub fn codes(value: &str) -> Result<Vec<u16>, Invalid> {
    let bad = || {
        Invalid(format!(
            "'{}' is not a comma-separated list of HTTP codes 400..599 (at most {MAX_CODES})",
            validate::excerpt(value)
        ))
    };
    let mut out = Vec::new();
    for part in value.split(',') {
        let part = part.trim_matches(' ');
        if part.len() != 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let code: u16 = part.parse().map_err(|_| bad())?;
        if !(400..=599).contains(&code) {
            return Err(bad());
        }
        out.push(code);
    }
    out.sort_unstable();
    out.dedup();
    if out.len() > MAX_CODES {
        return Err(bad());
    }
    Ok(out)
}

/// The Ingress's custom errors, `None` when it sets neither annotation. The upstream is left
/// empty: `translate/ingress.rs` resolves the Service.
pub fn custom_errors(
    origin: &ObjectRef,
    a: ErrorAnnotations<'_>,
) -> Result<Option<Box<CustomErrors>>, Report> {
    let bad = |field: &str, e: Invalid| report(origin, field, Reason::InvalidAnnotation, e.0);
    match (a.codes, a.backend) {
        (None, None) => Ok(None),
        (Some((field, _)), None) => Err(report(
            origin,
            field,
            Reason::InvalidAnnotation,
            "custom-http-errors needs default-backend (a Service of this namespace answering the \
             error pages); berth-ingress has no built-in error backend",
        )),
        (None, Some((field, _))) => Err(report(
            origin,
            field,
            Reason::InvalidAnnotation,
            "default-backend is honoured only with custom-http-errors; for requests no path \
             matches use spec.defaultBackend",
        )),
        (Some((cfield, c)), Some((bfield, b))) => {
            let codes = codes(c).map_err(|e| bad(&cfield, e))?;
            let service = validate::dns_label(b).map_err(|e| bad(&bfield, e))?;
            Ok(Some(Box::new(CustomErrors {
                codes,
                service: service.to_owned(),
                upstream: String::new(),
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    #[test]
    fn codes_grammar_and_pairing() {
        assert_eq!(codes("503,404, 404"), Ok(vec![404, 503]));
        for v in [
            "", "200", "600", "40", "4044", "404;", "404,,503", "$status", "404 503",
        ] {
            assert!(codes(v).is_err(), "{v:?}");
        }
        let many: Vec<String> = (400..440).map(|c| c.to_string()).collect();
        assert!(codes(&many.join(",")).is_err());
        let o = ObjectRef::new(Kind::Ingress, "shop", "api");
        let f = |v: &'static str| Some(("f".to_owned(), v));
        let both = ErrorAnnotations {
            codes: f("503"),
            backend: f("errors"),
        };
        let e = custom_errors(&o, both).unwrap().unwrap();
        assert_eq!((e.codes, e.service.as_str()), (vec![503], "errors"));
        for lone in [
            ErrorAnnotations {
                codes: f("503"),
                ..Default::default()
            },
            ErrorAnnotations {
                backend: f("errors"),
                ..Default::default()
            },
            ErrorAnnotations {
                codes: f("503"),
                backend: f("a/b"),
            },
        ] {
            assert!(custom_errors(&o, lone).is_err());
        }
        assert_eq!(custom_errors(&o, ErrorAnnotations::default()), Ok(None));
    }
}
