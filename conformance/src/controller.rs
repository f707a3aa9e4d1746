//! Controller service cases other than volume create/delete: capabilities, GetCapacity,
//! ListVolumes (tokens, paging).

use std::collections::HashSet;

use anyhow::{Result, bail, ensure};
use berth_csi::csi::{
    ControllerGetCapabilitiesRequest, GetCapacityRequest, ListVolumesRequest,
    controller_service_capability,
};
use tonic::Code;

use super::caps::{CtrlCap, Req};
use super::check::{code, ok};
use super::ctx::Ctx;
use super::runner::Case;

const CS: Req = Req::ControllerService;
const LIST: Req = Req::Ctrl(CtrlCap::ListVolumes);
const CREATE: Req = Req::Ctrl(CtrlCap::CreateDeleteVolume);

pub fn cases() -> Vec<Case> {
    vec![
        case!("controller/get_capabilities/known_types", [CS], caps_known),
        case!(
            "controller/get_capabilities/consistent",
            [CS],
            caps_consistent
        ),
        case!(
            "controller/get_capacity/answers",
            [Req::Ctrl(CtrlCap::GetCapacity)],
            capacity
        ),
        case!(
            "controller/get_capacity/with_capabilities_and_parameters",
            [Req::Ctrl(CtrlCap::GetCapacity)],
            capacity_filtered
        ),
        case!("controller/list_volumes/answers", [LIST], list_answers),
        case!(
            "controller/list_volumes/bad_token_aborted",
            [LIST],
            list_bad_token
        ),
        case!(
            "controller/list_volumes/negative_max_entries_invalid",
            [LIST],
            list_negative
        ),
        case!(
            "controller/list_volumes/new_volume_listed",
            [LIST, CREATE],
            list_new
        ),
        case!(
            "controller/list_volumes/deleted_volume_not_listed",
            [LIST, CREATE],
            list_deleted
        ),
        case!(
            "controller/list_volumes/paging_max_entries_1",
            [LIST, CREATE],
            list_paging
        ),
        case!(
            "controller/list_volumes/good_token_continues",
            [LIST, CREATE],
            list_good_token
        ),
    ]
}

async fn caps_list(c: &Ctx) -> Result<Vec<controller_service_capability::Type>> {
    let r = c
        .ctl
        .controller
        .clone()
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await;
    Ok(ok(r, "ControllerGetCapabilities")?
        .capabilities
        .into_iter()
        .filter_map(|c| c.r#type)
        .collect())
}

/// Spec ControllerGetCapabilities: every entry is an RPC capability of a known, non-UNKNOWN type.
async fn caps_known(c: Ctx) -> Result<()> {
    for t in caps_list(&c).await? {
        let controller_service_capability::Type::Rpc(rpc) = t;
        ensure!(
            rpc.r#type != 0 && CtrlCap::try_from(rpc.r#type).is_ok(),
            "RPC capability {} is UNKNOWN or invalid",
            rpc.r#type
        );
    }
    Ok(())
}

/// Spec RPC types: LIST_VOLUMES_PUBLISHED_NODES and PUBLISH_READONLY only make sense (and the
/// SP MUST support) PUBLISH_UNPUBLISH_VOLUME; CLONE_VOLUME needs CREATE_DELETE_VOLUME.
async fn caps_consistent(c: Ctx) -> Result<()> {
    let has = |t: CtrlCap| c.caps().controller.contains(&(t as i32));
    for (dep, needs) in [
        (
            CtrlCap::ListVolumesPublishedNodes,
            CtrlCap::PublishUnpublishVolume,
        ),
        (CtrlCap::PublishReadonly, CtrlCap::PublishUnpublishVolume),
        (CtrlCap::CloneVolume, CtrlCap::CreateDeleteVolume),
        (CtrlCap::CreateDeleteSnapshot, CtrlCap::CreateDeleteVolume),
    ] {
        ensure!(
            !has(dep) || has(needs),
            "{} is advertised without {}",
            dep.as_str_name(),
            needs.as_str_name()
        );
    }
    Ok(())
}

/// Spec GetCapacity: available_capacity MUST NOT be negative.
async fn capacity(c: Ctx) -> Result<()> {
    let r = ok(
        c.ctl
            .controller
            .clone()
            .get_capacity(GetCapacityRequest::default())
            .await,
        "GetCapacity",
    )?;
    ensure!(
        r.available_capacity >= 0,
        "available_capacity {} < 0",
        r.available_capacity
    );
    if let Some(max) = r.maximum_volume_size {
        ensure!(max >= 0, "maximum_volume_size {max} < 0");
    }
    Ok(())
}

/// Spec GetCapacity: with capabilities and the test parameters the answer is still valid.
async fn capacity_filtered(c: Ctx) -> Result<()> {
    let req = GetCapacityRequest {
        volume_capabilities: vec![c.capability()],
        parameters: c.cfg().parameters.clone(),
        accessible_topology: None,
    };
    let r = ok(
        c.ctl.controller.clone().get_capacity(req).await,
        "GetCapacity",
    )?;
    ensure!(
        r.available_capacity >= 0,
        "available_capacity {} < 0",
        r.available_capacity
    );
    Ok(())
}

/// All volume ids, following next_token; fails on a repeated token (a loop).
pub async fn list_all(c: &Ctx, max_entries: i32) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut token = String::new();
    let mut seen = HashSet::new();
    loop {
        let req = ListVolumesRequest {
            max_entries,
            starting_token: token.clone(),
        };
        let r = ok(
            c.ctl.controller.clone().list_volumes(req).await,
            "ListVolumes",
        )?;
        ensure!(
            max_entries == 0 || r.entries.len() <= max_entries as usize,
            "max_entries {max_entries} but {} entries returned",
            r.entries.len()
        );
        for e in r.entries {
            let Some(v) = e.volume else {
                bail!("ListVolumes entry without a volume")
            };
            ensure!(
                !v.volume_id.is_empty(),
                "ListVolumes entry with an empty volume_id"
            );
            ids.push(v.volume_id);
        }
        if r.next_token.is_empty() {
            return Ok(ids);
        }
        ensure!(
            seen.insert(r.next_token.clone()),
            "next_token {:?} repeated",
            r.next_token
        );
        ensure!(seen.len() < 10_000, "more than 10000 pages");
        token = r.next_token;
    }
}

/// Spec ListVolumes: OK with every entry carrying a volume.
async fn list_answers(c: Ctx) -> Result<()> {
    list_all(&c, 0).await.map(drop)
}

/// Spec ListVolumes errors: "Invalid starting_token" -> ABORTED.
async fn list_bad_token(c: Ctx) -> Result<()> {
    let req = ListVolumesRequest {
        max_entries: 0,
        starting_token: "not-a-token-we-issued-§".into(),
    };
    code(
        c.ctl.controller.clone().list_volumes(req).await,
        Code::Aborted,
        "ListVolumes",
    )
}

/// Spec ListVolumesRequest.max_entries: "MUST NOT be negative" (a bad field: INVALID_ARGUMENT).
async fn list_negative(c: Ctx) -> Result<()> {
    let req = ListVolumesRequest {
        max_entries: -1,
        starting_token: String::new(),
    };
    code(
        c.ctl.controller.clone().list_volumes(req).await,
        Code::InvalidArgument,
        "ListVolumes",
    )
}

async fn list_new(c: Ctx) -> Result<()> {
    let v = c.create_volume("listed").await?;
    let ids = list_all(&c, 0).await?;
    ensure!(
        ids.contains(&v.volume_id),
        "new volume {} not listed",
        v.volume_id
    );
    Ok(())
}

async fn list_deleted(c: Ctx) -> Result<()> {
    let v = c.create_volume("unlisted").await?;
    super::volumes::delete(&c, &v.volume_id).await?;
    let ids = list_all(&c, 0).await?;
    ensure!(
        !ids.contains(&v.volume_id),
        "deleted volume {} still listed",
        v.volume_id
    );
    Ok(())
}

/// Spec ListVolumes: with max_entries the SP MUST NOT return more and MUST set next_token when
/// there are more; paging through yields every volume exactly once.
async fn list_paging(c: Ctx) -> Result<()> {
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(c.create_volume(&format!("page{i}")).await?.volume_id);
    }
    let paged = list_all(&c, 1).await?;
    let unique: HashSet<_> = paged.iter().collect();
    ensure!(
        unique.len() == paged.len(),
        "paging returned duplicates: {paged:?}"
    );
    for id in &mine {
        ensure!(
            paged.contains(id),
            "volume {id} missing when paging with max_entries=1"
        );
    }
    Ok(())
}

/// A next_token from the SP is accepted even after a volume was created in between.
async fn list_good_token(c: Ctx) -> Result<()> {
    for i in 0..2 {
        c.create_volume(&format!("tok{i}")).await?;
    }
    let first = ok(
        c.ctl
            .controller
            .clone()
            .list_volumes(ListVolumesRequest {
                max_entries: 1,
                starting_token: String::new(),
            })
            .await,
        "ListVolumes",
    )?;
    ensure!(
        !first.next_token.is_empty(),
        "two or more volumes, max_entries=1, but no next_token"
    );
    c.create_volume("tok-late").await?;
    let req = ListVolumesRequest {
        max_entries: 1,
        starting_token: first.next_token,
    };
    ok(
        c.ctl.controller.clone().list_volumes(req).await,
        "ListVolumes with its own next_token",
    )
    .map(drop)
}
