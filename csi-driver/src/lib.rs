//! berth-csi: a CSI v1.12.0 driver for Ceph RBD.
//!
//! ```text
//!  kubelet / sidecars ──gRPC over unix socket──▶ server ─▶ identity
//!                                                    ├──▶ controller ─▶ ceph (librbd FFI, journal)
//!                                                    └──▶ node ─▶ attach (krbd|nbd|fuse) ─▶ mount
//! ```
//!
//! Module map:
//! - [`args`]: flags (with env fallbacks) -> typed config; the only place that reads the environment.
//! - [`csi`]: generated wire types from `proto/csi.proto`.
//! - [`error`]: the error enum and its one mapping to gRPC status codes.
//! - [`identity`]: the Identity service.
//! - [`kms`]: volume encryption keys (KMS trait, Kubernetes-Secret KMS, key wrapping; redacted).
//! - [`server`]: socket binding, serving, graceful shutdown.
//! - [`volume_id`]: the self-describing volume ID layout (pure).
//! - [`credentials`]: cephx user/key from request secrets, redacted everywhere (pure).
//! - [`cluster_config`]: clusterID -> monitors, from the `--cluster-config` JSON (pure).
//! - [`locks`]: per-volume / per-name try-locks (ABORTED on collision).
//! - [`node`]: the Node service (stage, publish, stats, expand, restart recovery).
//! - [`attach`]: image -> block device (krbd, rbd-nbd, rbd-fuse + loop).
//! - [`mount`]: mount table, blkid/mkfs, mount/bind/unmount, filesystem growth.
//! - [`program`]: running host programs with bounded time (node side).
//! - [`procs`]: processes found by their argv (rbd-fuse daemons, leftovers of a killed stage).
//! - [`params`]: StorageClass parameters, capacity ranges, capabilities (pure).
//! - [`snapshot_id`]: the self-describing snapshot ID layout (pure).
//! - [`group_snapshot_id`]: the self-describing volume group snapshot ID layout (pure).
//! - [`ceph`]: the only module talking to Ceph (librados/librbd FFI, connections, journal).
//! - [`controller`]: the Controller service (create/delete/snapshot/clone/expand/list).
//! - [`metrics`]: Prometheus metrics and /healthz over HTTP.

pub mod args;
pub mod attach;
pub mod ceph;
pub mod cluster_config;
pub mod controller;
pub mod credentials;
pub mod csi;
pub mod error;
pub mod group_snapshot_id;
pub mod identity;
pub mod kms;
pub mod locks;
pub mod logging;
pub mod metrics;
pub mod mount;
pub mod node;
pub mod params;
pub mod procs;
pub mod program;
pub mod server;
pub mod snapshot_id;
pub mod static_volume;
pub mod volume_id;
