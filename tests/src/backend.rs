//! A tiny named HTTP/1.1 backend for end-to-end tests: every request is answered `200` with
//! the body `NAME PATH` (the backend's own name and the request target as received), so a test
//! sees which backend nginx chose and what path reached it. A path containing `/slow` waits
//! [`SLOW`] first (in-flight requests across a reload or shutdown). Keep-alive is supported
//! (nginx keeps upstream connections). One thread per connection; the listener thread stops when
//! the [`Backend`] is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;

/// How long a `/slow` request waits before it is answered.
pub const SLOW: Duration = Duration::from_secs(1);

/// A running backend on 127.0.0.1; Drop stops accepting.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub port: u16,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
}

impl Backend {
    pub fn start(name: &str) -> Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (n, s, count) = (name.to_owned(), stop.clone(), served.clone());
        std::thread::Builder::new()
            .name(format!("backend-{name}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (n, count) = (n.clone(), count.clone());
                    std::thread::spawn(move || _ = serve(stream, &n, &count));
                }
            })?;
        Ok(Backend {
            name: name.to_owned(),
            port,
            stop,
            served,
        })
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// The body this backend answers for `path`.
    pub fn body_for(&self, path: &str) -> String {
        format!("{} {path}", self.name)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, name: &str, served: &AtomicU64) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut body_len = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    body_len = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("connection") {
                    close = v.trim().eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = vec![0u8; body_len];
        reader.read_exact(&mut body)?;
        if target.contains("/slow") {
            std::thread::sleep(SLOW);
        }
        let text = format!("{name} {target}");
        // One write: piecewise writes meet Nagle + delayed ACK (~40 ms per answer).
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        out.write_all(answer.as_bytes())?;
        served.fetch_add(1, Ordering::Relaxed);
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_its_name_and_the_path() {
        let b = Backend::start("one").unwrap();
        let r = crate::nginx::http_get(&format!("127.0.0.1:{}", b.port), "x", "/a/b?c=1").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "one /a/b?c=1"));
        assert_eq!(b.served(), 1);
    }
}
