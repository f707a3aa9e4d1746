//! Counters and health endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::{Certificate, Report};
use crate::snapshot::Snapshot;

/// Histogram bucket bounds in seconds: render and reload times span 1 ms .. seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus histogram with fixed [`BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn encode(&self, out: &mut String, name: &str, help: &str) {
        _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count();
        _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        _ = writeln!(out, "{name}_sum {sum}\n{name}_count {n}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// Candidates handed to nginx (`nginx -t`, rename, SIGHUP): counted before they run.
    pub reload_attempts: AtomicU64,
    /// Attempts that succeeded: the config is installed and, when a master runs, serves.
    pub reloads: AtomicU64,
    /// Attempts that failed (refused by `nginx -t`, not taken, not written).
    pub reload_failures: AtomicU64,
    /// Objects dropped because `nginx -t` refused a config containing them.
    pub nginx_rejected_objects: AtomicU64,
    /// Renders that produced the same text as the live config (no reload needed).
    pub unchanged_renders: AtomicU64,
    /// Unexpected deaths of the supervised nginx master (each followed by a restart).
    pub nginx_restarts: AtomicU64,
    /// Reloads signalled that nginx did not start serving in time.
    pub reload_not_taken: AtomicU64,
    ready: AtomicBool,
    /// Shutdown has started: /readyz answers 503 from now on.
    shutting_down: AtomicBool,
    rejected_by_reason: Mutex<BTreeMap<&'static str, u64>>,
    pub render_seconds: Histogram,
    pub reload_seconds: Histogram,
    /// 1 when the last reload attempt succeeded.
    last_reload_success: AtomicBool,
    /// Seconds since the epoch of the last reload attempt (0 = none yet).
    last_reload_timestamp: AtomicU64,
    /// Milliseconds since the epoch when nginx was last verified serving a new config on
    /// every new connection (0 = never).
    last_live_millis: AtomicU64,
    /// First 48 bits of the live config's SHA-256 (exact in a float).
    config_hash: AtomicU64,
    objects_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// (namespace, name) -> notAfter, seconds since the epoch.
    certificate_expiry: Mutex<BTreeMap<(String, String), i64>>,
    /// nginx's pid file, for /healthz.
    pid_file: OnceLock<PathBuf>,
}

impl Metrics {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }

    /// Shutdown starts: not ready any more (load balancers stop sending before nginx drains).
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
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

    /// nginx now serves the config it was given on every new connection (verified).
    pub fn set_live(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_live_millis.store(now, Ordering::Relaxed);
    }

    /// Record one reload attempt (its duration, success, time; on success the config hash).
    pub fn record_reload(&self, took: Duration, ok: bool, hash: &[u8; 32]) {
        self.reload_seconds.observe(took);
        self.last_reload_success.store(ok, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_reload_timestamp.store(now, Ordering::Relaxed);
        if ok {
            let mut h = [0u8; 8];
            h[2..].copy_from_slice(&hash[..6]);
            self.config_hash
                .store(u64::from_be_bytes(h), Ordering::Relaxed);
        }
    }

    /// Objects of each kind in the latest snapshot.
    pub fn set_objects(&self, s: &Snapshot) {
        let mut map = self
            .objects_by_kind
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.insert("Service", s.services.len() as u64);
        map.insert("Ingress", s.ingresses.len() as u64);
        map.insert("IngressClass", s.ingress_classes.len() as u64);
        map.insert("EndpointSlice", s.endpoint_slices.len() as u64);
        map.insert("Secret", s.secrets.len() as u64);
    }

    /// Expiry of the certificates in use (replaces the previous set).
    pub fn set_certificates(&self, certs: &[Certificate]) {
        let mut map = self
            .certificate_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.clear();
        for c in certs {
            map.insert(
                (c.origin.namespace.clone(), c.origin.name.clone()),
                c.not_after,
            );
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
            "berth_ingress_reload_attempts_total",
            "Configs handed to nginx (test, install, reload); = reloads + failures.",
            &self.reload_attempts,
        );
        counter(
            &mut out,
            "berth_ingress_reloads_total",
            "Configs nginx accepted and (when a master runs) was verified serving.",
            &self.reloads,
        );
        counter(
            &mut out,
            "berth_ingress_reload_failures_total",
            "Configs that did not go live (refused by nginx -t, not taken, not written).",
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
        counter(
            &mut out,
            "berth_ingress_reload_not_taken_total",
            "Reloads nginx did not start serving within the nginx timeout (retried).",
            &self.reload_not_taken,
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
        drop(map);
        out.push_str("# HELP berth_ingress_ready 1 after the first successful reload.\n# TYPE berth_ingress_ready gauge\n");
        _ = writeln!(out, "berth_ingress_ready {}", u8::from(self.is_ready()));
        self.encode_more(&mut out);
        out
    }

    fn encode_more(&self, out: &mut String) {
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            out,
            "berth_ingress_last_reload_success",
            "1 if the last reload attempt succeeded.",
            u64::from(self.last_reload_success.load(Ordering::Relaxed)),
        );
        gauge(
            out,
            "berth_ingress_last_reload_timestamp_seconds",
            "When the last reload was attempted (seconds since the epoch).",
            self.last_reload_timestamp.load(Ordering::Relaxed),
        );
        let live = self.last_live_millis.load(Ordering::Relaxed);
        _ = writeln!(
            out,
            "# HELP berth_ingress_last_config_live_timestamp_seconds When nginx was last verified serving a new config (seconds since the epoch; 0 = never).\n# TYPE berth_ingress_last_config_live_timestamp_seconds gauge\nberth_ingress_last_config_live_timestamp_seconds {}.{:03}",
            live / 1000,
            live % 1000
        );
        gauge(
            out,
            "berth_ingress_config_hash",
            "First 48 bits of the SHA-256 of the live nginx config.",
            self.config_hash.load(Ordering::Relaxed),
        );
        self.render_seconds.encode(
            out,
            "berth_ingress_render_duration_seconds",
            "Time to translate and render one config.",
        );
        self.reload_seconds.encode(
            out,
            "berth_ingress_reload_duration_seconds",
            "Time to test, install and signal one config.",
        );
        out.push_str("# HELP berth_ingress_objects Objects in the latest snapshot, by kind.\n# TYPE berth_ingress_objects gauge\n");
        let kinds = self
            .objects_by_kind
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (kind, n) in kinds.iter() {
            _ = writeln!(out, "berth_ingress_objects{{kind=\"{kind}\"}} {n}");
        }
        drop(kinds);
        out.push_str("# HELP berth_ingress_certificate_expiry_timestamp_seconds notAfter of each certificate in use.\n# TYPE berth_ingress_certificate_expiry_timestamp_seconds gauge\n");
        let certs = self
            .certificate_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for ((ns, name), t) in certs.iter() {
            _ = writeln!(
                out,
                "berth_ingress_certificate_expiry_timestamp_seconds{{namespace=\"{ns}\",name=\"{name}\"}} {t}"
            );
        }
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

    #[test]
    fn encodes_counters_and_reasons() {
        let m = Metrics::default();
        m.reloads.fetch_add(2, Ordering::Relaxed);
        assert!(
            m.encode()
                .contains("berth_ingress_last_config_live_timestamp_seconds 0.000\n")
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
        m.render_seconds.observe(Duration::from_micros(500));
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
