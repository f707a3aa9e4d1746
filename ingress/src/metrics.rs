//! Counters and health endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! Minimal on purpose (issue 7 extends it): reloads total / failed, objects nginx refused,
//! rejected objects by reason (current count), readiness (set after the first successful
//! reload). Served by hyper on a listener the caller binds, so tests can use port 0.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::model::Report;

#[derive(Debug, Default)]
pub struct Metrics {
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Objects dropped because `nginx -t` refused a config containing them.
    pub nginx_rejected_objects: AtomicU64,
    /// Renders that produced the same text as the live config (no reload needed).
    pub unchanged_renders: AtomicU64,
    /// Unexpected deaths of the supervised nginx master (each followed by a restart).
    pub nginx_restarts: AtomicU64,
    ready: AtomicBool,
    rejected_by_reason: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Replace the current reports (a gauge per reason).
    pub fn set_reports(&self, reports: &[Report]) {
        let mut map = self
            .rejected_by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.values_mut().for_each(|v| *v = 0);
        for r in reports {
            *map.entry(r.reason.as_str()).or_default() += 1;
        }
    }

    pub fn rejected(&self, reason: &str) -> u64 {
        let map = self
            .rejected_by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(reason).copied().unwrap_or(0)
    }

    /// Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(1024);
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        };
        counter(
            &mut out,
            "berth_ingress_reloads_total",
            "nginx reloads attempted.",
            &self.reloads,
        );
        counter(
            &mut out,
            "berth_ingress_reload_failures_total",
            "nginx reloads that failed (candidate refused or signal failed).",
            &self.reload_failures,
        );
        counter(
            &mut out,
            "berth_ingress_nginx_rejected_objects_total",
            "Objects dropped because nginx -t refused them.",
            &self.nginx_rejected_objects,
        );
        counter(
            &mut out,
            "berth_ingress_unchanged_renders_total",
            "Renders identical to the live config (reload skipped).",
            &self.unchanged_renders,
        );
        counter(
            &mut out,
            "berth_ingress_nginx_restarts_total",
            "Unexpected exits of the nginx master, each followed by a restart.",
            &self.nginx_restarts,
        );
        out.push_str("# HELP berth_ingress_rejected_objects Objects (or routes) not served as written, by reason.\n");
        out.push_str("# TYPE berth_ingress_rejected_objects gauge\n");
        let map = self
            .rejected_by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (reason, n) in map.iter() {
            _ = writeln!(
                out,
                "berth_ingress_rejected_objects{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP berth_ingress_ready 1 after the first successful reload.\n# TYPE berth_ingress_ready gauge\n");
        _ = writeln!(out, "berth_ingress_ready {}", u8::from(self.is_ready()));
        out
    }
}

fn respond(metrics: &Metrics, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, metrics.encode()),
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" if metrics.is_ready() => (StatusCode::OK, "ready\n".to_owned()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful reload yet\n".to_owned(),
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let resp = respond(&metrics, req.uri().path());
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, ObjectRef, Reason};

    #[test]
    fn encodes_counters_and_reasons() {
        let m = Metrics::default();
        m.reloads.fetch_add(2, Ordering::Relaxed);
        let r = |reason| Report {
            object: ObjectRef::new(Kind::Ingress, "a", "b"),
            field: "f".into(),
            reason,
            detail: String::new(),
        };
        m.set_reports(&[
            r(Reason::InvalidHost),
            r(Reason::InvalidHost),
            r(Reason::Conflict),
        ]);
        m.set_reports(&[r(Reason::InvalidHost)]);
        let text = m.encode();
        assert!(text.contains("berth_ingress_reloads_total 2\n"), "{text}");
        assert!(text.contains("berth_ingress_rejected_objects{reason=\"invalid_host\"} 1\n"));
        assert!(text.contains("berth_ingress_rejected_objects{reason=\"conflict\"} 0\n"));
        assert!(text.contains("berth_ingress_ready 0\n"));
    }

    #[tokio::test]
    async fn readyz_turns_ready() {
        let m = Arc::new(Metrics::default());
        assert_eq!(
            respond(&m, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        m.set_ready();
        assert_eq!(respond(&m, "/readyz").status(), StatusCode::OK);
        assert_eq!(respond(&m, "/healthz").status(), StatusCode::OK);
        assert_eq!(respond(&m, "/nope").status(), StatusCode::NOT_FOUND);
    }
}
