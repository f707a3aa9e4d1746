//! The trash purger: removes the data of images that DeleteVolume moved to the RBD trash, in
//! the background, so no RPC waits for the trimming of a big image.
//!
//! Work list: the journal's `trash/<image>` keys ([`crate::ceph::journal`]), so a purge cut
//! by a crash resumes: at start for every `--list-pools` pool (controller credentials), and
//! on every later DeleteVolume / DeleteSnapshot of a pool. One purge runs per pool at a time
//! (a kick while it runs makes it go round once more), at most [`MAX_PURGES`] pools at once;
//! each purge runs without an RPC deadline on the blocking pool. An image that cannot be
//! removed because clones still depend on it is put back and marked gone (collected later).
//! Metrics: `berth_csi_trash_purged_total`, `berth_csi_trash_purge_errors_total`,
//! `berth_csi_trash_pending`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ceph::ffi::Errno;
use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::ffi::rbd::{self, Image};
use crate::ceph::journal;
use crate::ceph::{Target, ceph_err};
use crate::error::Result;
use crate::metrics::Metrics;

use super::Controller;
use super::delete::collect_gone;

/// Pools purged at once (each purge keeps librbd's own ~10 object removals in flight).
pub const MAX_PURGES: usize = 2;
/// Tries of a purge that fails (cluster away) or leaves busy images (the watch of a client
/// that died lasts ~30 s), [`RETRY_AFTER`] apart.
const TRIES: usize = 20;
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Which pools are being purged (and whether a kick came meanwhile).
#[derive(Debug)]
pub(super) struct Purger {
    running: Mutex<HashMap<String, bool>>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Default for Purger {
    fn default() -> Self {
        Purger {
            running: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_PURGES)),
        }
    }
}

impl Purger {
    /// Register a kick; true when the caller must start the purge of `key`.
    fn start(&self, key: &str) -> bool {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match r.get_mut(key) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                r.insert(key.to_string(), false);
                true
            }
        }
    }

    /// The purge of `key` finished one round: go round again when kicked meanwhile.
    fn again(&self, key: &str) -> bool {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if r.get(key) == Some(&true) {
            r.insert(key.to_string(), false);
            true
        } else {
            r.remove(key);
            false
        }
    }
}

impl Controller {
    /// Purge the trash of `target`'s pool in the background (no-op when already running).
    pub(super) fn kick_purge(&self, target: Target) {
        let key = format!("{}/{}", target.mon_host, target.pool);
        if !self.inner.purger.start(&key) {
            return;
        }
        let c = self.clone();
        tokio::spawn(async move {
            let Ok(_slot) = c.inner.purger.slots.clone().acquire_owned().await else {
                return;
            };
            loop {
                for attempt in 1..=TRIES {
                    let metrics = c.metrics().clone();
                    let rounds = move |io: &IoCtx<'_>| purge_rounds(io, &metrics);
                    match c.ceph().with_pool_background(&target, rounds).await {
                        Ok(0) => break,
                        Ok(busy) => {
                            tracing::info!(
                                pool = target.pool,
                                busy,
                                "trashed images still busy: purge again later"
                            )
                        }
                        Err(e) => {
                            c.metrics().trash_purge_error();
                            tracing::warn!(pool = target.pool, attempt, error = %e.chain(), "trash purge failed");
                        }
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                if !c.inner.purger.again(&key) {
                    break;
                }
            }
        });
    }

    /// Resume purges a previous run left (every `--list-pools` pool, controller credentials).
    pub fn resume_purges(&self) {
        let none = HashMap::new();
        for (cluster, pool) in self.opts().list_pools.clone() {
            let ns = self.config_namespace(&cluster).to_string();
            if let Ok(Some(t)) = self.target_with(&cluster, &pool, &ns, &none, true) {
                self.kick_purge(t);
            }
        }
    }
}

/// Purge until nothing is left to do: a purged clone may free its gone parent, which
/// [`collect_gone`] then trashes for the next round. Answers how many images stayed busy.
fn purge_rounds(io: &IoCtx<'_>, metrics: &Metrics) -> Result<usize> {
    let mut busy = 0;
    for _ in 0..MAX_ROUNDS {
        let (purged, b) = purge_pool(io, metrics)?;
        busy = b;
        if purged == 0 {
            break;
        }
        collect_gone(io);
    }
    Ok(busy)
}

/// Rounds per purge (each one level of a clone chain whose images were all deleted).
const MAX_ROUNDS: usize = 16;

/// One round over the pool's `trash/` keys (blocking): (purged, still busy).
fn purge_pool(io: &IoCtx<'_>, metrics: &Metrics) -> Result<(usize, usize)> {
    let images = journal::trashed_images(io)?;
    if images.is_empty() {
        return Ok((0, 0));
    }
    let (mut purged, mut busy) = (0, 0);
    let mut pending = images.len();
    metrics.set_trash_pending(pending);
    let mut trash = rbd::trash_list(io).map_err(|e| ceph_err("list the trash", e))?;
    for image in images {
        if !trash.iter().any(|e| e.name == image) {
            // A crash between the journal write and the move, or purged already.
            match Image::open(io, &image, true) {
                Ok(_) => match rbd::trash_move(io, &image) {
                    Ok(()) => {
                        trash = rbd::trash_list(io).map_err(|e| ceph_err("list the trash", e))?
                    }
                    Err(errno) => {
                        tracing::warn!(image, %errno, "cannot move a deleted image to the trash");
                        continue;
                    }
                },
                Err(Errno(libc::ENOENT)) => {
                    journal::forget_trashed(io, &image, false)?;
                    continue;
                }
                Err(errno) => return Err(ceph_err(format!("open image {image}"), errno)),
            }
        }
        let Some(entry) = trash.iter().find(|e| e.name == image).cloned() else {
            continue;
        };
        let t0 = std::time::Instant::now();
        match rbd::trash_remove(io, &entry.id) {
            Ok(()) | Err(Errno(libc::ENOENT)) => {
                journal::forget_trashed(io, &image, false)?;
                metrics.trash_purged();
                purged += 1;
                tracing::info!(
                    image,
                    secs = t0.elapsed().as_secs_f64(),
                    "purged a deleted volume from the trash"
                );
            }
            Err(Errno(libc::EBUSY)) => {
                // Watched: the purge of a killed predecessor holds it until its watch
                // expires. Again later.
                busy += 1;
            }
            Err(Errno(libc::ENOTEMPTY)) => {
                // Clones still depend on it: back, and kept as gone until they go.
                match rbd::trash_restore(io, &entry.id, &image) {
                    Ok(()) | Err(Errno(libc::EEXIST)) => journal::forget_trashed(io, &image, true)?,
                    Err(errno) => tracing::warn!(image, %errno, "cannot restore a trashed image"),
                }
            }
            Err(errno) => {
                metrics.trash_purge_error();
                tracing::warn!(image, %errno, "cannot purge a trashed image");
            }
        }
        pending -= 1;
        metrics.set_trash_pending(pending);
    }
    Ok((purged, busy))
}
