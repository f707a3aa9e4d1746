//! `berth.dev/` annotations of an Ingress -> [`RouteOptions`] for all its routes.
//!
//! The whole set is small on purpose and each value has a strict grammar in `validate.rs`;
//! there is no way to pass raw nginx text. An unknown `berth.dev/` key or an invalid value
//! rejects the whole Ingress with one report naming the annotation (never silently ignored).
//!
//! ingress-nginx's `nginx.ingress.kubernetes.io/` annotations: the spellings of the same
//! options ([`NGINX_EQUIVALENTS`]) are honoured with the same grammar; any other one refuses
//! the Ingress (an app that asked for `auth-tls-verify-client` must not be served without it), unless
//! `--ignore-annotations` names it (then it is reported and ignored); snippets always refuse it.

use std::collections::BTreeMap;

use super::affinity::{self, AffinityAnnotations};
use super::auth::{self, AuthAnnotations};
use super::canary::{self, CanaryAnnotations};
use super::cors::CorsAnnotations;
use super::errors::{self, ErrorAnnotations};
use super::external_auth::{self, ExternalAuthAnnotations};
use super::limits::{self, LimitAnnotations};
use super::secrets::Secrets;
use super::{redirects, report};
use crate::model::{ObjectRef, PathKind, Reason, Report, RouteOptions};
use crate::validate::{self, Invalid};

pub const REWRITE_TARGET: &str = "berth.dev/rewrite-target";
pub const SSL_REDIRECT: &str = "berth.dev/ssl-redirect";
pub const PROXY_BODY_SIZE: &str = "berth.dev/proxy-body-size";
pub const PROXY_READ_TIMEOUT: &str = "berth.dev/proxy-read-timeout";
pub const PROXY_SEND_TIMEOUT: &str = "berth.dev/proxy-send-timeout";
pub const PROXY_CONNECT_TIMEOUT: &str = "berth.dev/proxy-connect-timeout";
pub const PROXY_BUFFERING: &str = "berth.dev/proxy-buffering";
pub const BACKEND_PROTOCOL: &str = "berth.dev/backend-protocol";
pub const ALLOW_SOURCE_RANGE: &str = "berth.dev/allow-source-range";
pub const DENY_SOURCE_RANGE: &str = "berth.dev/deny-source-range";
pub const AUTH_TYPE: &str = "berth.dev/auth-type";
pub const AUTH_SECRET: &str = "berth.dev/auth-secret";
pub const AUTH_SECRET_TYPE: &str = "berth.dev/auth-secret-type";
pub const AUTH_REALM: &str = "berth.dev/auth-realm";
pub const AUTH_URL: &str = "berth.dev/auth-url";
pub const AUTH_METHOD: &str = "berth.dev/auth-method";
pub const AUTH_RESPONSE_HEADERS: &str = "berth.dev/auth-response-headers";
pub const AUTH_SIGNIN: &str = "berth.dev/auth-signin";
pub const AUTH_SIGNIN_REDIRECT_PARAM: &str = "berth.dev/auth-signin-redirect-param";
pub const FORCE_SSL_REDIRECT: &str = "berth.dev/force-ssl-redirect";
pub const PERMANENT_REDIRECT: &str = "berth.dev/permanent-redirect";
pub const PERMANENT_REDIRECT_CODE: &str = "berth.dev/permanent-redirect-code";
pub const TEMPORAL_REDIRECT: &str = "berth.dev/temporal-redirect";
pub const APP_ROOT: &str = "berth.dev/app-root";
pub const UPSTREAM_VHOST: &str = "berth.dev/upstream-vhost";
pub const ENABLE_CORS: &str = "berth.dev/enable-cors";
pub const CORS_ALLOW_ORIGIN: &str = "berth.dev/cors-allow-origin";
pub const CORS_ALLOW_METHODS: &str = "berth.dev/cors-allow-methods";
pub const CORS_ALLOW_HEADERS: &str = "berth.dev/cors-allow-headers";
pub const CORS_EXPOSE_HEADERS: &str = "berth.dev/cors-expose-headers";
pub const CORS_ALLOW_CREDENTIALS: &str = "berth.dev/cors-allow-credentials";
pub const CORS_MAX_AGE: &str = "berth.dev/cors-max-age";
pub const LIMIT_RPS: &str = "berth.dev/limit-rps";
pub const LIMIT_RPM: &str = "berth.dev/limit-rpm";
pub const LIMIT_CONNECTIONS: &str = "berth.dev/limit-connections";
pub const LIMIT_BURST_MULTIPLIER: &str = "berth.dev/limit-burst-multiplier";
pub const CUSTOM_HTTP_ERRORS: &str = "berth.dev/custom-http-errors";
pub const DEFAULT_BACKEND: &str = "berth.dev/default-backend";
pub const AFFINITY: &str = "berth.dev/affinity";
pub const SESSION_COOKIE_NAME: &str = "berth.dev/session-cookie-name";
pub const SESSION_COOKIE_MAX_AGE: &str = "berth.dev/session-cookie-max-age";
pub const SESSION_COOKIE_PATH: &str = "berth.dev/session-cookie-path";
pub const CANARY: &str = "berth.dev/canary";
pub const CANARY_WEIGHT: &str = "berth.dev/canary-weight";
pub const CANARY_BY_HEADER: &str = "berth.dev/canary-by-header";
pub const CANARY_BY_HEADER_VALUE: &str = "berth.dev/canary-by-header-value";
pub const CANARY_BY_COOKIE: &str = "berth.dev/canary-by-cookie";

/// Every `berth.dev/` annotation an Ingress may carry.
pub const KNOWN_ANNOTATIONS: &[&str] = &[
    REWRITE_TARGET,
    SSL_REDIRECT,
    PROXY_BODY_SIZE,
    PROXY_READ_TIMEOUT,
    PROXY_SEND_TIMEOUT,
    PROXY_CONNECT_TIMEOUT,
    BACKEND_PROTOCOL,
    ALLOW_SOURCE_RANGE,
    DENY_SOURCE_RANGE,
    AUTH_TYPE,
    AUTH_SECRET,
    AUTH_SECRET_TYPE,
    AUTH_REALM,
    AUTH_URL,
    AUTH_METHOD,
    AUTH_RESPONSE_HEADERS,
    AUTH_SIGNIN,
    AUTH_SIGNIN_REDIRECT_PARAM,
    FORCE_SSL_REDIRECT,
    PERMANENT_REDIRECT,
    PERMANENT_REDIRECT_CODE,
    TEMPORAL_REDIRECT,
    APP_ROOT,
    UPSTREAM_VHOST,
    LIMIT_RPS,
    LIMIT_RPM,
    LIMIT_CONNECTIONS,
    LIMIT_BURST_MULTIPLIER,
    PROXY_BUFFERING,
    ENABLE_CORS,
    CORS_ALLOW_ORIGIN,
    CORS_ALLOW_METHODS,
    CORS_ALLOW_HEADERS,
    CORS_EXPOSE_HEADERS,
    CORS_ALLOW_CREDENTIALS,
    CORS_MAX_AGE,
    CUSTOM_HTTP_ERRORS,
    DEFAULT_BACKEND,
    AFFINITY,
    SESSION_COOKIE_NAME,
    SESSION_COOKIE_MAX_AGE,
    SESSION_COOKIE_PATH,
    CANARY,
    CANARY_WEIGHT,
    CANARY_BY_HEADER,
    CANARY_BY_HEADER_VALUE,
    CANARY_BY_COOKIE,
];

/// The prefix of ingress-nginx's annotations.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// ingress-nginx annotations honoured with the meaning (and the strict grammar) of a
/// `berth.dev/` one: (name after [`NGINX_PREFIX`], berth key).
pub const NGINX_EQUIVALENTS: &[(&str, &str)] = &[
    ("rewrite-target", REWRITE_TARGET),
    ("ssl-redirect", SSL_REDIRECT),
    ("proxy-body-size", PROXY_BODY_SIZE),
    ("proxy-read-timeout", PROXY_READ_TIMEOUT),
    ("proxy-send-timeout", PROXY_SEND_TIMEOUT),
    ("proxy-connect-timeout", PROXY_CONNECT_TIMEOUT),
    ("backend-protocol", BACKEND_PROTOCOL),
    ("whitelist-source-range", ALLOW_SOURCE_RANGE),
    ("allowlist-source-range", ALLOW_SOURCE_RANGE),
    ("denylist-source-range", DENY_SOURCE_RANGE),
    ("auth-type", AUTH_TYPE),
    ("auth-secret", AUTH_SECRET),
    ("auth-secret-type", AUTH_SECRET_TYPE),
    ("auth-realm", AUTH_REALM),
    ("auth-url", AUTH_URL),
    ("auth-method", AUTH_METHOD),
    ("auth-response-headers", AUTH_RESPONSE_HEADERS),
    ("auth-signin", AUTH_SIGNIN),
    ("auth-signin-redirect-param", AUTH_SIGNIN_REDIRECT_PARAM),
    ("force-ssl-redirect", FORCE_SSL_REDIRECT),
    ("permanent-redirect", PERMANENT_REDIRECT),
    ("permanent-redirect-code", PERMANENT_REDIRECT_CODE),
    ("temporal-redirect", TEMPORAL_REDIRECT),
    ("app-root", APP_ROOT),
    ("upstream-vhost", UPSTREAM_VHOST),
    ("limit-rps", LIMIT_RPS),
    ("limit-rpm", LIMIT_RPM),
    ("limit-connections", LIMIT_CONNECTIONS),
    ("limit-burst-multiplier", LIMIT_BURST_MULTIPLIER),
    ("proxy-buffering", PROXY_BUFFERING),
    ("enable-cors", ENABLE_CORS),
    ("cors-allow-origin", CORS_ALLOW_ORIGIN),
    ("cors-allow-methods", CORS_ALLOW_METHODS),
    ("cors-allow-headers", CORS_ALLOW_HEADERS),
    ("cors-expose-headers", CORS_EXPOSE_HEADERS),
    ("cors-allow-credentials", CORS_ALLOW_CREDENTIALS),
    ("cors-max-age", CORS_MAX_AGE),
    ("custom-http-errors", CUSTOM_HTTP_ERRORS),
    ("default-backend", DEFAULT_BACKEND),
    ("affinity", AFFINITY),
    ("session-cookie-name", SESSION_COOKIE_NAME),
    ("session-cookie-max-age", SESSION_COOKIE_MAX_AGE),
    ("session-cookie-path", SESSION_COOKIE_PATH),
    ("canary", CANARY),
    ("canary-weight", CANARY_WEIGHT),
    ("canary-by-header", CANARY_BY_HEADER),
    ("canary-by-header-value", CANARY_BY_HEADER_VALUE),
    ("canary-by-cookie", CANARY_BY_COOKIE),
];

/// A snippet (`configuration-snippet`, `server-snippet`, ...): raw nginx text, never accepted,
/// whatever `--ignore-annotations` says.
pub fn is_snippet(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with("snippet")
}

/// The name after [`NGINX_PREFIX`] (matched in any case), if `key` has that prefix.
pub(crate) fn nginx_name(key: &str) -> Option<&str> {
    let p = NGINX_PREFIX.len();
    (key.len() >= p && key.is_char_boundary(p) && key[..p].eq_ignore_ascii_case(NGINX_PREFIX))
        .then(|| &key[p..])
}

/// An annotation key as reports show it: verbatim when it is plain (so the report names it in
/// full), else an escaped excerpt.
pub(crate) fn shown(key: &str) -> String {
    let plain = key.len() <= 120
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b));
    if plain {
        key.to_owned()
    } else {
        validate::excerpt(key)
    }
}

/// Parse the annotations of one Ingress: its options and the reports of annotations ignored
/// because `ignore` (`--ignore-annotations`) names them, or the one report refusing it.
///
/// `berth.dev/` keys and the [`NGINX_EQUIVALENTS`] are parsed; any other
/// `nginx.ingress.kubernetes.io/` key refuses the Ingress (`unsupported_annotation`, every such
/// key named) unless `ignore` names it; snippets always refuse it. Other keys are not ours.
/// `secrets`: where `auth-secret` is looked up (`translate/auth.rs`).
pub fn route_options(
    origin: &ObjectRef,
    annotations: Option<&BTreeMap<String, String>>,
    ignore: &[String],
    secrets: &Secrets<'_>,
) -> Result<(RouteOptions, Vec<Report>), Report> {
    let mut o = RouteOptions::default();
    let mut ignored = Vec::new();
    let Some(annotations) = annotations else {
        return Ok((o, ignored));
    };
    // (berth key, the key as written, value), after refusing what we cannot honour.
    let mut wanted: Vec<(&str, &str, &str)> = Vec::new();
    let mut unsupported: Vec<(&str, bool)> = Vec::new();
    for (key, value) in annotations {
        if key.starts_with("berth.dev/") {
            wanted.push((key, key, value));
            continue;
        }
        let Some(name) = nginx_name(key) else {
            continue;
        };
        if is_snippet(name) {
            unsupported.push((key, true));
        } else if let Some((_, berth)) = NGINX_EQUIVALENTS.iter().find(|(n, _)| *n == name) {
            wanted.push((berth, key, value));
        } else if ignore.iter().any(|i| i == name) {
            ignored.push(report(
                origin,
                format!("metadata.annotations[{}]", shown(key)),
                Reason::IgnoredAnnotation,
                format!(
                    "{} is not implemented by berth-ingress; ignored as --ignore-annotations asks",
                    shown(key)
                ),
            ));
        } else {
            unsupported.push((key, false));
        }
    }
    if let Some((first, _)) = unsupported.first() {
        let all: Vec<String> = unsupported.iter().take(8).map(|(k, _)| shown(k)).collect();
        let why = if unsupported.iter().any(|(_, snippet)| *snippet) {
            "snippets (raw nginx configuration) are never accepted; "
        } else {
            ""
        };
        return Err(report(
            origin,
            format!("metadata.annotations[{}]", shown(first)),
            Reason::UnsupportedAnnotation,
            format!(
                "{why}ingress-nginx annotation(s) berth-ingress does not honour: {}{}; the Ingress \
                 is not served (--ignore-annotations can ignore non-snippet ones)",
                all.join(", "),
                if unsupported.len() > all.len() {
                    ", ..."
                } else {
                    ""
                }
            ),
        ));
    }
    let mut seen: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut auth = AuthAnnotations::default();
    let mut ext = ExternalAuthAnnotations::default();
    let mut lim = LimitAnnotations::default();
    let mut cors = CorsAnnotations::default();
    let mut errs = ErrorAnnotations::default();
    let mut sticky = AffinityAnnotations::default();
    let mut split = CanaryAnnotations::default();
    let (mut permanent, mut permanent_code, mut temporal) = (None, None, None);
    for (berth, key, value) in wanted {
        let field = || format!("metadata.annotations[{}]", shown(key));
        let bad = |e: Invalid| report(origin, field(), Reason::InvalidAnnotation, e.to_string());
        if let Some((other, v)) = seen.insert(berth, (key, value))
            && v != value
        {
            return Err(report(
                origin,
                field(),
                Reason::InvalidAnnotation,
                format!(
                    "{} says otherwise (one meaning, two spellings)",
                    shown(other)
                ),
            ));
        }
        match berth {
            REWRITE_TARGET if value.contains('$') => {
                return Err(bad(Invalid(
                    "capture groups ($1) need use-regex, which berth-ingress does not support \
                     (paths match element-wise, never by regex); use a plain path: the matched \
                     prefix is replaced by it"
                        .into(),
                )));
            }
            REWRITE_TARGET => {
                o.rewrite_target = Some(validate::rewrite_target(value).map_err(bad)?)
            }
            SSL_REDIRECT => o.ssl_redirect = validate::boolean(value).map_err(bad)?,
            PROXY_BODY_SIZE => o.proxy_body_size = Some(validate::size(value).map_err(bad)?),
            PROXY_SEND_TIMEOUT => {
                o.proxy_send_timeout = Some(validate::timeout_seconds(value).map_err(bad)?)
            }
            PROXY_READ_TIMEOUT => {
                o.proxy_read_timeout = Some(validate::timeout_seconds(value).map_err(bad)?)
            }
            PROXY_BUFFERING => {
                o.proxy_buffering = match value {
                    "on" => true,
                    "off" => false,
                    _ => {
                        return Err(bad(Invalid(format!(
                            "'{}' is not on or off",
                            validate::excerpt(value)
                        ))));
                    }
                }
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
            DENY_SOURCE_RANGE => o.deny_source_ranges = validate::cidr_list(value).map_err(bad)?,
            AUTH_TYPE => auth.auth_type = Some((field(), value)),
            AUTH_SECRET => auth.secret = Some((field(), value)),
            AUTH_SECRET_TYPE => auth.secret_type = Some((field(), value)),
            AUTH_REALM => auth.realm = Some((field(), value)),
            AUTH_URL => ext.url = Some((field(), value)),
            AUTH_METHOD => ext.method = Some((field(), value)),
            AUTH_RESPONSE_HEADERS => ext.response_headers = Some((field(), value)),
            AUTH_SIGNIN => ext.signin = Some((field(), value)),
            AUTH_SIGNIN_REDIRECT_PARAM => ext.signin_redirect_param = Some((field(), value)),
            FORCE_SSL_REDIRECT => o.force_ssl_redirect = validate::boolean(value).map_err(bad)?,
            PERMANENT_REDIRECT => permanent = Some(redirects::url(value).map_err(bad)?),
            PERMANENT_REDIRECT_CODE => {
                permanent_code = Some((field(), redirects::code(value).map_err(bad)?))
            }
            TEMPORAL_REDIRECT => temporal = Some((field(), redirects::url(value).map_err(bad)?)),
            APP_ROOT => o.app_root = Some(validate::path(value, PathKind::Exact).map_err(bad)?),
            ENABLE_CORS => cors.enable = Some((field(), value)),
            CORS_ALLOW_ORIGIN => cors.origin = Some((field(), value)),
            CORS_ALLOW_METHODS => cors.methods = Some((field(), value)),
            CORS_ALLOW_HEADERS => cors.headers = Some((field(), value)),
            CORS_EXPOSE_HEADERS => cors.expose_headers = Some((field(), value)),
            CORS_ALLOW_CREDENTIALS => cors.credentials = Some((field(), value)),
            CORS_MAX_AGE => cors.max_age = Some((field(), value)),
            LIMIT_RPS => lim.rps = Some((field(), value)),
            LIMIT_RPM => lim.rpm = Some((field(), value)),
            LIMIT_CONNECTIONS => lim.connections = Some((field(), value)),
            LIMIT_BURST_MULTIPLIER => lim.burst_multiplier = Some((field(), value)),
            CUSTOM_HTTP_ERRORS => errs.codes = Some((field(), value)),
            DEFAULT_BACKEND => errs.backend = Some((field(), value)),
            AFFINITY => sticky.mode = Some((field(), value)),
            SESSION_COOKIE_NAME => sticky.name = Some((field(), value)),
            SESSION_COOKIE_MAX_AGE => sticky.max_age = Some((field(), value)),
            SESSION_COOKIE_PATH => sticky.path = Some((field(), value)),
            CANARY => split.canary = Some((field(), value)),
            CANARY_WEIGHT => split.weight = Some((field(), value)),
            CANARY_BY_HEADER => split.header = Some((field(), value)),
            CANARY_BY_HEADER_VALUE => split.header_value = Some((field(), value)),
            CANARY_BY_COOKIE => split.cookie = Some((field(), value)),
            UPSTREAM_VHOST => o.upstream_vhost = Some(redirects::vhost(value).map_err(bad)?),
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
    o.redirect = match (permanent, permanent_code, temporal) {
        (Some(_), _, Some((field, _))) => {
            return Err(report(
                origin,
                field,
                Reason::InvalidAnnotation,
                "permanent-redirect and temporal-redirect cannot both be set",
            ));
        }
        (None, Some((field, _)), _) => {
            return Err(report(
                origin,
                field,
                Reason::InvalidAnnotation,
                "permanent-redirect-code needs permanent-redirect",
            ));
        }
        (Some(url), code, None) => Some((code.map_or(301, |(_, c)| c), url)),
        (None, None, Some((_, url))) => Some((302, url)),
        (None, None, None) => None,
    };
    o.basic_auth = auth::basic(origin, auth, secrets)?;
    o.rate_limit = limits::limits(origin, lim)?;
    o.cors = super::cors::cors(origin, cors)?;
    o.external_auth = external_auth::external(origin, ext)?;
    o.custom_errors = errors::custom_errors(origin, errs)?;
    o.affinity = affinity::affinity(origin, sticky)?;
    if let Some(c) = canary::canary(origin, split)? {
        // A canary Ingress only splits the main Ingress's route; it brings no options.
        if o != RouteOptions::default() {
            return Err(report(
                origin,
                format!("metadata.annotations[{CANARY}]"),
                Reason::InvalidAnnotation,
                "a canary Ingress takes the main Ingress's options; other annotations on it \
                 would not apply and are refused",
            ));
        }
        o.canary = Some(c);
    }
    let grpc = o.backend_protocol.is_grpc();
    for (set, key, what) in [
        (
            o.custom_errors.is_some(),
            CUSTOM_HTTP_ERRORS,
            "gRPC errors are not HTTP codes",
        ),
        (
            o.affinity.is_some(),
            AFFINITY,
            "gRPC clients keep no cookies",
        ),
    ] {
        if set && (o.redirect.is_some() || grpc) {
            return Err(report(
                origin,
                format!("metadata.annotations[{key}]"),
                Reason::InvalidAnnotation,
                format!(
                    "{} cannot be combined with permanent-redirect or temporal-redirect \
                     (nothing is proxied) or backend-protocol GRPC / GRPCS ({what})",
                    &key["berth.dev/".len()..]
                ),
            ));
        }
    }
    if o.backend_protocol.is_grpc()
        && (o.upstream_vhost.is_some()
            || !o.proxy_buffering
            || o.external_auth
                .as_ref()
                .is_some_and(|e| !e.response_headers.is_empty()))
    {
        return Err(report(
            origin,
            format!("metadata.annotations[{BACKEND_PROTOCOL}]"),
            Reason::InvalidAnnotation,
            "auth-response-headers, upstream-vhost and proxy-buffering cannot be combined with \
             backend-protocol GRPC or GRPCS",
        ));
    }
    if let Some(why) = external_auth::signin_conflict(&o) {
        return Err(report(
            origin,
            format!("metadata.annotations[{AUTH_SIGNIN}]"),
            Reason::InvalidAnnotation,
            format!("auth-signin cannot be combined with {why}"),
        ));
    }
    if o.backend_protocol.is_grpc() && o.rewrite_target.is_some() {
        return Err(report(
            origin,
            format!("metadata.annotations[{REWRITE_TARGET}]"),
            Reason::InvalidAnnotation,
            "rewrite-target cannot be combined with backend-protocol GRPC or GRPCS (gRPC paths name methods)",
        ));
    }
    Ok((o, ignored))
}

#[cfg(test)]
#[path = "annotations_tests.rs"]
mod tests;
