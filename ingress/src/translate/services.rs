//! Label-selected Services -> route candidates (the original design).
//!
//! A Service matching `--service-selector` is routed by its annotations:
//! `berth.dev/host` (required; exact or `*.` wildcard host), `berth.dev/path` (optional,
//! default `/`, matched as a Prefix) and `berth.dev/port` (optional, number or name; default
//! the Service's first port). Any other `berth.dev/` annotation is refused, so a typo or a
//! hostile value is reported instead of silently ignored.

use k8s_openapi::api::core::v1::Service;

use super::backend::Backends;
use super::{Age, Candidate, TranslateConfig, Translated, origin, report};
use crate::model::{Kind, PathKind, Reason, Report, RouteOptions};
use crate::snapshot::Snapshot;
use crate::validate::{self, PortRef};

pub const HOST_ANNOTATION: &str = "berth.dev/host";
pub const PATH_ANNOTATION: &str = "berth.dev/path";
pub const PORT_ANNOTATION: &str = "berth.dev/port";
const KNOWN: &[&str] = &[HOST_ANNOTATION, PATH_ANNOTATION, PORT_ANNOTATION];

pub fn translate(
    snapshot: &Snapshot,
    config: &TranslateConfig,
    backends: &Backends<'_>,
    out: &mut Translated,
) {
    for svc in &snapshot.services {
        if !config
            .service_selector
            .matches(svc.metadata.labels.as_ref())
        {
            continue;
        }
        match candidate(svc, backends) {
            Ok((c, warning)) => {
                out.routes.push(c);
                out.reports.extend(warning);
            }
            Err(r) => out.reports.push(r),
        }
    }
}

fn candidate(
    svc: &Service,
    backends: &Backends<'_>,
) -> Result<(Candidate, Option<Report>), Report> {
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    let name = svc.metadata.name.as_deref().unwrap_or("");
    // Service names are DNS labels; they become part of the upstream name.
    let origin = origin(Kind::Service, &svc.metadata, true)?;
    let empty = Default::default();
    let annotations = svc.metadata.annotations.as_ref().unwrap_or(&empty);
    for key in annotations.keys() {
        if key.starts_with("berth.dev/") && !KNOWN.contains(&key.as_str()) {
            return Err(report(
                &origin,
                format!("metadata.annotations[{}]", validate::excerpt(key)),
                Reason::InvalidAnnotation,
                "unknown berth.dev annotation (known: host, path, port)",
            ));
        }
    }
    let field = |k: &str| format!("metadata.annotations[{k}]");
    let Some(host) = annotations.get(HOST_ANNOTATION) else {
        return Err(report(
            &origin,
            field(HOST_ANNOTATION),
            Reason::MissingAnnotation,
            "selected Service has no berth.dev/host annotation",
        ));
    };
    let host = validate::host(host).map_err(|e| {
        report(
            &origin,
            field(HOST_ANNOTATION),
            Reason::InvalidHost,
            e.to_string(),
        )
    })?;
    let path = annotations.get(PATH_ANNOTATION).map_or("/", String::as_str);
    let path = validate::path(path, PathKind::Prefix).map_err(|e| {
        report(
            &origin,
            field(PATH_ANNOTATION),
            Reason::InvalidPath,
            e.to_string(),
        )
    })?;
    let port = match annotations.get(PORT_ANNOTATION) {
        Some(p) => validate::port_ref(p).map_err(|e| {
            report(
                &origin,
                field(PORT_ANNOTATION),
                Reason::InvalidPort,
                e.to_string(),
            )
        })?,
        None => {
            let first = svc.spec.as_ref().and_then(|s| s.ports.as_ref()?.first());
            let first = first.ok_or_else(|| {
                report(
                    &origin,
                    "spec.ports",
                    Reason::InvalidPort,
                    "Service has no ports",
                )
            })?;
            PortRef::Number(validate::port(i64::from(first.port)).map_err(|e| {
                report(
                    &origin,
                    "spec.ports[0].port",
                    Reason::InvalidPort,
                    e.to_string(),
                )
            })?)
        }
    };
    let (upstream, warning) = match backends.resolve(ns, name, &port) {
        Ok(u) => (u, None),
        Err(u) => {
            let r = report(&origin, field(PORT_ANNOTATION), u.reason, u.detail);
            (u.upstream, Some(r))
        }
    };
    let age = Age::of(&svc.metadata, &origin);
    Ok((
        Candidate {
            host: Some(host),
            path,
            kind: PathKind::Prefix,
            upstream,
            origin,
            age,
            options: RouteOptions::default(),
            error_upstream: None,
        },
        warning,
    ))
}
