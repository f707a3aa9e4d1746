//! A throwaway Ceph cluster for tests: 1 mon + 1 osd (memstore), cephx on, 127.0.0.1, in its
//! own directory with its own ports so two test binaries can run side by side.
//!
//! Settings that matter (learned the hard way, see DESIGN.md): pool size 1 with
//! `mon allow pool size one`, `osd crush chooseleaf type = 0` (one host), `paxos propose
//! interval = 0.1` (fast map updates), `mon data avail warn = 1`, and require-min-compat-client
//! mimic so clones are v2 (no snapshot protection needed). A restricted client with caps
//! `mon 'profile rbd'` / `osd 'profile rbd pool=<pool>'` is what the driver gets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::proc::{free_port, require, run, spawn_tied, wait_until};

/// Programs the cluster needs and the Debian packages that bring them.
pub const PROGRAMS: &[(&str, &str)] = &[
    ("ceph", "ceph-common"),
    ("rbd", "ceph-common"),
    ("rados", "ceph-common"),
    ("ceph-authtool", "ceph-common"),
    ("monmaptool", "ceph-common"),
    ("ceph-mon", "ceph-mon"),
    ("ceph-osd", "ceph-osd"),
    ("setpriv", "util-linux"),
];

/// Memstore capacity: RBD images are thin, so tests can make 10 GiB volumes freely; only
/// written bytes use memory.
const MEMSTORE_BYTES: u64 = 8 << 30;

/// The restricted client id handed to tests (and the driver).
pub const CLIENT_ID: &str = "csi";

/// How the daemons live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Children of this process, SIGKILLed when it dies; stopped in Drop (tests).
    Tied,
    /// Ordinary background daemons that outlive this process (`testenv up`).
    Detached,
}

/// A running cluster. Dropping a `Tied` cluster stops it and removes every trace.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub fsid: String,
    /// `127.0.0.1:<v1 port>` — what a CSI cluster config lists as monitors.
    pub mon_addr: String,
    /// The full mon host string, `[v2:127.0.0.1:P,v1:127.0.0.1:Q]`.
    pub mon_host: String,
    pub pool: String,
    pub client_id: String,
    pub client_key: String,
    pub admin_key: String,
    pub started_in: Duration,
    lifetime: Lifetime,
    children: Vec<Child>,
}

impl Cluster {
    /// Start a cluster tied to this process in a fresh state directory.
    pub fn start() -> Result<Cluster> {
        let dir = crate::new_state_dir("ceph")?;
        Cluster::start_in(dir, Lifetime::Tied)
    }

    /// Start a cluster in `dir` (wiped first).
    pub fn start_in(dir: PathBuf, lifetime: Lifetime) -> Result<Cluster> {
        require(PROGRAMS)?;
        let t0 = Instant::now();
        if dir.exists() {
            crate::sweep::directory(&dir);
        }
        for sub in ["run", "log", "crash", "mon.a", "osd.0"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let (v2, v1) = (free_port()?, free_port()?);
        let mon_host = format!("[v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]");
        let fsid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")?
            .trim()
            .to_string();
        let conf = dir.join("ceph.conf");
        std::fs::write(&conf, config_text(&dir, &fsid, &mon_host))?;
        let mut cluster = Cluster {
            dir,
            conf,
            fsid,
            mon_addr: format!("127.0.0.1:{v1}"),
            mon_host,
            pool: "rbd".into(),
            client_id: CLIENT_ID.into(),
            client_key: String::new(),
            admin_key: String::new(),
            started_in: Duration::ZERO,
            lifetime,
            children: Vec::new(),
        };
        // On any failure below, Drop (Tied) or the explicit stop (Detached) cleans up.
        let result = cluster.bootstrap();
        if let Err(e) = result {
            let logs = cluster.log_tails();
            cluster.stop();
            return Err(e.context(format!("ceph cluster start failed; daemon logs:\n{logs}")));
        }
        cluster.started_in = t0.elapsed();
        Ok(cluster)
    }

    fn bootstrap(&mut self) -> Result<()> {
        let d = self.dir.clone();
        let admin_keyring = d.join("ceph.client.admin.keyring");
        let mon_keyring = d.join("mon.keyring");
        run(Command::new("ceph-authtool")
            .arg("--create-keyring")
            .arg(&mon_keyring)
            .args(["--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]))?;
        run(Command::new("ceph-authtool")
            .arg("--create-keyring")
            .arg(&admin_keyring)
            .args(["--gen-key", "-n", "client.admin"])
            .args(["--cap", "mon", "allow *", "--cap", "osd", "allow *"])
            .args(["--cap", "mgr", "allow *", "--cap", "mds", "allow *"]))?;
        run(Command::new("ceph-authtool")
            .arg(&mon_keyring)
            .arg("--import-keyring")
            .arg(&admin_keyring))?;
        let monmap = d.join("monmap");
        run(Command::new("monmaptool")
            .args([
                "--create",
                "--fsid",
                &self.fsid,
                "--addv",
                "a",
                &self.mon_host,
            ])
            .arg(&monmap))?;
        run(Command::new("ceph-mon")
            .arg("-c")
            .arg(&self.conf)
            .args(["--mkfs", "-i", "a", "--monmap"])
            .arg(&monmap)
            .arg("--keyring")
            .arg(&mon_keyring))?;
        self.daemon("ceph-mon", &["-i", "a"])?;
        wait_until("mon quorum", Duration::from_secs(30), || {
            self.ceph(&["mon", "stat"]).is_ok()
        })?;

        let osd_uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")?
            .trim()
            .to_string();
        let secret = run(Command::new("ceph-authtool").arg("--gen-print-key"))?
            .trim()
            .to_string();
        let secret_file = d.join("osd.0.secret.json");
        write_private(&secret_file, &format!("{{\"cephx_secret\": \"{secret}\"}}"))?;
        let id = self.ceph(&["osd", "new", &osd_uuid, "-i", secret_file.to_str().unwrap()])?;
        std::fs::remove_file(&secret_file)?;
        if id.trim() != "0" {
            bail!("expected osd id 0, got {id:?}");
        }
        let osd_keyring = d.join("osd.0/keyring");
        run(Command::new("ceph-authtool")
            .arg("--create-keyring")
            .arg(&osd_keyring)
            .args(["--name", "osd.0", "--add-key", &secret]))?;
        run(Command::new("ceph-osd").arg("-c").arg(&self.conf).args([
            "-i",
            "0",
            "--mkfs",
            "--osd-uuid",
            &osd_uuid,
        ]))?;
        self.daemon("ceph-osd", &["-i", "0"])?;
        wait_until("osd.0 up", Duration::from_secs(60), || {
            self.ceph(&["osd", "stat", "-f", "json"])
                .map(|s| s.contains("\"num_up_osds\":1"))
                .unwrap_or(false)
        })?;

        self.ceph(&["osd", "pool", "create", &self.pool, "8", "8"])?;
        run(Command::new("rbd")
            .arg("-c")
            .arg(&self.conf)
            .args(["pool", "init", &self.pool]))?;
        self.ceph(&["osd", "set-require-min-compat-client", "mimic"])?;
        let client_keyring = d.join(format!("ceph.client.{}.keyring", self.client_id));
        let osd_cap = format!("profile rbd pool={}", self.pool);
        self.ceph(&[
            "auth",
            "get-or-create",
            &format!("client.{}", self.client_id),
            "mon",
            "profile rbd",
            "osd",
            &osd_cap,
            "mgr",
            &osd_cap,
            "-o",
            client_keyring.to_str().unwrap(),
        ])?;
        self.client_key = print_key(&client_keyring, &format!("client.{}", self.client_id))?;
        self.admin_key = print_key(&admin_keyring, "client.admin")?;
        Ok(())
    }

    fn daemon(&mut self, program: &str, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new(program);
        cmd.arg("-c").arg(&self.conf).args(args);
        match self.lifetime {
            Lifetime::Tied => {
                cmd.arg("-f");
                let log = self.dir.join(format!("log/{program}.stderr"));
                self.children.push(spawn_tied(&cmd, &log)?);
            }
            Lifetime::Detached => {
                run(&mut cmd)?;
            }
        }
        Ok(())
    }

    /// Run the `ceph` CLI as client.admin against this cluster (bounded time).
    pub fn ceph(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ceph")
            .arg("-c")
            .arg(&self.conf)
            .args(["--connect-timeout", "20"])
            .args(args))
    }

    /// Run the `rbd` CLI as the restricted client (its keyring sits beside the conf).
    pub fn rbd(&self, args: &[&str]) -> Result<String> {
        run(Command::new("rbd")
            .arg("-c")
            .arg(&self.conf)
            .args(["--id", &self.client_id])
            .args(args))
    }

    /// Run the `rados` CLI as client.admin.
    pub fn rados(&self, args: &[&str]) -> Result<String> {
        run(Command::new("rados").arg("-c").arg(&self.conf).args(args))
    }

    /// Image names in the pool.
    pub fn images(&self) -> Result<Vec<String>> {
        let out = self.rbd(&["ls", "--format", "json", &self.pool])?;
        serde_json::from_str(&out).context("rbd ls json")
    }

    /// What berth-csi left in the pool: images, RBD trash entries and keys of its idempotency
    /// journal (`csi.volumes.berth`, `csi.snapshots.berth`, `csi.groups.berth`) and RBD groups.
    /// Empty after every volume and (group) snapshot was deleted.
    pub fn pool_leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self.images().unwrap_or_else(|e| vec![format!("{e:#}")]);
        match self.rbd(&["trash", "ls", &self.pool]) {
            Ok(s) => left.extend(s.lines().map(|l| format!("trash: {l}"))),
            Err(e) => left.push(format!("{e:#}")),
        }
        if let Ok(s) = self.rbd(&["group", "ls", &self.pool]) {
            left.extend(s.lines().map(|l| format!("group: {l}")));
        }
        for obj in [
            "csi.volumes.berth",
            "csi.snapshots.berth",
            "csi.groups.berth",
        ] {
            // A journal object that does not exist (yet) holds nothing.
            if let Ok(s) = self.rados(&["-p", &self.pool, "listomapkeys", obj]) {
                left.extend(s.lines().map(|l| format!("{obj}: {l}")));
            }
        }
        left
    }

    /// The cluster-config JSON berth-csi reads (`--cluster-config`), keyed by `cluster_id`.
    pub fn csi_cluster_config(&self, cluster_id: &str) -> String {
        serde_json::json!([{ "clusterID": cluster_id, "monitors": [self.mon_addr] }]).to_string()
    }

    /// Stop a daemon by name (e.g. to test a dead cluster); `resume` starts it again.
    pub fn pause_daemons(&mut self) -> Result<()> {
        self.signal(0.., nix::sys::signal::Signal::SIGSTOP)
    }

    pub fn resume_daemons(&mut self) -> Result<()> {
        self.signal(0.., nix::sys::signal::Signal::SIGCONT)
    }

    /// SIGSTOP the OSD only (the monitor keeps answering, so clients still connect and
    /// every object operation stalls): a Ceph call that is slow, not a dead cluster.
    pub fn pause_osd(&mut self) -> Result<()> {
        self.signal(1..2, nix::sys::signal::Signal::SIGSTOP)
    }

    pub fn resume_osd(&mut self) -> Result<()> {
        self.signal(1..2, nix::sys::signal::Signal::SIGCONT)
    }

    /// Signal the tied daemons in `which` (0 = mon, 1 = osd, in start order).
    fn signal(
        &self,
        which: impl std::ops::RangeBounds<usize>,
        sig: nix::sys::signal::Signal,
    ) -> Result<()> {
        for (i, child) in self.children.iter().enumerate() {
            if which.contains(&i) {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig)?;
            }
        }
        Ok(())
    }

    /// The last lines of every daemon log (for failure messages).
    pub fn log_tails(&self) -> String {
        let mut s = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("log")) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let lines: Vec<_> = text.lines().rev().take(10).collect();
                let _ = writeln!(s, "---- {}", e.path().display());
                for l in lines.into_iter().rev() {
                    let _ = writeln!(s, "{l}");
                }
            }
        }
        s
    }

    /// Stop the daemons and remove every trace (mounts, loops, processes, files).
    pub fn stop(&mut self) {
        crate::sweep::directory(&self.dir);
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.lifetime == Lifetime::Tied {
            self.stop();
        }
    }
}

fn print_key(keyring: &Path, name: &str) -> Result<String> {
    Ok(run(Command::new("ceph-authtool")
        .arg("-p")
        .args(["-n", name])
        .arg(keyring))?
    .trim()
    .to_string())
}

/// Write a file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn config_text(d: &Path, fsid: &str, mon_host: &str) -> String {
    let d = d.display();
    format!(
        "[global]
fsid = {fsid}
mon host = {mon_host}
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = {d}/ceph.$name.keyring
run dir = {d}/run
crash dir = {d}/crash
admin socket = {d}/run/$name.asok
client mount timeout = 30
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1
mon cluster log file = {d}/log/$cluster.$channel.log

[client]
log file = {d}/log/$name.log
admin socket =

[mon]
mon data = {d}/$name
keyring = {d}/$name/keyring
log file = {d}/log/$name.log
pid file = {d}/run/$name.pid

[osd]
osd data = {d}/$name
keyring = {d}/$name/keyring
log file = {d}/log/$name.log
pid file = {d}/run/$name.pid
osd crush initial weight = 1
osd objectstore = memstore
memstore device bytes = {MEMSTORE_BYTES}
"
    )
}
