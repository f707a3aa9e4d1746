//! A real Kubernetes control plane for tests: etcd (Debian's etcd-server) + kube-apiserver +
//! kube-controller-manager (built by tests/scripts/build-k8s-tools.sh) on 127.0.0.1, each on
//! its own free ports, in its own state dir, with a fresh PKI, RBAC on and an admin kubeconfig.
//! No kubelet, scheduler or container runtime: pods never run.
//!
//! [`ControlPlane::start`] ties the daemons to the test process (SIGKILL if it dies) and Drop
//! removes everything; [`Lifetime::Detached`] is for `testenv k8s up`. Several test binaries
//! each run their own side by side.

pub mod pki;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use crate::ceph::Lifetime;
use crate::ceph::write_private;
use crate::proc::{free_port, require, run_with_timeout, spawn_tied, wait_until};

/// Readiness budget: a built control plane is ready in a few seconds; CI machines are shared.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The Service range the API server allocates ClusterIPs from (never routed: no kube-proxy).
const SERVICE_CIDR: &str = "10.96.0.0/24";

/// A running control plane. Drop (when tied) stops it and removes its dir.
pub struct ControlPlane {
    pub dir: PathBuf,
    /// `https://127.0.0.1:<port>`
    pub server: String,
    /// A kubeconfig of the admin (system:masters).
    pub kubeconfig: PathBuf,
    pub pki: pki::Pki,
    pub started_in: Duration,
    lifetime: Lifetime,
    children: Vec<Child>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("dir", &self.dir)
            .field("server", &self.server)
            .finish()
    }
}

impl ControlPlane {
    /// A control plane tied to this process, in a fresh state dir.
    pub fn start() -> Result<ControlPlane> {
        let dir = crate::new_state_dir("k8s")?;
        ControlPlane::start_in(dir, Lifetime::Tied)
    }

    /// Start in `dir` (created); Detached daemons outlive this process (`testenv k8s up`).
    pub fn start_in(dir: PathBuf, lifetime: Lifetime) -> Result<ControlPlane> {
        require(&[("etcd", "etcd-server"), ("setpriv", "util-linux")])?;
        let apiserver = crate::tools::path("kube-apiserver")?;
        let kcm = crate::tools::path("kube-controller-manager")?;
        crate::tools::path("kubectl")?;
        let t0 = Instant::now();
        std::fs::create_dir_all(dir.join("log"))?;
        let pki = pki::write(&dir)?;
        let port = free_port()?;
        let mut cp = ControlPlane {
            server: format!("https://127.0.0.1:{port}"),
            kubeconfig: dir.join("admin.kubeconfig"),
            dir,
            pki,
            started_in: Duration::ZERO,
            lifetime,
            children: Vec::new(),
        };
        let r = cp.boot(port, &apiserver, &kcm);
        if let Err(e) = r {
            let tails = cp.log_tails();
            cp.stop();
            return Err(e.context(tails));
        }
        cp.started_in = t0.elapsed();
        Ok(cp)
    }

    fn boot(&mut self, port: u16, apiserver: &Path, kcm: &Path) -> Result<()> {
        let d = self.dir.clone();
        let (etcd_port, peer_port) = (free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Command::new("etcd");
        etcd.arg("--name=berth-test")
            .arg(format!("--data-dir={}", d.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=berth-test={peer_url}"))
            .arg("--log-level=warn");
        self.daemon("etcd", etcd)?;

        write_kubeconfig(
            &self.kubeconfig,
            &self.server,
            &self.pki.ca_crt,
            &format!(
                "client-certificate: {}\n    client-key: {}",
                self.pki.admin_crt.display(),
                self.pki.admin_key.display()
            ),
        )?;

        let p = self.pki.clone();
        let mut api = Command::new(apiserver);
        api.arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!(
                "--cert-dir={}",
                d.join("apiserver-certs").display()
            ))
            .arg(format!("--tls-cert-file={}", p.server_crt.display()))
            .arg(format!("--tls-private-key-file={}", p.server_key.display()))
            .arg(format!("--client-ca-file={}", p.ca_crt.display()))
            .arg("--authorization-mode=RBAC")
            // CSI node plugins are privileged pods (deploy/csi's DaemonSet), as clusters allow.
            .arg("--allow-privileged=true")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!("--service-account-key-file={}", p.sa_pub.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p.sa_key.display()
            ))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            // The apiserver advertises 127.0.0.1, which an Endpoints object may not hold.
            .arg("--endpoint-reconciler-type=none")
            .arg("--profiling=false")
            .arg("--v=1");
        self.daemon("kube-apiserver", api)?;
        wait_until("kube-apiserver /readyz", READY_TIMEOUT, || {
            self.kubectl(&["get", "--raw=/readyz"])
                .is_ok_and(|s| s.trim() == "ok")
        })?;

        let mut cm = Command::new(kcm);
        cm.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                self.kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                self.kubeconfig.display()
            ))
            .arg("--bind-address=127.0.0.1")
            .arg("--secure-port=0")
            .arg("--leader-elect=false")
            .arg(format!("--root-ca-file={}", p.ca_crt.display()))
            .arg(format!(
                "--service-account-private-key-file={}",
                p.sa_key.display()
            ))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg("--use-service-account-credentials=false")
            .arg("--v=1");
        self.daemon("kube-controller-manager", cm)?;
        // The controller manager is up once it made the default namespace's ServiceAccount.
        wait_until("the default ServiceAccount", READY_TIMEOUT, || {
            self.kubectl(&["get", "serviceaccount", "default", "-o", "name"])
                .is_ok()
        })?;
        Ok(())
    }

    fn daemon(&mut self, name: &str, cmd: Command) -> Result<()> {
        let log = self.dir.join(format!("log/{name}.log"));
        match self.lifetime {
            Lifetime::Tied => self.children.push(spawn_tied(&cmd, &log)?),
            Lifetime::Detached => {
                use std::os::unix::process::CommandExt;
                let file = std::fs::File::create(&log)?;
                let mut cmd = cmd;
                cmd.process_group(0)
                    .stdin(Stdio::null())
                    .stdout(file.try_clone()?)
                    .stderr(file);
                cmd.spawn().with_context(|| format!("spawn {name}"))?;
            }
        }
        Ok(())
    }

    /// Run kubectl as the admin; returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_as(&self.kubeconfig, args)
    }

    /// Run kubectl with another kubeconfig (a ServiceAccount's).
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Result<String> {
        let kubectl = crate::tools::path("kubectl")?;
        run_with_timeout(
            Command::new(kubectl)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(args),
            Duration::from_secs(60),
        )
    }

    /// Apply a manifest (YAML or JSON text) as the admin, server-side.
    pub fn apply(&self, manifest: &str) -> Result<String> {
        let f = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile_in(&self.dir)?;
        std::fs::write(f.path(), manifest)?;
        self.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &f.path().to_string_lossy(),
        ])
    }

    /// A kubeconfig for ServiceAccount `ns/name`, holding a fresh token (`kubectl create token`)
    /// in a 0600 file next to it (never in an argv or a log).
    pub fn service_account_kubeconfig(&self, ns: &str, name: &str) -> Result<PathBuf> {
        self.service_account_kubeconfig_via(ns, name, &self.server)
    }

    /// As [`Self::service_account_kubeconfig`], reaching the API at `server` (e.g. a proxy).
    pub fn service_account_kubeconfig_via(
        &self,
        ns: &str,
        name: &str,
        server: &str,
    ) -> Result<PathBuf> {
        let token = self.kubectl(&["create", "token", "-n", ns, name, "--duration=2h"])?;
        let port = server.rsplit(':').next().unwrap_or_default();
        let token_file = self.dir.join(format!("sa-{ns}-{name}-{port}.token"));
        write_private(&token_file, token.trim())?;
        let path = self.dir.join(format!("sa-{ns}-{name}-{port}.kubeconfig"));
        write_kubeconfig(
            &path,
            server,
            &self.pki.ca_crt,
            &format!("tokenFile: {}", token_file.display()),
        )?;
        Ok(path)
    }

    /// The last lines of each daemon's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut s = String::new();
        for name in ["etcd", "kube-apiserver", "kube-controller-manager"] {
            let path = self.dir.join(format!("log/{name}.log"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(15)..];
                s.push_str(&format!("--- {name}:\n{}\n", tail.join("\n")));
            }
        }
        s
    }

    /// Stop the daemons and remove the dir.
    pub fn stop(&mut self) {
        crate::sweep::directory(&self.dir);
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.lifetime == Lifetime::Tied {
            self.stop();
        }
    }
}

/// A one-context kubeconfig; `user` is the indented body of the user entry.
fn write_kubeconfig(path: &Path, server: &str, ca: &Path, user: &str) -> Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: berth-test\n  cluster:\n    \
         server: {server}\n    certificate-authority: {ca}\nusers:\n- name: user\n  user:\n    \
         {user}\ncontexts:\n- name: berth-test\n  context:\n    cluster: berth-test\n    \
         user: user\ncurrent-context: berth-test\n",
        ca = ca.display()
    );
    write_private(path, &text)
}

/// Wait until `kubectl get <what> -o jsonpath=<path>` prints `want` (admin).
pub fn wait_for(cp: &ControlPlane, what: &[&str], jsonpath: &str, want: &str) -> Result<()> {
    let jp = format!("-o=jsonpath={jsonpath}");
    let mut args: Vec<&str> = vec!["get"];
    args.extend_from_slice(what);
    args.push(&jp);
    let mut last = String::new();
    let r = wait_until(
        &format!("{what:?} {jsonpath} = {want}"),
        READY_TIMEOUT,
        || match cp.kubectl(&args) {
            Ok(s) => {
                last = s;
                last.trim() == want
            }
            Err(e) => {
                last = format!("{e:#}");
                false
            }
        },
    );
    if r.is_err() {
        bail!("{what:?} {jsonpath}: wanted {want:?}, last saw {last:?}");
    }
    Ok(())
}
