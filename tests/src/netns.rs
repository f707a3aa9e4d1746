//! A network namespace for test backends that the Kubernetes API accepts in EndpointSlices
//! (it refuses loopback): a veth pair, host side `10.254.N.1/24`, namespace side `10.254.N.2/24`
//! (N from this process's id), and HTTP backends bound to the namespace side. Traffic stays on
//! this machine. Drop deletes the namespace (and with it the veth pair); namespaces of dead
//! test processes are removed by [`NetNs::create`].

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command};

use anyhow::Result;

use crate::proc::{require, run, spawn_tied};

/// Name prefix of our namespaces: `berth-<pid>`.
const PREFIX: &str = "berth-";

/// A network namespace with a veth pair to the host.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
    /// The namespace side's address (where backends listen).
    pub addr: Ipv4Addr,
    /// The host side's address: not loopback, so also good for backends the test runs in its
    /// own process that must appear in an EndpointSlice.
    pub host_addr: Ipv4Addr,
    backends: Vec<Child>,
}

impl NetNs {
    /// Create this process's namespace (one per process).
    pub fn create() -> Result<NetNs> {
        require(&[("ip", "iproute2"), ("python3", "python3")])?;
        sweep_dead();
        let pid = std::process::id();
        let name = format!("{PREFIX}{pid}");
        let n = (pid % 250) as u8 + 1;
        let (host_if, ns_if) = (format!("bt{pid}h"), format!("bt{pid}n"));
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = NetNs {
            name: name.clone(),
            addr: Ipv4Addr::new(10, 254, n, 2),
            host_addr: Ipv4Addr::new(10, 254, n, 1),
            backends: Vec::new(),
        };
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_addr),
            "dev",
            &host_if,
        ])?;
        ip(&["link", "set", &host_if, "up"])?;
        let in_ns = |args: &[&str]| {
            run(Command::new("ip")
                .args(["netns", "exec", &name, "ip"])
                .args(args))
        };
        in_ns(&["addr", "add", &format!("{}/24", ns.addr), "dev", &ns_if])?;
        in_ns(&["link", "set", &ns_if, "up"])?;
        in_ns(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// An HTTP backend in the namespace on `port` whose every page says `body` (python3's
    /// http.server over a directory under `dir`, tied to this process).
    pub fn backend(&mut self, dir: &Path, port: u16, body: &str) -> Result<()> {
        let root = dir.join(format!("backend-{port}"));
        std::fs::create_dir_all(&root)?;
        std::fs::write(root.join("index.html"), body)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, "python3", "-m", "http.server"])
            .args(["--bind", &self.addr.to_string(), &port.to_string()])
            .arg("--directory")
            .arg(&root);
        let child = spawn_tied(&cmd, &dir.join(format!("backend-{port}.log")))?;
        self.backends.push(child);
        let url = format!("http://{}:{port}/", self.addr);
        crate::proc::wait_until("backend up", std::time::Duration::from_secs(20), || {
            run(Command::new("curl").args(["-sf", "--max-time", "1", &url])).is_ok()
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for mut c in self.backends.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Remove namespaces of test processes that are gone.
fn sweep_dead() {
    let Ok(list) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(Command::new("ip").args(["netns", "del", name]));
        }
    }
}
