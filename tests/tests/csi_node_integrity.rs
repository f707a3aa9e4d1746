//! berth-csi never destroys what it stores, against REAL Ceph, rbd-fuse + loop devices and
//! mounts: a read error while staging never leads to mkfs (the fault is real: rbd-fuse is
//! SIGKILLed under the loop device just before the probe), an image marked formatted is never
//! formatted again (whatever the node's state dir says), reader-only volumes are read-only
//! down to the device (and their bytes do not change), the fs type from the volume context is
//! honoured, `unmapOptions` is used or refused, and a stash naming another volume's device
//! (renumbering) never gets that device bound into a pod or detached. Cases run one at a time: a dead rbd-fuse
//! can hold up loop operations beside it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_tests::node_fixture::{NodeEnv, block_cap, case, mount_cap, run_suite_serial};
use berth_tests::proc::run;
use berth_tests::sweep;
use tonic::Code;

#[path = "csi_node_integrity/reader_only.rs"]
mod reader_only;
use reader_only::{reader_only, reader_only_unformatted};

fn main() {
    run_suite_serial(vec![
        case("a_read_error_at_stage_never_leads_to_mkfs", |e| {
            Box::pin(read_error_never_mkfs(e))
        }),
        case("an_image_marked_formatted_is_never_formatted_again", |e| {
            Box::pin(marked_never_formatted(e))
        }),
        case("reader_only_is_read_only_down_to_the_device", |e| {
            Box::pin(reader_only(e))
        }),
        case("an_unformatted_reader_only_volume_is_refused", |e| {
            Box::pin(reader_only_unformatted(e))
        }),
        case("fstype_from_the_volume_context_is_honoured", |e| {
            Box::pin(fstype_from_context(e))
        }),
        case("unmap_options_are_used_or_refused", |e| {
            Box::pin(unmap_options(e))
        }),
        case("a_renumbered_device_is_never_bound_or_detached", |e| {
            Box::pin(renumbered(e))
        }),
    ])
}

fn sync_write(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

fn pattern(n: u32, m: u32) -> Vec<u8> {
    (0..n).map(|i| (i % m) as u8).collect()
}

fn mount_at(target: &Path) -> Option<sweep::Mount> {
    sweep::mounts()
        .into_iter()
        .rev()
        .find(|m| m.target == target)
}

/// A real fault at a precise moment: the driver finds this `blkid` first on its PATH. When
/// armed (a file), it SIGKILLs the rbd-fuse serving the loop device it is asked to probe,
/// waits until the device's reads fail, disarms, then runs the real blkid.
async fn install_fault_blkid(e: &mut NodeEnv<'_>) -> Result<PathBuf> {
    let bin = e.driver.dir.join("fault-bin");
    std::fs::create_dir_all(&bin)?;
    let armed = bin.join("armed");
    let real = run(Command::new("sh").args(["-c", "command -v blkid"]))?;
    let script = format!(
        r#"#!/bin/sh
for a; do dev="$a"; done
if [ -e '{armed}' ]; then
  rm -f '{armed}'
  back=$(cat "/sys/block/${{dev##*/}}/loop/backing_file" 2>/dev/null)
  dir="${{back%/*}}"
  for p in /proc/[0-9]*; do
    if tr '\0' '\n' < "$p/cmdline" 2>/dev/null | grep -qxF "$dir"; then kill -9 "${{p#/proc/}}"; fi
  done
  i=0
  while dd if="$dev" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null && [ $i -lt 500 ]; do
    sleep 0.01; i=$((i+1))
  done
fi
exec {real} "$@"
"#,
        armed = armed.display(),
        real = real.trim()
    );
    let path = bin.join("blkid");
    std::fs::write(&path, script)?;
    run(Command::new("chmod").arg("0755").arg(&path))?;
    let path_var = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    e.driver.set_env("PATH", &path_var);
    e.driver.restart().await?;
    e.reconnect().await?;
    Ok(armed)
}

async fn read_error_never_mkfs(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("precious", "256M")?;
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("precious");
    let data = pattern(3_000_000, 251);
    e.stage(&id, &staging, cap()).await?;
    sync_write(&staging.join("data.bin"), &data)?;
    e.unstage(&id, &staging).await?;

    let armed = install_fault_blkid(e).await?;
    std::fs::write(&armed, b"")?;
    let err = e
        .csi
        .node
        .node_stage_volume(e.stage_req(&id, &staging, cap()))
        .await
        .err()
        .context("NodeStage succeeded although the device could not be read")?;
    ensure!(!armed.exists(), "the fault never fired");
    let log = e.driver.log_text();
    ensure!(
        !err.message().contains("mkfs") && !log.contains("mkfs."),
        "NodeStage ran mkfs on a device it could not read: {}",
        err.message()
    );
    ensure!(
        matches!(err.code(), Code::Internal | Code::Unavailable),
        "a read error is INTERNAL or UNAVAILABLE: {err:?}"
    );
    ensure!(
        err.message().contains("read") && err.message().contains("not formatting"),
        "the error must say the device could not be read and was left alone: {}",
        err.message()
    );
    ensure!(
        e.leftovers().is_empty(),
        "after the failed stage: {:?}",
        e.leftovers()
    );

    // Restored (a fresh rbd-fuse, once the killed one's watch is gone): the data is there.
    e.stage_after_crash(&id, &staging, cap()).await?;
    ensure!(
        std::fs::read(staging.join("data.bin"))? == data,
        "data changed"
    );
    e.unstage(&id, &staging).await?;
    Ok(())
}

async fn marked_never_formatted(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("marked", "256M")?;
    let cap = || mount_cap("ext4", Mode::SingleNodeWriter);
    let staging = e.staging("marked");
    let data = pattern(1_000_000, 241);
    e.stage(&id, &staging, cap()).await?;
    sync_write(&staging.join("data.bin"), &data)?;
    e.unstage(&id, &staging).await?;
    let meta = e.image_meta("marked")?;
    ensure!(
        meta.get("berth.dev/formatted").and_then(|v| v.as_str()) == Some("ext4"),
        "the first format must mark the image: metadata {meta}"
    );

    // The device reads back without its superblock (a broken rollback, a device that answers
    // zeros), and the node lost its state dir: blkid sees nothing, the mark still says ext4.
    let att = berth_tests::fuse::Attachment::attach(e.cluster, "marked")?;
    let mut head = vec![0u8; 4096];
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&att.device)?;
        f.read_exact(&mut head)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&[0u8; 4096])?;
        f.sync_all()?;
    }
    att.detach()?;
    e.driver.kill9();
    std::fs::remove_dir_all(&e.driver.state_dir)?;
    e.driver.restart().await?;
    e.reconnect().await?;
    let before = e.image_sha("marked")?;
    let err = e
        .csi
        .node
        .node_stage_volume(e.stage_req(&id, &staging, cap()))
        .await
        .err()
        .context("NodeStage formatted an image marked as formatted")?;
    ensure!(
        err.code() == Code::FailedPrecondition,
        "marked but no filesystem -> FAILED_PRECONDITION: {err:?}"
    );
    ensure!(
        err.message().contains("formatted as ext4"),
        "the error must name the mark: {}",
        err.message()
    );
    ensure!(
        e.image_sha("marked")? == before,
        "the image's bytes changed"
    );

    // Put the superblock back: the data was never touched.
    let att = berth_tests::fuse::Attachment::attach(e.cluster, "marked")?;
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&att.device)?;
        f.write_all(&head)?;
        f.sync_all()?;
    }
    att.detach()?;
    e.stage(&id, &staging, cap()).await?;
    ensure!(
        std::fs::read(staging.join("data.bin"))? == data,
        "data changed"
    );
    e.unstage(&id, &staging).await?;
    Ok(())
}

async fn fstype_from_context(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("ctxfs", "512M")?;
    let staging = e.staging("ctxfs");
    let mut req = e.stage_req(&id, &staging, mount_cap("", Mode::SingleNodeWriter));
    req.volume_context
        .insert("csi.storage.k8s.io/fstype".into(), "xfs".into());
    e.csi.node.node_stage_volume(req.clone()).await?;
    let m = mount_at(&staging).context("not mounted")?;
    ensure!(m.fstype == "xfs", "made {} instead of xfs", m.fstype);
    // The same request again is the same stage.
    e.csi.node.node_stage_volume(req).await?;
    // The capability's own fs type wins over the context.
    let staging2 = e.staging("ctxfs2");
    let id2 = e.image("ctxfs2", "256M")?;
    let mut req = e.stage_req(&id2, &staging2, mount_cap("ext4", Mode::SingleNodeWriter));
    req.volume_context
        .insert("csi.storage.k8s.io/fstype".into(), "xfs".into());
    e.csi.node.node_stage_volume(req).await?;
    let m = mount_at(&staging2).context("not mounted")?;
    ensure!(m.fstype == "ext4", "capability said ext4, got {}", m.fstype);
    e.unstage(&id, &staging).await?;
    e.unstage(&id2, &staging2).await?;
    Ok(())
}

async fn unmap_options(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("unmap", "64M")?;
    let staging = e.staging("unmap");
    let cap = || block_cap(Mode::SingleNodeWriter);
    // The fuse attacher has nothing to pass them to: refused, not silently dropped.
    let mut req = e.stage_req(&id, &staging, cap());
    req.volume_context
        .insert("unmapOptions".into(), "force".into());
    let err = e.csi.node.node_stage_volume(req).await.err();
    ensure!(
        err.as_ref().is_some_and(
            |s| s.code() == Code::InvalidArgument && s.message().contains("unmapOptions")
        ),
        "unmapOptions with mounter=fuse: {err:?}"
    );
    // Hostile characters are refused whatever the mounter.
    let mut req = e.stage_req(&id, &staging, cap());
    req.volume_context.insert("mounter".into(), "krbd".into());
    req.volume_context
        .insert("unmapOptions".into(), "force;reboot".into());
    let err = e.csi.node.node_stage_volume(req).await.err();
    ensure!(
        err.as_ref()
            .is_some_and(|s| s.code() == Code::InvalidArgument),
        "hostile unmapOptions: {err:?}"
    );
    ensure!(e.leftovers().is_empty(), "{:?}", e.leftovers());
    Ok(())
}

fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// Two block volumes; A's stash is made to name B's loop device (as a reboot's renumbering
/// does for krbd/nbd). NodePublish of A must never bind B's device; after a SIGKILL + restart
/// recovery must repair A without detaching B's device; nothing is leaked.
async fn renumbered(e: &mut NodeEnv<'_>) -> Result<()> {
    let cap = || block_cap(Mode::SingleNodeWriter);
    const AT: u64 = 1 << 20;
    let mut vols = Vec::new();
    for name in ["numa", "numb"] {
        let id = e.image(name, "64M")?;
        let staging = e.staging(name);
        let target = e.target(&format!("{name}pod"));
        e.stage(&id, &staging, cap()).await?;
        e.publish(&id, &staging, &target, cap(), false).await?;
        write_at(&target, AT, format!("bytes of {name}").as_bytes())?;
        vols.push((id, staging, target));
    }
    let (a_id, a_staging, a_target) = vols[0].clone();
    let (b_id, b_staging, b_target) = vols[1].clone();
    let b_dev = e.stash_json(&b_staging)?["attached"]["device"]
        .as_str()
        .context("B's device")?
        .to_string();
    let b_back = sweep::loop_devices()
        .into_iter()
        .find(|(d, _)| d.to_str() == Some(b_dev.as_str()))
        .map(|(_, back)| back)
        .context("B's loop device")?;

    // 1. While the plugin runs: a publish of A must not bind the device named in its stash.
    e.point_stash_at(&a_staging, &b_dev)?;
    let a2 = e.target("numa2pod");
    let r = e
        .csi
        .node
        .node_publish_volume(e.publish_req(&a_id, &a_staging, &a2, cap(), false))
        .await;
    if r.is_ok() {
        let got = read_at(&a2, AT, 13)?;
        ensure!(
            got == b"bytes of numa",
            "NodePublish bound another volume's device into volume A's target: read {:?}",
            String::from_utf8_lossy(&got)
        );
        e.unpublish(&a_id, &a2).await?;
    } else {
        ensure!(
            r.as_ref()
                .err()
                .is_some_and(|s| s.code() == Code::FailedPrecondition),
            "{r:?}"
        );
    }

    // 2. SIGKILL, the stash still names B's device, restart: recovery repairs A and leaves B.
    e.driver.kill9();
    e.point_stash_at(&a_staging, &b_dev)?;
    e.driver.restart().await?;
    e.reconnect().await?;
    e.wait_healthy(&a_id, &a_target).await?;
    e.wait_healthy(&b_id, &b_target).await?;
    let b_now = sweep::loop_devices()
        .into_iter()
        .find(|(d, _)| d.to_str() == Some(b_dev.as_str()))
        .map(|(_, back)| back);
    ensure!(
        b_now.as_ref() == Some(&b_back),
        "B's device {b_dev} was detached or rebound: now {b_now:?}"
    );
    ensure!(read_at(&b_target, AT, 13)? == b"bytes of numb", "B's bytes");
    ensure!(read_at(&a_target, AT, 13)? == b"bytes of numa", "A's bytes");
    let a_dev = e.stash_json(&a_staging)?["attached"]["device"]
        .as_str()
        .context("A's device")?
        .to_string();
    ensure!(a_dev != b_dev, "A's stash still names B's device");

    for (id, staging, target) in &vols {
        e.unpublish(id, target).await?;
        e.unstage(id, staging).await?;
    }
    ensure!(
        e.leftovers().is_empty(),
        "after unstage: {:?}",
        e.leftovers()
    );
    Ok(())
}
