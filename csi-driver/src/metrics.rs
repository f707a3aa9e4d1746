//! Prometheus metrics and health over HTTP (`--metrics-address`): per-RPC call counts by gRPC
//! code, a latency histogram per RPC, the number of live Ceph connections; `/healthz`.
//! One registry per process, made by `server.rs` and handed to the services that record
//! (controller, node, Ceph connections, purger, flattener): no hidden global.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::error::Error;

/// Histogram buckets in seconds: CSI calls range from ~1 ms (journal hits) to the 25 s
/// Ceph deadline.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    ceph_connections: AtomicUsize,
    trash_purged: AtomicUsize,
    trash_purge_errors: AtomicUsize,
    trash_pending: AtomicUsize,
    flatten_running: AtomicUsize,
    flatten_done: AtomicUsize,
    flatten_errors: AtomicUsize,
}

impl Metrics {
    pub fn record(&self, rpc: &'static str, code: tonic::Code, secs: f64) {
        let code = code_name(code);
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((rpc, code))
            .or_default() += 1;
        let mut lat = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = lat.entry(rpc).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn set_ceph_connections(&self, n: usize) {
        self.ceph_connections.store(n, Ordering::Relaxed);
    }

    /// One trashed image's data removed by the purger.
    pub fn trash_purged(&self) {
        self.trash_purged.fetch_add(1, Ordering::Relaxed);
    }

    /// A purge that failed (retried later).
    pub fn trash_purge_error(&self) {
        self.trash_purge_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Trashed images of the pool the purger works on, still to purge.
    pub fn set_trash_pending(&self, n: usize) {
        self.trash_pending.store(n, Ordering::Relaxed);
    }

    /// Deep clones queued or being flattened in the background.
    pub fn set_flatten_running(&self, n: usize) {
        self.flatten_running.store(n, Ordering::Relaxed);
    }

    /// One deep clone flattened.
    pub fn flatten_done(&self) {
        self.flatten_done.fetch_add(1, Ordering::Relaxed);
    }

    /// A flatten that failed (started again by the next CreateVolume retry).
    pub fn flatten_error(&self) {
        self.flatten_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP berth_csi_rpc_total CSI RPCs handled, by method and gRPC code.\n");
        s.push_str("# TYPE berth_csi_rpc_total counter\n");
        for ((rpc, code), n) in self.calls.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                s,
                "berth_csi_rpc_total{{method=\"{rpc}\",code=\"{code}\"}} {n}"
            );
        }
        s.push_str("# HELP berth_csi_rpc_duration_seconds CSI RPC latency.\n");
        s.push_str("# TYPE berth_csi_rpc_duration_seconds histogram\n");
        for (rpc, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for (b, n) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    s,
                    "berth_csi_rpc_duration_seconds_bucket{{method=\"{rpc}\",le=\"{b}\"}} {n}"
                );
            }
            let _ = writeln!(
                s,
                "berth_csi_rpc_duration_seconds_bucket{{method=\"{rpc}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                s,
                "berth_csi_rpc_duration_seconds_sum{{method=\"{rpc}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "berth_csi_rpc_duration_seconds_count{{method=\"{rpc}\"}} {}",
                h.count
            );
        }
        s.push_str("# HELP berth_csi_ceph_connections Live librados connections.\n");
        s.push_str("# TYPE berth_csi_ceph_connections gauge\n");
        let _ = writeln!(
            s,
            "berth_csi_ceph_connections {}",
            self.ceph_connections.load(Ordering::Relaxed)
        );
        for (name, kind, help, v) in [
            (
                "berth_csi_trash_purged_total",
                "counter",
                "Deleted volumes whose data the trash purger removed.",
                &self.trash_purged,
            ),
            (
                "berth_csi_trash_purge_errors_total",
                "counter",
                "Trash purges that failed (retried later).",
                &self.trash_purge_errors,
            ),
            (
                "berth_csi_trash_pending",
                "gauge",
                "Trashed images still to purge in the pool being purged.",
                &self.trash_pending,
            ),
            (
                "berth_csi_flatten_running",
                "gauge",
                "Deep clones queued or being flattened in the background.",
                &self.flatten_running,
            ),
            (
                "berth_csi_flatten_done_total",
                "counter",
                "Deep clones flattened in the background.",
                &self.flatten_done,
            ),
            (
                "berth_csi_flatten_errors_total",
                "counter",
                "Background flattens that failed (started again on the next retry).",
                &self.flatten_errors,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(s, "{name} {}", v.load(Ordering::Relaxed));
        }
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
                        .header("content-type", "text/plain; version=0.0.4")
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
            "berth_csi_rpc_duration_seconds_bucket{method=\"CreateVolume\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("berth_csi_rpc_duration_seconds_count{method=\"CreateVolume\"} 2"));
        assert!(text.contains("berth_csi_ceph_connections 1"));
    }
}
