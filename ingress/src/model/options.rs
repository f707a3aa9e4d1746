//! The structured per-route options of [`super::RouteOptions`] (authentication, rate
//! limits), each built from validated annotations in `translate/`.

use super::{HtpasswdFile, ObjectRef};

/// `auth-type: basic` + `auth-secret` + `auth-realm`, resolved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BasicAuth {
    /// Validated realm text (written inside double quotes).
    pub realm: String,
    /// The users, from the Secret (written to `PREFIX/auth/<id>.htpasswd`).
    pub file: HtpasswdFile,
}

/// `auth-url` + `auth-method` + `auth-response-headers`, validated (`translate/external_auth.rs`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExternalAuth {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// A lowercase DNS name or an IPv4 address.
    pub host: String,
    pub port: Option<u16>,
    /// A validated path (no query).
    pub path: String,
    /// Upper-case HTTP method for the auth request; `None`: the client's.
    pub method: Option<&'static str>,
    /// Header names (letters, digits, `-`) copied from the auth response to the upstream
    /// request.
    pub response_headers: Vec<String>,
    /// `auth-signin`: where a `401` of the auth service sends the client (`302`).
    pub signin: Option<Signin>,
}

/// `auth-signin` (+ `auth-signin-redirect-param`), validated (`translate/external_auth.rs`):
/// the client gets `302` to `<url>?<param>=<scheme>%3A%2F%2F<host><path>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signin {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// A lowercase DNS name or an IPv4 address.
    pub host: String,
    pub port: Option<u16>,
    /// A validated path (no query).
    pub path: String,
    /// The query parameter naming the original URL (letters, digits, `_`, `-`; default `rd`).
    pub redirect_param: String,
}

/// `limit-rps` / `limit-rpm` / `limit-connections` / `limit-burst-multiplier` of one Ingress,
/// validated (`translate/limits.rs`). Counted per client address, per Ingress.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RateLimit {
    /// Zone name stem: `berth_<12 hex of sha256("namespace/name")>` of the Ingress.
    pub zone: String,
    /// Requests per second (burst `rps * burst_multiplier`, not delayed).
    pub rps: Option<u32>,
    /// Requests per minute (burst `rpm * burst_multiplier`).
    pub rpm: Option<u32>,
    /// Concurrent connections.
    pub connections: Option<u32>,
    pub burst_multiplier: u32,
}

/// `enable-cors` + `cors-*`, validated (`translate/cors.rs`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cors {
    /// `None`: any origin (`*`); else these exact origins (`scheme://host[:port]`), echoed
    /// back when the request's `Origin` is one of them.
    pub origins: Option<Vec<String>>,
    /// `GET, PUT, ...`
    pub methods: String,
    /// Header names, `, `-separated.
    pub headers: String,
    /// Header names exposed to the page, `, `-separated (may be empty).
    pub expose_headers: String,
    pub credentials: bool,
    /// Seconds a preflight answer may be cached.
    pub max_age: u32,
}

/// `custom-http-errors` + `default-backend`, validated (`translate/errors.rs`): the route's
/// answers with one of `codes` are replaced by the error backend's answer to a request
/// carrying `X-Code` (as ingress-nginx does).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomErrors {
    /// Sorted, unique, each in `400..=599`.
    pub codes: Vec<u16>,
    /// The error backend: a Service of the Ingress's namespace (a DNS label).
    pub service: String,
    /// Its upstream (first Service port), set once the Service is resolved (`translate/ingress.rs`).
    pub upstream: String,
}

/// `affinity: cookie` + `session-cookie-*`, validated (`translate/affinity.rs`): the route's
/// backend is chosen by a consistent hash of the cookie; a client without it is given one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Affinity {
    /// `[A-Za-z0-9_]{1,64}` (it becomes part of an nginx variable name).
    pub cookie: String,
    /// `Max-Age` of the cookie, seconds; `None`: a session cookie.
    pub max_age: Option<u32>,
    /// `Path` of the cookie (a validated path); `None`: the route's path.
    pub path: Option<String>,
}

/// A canary Ingress's split of a main route (`canary: "true"` + `canary-*`, validated in
/// `translate/canary.rs`, attached to the main route by `translate/merge.rs`). A request goes
/// to `upstream` when its header says so, else when its cookie says so, else by weight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Canary {
    /// The canary Ingress (it contributes to the main route: served, quarantined, reported).
    pub origin: ObjectRef,
    /// The canary's upstream; empty until merged onto a main route.
    pub upstream: String,
    /// Percent of the remaining requests, `0..=100`.
    pub weight: u8,
    /// Header name (letters, digits, `-`): `always` / `never`, or `header_value`.
    pub header: Option<String>,
    /// `[A-Za-z0-9._~-]{1,64}`: this exact value sends the request to the canary.
    pub header_value: Option<String>,
    /// Cookie name (`[A-Za-z0-9_]{1,64}`): `always` / `never`.
    pub cookie: Option<String>,
}
