//! Shared helpers of the controller tests: requests, capabilities, secrets, a driver started
//! in controller mode against the shared cluster.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use berth_csi::csi::volume_capability::{
    AccessMode, AccessType, BlockVolume, MountVolume, access_mode::Mode,
};
use berth_csi::csi::{CapacityRange, CreateVolumeRequest, VolumeCapability};
use berth_tests::ceph::Cluster;
use berth_tests::driver::Driver;

pub const CLUSTER_ID: &str = "berth-test";
pub const GIB: i64 = 1 << 30;

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A unique request name for this process.
pub fn name(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn secrets(c: &Cluster) -> HashMap<String, String> {
    HashMap::from([
        ("userID".to_string(), c.client_id.clone()),
        ("userKey".to_string(), c.client_key.clone()),
    ])
}

pub fn params(c: &Cluster) -> HashMap<String, String> {
    HashMap::from([
        ("clusterID".to_string(), CLUSTER_ID.to_string()),
        ("pool".to_string(), c.pool.clone()),
        ("csi.storage.k8s.io/fstype".to_string(), "ext4".to_string()),
        ("mounter".to_string(), "fuse".to_string()),
    ])
}

pub fn cap(block: bool, mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(if block {
            AccessType::Block(BlockVolume {})
        } else {
            AccessType::Mount(MountVolume {
                fs_type: "ext4".into(),
                ..Default::default()
            })
        }),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

pub fn create_req(c: &Cluster, name: &str, bytes: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_string(),
        capacity_range: Some(CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![cap(false, Mode::SingleNodeWriter)],
        parameters: params(c),
        secrets: secrets(c),
        ..Default::default()
    }
}

/// Start berth-csi in controller mode with controller credentials and the list pool.
pub async fn driver(c: &Cluster, extra: &[&str]) -> Result<Driver> {
    // Inside the cluster's directory: removed with the cluster, key files included.
    let dir = c.dir.join(name("ctrl-secrets"));
    std::fs::create_dir_all(&dir)?;
    berth_tests::ceph::write_private(&dir.join("userID"), &c.client_id)?;
    berth_tests::ceph::write_private(&dir.join("userKey"), &c.client_key)?;
    let mut flags = vec![
        "--mode=controller".to_string(),
        format!("--controller-secrets-dir={}", dir.display()),
        format!("--list-pools={CLUSTER_ID}/{}", c.pool),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Driver::start(&flags, Some(&c.csi_cluster_config(CLUSTER_ID))).await
}

/// The gRPC code of a result.
pub fn code<T>(r: &std::result::Result<T, tonic::Status>) -> tonic::Code {
    match r {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

/// `rbd info` of an image as JSON.
pub fn info(c: &Cluster, image: &str) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&c.rbd(&[
        "info",
        "--format",
        "json",
        &format!("{}/{image}", c.pool),
    ])?)?)
}
