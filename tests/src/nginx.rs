//! A private nginx for tests: its own prefix directory, config, pid file and a free port on
//! 127.0.0.1; started as a child tied to the test process; reload by signal; stop in Drop.
//! Also a minimal HTTP/1.1 client so tests need no curl.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proc::{free_port, require, run, spawn_tied, wait_until};

#[derive(Debug)]
pub struct Nginx {
    pub prefix: PathBuf,
    pub conf: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

/// The temp paths, pid and logs of a private instance, for a config's main/http context.
pub fn private_paths(prefix: &Path) -> String {
    let p = prefix.display();
    format!("pid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n",)
}

/// http-context directives that keep temp files inside the prefix.
pub fn private_http_paths(prefix: &Path) -> String {
    let p = prefix.display();
    format!(
        "client_body_temp_path {p}/tmp/body; proxy_temp_path {p}/tmp/proxy; \
         fastcgi_temp_path {p}/tmp/fastcgi; uwsgi_temp_path {p}/tmp/uwsgi; \
         scgi_temp_path {p}/tmp/scgi; access_log off;\n"
    )
}

impl Nginx {
    /// Start nginx answering 200 "ok" on a free port.
    pub fn start_default() -> Result<Nginx> {
        Nginx::start_with(|prefix, port| {
            format!(
                "{}events {{ worker_connections 64; }}\nhttp {{\n{}server {{ listen 127.0.0.1:{port}; \
                 location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
                private_paths(prefix),
                private_http_paths(prefix),
            )
        })
    }

    /// Start nginx with the config `make(prefix, port)` returns (written to prefix/nginx.conf).
    pub fn start_with(make: impl FnOnce(&Path, u16) -> String) -> Result<Nginx> {
        require(&[("nginx", "nginx"), ("setpriv", "util-linux")])?;
        let prefix = crate::new_state_dir("nginx")?;
        std::fs::create_dir_all(prefix.join("tmp"))?;
        let port = free_port()?;
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, make(&prefix, port))?;
        let mut nginx = Nginx {
            prefix,
            conf,
            port,
            child: None,
        };
        nginx.test_config()?;
        let mut cmd = nginx.command();
        cmd.args(["-g", "daemon off;"]);
        nginx.child = Some(spawn_tied(&cmd, &nginx.prefix.join("stderr.log"))?);
        let addr = format!("127.0.0.1:{port}");
        wait_until("nginx to listen", Duration::from_secs(10), || {
            TcpStream::connect(&addr).is_ok()
        })
        .with_context(|| {
            std::fs::read_to_string(nginx.prefix.join("error.log")).unwrap_or_default()
        })?;
        Ok(nginx)
    }

    /// `nginx -p PREFIX -c CONF` (the caller adds the rest).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("nginx");
        cmd.arg("-p").arg(&self.prefix).arg("-c").arg(&self.conf);
        cmd
    }

    /// `nginx -t` on the current config.
    pub fn test_config(&self) -> Result<()> {
        run(self.command().arg("-t")).map(|_| ())
    }

    pub fn master_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Graceful reload (SIGHUP to the master), after `nginx -t` passes.
    pub fn reload(&self) -> Result<()> {
        self.test_config()?;
        let pid = self.master_pid().context("nginx is not running")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGHUP,
        )?;
        Ok(())
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM first: the master takes its workers down (SIGKILL would orphan them).
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let exited = wait_until("nginx to stop", Duration::from_secs(5), || {
                child.try_wait().is_ok_and(|s| s.is_some())
            });
            if exited.is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        crate::sweep::directory(&self.prefix);
    }
}

/// A response from [`http_get`].
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GET `path` from `addr` with a Host header, HTTP/1.1, `Connection: close`.
pub fn http_get(addr: &str, host: &str, path: &str) -> Result<Response> {
    http_request(addr, "GET", host, path, &[])
}

/// `method` `path` (no body) from `addr` with a Host header and extra `headers`, HTTP/1.1,
/// `Connection: close`.
pub fn http_request(
    addr: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: berth-tests\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response: {text:?}");
    };
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nhello").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "hello"));
        assert_eq!(r.header("server"), Some("x"));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "abcde"));
    }
}
