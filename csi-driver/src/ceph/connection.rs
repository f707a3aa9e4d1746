//! Cluster connections: one librados connection per (monitors, user, key digest), reused by
//! every RPC, created on first use, dropped when the cluster says it is broken (auth failure,
//! timeout, shutdown) so the next call reconnects. Every blocking call runs on the blocking
//! pool under a deadline, so a dead cluster answers in bounded time instead of hanging.
//!
//! The deadline ends the RPC, not the Ceph call: librados goes on until it answers. So what
//! must stay held while Ceph works (the per-name lock, the call slot, the connection) moves
//! into the blocking task and is released only when the call really ends ([`Connections::
//! with_pool_held`]); a retry meanwhile gets ABORTED instead of running beside it. Connects
//! are serialised per cluster, so a dead cluster never delays calls to another one, and a
//! dropped connection is shut down on the blocking pool (`rados_shutdown` waits for the
//! messenger threads), never on an async worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::ffi::Errno;
use super::ffi::rados::{IoCtx, Rados};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// librados waits at most this long for the monitors at connect (`client_mount_timeout`) and
/// for any monitor / OSD operation (`rados_mon_op_timeout`, `rados_osd_op_timeout`). Ten
/// seconds rides out a monitor election but answers a dead cluster well inside the 30 s a
/// sidecar waits.
pub const CEPH_TIMEOUT_SECS: &str = "10";
/// [`CEPH_TIMEOUT_SECS`] as a duration (for messages).
const CEPH_TIMEOUT: Duration = Duration::from_secs(10);

/// Backstop over one whole blocking call (several ops): librados should have given up long
/// before; if it has not, the RPC still answers DEADLINE_EXCEEDED.
pub const CALL_DEADLINE: Duration = Duration::from_secs(25);

/// Blocking Ceph calls in flight at once. Each runs on its own blocking-pool thread with its
/// own stack and malloc arena use; a burst of 100 RPCs would otherwise start 100 threads.
/// Eight keep a 2-core controller busy (a create is ~10 ms of mostly waiting on the OSD)
/// while bounding memory; the rest queue (in order) without failing.
pub const MAX_CONCURRENT_CALLS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    mon_host: String,
    user: String,
    key_digest: [u8; 32],
}

/// Where a call goes: which cluster, as whom, which pool and RADOS namespace ("" is the
/// default one): every object, omap and image the call touches is in that namespace.
#[derive(Debug, Clone)]
pub struct Target {
    pub mon_host: String,
    pub creds: Credentials,
    pub pool: String,
    pub namespace: String,
}

/// The connection cache.
#[derive(Debug)]
pub struct Connections {
    cache: Mutex<HashMap<Key, Arc<Rados>>>,
    /// Serialises connects per cluster (and user), so a burst of RPCs opens one connection,
    /// not one each, and a slow cluster delays only its own callers.
    connecting: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds blocking calls in flight ([`MAX_CONCURRENT_CALLS`]).
    calls: Arc<tokio::sync::Semaphore>,
    /// Backstop over one blocking call ([`CALL_DEADLINE`] unless configured).
    deadline: Duration,
    /// Where the live-connection gauge goes.
    metrics: Arc<Metrics>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            cache: Mutex::default(),
            connecting: Mutex::default(),
            calls: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS)),
            deadline: CALL_DEADLINE,
            metrics: Arc::default(),
        }
    }
}

impl Connections {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache whose blocking calls answer DEADLINE_EXCEEDED after `deadline`.
    pub fn with_deadline(deadline: Duration, metrics: Arc<Metrics>) -> Self {
        Connections {
            deadline,
            metrics,
            ..Self::default()
        }
    }

    /// A slot for one blocking call; held by the call until it really ends (even past a
    /// deadline), so a stuck cluster cannot pile up threads.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.calls
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::ShuttingDown)
    }

    /// Connections currently cached (the `berth_csi_ceph_connections` gauge).
    pub fn count(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn key(t: &Target) -> Key {
        Key {
            mon_host: t.mon_host.clone(),
            user: t.creds.user.clone(),
            key_digest: Sha256::digest(t.creds.key.expose().as_bytes()).into(),
        }
    }

    fn cached(&self, key: &Key) -> Option<Arc<Rados>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).cloned()
    }

    fn invalidate(&self, key: &Key) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let removed = cache.remove(key);
        self.metrics.set_ceph_connections(cache.len());
        drop(cache);
        if let Some(rados) = removed {
            tracing::info!(mon_host = %key.mon_host, user = %key.user, "dropped ceph connection");
            drop_off_async(rados);
        }
    }

    /// The connect lock of one cluster (and user).
    fn connect_lock(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.connecting.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.clone()).or_default().clone()
    }

    async fn connection(&self, t: &Target) -> Result<Arc<Rados>> {
        let key = Self::key(t);
        if let Some(c) = self.cached(&key) {
            return Ok(c);
        }
        let turn = self.connect_lock(&key);
        let _turn = turn.lock().await;
        if let Some(c) = self.cached(&key) {
            return Ok(c);
        }
        let (user, mon_host, secret) = (
            t.creds.user.clone(),
            t.mon_host.clone(),
            t.creds.key.clone(),
        );
        let connect = tokio::task::spawn_blocking(move || {
            // The first connect loads librados/librbd (a node plugin never gets here).
            super::ffi::load().map_err(Error::CephLibrary)?;
            Rados::connect(
                &user,
                &[
                    ("mon_host", mon_host.as_str()),
                    // The key goes to librados in memory: never a file, argv or log line.
                    ("key", secret.expose()),
                    ("client_mount_timeout", CEPH_TIMEOUT_SECS),
                    ("rados_mon_op_timeout", CEPH_TIMEOUT_SECS),
                    ("rados_osd_op_timeout", CEPH_TIMEOUT_SECS),
                    ("log_to_stderr", "false"),
                    ("err_to_stderr", "false"),
                    ("log_file", ""),
                    ("admin_socket", ""),
                ],
            )
            .map_err(|errno| connect_error(&mon_host, &user, errno))
        });
        let rados = match tokio::time::timeout(self.deadline, connect).await {
            Err(_) => {
                return Err(Error::ConnectTimeout {
                    mon_host: t.mon_host.clone(),
                    after: self.deadline,
                });
            }
            Ok(Err(source)) => {
                return Err(Error::Task {
                    what: "connect",
                    source,
                });
            }
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Ok(Ok(r))) => Arc::new(r),
        };
        tracing::info!(mon_host = %t.mon_host, user = %t.creds.user, "connected to ceph");
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(key, rados.clone());
        self.metrics.set_ceph_connections(cache.len());
        Ok(rados)
    }

    /// Run `f` with an I/O context on `t.pool`, on the blocking pool, under [`CALL_DEADLINE`].
    /// Errors that mean "this connection is broken" drop it from the cache.
    pub async fn with_pool<T, F>(&self, t: &Target, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&IoCtx<'_>) -> Result<T> + Send + 'static,
    {
        self.with_pool_held(t, (), f).await
    }

    /// [`Self::with_pool`], holding `held` (a per-name lock guard) until `f` has really
    /// ended, even when the RPC already answered DEADLINE_EXCEEDED.
    pub async fn with_pool_held<T, F, H>(&self, t: &Target, held: H, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&IoCtx<'_>) -> Result<T> + Send + 'static,
        H: Send + 'static,
    {
        let (pool, ns) = (t.pool.clone(), t.namespace.clone());
        self.with_cluster(t, move |rados| {
            let _held = held;
            f(&open_pool(rados, &pool, &ns)?)
        })
        .await
    }

    /// Run `f` with an I/O context on `t.pool` on the blocking pool, with no deadline and no
    /// call slot: for background work that is slow by nature (the trash purger, which bounds
    /// its own concurrency). The connection is released on the blocking pool.
    pub async fn with_pool_background<T, F>(&self, t: &Target, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&IoCtx<'_>) -> Result<T> + Send + 'static,
    {
        let rados = self.connection(t).await?;
        let (pool, ns) = (t.pool.clone(), t.namespace.clone());
        tokio::task::spawn_blocking(move || f(&open_pool(&rados, &pool, &ns)?))
            .await
            .map_err(|source| Error::Task {
                what: "ceph",
                source,
            })?
    }

    /// Run `f` with the bare connection (cluster-wide calls such as `cluster_stat`).
    pub async fn with_cluster<T, F>(&self, t: &Target, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Rados) -> Result<T> + Send + 'static,
    {
        let rados = self.connection(t).await?;
        let slot = self.slot().await?;
        let call = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            f(&rados)
        });
        let result = match tokio::time::timeout(self.deadline, call).await {
            Err(_) => Err(Error::CallTimeout {
                after: self.deadline,
            }),
            Ok(Err(source)) => Err(Error::Task {
                what: "ceph",
                source,
            }),
            Ok(Ok(r)) => r,
        };
        if let Err(e) = &result
            && breaks_connection(e)
        {
            self.invalidate(&Self::key(t));
        }
        result
    }
}

/// An I/O context on `pool`, in RADOS namespace `ns`; a pool that does not exist is
/// NOT_FOUND.
fn open_pool<'r>(rados: &'r Rados, pool: &str, ns: &str) -> Result<IoCtx<'r>> {
    let mut io = rados.ioctx(pool).map_err(|errno| {
        if errno.0 == libc::ENOENT {
            Error::PoolNotFound {
                pool: pool.to_string(),
            }
        } else {
            ceph_err(format!("open pool {pool:?}"), errno)
        }
    })?;
    io.set_namespace(ns)
        .map_err(|errno| ceph_err(format!("namespace {ns:?} of pool {pool:?}"), errno))?;
    Ok(io)
}

/// Drop a connection on the blocking pool when this is an async worker: the last reference
/// runs `rados_shutdown`, which joins librados threads and may wait for the network.
fn drop_off_async(rados: Arc<Rados>) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(move || drop(rados));
        }
        Err(_) => drop(rados),
    }
}

/// A librados/librbd failure as our error (context names objects, never secrets).
pub fn ceph_err(context: impl Into<String>, errno: Errno) -> Error {
    Error::Ceph {
        context: context.into(),
        errno: errno.0,
    }
}

fn connect_error(mon_host: &str, user: &str, errno: Errno) -> Error {
    match errno.0 {
        libc::EACCES | libc::EPERM | libc::EKEYREJECTED => Error::CredentialsRejected {
            mon_host: mon_host.to_string(),
            user: user.to_string(),
        },
        libc::ETIMEDOUT => Error::ConnectTimeout {
            mon_host: mon_host.to_string(),
            after: CEPH_TIMEOUT,
        },
        libc::EINVAL => Error::ConfigRefused {
            user: user.to_string(),
        },
        _ => Error::CephUnreachable {
            mon_host: mon_host.to_string(),
            errno: errno.0,
        },
    }
}

fn breaks_connection(e: &Error) -> bool {
    match e {
        Error::ConnectTimeout { .. }
        | Error::CallTimeout { .. }
        | Error::CephUnreachable { .. }
        | Error::CredentialsRejected { .. }
        | Error::ConfigRefused { .. } => true,
        Error::Ceph { errno, .. } => matches!(
            *errno,
            libc::ETIMEDOUT | libc::ENOTCONN | libc::ESHUTDOWN | libc::EACCES | libc::EPERM
        ),
        _ => false,
    }
}
