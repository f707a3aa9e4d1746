//! The HTTP side of [`super::Metrics`]: `/metrics`, `/healthz`, `/readyz` over hyper, on a
//! hardened listener: at most [`MAX_CONNECTIONS`] at once, a request head must
//! arrive within [`HEADER_TIMEOUT`], a connection lives at most [`CONNECTION_LIFETIME`], and
//! accept errors (EMFILE) back off from [`ACCEPT_BACKOFF_MIN`] to [`ACCEPT_BACKOFF_MAX`]
//! instead of spinning.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Metrics;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// First pause after a failed accept (EMFILE, ENFILE, ENOMEM...).
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between failed accepts.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(super) fn respond(metrics: &Metrics, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, metrics.encode()),
        "/healthz" if metrics.nginx_alive() => (StatusCode::OK, "ok\n".to_owned()),
        "/healthz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "nginx master is not running\n".to_owned(),
        ),
        "/readyz" if metrics.is_ready() => (StatusCode::OK, "ready\n".to_owned()),
        "/readyz" if metrics.shutting_down.load(Ordering::Acquire) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_owned(),
        ),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful reload yet\n".to_owned(),
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if path == "/metrics" {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
    }
    resp
}

/// Where connections come from ([`TcpListener`]; tests inject failures).
pub trait Accept {
    fn accept(&self) -> impl Future<Output = std::io::Result<TcpStream>> + Send;
}

impl Accept for TcpListener {
    async fn accept(&self) -> std::io::Result<TcpStream> {
        TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: impl Accept,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        // A slot first: beyond the cap, connections wait in the backlog, not in our memory.
        let slot = tokio::select! {
            _ = &mut shutdown => return,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(s) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    s
                }
                Err(e) => {
                    // EMFILE and friends: the listener stays readable, so retrying at once
                    // would spin. Wait, longer each time, until an accept succeeds.
                    if backoff == ACCEPT_BACKOFF_MIN {
                        tracing::warn!(error = %e, "metrics accept failed; backing off");
                    }
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req: Request<Incoming>| {
                let resp = respond(&metrics, req.uri().path());
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection error"),
                Err(_) => tracing::debug!("metrics connection closed: lifetime over"),
                Ok(Ok(())) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Always fails like accept(2) without a free file descriptor.
    struct Emfile(std::sync::atomic::AtomicU64);

    impl Accept for Emfile {
        async fn accept(&self) -> std::io::Result<TcpStream> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(std::io::Error::from_raw_os_error(nix::libc::EMFILE))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_instead_of_spinning() {
        let calls = Arc::new(Emfile(AtomicU64::new(0)));
        struct Shared(Arc<Emfile>);
        impl Accept for Shared {
            fn accept(&self) -> impl Future<Output = std::io::Result<TcpStream>> + Send {
                self.0.accept()
            }
        }
        let stop = tokio::time::sleep(Duration::from_secs(10));
        serve(Shared(calls.clone()), Arc::new(Metrics::default()), stop).await;
        // 10 ms, 20, 40 ... 1 s, then once a second: about 16 tries in 10 s, not millions.
        let n = calls.0.load(Ordering::Relaxed);
        assert!((10..=20).contains(&n), "{n} accept calls in 10 s");
    }
}
