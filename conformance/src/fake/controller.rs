//! The fake's Controller service: volumes and snapshots in memory, spec behaviour unless a
//! [`Bug`] says otherwise.

use berth_csi::csi::controller_server::Controller;
use berth_csi::csi::*;
use tonic::{Request, Response, Status};

use super::{Bug, Fake, Snap, Vol, required, valid_capability};

type R<T> = Result<Response<T>, Status>;

const DEFAULT_SIZE: i64 = 1 << 30;

/// Page `items` from a token this fake issued (`fake-token-<offset>`).
fn page<T: Clone>(
    items: &[T],
    token: &str,
    max: i32,
    any_token: bool,
) -> Result<(Vec<T>, String), Status> {
    if max < 0 {
        return Err(Status::invalid_argument("max_entries must not be negative"));
    }
    let start = if token.is_empty() {
        0
    } else {
        match token
            .strip_prefix("fake-token-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n <= items.len() => n,
            _ if any_token => 0,
            _ => {
                return Err(Status::aborted(format!(
                    "starting_token {token:?} was not issued here"
                )));
            }
        }
    };
    let end = if max == 0 {
        items.len()
    } else {
        (start + max as usize).min(items.len())
    };
    let next = if end < items.len() {
        format!("fake-token-{end}")
    } else {
        String::new()
    };
    Ok((items[start..end].to_vec(), next))
}

impl Fake {
    fn volume(&self, id: &str, v: &Vol) -> Volume {
        Volume {
            capacity_bytes: v.size,
            volume_id: id.into(),
            volume_context: [("name".to_string(), v.name.clone())].into(),
            content_source: v.source.clone(),
            accessible_topology: vec![],
        }
    }

    fn snapshot(id: &str, s: &Snap) -> Snapshot {
        Snapshot {
            size_bytes: s.size,
            snapshot_id: id.into(),
            source_volume_id: s.source.clone(),
            creation_time: Some(s.created),
            ready_to_use: true,
            group_snapshot_id: String::new(),
        }
    }
}

fn size_of(range: Option<&CapacityRange>) -> Result<i64, Status> {
    let Some(r) = range else {
        return Ok(DEFAULT_SIZE);
    };
    if r.required_bytes < 0 || r.limit_bytes < 0 {
        return Err(Status::invalid_argument("capacity must not be negative"));
    }
    if r.limit_bytes > 0 && r.limit_bytes < r.required_bytes {
        return Err(Status::out_of_range("limit_bytes < required_bytes"));
    }
    Ok(if r.required_bytes > 0 {
        r.required_bytes
    } else if r.limit_bytes > 0 {
        r.limit_bytes
    } else {
        DEFAULT_SIZE
    })
}

#[tonic::async_trait]
impl Controller for Fake {
    async fn create_volume(&self, req: Request<CreateVolumeRequest>) -> R<CreateVolumeResponse> {
        let req = req.into_inner();
        if !self.bug(Bug::CreateWithoutNameOk) {
            required(&req.name, "name")?;
        }
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities are required"));
        }
        for c in &req.volume_capabilities {
            valid_capability(Some(c))?;
        }
        let size = size_of(req.capacity_range.as_ref())?;
        self.with(|st| {
            if let Some(src) = req
                .volume_content_source
                .as_ref()
                .and_then(|s| s.r#type.as_ref())
            {
                let found = match src {
                    volume_content_source::Type::Snapshot(s) => {
                        st.snapshots.contains_key(&s.snapshot_id)
                    }
                    volume_content_source::Type::Volume(v) => st.volumes.contains_key(&v.volume_id),
                };
                if !found {
                    return Err(Status::not_found("content source not found"));
                }
            }
            if !self.bug(Bug::CreateNotIdempotent)
                && let Some((id, v)) = st
                    .volumes
                    .iter()
                    .find(|(_, v)| v.name == req.name && !req.name.is_empty())
            {
                let same = (v.size == size || self.bug(Bug::CreateIgnoresSizeConflict))
                    && v.source == req.volume_content_source;
                if !same {
                    return Err(Status::already_exists(format!(
                        "volume {} exists with other arguments",
                        req.name
                    )));
                }
                return Ok(Response::new(CreateVolumeResponse {
                    volume: Some(self.volume(id, v)),
                }));
            }
            st.next += 1;
            let id = format!("fake-vol-{}", st.next);
            let v = Vol {
                name: req.name.clone(),
                size,
                source: req.volume_content_source.clone(),
            };
            let out = self.volume(&id, &v);
            st.volumes.insert(id, v);
            Ok(Response::new(CreateVolumeResponse { volume: Some(out) }))
        })
    }

    async fn delete_volume(&self, req: Request<DeleteVolumeRequest>) -> R<DeleteVolumeResponse> {
        let req = req.into_inner();
        required(&req.volume_id, "volume_id")?;
        let existed = self.with(|st| st.volumes.remove(&req.volume_id).is_some());
        if !existed && self.bug(Bug::DeleteUnknownNotFound) {
            return Err(Status::not_found("no such volume"));
        }
        Ok(Response::new(DeleteVolumeResponse {}))
    }

    async fn controller_publish_volume(
        &self,
        _: Request<ControllerPublishVolumeRequest>,
    ) -> R<ControllerPublishVolumeResponse> {
        Err(Status::unimplemented("not advertised"))
    }

    async fn controller_unpublish_volume(
        &self,
        _: Request<ControllerUnpublishVolumeRequest>,
    ) -> R<ControllerUnpublishVolumeResponse> {
        Err(Status::unimplemented("not advertised"))
    }

    async fn validate_volume_capabilities(
        &self,
        req: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> R<ValidateVolumeCapabilitiesResponse> {
        let req = req.into_inner();
        required(&req.volume_id, "volume_id")?;
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities are required"));
        }
        let known = self.with(|st| st.volumes.contains_key(&req.volume_id));
        if !known && !self.bug(Bug::ValidateUnknownOk) {
            return Err(Status::not_found("no such volume"));
        }
        Ok(Response::new(ValidateVolumeCapabilitiesResponse {
            confirmed: Some(validate_volume_capabilities_response::Confirmed {
                volume_context: req.volume_context,
                volume_capabilities: req.volume_capabilities,
                parameters: req.parameters,
                mutable_parameters: Default::default(),
            }),
            message: String::new(),
        }))
    }

    async fn list_volumes(&self, req: Request<ListVolumesRequest>) -> R<ListVolumesResponse> {
        let req = req.into_inner();
        let all: Vec<Volume> = self.with(|st| {
            st.volumes
                .iter()
                .map(|(id, v)| self.volume(id, v))
                .collect()
        });
        let (vols, next_token) = page(
            &all,
            &req.starting_token,
            req.max_entries,
            self.bug(Bug::ListAcceptsAnyToken),
        )?;
        Ok(Response::new(ListVolumesResponse {
            entries: vols
                .into_iter()
                .map(|v| list_volumes_response::Entry {
                    volume: Some(v),
                    status: None,
                })
                .collect(),
            next_token,
        }))
    }

    async fn get_capacity(&self, _: Request<GetCapacityRequest>) -> R<GetCapacityResponse> {
        Ok(Response::new(GetCapacityResponse {
            available_capacity: 1 << 40,
            maximum_volume_size: None,
            minimum_volume_size: None,
        }))
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<ControllerGetCapabilitiesRequest>,
    ) -> R<ControllerGetCapabilitiesResponse> {
        use controller_service_capability::{Rpc, Type, rpc::Type as T};
        let caps = [
            T::CreateDeleteVolume,
            T::ListVolumes,
            T::GetCapacity,
            T::CreateDeleteSnapshot,
            T::ListSnapshots,
            T::CloneVolume,
            T::ExpandVolume,
        ];
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: caps
                .into_iter()
                .map(|t| ControllerServiceCapability {
                    r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
                })
                .collect(),
        }))
    }

    async fn create_snapshot(
        &self,
        req: Request<CreateSnapshotRequest>,
    ) -> R<CreateSnapshotResponse> {
        let req = req.into_inner();
        required(&req.name, "name")?;
        required(&req.source_volume_id, "source_volume_id")?;
        self.with(|st| {
            let Some(src) = st.volumes.get(&req.source_volume_id) else {
                return Err(Status::not_found("source volume not found"));
            };
            let size = src.size;
            if let Some((id, s)) = st.snapshots.iter().find(|(_, s)| s.name == req.name) {
                if s.source != req.source_volume_id {
                    return Err(Status::already_exists(
                        "snapshot name taken by another source",
                    ));
                }
                return Ok(Response::new(CreateSnapshotResponse {
                    snapshot: Some(Fake::snapshot(id, s)),
                }));
            }
            st.next += 1;
            let id = format!("fake-snap-{}", st.next);
            let created = prost_types::Timestamp {
                seconds: 1_700_000_000 + st.next as i64,
                nanos: 0,
            };
            let s = Snap {
                name: req.name.clone(),
                source: req.source_volume_id.clone(),
                size,
                created,
            };
            let out = Fake::snapshot(&id, &s);
            st.snapshots.insert(id, s);
            Ok(Response::new(CreateSnapshotResponse {
                snapshot: Some(out),
            }))
        })
    }

    async fn delete_snapshot(
        &self,
        req: Request<DeleteSnapshotRequest>,
    ) -> R<DeleteSnapshotResponse> {
        let req = req.into_inner();
        required(&req.snapshot_id, "snapshot_id")?;
        self.with(|st| st.snapshots.remove(&req.snapshot_id));
        Ok(Response::new(DeleteSnapshotResponse {}))
    }

    async fn list_snapshots(&self, req: Request<ListSnapshotsRequest>) -> R<ListSnapshotsResponse> {
        let req = req.into_inner();
        let all: Vec<Snapshot> = self.with(|st| {
            st.snapshots
                .iter()
                .filter(|(id, s)| {
                    (req.snapshot_id.is_empty() || **id == req.snapshot_id)
                        && (req.source_volume_id.is_empty() || s.source == req.source_volume_id)
                })
                .map(|(id, s)| Fake::snapshot(id, s))
                .collect()
        });
        let (snaps, next_token) = page(&all, &req.starting_token, req.max_entries, false)?;
        Ok(Response::new(ListSnapshotsResponse {
            entries: snaps
                .into_iter()
                .map(|s| list_snapshots_response::Entry { snapshot: Some(s) })
                .collect(),
            next_token,
        }))
    }

    async fn get_snapshot(&self, req: Request<GetSnapshotRequest>) -> R<GetSnapshotResponse> {
        let req = req.into_inner();
        self.with(|st| match st.snapshots.get(&req.snapshot_id) {
            Some(s) => Ok(Response::new(GetSnapshotResponse {
                snapshot: Some(Fake::snapshot(&req.snapshot_id, s)),
            })),
            None => Err(Status::not_found("no such snapshot")),
        })
    }

    async fn controller_expand_volume(
        &self,
        req: Request<ControllerExpandVolumeRequest>,
    ) -> R<ControllerExpandVolumeResponse> {
        let req = req.into_inner();
        required(&req.volume_id, "volume_id")?;
        let range = req
            .capacity_range
            .ok_or_else(|| Status::invalid_argument("capacity_range is required"))?;
        let size = size_of(Some(&range))?;
        self.with(|st| {
            let v = st
                .volumes
                .get_mut(&req.volume_id)
                .ok_or_else(|| Status::not_found("no such volume"))?;
            v.size = v.size.max(size);
            Ok(Response::new(ControllerExpandVolumeResponse {
                capacity_bytes: v.size,
                node_expansion_required: false,
            }))
        })
    }

    async fn controller_get_volume(
        &self,
        _: Request<ControllerGetVolumeRequest>,
    ) -> R<ControllerGetVolumeResponse> {
        Err(Status::unimplemented("not advertised"))
    }

    async fn controller_modify_volume(
        &self,
        _: Request<ControllerModifyVolumeRequest>,
    ) -> R<ControllerModifyVolumeResponse> {
        Err(Status::unimplemented("not advertised"))
    }
}
