//! Rate limits for `render.rs`: the http-level zones (one per Ingress and kind, 1 MiB each,
//! keyed by client address) and the per-location `limit_req` / `limit_conn` lines. Past a
//! limit nginx answers `503` (its default, as ingress-nginx). Values come from
//! `translate/limits.rs` (numbers and a hex zone name).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::model::{Model, RateLimit};

/// Shared memory per zone: 1 MiB holds about 16 000 client addresses.
const ZONE_SIZE: &str = "1m";

fn rps_zone(l: &RateLimit, n: u32) -> String {
    format!("{}_rps{n}", l.zone)
}

fn rpm_zone(l: &RateLimit, n: u32) -> String {
    format!("{}_rpm{n}", l.zone)
}

/// The `limit_req_zone` / `limit_conn_zone` lines every limited location needs, once each.
pub(crate) fn zones(out: &mut String, model: &Model) {
    let mut lines = BTreeSet::new();
    for l in model
        .servers
        .iter()
        .flat_map(|s| &s.locations)
        .filter_map(|l| l.options.rate_limit.as_ref())
    {
        if let Some(n) = l.rps {
            lines.insert(format!(
                "    limit_req_zone $binary_remote_addr zone={}:{ZONE_SIZE} rate={n}r/s;",
                rps_zone(l, n)
            ));
        }
        if let Some(n) = l.rpm {
            lines.insert(format!(
                "    limit_req_zone $binary_remote_addr zone={}:{ZONE_SIZE} rate={n}r/m;",
                rpm_zone(l, n)
            ));
        }
        if l.connections.is_some() {
            lines.insert(format!(
                "    limit_conn_zone $binary_remote_addr zone={}_conn:{ZONE_SIZE};",
                l.zone
            ));
        }
    }
    for line in &lines {
        _ = writeln!(out, "{line}");
    }
    if !lines.is_empty() {
        out.push('\n');
    }
}

/// The limit lines of one location.
pub(crate) fn location_limits(out: &mut String, l: &RateLimit) {
    let m = u64::from(l.burst_multiplier);
    if let Some(n) = l.rps {
        let burst = u64::from(n) * m;
        _ = writeln!(
            out,
            "            limit_req zone={} burst={burst} nodelay;",
            rps_zone(l, n)
        );
    }
    if let Some(n) = l.rpm {
        let burst = u64::from(n) * m;
        _ = writeln!(
            out,
            "            limit_req zone={} burst={burst} nodelay;",
            rpm_zone(l, n)
        );
    }
    if let Some(n) = l.connections {
        _ = writeln!(out, "            limit_conn {}_conn {n};", l.zone);
    }
}
