//! berth-csi acts only on what it owns (issue 11, item 5), through the REAL binary on REAL
//! Ceph, loop devices and mounts: a corpus of hostile volume / snapshot IDs and target paths
//! must leave everything that is not the test's own untouched — a sentinel file (8 MiB of a
//! known pattern), a sentinel image with a snapshot that berth did not create (a "static"
//! volume), a foreign tmpfs mount, a symlink, a non-empty directory.
//!
//! Serial: the cases compare the pool's image list before and after.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_csi::csi::{
    ControllerExpandVolumeRequest, CreateSnapshotRequest, CreateVolumeRequest,
    DeleteSnapshotRequest, DeleteVolumeRequest, NodePublishVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, VolumeContentSource,
    volume_content_source,
};
use berth_tests::node_fixture::{CLUSTER_ID, NodeEnv, case, mount_cap, run_suite_serial};
use tonic::Code;

/// Record a violation and go on: the report lists every one, not just the first.
macro_rules! check {
    ($bad:ident, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            let m = format!($($msg)+);
            if !$bad.contains(&m) {
                $bad.push(m);
            }
        }
    };
}

fn main() {
    run_suite_serial(vec![
        case("hostile_ids_touch_no_file_image_or_snapshot", |e| {
            Box::pin(hostile_ids(e))
        }),
        case("hostile_target_paths_touch_nothing_not_ours", |e| {
            Box::pin(hostile_paths(e))
        }),
    ])
}

fn code<T>(r: std::result::Result<T, tonic::Status>) -> Code {
    r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

/// 8 MiB of a recognisable pattern: big enough that mkfs would happily format it.
fn sentinel_bytes() -> Vec<u8> {
    (0..8u32 << 20)
        .map(|i| (i % 251) as u8 ^ 0x5a)
        .collect::<Vec<u8>>()
}

/// A volume ID in berth's wire layout, written by hand: the driver's encoder refuses
/// illegal names, a caller can still send them.
fn vol(e: &NodeEnv<'_>, image: &str) -> String {
    let pool = &e.cluster.pool;
    format!(
        "0001-{:04x}-{CLUSTER_ID}-{:04x}-{pool}-{image}",
        CLUSTER_ID.len(),
        pool.len()
    )
}

/// A snapshot ID in berth's wire layout, by hand (see [`vol`]).
fn snap_id(e: &NodeEnv<'_>, image: &str, snap: &str) -> String {
    let pool = &e.cluster.pool;
    format!(
        "s001-{:04x}-{CLUSTER_ID}-{:04x}-{pool}-{:04x}-{image}-{snap}",
        CLUSTER_ID.len(),
        pool.len(),
        image.len()
    )
}

fn snaps(e: &NodeEnv<'_>, image: &str) -> Result<Vec<String>> {
    let out = e.cluster.rbd(&[
        "snap",
        "ls",
        "--format",
        "json",
        &format!("{}/{image}", e.cluster.pool),
    ])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v.as_array()
        .context("snap ls json")?
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect())
}

fn params(e: &NodeEnv<'_>) -> HashMap<String, String> {
    HashMap::from([
        ("clusterID".to_string(), CLUSTER_ID.to_string()),
        ("pool".to_string(), e.cluster.pool.clone()),
        ("mounter".to_string(), "fuse".to_string()),
    ])
}

/// The code of CreateVolume `name` cloned from `source`.
async fn create_from(e: &NodeEnv<'_>, name: &str, source: volume_content_source::Type) -> Code {
    let r = e
        .csi
        .controller
        .clone()
        .create_volume(CreateVolumeRequest {
            name: name.into(),
            volume_capabilities: vec![mount_cap("ext4", Mode::SingleNodeWriter)],
            parameters: params(e),
            secrets: e.secrets(),
            volume_content_source: Some(VolumeContentSource {
                r#type: Some(source),
            }),
            ..Default::default()
        })
        .await;
    code(r)
}

async fn hostile_ids(e: &mut NodeEnv<'_>) -> Result<()> {
    let mut bad = Vec::new();
    let sentinel_file = e.driver.dir.join("sentinel");
    let pattern = sentinel_bytes();
    std::fs::write(&sentinel_file, &pattern)?;
    // Not created by berth: no journal entry (a static volume, or anybody's image).
    e.image("sentinel", "64M")?;
    let pool = e.cluster.pool.clone();
    e.cluster
        .rbd(&["snap", "create", &format!("{pool}/sentinel@keep")])?;
    let images_before = e.cluster.images()?;

    // Image names that are not RBD names. From the fuse work dir
    // (<state>/volumes/<h>/fuse) "../../../../sentinel" is the sentinel file.
    // An absolute name: Path::join would replace the work dir with it (the sentinel again).
    let abs_sentinel = sentinel_file.to_string_lossy().into_owned();
    let hostile_images = [
        "../../../../sentinel",
        "../sentinel",
        "..",
        ".",
        "a/b",
        "sentinel@keep",
        "x\0y",
        abs_sentinel.as_str(),
    ];
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    for (i, img) in hostile_images.into_iter().enumerate() {
        let id = vol(e, img);
        let staging = e.staging(&format!("hostile{i}"));
        let r = e
            .csi
            .node
            .node_stage_volume(e.stage_req(&id, &staging, cap()))
            .await;
        check!(
            bad,
            code(r) == Code::NotFound,
            "NodeStage of image {img:?} was not NOT_FOUND"
        );
        let target = e.target(&format!("hostile{i}"));
        let r = e
            .csi
            .node
            .node_publish_volume(NodePublishVolumeRequest {
                ..e.publish_req(&id, &staging, &target, cap(), false)
            })
            .await;
        check!(bad, code(r) == Code::NotFound, "NodePublish of {img:?}");
        let r = e
            .csi
            .controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: id.clone(),
                secrets: e.secrets(),
            })
            .await;
        check!(bad, code(r) == Code::Ok, "DeleteVolume of {img:?}");
        let r = e
            .csi
            .controller
            .controller_expand_volume(ControllerExpandVolumeRequest {
                volume_id: id.clone(),
                capacity_range: Some(berth_csi::csi::CapacityRange {
                    required_bytes: 1 << 30,
                    limit_bytes: 0,
                }),
                secrets: e.secrets(),
                ..Default::default()
            })
            .await;
        check!(
            bad,
            code(r) == Code::NotFound,
            "ControllerExpand of {img:?}"
        );
        for snap in ["keep", "../x", "a/b"] {
            let sid = snap_id(e, img, snap);
            let r = e
                .csi
                .controller
                .delete_snapshot(DeleteSnapshotRequest {
                    snapshot_id: sid,
                    secrets: e.secrets(),
                })
                .await;
            check!(
                bad,
                code(r) == Code::Ok,
                "DeleteSnapshot of {img:?}@{snap:?}"
            );
        }
    }

    // The sentinel image and its snapshot are not berth's: never deleted, never cloned.
    let sentinel = vol(e, "sentinel");
    for _ in 0..3 {
        let r = e
            .csi
            .controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: sentinel.clone(),
                secrets: e.secrets(),
            })
            .await;
        check!(
            bad,
            code(r) == Code::Ok,
            "DeleteVolume of an unjournaled image"
        );
        let sid = snap_id(e, "sentinel", "keep");
        let r = e
            .csi
            .controller
            .delete_snapshot(DeleteSnapshotRequest {
                snapshot_id: sid.clone(),
                secrets: e.secrets(),
            })
            .await;
        check!(
            bad,
            code(r) == Code::Ok,
            "DeleteSnapshot of an unjournaled snapshot"
        );
        let from_snap =
            volume_content_source::Type::Snapshot(volume_content_source::SnapshotSource {
                snapshot_id: sid,
            });
        check!(
            bad,
            create_from(e, "pvc-from-foreign-snap", from_snap).await == Code::NotFound,
            "CreateVolume from an unjournaled snapshot"
        );
        let from_vol = volume_content_source::Type::Volume(volume_content_source::VolumeSource {
            volume_id: sentinel.clone(),
        });
        check!(
            bad,
            create_from(e, "pvc-from-foreign-vol", from_vol).await == Code::NotFound,
            "CreateVolume from an unjournaled volume"
        );
        let r = e
            .csi
            .controller
            .create_snapshot(CreateSnapshotRequest {
                name: "snap-of-foreign".into(),
                source_volume_id: sentinel.clone(),
                secrets: e.secrets(),
                ..Default::default()
            })
            .await;
        check!(
            bad,
            code(r) == Code::NotFound,
            "CreateSnapshot of an unjournaled volume"
        );
    }

    check!(
        bad,
        std::fs::read(&sentinel_file)? == pattern,
        "the sentinel file was modified"
    );
    let images_after = e.cluster.images()?;
    check!(
        bad,
        images_after == images_before,
        "images changed: {images_before:?} -> {images_after:?}"
    );
    check!(
        bad,
        snaps(e, "sentinel").unwrap_or_default() == ["keep"],
        "sentinel snapshots: {:?}",
        snaps(e, "sentinel")
    );
    check!(
        bad,
        e.leftovers().is_empty(),
        "left behind: {:?}",
        e.leftovers()
    );
    ensure!(
        bad.is_empty(),
        "{} violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // The test's own image goes (rbd CLI: berth must not).
    e.cluster
        .rbd(&["snap", "rm", &format!("{pool}/sentinel@keep")])?;
    e.cluster
        .rbd(&["rm", "--no-progress", &format!("{pool}/sentinel")])?;
    Ok(())
}

/// A tmpfs the test mounts itself (not a volume of berth's); unmounted on drop.
struct ForeignMount(PathBuf);

impl ForeignMount {
    fn new(at: &Path) -> Result<ForeignMount> {
        std::fs::create_dir_all(at)?;
        nix::mount::mount(
            Some("berth-foreign"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .context("mount a tmpfs")?;
        Ok(ForeignMount(at.to_path_buf()))
    }
    fn mounted(&self) -> bool {
        berth_tests::sweep::mounts()
            .iter()
            .any(|m| m.target == self.0)
    }
}

impl Drop for ForeignMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

async fn hostile_paths(e: &mut NodeEnv<'_>) -> Result<()> {
    let mut bad = Vec::new();
    let id = e.image("paths", "256M")?;
    let unpublish = |target: &Path| NodeUnpublishVolumeRequest {
        volume_id: id.clone(),
        target_path: target.to_string_lossy().into(),
    };
    let pods = e.driver.dir.join("pods");
    std::fs::create_dir_all(&pods)?;

    // A regular file berth did not create.
    let file = pods.join("precious.txt");
    std::fs::write(&file, b"not berth's")?;
    // A directory with content.
    let full = pods.join("full");
    std::fs::create_dir_all(&full)?;
    std::fs::write(full.join("data"), b"keep me")?;
    // A mount that is not a volume berth published, and a symlink to it.
    let foreign = ForeignMount::new(&e.driver.dir.join("foreign"))?;
    std::fs::write(foreign.0.join("inside"), b"foreign data")?;
    let link = pods.join("link");
    std::os::unix::fs::symlink(&foreign.0, &link)?;
    // A symlink to the sentinel file.
    let file_link = pods.join("file-link");
    std::os::unix::fs::symlink(&file, &file_link)?;

    for _ in 0..3 {
        for t in [&file, &full, &foreign.0, &link, &file_link] {
            let r = e.csi.node.node_unpublish_volume(unpublish(t)).await;
            check!(
                bad,
                code(r) == Code::Ok,
                "NodeUnpublish of {} (not published) must be OK",
                t.display()
            );
            let r = e
                .csi
                .node
                .node_unstage_volume(NodeUnstageVolumeRequest {
                    volume_id: id.clone(),
                    staging_target_path: t.to_string_lossy().into(),
                })
                .await;
            check!(bad, code(r) == Code::Ok, "NodeUnstage of {}", t.display());
        }
        check!(
            bad,
            std::fs::read(&file).ok().as_deref() == Some(&b"not berth's"[..]),
            "NodeUnpublish removed a regular file it did not create"
        );
        check!(
            bad,
            std::fs::read(full.join("data")).ok().as_deref() == Some(&b"keep me"[..]),
            "a non-empty directory lost its content"
        );
        check!(bad, foreign.mounted(), "a foreign mount was unmounted");
        check!(
            bad,
            std::fs::read(foreign.0.join("inside")).ok().as_deref() == Some(&b"foreign data"[..]),
            "the foreign mount's data is gone"
        );
        check!(
            bad,
            std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
            "a symlink berth did not create was removed"
        );
        check!(
            bad,
            std::fs::symlink_metadata(&file_link).is_ok_and(|m| m.file_type().is_symlink()),
            "a symlink to a file was removed"
        );
    }

    // What berth did publish still goes away completely, also the empty target it made.
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("paths");
    let target = e.target("paths");
    e.stage(&id, &staging, cap()).await?;
    e.publish(&id, &staging, &target, cap(), false).await?;
    std::fs::write(target.join("x"), b"x")?;
    e.unpublish(&id, &target).await?;
    check!(
        bad,
        !target.exists(),
        "the target berth made is still there"
    );
    // A target that is a symlink (to a directory elsewhere) is never mounted through: the
    // volume would land on the link's destination, outside the pod's volume directory.
    let elsewhere = e.target("elsewhere");
    std::fs::create_dir_all(&elsewhere)?;
    let linked = e.target("linked");
    std::fs::create_dir_all(linked.parent().context("parent")?)?;
    std::os::unix::fs::symlink(&elsewhere, &linked)?;
    let r = e
        .csi
        .node
        .node_publish_volume(e.publish_req(&id, &staging, &linked, cap(), false))
        .await;
    let mounted_elsewhere = berth_tests::sweep::mounts()
        .iter()
        .any(|m| m.target == elsewhere);
    if mounted_elsewhere {
        let _ = e.unpublish(&id, &linked).await;
        let _ = nix::mount::umount2(&elsewhere, nix::mount::MntFlags::MNT_DETACH);
    }
    check!(
        bad,
        !mounted_elsewhere && code(r) == Code::FailedPrecondition,
        "NodePublish through a symlinked target mounted the volume at the link's destination"
    );
    check!(
        bad,
        std::fs::symlink_metadata(&linked).is_ok_and(|m| m.file_type().is_symlink()),
        "the symlinked target was removed"
    );
    e.unstage(&id, &staging).await?;
    // An empty directory (kubelet's leftover) is removed.
    std::fs::create_dir_all(&target)?;
    e.unpublish(&id, &target).await?;
    check!(
        bad,
        !target.exists(),
        "an empty target directory is removed"
    );
    drop(foreign);
    ensure!(
        bad.is_empty(),
        "{} violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
    e.cluster
        .rbd(&["rm", "--no-progress", &format!("{}/paths", e.cluster.pool)])?;
    Ok(())
}
