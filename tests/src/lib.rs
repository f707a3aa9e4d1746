//! berth-tests: the real surroundings of berth as code, shared by every integration test,
//! end-to-end test and benchmark.
//!
//! - [`backend`]: a named HTTP backend answering `NAME PATH` (which backend nginx chose).
//! - [`bench`]: benchmark subjects (`csi`, …) behind `bin/bench.rs`.
//! - [`ceph`]: a throwaway Ceph cluster (1 mon + 1 osd, memstore, cephx) in its own dir/ports.
//! - [`fuse`]: attach an RBD image as a block device with rbd-fuse + a loop device.
//! - [`ingress_ctl`]: the berth-ingress binary on a manifests dir + nginx, an echo backend, a test CA.
//! - [`netns`]: a network namespace with a veth pair and HTTP backends (addresses the API accepts).
//! - [`nginx`]: a private nginx (own prefix, config, pid file, ports on 127.0.0.1).
//! - [`csi_client`]: a CSI gRPC client over a Unix socket (from berth-conformance); [`driver`] starts
//!   the berth-csi binary.
//! - [`csi_sanity`]: csi-sanity's input files (testenv writes them) and its JUnit report as cases.
//! - [`node_fixture`]: node tests' and bench's driver + cluster fixture, leftover listing.
//! - [`sweep`]: mount table parsing and the cleanup of mounts, loops, daemons under a directory.
//! - [`k8s`]: a real control plane (etcd, kube-apiserver, kube-controller-manager) on 127.0.0.1.
//! - [`tools`]: the pinned Go tools (Kubernetes, csi-sanity, CSI sidecars) and their cached binaries.
//! - [`suite`]: the `main` of a test binary sharing one cluster, with the leftover check.
//! - [`tcp_proxy`]: a TCP proxy a test can cut (an API outage).
//! - [`proc`]: running programs with bounded time and clear errors; free ports; daemon spawning.
//!
//! Everything a test creates lives under [`state_root`]`/<kind>-<pid>-<n>`; a guard's Drop
//! removes it, and [`sweep::leftovers`] removes what a crashed earlier run left behind.

pub mod backend;
pub mod bench;
pub mod ceph;
pub use berth_conformance::csi_client;
pub mod csi_sanity;
pub mod driver;
pub mod fuse;
pub mod ingress_ctl;
pub mod k8s;
pub mod netns;
pub mod nginx;
pub mod node_fixture;
pub mod proc;
pub mod refused_tls;
pub mod suite;
pub mod sweep;
pub mod tcp_proxy;
pub mod tools;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where all test state lives. One directory per guard, named `<kind>-<owner pid>-<n>`.
pub fn state_root() -> PathBuf {
    PathBuf::from("/tmp/berth-test")
}

/// A fresh, unique directory for one guard of this process (leftovers swept first).
pub fn new_state_dir(kind: &str) -> anyhow::Result<PathBuf> {
    static N: AtomicUsize = AtomicUsize::new(0);
    sweep::leftovers();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = state_root().join(format!("{kind}-{}-{n}", std::process::id()));
    if dir.exists() {
        sweep::directory(&dir);
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
