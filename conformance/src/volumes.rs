//! CreateVolume and DeleteVolume cases (spec: "Controller Service RPC"; error tables of each
//! RPC; idempotency: "same name, compatible request -> OK"). ValidateVolumeCapabilities is in
//! [`super::validate`].

use anyhow::{Result, ensure};
use berth_csi::csi::{
    CapacityRange, DeleteVolumeRequest, VolumeContentSource, volume_content_source,
};
use tonic::Code;

use super::caps::{CtrlCap, Req};
use super::check::{UNKNOWN_SNAPSHOT_ID, UNKNOWN_VOLUME_ID, code, ok};
use super::config::SecretFor;
use super::ctx::Ctx;
use super::runner::Case;

const CREATE: Req = Req::Ctrl(CtrlCap::CreateDeleteVolume);
const SNAP: Req = Req::Ctrl(CtrlCap::CreateDeleteSnapshot);
const CLONE: Req = Req::Ctrl(CtrlCap::CloneVolume);

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "controller/create_volume/missing_name_invalid",
            [CREATE],
            missing_name
        ),
        case!(
            "controller/create_volume/missing_capabilities_invalid",
            [CREATE],
            missing_caps
        ),
        case!(
            "controller/create_volume/capability_without_access_type_invalid",
            [CREATE],
            no_access_type
        ),
        case!(
            "controller/create_volume/returns_volume",
            [CREATE],
            returns_volume
        ),
        case!(
            "controller/create_volume/no_capacity_range_ok",
            [CREATE],
            no_range
        ),
        case!("controller/create_volume/exact_capacity", [CREATE], exact),
        case!(
            "controller/create_volume/idempotent_same_name_10x",
            [CREATE],
            idempotent
        ),
        case!(
            "controller/create_volume/same_name_other_size_already_exists",
            [CREATE],
            other_size
        ),
        case!(
            "controller/create_volume/name_128_bytes_ok",
            [CREATE],
            long_name
        ),
        case!(
            "controller/create_volume/limit_below_required_out_of_range",
            [CREATE],
            limit_below
        ),
        case!(
            "controller/create_volume/negative_capacity_invalid",
            [CREATE],
            negative
        ),
        case!(
            "controller/create_volume/from_snapshot",
            [CREATE, SNAP],
            from_snapshot
        ),
        case!(
            "controller/create_volume/from_snapshot_idempotent",
            [CREATE, SNAP],
            from_snapshot_again
        ),
        case!(
            "controller/create_volume/from_unknown_snapshot_not_found",
            [CREATE, SNAP],
            from_unknown_snapshot
        ),
        case!(
            "controller/create_volume/from_volume",
            [CREATE, CLONE],
            from_volume
        ),
        case!(
            "controller/create_volume/from_unknown_volume_not_found",
            [CREATE, CLONE],
            from_unknown_volume
        ),
        case!(
            "controller/delete_volume/missing_id_invalid",
            [CREATE],
            delete_missing_id
        ),
        case!(
            "controller/delete_volume/unknown_id_ok",
            [CREATE],
            delete_unknown
        ),
        case!(
            "controller/delete_volume/repeated_10x_ok",
            [CREATE],
            delete_repeated
        ),
        case!(
            "controller/delete_volume/name_reusable_after_delete",
            [CREATE],
            name_reuse
        ),
    ]
}

/// DeleteVolume `id` with the configured secrets; OK expected.
pub async fn delete(c: &Ctx, id: &str) -> Result<()> {
    let req = DeleteVolumeRequest {
        volume_id: id.into(),
        secrets: c.secrets(SecretFor::DeleteVolume),
    };
    ok(
        c.ctl.controller.clone().delete_volume(req).await,
        "DeleteVolume",
    )
    .map(drop)
}

/// Spec CreateVolume: name REQUIRED -> INVALID_ARGUMENT.
async fn missing_name(c: Ctx) -> Result<()> {
    let req = c.create_request("");
    let r = c.ctl.controller.clone().create_volume(req).await;
    if let Ok(resp) = &r
        && let Some(v) = &resp.get_ref().volume
    {
        c.track(super::ctx::Resource::Volume(v.volume_id.clone()));
    }
    code(r, Code::InvalidArgument, "CreateVolume")
}

/// Spec CreateVolume: volume_capabilities REQUIRED -> INVALID_ARGUMENT.
async fn missing_caps(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("nocaps"));
    req.volume_capabilities.clear();
    let r = c.ctl.controller.clone().create_volume(req).await;
    track_created(&c, &r);
    code(r, Code::InvalidArgument, "CreateVolume")
}

/// Spec VolumeCapability.access_type: "One of the following fields MUST be specified".
async fn no_access_type(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("noat"));
    req.volume_capabilities[0].access_type = None;
    let r = c.ctl.controller.clone().create_volume(req).await;
    track_created(&c, &r);
    code(r, Code::InvalidArgument, "CreateVolume")
}

fn track_created(
    c: &Ctx,
    r: &Result<tonic::Response<berth_csi::csi::CreateVolumeResponse>, tonic::Status>,
) {
    if let Ok(resp) = r
        && let Some(v) = &resp.get_ref().volume
    {
        c.track(super::ctx::Resource::Volume(v.volume_id.clone()));
    }
}

/// Spec CreateVolumeResponse: volume_id set; capacity_bytes >= required_bytes (or 0: unknown).
async fn returns_volume(c: Ctx) -> Result<()> {
    let v = c.create_volume("basic").await?;
    ensure!(
        v.capacity_bytes == 0 || v.capacity_bytes >= c.size(),
        "capacity_bytes {} < required {}",
        v.capacity_bytes,
        c.size()
    );
    ensure!(
        v.content_source.is_none(),
        "content_source set on an empty volume"
    );
    Ok(())
}

/// Spec CreateVolume.capacity_range: OPTIONAL; the SP picks a size.
async fn no_range(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("norange"));
    req.capacity_range = None;
    c.create_volume_with(req).await.map(drop)
}

/// Spec CapacityRange: required == limit asks for exactly that size.
async fn exact(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("exact"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: c.size(),
        limit_bytes: c.size(),
    });
    let v = c.create_volume_with(req).await?;
    ensure!(
        v.capacity_bytes == 0 || v.capacity_bytes == c.size(),
        "asked for exactly {}, got {}",
        c.size(),
        v.capacity_bytes
    );
    Ok(())
}

/// Spec CreateVolume idempotency: same name and compatible parameters -> OK and the same volume.
async fn idempotent(c: Ctx) -> Result<()> {
    let req = c.create_request(&c.name("idem"));
    let first = c.create_volume_with(req.clone()).await?;
    for i in 2..=10 {
        let v = c.create_volume_with(req.clone()).await?;
        ensure!(
            v.volume_id == first.volume_id,
            "call {i}: volume_id {} differs from the first {}",
            v.volume_id,
            first.volume_id
        );
        ensure!(
            v.capacity_bytes == first.capacity_bytes,
            "call {i}: capacity changed"
        );
    }
    Ok(())
}

/// Spec CreateVolume errors: "Volume already exists but is incompatible" -> ALREADY_EXISTS.
async fn other_size(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("size"));
    c.create_volume_with(req.clone()).await?;
    let bigger = c.size() * 2;
    req.capacity_range = Some(CapacityRange {
        required_bytes: bigger,
        limit_bytes: bigger,
    });
    let r = c.ctl.controller.clone().create_volume(req).await;
    track_created(&c, &r);
    code(r, Code::AlreadyExists, "CreateVolume with another size")
}

/// Spec "Size Limits": strings up to 128 bytes MUST be supported.
async fn long_name(c: Ctx) -> Result<()> {
    let mut name = c.name("long");
    while name.len() < 128 {
        name.push('x');
    }
    name.truncate(128);
    let v = c.create_volume_with(c.create_request(&name)).await?;
    let again = c.create_volume_with(c.create_request(&name)).await?;
    ensure!(
        again.volume_id == v.volume_id,
        "128-byte name not idempotent"
    );
    Ok(())
}

/// Spec CreateVolume errors: "Unsupported capacity_range" -> OUT_OF_RANGE.
async fn limit_below(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("range"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: c.size(),
        limit_bytes: c.size() / 2,
    });
    let r = c.ctl.controller.clone().create_volume(req).await;
    track_created(&c, &r);
    code(r, Code::OutOfRange, "CreateVolume limit < required")
}

/// Spec CapacityRange: required_bytes "MUST NOT be negative" -> INVALID_ARGUMENT
/// (OUT_OF_RANGE is accepted: the range is also unsatisfiable).
async fn negative(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("neg"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: -1,
        limit_bytes: 0,
    });
    let r = c.ctl.controller.clone().create_volume(req).await;
    track_created(&c, &r);
    super::check::codes(
        r,
        &[Code::InvalidArgument, Code::OutOfRange],
        "CreateVolume",
    )
}

fn snapshot_source(id: &str) -> VolumeContentSource {
    VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: id.into(),
            },
        )),
    }
}

fn volume_source(id: &str) -> VolumeContentSource {
    VolumeContentSource {
        r#type: Some(volume_content_source::Type::Volume(
            volume_content_source::VolumeSource {
                volume_id: id.into(),
            },
        )),
    }
}

/// Spec CreateVolume.volume_content_source + Volume.content_source: a volume restored from a
/// snapshot reports that source.
async fn from_snapshot(c: Ctx) -> Result<()> {
    let src = c.create_volume("snapsrc").await?;
    let snap = c.create_snapshot("snap", &src.volume_id).await?;
    let mut req = c.create_request(&c.name("restored"));
    req.volume_content_source = Some(snapshot_source(&snap.snapshot_id));
    let v = c.create_volume_with(req).await?;
    ensure!(
        v.content_source == Some(snapshot_source(&snap.snapshot_id)),
        "content_source {:?}, expected snapshot {}",
        v.content_source,
        snap.snapshot_id
    );
    Ok(())
}

/// Idempotency holds for restores too: same name, same snapshot -> the same volume.
async fn from_snapshot_again(c: Ctx) -> Result<()> {
    let src = c.create_volume("snapsrc2").await?;
    let snap = c.create_snapshot("snap2", &src.volume_id).await?;
    let mut req = c.create_request(&c.name("restored2"));
    req.volume_content_source = Some(snapshot_source(&snap.snapshot_id));
    let a = c.create_volume_with(req.clone()).await?;
    let b = c.create_volume_with(req).await?;
    ensure!(
        a.volume_id == b.volume_id,
        "second restore made another volume"
    );
    Ok(())
}

/// Spec CreateVolume errors: "Source incompatible or not supported / not found" -> NOT_FOUND.
async fn from_unknown_snapshot(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("nosnap"));
    req.volume_content_source = Some(snapshot_source(UNKNOWN_SNAPSHOT_ID));
    let r = c.ctl.controller.clone().create_volume(req).await;
    track_created(&c, &r);
    code(r, Code::NotFound, "CreateVolume from an unknown snapshot")
}

/// Spec CLONE_VOLUME: a volume cloned from another reports that source.
async fn from_volume(c: Ctx) -> Result<()> {
    let src = c.create_volume("clonesrc").await?;
    let mut req = c.create_request(&c.name("clone"));
    req.volume_content_source = Some(volume_source(&src.volume_id));
    let v = c.create_volume_with(req).await?;
    ensure!(
        v.content_source == Some(volume_source(&src.volume_id)),
        "content_source {:?}, expected volume {}",
        v.content_source,
        src.volume_id
    );
    Ok(())
}

async fn from_unknown_volume(c: Ctx) -> Result<()> {
    let mut req = c.create_request(&c.name("novol"));
    req.volume_content_source = Some(volume_source(UNKNOWN_VOLUME_ID));
    let r = c.ctl.controller.clone().create_volume(req).await;
    track_created(&c, &r);
    code(r, Code::NotFound, "CreateVolume from an unknown volume")
}

/// Spec DeleteVolume: volume_id REQUIRED.
async fn delete_missing_id(c: Ctx) -> Result<()> {
    let req = DeleteVolumeRequest {
        volume_id: String::new(),
        secrets: c.secrets(SecretFor::DeleteVolume),
    };
    code(
        c.ctl.controller.clone().delete_volume(req).await,
        Code::InvalidArgument,
        "DeleteVolume",
    )
}

/// Spec DeleteVolume: "If a volume corresponding to the specified volume_id does not exist or
/// the artifacts associated with the volume do not exist anymore, the Plugin MUST reply 0 OK."
async fn delete_unknown(c: Ctx) -> Result<()> {
    delete(&c, UNKNOWN_VOLUME_ID).await
}

async fn delete_repeated(c: Ctx) -> Result<()> {
    let v = c.create_volume("del").await?;
    for i in 1..=10 {
        delete(&c, &v.volume_id)
            .await
            .map_err(|e| e.context(format!("delete #{i}")))?;
    }
    Ok(())
}

/// After a delete, the CO may create a volume with the same name again.
async fn name_reuse(c: Ctx) -> Result<()> {
    let req = c.create_request(&c.name("reuse"));
    let a = c.create_volume_with(req.clone()).await?;
    delete(&c, &a.volume_id).await?;
    c.create_volume_with(req).await.map(drop)
}
