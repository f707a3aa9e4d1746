//! Start the real berth-csi binary on a socket in a private directory and wait until it
//! answers Probe. Stop (SIGTERM), kill (SIGKILL) and restart it to test recovery.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::csi_client::CsiClient;
use crate::proc::spawn_tied;

/// The berth-csi binary: $BERTH_CSI_BIN, or next to this test executable's target dir.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_CSI_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("exe dir")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("berth-csi");
    if !bin.is_file() {
        bail!(
            "{} not found: build it first (`cargo build -p berth-csi`) or set BERTH_CSI_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running berth-csi process; Drop stops it and removes its directory.
#[derive(Debug)]
pub struct Driver {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    /// Extra environment for the process (applied from the next start or restart).
    envs: Vec<(String, String)>,
    child: Option<Child>,
}

impl Driver {
    /// Start `berth-csi --mode all` with `extra` flags; the socket, state dir and log are in a
    /// fresh state directory. `cluster_config` (JSON) is written there when given.
    pub async fn start(extra: &[&str], cluster_config: Option<&str>) -> Result<Driver> {
        Driver::start_with_env(extra, cluster_config, &[]).await
    }

    /// As [`Driver::start`], with extra environment (e.g. `KUBECONFIG`) from the first start.
    pub async fn start_with_env(
        extra: &[&str],
        cluster_config: Option<&str>,
        envs: &[(&str, &str)],
    ) -> Result<Driver> {
        let dir = crate::new_state_dir("csi")?;
        let socket = dir.join("csi.sock");
        let state_dir = dir.join("state");
        let mut args = vec![
            format!("--endpoint=unix://{}", socket.display()),
            format!("--state-dir={}", state_dir.display()),
        ];
        if !extra.iter().any(|a| a.starts_with("--node-id")) {
            args.push("--node-id=berth-test-node".to_string());
        }
        if let Some(cfg) = cluster_config {
            let path = dir.join("cluster-config.json");
            std::fs::write(&path, cfg)?;
            args.push(format!("--cluster-config={}", path.display()));
        }
        if !extra.iter().any(|a| a.starts_with("--mode")) {
            args.push("--mode=all".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut d = Driver {
            log: dir.join("berth-csi.log"),
            dir,
            socket,
            state_dir,
            args,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        d.spawn().await?;
        Ok(d)
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new(binary()?);
        cmd.args(&self.args).env("RUST_LOG", "info,berth_csi=debug");
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        self.child = Some(spawn_tied(&cmd, &self.log)?);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("berth-csi exited early ({status}):\n{}", self.log_text());
            }
            if let Ok(mut c) = CsiClient::connect(&self.socket).await
                && let Ok(r) = c.identity.probe(berth_csi::csi::ProbeRequest {}).await
                && r.into_inner().ready != Some(false)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("berth-csi not ready after 20 s:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn client(&self) -> Result<CsiClient> {
        CsiClient::connect(&self.socket).await
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to 10 s for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(true);
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st.success());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Set an environment variable for the process from its next (re)start on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.to_string(), value.to_string()));
    }

    /// Start the process again with the same flags and directory.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn().await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.terminate();
        crate::sweep::directory(&self.dir);
    }
}
