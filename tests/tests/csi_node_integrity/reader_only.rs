//! Reader-only volumes: read-only down to the loop device (mount and block mode, bytes
//! unchanged after every attempt to write), and a blank reader-only volume refused before
//! anything is formatted.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_tests::node_fixture::{NodeEnv, block_cap, mount_cap};
use berth_tests::sweep;
use tonic::Code;

use super::{mount_at, pattern, sync_write};

/// Are all loop devices the driver attached (backing files under its dir) read-only at the
/// block layer? Errs when there is none.
fn devices_read_only(e: &NodeEnv<'_>) -> Result<bool> {
    let loops: Vec<_> = sweep::loop_devices()
        .into_iter()
        .filter(|(_, back)| back.starts_with(&e.driver.dir))
        .collect();
    ensure!(!loops.is_empty(), "no loop device attached");
    let mut all = true;
    for (dev, _) in loops {
        let name = dev.file_name().and_then(|n| n.to_str()).context("name")?;
        all &= std::fs::read_to_string(format!("/sys/block/{name}/ro"))?.trim() == "1";
    }
    Ok(all)
}

fn write_refused(path: &Path) -> Result<()> {
    match std::fs::File::create(path) {
        Ok(_) => anyhow::bail!("writing {} succeeded on a read-only volume", path.display()),
        Err(err) => ensure!(
            err.raw_os_error() == Some(libc::EROFS),
            "write to {}: {err} (want EROFS)",
            path.display()
        ),
    }
    Ok(())
}

pub(crate) async fn reader_only(e: &mut NodeEnv<'_>) -> Result<()> {
    for (fs, size, mode) in [
        ("ext4", "256M", Mode::SingleNodeReaderOnly),
        ("xfs", "512M", Mode::MultiNodeReaderOnly),
    ] {
        let name = format!("ro{fs}");
        let id = e.image(&name, size)?;
        let staging = e.staging(&name);
        let target = e.target(&format!("{name}pod"));
        let data = pattern(500_000, 239);
        e.stage(&id, &staging, mount_cap(fs, Mode::SingleNodeWriter))
            .await?;
        sync_write(&staging.join("data.bin"), &data)?;
        e.unstage(&id, &staging).await?;
        let before = e.image_sha(&name)?;

        e.stage(&id, &staging, mount_cap(fs, mode)).await?;
        let m = mount_at(&staging).context("not mounted")?;
        ensure!(
            m.options.split(',').any(|o| o == "ro"),
            "{fs}: staging mount is not ro: {}",
            m.options
        );
        ensure!(
            devices_read_only(e)?,
            "{fs}: the device under the staging mount is writable"
        );
        write_refused(&staging.join("new"))?;
        ensure!(
            std::fs::read(staging.join("data.bin"))? == data,
            "{fs}: read"
        );
        let st = e.stats(&id, &staging).await?;
        ensure!(
            st.volume_condition.as_ref().is_some_and(|c| !c.abnormal),
            "{fs}: a read-only staging reported abnormal: {st:?}"
        );
        // A publish without `readonly` stays read-only for a reader-only capability.
        e.publish(&id, &staging, &target, mount_cap(fs, mode), false)
            .await?;
        write_refused(&target.join("new"))?;
        ensure!(
            std::fs::read(target.join("data.bin"))? == data,
            "{fs}: read"
        );
        e.unpublish(&id, &target).await?;
        e.unstage(&id, &staging).await?;
        ensure!(
            e.image_sha(&name)? == before,
            "{fs}: a reader-only stage changed the image's bytes"
        );
    }
    // Block access, reader-only: the device itself refuses writes.
    let id = e.image("roblk", "64M")?;
    let staging = e.staging("roblk");
    let dev = e.target("roblkpod");
    e.stage(&id, &staging, block_cap(Mode::SingleNodeReaderOnly))
        .await?;
    e.publish(
        &id,
        &staging,
        &dev,
        block_cap(Mode::SingleNodeReaderOnly),
        false,
    )
    .await?;
    ensure!(
        devices_read_only(e)?,
        "a reader-only block device is writable"
    );
    // Device nodes ignore a read-only mount; the read-only device refuses the write itself.
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&dev) {
        let w = f.write_all(&[0xffu8; 4096]).and_then(|_| f.sync_all());
        ensure!(
            w.is_err(),
            "a write to a reader-only block device succeeded"
        );
    }
    e.unpublish(&id, &dev).await?;
    e.unstage(&id, &staging).await?;
    ensure!(e.image_extents("roblk")? == "[]", "block image written");
    Ok(())
}

pub(crate) async fn reader_only_unformatted(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("roblank", "128M")?;
    let staging = e.staging("roblank");
    let r = e
        .csi
        .node
        .node_stage_volume(e.stage_req(&id, &staging, mount_cap("ext4", Mode::MultiNodeReaderOnly)))
        .await;
    let err = r.err().context("a blank reader-only volume was staged")?;
    ensure!(err.code() == Code::FailedPrecondition, "{err:?}");
    ensure!(
        e.image_extents("roblank")? == "[]",
        "the blank image was written to"
    );
    ensure!(e.leftovers().is_empty(), "{:?}", e.leftovers());
    Ok(())
}
