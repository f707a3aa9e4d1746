//! Where objects come from: the Kubernetes API (`kube.rs`, with the Gateway API kinds in
//! `kube_gateway.rs`) or a directory of manifests
//! (`files.rs`). Both implement [`Source`]: they bump a `watch` counter on every change and
//! hand out a consistent [`Snapshot`] when asked, so the sync loop can coalesce bursts and
//! translate once per burst.

pub mod files;
pub mod kube;
pub mod kube_gateway;

use crate::snapshot::Snapshot;

/// Something that can say what the cluster (or directory) looks like right now.
pub trait Source: Send + Sync + 'static {
    /// The current objects. May block briefly (the files source reads changed files).
    fn snapshot(&self) -> Snapshot;
}

/// A fixed snapshot (tests, `render --from` uses the files source instead).
impl Source for Snapshot {
    fn snapshot(&self) -> Snapshot {
        self.clone()
    }
}
