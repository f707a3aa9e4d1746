//! `berth.dev/` annotations of an Ingress -> [`RouteOptions`] for all its routes.
//!
//! The whole set is small on purpose and each value has a strict grammar in `validate.rs`;
//! there is no way to pass raw nginx text. An unknown `berth.dev/` key or an invalid value
//! rejects the whole Ingress with one report naming the annotation (never silently ignored).

use std::collections::BTreeMap;

use super::report;
use crate::model::{BackendProtocol, ObjectRef, Reason, Report, RouteOptions};
use crate::validate::{self, Invalid};

pub const REWRITE_TARGET: &str = "berth.dev/rewrite-target";
pub const SSL_REDIRECT: &str = "berth.dev/ssl-redirect";
pub const PROXY_BODY_SIZE: &str = "berth.dev/proxy-body-size";
pub const PROXY_READ_TIMEOUT: &str = "berth.dev/proxy-read-timeout";
pub const PROXY_CONNECT_TIMEOUT: &str = "berth.dev/proxy-connect-timeout";
pub const BACKEND_PROTOCOL: &str = "berth.dev/backend-protocol";
pub const ALLOW_SOURCE_RANGE: &str = "berth.dev/allow-source-range";

/// Every `berth.dev/` annotation an Ingress may carry.
pub const KNOWN_ANNOTATIONS: &[&str] = &[
    REWRITE_TARGET,
    SSL_REDIRECT,
    PROXY_BODY_SIZE,
    PROXY_READ_TIMEOUT,
    PROXY_CONNECT_TIMEOUT,
    BACKEND_PROTOCOL,
    ALLOW_SOURCE_RANGE,
];

/// Parse the annotations of one Ingress.
pub fn route_options(
    origin: &ObjectRef,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<RouteOptions, Report> {
    let mut o = RouteOptions::default();
    let Some(annotations) = annotations else {
        return Ok(o);
    };
    for (key, value) in annotations {
        if !key.starts_with("berth.dev/") {
            continue;
        }
        let field = || format!("metadata.annotations[{}]", validate::excerpt(key));
        let bad = |e: Invalid| report(origin, field(), Reason::InvalidAnnotation, e.to_string());
        match key.as_str() {
            REWRITE_TARGET => {
                o.rewrite_target = Some(validate::rewrite_target(value).map_err(bad)?)
            }
            SSL_REDIRECT => o.ssl_redirect = validate::boolean(value).map_err(bad)?,
            PROXY_BODY_SIZE => o.proxy_body_size = Some(validate::size(value).map_err(bad)?),
            PROXY_READ_TIMEOUT => {
                o.proxy_read_timeout = Some(validate::timeout_seconds(value).map_err(bad)?)
            }
            PROXY_CONNECT_TIMEOUT => {
                o.proxy_connect_timeout = Some(validate::timeout_seconds(value).map_err(bad)?)
            }
            BACKEND_PROTOCOL => {
                o.backend_protocol = validate::backend_protocol(value).map_err(bad)?
            }
            ALLOW_SOURCE_RANGE => {
                o.allow_source_ranges = validate::cidr_list(value).map_err(bad)?
            }
            _ => {
                return Err(report(
                    origin,
                    field(),
                    Reason::InvalidAnnotation,
                    "unknown berth.dev annotation",
                ));
            }
        }
    }
    if o.backend_protocol == BackendProtocol::Grpc && o.rewrite_target.is_some() {
        return Err(report(
            origin,
            format!("metadata.annotations[{REWRITE_TARGET}]"),
            Reason::InvalidAnnotation,
            "rewrite-target cannot be combined with backend-protocol GRPC (gRPC paths name methods)",
        ));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn parse(pairs: &[(&str, &str)]) -> Result<RouteOptions, Report> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        route_options(&ObjectRef::new(Kind::Ingress, "ns", "i"), Some(&map))
    }

    #[test]
    fn parses_every_annotation() {
        let o = parse(&[
            (REWRITE_TARGET, "/api/"),
            (SSL_REDIRECT, "false"),
            (PROXY_BODY_SIZE, "1K"),
            (PROXY_READ_TIMEOUT, "30"),
            (PROXY_CONNECT_TIMEOUT, "5s"),
            (BACKEND_PROTOCOL, "HTTPS"),
            (ALLOW_SOURCE_RANGE, "10.0.0.0/8"),
            ("other.io/x", "anything; goes"),
        ])
        .unwrap();
        assert_eq!(o.rewrite_target.as_deref(), Some("/api"));
        assert!(!o.ssl_redirect);
        assert_eq!(o.proxy_body_size.as_deref(), Some("1k"));
        assert_eq!(
            (o.proxy_read_timeout, o.proxy_connect_timeout),
            (Some(30), Some(5))
        );
        assert_eq!(o.backend_protocol, BackendProtocol::Https);
        assert_eq!(o.allow_source_ranges.len(), 1);
        assert_eq!(parse(&[]).unwrap(), RouteOptions::default());
    }

    #[test]
    fn rejects_unknown_invalid_and_grpc_rewrite() {
        for pairs in [
            vec![("berth.dev/configuration-snippet", "return 200;")],
            vec![(PROXY_BODY_SIZE, "1m; evil")],
            vec![(ALLOW_SOURCE_RANGE, "0.0.0.0/0 }")],
            vec![(BACKEND_PROTOCOL, "GRPC"), (REWRITE_TARGET, "/")],
        ] {
            let r = parse(&pairs).unwrap_err();
            assert_eq!(r.reason, Reason::InvalidAnnotation, "{pairs:?}");
            assert!(!r.detail.contains("evil }"), "{r}");
        }
    }
}
