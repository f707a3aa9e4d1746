//! An HTTPRoute's (or GRPCRoute's) rules -> located entries (pure).
//!
//! Each (rule, match) becomes one [`Located`] entry: its path (Exact or Prefix) and a
//! [`GwEntry`] with the method, header and query conditions and the rule's action (filters,
//! weighted backends). A rule with a value berth refuses (a RegularExpression match, an
//! unsupported filter, a hostile value) is dropped whole and its problem returned; the
//! route's other rules are still served.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::grammar;
use super::refs::{Grants, backend};
use super::{
    GRPCRouteMatch, GRPCRouteRule, HTTPBackendRef, HTTPHeaderFilter, HTTPHeaderMatch,
    HTTPPathModifier, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule,
};
use crate::model::{
    GwAction, GwEntry, GwProxy, GwRedirect, GwRule, HeaderMods, ObjectRef, PathKind, PathModifier,
    Upstream,
};
use crate::translate::backend::Backends;
use crate::validate::Invalid;

/// One (rule, match) with its path; `order` = (rule index, match index).
#[derive(Clone, Debug)]
pub struct Located {
    pub path: String,
    pub kind: PathKind,
    pub entry: GwEntry,
    pub order: (usize, usize),
}

/// What one route's rules gave.
#[derive(Debug, Default)]
pub struct RouteRules {
    pub located: Vec<Located>,
    /// (field, message) per refused rule.
    pub problems: Vec<(String, String)>,
    /// Every upstream a backend resolved to (with its endpoints).
    pub upstreams: BTreeMap<String, Upstream>,
    /// (field, message) per backendRef that does not resolve (its share answers 500).
    pub unresolved: Vec<(String, String)>,
    pub rules: usize,
}

/// 12 hex digits naming one (route, rule, match).
fn rule_id(origin: &ObjectRef, rule: usize, m: usize) -> String {
    let text = format!("{origin}#{rule}#{m}");
    let digest = Sha256::digest(text.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Context shared by the rules of one route.
pub struct Ctx<'a, 'b> {
    pub kind: &'static str,
    pub namespace: &'a str,
    pub origin: &'a ObjectRef,
    pub grants: &'a Grants<'b>,
    pub backends: &'a Backends<'b>,
}

/// The conditions of one match besides the path.
type Conditions = (Option<String>, Vec<(String, String)>, Vec<(String, String)>);

fn conditions(
    method: Option<&str>,
    headers: &[HTTPHeaderMatch],
    query: &[HTTPHeaderMatch],
) -> Result<Conditions, Invalid> {
    let method = method.map(grammar::method).transpose()?;
    let exact = |m: &HTTPHeaderMatch| match m.type_.as_deref() {
        None | Some("Exact") => Ok(()),
        Some(t) => Err(Invalid(format!(
            "match type {} is not supported (Exact only)",
            crate::validate::excerpt(t)
        ))),
    };
    let mut hs: Vec<(String, String)> = Vec::new();
    for h in headers {
        exact(h)?;
        let name = grammar::header_name(&h.name)?;
        // The spec: of several matches for one name, the first counts.
        if !hs.iter().any(|(n, _)| *n == name) {
            hs.push((name, grammar::match_value(&h.value)?));
        }
    }
    let mut qs: Vec<(String, String)> = Vec::new();
    for q in query {
        exact(q)?;
        let name = grammar::query_name(&q.name)?;
        if !qs.iter().any(|(n, _)| *n == name) {
            qs.push((name, grammar::match_value(&q.value)?));
        }
    }
    hs.sort();
    qs.sort();
    Ok((method, hs, qs))
}

fn header_mods(f: &HTTPHeaderFilter) -> Result<HeaderMods, Invalid> {
    let pairs = |v: &[super::HTTPHeader]| -> Result<Vec<(String, String)>, Invalid> {
        v.iter()
            .map(|h| {
                Ok((
                    grammar::header_name(&h.name)?,
                    grammar::header_value(&h.value)?,
                ))
            })
            .collect()
    };
    Ok(HeaderMods {
        set: pairs(&f.set)?,
        add: pairs(&f.add)?,
        remove: f
            .remove
            .iter()
            .map(|n| grammar::header_name(n))
            .collect::<Result<_, _>>()?,
    })
}

/// A path modifier for a match of `prefix` (`None`: the match is not a PathPrefix).
fn path_modifier(m: &HTTPPathModifier, prefix: Option<&str>) -> Result<PathModifier, Invalid> {
    match m.type_.as_str() {
        "ReplaceFullPath" => {
            let p = m.replace_full_path.as_deref().unwrap_or("/");
            Ok(PathModifier::Full(grammar::path(p, PathKind::Exact)?))
        }
        "ReplacePrefixMatch" => {
            let Some(prefix) = prefix else {
                return Err(Invalid(
                    "ReplacePrefixMatch needs a PathPrefix match".into(),
                ));
            };
            let r = m.replace_prefix_match.as_deref().unwrap_or("/");
            let r = grammar::path(r, PathKind::Exact)?;
            let skip = if prefix == "/" { 0 } else { prefix.len() };
            Ok(PathModifier::Prefix {
                skip,
                replace: r.trim_end_matches('/').to_owned(),
            })
        }
        t => Err(Invalid(format!(
            "path modifier {} is not supported",
            crate::validate::excerpt(t)
        ))),
    }
}

/// The filters and backends of one rule, for a match of `prefix`.
fn action(
    cx: &Ctx<'_, '_>,
    filters: &[HTTPRouteFilter],
    backend_refs: &[HTTPBackendRef],
    prefix: Option<&str>,
    grpc: bool,
    out: &mut RouteRules,
    rule: usize,
) -> Result<GwAction, Invalid> {
    let mut proxy = GwProxy {
        backends: Vec::new(),
        grpc,
        request_headers: HeaderMods::default(),
        response_headers: HeaderMods::default(),
        path: None,
        hostname: None,
    };
    let mut redirect = None;
    for f in filters {
        match (f.type_.as_str(), f) {
            (
                "RequestHeaderModifier",
                HTTPRouteFilter {
                    request_header_modifier: Some(m),
                    ..
                },
            ) => {
                proxy.request_headers = header_mods(m)?;
            }
            (
                "ResponseHeaderModifier",
                HTTPRouteFilter {
                    response_header_modifier: Some(m),
                    ..
                },
            ) => {
                proxy.response_headers = header_mods(m)?;
            }
            (
                "RequestRedirect",
                HTTPRouteFilter {
                    request_redirect: Some(r),
                    ..
                },
            ) if !grpc => {
                let code = match r.status_code.unwrap_or(302) {
                    c @ (301 | 302) => c as u16,
                    c => {
                        return Err(Invalid(format!(
                            "redirect statusCode {c} is not supported (301, 302)"
                        )));
                    }
                };
                let scheme = match r.scheme.as_deref() {
                    None => None,
                    Some("http") => Some("http"),
                    Some("https") => Some("https"),
                    Some(s) => {
                        return Err(Invalid(format!(
                            "redirect scheme {} refused",
                            crate::validate::excerpt(s)
                        )));
                    }
                };
                redirect = Some(GwRedirect {
                    code,
                    scheme,
                    hostname: r.hostname.as_deref().map(grammar::hostname).transpose()?,
                    port: r
                        .port
                        .map(|p| crate::validate::port(i64::from(p)))
                        .transpose()?,
                    path: r
                        .path
                        .as_ref()
                        .map(|p| path_modifier(p, prefix))
                        .transpose()?,
                    listener_ports: (None, None),
                });
            }
            (
                "URLRewrite",
                HTTPRouteFilter {
                    url_rewrite: Some(r),
                    ..
                },
            ) if !grpc => {
                proxy.hostname = r.hostname.as_deref().map(grammar::hostname).transpose()?;
                proxy.path = r
                    .path
                    .as_ref()
                    .map(|p| path_modifier(p, prefix))
                    .transpose()?;
            }
            (t, _) => {
                return Err(Invalid(format!(
                    "filter {} is not supported",
                    crate::validate::excerpt(t)
                )));
            }
        }
    }
    if let Some(r) = redirect {
        return Ok(GwAction::Redirect(r));
    }
    for b in backend_refs {
        if !b.filters.is_empty() {
            return Err(Invalid("backendRef filters are not supported".into()));
        }
        let weight = b.weight.unwrap_or(1);
        if !(0..=1_000_000).contains(&weight) {
            return Err(Invalid(format!("weight {weight} outside 0..1000000")));
        }
        if weight == 0 {
            continue;
        }
        let up = match backend(cx.kind, cx.namespace, b, cx.grants, cx.backends) {
            Ok(u) => {
                let name = u.name.clone();
                out.upstreams.entry(name.clone()).or_insert(u);
                Some(name)
            }
            Err((reason, m)) => {
                // Its share of the requests answers 500 (and ResolvedRefs says why).
                let field = format!("spec.rules[{rule}].backendRefs");
                out.unresolved.push((field, format!("{reason}: {m}")));
                None
            }
        };
        proxy.backends.push((up, weight as u32));
    }
    Ok(GwAction::Proxy(proxy))
}

/// One match of a rule: where it lands and its conditions besides the path.
struct Matched {
    path: String,
    kind: PathKind,
    conditions: Conditions,
}

/// The entries of a route's rules, each given as (matches, filters, backendRefs): a rule
/// without matches has one default match; `matched` turns a match into where it lands. A rule
/// with a match or filter that cannot be served is dropped whole and reported.
fn entries<'r, M: Default + 'r>(
    cx: &Ctx<'_, '_>,
    rules: &'r [impl RuleParts<M>],
    grpc: bool,
    matched: impl Fn(&M) -> Result<Matched, Invalid>,
) -> RouteRules {
    let mut out = RouteRules {
        rules: rules.len(),
        ..RouteRules::default()
    };
    for (i, rule) in rules.iter().enumerate() {
        let default = [M::default()];
        let matches = match rule.matches() {
            [] => &default[..],
            m => m,
        };
        let mut located = Vec::new();
        let result: Result<(), Invalid> = matches.iter().enumerate().try_for_each(|(j, m)| {
            let Matched {
                path,
                kind,
                conditions: (method, headers, query),
            } = matched(m)?;
            // A URLRewrite / redirect prefix replacement cuts an HTTP PathPrefix match.
            let prefix = (!grpc && kind == PathKind::Prefix).then_some(path.as_str());
            let (filters, backend_refs) = (rule.filters(), rule.backend_refs());
            let action = action(cx, filters, backend_refs, prefix, grpc, &mut out, i)?;
            let rule = Arc::new(GwRule {
                id: rule_id(cx.origin, i, j),
                origin: cx.origin.clone(),
                action,
            });
            located.push(Located {
                path,
                kind,
                entry: GwEntry {
                    method,
                    headers,
                    query,
                    rule,
                },
                order: (i, j),
            });
            Ok(())
        });
        match result {
            Ok(()) => out.located.extend(located),
            Err(e) => out.problems.push((format!("spec.rules[{i}]"), e.0)),
        }
    }
    out
}

/// What [`entries`] needs of a rule of either route kind.
trait RuleParts<M> {
    fn matches(&self) -> &[M];
    fn filters(&self) -> &[HTTPRouteFilter];
    fn backend_refs(&self) -> &[HTTPBackendRef];
}

impl RuleParts<HTTPRouteMatch> for HTTPRouteRule {
    fn matches(&self) -> &[HTTPRouteMatch] {
        &self.matches
    }
    fn filters(&self) -> &[HTTPRouteFilter] {
        &self.filters
    }
    fn backend_refs(&self) -> &[HTTPBackendRef] {
        &self.backend_refs
    }
}

impl RuleParts<GRPCRouteMatch> for GRPCRouteRule {
    fn matches(&self) -> &[GRPCRouteMatch] {
        &self.matches
    }
    fn filters(&self) -> &[HTTPRouteFilter] {
        &self.filters
    }
    fn backend_refs(&self) -> &[HTTPBackendRef] {
        &self.backend_refs
    }
}

/// The entries of an HTTPRoute's rules.
pub fn http(cx: &Ctx<'_, '_>, rules: &[HTTPRouteRule]) -> RouteRules {
    entries(cx, rules, false, |m: &HTTPRouteMatch| {
        let pm = m.path.clone().unwrap_or_default();
        let kind = match pm.type_.as_deref() {
            None | Some("PathPrefix") => PathKind::Prefix,
            Some("Exact") => PathKind::Exact,
            Some(_) => {
                return Err(Invalid(
                    "path match type RegularExpression is not supported (Exact, PathPrefix)".into(),
                ));
            }
        };
        Ok(Matched {
            path: grammar::path(pm.value.as_deref().unwrap_or("/"), kind)?,
            kind,
            conditions: conditions(m.method.as_deref(), &m.headers, &m.query_params)?,
        })
    })
}

/// The entries of a GRPCRoute's rules: a method match is the path `/service/method` (Exact)
/// or `/service/` (Prefix, service only); no match: every path.
pub fn grpc(cx: &Ctx<'_, '_>, rules: &[GRPCRouteRule]) -> RouteRules {
    entries(cx, rules, true, |m: &GRPCRouteMatch| {
        let mm = m.method.clone().unwrap_or_default();
        if mm.type_.as_deref().is_some_and(|t| t != "Exact") {
            return Err(Invalid(
                "gRPC method match RegularExpression is not supported".into(),
            ));
        }
        let (path, kind) = match (mm.service.as_deref(), mm.method.as_deref()) {
            (None, None) => ("/".to_owned(), PathKind::Prefix),
            (Some(s), None) => (format!("/{s}"), PathKind::Prefix),
            (Some(s), Some(me)) => (format!("/{s}/{me}"), PathKind::Exact),
            (None, Some(_)) => {
                return Err(Invalid(
                    "a gRPC method match without service is not supported".into(),
                ));
            }
        };
        let (_, headers, _) = conditions(None, &m.headers, &[])?;
        Ok(Matched {
            path: grammar::path(&path, kind)?,
            kind,
            conditions: (None, headers, Vec::new()),
        })
    })
}
