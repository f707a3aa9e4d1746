//! Prometheus metrics and health over HTTP (`--metrics-address`): per-RPC call counts by gRPC
//! code, a latency histogram per RPC, the number of live Ceph connections, the trash purger
//! and the background flattener; `/healthz`. Exposition by the `prometheus-client` crate
//! (OpenMetrics text).
//! One registry per process, made by `server.rs` and handed to the services that record
//! (controller, node, Ceph connections, purger, flattener): no hidden global.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::error::Error;

/// Histogram buckets in seconds: CSI calls range from ~1 ms (journal hits) to the 25 s
/// Ceph deadline.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcCode {
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rpc {
    method: &'static str,
}

fn rpc_histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

type IntGauge = Gauge<i64, AtomicI64>;

/// The metrics of one process (prometheus-client registry and the handles that record).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<RpcCode, Counter>,
    latency: Family<Rpc, Histogram, fn() -> Histogram>,
    ceph_connections: IntGauge,
    trash_purged: Counter,
    trash_purge_errors: Counter,
    trash_pending: IntGauge,
    flatten_running: IntGauge,
    flatten_done: Counter,
    flatten_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            calls: Family::default(),
            latency: Family::new_with_constructor(rpc_histogram),
            ceph_connections: IntGauge::default(),
            trash_purged: Counter::default(),
            trash_purge_errors: Counter::default(),
            trash_pending: IntGauge::default(),
            flatten_running: IntGauge::default(),
            flatten_done: Counter::default(),
            flatten_errors: Counter::default(),
        };
        let mut r = Registry::default();
        r.register(
            "berth_csi_rpc",
            "CSI RPCs handled, by method and gRPC code",
            m.calls.clone(),
        );
        r.register(
            "berth_csi_rpc_duration_seconds",
            "CSI RPC latency",
            m.latency.clone(),
        );
        r.register(
            "berth_csi_ceph_connections",
            "Live librados connections",
            m.ceph_connections.clone(),
        );
        r.register(
            "berth_csi_trash_purged",
            "Deleted volumes whose data the trash purger removed",
            m.trash_purged.clone(),
        );
        r.register(
            "berth_csi_trash_purge_errors",
            "Trash purges that failed (retried later)",
            m.trash_purge_errors.clone(),
        );
        r.register(
            "berth_csi_trash_pending",
            "Trashed images still to purge in the pool being purged",
            m.trash_pending.clone(),
        );
        r.register(
            "berth_csi_flatten_running",
            "Deep clones queued or being flattened in the background",
            m.flatten_running.clone(),
        );
        r.register(
            "berth_csi_flatten_done",
            "Deep clones flattened in the background",
            m.flatten_done.clone(),
        );
        r.register(
            "berth_csi_flatten_errors",
            "Background flattens that failed (started again on the next retry)",
            m.flatten_errors.clone(),
        );
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    pub fn record(&self, rpc: &'static str, code: tonic::Code, secs: f64) {
        self.calls
            .get_or_create(&RpcCode {
                method: rpc,
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&Rpc { method: rpc })
            .observe(secs);
    }

    pub fn set_ceph_connections(&self, n: usize) {
        self.ceph_connections.set(n as i64);
    }

    /// One trashed image's data removed by the purger.
    pub fn trash_purged(&self) {
        self.trash_purged.inc();
    }

    /// A purge that failed (retried later).
    pub fn trash_purge_error(&self) {
        self.trash_purge_errors.inc();
    }

    /// Trashed images of the pool the purger works on, still to purge.
    pub fn set_trash_pending(&self, n: usize) {
        self.trash_pending.set(n as i64);
    }

    /// Deep clones queued or being flattened in the background.
    pub fn set_flatten_running(&self, n: usize) {
        self.flatten_running.set(n as i64);
    }

    /// One deep clone flattened.
    pub fn flatten_done(&self) {
        self.flatten_done.inc();
    }

    /// A flatten that failed (started again by the next CreateVolume retry).
    pub fn flatten_error(&self) {
        self.flatten_errors.inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Run one RPC body: time it, count it by code, log failures, map the error to a Status.
pub async fn observe<T>(
    metrics: &Metrics,
    rpc: &'static str,
    body: impl Future<Output = Result<T, Error>>,
) -> Result<tonic::Response<T>, tonic::Status> {
    let t0 = Instant::now();
    let result = body.await;
    let secs = t0.elapsed().as_secs_f64();
    match result {
        Ok(v) => {
            metrics.record(rpc, tonic::Code::Ok, secs);
            tracing::debug!(rpc, ms = secs * 1e3, "ok");
            Ok(tonic::Response::new(v))
        }
        Err(e) => {
            let status = tonic::Status::from(e);
            metrics.record(rpc, status.code(), secs);
            tracing::info!(rpc, code = ?status.code(), ms = secs * 1e3, error = status.message(), "failed");
            Err(status)
        }
    }
}

/// Serve /metrics and /healthz on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = service_fn(|req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, body) = match req.uri().path() {
                        "/metrics" => (200, metrics.render()),
                        "/healthz" => (200, "ok\n".to_string()),
                        _ => (404, "not found\n".to_string()),
                    };
                    Response::builder()
                        .status(status)
                        .header(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::default();
        m.record("CreateVolume", tonic::Code::Ok, 0.003);
        m.record("CreateVolume", tonic::Code::Aborted, 0.2);
        m.set_ceph_connections(1);
        let text = m.render();
        assert!(text.contains("berth_csi_rpc_total{method=\"CreateVolume\",code=\"OK\"} 1"));
        assert!(text.contains("berth_csi_rpc_total{method=\"CreateVolume\",code=\"ABORTED\"} 1"));
        assert!(text.contains(
            "berth_csi_rpc_duration_seconds_bucket{le=\"0.005\",method=\"CreateVolume\"} 1"
        ));
        assert!(text.contains("berth_csi_rpc_duration_seconds_count{method=\"CreateVolume\"} 2"));
        assert!(text.contains("berth_csi_ceph_connections 1"));
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
    }
}
