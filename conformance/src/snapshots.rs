//! Snapshot cases: CreateSnapshot, DeleteSnapshot, ListSnapshots, GetSnapshot (spec: the
//! "CreateSnapshot" … "GetSnapshot" sections and their error tables).

use std::collections::HashSet;

use anyhow::{Result, bail, ensure};
use berth_csi::csi::{
    CreateSnapshotRequest, DeleteSnapshotRequest, GetSnapshotRequest, ListSnapshotsRequest,
    Snapshot,
};
use tonic::Code;

use super::caps::{CtrlCap, Req};
use super::check::{UNKNOWN_SNAPSHOT_ID, UNKNOWN_VOLUME_ID, code, ok};
use super::config::SecretFor;
use super::ctx::{Ctx, Resource};
use super::runner::Case;

const SNAP: Req = Req::Ctrl(CtrlCap::CreateDeleteSnapshot);
const LIST: Req = Req::Ctrl(CtrlCap::ListSnapshots);
const GET: Req = Req::Ctrl(CtrlCap::GetSnapshot);

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "snapshots/create_snapshot/missing_name_invalid",
            [SNAP],
            missing_name
        ),
        case!(
            "snapshots/create_snapshot/missing_source_invalid",
            [SNAP],
            missing_source
        ),
        case!(
            "snapshots/create_snapshot/returns_snapshot",
            [SNAP],
            returns_snapshot
        ),
        case!(
            "snapshots/create_snapshot/idempotent_same_name_10x",
            [SNAP],
            idempotent
        ),
        case!(
            "snapshots/create_snapshot/same_name_other_source_already_exists",
            [SNAP],
            other_source
        ),
        case!(
            "snapshots/create_snapshot/name_128_bytes_ok",
            [SNAP],
            long_name
        ),
        case!(
            "snapshots/delete_snapshot/missing_id_invalid",
            [SNAP],
            delete_missing
        ),
        case!(
            "snapshots/delete_snapshot/unknown_id_ok",
            [SNAP],
            delete_unknown
        ),
        case!(
            "snapshots/delete_snapshot/repeated_10x_ok",
            [SNAP],
            delete_repeated
        ),
        case!("snapshots/list_snapshots/answers", [LIST], list_answers),
        case!(
            "snapshots/list_snapshots/bad_token_aborted",
            [LIST],
            list_bad_token
        ),
        case!(
            "snapshots/list_snapshots/new_snapshot_listed",
            [LIST, SNAP],
            list_new
        ),
        case!("snapshots/list_snapshots/by_id", [LIST, SNAP], list_by_id),
        case!(
            "snapshots/list_snapshots/by_unknown_id_empty",
            [LIST],
            list_by_unknown_id
        ),
        case!(
            "snapshots/list_snapshots/by_source",
            [LIST, SNAP],
            list_by_source
        ),
        case!(
            "snapshots/list_snapshots/by_unknown_source_empty",
            [LIST],
            list_by_unknown_source
        ),
        case!(
            "snapshots/list_snapshots/paging_max_entries_1",
            [LIST, SNAP],
            list_paging
        ),
        case!(
            "snapshots/list_snapshots/deleted_snapshot_not_listed",
            [LIST, SNAP],
            list_deleted
        ),
        case!(
            "snapshots/get_snapshot/unknown_not_found",
            [GET],
            get_unknown
        ),
        case!("snapshots/get_snapshot/existing", [GET, SNAP], get_existing),
    ]
}

fn request(c: &Ctx, name: &str, source: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        name: name.into(),
        source_volume_id: source.into(),
        secrets: c.secrets(SecretFor::CreateSnapshot),
        parameters: Default::default(),
    }
}

async fn create_raw(
    c: &Ctx,
    req: CreateSnapshotRequest,
) -> Result<tonic::Response<berth_csi::csi::CreateSnapshotResponse>, tonic::Status> {
    let r = c.ctl.controller.clone().create_snapshot(req).await;
    if let Ok(resp) = &r
        && let Some(s) = &resp.get_ref().snapshot
    {
        c.track(Resource::Snapshot(s.snapshot_id.clone()));
    }
    r
}

async fn delete(c: &Ctx, id: &str) -> Result<()> {
    let req = DeleteSnapshotRequest {
        snapshot_id: id.into(),
        secrets: c.secrets(SecretFor::DeleteSnapshot),
    };
    ok(
        c.ctl.controller.clone().delete_snapshot(req).await,
        "DeleteSnapshot",
    )
    .map(drop)
}

/// Spec CreateSnapshot: name REQUIRED.
async fn missing_name(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-noname").await?;
    let r = create_raw(&c, request(&c, "", &v.volume_id)).await;
    code(r, Code::InvalidArgument, "CreateSnapshot")
}

/// Spec CreateSnapshot: source_volume_id REQUIRED.
async fn missing_source(c: Ctx) -> Result<()> {
    let r = create_raw(&c, request(&c, &c.name("nosrc"), "")).await;
    code(r, Code::InvalidArgument, "CreateSnapshot")
}

/// Spec Snapshot: snapshot_id, source_volume_id, creation_time REQUIRED; size not negative.
async fn returns_snapshot(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-src").await?;
    let s = c.create_snapshot("snap", &v.volume_id).await?;
    check_snapshot(&s, &v.volume_id)
}

fn check_snapshot(s: &Snapshot, source: &str) -> Result<()> {
    ensure!(
        s.source_volume_id == source,
        "source_volume_id {:?}, expected {source}",
        s.source_volume_id
    );
    ensure!(s.creation_time.is_some(), "creation_time unset");
    ensure!(s.size_bytes >= 0, "size_bytes {} < 0", s.size_bytes);
    Ok(())
}

/// Spec CreateSnapshot idempotency: same name, same source -> OK with the same snapshot.
async fn idempotent(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-idem").await?;
    let name = c.name("idem");
    let mut first: Option<Snapshot> = None;
    for i in 1..=10 {
        let r = create_raw(&c, request(&c, &name, &v.volume_id)).await;
        let s = ok(r, &format!("CreateSnapshot #{i}"))?
            .snapshot
            .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
        if let Some(f) = &first {
            ensure!(
                s.snapshot_id == f.snapshot_id,
                "call {i}: snapshot_id {} differs from {}",
                s.snapshot_id,
                f.snapshot_id
            );
        } else {
            first = Some(s);
        }
    }
    Ok(())
}

/// Spec CreateSnapshot errors: "Snapshot already exists but is incompatible" -> ALREADY_EXISTS.
async fn other_source(c: Ctx) -> Result<()> {
    let a = c.create_volume("snap-a").await?;
    let b = c.create_volume("snap-b").await?;
    let name = c.name("dup");
    ok(
        create_raw(&c, request(&c, &name, &a.volume_id)).await,
        "CreateSnapshot",
    )?;
    let r = create_raw(&c, request(&c, &name, &b.volume_id)).await;
    code(
        r,
        Code::AlreadyExists,
        "CreateSnapshot with the same name and another source",
    )
}

/// Spec "Size Limits": 128-byte names.
async fn long_name(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-long").await?;
    let mut name = c.name("long");
    while name.len() < 128 {
        name.push('y');
    }
    name.truncate(128);
    let r = create_raw(&c, request(&c, &name, &v.volume_id)).await;
    ok(r, "CreateSnapshot with a 128-byte name").map(drop)
}

/// Spec DeleteSnapshot: snapshot_id REQUIRED.
async fn delete_missing(c: Ctx) -> Result<()> {
    let req = DeleteSnapshotRequest {
        snapshot_id: String::new(),
        secrets: c.secrets(SecretFor::DeleteSnapshot),
    };
    code(
        c.ctl.controller.clone().delete_snapshot(req).await,
        Code::InvalidArgument,
        "DeleteSnapshot",
    )
}

/// Spec DeleteSnapshot: "If a snapshot corresponding to the specified snapshot_id does not
/// exist … the Plugin MUST reply 0 OK."
async fn delete_unknown(c: Ctx) -> Result<()> {
    delete(&c, UNKNOWN_SNAPSHOT_ID).await
}

async fn delete_repeated(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-del").await?;
    let s = c.create_snapshot("del", &v.volume_id).await?;
    for i in 1..=10 {
        delete(&c, &s.snapshot_id)
            .await
            .map_err(|e| e.context(format!("delete #{i}")))?;
    }
    Ok(())
}

fn list_req(c: &Ctx) -> ListSnapshotsRequest {
    ListSnapshotsRequest {
        secrets: c.secrets(SecretFor::ListSnapshots),
        ..Default::default()
    }
}

/// Every snapshot matching `base`, following next_token.
async fn list_all(c: &Ctx, base: ListSnapshotsRequest) -> Result<Vec<Snapshot>> {
    let mut out = Vec::new();
    let mut req = base.clone();
    let mut tokens = HashSet::new();
    loop {
        let r = ok(
            c.ctl.controller.clone().list_snapshots(req.clone()).await,
            "ListSnapshots",
        )?;
        ensure!(
            base.max_entries == 0 || r.entries.len() <= base.max_entries as usize,
            "max_entries {} but {} entries",
            base.max_entries,
            r.entries.len()
        );
        for e in r.entries {
            let Some(s) = e.snapshot else {
                bail!("ListSnapshots entry without a snapshot")
            };
            out.push(s);
        }
        if r.next_token.is_empty() {
            return Ok(out);
        }
        ensure!(
            tokens.insert(r.next_token.clone()),
            "next_token {:?} repeated",
            r.next_token
        );
        req.starting_token = r.next_token;
    }
}

async fn list_answers(c: Ctx) -> Result<()> {
    list_all(&c, list_req(&c)).await.map(drop)
}

/// Spec ListSnapshots errors: "Invalid starting_token" -> ABORTED.
async fn list_bad_token(c: Ctx) -> Result<()> {
    let mut req = list_req(&c);
    req.starting_token = "not-a-token-we-issued-§".into();
    code(
        c.ctl.controller.clone().list_snapshots(req).await,
        Code::Aborted,
        "ListSnapshots",
    )
}

async fn list_new(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-list").await?;
    let s = c.create_snapshot("listed", &v.volume_id).await?;
    let all = list_all(&c, list_req(&c)).await?;
    ensure!(
        all.iter().any(|x| x.snapshot_id == s.snapshot_id),
        "snapshot {} not listed",
        s.snapshot_id
    );
    Ok(())
}

/// Spec ListSnapshotsRequest.snapshot_id: only that snapshot is returned.
async fn list_by_id(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-byid").await?;
    let s = c.create_snapshot("byid", &v.volume_id).await?;
    c.create_snapshot("other", &v.volume_id).await?;
    let mut req = list_req(&c);
    req.snapshot_id = s.snapshot_id.clone();
    let got = list_all(&c, req).await?;
    ensure!(
        got.len() == 1 && got[0].snapshot_id == s.snapshot_id,
        "by id: {:?}",
        ids(&got)
    );
    check_snapshot(&got[0], &v.volume_id)
}

/// Spec ListSnapshots: "If snapshot_id … is not found, the Plugin MUST return an empty list."
async fn list_by_unknown_id(c: Ctx) -> Result<()> {
    let mut req = list_req(&c);
    req.snapshot_id = UNKNOWN_SNAPSHOT_ID.into();
    let got = list_all(&c, req).await?;
    ensure!(got.is_empty(), "unknown snapshot id listed {:?}", ids(&got));
    Ok(())
}

/// Spec ListSnapshotsRequest.source_volume_id: only snapshots of that volume.
async fn list_by_source(c: Ctx) -> Result<()> {
    let a = c.create_volume("snap-src-a").await?;
    let b = c.create_volume("snap-src-b").await?;
    let sa = c.create_snapshot("a1", &a.volume_id).await?;
    let sa2 = c.create_snapshot("a2", &a.volume_id).await?;
    c.create_snapshot("b1", &b.volume_id).await?;
    let mut req = list_req(&c);
    req.source_volume_id = a.volume_id.clone();
    let got = list_all(&c, req).await?;
    let got_ids: HashSet<_> = got.iter().map(|s| s.snapshot_id.clone()).collect();
    let want: HashSet<_> = [sa.snapshot_id, sa2.snapshot_id].into_iter().collect();
    ensure!(
        got_ids == want,
        "by source: got {got_ids:?}, expected {want:?}"
    );
    ensure!(
        got.iter().all(|s| s.source_volume_id == a.volume_id),
        "entry with another source"
    );
    Ok(())
}

async fn list_by_unknown_source(c: Ctx) -> Result<()> {
    let mut req = list_req(&c);
    req.source_volume_id = UNKNOWN_VOLUME_ID.into();
    let got = list_all(&c, req).await?;
    ensure!(got.is_empty(), "unknown source listed {:?}", ids(&got));
    Ok(())
}

/// Spec ListSnapshots max_entries / next_token: paging one at a time yields every snapshot
/// once.
async fn list_paging(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-page").await?;
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(
            c.create_snapshot(&format!("p{i}"), &v.volume_id)
                .await?
                .snapshot_id,
        );
    }
    let mut req = list_req(&c);
    req.max_entries = 1;
    let got = ids(&list_all(&c, req).await?);
    let unique: HashSet<_> = got.iter().collect();
    ensure!(unique.len() == got.len(), "paging returned duplicates");
    for id in &mine {
        ensure!(got.contains(id), "snapshot {id} missing when paging");
    }
    Ok(())
}

async fn list_deleted(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-gone").await?;
    let s = c.create_snapshot("gone", &v.volume_id).await?;
    delete(&c, &s.snapshot_id).await?;
    let all = list_all(&c, list_req(&c)).await?;
    ensure!(
        !all.iter().any(|x| x.snapshot_id == s.snapshot_id),
        "deleted snapshot listed"
    );
    Ok(())
}

fn ids(s: &[Snapshot]) -> Vec<String> {
    s.iter().map(|s| s.snapshot_id.clone()).collect()
}

/// Spec GetSnapshot errors: "Snapshot does not exist" -> NOT_FOUND.
async fn get_unknown(c: Ctx) -> Result<()> {
    let req = GetSnapshotRequest {
        snapshot_id: UNKNOWN_SNAPSHOT_ID.into(),
        secrets: c.secrets(SecretFor::ListSnapshots),
    };
    code(
        c.ctl.controller.clone().get_snapshot(req).await,
        Code::NotFound,
        "GetSnapshot",
    )
}

async fn get_existing(c: Ctx) -> Result<()> {
    let v = c.create_volume("snap-get").await?;
    let s = c.create_snapshot("get", &v.volume_id).await?;
    let req = GetSnapshotRequest {
        snapshot_id: s.snapshot_id.clone(),
        secrets: c.secrets(SecretFor::ListSnapshots),
    };
    let got = ok(
        c.ctl.controller.clone().get_snapshot(req).await,
        "GetSnapshot",
    )?
    .snapshot
    .ok_or_else(|| anyhow::anyhow!("GetSnapshot without a snapshot"))?;
    ensure!(
        got.snapshot_id == s.snapshot_id,
        "GetSnapshot returned {}",
        got.snapshot_id
    );
    check_snapshot(&got, &v.volume_id)
}
