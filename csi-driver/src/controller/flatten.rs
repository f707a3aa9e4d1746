//! Deep flatten in the background. A clone whose chain of parents is deeper than
//! [`MAX_CLONE_DEPTH`] must be flattened (a copy of all the data it references) before it is
//! handed out: kernels map only limited depths, and every read of unwritten data walks the
//! chain. Copying a big image takes minutes, so no RPC waits for it.
//!
//! As ceph-csi does at its hard depth limit: CreateVolume creates the clone, starts its
//! flatten here and answers ABORTED ("being flattened: 40%"); the CO retries the same name,
//! and each retry sees the progress, until the clone has no parent any more and the retry
//! answers OK with the volume. A clone of an image that is still being flattened proceeds:
//! its depth is read from Ceph as it is, and it is flattened itself if it is too deep.
//!
//! Restart-safe without a work list of its own: what is pending is what Ceph says (a
//! journaled clone deeper than the limit), and the CO's retry of the ABORTED call starts the
//! flatten again in the new process; librbd's flatten copies up only the objects the clone
//! does not have yet. A flatten that fails is reported to the next retry (ABORTED with the
//! error) and started again by the one after. At most [`MAX_FLATTENS`] run at once, each on
//! the blocking pool without an RPC deadline.
//! Metrics: `berth_csi_flatten_running`, `berth_csi_flatten_done_total`,
//! `berth_csi_flatten_errors_total`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::Image;
use crate::ceph::{Target, ceph_err};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

use super::Controller;

/// Longest chain of clone parents we let grow. Every read of unwritten data walks the chain,
/// and kernels map only limited depths (ceph-csi's hard limit is 8 as well); a clone deeper
/// than this is flattened before CreateVolume hands it out.
pub const MAX_CLONE_DEPTH: usize = 8;

/// Flattens at once. Each copies a whole image (librbd keeps its own ~10 object copies in
/// flight), so two keep a small cluster busy without starving the RPCs' Ceph calls.
pub const MAX_FLATTENS: usize = 2;

/// Where one image's flatten is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum FlattenState {
    /// Waiting for one of the [`MAX_FLATTENS`] slots.
    Queued,
    /// Copying: bytes done of total, as librbd reports them.
    Running { done: u64, total: u64 },
    /// The last attempt failed (the next call starts it again).
    Failed(String),
}

impl std::fmt::Display for FlattenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlattenState::Queued => f.write_str("queued"),
            FlattenState::Running { total: 0, .. } => f.write_str("started"),
            FlattenState::Running { done, total } => {
                write!(f, "{}% done", u128::from(*done) * 100 / u128::from(*total))
            }
            FlattenState::Failed(e) => write!(f, "the last attempt failed ({e}); retrying"),
        }
    }
}

type Jobs = Arc<Mutex<HashMap<String, FlattenState>>>;

/// The flattens of this process, by `<mon_host>/<pool>/<image>`.
#[derive(Debug)]
pub(super) struct Flattener {
    jobs: Jobs,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Default for Flattener {
    fn default() -> Self {
        Flattener {
            jobs: Jobs::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_FLATTENS)),
        }
    }
}

fn key(t: &Target, image: &str) -> String {
    format!("{}/{}/{image}", t.mon_host, t.pool)
}

fn set(jobs: &Jobs, metrics: &Metrics, key: &str, state: Option<FlattenState>) {
    let mut j = jobs.lock().unwrap_or_else(|p| p.into_inner());
    match state {
        Some(s) => j.insert(key.to_string(), s),
        None => j.remove(key),
    };
    metrics.set_flatten_running(j.len());
}

impl Flattener {
    /// A predicate for the blocking pool: is a flatten of `image` in `t`'s pool in progress?
    /// (Then a CreateVolume retry must not open the image for writing.)
    pub(super) fn in_progress(&self, t: &Target) -> impl Fn(&str) -> bool + Send + 'static {
        let (jobs, t) = (self.jobs.clone(), t.clone());
        move |image| {
            let j = jobs.lock().unwrap_or_else(|p| p.into_inner());
            matches!(
                j.get(&key(&t, image)),
                Some(FlattenState::Queued | FlattenState::Running { .. })
            )
        }
    }
}

impl Controller {
    /// Flatten `image` in the background unless that is under way; answers where it is. A
    /// failed flatten is started again, and its failure answered this once.
    pub(super) fn flatten_in_background(&self, target: &Target, image: &str) -> FlattenState {
        let jobs = self.inner.flattener.jobs.clone();
        let k = key(target, image);
        let answer = {
            let j = jobs.lock().unwrap_or_else(|p| p.into_inner());
            match j.get(&k).cloned() {
                // Failed: say so once, and start again.
                Some(FlattenState::Failed(e)) => FlattenState::Failed(e),
                Some(state) => return state,
                None => FlattenState::Queued,
            }
        };
        set(&jobs, self.metrics(), &k, Some(FlattenState::Queued));
        let (c, t, image) = (self.clone(), target.clone(), image.to_string());
        tokio::spawn(async move {
            let slots = c.inner.flattener.slots.clone();
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let progress = {
                let (jobs, k, m) = (jobs.clone(), k.clone(), c.metrics().clone());
                move |done, total| set(&jobs, &m, &k, Some(FlattenState::Running { done, total }))
            };
            let img = image.clone();
            let t0 = std::time::Instant::now();
            let r = c
                .ceph()
                .with_pool_background(&t, move |io| flatten(io, &img, &progress))
                .await;
            let metrics = c.metrics();
            match r {
                Ok(()) => {
                    metrics.flatten_done();
                    tracing::info!(
                        image,
                        secs = t0.elapsed().as_secs_f64(),
                        "flattened a deep clone"
                    );
                    set(&jobs, metrics, &k, None);
                }
                Err(e) => {
                    metrics.flatten_error();
                    tracing::warn!(image, error = %e.chain(), "flatten of a deep clone failed");
                    set(
                        &jobs,
                        metrics,
                        &k,
                        Some(FlattenState::Failed(e.to_string())),
                    );
                }
            }
        });
        answer
    }
}

/// How many parents an image has (0 for a plain image), stopping past [`MAX_CLONE_DEPTH`].
pub(super) fn clone_depth(io: &IoCtx<'_>, img: &Image<'_>) -> Result<usize> {
    let mut depth = 0;
    let mut parent = img.parent().map_err(|e| ceph_err("read clone parent", e))?;
    while let Some((_, name)) = parent {
        depth += 1;
        if depth > MAX_CLONE_DEPTH {
            break;
        }
        let p =
            Image::open(io, &name, true).map_err(|e| ceph_err(format!("open parent {name}"), e))?;
        parent = p.parent().map_err(|e| ceph_err("read clone parent", e))?;
    }
    Ok(depth)
}

/// Flatten `image` (blocking, no deadline); an image without a parent is done already.
fn flatten(io: &IoCtx<'_>, image: &str, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<()> {
    let img = Image::open(io, image, false)
        .map_err(|errno| ceph_err(format!("open clone {image}"), errno))?;
    if img
        .parent()
        .map_err(|e| ceph_err("read clone parent", e))?
        .is_none()
    {
        return Ok(());
    }
    img.flatten_with_progress(progress)
        .map_err(|errno| ceph_err(format!("flatten clone {image}"), errno))
}

/// The ABORTED answer of a CreateVolume whose clone is being flattened.
pub(super) fn pending(image: &str, state: &FlattenState) -> Error {
    Error::FlattenPending {
        image: image.to_string(),
        progress: state.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::FlattenState;

    #[test]
    fn progress_reads_as_a_percentage() {
        let running = |done, total| FlattenState::Running { done, total }.to_string();
        assert_eq!(running(0, 0), "started");
        assert_eq!(running(1 << 30, 4 << 30), "25% done");
        assert_eq!(running(u64::MAX, u64::MAX), "100% done");
        assert_eq!(FlattenState::Queued.to_string(), "queued");
        assert!(
            FlattenState::Failed("EIO".into())
                .to_string()
                .contains("EIO")
        );
    }
}
