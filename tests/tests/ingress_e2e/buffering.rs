//! `proxy-buffering: off` and `proxy-send-timeout` through the real controller and nginx. With nginx's default
//! buffering, a large answer is taken from the backend at once (into nginx's buffers and
//! temporary file) even while the client reads nothing; with `proxy-buffering: off` nginx
//! passes it on synchronously, so the backend is still writing while the client does not read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Result, ensure};
use berth_tests::ingress_ctl::{IngressCtl, ingress, local_service};
use berth_tests::proc::wait_until;

use super::{SERVED_WITHIN, served, started};

/// Answer size: far beyond loopback socket buffers and nginx's in-memory buffers.
const BODY: usize = 32 << 20;

/// A backend answering every request with [`BODY`] bytes (`/ping`: `pong`); `done` counts answers fully written.
fn big_answer(done: Arc<AtomicUsize>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let done = done.clone();
            std::thread::spawn(move || _ = answer(stream, &done));
        }
    });
    Ok(port)
}

fn answer(stream: TcpStream, done: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
    }
    if line.contains("/ping") {
        return write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong"
        );
    }
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n"
    )?;
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..(BODY >> 20) {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Ask `host` for the answer, read nothing for (up to) `idle`: did the backend finish
/// writing? Then read it all (its length is checked).
fn backend_done_while_client_idle(
    ctl: &IngressCtl,
    host: &str,
    done: &AtomicUsize,
    idle: Duration,
) -> Result<bool> {
    let before = done.load(Ordering::SeqCst);
    let mut s = TcpStream::connect(ctl.http_addr())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let finished = wait_until("the backend to finish", idle, || {
        done.load(Ordering::SeqCst) > before
    })
    .is_ok();
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    ensure!(
        all.len() > BODY,
        "{host}: short answer ({} bytes)",
        all.len()
    );
    Ok(finished)
}

pub fn proxy_buffering_off_streams() -> Result<()> {
    let done = Arc::new(AtomicUsize::new(0));
    let port = big_answer(done.clone())?;
    let ing = |name: &str, ann: &[(&str, &str)]| {
        ingress(
            "shop",
            name,
            &format!("{name}.test"),
            "/",
            ("big", port),
            ann,
            None,
        )
    };
    let manifests = vec![
        ("big", local_service("shop", "big", port)),
        (
            "off",
            ing(
                "off",
                &[("nginx.ingress.kubernetes.io/proxy-buffering", "off")],
            ),
        ),
        (
            "berth-off",
            ing("berth-off", &[("berth.dev/proxy-buffering", "off")]),
        ),
        ("on", ing("on", &[])),
    ];
    let ctl = started(&manifests, &[])?;
    for host in ["off.test", "berth-off.test", "on.test"] {
        served(&ctl, host, "/ping", 200, Some("pong"))?;
    }
    ensure!(
        backend_done_while_client_idle(&ctl, "on.test", &done, SERVED_WITHIN)?,
        "buffered: backend not done"
    );
    for host in ["off.test", "berth-off.test"] {
        ensure!(
            !backend_done_while_client_idle(&ctl, host, &done, Duration::from_secs(2))?,
            "{host}: the backend finished while the client read nothing (buffered)"
        );
    }
    Ok(())
}

/// A backend that accepts connections and never reads from them (held for 30 s).
fn never_reads() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(30));
                drop(stream);
            });
        }
    });
    Ok(port)
}

/// `proxy-send-timeout: 1`: a 32 MiB upload to a backend that never reads answers `504` after
/// about a second of no progress (nginx's default would wait 60 s).
pub fn proxy_send_timeout_gives_504() -> Result<()> {
    let port = never_reads()?;
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let (t, b) = (n("proxy-send-timeout"), n("proxy-body-size"));
    let manifests = vec![
        ("stuck", local_service("shop", "stuck", port)),
        (
            "send",
            ingress(
                "shop",
                "send",
                "send.test",
                "/",
                ("stuck", port),
                &[(&t, "1"), (&b, "0")],
                None,
            ),
        ),
    ];
    let ctl = started(&manifests, &[])?;
    let body = vec![b'y'; BODY];
    let started_at = std::time::Instant::now();
    let mut last = (0, String::new());
    wait_until("send.test -> 504", SERVED_WITHIN * 2, || {
        last = berth_tests::ingress_ctl::http_send(
            &ctl.http_addr(),
            "POST",
            "send.test",
            "/up",
            &body,
        )
        .unwrap_or((0, String::new()));
        last.0 == 504
    })
    .map_err(|e| anyhow::anyhow!("{e}; last {:?}", last.0))?;
    let took = started_at.elapsed();
    ensure!(took < Duration::from_secs(15), "504 after {took:?}");
    Ok(())
}
