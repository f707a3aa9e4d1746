//! Sync loop tests with a fake nginx (the real one is exercised in the tests/ crate).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::*;
use crate::model::{PathKind, one_server_model};
use crate::snapshot::Snapshot;

/// Records applied configs; refuses any text containing a marker.
#[derive(Clone, Default)]
struct FakeNginx {
    applied: Arc<Mutex<Vec<String>>>,
    refuse: Option<&'static str>,
}

impl Apply for FakeNginx {
    async fn check(&mut self, text: &str) -> Result<(), NginxError> {
        match self.refuse {
            Some(m) if text.contains(m) => Err(NginxError::Rejected(format!("refused {m}"))),
            _ => Ok(()),
        }
    }
    async fn apply(&mut self, text: &str) -> Result<(), NginxError> {
        self.check(text).await?;
        self.applied.lock().unwrap().push(text.to_owned());
        Ok(())
    }
}

fn config() -> SyncConfig {
    SyncConfig {
        translate: TranslateConfig::default(),
        render: RenderConfig::new("/tmp/sync", 8080, 8443).unwrap(),
        debounce_min: DEFAULT_DEBOUNCE_MIN,
        debounce_max: DEFAULT_DEBOUNCE_MAX,
    }
}

fn model(names: &[&str]) -> Model {
    one_server_model(PathKind::Prefix, names.iter().copied())
}

#[tokio::test]
async fn reloads_only_when_text_changes() {
    let nginx = FakeNginx::default();
    let metrics = Arc::new(Metrics::default());
    let mut s = Syncer::new(nginx.clone(), config(), metrics.clone());
    assert!(!metrics.is_ready());
    assert_eq!(s.sync_model(model(&["a"])).await, Outcome::Reloaded);
    assert!(metrics.is_ready());
    assert_eq!(s.sync_model(model(&["a"])).await, Outcome::Unchanged);
    assert_eq!(s.sync_model(model(&["a", "b"])).await, Outcome::Reloaded);
    assert_eq!(nginx.applied.lock().unwrap().len(), 2);
    assert_eq!(metrics.reloads.get(), 2);
}

#[tokio::test]
async fn refused_object_is_dropped_named_and_counted() {
    let nginx = FakeNginx {
        refuse: Some("/bad "),
        ..FakeNginx::default()
    };
    let metrics = Arc::new(Metrics::default());
    let mut s = Syncer::new(nginx.clone(), config(), metrics.clone());
    assert_eq!(s.sync_model(model(&["good"])).await, Outcome::Reloaded);
    assert_eq!(
        s.sync_model(model(&["good", "bad", "other"])).await,
        Outcome::Reloaded
    );
    let applied = nginx.applied.lock().unwrap().clone();
    let live = applied.last().unwrap();
    assert!(live.contains("/other") && live.contains("/good") && !live.contains("/bad "));
    assert_eq!(metrics.nginx_rejected_objects.get(), 1);
    assert_eq!(metrics.reload_failures.get(), 1);
    // The refused candidate is a failed attempt, not a reload.
    assert_eq!(metrics.reloads.get(), 2);
    assert_eq!(metrics.reload_attempts.get(), 3);
    assert_eq!(metrics.rejected("nginx_rejected"), 1);
    // Same input again: known culprit, no new failure, no reload.
    assert_eq!(
        s.sync_model(model(&["good", "bad", "other"])).await,
        Outcome::Unchanged
    );
    assert_eq!(metrics.reload_failures.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn settle_coalesces_a_burst() {
    let (tx, mut rx) = watch::channel(0u64);
    // 100 changes, 10 ms apart: never quiet for 100 ms, so the 1 s cap ends the wait.
    tokio::spawn(async move {
        for i in 1..=100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send_replace(i);
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let start = Instant::now();
    assert!(settle(&mut rx, start, DEFAULT_DEBOUNCE_MIN, DEFAULT_DEBOUNCE_MAX).await);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(999) && waited <= Duration::from_millis(1010),
        "{waited:?}"
    );
    // A lone change settles after the quiet time.
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start2 = Instant::now();
    assert!(settle(&mut rx, start2, DEFAULT_DEBOUNCE_MIN, DEFAULT_DEBOUNCE_MAX).await);
    assert_eq!(start2.elapsed(), DEFAULT_DEBOUNCE_MIN);
    let _ = start;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_100_changes_costs_at_most_two_reloads() {
    let nginx = FakeNginx::default();
    let metrics = Arc::new(Metrics::default());
    let mut s = Syncer::new(nginx.clone(), config(), metrics.clone());
    // The source: a snapshot whose content is the number of changes so far.
    let count = Arc::new(Mutex::new(0usize));
    struct Counting(Arc<Mutex<usize>>);
    impl Source for Counting {
        fn snapshot(&self) -> Snapshot {
            let n = *self.0.lock().unwrap();
            let mut snap = Snapshot::default();
            let yaml = format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{n}, annotations: {{berth.dev/host: h{n}.example.com}}}}\nspec: {{clusterIP: 10.0.0.1, ports: [{{port: 80}}]}}\n"
            );
            crate::source::files::parse_manifests(&yaml, "gen.yaml", &mut snap);
            snap
        }
    }
    let (tx, rx) = watch::channel(0u64);
    let writer = count.clone();
    tokio::spawn(async move {
        for i in 1..=100u64 {
            tokio::time::sleep(Duration::from_millis(9)).await; // 100 changes in 0.9 s
            *writer.lock().unwrap() += 1;
            tx.send_replace(i);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let source = Arc::new(Counting(count));
    let stop = tokio::time::sleep(Duration::from_secs(4));
    s.run(source, rx, stop).await;
    let reloads = nginx.applied.lock().unwrap().len();
    assert!((1..=2).contains(&reloads), "{reloads} reloads");
    assert!(
        nginx
            .applied
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .contains("h100.example.com")
    );
}

/// Fails the first `fail` applies the way a timed-out or unverified reload fails (not a
/// refusal: nothing to isolate), then applies.
#[derive(Clone, Default)]
struct FlakyNginx {
    attempts: Arc<Mutex<Vec<Instant>>>,
    fail: usize,
}

impl Apply for FlakyNginx {
    async fn check(&mut self, _text: &str) -> Result<(), NginxError> {
        Ok(())
    }
    async fn apply(&mut self, _text: &str) -> Result<(), NginxError> {
        let mut attempts = self.attempts.lock().unwrap();
        attempts.push(Instant::now());
        if attempts.len() <= self.fail {
            return Err(NginxError::Signal {
                pid: 1,
                source: nix::Error::EPERM,
            });
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_sync_is_retried_without_a_new_change() {
    let nginx = FlakyNginx {
        fail: 3,
        ..FlakyNginx::default()
    };
    let metrics = Arc::new(Metrics::default());
    let mut s = Syncer::new(nginx.clone(), config(), metrics.clone());
    let (tx, rx) = watch::channel(0u64);
    tx.send_replace(1); // one change, then silence
    let source = Arc::new(Snapshot::default());
    let started = Instant::now();
    s.run(source, rx, tokio::time::sleep(Duration::from_secs(30)))
        .await;
    drop(tx);
    let attempts = nginx.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 4, "retried until it worked, then stopped");
    assert!(metrics.is_ready());
    // Backoff: the gaps grow, and the whole recovery takes seconds, not the next change.
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "{gaps:?}");
    assert!(attempts[3] - started < Duration::from_secs(5), "{gaps:?}");
}
