//! Fixtures for the node tests and the node bench: a berth-csi process wired to a test
//! cluster, images made with the rbd CLI, CSI node requests shaped as kubelet sends them, and
//! the list of what a volume may leave on the host (mounts, loop devices, rbd-fuse).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_csi::csi::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use berth_csi::csi::{
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodeStageVolumeRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, VolumeCapability,
};
use berth_csi::volume_id::VolumeId;

use crate::ceph::Cluster;
use crate::csi_client::CsiClient;
use crate::driver::Driver;
use crate::sweep;

/// The clusterID the test driver's cluster config names.
pub const CLUSTER_ID: &str = "berth-test";

pub fn mount_cap(fs: &str, mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs.into(),
            ..Default::default()
        })),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

pub fn block_cap(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

/// A berth-csi (mode all) on a fresh socket/state dir, talking to `cluster`.
#[derive(Debug)]
pub struct NodeEnv<'a> {
    pub cluster: &'a Cluster,
    pub driver: Driver,
    pub csi: CsiClient,
}

impl<'a> NodeEnv<'a> {
    pub async fn start(cluster: &'a Cluster) -> Result<NodeEnv<'a>> {
        Self::start_with(cluster, &[]).await
    }

    /// [`Self::start`] with extra flags (e.g. `--node-id=…` for a second node on this host).
    pub async fn start_with(cluster: &'a Cluster, extra: &[&str]) -> Result<NodeEnv<'a>> {
        let driver = Driver::start(extra, Some(&cluster.csi_cluster_config(CLUSTER_ID))).await?;
        let csi = driver.client().await?;
        Ok(NodeEnv {
            cluster,
            driver,
            csi,
        })
    }

    /// Reconnect after a driver restart.
    pub async fn reconnect(&mut self) -> Result<()> {
        self.csi = self.driver.client().await?;
        Ok(())
    }

    /// Create image `name` of `size` (rbd CLI syntax: 256M, 1G) and return its volume id.
    pub fn image(&self, name: &str, size: &str) -> Result<String> {
        let c = self.cluster;
        c.rbd(&["create", "--size", size, &format!("{}/{name}", c.pool)])?;
        Ok(VolumeId::new(CLUSTER_ID, &c.pool, name)
            .encode()
            .expect("short test names encode"))
    }

    pub fn resize(&self, name: &str, size: &str) -> Result<()> {
        let c = self.cluster;
        c.rbd(&[
            "resize",
            "--no-progress",
            "--size",
            size,
            &format!("{}/{name}", c.pool),
        ])?;
        Ok(())
    }

    pub fn secrets(&self) -> HashMap<String, String> {
        HashMap::from([
            ("userID".to_string(), self.cluster.client_id.clone()),
            ("userKey".to_string(), self.cluster.client_key.clone()),
        ])
    }

    /// A staging directory (created, as kubelet does) inside the driver's directory, so the
    /// driver guard's sweep cleans it whatever happens.
    pub fn staging(&self, name: &str) -> PathBuf {
        let p = self.driver.dir.join("staging").join(name);
        let _ = std::fs::create_dir_all(&p);
        p
    }

    /// A pod target path (parent created, the target itself left to the driver).
    pub fn target(&self, name: &str) -> PathBuf {
        let p = self.driver.dir.join("pods").join(name).join("mount");
        let _ = std::fs::create_dir_all(p.parent().unwrap());
        p
    }

    pub fn stage_req(
        &self,
        id: &str,
        staging: &Path,
        cap: VolumeCapability,
    ) -> NodeStageVolumeRequest {
        NodeStageVolumeRequest {
            volume_id: id.into(),
            staging_target_path: staging.to_string_lossy().into(),
            volume_capability: Some(cap),
            secrets: self.secrets(),
            volume_context: HashMap::from([("mounter".to_string(), "fuse".to_string())]),
            ..Default::default()
        }
    }

    pub fn publish_req(
        &self,
        id: &str,
        staging: &Path,
        target: &Path,
        cap: VolumeCapability,
        readonly: bool,
    ) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: id.into(),
            staging_target_path: staging.to_string_lossy().into(),
            target_path: target.to_string_lossy().into(),
            volume_capability: Some(cap),
            readonly,
            volume_context: HashMap::from([("mounter".to_string(), "fuse".to_string())]),
            ..Default::default()
        }
    }

    pub async fn stage(&mut self, id: &str, staging: &Path, cap: VolumeCapability) -> Result<()> {
        let req = self.stage_req(id, staging, cap);
        self.csi.node.node_stage_volume(req).await?;
        Ok(())
    }

    /// Stage after this node's rbd-fuse for the image was killed: the dead client's watch
    /// lingers until the OSD times it out (30 s), and NodeStage of a single-node volume is
    /// refused meanwhile (FAILED_PRECONDITION saying so); retry until it is gone (≤ 45 s).
    pub async fn stage_after_crash(
        &mut self,
        id: &str,
        staging: &Path,
        cap: VolumeCapability,
    ) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
        loop {
            let req = self.stage_req(id, staging, cap.clone());
            match self.csi.node.node_stage_volume(req).await {
                Ok(_) => return Ok(()),
                Err(s)
                    if s.code() == tonic::Code::FailedPrecondition
                        && s.message().contains("30 s")
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(s) => return Err(s.into()),
            }
        }
    }

    pub async fn publish(
        &mut self,
        id: &str,
        staging: &Path,
        target: &Path,
        cap: VolumeCapability,
        readonly: bool,
    ) -> Result<()> {
        let req = self.publish_req(id, staging, target, cap, readonly);
        self.csi.node.node_publish_volume(req).await?;
        Ok(())
    }

    pub async fn unpublish(&mut self, id: &str, target: &Path) -> Result<()> {
        self.csi
            .node
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: id.into(),
                target_path: target.to_string_lossy().into(),
            })
            .await?;
        Ok(())
    }

    pub async fn unstage(&mut self, id: &str, staging: &Path) -> Result<()> {
        self.csi
            .node
            .node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: id.into(),
                staging_target_path: staging.to_string_lossy().into(),
            })
            .await?;
        Ok(())
    }

    pub async fn stats(&mut self, id: &str, path: &Path) -> Result<NodeGetVolumeStatsResponse> {
        Ok(self
            .csi
            .node
            .node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: id.into(),
                volume_path: path.to_string_lossy().into(),
                staging_target_path: String::new(),
            })
            .await?
            .into_inner())
    }

    /// Recovery runs in the background after a restart (a re-attach may wait ~30 s for the
    /// dead client's image lock): poll the volume condition at `path` until it is healthy.
    pub async fn wait_healthy(&mut self, id: &str, path: &Path) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let st = self.stats(id, path).await?;
            if st.volume_condition.is_some_and(|c| !c.abnormal) {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "not healthy after 90 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// SHA-256 of the whole image as Ceph stores it (`rbd export`, read by the test's client).
    pub fn image_sha(&self, image: &str) -> Result<String> {
        let file = self.driver.dir.join(format!("{image}.export"));
        let _ = std::fs::remove_file(&file);
        let c = self.cluster;
        let path = file.to_string_lossy().into_owned();
        c.rbd(&[
            "export",
            "--no-progress",
            &format!("{}/{image}", c.pool),
            &path,
        ])?;
        let out = crate::proc::run(std::process::Command::new("sha256sum").arg(&file))?;
        std::fs::remove_file(&file)?;
        Ok(out
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string())
    }

    /// Allocated extents of the image (`rbd diff`): "[]" for an image nothing wrote to.
    pub fn image_extents(&self, image: &str) -> Result<String> {
        let c = self.cluster;
        let out = c.rbd(&["diff", "--format", "json", &format!("{}/{image}", c.pool)])?;
        Ok(out.trim().to_string())
    }

    /// The image's metadata (`rbd image-meta list`) as a JSON object.
    pub fn image_meta(&self, image: &str) -> Result<serde_json::Value> {
        let c = self.cluster;
        let out = c.rbd(&[
            "image-meta",
            "list",
            "--format",
            "json",
            &format!("{}/{image}", c.pool),
        ])?;
        // Pacific prints nothing at all for an image without metadata.
        if out.trim().is_empty() {
            return Ok(serde_json::json!({}));
        }
        Ok(serde_json::from_str(&out)?)
    }

    /// The driver's stash of the volume staged at `staging`, as JSON.
    pub fn stash_json(&self, staging: &Path) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&std::fs::read(
            self.stash_file(staging)?,
        )?)?)
    }

    /// Rewrite the stash of `staging` so its device is `device` (what a renumbering does).
    pub fn point_stash_at(&self, staging: &Path, device: &str) -> Result<()> {
        let mut v = self.stash_json(staging)?;
        v["attached"]["device"] = serde_json::json!(device);
        std::fs::write(self.stash_file(staging)?, serde_json::to_vec_pretty(&v)?)?;
        Ok(())
    }

    fn stash_file(&self, staging: &Path) -> Result<PathBuf> {
        let store = berth_csi::node::stash::Store::new(&self.driver.state_dir)?;
        Ok(store.dir(staging).join("stash.json"))
    }

    /// What the driver left on the host: see [`leftovers_under`].
    pub fn leftovers(&self) -> Vec<String> {
        leftovers_under(&self.driver.dir)
    }
}

/// Mounts under `dir`, loop devices backed by files under it, and processes naming it
/// (rbd-fuse) — as readable lines; empty when clean.
pub fn leftovers_under(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = sweep::mounts()
        .into_iter()
        .filter(|m| m.target.starts_with(dir))
        .map(|m| format!("mount {} ({})", m.target.display(), m.fstype))
        .collect();
    out.extend(
        sweep::loop_devices()
            .into_iter()
            .filter(|(_, back)| back.starts_with(dir))
            .map(|(dev, back)| format!("loop {} -> {}", dev.display(), back.display())),
    );
    out.extend(sweep::processes_using(dir).into_iter().filter_map(|pid| {
        let cmd = berth_common::procs::title(pid);
        // The driver itself names its dir; only helpers it started count as leftovers.
        (!cmd.contains("berth-csi")).then(|| format!("process {pid}: {cmd}"))
    }));
    out
}

/// Pids of rbd-fuse processes serving something under `dir`.
pub fn rbd_fuse_pids(dir: &Path) -> Vec<i32> {
    sweep::processes_using(dir)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "rbd-fuse")
        })
        .collect()
}

/// One node test case: gets a fresh driver on the shared cluster.
pub type Case = for<'a> fn(
    &'a mut NodeEnv<'_>,
)
    -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + 'a>>;

/// The `main` of a node test binary (libtest-mimic): one cluster shared by the cases, a
/// fresh driver per case (its guard sweeps what a failing case leaves), the driver log on
/// failure (or always with `BERTH_NODE_LOG=1`), and a final check that nothing of this
/// process is left on the host (mounts, loop devices, rbd-fuse).
pub fn run_suite(cases: Vec<(&'static str, Case)>) -> ! {
    suite(cases, false)
}

/// [`run_suite`] one case at a time: for cases that crash helpers on purpose (a dead
/// rbd-fuse stalls I/O on its loop device until the kernel gives up, which can hold up loop
/// operations of a case running beside it).
pub fn run_suite_serial(cases: Vec<(&'static str, Case)>) -> ! {
    suite(cases, true)
}

fn suite(cases: Vec<(&'static str, Case)>, serial: bool) -> ! {
    use libtest_mimic::{Failed, Trial};
    crate::suite::run_with_cluster(serial, |cluster| {
        cases
            .into_iter()
            .map(|(name, f)| {
                let c = cluster.clone();
                Trial::test(name, move || {
                    run_case(&c, f).map_err(|e| Failed::from(format!("{e:#}")))
                })
            })
            .collect()
    })
}

fn run_case(cluster: &Cluster, f: Case) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut env = NodeEnv::start(cluster).await?;
        let result = f(&mut env).await;
        if result.is_err() || std::env::var_os("BERTH_NODE_LOG").is_some() {
            eprintln!("---- berth-csi log\n{}", env.driver.log_text());
        }
        result?;
        let left = env.leftovers();
        anyhow::ensure!(left.is_empty(), "left behind: {left:?}");
        Ok(())
    })
}

/// A named case for [`run_suite`] (gives the closure its `Case` type).
pub fn case(name: &'static str, f: Case) -> (&'static str, Case) {
    (name, f)
}
