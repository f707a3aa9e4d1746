//! berth-ingress for end-to-end tests: the real binary (`--source files`) supervising a real
//! nginx on free ports of 127.0.0.1, a manifests directory the test writes JSON objects into,
//! an echo HTTP backend, a throwaway CA for TLS, and small HTTP helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::proc::{free_port, require, spawn_tied, wait_until};

/// The berth-ingress binary: $BERTH_INGRESS_BIN, or next to this test executable's target dir.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_INGRESS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("exe dir")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("berth-ingress");
    if !bin.is_file() {
        bail!(
            "{} not found: build it first (`cargo build -p berth-ingress`) or set BERTH_INGRESS_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `berth-ingress run --source files`; Drop stops it (SIGTERM) and removes its dir.
#[derive(Debug)]
pub struct IngressCtl {
    pub dir: PathBuf,
    pub manifests: PathBuf,
    pub prefix: PathBuf,
    pub http_port: u16,
    pub https_port: u16,
    pub metrics_port: u16,
    pub log: PathBuf,
    /// Extra environment for the controller (set before [`Self::launch`]).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl IngressCtl {
    /// Start with `manifests` already written (name -> JSON object), plus `extra` flags.
    pub fn start(manifests: &[(&str, Value)], extra: &[String]) -> Result<IngressCtl> {
        let mut ctl = IngressCtl::create(manifests)?;
        ctl.launch(extra)?;
        Ok(ctl)
    }

    /// The directories, ports and manifests, without starting the controller ([`Self::launch`]).
    pub fn create(manifests: &[(&str, Value)]) -> Result<IngressCtl> {
        require(&[("nginx", "nginx"), ("setpriv", "util-linux")])?;
        let dir = crate::new_state_dir("ingress")?;
        let ctl = IngressCtl {
            manifests: dir.join("manifests"),
            prefix: dir.join("nginx"),
            http_port: free_port()?,
            https_port: free_port()?,
            metrics_port: free_port()?,
            log: dir.join("berth-ingress.log"),
            dir,
            env: Vec::new(),
            child: None,
        };
        std::fs::create_dir_all(&ctl.manifests)?;
        for (name, v) in manifests {
            ctl.write(name, v)?;
        }
        Ok(ctl)
    }

    /// Start (or start again, after [`Self::kill_hard`]) the controller on the same
    /// directories and ports.
    pub fn launch(&mut self, extra: &[String]) -> Result<()> {
        let files = [
            "--source=files".to_owned(),
            format!("--manifests-dir={}", self.manifests.display()),
        ];
        self.launch_from(&files, extra)
    }

    /// Start the controller watching the API server of `kubeconfig` (`--source kube`).
    pub fn launch_kube(&mut self, kubeconfig: &Path, extra: &[String]) -> Result<()> {
        self.env
            .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
        self.launch_from(&["--source=kube".to_owned()], extra)
    }

    fn launch_from(&mut self, source: &[String], extra: &[String]) -> Result<()> {
        let mut cmd = Command::new(binary()?);
        cmd.arg("run")
            .args(source)
            .args(["--listen-address", "127.0.0.1"])
            .args(["--worker-processes", "1", "--debounce-min", "20ms"])
            .arg(format!("--nginx-prefix={}", self.prefix.display()))
            .arg(format!(
                "--nginx-conf={}",
                self.prefix.join("nginx.conf").display()
            ))
            .arg(format!("--http-port={}", self.http_port))
            .arg(format!("--https-port={}", self.https_port))
            .arg(format!("--metrics-address=127.0.0.1:{}", self.metrics_port))
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(spawn_tied(&cmd, &self.log)?);
        Ok(())
    }

    /// SIGKILL the controller (nothing of it runs any more: no cleanup, no signal handler).
    pub fn kill_hard(&mut self) -> Result<()> {
        let mut child = self.child.take().context("controller not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM the controller and wait (up to `limit`) for it to exit: how long it took and
    /// its exit status (`None`: still running after `limit`; it is then killed).
    pub fn terminate(
        &mut self,
        limit: Duration,
    ) -> Result<(Duration, Option<std::process::ExitStatus>)> {
        let mut child = self.child.take().context("controller not running")?;
        let started = std::time::Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let mut status = None;
        let _ = wait_until("berth-ingress to exit", limit, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        let took = started.elapsed();
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok((took, status))
    }

    /// Write (or replace, atomically) one manifest file `name.json`.
    pub fn write(&self, name: &str, v: &Value) -> Result<()> {
        let tmp = self.manifests.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)?;
        std::fs::rename(&tmp, self.manifests.join(format!("{name}.json")))?;
        Ok(())
    }

    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    pub fn metrics_addr(&self) -> String {
        format!("127.0.0.1:{}", self.metrics_port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET one of /metrics, /healthz, /readyz.
    pub fn admin(&self, path: &str) -> Result<crate::nginx::Response> {
        crate::nginx::http_get(&self.metrics_addr(), "localhost", path)
    }

    /// Wait until /readyz answers 200.
    pub fn wait_ready(&self) -> Result<()> {
        wait_until("berth-ingress /readyz", Duration::from_secs(30), || {
            self.admin("/readyz").is_ok_and(|r| r.status == 200)
        })
        .with_context(|| self.log_text())
    }

    /// The value of one metric line (`name{labels}` exactly as exposed).
    pub fn metric(&self, series: &str) -> Result<f64> {
        let text = self.admin("/metrics")?.body;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .with_context(|| format!("no series {series} in:\n{text}"))
    }

    /// Pid of the nginx master (from its pid file).
    pub fn nginx_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.prefix.join("nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for IngressCtl {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = wait_until("berth-ingress to exit", Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            let _ = child.kill();
            let _ = child.wait();
        }
        crate::sweep::directory(&self.dir);
    }
}

/// An HTTP/1.1 backend on 127.0.0.1 answering every request with `METHOD URI BODYLEN`;
/// a URI containing `/slow` waits 3 s first. Threads end with the process.
#[derive(Debug)]
pub struct EchoBackend {
    pub port: u16,
}

impl EchoBackend {
    pub fn start() -> Result<EchoBackend> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || _ = echo(stream));
            }
        });
        Ok(EchoBackend { port })
    }
}

/// The head of one HTTP/1.1 request a test server read: method, URI and headers (names
/// lowercased, values trimmed).
#[derive(Debug)]
pub struct RequestHead {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Reads the request line and the headers; `None` at the end of the connection.
    pub fn read(reader: &mut impl BufRead) -> std::io::Result<Option<RequestHead>> {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let mut parts = line.split_whitespace();
        let (method, uri) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        Ok(Some(RequestHead {
            method,
            uri,
            headers,
        }))
    }

    /// The value of header `name` (lowercase); the first one when it is repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn echo(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    while let Some(RequestHead {
        method,
        uri,
        headers,
    }) = RequestHead::read(&mut reader)?
    {
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        if uri.contains("/slow") {
            std::thread::sleep(Duration::from_secs(3));
        }
        let text = format!("{method} {uri} {len}");
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )?;
    }
    Ok(())
}

/// One request with a body; returns (status, body).
pub fn http_send(
    addr: &str,
    method: &str,
    host: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    // nginx may answer (413) before reading the body and close: ignore a failed write.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad response {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A throwaway certificate authority.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa")
    }
}

impl TestCa {
    pub fn new() -> Result<TestCa> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth test CA");
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// A leaf for `host` with the given serial: (cert PEM, key PEM).
    pub fn leaf(&self, host: &str, serial: u64) -> Result<(String, String)> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])?;
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// A `kubernetes.io/tls` Secret manifest (stringData, as a manifest file may carry it).
pub fn tls_secret(ns: &str, name: &str, crt: &str, key: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": name, "namespace": ns},
           "stringData": {"tls.crt": crt, "tls.key": key}})
}

/// A Service whose ClusterIP is 127.0.0.1 on `port` (so nginx reaches a local backend).
pub fn local_service(ns: &str, name: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"clusterIP": "127.0.0.1", "ports": [{"port": port}]}})
}

/// An Ingress of class `berth`: one host, one Prefix path to `service:port`, annotations,
/// and optionally TLS with `secret`.
pub fn ingress(
    ns: &str,
    name: &str,
    host: &str,
    path: &str,
    service: (&str, u16),
    annotations: &[(&str, &str)],
    tls_secret: Option<&str>,
) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut v = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "annotations": ann},
        "spec": {"ingressClassName": "berth", "rules": [{"host": host, "http": {"paths": [
            {"path": path, "pathType": "Prefix",
             "backend": {"service": {"name": service.0, "port": {"number": service.1}}}}]}}]}});
    if let Some(secret) = tls_secret {
        v["spec"]["tls"] = json!([{"hosts": [host], "secretName": secret}]);
    }
    v
}

/// `curl` with `--resolve host:port:127.0.0.1` and `--cacert`; returns (status, body).
pub fn curl_https(host: &str, port: u16, ca: &Path, path: &str) -> Result<(u16, String)> {
    let out = crate::proc::run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg("--resolve")
            .arg(format!("{host}:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(ca)
            .arg(format!("https://{host}:{port}{path}")),
    )?;
    let (body, code) = out.rsplit_once('\n').context("curl output")?;
    Ok((code.trim().parse()?, body.to_owned()))
}

/// The serial (uppercase hex, as openssl prints it) of the certificate served for `host`.
pub fn served_serial(host: &str, port: u16) -> Result<String> {
    let script = format!(
        "echo | openssl s_client -connect 127.0.0.1:{port} -servername {host} 2>/dev/null | openssl x509 -noout -serial"
    );
    let out = crate::proc::run(Command::new("sh").args(["-c", &script]))?;
    Ok(out.trim().trim_start_matches("serial=").to_owned())
}
