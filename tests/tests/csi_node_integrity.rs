//! berth-csi never destroys what it stores, against REAL Ceph, rbd-fuse + loop devices and
//! mounts: a read error while staging never leads to mkfs (the fault is real: rbd-fuse is
//! SIGKILLed under the loop device just before the probe), an image marked formatted is never
//! formatted again (whatever the node's state dir says). Cases run one at a time: a dead
//! rbd-fuse can hold up loop operations beside it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_tests::node_fixture::{NodeEnv, case, mount_cap, run_suite_serial};
use berth_tests::proc::run;
use tonic::Code;

fn main() {
    run_suite_serial(vec![
        case("a_read_error_at_stage_never_leads_to_mkfs", |e| {
            Box::pin(read_error_never_mkfs(e))
        }),
        case("an_image_marked_formatted_is_never_formatted_again", |e| {
            Box::pin(marked_never_formatted(e))
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

/// SHA-256 of the whole image as Ceph stores it (`rbd export`, read by the test's client).
fn image_sha(e: &NodeEnv<'_>, image: &str) -> Result<String> {
    let file = e.driver.dir.join(format!("{image}.export"));
    let _ = std::fs::remove_file(&file);
    e.cluster.rbd(&[
        "export",
        "--no-progress",
        &format!("{}/{image}", e.cluster.pool),
        file.to_str().context("path")?,
    ])?;
    let out = run(Command::new("sha256sum").arg(&file))?;
    std::fs::remove_file(&file)?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn image_meta(e: &NodeEnv<'_>, image: &str) -> Result<serde_json::Value> {
    let out = e.cluster.rbd(&[
        "image-meta",
        "list",
        "--format",
        "json",
        &format!("{}/{image}", e.cluster.pool),
    ])?;
    // Pacific prints nothing at all for an image without metadata.
    if out.trim().is_empty() {
        return Ok(serde_json::json!({}));
    }
    Ok(serde_json::from_str(&out)?)
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

    // Restored (a fresh rbd-fuse): the data is there.
    e.stage(&id, &staging, cap()).await?;
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
    let meta = image_meta(e, "marked")?;
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
    let before = image_sha(e, "marked")?;
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
        image_sha(e, "marked")? == before,
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
