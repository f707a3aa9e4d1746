//! The sync loop: change -> (coalesce) -> snapshot -> model -> render -> nginx.
//!
//! Bursts are coalesced: after the first change we wait until the source has been quiet for
//! `debounce_min` (default 100 ms) or `debounce_max` (default 1 s) has passed since that first
//! change, whichever is sooner, so 100 changes within a second cost at most two reloads. One
//! iteration runs at a time, so at most one reload is in flight. A render identical to the live
//! config (by SHA-256) causes no reload. If nginx refuses the candidate the live config keeps
//! serving, the refusing objects are isolated (`quarantine.rs`), reported by name and counted,
//! and the config without them goes live.
//!
//! A pass that fails (nginx timed out, did not take the reload, a file could not be written) is
//! retried on its own with backoff from [`RETRY_MIN`] to [`RETRY_MAX`], without waiting for the
//! next change. Shutdown never waits behind a pass: the pass is dropped (a running `nginx -t`
//! is killed). After each applied pass the objects the live config serves are published
//! ([`Syncer::with_served`]), so Ingress status is written only for those.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::certfiles::CertFiles;
use crate::htpasswd_files::HtpasswdFiles;
use crate::metrics::Metrics;
use crate::model::{Model, Reason, Report};
use crate::nginx::{Apply, NginxError};
use crate::quarantine::{self, Culprit};
use crate::render::{RenderConfig, render};
use crate::serving::Serving;
use crate::source::Source;
use crate::translate::{self, TranslateConfig};

/// Quiet time that ends a burst: long enough to gather a `kubectl apply -f dir/`, short
/// enough for the change -> served goal (p50 ≤ 250 ms).
pub const DEFAULT_DEBOUNCE_MIN: Duration = Duration::from_millis(100);
/// Longest a change waits under a continuous stream of changes (p99 ≤ 1 s goal).
pub const DEFAULT_DEBOUNCE_MAX: Duration = Duration::from_secs(1);
/// First retry of a failed pass: a transient failure costs well under a second.
pub const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest wait between retries of a pass that keeps failing.
pub const RETRY_MAX: Duration = Duration::from_secs(10);

/// What the live config serves (published after every applied pass; see `serving.rs`).
pub type Served = watch::Sender<Arc<Serving>>;

#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub translate: TranslateConfig,
    pub render: RenderConfig,
    pub debounce_min: Duration,
    pub debounce_max: Duration,
}

/// Wait until `changes` has been quiet for `min`, or `max` has passed since `start`.
/// Returns false when the sender is gone.
pub async fn settle(
    changes: &mut watch::Receiver<u64>,
    start: Instant,
    min: Duration,
    max: Duration,
) -> bool {
    let deadline = start + max;
    loop {
        let quiet_until = (Instant::now() + min).min(deadline);
        tokio::select! {
            _ = sleep_until(quiet_until) => return true,
            changed = changes.changed() => {
                if changed.is_err() {
                    return false;
                }
                if Instant::now() >= deadline {
                    return true;
                }
            }
        }
    }
}

/// State carried between iterations.
pub struct Syncer<A: Apply> {
    nginx: A,
    config: SyncConfig,
    metrics: Arc<Metrics>,
    live_hash: Option<[u8; 32]>,
    /// Hash of the last full candidate nginx refused, and what isolation found for it.
    refused: Option<([u8; 32], Vec<Culprit>)>,
    last_reports: Vec<Report>,
    /// Where certificate files go (`None`: models carry no certificates, e.g. unit tests).
    cert_files: Option<CertFiles>,
    /// Where htpasswd files go (`None`: unit tests).
    htpasswd_files: Option<HtpasswdFiles>,
    served: Option<Served>,
}

/// Snapshot the source, count its objects, translate (blocking: run off the async threads).
pub fn build_model<S: Source + ?Sized>(
    source: &S,
    translate: &TranslateConfig,
    metrics: &Metrics,
) -> Model {
    let snapshot = source.snapshot();
    metrics.set_objects(&snapshot);
    translate::build(&snapshot, translate)
}

fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// What one iteration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Reloaded,
    Unchanged,
    /// The candidate (or its isolated remainder) was not applied; the last good config serves.
    Failed,
}

impl<A: Apply> Syncer<A> {
    pub fn new(nginx: A, config: SyncConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            nginx,
            config,
            metrics,
            live_hash: None,
            refused: None,
            last_reports: Vec::new(),
            cert_files: None,
            htpasswd_files: None,
            served: None,
        }
    }

    /// Publish the objects of each applied config on `served`.
    pub fn with_served(mut self, served: Served) -> Self {
        self.served = Some(served);
        self
    }

    /// Write the models' certificates into `files` before each candidate is tested.
    pub fn with_cert_files(mut self, files: CertFiles) -> Self {
        self.cert_files = Some(files);
        self
    }

    /// Write the models' htpasswd files into `files` before each candidate is tested.
    pub fn with_htpasswd_files(mut self, files: HtpasswdFiles) -> Self {
        self.htpasswd_files = Some(files);
        self
    }

    /// Test, install and reload `text`, timing it into the metrics.
    async fn timed_apply(&mut self, text: &str, h: [u8; 32]) -> Result<(), NginxError> {
        let started = std::time::Instant::now();
        let result = self.nginx.apply(text).await;
        self.metrics
            .record_reload(started.elapsed(), result.is_ok(), &h);
        result
    }

    pub fn nginx(&mut self) -> &mut A {
        &mut self.nginx
    }

    /// Mark `text` as what nginx is already serving (after `init` + start).
    pub fn assume_live(&mut self, text: &str) {
        self.live_hash = Some(hash(text));
    }

    /// One pass over a snapshot's worth of objects.
    pub async fn sync_model(&mut self, mut model: Model) -> Outcome {
        if let Some(files) = &self.cert_files
            && let Err(e) = files.install(&model.certificates)
        {
            tracing::error!(error = %e, "writing certificate files failed; keeping the last good config");
            return Outcome::Failed;
        }
        if let Some(files) = &self.htpasswd_files
            && let Err(e) = files.install(&model.htpasswd_files())
        {
            tracing::error!(error = %e, "writing htpasswd files failed; keeping the last good config");
            return Outcome::Failed;
        }
        self.metrics.set_certificates(&model.certificates);
        let started = std::time::Instant::now();
        let text = render(&model, &self.config.render);
        self.metrics
            .render_seconds
            .observe(started.elapsed().as_secs_f64());
        let full_hash = hash(&text);
        let mut final_text = text;
        let known: Vec<Culprit> = self
            .refused
            .as_ref()
            .filter(|(h, _)| *h == full_hash)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        if !known.is_empty() {
            Self::drop_culprits(&mut model, &known);
            final_text = render(&model, &self.config.render);
        }
        let outcome = self.apply(&mut model, final_text, full_hash, known).await;
        if let (Outcome::Reloaded, Some(files)) = (&outcome, &self.cert_files) {
            files.prune(&model.certificates);
        }
        if let (Outcome::Reloaded, Some(files)) = (&outcome, &self.htpasswd_files) {
            files.prune(&model.htpasswd_files());
        }
        if let (Outcome::Reloaded | Outcome::Unchanged, Some(served)) = (&outcome, &self.served) {
            let now = Serving::of(&model);
            served.send_if_modified(|s| {
                let changed = **s != now;
                if changed {
                    *s = Arc::new(now);
                }
                changed
            });
        }
        self.publish_reports(&model);
        outcome
    }

    fn drop_culprits(model: &mut Model, culprits: &[Culprit]) {
        let excluded = culprits.iter().map(|c| c.object.clone()).collect();
        let mut reduced = model.without(&excluded);
        for c in culprits {
            reduced.reports.push(Report {
                object: c.object.clone(),
                field: "nginx".into(),
                reason: Reason::NginxRejected,
                detail: format!("nginx -t refused a config containing it: {}", c.message),
            });
        }
        reduced.reports.sort();
        *model = reduced;
    }

    async fn apply(
        &mut self,
        model: &mut Model,
        text: String,
        full_hash: [u8; 32],
        known: Vec<Culprit>,
    ) -> Outcome {
        match self.reload_if_changed(&text).await {
            Ok(false) => Outcome::Unchanged,
            Ok(true) => {
                if self.nginx.serving() {
                    tracing::info!(
                        bytes = text.len(),
                        servers = model.servers.len(),
                        "nginx reloaded"
                    );
                } else {
                    tracing::info!(
                        bytes = text.len(),
                        servers = model.servers.len(),
                        "config installed; nginx starts on it"
                    );
                }
                Outcome::Reloaded
            }
            Err(NginxError::Rejected(msg)) => {
                self.metrics.reload_failures.inc();
                tracing::warn!(nginx = %msg, "nginx refused the candidate; the last good config keeps serving; isolating the objects");
                let hint = self.refused.take().map(|(_, c)| c).unwrap_or_default();
                match quarantine::isolate(&mut self.nginx, model, &self.config.render, &hint).await
                {
                    Ok(culprits) if !culprits.is_empty() => {
                        for c in &culprits {
                            tracing::error!(object = %c.object, nginx = %c.message, "nginx refuses this object; dropped from the config");
                        }
                        self.metrics
                            .nginx_rejected_objects
                            .inc_by(culprits.len() as u64);
                        Self::drop_culprits(model, &culprits);
                        let mut all = known;
                        all.extend(culprits);
                        self.refused = Some((full_hash, all));
                        let reduced = render(model, &self.config.render);
                        self.apply_reduced(reduced).await
                    }
                    Ok(_) => Outcome::Failed, // passes now: nginx state changed under us; retry next round
                    Err(e) => {
                        tracing::error!(error = %e, "could not isolate the refused objects; keeping the last good config");
                        Outcome::Failed
                    }
                }
            }
            Err(e) => {
                self.failed(&e);
                tracing::error!(error = %e, "applying the config failed; keeping the last good config");
                Outcome::Failed
            }
        }
    }

    /// Count a failed apply (and a reload nginx did not take).
    fn failed(&self, e: &NginxError) {
        self.metrics.reload_failures.inc();
        if matches!(e, NginxError::NotTaken { .. }) {
            self.metrics.reload_not_taken.inc();
        }
    }

    /// Reload nginx with `text` unless it already serves exactly that: Ok(false) when
    /// unchanged, Ok(true) when reloaded (then it is the live config, and ready once a master
    /// serves it). Failures are the caller's to count and report.
    async fn reload_if_changed(&mut self, text: &str) -> Result<bool, NginxError> {
        let h = hash(text);
        if self.live_hash == Some(h) {
            self.metrics.unchanged_renders.inc();
            return Ok(false);
        }
        self.metrics.reload_attempts.inc();
        self.timed_apply(text, h).await?;
        self.metrics.reloads.inc();
        self.live_hash = Some(h);
        if self.nginx.serving() {
            // `apply` returned after nginx was verified serving it (live.rs).
            self.metrics.set_live();
            self.metrics.set_ready();
        }
        Ok(true)
    }

    async fn apply_reduced(&mut self, text: String) -> Outcome {
        match self.reload_if_changed(&text).await {
            Ok(false) => Outcome::Unchanged,
            Ok(true) => {
                tracing::info!(
                    bytes = text.len(),
                    live = self.nginx.serving(),
                    "nginx reloaded without the refused objects"
                );
                Outcome::Reloaded
            }
            Err(e) => {
                self.failed(&e);
                tracing::error!(error = %e, "even the reduced config failed; keeping the last good config");
                Outcome::Failed
            }
        }
    }

    /// Log reports that are new since the last pass (no log spam per pass) and set the gauges.
    fn publish_reports(&mut self, model: &Model) {
        for r in &model.reports {
            if self.last_reports.binary_search(r).is_err() {
                tracing::warn!(object = %r.object, field = %r.field, reason = r.reason.as_str(), detail = %r.detail, "object not served as written");
            }
        }
        self.metrics.set_reports(&model.reports);
        self.last_reports = model.reports.clone();
    }

    /// Snapshot, translate (off the async threads) and sync once.
    async fn pass<S: Source + ?Sized>(&mut self, source: &Arc<S>) -> Outcome {
        let src = source.clone();
        let translate = self.config.translate.clone();
        let metrics = self.metrics.clone();
        match tokio::task::spawn_blocking(move || build_model(&*src, &translate, &metrics)).await {
            Ok(model) => self.sync_model(model).await,
            Err(e) => {
                tracing::error!(error = %e, "translation task failed");
                Outcome::Failed
            }
        }
    }

    /// Run until `changes` closes or `shutdown` resolves. Each burst of changes becomes one
    /// snapshot, one render and at most one reload (plus isolation if nginx refuses it); a
    /// failed pass is retried with backoff.
    pub async fn run<S: Source + ?Sized>(
        &mut self,
        source: Arc<S>,
        mut changes: watch::Receiver<u64>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        self.drive(&source, &mut changes, &mut shutdown, false)
            .await;
    }

    /// Like [`Self::run`], but return after the first pass that applied (true), or on
    /// shutdown / a closed source (false). Start-up uses it for the first config.
    pub async fn run_until_applied<S: Source + ?Sized>(
        &mut self,
        source: &Arc<S>,
        changes: &mut watch::Receiver<u64>,
        shutdown: impl Future<Output = ()>,
    ) -> bool {
        tokio::pin!(shutdown);
        self.drive(source, changes, &mut shutdown, true).await
    }

    async fn drive<S: Source + ?Sized>(
        &mut self,
        source: &Arc<S>,
        changes: &mut watch::Receiver<u64>,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        until_applied: bool,
    ) -> bool {
        let mut retry: Option<Instant> = None;
        let mut backoff = RETRY_MIN;
        loop {
            let start = tokio::select! {
                _ = &mut *shutdown => return false,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                    let start = Instant::now();
                    tokio::select! {
                        _ = &mut *shutdown => return false,
                        open = settle(changes, start, self.config.debounce_min, self.config.debounce_max) => if !open { return false },
                    }
                    start
                }
                _ = sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {
                    tracing::info!("retrying the failed sync");
                    Instant::now()
                }
            };
            changes.borrow_and_update();
            let outcome = tokio::select! {
                _ = &mut *shutdown => return false,
                outcome = self.pass(source) => outcome,
            };
            tracing::debug!(
                ?outcome,
                waited_ms = start.elapsed().as_millis() as u64,
                "sync pass"
            );
            if outcome == Outcome::Failed {
                tracing::warn!(
                    retry_in_ms = backoff.as_millis() as u64,
                    "sync failed; retrying"
                );
                retry = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(RETRY_MAX);
            } else {
                retry = None;
                backoff = RETRY_MIN;
                if until_applied {
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
