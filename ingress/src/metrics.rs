//! Counters and health endpoints: `/metrics` (OpenMetrics text, by the `prometheus-client`
//! crate), `/healthz`, `/readyz`.
//!
//! Reload attempts / successes / failures (attempts = successes + failures), when the last
//! config went live (verified on nginx's status socket), last reload success and timestamp,
//! config hash, render and reload
//! durations (histograms), objects by kind, rejected objects by reason (current count),
//! objects nginx refused, certificate expiry per Secret, readiness (set after the first
//! successful reload; cleared again when shutdown starts, before nginx drains). `/healthz` is
//! 200 while the nginx master named in the pid file is alive. Served by hyper on a listener
//! the caller binds, so tests can use port 0 (`metrics_http.rs`: [`serve`], hardened against
//! EMFILE, idle clients and connection floods).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::{Certificate, Report};
use crate::snapshot::Snapshot;

/// Histogram bucket bounds in seconds: render and reload times span 1 ms .. seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn seconds_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type IntGauge = Gauge<i64, AtomicI64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabel {
    namespace: String,
    name: String,
}

/// The controller's metrics (a prometheus-client registry and the handles that record) and
/// the state /healthz and /readyz answer from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Candidates handed to nginx (`nginx -t`, rename, SIGHUP): counted before they run.
    pub reload_attempts: Counter,
    /// Attempts that succeeded: the config is installed and, when a master runs, serves.
    pub reloads: Counter,
    /// Attempts that failed (refused by `nginx -t`, not taken, not written).
    pub reload_failures: Counter,
    /// Objects dropped because `nginx -t` refused a config containing them.
    pub nginx_rejected_objects: Counter,
    /// Renders that produced the same text as the live config (no reload needed).
    pub unchanged_renders: Counter,
    /// Unexpected deaths of the supervised nginx master (each followed by a restart).
    pub nginx_restarts: Counter,
    /// Reloads signalled that nginx did not start serving in time.
    pub reload_not_taken: Counter,
    /// Time to translate and render one config.
    pub render_seconds: Histogram,
    /// Time to test, install and signal one config.
    pub reload_seconds: Histogram,
    ready: AtomicBool,
    /// Shutdown has started: /readyz answers 503 from now on.
    shutting_down: AtomicBool,
    ready_gauge: IntGauge,
    rejected_by_reason: Family<ReasonLabel, IntGauge>,
    /// Reasons reported so far (their gauges drop to 0, not away, when none is left).
    reasons_seen: Mutex<BTreeSet<&'static str>>,
    /// 1 when the last reload attempt succeeded.
    last_reload_success: IntGauge,
    /// Seconds since the epoch of the last reload attempt (0 = none yet).
    last_reload_timestamp: IntGauge,
    /// Seconds since the epoch when nginx was last verified serving a new config on every
    /// new connection (0 = never).
    last_live: Gauge<f64, AtomicU64>,
    /// First 48 bits of the live config's SHA-256 (exact in a float).
    config_hash: IntGauge,
    objects_by_kind: Family<KindLabel, IntGauge>,
    /// notAfter (seconds since the epoch) per Secret of a certificate in use.
    certificate_expiry: Family<SecretLabel, IntGauge>,
    /// nginx's pid file, for /healthz.
    pid_file: OnceLock<PathBuf>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            reload_attempts: Counter::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            nginx_rejected_objects: Counter::default(),
            unchanged_renders: Counter::default(),
            nginx_restarts: Counter::default(),
            reload_not_taken: Counter::default(),
            render_seconds: seconds_histogram(),
            reload_seconds: seconds_histogram(),
            ready: AtomicBool::default(),
            shutting_down: AtomicBool::default(),
            ready_gauge: IntGauge::default(),
            rejected_by_reason: Family::default(),
            reasons_seen: Mutex::default(),
            last_reload_success: IntGauge::default(),
            last_reload_timestamp: IntGauge::default(),
            last_live: Gauge::default(),
            config_hash: IntGauge::default(),
            objects_by_kind: Family::default(),
            certificate_expiry: Family::default(),
            pid_file: OnceLock::new(),
        };
        // Counters are exposed with the `_total` suffix; prometheus-client appends a period
        // to each help text.
        let r = &mut m.registry;
        r.register(
            "berth_ingress_reload_attempts",
            "Configs handed to nginx (test, install, reload); = reloads + failures",
            m.reload_attempts.clone(),
        );
        r.register(
            "berth_ingress_reloads",
            "Configs nginx accepted and (when a master runs) was verified serving",
            m.reloads.clone(),
        );
        r.register(
            "berth_ingress_reload_failures",
            "Configs that did not go live (refused by nginx -t, not taken, not written)",
            m.reload_failures.clone(),
        );
        r.register(
            "berth_ingress_nginx_rejected_objects",
            "Objects dropped because nginx -t refused them",
            m.nginx_rejected_objects.clone(),
        );
        r.register(
            "berth_ingress_unchanged_renders",
            "Renders identical to the live config (reload skipped)",
            m.unchanged_renders.clone(),
        );
        r.register(
            "berth_ingress_nginx_restarts",
            "Unexpected exits of the nginx master, each followed by a restart",
            m.nginx_restarts.clone(),
        );
        r.register(
            "berth_ingress_reload_not_taken",
            "Reloads nginx did not start serving within the nginx timeout (retried)",
            m.reload_not_taken.clone(),
        );
        r.register(
            "berth_ingress_rejected_objects",
            "Objects (or routes) not served as written, by reason",
            m.rejected_by_reason.clone(),
        );
        r.register(
            "berth_ingress_ready",
            "1 after the first successful reload",
            m.ready_gauge.clone(),
        );
        r.register(
            "berth_ingress_last_reload_success",
            "1 if the last reload attempt succeeded",
            m.last_reload_success.clone(),
        );
        r.register(
            "berth_ingress_last_reload_timestamp_seconds",
            "When the last reload was attempted (seconds since the epoch)",
            m.last_reload_timestamp.clone(),
        );
        r.register(
            "berth_ingress_last_config_live_timestamp_seconds",
            "When nginx was last verified serving a new config (seconds since the epoch; 0 = \
             never)",
            m.last_live.clone(),
        );
        r.register(
            "berth_ingress_config_hash",
            "First 48 bits of the SHA-256 of the live nginx config",
            m.config_hash.clone(),
        );
        r.register(
            "berth_ingress_render_duration_seconds",
            "Time to translate and render one config",
            m.render_seconds.clone(),
        );
        r.register(
            "berth_ingress_reload_duration_seconds",
            "Time to test, install and signal one config",
            m.reload_seconds.clone(),
        );
        r.register(
            "berth_ingress_objects",
            "Objects in the latest snapshot, by kind",
            m.objects_by_kind.clone(),
        );
        r.register(
            "berth_ingress_certificate_expiry_timestamp_seconds",
            "notAfter of each certificate in use",
            m.certificate_expiry.clone(),
        );
        m
    }
}

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Metrics {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.ready_gauge.set(i64::from(self.is_ready()));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }

    /// Shutdown starts: not ready any more (load balancers stop sending before nginx drains).
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.ready_gauge.set(0);
    }

    /// Replace the current reports (a gauge per reason).
    pub fn set_reports(&self, reports: &[Report]) {
        let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
        for r in reports {
            *counts.entry(r.reason.as_str()).or_default() += 1;
        }
        let mut seen = self.reasons_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.extend(counts.keys().copied());
        for reason in seen.iter() {
            let n = counts.get(reason).copied().unwrap_or(0);
            self.rejected_by_reason
                .get_or_create(&ReasonLabel { reason })
                .set(n);
        }
    }

    /// nginx now serves the config it was given on every new connection (verified).
    pub fn set_live(&self) {
        // Whole milliseconds, as seconds.
        self.last_live.set(now().as_millis() as f64 / 1000.0);
    }

    /// Record one reload attempt (its duration, success, time; on success the config hash).
    pub fn record_reload(&self, took: std::time::Duration, ok: bool, hash: &[u8; 32]) {
        self.reload_seconds.observe(took.as_secs_f64());
        self.last_reload_success.set(i64::from(ok));
        self.last_reload_timestamp.set(now().as_secs() as i64);
        if ok {
            let mut h = [0u8; 8];
            h[2..].copy_from_slice(&hash[..6]);
            self.config_hash.set(i64::from_be_bytes(h));
        }
    }

    /// Objects of each kind in the latest snapshot.
    pub fn set_objects(&self, s: &Snapshot) {
        for (kind, n) in [
            ("Service", s.services.len()),
            ("Ingress", s.ingresses.len()),
            ("IngressClass", s.ingress_classes.len()),
            ("EndpointSlice", s.endpoint_slices.len()),
            ("Secret", s.secrets.len()),
        ] {
            self.objects_by_kind
                .get_or_create(&KindLabel { kind })
                .set(n as i64);
        }
    }

    /// Expiry of the certificates in use (replaces the previous set).
    pub fn set_certificates(&self, certs: &[Certificate]) {
        self.certificate_expiry.clear();
        for c in certs {
            let label = SecretLabel {
                namespace: c.origin.namespace.clone(),
                name: c.origin.name.clone(),
            };
            self.certificate_expiry
                .get_or_create(&label)
                .set(c.not_after);
        }
    }

    /// Where nginx writes its master pid (enables the /healthz check).
    pub fn set_pid_file(&self, path: PathBuf) {
        _ = self.pid_file.set(path);
    }

    /// Is the nginx master alive? (pid file readable and the process exists.)
    pub fn nginx_alive(&self) -> bool {
        let Some(path) = self.pid_file.get() else {
            return false;
        };
        let pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        pid.is_some_and(|p| {
            p > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok()
        })
    }

    /// Objects currently reported with `reason`.
    pub fn rejected(&self, reason: &str) -> u64 {
        let seen = self.reasons_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(reason).map_or(0, |&reason| {
            self.rejected_by_reason
                .get_or_create(&ReasonLabel { reason })
                .get() as u64
        })
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[path = "metrics_http.rs"]
mod http_server;
pub use http_server::{
    ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN, Accept, CONNECTION_LIFETIME, HEADER_TIMEOUT,
    MAX_CONNECTIONS, serve,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, ObjectRef, Reason};
    use http::StatusCode;
    use http_server::respond;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn encodes_counters_and_reasons() {
        let m = Metrics::default();
        m.reloads.inc_by(2);
        assert!(
            m.encode()
                .contains("berth_ingress_last_config_live_timestamp_seconds 0.0\n")
        );
        m.set_live();
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
        m.record_reload(Duration::from_millis(3), true, &[1; 32]);
        m.render_seconds.observe(0.0005);
        let text = m.encode();
        assert!(
            text.contains("berth_ingress_last_reload_success 1\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_ingress_config_hash 1103823438081\n"),
            "{text}"
        );
        assert!(text.contains("berth_ingress_reload_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("berth_ingress_reload_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("berth_ingress_render_duration_seconds_count 1\n"));
        assert!(
            text.contains("# TYPE berth_ingress_reloads counter\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_ingress_reload_attempts_total 0\n"),
            "{text}"
        );
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
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
        assert_eq!(
            respond(&m, "/healthz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("nginx.pid");
        std::fs::write(&pid, format!("{}\n", std::process::id())).unwrap();
        m.set_pid_file(pid.clone());
        assert_eq!(respond(&m, "/healthz").status(), StatusCode::OK);
        std::fs::write(&pid, "999999999\n").unwrap();
        assert_eq!(
            respond(&m, "/healthz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(respond(&m, "/nope").status(), StatusCode::NOT_FOUND);
        m.set_shutting_down();
        assert_eq!(
            respond(&m, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
