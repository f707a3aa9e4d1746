//! ListVolumes, ListSnapshots and GetCapacity: read from the journal (no image is opened), over
//! the pools named by `--list-pools`, paginated with tokens we issue and check.
//!
//! Token: `v1.<pool index>.<hex of the last request name returned>`; anything else is ABORTED.

use std::collections::HashMap;

use crate::ceph::ffi::rados::IoCtx;
use crate::ceph::journal::{self, Entry, Kind};
use crate::csi::{
    GetCapacityRequest, GetCapacityResponse, ListSnapshotsRequest, ListSnapshotsResponse,
    ListVolumesRequest, ListVolumesResponse, Volume, list_snapshots_response,
    list_volumes_response,
};
use crate::error::{Error, Result};
use crate::params::{MAX_SIZE, VolumeParams};
use crate::snapshot_id::SnapshotId;
use crate::volume_id::VolumeId;

use super::{Controller, Place, snapshot::to_wire};

/// Journal entries read per omap round trip.
const PAGE: u64 = 256;

/// A pagination token: which `--list-pools` item, and the last request name returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub pool: usize,
    pub after: String,
}

impl Token {
    pub fn encode(&self) -> String {
        let hex: String = self.after.bytes().map(|b| format!("{b:02x}")).collect();
        format!("v1.{}.{hex}", self.pool)
    }

    /// Parse a `starting_token` for `pools` list pools; anything we did not issue is ABORTED.
    pub fn decode(s: &str, pools: usize) -> Result<Token> {
        let bad = || Error::BadToken {
            token: s.to_string(),
        };
        if s.is_empty() {
            return Ok(Token {
                pool: 0,
                after: String::new(),
            });
        }
        let mut parts = s.split('.');
        let (Some("v1"), Some(idx), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let pool: usize = idx.parse().map_err(|_| bad())?;
        // Only ASCII hex digits, two per byte: anything else (a sign, multi-byte text) was
        // not issued by us, and byte-pair slicing below is safe only on ASCII.
        if pool >= pools || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let bytes = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let digits = std::str::from_utf8(pair).map_err(|_| bad())?;
                u8::from_str_radix(digits, 16).map_err(|_| bad())
            })
            .collect::<Result<Vec<u8>>>()?;
        Ok(Token {
            pool,
            after: String::from_utf8(bytes).map_err(|_| bad())?,
        })
    }
}

fn max_entries(n: i32) -> Result<usize> {
    if n < 0 {
        return Err(Error::NegativeMaxEntries);
    }
    Ok(if n == 0 { usize::MAX } else { n as usize })
}

/// Up to `want` entries of `kind` after `after` that pass `keep`; returns them and whether
/// the scan stopped early (more may follow the last one).
fn scan(
    io: &IoCtx<'_>,
    kind: Kind,
    after: &str,
    want: usize,
    keep: &dyn Fn(&Entry) -> bool,
) -> Result<(Vec<(String, Entry)>, bool)> {
    let mut out = Vec::new();
    let mut cursor = after.to_string();
    loop {
        let (page, more) = journal::page(io, kind, &cursor, PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok((out, false));
        };
        cursor = last.clone();
        let n = page.len();
        for (i, (name, e)) in page.into_iter().enumerate() {
            if keep(&e) {
                out.push((name, e));
                if out.len() == want {
                    return Ok((out, more || i + 1 < n));
                }
            }
        }
        if !more {
            return Ok((out, false));
        }
    }
}

/// Walk `pools` from `token`, collecting up to `max` items; the next token if any.
#[allow(clippy::too_many_arguments)]
async fn walk<T: Send + 'static>(
    c: &Controller,
    pools: Vec<Place>,
    kind: Kind,
    token: &str,
    max: usize,
    secrets: &HashMap<String, String>,
    keep: impl Fn(&Place, &Entry) -> bool + Send + Sync + Clone + 'static,
    to_item: impl Fn(&Place, &Entry) -> Option<T> + Send + Sync + Clone + 'static,
) -> Result<(Vec<T>, String)> {
    let mut tok = Token::decode(token, pools.len().max(1))?;
    let mut items = Vec::new();
    while tok.pool < pools.len() {
        let place = pools[tok.pool].clone();
        let Some(target) = c.target_with(
            &place.cluster_id,
            &place.pool,
            &place.namespace,
            secrets,
            true,
        )?
        else {
            tok = Token {
                pool: tok.pool + 1,
                after: String::new(),
            };
            continue;
        };
        let want = max - items.len();
        let (after, keep, to_item) = (tok.after.clone(), keep.clone(), to_item.clone());
        let (found, more) = c
            .ceph()
            .with_pool(&target, move |io| {
                let (entries, more) = scan(io, kind, &after, want, &|e| keep(&place, e))?;
                let last = entries.last().map(|(n, _)| n.clone());
                let items: Vec<T> = entries
                    .iter()
                    .filter_map(|(_, e)| to_item(&place, e))
                    .collect();
                Ok(((items, last), more))
            })
            .await?;
        let (found, last) = found;
        items.extend(found);
        if more {
            let after = last.unwrap_or_default();
            return Ok((
                items,
                Token {
                    pool: tok.pool,
                    after,
                }
                .encode(),
            ));
        }
        tok = Token {
            pool: tok.pool + 1,
            after: String::new(),
        };
        if items.len() == max && tok.pool < pools.len() {
            return Ok((items, tok.encode()));
        }
    }
    Ok((items, String::new()))
}

pub(super) async fn list_volumes(
    c: &Controller,
    req: ListVolumesRequest,
) -> Result<ListVolumesResponse> {
    let max = max_entries(req.max_entries)?;
    let (entries, next_token) = walk(
        c,
        c.list_places(),
        Kind::Volume,
        &req.starting_token,
        max,
        &HashMap::new(),
        |_, _| true,
        |place, e| {
            let mut ctx = HashMap::new();
            ctx.insert("clusterID".to_string(), place.cluster_id.clone());
            ctx.insert("pool".to_string(), place.pool.clone());
            if !place.namespace.is_empty() {
                ctx.insert("radosNamespace".to_string(), place.namespace.clone());
            }
            ctx.insert("imageName".to_string(), e.image.clone());
            Some(list_volumes_response::Entry {
                volume: Some(Volume {
                    capacity_bytes: e.size as i64,
                    volume_id: place.volume(&e.image).encode()?,
                    volume_context: ctx,
                    content_source: None,
                    accessible_topology: vec![],
                }),
                status: None,
            })
        },
    )
    .await?;
    Ok(ListVolumesResponse {
        entries,
        next_token,
    })
}

pub(super) async fn list_snapshots(
    c: &Controller,
    req: ListSnapshotsRequest,
) -> Result<ListSnapshotsResponse> {
    let max = max_entries(req.max_entries)?;
    let wrap = |s| list_snapshots_response::Entry { snapshot: Some(s) };
    if !req.snapshot_id.is_empty() {
        // One snapshot by id: unknown or foreign ids are an empty list.
        let Ok(id) = SnapshotId::decode(&req.snapshot_id) else {
            return Ok(ListSnapshotsResponse::default());
        };
        let Some(target) =
            c.target_with(&id.cluster_id, &id.pool, &id.namespace, &req.secrets, true)?
        else {
            return Ok(ListSnapshotsResponse::default());
        };
        let place = Place {
            cluster_id: id.cluster_id.clone(),
            pool: id.pool.clone(),
            namespace: id.namespace.clone(),
        };
        let found = c
            .ceph()
            .with_pool(&target, move |io| {
                let Some(name) = journal::owner(io, Kind::Snapshot, &id.image, &id.snap)? else {
                    return Ok(None);
                };
                // A member of a volume group snapshot (owner `group:<id>`).
                if let Some(s) = super::group::member_snapshot(io, &place, &name, &id.image)? {
                    return Ok(Some(s));
                }
                Ok(journal::lookup(io, Kind::Snapshot, &name)?.and_then(|e| to_wire(&place, &e)))
            })
            .await;
        let found = match found {
            Err(Error::PoolNotFound { .. }) => None,
            r => r?,
        };
        let entries = found
            .filter(|s| {
                req.source_volume_id.is_empty() || s.source_volume_id == req.source_volume_id
            })
            .map(wrap)
            .into_iter()
            .collect();
        return Ok(ListSnapshotsResponse {
            entries,
            next_token: String::new(),
        });
    }
    let source = if req.source_volume_id.is_empty() {
        None
    } else {
        match VolumeId::decode(&req.source_volume_id) {
            Ok(v) => Some(v),
            Err(_) => return Ok(ListSnapshotsResponse::default()),
        }
    };
    // Snapshots of one volume live in that volume's pool, listed or not.
    let pools = match &source {
        Some(v) => vec![Place {
            cluster_id: v.cluster_id.clone(),
            pool: v.pool.clone(),
            namespace: v.namespace.clone(),
        }],
        None => c.list_places(),
    };
    let keep = move |place: &Place, e: &Entry| {
        source.as_ref().is_none_or(|v| {
            v.pool == place.pool && v.namespace == place.namespace && v.image == e.image
        })
    };
    let (snaps, next_token) = walk(
        c,
        pools,
        Kind::Snapshot,
        &req.starting_token,
        max,
        &req.secrets,
        keep,
        to_wire,
    )
    .await?;
    Ok(ListSnapshotsResponse {
        entries: snaps.into_iter().map(wrap).collect(),
        next_token,
    })
}

pub(super) async fn get_capacity(
    c: &Controller,
    req: GetCapacityRequest,
) -> Result<GetCapacityResponse> {
    for cap in &req.volume_capabilities {
        if crate::params::check_capability(cap).is_err() {
            // Capacity for a capability we cannot provide is zero (spec: GetCapacity).
            return Ok(GetCapacityResponse::default());
        }
    }
    let (cluster, pool) = if req.parameters.is_empty() {
        match c.capacity_cluster() {
            Some(p) => p,
            None => return Ok(GetCapacityResponse::default()),
        }
    } else {
        let p = VolumeParams::parse(&req.parameters)?;
        (p.cluster_id, p.pool)
    };
    let ns = c.config_namespace(&cluster).to_string();
    let Some(target) = c.target_with(&cluster, &pool, &ns, &HashMap::new(), true)? else {
        return Err(Error::UnknownCluster { cluster });
    };
    let stat = c
        .ceph()
        .with_cluster(&target, |r| {
            r.cluster_stat()
                .map_err(|e| crate::ceph::ceph_err("cluster stat", e))
        })
        .await?;
    Ok(GetCapacityResponse {
        available_capacity: (stat.kb_avail.saturating_mul(1024)).min(i64::MAX as u64) as i64,
        maximum_volume_size: Some(MAX_SIZE as i64),
        minimum_volume_size: Some(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_tokens_abort() {
        let t = Token {
            pool: 1,
            after: "pvc-1/x".into(),
        };
        assert_eq!(Token::decode(&t.encode(), 2).unwrap(), t);
        for bad in [
            "x",
            "v1.5.00",
            "v1.0.zz",
            "v1.0.0",
            "v2.0.",
            "v1.0.41.1",
            "v1.-1.",
            // multi-byte text where hex digits belong (once panicked the handler)
            "v1.0.a\u{e9}b",
            "v1.0.\u{e9}",
            "v1.0.+1",
        ] {
            let e = Token::decode(bad, 2).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Aborted, "{bad}");
        }
        assert_eq!(Token::decode("", 1).unwrap().pool, 0);
    }
}
