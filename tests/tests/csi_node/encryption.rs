//! File encryption at rest (fscrypt v2) on real Ceph and the real node path (rbd-fuse, loop,
//! ext4 `-O encrypt`): the wrapped key in the image metadata, a wrong KEK refused before
//! anything is formatted, files unreadable (names encrypted, reads fail) with the key removed
//! and readable with it, a clone and a restored group snapshot member with their own re-wrapped
//! key, block encryption refused, and the key in no log line.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use berth_csi::ceph::ffi::fscrypt;
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_csi::csi::{
    CapacityRange, CreateVolumeRequest, DeleteVolumeRequest, VolumeContentSource,
    volume_content_source,
};
use berth_csi::kms::{self, Kms};
use berth_csi::node::encrypt::ENCRYPTED_DIR;
use berth_csi::volume_id::VolumeId;
use berth_tests::node_fixture::{CLUSTER_ID, NodeEnv, mount_cap};
use tonic::Code;

fn params(pool: &str, kind: Option<&str>) -> HashMap<String, String> {
    let mut p = HashMap::from([
        ("clusterID".to_string(), CLUSTER_ID.to_string()),
        ("pool".to_string(), pool.to_string()),
        ("mounter".to_string(), "fuse".to_string()),
        ("csi.storage.k8s.io/fstype".to_string(), "ext4".to_string()),
        ("encrypted".to_string(), "true".to_string()),
    ]);
    if let Some(k) = kind {
        p.insert("encryptionType".into(), k.into());
    }
    p
}

/// An unencrypted clone or restore of an encrypted source would hand pods ciphertext they
/// cannot read (and carry the source's wrapped key): INVALID_ARGUMENT, no image created.
async fn refuses_plain_copy(
    e: &mut NodeEnv<'_>,
    name: &str,
    pool: &str,
    source: VolumeContentSource,
) -> Result<()> {
    let mut parameters = params(pool, None);
    parameters.remove("encrypted");
    let before = e.cluster.images()?;
    let r = e
        .csi
        .controller
        .create_volume(CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(CapacityRange {
                required_bytes: 64 << 20,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![mount_cap("ext4", Mode::SingleNodeWriter)],
            parameters,
            secrets: e.secrets(),
            volume_content_source: Some(source),
            ..Default::default()
        })
        .await;
    let s = r
        .err()
        .context("an unencrypted copy of an encrypted source was created")?;
    ensure!(
        s.code() == Code::InvalidArgument && s.message().contains("encrypted"),
        "{s:?}"
    );
    let after = e.cluster.images()?;
    ensure!(after == before, "images changed: {before:?} -> {after:?}");
    Ok(())
}

fn secrets(e: &NodeEnv<'_>, pass: &str) -> HashMap<String, String> {
    let mut s = e.secrets();
    s.insert(kms::PASSPHRASE_KEY.into(), pass.into());
    s
}

pub async fn fscrypt_volume_end_to_end(e: &mut NodeEnv<'_>) -> Result<()> {
    let pass = format!("kek-{}-{}", std::process::id(), uuid_like());
    let (pool, sec) = (e.cluster.pool.clone(), secrets(e, &pass));
    let create =
        |name: &str, kind: Option<&str>, source: Option<VolumeContentSource>| CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(CapacityRange {
                required_bytes: 64 << 20,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![mount_cap("ext4", Mode::SingleNodeWriter)],
            parameters: params(&pool, kind),
            secrets: sec.clone(),
            volume_content_source: source,
            ..Default::default()
        };
    // Block (LUKS) needs dm-crypt: refused, also as the default encryptionType (ceph-csi's).
    for kind in [Some("block"), None] {
        let r = e
            .csi
            .controller
            .create_volume(create("enc-block", kind, None))
            .await;
        let s = r.err().context("block encryption was accepted")?;
        ensure!(
            s.code() == Code::FailedPrecondition && s.message().contains("dm-crypt"),
            "{s:?}"
        );
    }
    let vol = e
        .csi
        .controller
        .create_volume(create("enc-vol", Some("file"), None))
        .await?
        .into_inner()
        .volume
        .context("no volume")?;
    let image = VolumeId::decode(&vol.volume_id)?.image;
    let wrapped = e.image_meta(&image)?[kms::WRAPPED_KEY_META]
        .as_str()
        .context("no wrapped key in the image metadata")?
        .to_string();
    let kek = kms::SecretKms.kek(&secrets(e, &pass))?;
    let (key, bound) = kms::unwrap(&kek, &image, &wrapped)?;
    ensure!(bound == image, "wrapped for {bound}");

    // A wrong KEK: refused with a clear error, nothing attached or formatted.
    let staging = e.staging("enc");
    let mut stage = e.stage_req(
        &vol.volume_id,
        &staging,
        mount_cap("ext4", Mode::SingleNodeWriter),
    );
    stage.volume_context = vol.volume_context.clone();
    stage.secrets = secrets(e, "not-the-passphrase");
    let s = e
        .csi
        .node
        .node_stage_volume(stage.clone())
        .await
        .err()
        .context("a wrong KEK staged")?;
    ensure!(
        s.code() == Code::Unauthenticated && s.message().contains("does not unwrap"),
        "{s:?}"
    );
    ensure!(
        e.image_meta(&image)?.get("berth.dev/formatted").is_none(),
        "formatted after a wrong KEK"
    );
    ensure!(
        e.image_extents(&image)? == "[]",
        "data written after a wrong KEK"
    );

    // The right KEK: the pod sees the encrypted directory; files written there read back.
    stage.secrets = secrets(e, &pass);
    e.csi.node.node_stage_volume(stage.clone()).await?;
    let target = e.target("enc");
    let mut publish = e.publish_req(
        &vol.volume_id,
        &staging,
        &target,
        mount_cap("ext4", Mode::SingleNodeWriter),
        false,
    );
    publish.volume_context = vol.volume_context.clone();
    e.csi.node.node_publish_volume(publish).await?;
    std::fs::write(target.join("secret.txt"), b"top secret")?;
    let dir = staging.join(ENCRYPTED_DIR);
    ensure!(
        std::fs::read(dir.join("secret.txt"))? == b"top secret",
        "read back"
    );

    // The key removed (as NodeUnstage does): names encrypted, reads fail.
    let id = fscrypt::policy_key(&dir)?.context("no policy on the encrypted directory")?;
    e.csi
        .node
        .node_unpublish_volume(berth_csi::csi::NodeUnpublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            target_path: target.to_string_lossy().into(),
        })
        .await?;
    fscrypt::remove_key(&staging, &id)?;
    let names: Vec<String> = std::fs::read_dir(&dir)?
        .map(|d| d.map(|d| d.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    ensure!(
        names.len() == 1 && names[0] != "secret.txt",
        "names without the key: {names:?}"
    );
    let read = std::fs::read(dir.join(&names[0]));
    ensure!(read.is_err(), "read without the key: {read:?}");
    e.unstage(&vol.volume_id, &staging).await?;

    // Staged again with the key: readable.
    e.csi.node.node_stage_volume(stage.clone()).await?;
    ensure!(
        std::fs::read(dir.join("secret.txt"))? == b"top secret",
        "unreadable after restage"
    );
    e.unstage(&vol.volume_id, &staging).await?;

    // A clone: the same master key (the files need it), re-wrapped for the clone.
    let source = VolumeContentSource {
        r#type: Some(volume_content_source::Type::Volume(
            volume_content_source::VolumeSource {
                volume_id: vol.volume_id.clone(),
            },
        )),
    };
    refuses_plain_copy(e, "enc-plain-clone", &pool, source.clone()).await?;
    let clone = e
        .csi
        .controller
        .create_volume(create("enc-clone", Some("file"), Some(source)))
        .await?
        .into_inner()
        .volume
        .context("no clone")?;
    let clone_image = VolumeId::decode(&clone.volume_id)?.image;
    let clone_wrapped = e.image_meta(&clone_image)?[kms::WRAPPED_KEY_META]
        .as_str()
        .context("clone has no wrapped key")?
        .to_string();
    let (clone_key, bound) = kms::unwrap(&kek, &clone_image, &clone_wrapped)?;
    ensure!(bound == clone_image, "clone key wrapped for {bound}");
    ensure!(
        clone_wrapped != wrapped,
        "the clone shares the source's wrapped blob"
    );
    ensure!(clone_key.expose() == key.expose(), "clone key differs");
    let mut stage = e.stage_req(
        &clone.volume_id,
        &staging,
        mount_cap("ext4", Mode::SingleNodeWriter),
    );
    stage.volume_context = clone.volume_context.clone();
    stage.secrets = secrets(e, &pass);
    e.csi.node.node_stage_volume(stage).await?;
    ensure!(
        std::fs::read(dir.join("secret.txt"))? == b"top secret",
        "clone unreadable"
    );
    e.unstage(&clone.volume_id, &staging).await?;

    // A member of a volume group snapshot restores into an encrypted volume too (the member
    // copy carries the wrapped key; the restore re-wraps it for itself).
    let group = e
        .csi
        .group
        .create_volume_group_snapshot(berth_csi::csi::CreateVolumeGroupSnapshotRequest {
            name: "enc-group".into(),
            source_volume_ids: vec![vol.volume_id.clone()],
            secrets: e.secrets(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .group_snapshot
        .context("no group snapshot")?;
    let member = VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: group.snapshots[0].snapshot_id.clone(),
            },
        )),
    };
    refuses_plain_copy(e, "enc-plain-restore", &pool, member.clone()).await?;
    let restored = e
        .csi
        .controller
        .create_volume(create("enc-restored", Some("file"), Some(member)))
        .await?
        .into_inner()
        .volume
        .context("no restored volume")?;
    let restored_image = VolumeId::decode(&restored.volume_id)?.image;
    let (_, bound) = kms::unwrap(
        &kek,
        &restored_image,
        e.image_meta(&restored_image)?[kms::WRAPPED_KEY_META]
            .as_str()
            .context("restored volume has no wrapped key")?,
    )?;
    ensure!(bound == restored_image, "restored key wrapped for {bound}");
    let mut stage = e.stage_req(
        &restored.volume_id,
        &staging,
        mount_cap("ext4", Mode::SingleNodeWriter),
    );
    stage.volume_context = restored.volume_context.clone();
    stage.secrets = secrets(e, &pass);
    e.csi.node.node_stage_volume(stage).await?;
    ensure!(
        std::fs::read(dir.join("secret.txt"))? == b"top secret",
        "restored group member unreadable"
    );
    e.unstage(&restored.volume_id, &staging).await?;
    e.csi
        .controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: restored.volume_id.clone(),
            secrets: e.secrets(),
        })
        .await?;
    e.csi
        .group
        .delete_volume_group_snapshot(berth_csi::csi::DeleteVolumeGroupSnapshotRequest {
            group_snapshot_id: group.group_snapshot_id.clone(),
            secrets: e.secrets(),
            ..Default::default()
        })
        .await?;

    // The key and the passphrase in no log line (hex, base64) and no argv the driver ran.
    let log = e.driver.log_text();
    let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(key.expose());
    for (what, needle) in [
        ("key hex", hex.as_str()),
        ("key hex (half)", &hex[..32]),
        ("key base64", &b64[..40]),
        ("passphrase", pass.as_str()),
    ] {
        ensure!(!log.contains(needle), "{what} in the driver's log");
    }
    ensure!(
        log.contains("volume encryption key wrapped"),
        "log not captured"
    );

    for id in [&clone.volume_id, &vol.volume_id] {
        e.csi
            .controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: id.clone(),
                secrets: e.secrets(),
            })
            .await?;
    }
    Ok(())
}

/// A random-enough suffix for the passphrase (the test's own, never reused).
fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}")
}
