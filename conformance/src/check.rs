//! Assertions on gRPC results, with messages that say what the spec wanted and what came back.

use anyhow::{Result, anyhow, bail};
use tonic::{Code, Response, Status};

/// The response, or an error naming the RPC and the status it failed with.
pub fn ok<T>(r: Result<Response<T>, Status>, rpc: &str) -> Result<T> {
    r.map(Response::into_inner)
        .map_err(|s| anyhow!("{rpc}: expected OK, got {:?}: {}", s.code(), s.message()))
}

/// The call must fail with exactly `code`.
pub fn code<T: std::fmt::Debug>(
    r: Result<Response<T>, Status>,
    want: Code,
    rpc: &str,
) -> Result<()> {
    codes(r, &[want], rpc)
}

/// The call must fail with one of `want` (where the spec allows a choice).
pub fn codes<T: std::fmt::Debug>(
    r: Result<Response<T>, Status>,
    want: &[Code],
    rpc: &str,
) -> Result<()> {
    match r {
        Ok(resp) => bail!(
            "{rpc}: expected {}, got OK ({:?})",
            names(want),
            resp.into_inner()
        ),
        Err(s) if want.contains(&s.code()) => Ok(()),
        Err(s) => bail!(
            "{rpc}: expected {}, got {:?}: {}",
            names(want),
            s.code(),
            s.message()
        ),
    }
}

/// OK or one of the error codes in `also` (e.g. OK or NOT_FOUND for an unknown id).
pub fn ok_or<T>(r: Result<Response<T>, Status>, also: &[Code], rpc: &str) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(s) if also.contains(&s.code()) => Ok(()),
        Err(s) => bail!(
            "{rpc}: expected OK or {}, got {:?}: {}",
            names(also),
            s.code(),
            s.message()
        ),
    }
}

fn names(codes: &[Code]) -> String {
    codes
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// An id no driver issued (csi-sanity uses the same style).
pub const UNKNOWN_VOLUME_ID: &str = "fake-vol-id-1234";
pub const UNKNOWN_SNAPSHOT_ID: &str = "fake-snap-id-1234";
pub const UNKNOWN_NODE_ID: &str = "fake-node-id-1234";
