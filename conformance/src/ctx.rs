//! The per-case context: clients, config, capabilities, unique names, directories and the
//! cleanup registry. Everything a case creates through these helpers is undone when the case
//! ends, passed or failed (unpublish, unstage, delete snapshots, delete volumes, remove dirs),
//! in reverse order of creation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use berth_csi::csi::{
    self, CapacityRange, CreateSnapshotRequest, CreateVolumeRequest, DeleteSnapshotRequest,
    DeleteVolumeRequest, NodePublishVolumeRequest, NodeStageVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, Snapshot, Volume, VolumeCapability,
    volume_capability,
};

use super::caps::{Capabilities, CtrlCap, NodeCap};
use super::check::ok;
use super::config::{AccessType, Config, SecretFor};
use crate::csi_client::CsiClient;

/// Something a case created that must be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Volume(String),
    Snapshot(String),
    Staged { volume_id: String, path: PathBuf },
    Published { volume_id: String, target: PathBuf },
    Dir(PathBuf),
}

/// Shared by every case of a run.
#[derive(Debug)]
pub struct RunShared {
    pub config: Config,
    pub caps: Capabilities,
    /// Random per run: names of volumes and snapshots never collide with other runs.
    pub run_id: String,
    counter: AtomicUsize,
}

impl RunShared {
    pub fn new(config: Config, caps: Capabilities) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let run_id = format!("{:08x}", h.finish() as u32);
        RunShared {
            config,
            caps,
            run_id,
            counter: AtomicUsize::new(0),
        }
    }
}

/// What a case gets. Cheap to clone; clones share the cleanup registry.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub run: Arc<RunShared>,
    /// Identity + Controller.
    pub ctl: CsiClient,
    /// Identity + Node.
    pub nod: CsiClient,
    cleanup: Arc<Mutex<Vec<Resource>>>,
}

impl Ctx {
    pub fn new(run: Arc<RunShared>, ctl: CsiClient, nod: CsiClient) -> Self {
        Ctx {
            run,
            ctl,
            nod,
            cleanup: Arc::default(),
        }
    }

    pub fn cfg(&self) -> &Config {
        &self.run.config
    }

    pub fn caps(&self) -> &Capabilities {
        &self.run.caps
    }

    pub fn secrets(&self, rpc: SecretFor) -> HashMap<String, String> {
        self.cfg().secrets.get(rpc)
    }

    pub fn size(&self) -> i64 {
        self.cfg().volume_size
    }

    /// A name no other case or run uses: `conformance-<run>-<n>-<tag>`.
    pub fn name(&self, tag: &str) -> String {
        let n = self.run.counter.fetch_add(1, Ordering::Relaxed);
        format!("conformance-{}-{n}-{tag}", self.run.run_id)
    }

    /// The configured access type with SINGLE_NODE_WRITER.
    pub fn capability(&self) -> VolumeCapability {
        self.capability_with(volume_capability::access_mode::Mode::SingleNodeWriter)
    }

    pub fn capability_with(&self, mode: volume_capability::access_mode::Mode) -> VolumeCapability {
        use volume_capability::{AccessMode, AccessType as At, BlockVolume, MountVolume};
        let access_type = match self.cfg().access_type {
            AccessType::Mount => At::Mount(MountVolume {
                fs_type: self.cfg().fs_type.clone(),
                ..Default::default()
            }),
            AccessType::Block => At::Block(BlockVolume {}),
        };
        VolumeCapability {
            access_type: Some(access_type),
            access_mode: Some(AccessMode { mode: mode as i32 }),
        }
    }

    /// A complete CreateVolume request for `name` at the test size.
    pub fn create_request(&self, name: &str) -> CreateVolumeRequest {
        CreateVolumeRequest {
            name: name.to_string(),
            capacity_range: Some(CapacityRange {
                required_bytes: self.size(),
                limit_bytes: 0,
            }),
            volume_capabilities: vec![self.capability()],
            parameters: self.cfg().parameters.clone(),
            secrets: self.secrets(SecretFor::CreateVolume),
            ..Default::default()
        }
    }

    /// Register `r` for cleanup at the end of the case.
    pub fn track(&self, r: Resource) {
        let mut list = self.cleanup.lock().unwrap_or_else(|e| e.into_inner());
        if !list.contains(&r) {
            list.push(r);
        }
    }

    /// Send `req` and track the volume it returns; checks the response has an id.
    pub async fn create_volume_with(&self, req: CreateVolumeRequest) -> Result<Volume> {
        let r = self.ctl.controller.clone().create_volume(req).await;
        let vol = ok(r, "CreateVolume")?
            .volume
            .context("CreateVolumeResponse.volume is unset")?;
        ensure!(
            !vol.volume_id.is_empty(),
            "CreateVolume returned an empty volume_id"
        );
        self.track(Resource::Volume(vol.volume_id.clone()));
        Ok(vol)
    }

    pub async fn create_volume(&self, tag: &str) -> Result<Volume> {
        let name = self.name(tag);
        self.create_volume_with(self.create_request(&name)).await
    }

    pub async fn create_snapshot(&self, tag: &str, source: &str) -> Result<Snapshot> {
        let req = CreateSnapshotRequest {
            name: self.name(tag),
            source_volume_id: source.to_string(),
            secrets: self.secrets(SecretFor::CreateSnapshot),
            ..Default::default()
        };
        let snap = ok(
            self.ctl.controller.clone().create_snapshot(req).await,
            "CreateSnapshot",
        )?
        .snapshot
        .context("CreateSnapshotResponse.snapshot is unset")?;
        ensure!(
            !snap.snapshot_id.is_empty(),
            "CreateSnapshot returned an empty snapshot_id"
        );
        self.track(Resource::Snapshot(snap.snapshot_id.clone()));
        Ok(snap)
    }

    /// A fresh, existing staging directory (the CO creates it: spec NodeStageVolume).
    pub fn staging_dir(&self) -> Result<PathBuf> {
        let n = self.run.counter.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .cfg()
            .staging_dir
            .join(format!("{}-{n}", self.run.run_id));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        self.track(Resource::Dir(dir.clone()));
        Ok(dir)
    }

    /// A target path whose parent exists and which itself does not (the SP creates it:
    /// spec NodePublishVolume).
    pub fn target_path(&self) -> Result<PathBuf> {
        let n = self.run.counter.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .cfg()
            .mount_dir
            .join(format!("{}-{n}", self.run.run_id));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        self.track(Resource::Dir(dir.clone()));
        Ok(dir.join("target"))
    }

    pub fn stage_request(&self, vol: &Volume, path: &Path) -> NodeStageVolumeRequest {
        NodeStageVolumeRequest {
            volume_id: vol.volume_id.clone(),
            staging_target_path: path.display().to_string(),
            volume_capability: Some(self.capability()),
            secrets: self.secrets(SecretFor::NodeStage),
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        }
    }

    pub fn publish_request(
        &self,
        vol: &Volume,
        staging: Option<&Path>,
        target: &Path,
        readonly: bool,
    ) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            staging_target_path: staging.map(|p| p.display().to_string()).unwrap_or_default(),
            target_path: target.display().to_string(),
            volume_capability: Some(self.capability()),
            readonly,
            secrets: self.secrets(SecretFor::NodePublish),
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        }
    }

    pub fn stages(&self) -> bool {
        self.caps().has_node(NodeCap::StageUnstageVolume)
    }

    /// NodeStageVolume when the node stages (returns the staging path, tracked), else None.
    pub async fn stage(&self, vol: &Volume) -> Result<Option<PathBuf>> {
        if !self.stages() {
            return Ok(None);
        }
        let path = self.staging_dir()?;
        self.track(Resource::Staged {
            volume_id: vol.volume_id.clone(),
            path: path.clone(),
        });
        let r = self
            .nod
            .node
            .clone()
            .node_stage_volume(self.stage_request(vol, &path))
            .await;
        ok(r, "NodeStageVolume")?;
        Ok(Some(path))
    }

    /// NodePublishVolume at a fresh target path (tracked).
    pub async fn publish(&self, vol: &Volume, staging: Option<&Path>, ro: bool) -> Result<PathBuf> {
        let target = self.target_path()?;
        self.track(Resource::Published {
            volume_id: vol.volume_id.clone(),
            target: target.clone(),
        });
        let req = self.publish_request(vol, staging, &target, ro);
        ok(
            self.nod.node.clone().node_publish_volume(req).await,
            "NodePublishVolume",
        )?;
        Ok(target)
    }

    /// Undo everything tracked, newest first. Returns what could not be undone.
    pub async fn run_cleanup(&self) -> Vec<String> {
        let list: Vec<Resource> =
            std::mem::take(&mut *self.cleanup.lock().unwrap_or_else(|e| e.into_inner()));
        let mut problems = Vec::new();
        // Order matters more than creation order: unpublish, unstage, snapshots, volumes, dirs.
        let rank = |r: &Resource| match r {
            Resource::Published { .. } => 0,
            Resource::Staged { .. } => 1,
            Resource::Snapshot(_) => 2,
            Resource::Volume(_) => 3,
            Resource::Dir(_) => 4,
        };
        let mut ordered: Vec<Resource> = list.into_iter().rev().collect();
        ordered.sort_by_key(rank);
        for r in ordered {
            if let Err(e) = self.undo(&r).await {
                problems.push(format!("{r:?}: {e:#}"));
            }
        }
        problems
    }

    async fn undo(&self, r: &Resource) -> Result<()> {
        let (mut ctl, mut nod) = (self.ctl.controller.clone(), self.nod.node.clone());
        match r {
            Resource::Published { volume_id, target } => {
                let req = NodeUnpublishVolumeRequest {
                    volume_id: volume_id.clone(),
                    target_path: target.display().to_string(),
                };
                ok(nod.node_unpublish_volume(req).await, "NodeUnpublishVolume")?;
            }
            Resource::Staged { volume_id, path } => {
                let req = NodeUnstageVolumeRequest {
                    volume_id: volume_id.clone(),
                    staging_target_path: path.display().to_string(),
                };
                ok(nod.node_unstage_volume(req).await, "NodeUnstageVolume")?;
            }
            Resource::Snapshot(id) if self.caps().has_ctrl(CtrlCap::CreateDeleteSnapshot) => {
                let req = DeleteSnapshotRequest {
                    snapshot_id: id.clone(),
                    secrets: self.secrets(SecretFor::DeleteSnapshot),
                };
                ok(ctl.delete_snapshot(req).await, "DeleteSnapshot")?;
            }
            Resource::Volume(id) if self.caps().has_ctrl(CtrlCap::CreateDeleteVolume) => {
                let req = DeleteVolumeRequest {
                    volume_id: id.clone(),
                    secrets: self.secrets(SecretFor::DeleteVolume),
                };
                // A CO retries a DeleteVolume refused as still in use: after NodeUnstage a
                // node's storage client may take a moment to let go of the volume. Said on
                // stderr each time, so a driver that is slow to let go is seen.
                let started = std::time::Instant::now();
                loop {
                    match ctl.delete_volume(req.clone()).await {
                        Err(s)
                            if s.code() == tonic::Code::FailedPrecondition
                                && started.elapsed() < IN_USE_RETRY =>
                        {
                            eprintln!(
                                "conformance: DeleteVolume {id} after {:?}: {} (retrying)",
                                started.elapsed(),
                                s.message()
                            );
                            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                        }
                        r => break ok(r, "DeleteVolume").map(drop)?,
                    }
                }
            }
            Resource::Snapshot(_) | Resource::Volume(_) => {}
            Resource::Dir(dir) => remove_dir(dir)?,
        }
        Ok(())
    }
}

/// How long cleanup retries a DeleteVolume refused with FAILED_PRECONDITION (in use).
const IN_USE_RETRY: std::time::Duration = std::time::Duration::from_secs(45);

/// Remove a directory the suite created; a mount or a file left inside is the driver's leak.
fn remove_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        // Target paths are created by the SP and must be gone after unpublish; report them.
        let mounted = crate::mounts().iter().any(|m| m.target == p);
        ensure!(!mounted, "{} is still mounted", p.display());
        if p.is_dir() {
            std::fs::remove_dir(&p).with_context(|| format!("{} not empty", p.display()))?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    let mounted = crate::mounts().iter().any(|m| m.target == dir);
    ensure!(!mounted, "{} is still mounted", dir.display());
    std::fs::remove_dir(dir).with_context(|| format!("remove {}", dir.display()))
}

/// A volume capability for `access` (helpers for cases that need the other type).
pub fn capability_for(access: AccessType) -> csi::VolumeCapability {
    use volume_capability::{AccessMode, AccessType as At, BlockVolume, MountVolume, access_mode};
    VolumeCapability {
        access_type: Some(match access {
            AccessType::Mount => At::Mount(MountVolume::default()),
            AccessType::Block => At::Block(BlockVolume {}),
        }),
        access_mode: Some(AccessMode {
            mode: access_mode::Mode::SingleNodeWriter as i32,
        }),
    }
}
