//! The only module that talks to Ceph: the librados/librbd FFI ([`ffi`], where all `unsafe`
//! lives), the connection cache with bounded timeouts ([`connection`]), and the idempotency
//! journal in RADOS omap ([`journal`], and [`group_journal`] for volume group snapshots).

pub mod connection;
pub mod ffi;
pub mod group_journal;
pub mod journal;

pub use connection::{Connections, Target, ceph_err};
