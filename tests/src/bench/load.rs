//! A steady HTTP/1.1 keep-alive load that behaves like a real client on a reload.
//!
//! When nginx reloads, old workers close their *idle* keep-alive connections at once. A
//! request the client sends on such a connection at that instant meets a closed socket before
//! any response byte: HTTP allows (RFC 9112 §9.3.1) and browsers, curl, hyper and Go do retry an
//! idempotent request then, on a new connection. wrk does not, so its "read errors" count this
//! race, not failed requests. This client retries exactly that case, once, and counts as failed
//! everything else: a failure on a fresh connection, a failure after response bytes arrived,
//! a non-2xx status, or a failed retry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub failed: AtomicU64,
    /// Requests resent because a reused connection was closed before any response byte.
    pub retried: AtomicU64,
}

/// How one attempt ended.
enum Outcome {
    Ok {
        keep: bool,
    },
    /// Closed before any response byte arrived (the keep-alive race).
    ClosedBeforeResponse,
    Failed,
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

fn connect(addr: &str) -> Option<Conn> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_nodelay(true).ok()?;
    Some(Conn {
        reader: BufReader::new(s.try_clone().ok()?),
        writer: s,
    })
}

fn attempt(conn: &mut Conn, request: &[u8]) -> Outcome {
    if conn.writer.write_all(request).is_err() {
        return Outcome::ClosedBeforeResponse;
    }
    let mut status_line = String::new();
    match conn.reader.read_line(&mut status_line) {
        Ok(0) | Err(_) => return Outcome::ClosedBeforeResponse,
        Ok(_) => {}
    }
    let ok = status_line
        .split(' ')
        .nth(1)
        .is_some_and(|s| s.starts_with('2'));
    let (mut len, mut keep) = (None, true);
    loop {
        let mut h = String::new();
        match conn.reader.read_line(&mut h) {
            Ok(0) | Err(_) => return Outcome::Failed,
            Ok(_) if h.trim().is_empty() => break,
            Ok(_) => {}
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
            {
                keep = false;
            }
        }
    }
    // Responses without a length are read to EOF (and the connection is not reused).
    let mut body = Vec::new();
    let read = match len {
        Some(n) => {
            body.resize(n, 0);
            conn.reader.read_exact(&mut body).is_ok()
        }
        None => {
            keep = false;
            conn.reader.read_to_end(&mut body).is_ok()
        }
    };
    if ok && read {
        Outcome::Ok { keep }
    } else {
        Outcome::Failed
    }
}

/// Run `connections` client threads against `addr` with `Host: host` until `stop` is set.
pub fn run(addr: &str, host: &str, connections: usize, stop: Arc<AtomicBool>) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let request: Arc<[u8]> =
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: berth-bench\r\n\r\n")
            .into_bytes()
            .into();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, counts, stop, request) = (
                addr.to_string(),
                counts.clone(),
                stop.clone(),
                request.clone(),
            );
            std::thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                while !stop.load(Ordering::Relaxed) {
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    let reused = conn.is_some();
                    let mut c = match conn.take().or_else(|| connect(&addr)) {
                        Some(c) => c,
                        None => {
                            counts.failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    let mut outcome = attempt(&mut c, &request);
                    if matches!(outcome, Outcome::ClosedBeforeResponse) && reused {
                        counts.retried.fetch_add(1, Ordering::Relaxed);
                        outcome = match connect(&addr) {
                            Some(fresh) => {
                                c = fresh;
                                attempt(&mut c, &request)
                            }
                            None => Outcome::Failed,
                        };
                    }
                    match outcome {
                        Outcome::Ok { keep } => conn = keep.then_some(c),
                        Outcome::ClosedBeforeResponse | Outcome::Failed => {
                            counts.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let c = counts.clone();
    std::thread::spawn(move || {
        for t in threads {
            let _ = t.join();
        }
    });
    c
}
