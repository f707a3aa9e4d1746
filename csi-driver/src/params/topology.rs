//! Topology-aware provisioning (pure): the StorageClass parameter `topologyConstrainedPools`
//! in ceph-csi's JSON format picks the pool a new volume goes to from the request's
//! accessibility requirements (preferred topologies first, then requisite ones).
//!
//! ```json
//! [{"poolName": "rbd-a", "dataPoolName": "ec-a",
//!   "domainSegments": [{"domainLabel": "zone", "value": "a"}]}]
//! ```
//!
//! A pool fits a topology when each of its domain segments is in it, under the label itself
//! or any `<prefix>/<label>` key (the node's `--topology topology.rbd.csi.berth.dev/zone=a`
//! matches `domainLabel: zone`). The volume is then accessible from the matched segments.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::csi::{Topology, TopologyRequirement};
use crate::error::{Error, Result};
use crate::volume_id::legal_name;

/// The parameter's key.
pub const KEY: &str = "topologyConstrainedPools";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstrainedPool {
    #[serde(rename = "poolName")]
    pub pool: String,
    #[serde(rename = "dataPoolName", default)]
    pub data_pool: Option<String>,
    #[serde(rename = "domainSegments")]
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    #[serde(rename = "domainLabel")]
    pub label: String,
    pub value: String,
}

/// The pool a request goes to and where the volume is accessible from.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub pool: String,
    pub data_pool: Option<String>,
    pub accessible: Topology,
}

/// Why a `topologyConstrainedPools` value is refused (INVALID_ARGUMENT, chosen in
/// [`crate::error`]).
#[derive(Debug, thiserror::Error)]
pub enum PoolsError {
    #[error(
        "topologyConstrainedPools is not a JSON list of {{poolName, dataPoolName?, domainSegments}}"
    )]
    Json(#[source] serde_json::Error),
    #[error("topologyConstrainedPools lists no pool")]
    Empty,
    #[error("topologyConstrainedPools: {key} {name:?} is not a legal pool name")]
    BadPoolName { key: &'static str, name: String },
    #[error("topologyConstrainedPools: pool {pool:?} has no domainSegments")]
    NoSegments { pool: String },
    #[error(
        "topologyConstrainedPools: pool {pool:?}: a domain segment needs a domainLabel and a value"
    )]
    BadSegment { pool: String },
}

/// Parse and check the JSON; INVALID_ARGUMENT saying what is wrong.
pub fn parse(json: &str) -> std::result::Result<Vec<ConstrainedPool>, PoolsError> {
    let pools: Vec<ConstrainedPool> = serde_json::from_str(json).map_err(PoolsError::Json)?;
    if pools.is_empty() {
        return Err(PoolsError::Empty);
    }
    for p in &pools {
        for (key, name) in [
            ("poolName", Some(&p.pool)),
            ("dataPoolName", p.data_pool.as_ref()),
        ] {
            if let Some(n) = name
                && !legal_name(n)
            {
                return Err(PoolsError::BadPoolName {
                    key,
                    name: n.clone(),
                });
            }
        }
        if p.segments.is_empty() {
            return Err(PoolsError::NoSegments {
                pool: p.pool.clone(),
            });
        }
        if p.segments
            .iter()
            .any(|s| s.label.is_empty() || s.value.is_empty())
        {
            return Err(PoolsError::BadSegment {
                pool: p.pool.clone(),
            });
        }
    }
    Ok(pools)
}

/// The key of `segments` that carries `label`: the label itself or `<prefix>/<label>`.
fn key_for<'a>(segments: &'a HashMap<String, String>, label: &str) -> Option<&'a String> {
    segments
        .keys()
        .filter(|k| *k == label || k.rsplit_once('/').is_some_and(|(_, l)| l == label))
        .min()
}

/// The segments of `t` that make `pool` fit it, or `None`.
fn fits(pool: &ConstrainedPool, t: &Topology) -> Option<BTreeMap<String, String>> {
    let mut matched = BTreeMap::new();
    for s in &pool.segments {
        let key = key_for(&t.segments, &s.label)?;
        if t.segments[key] != s.value {
            return None;
        }
        matched.insert(key.clone(), s.value.clone());
    }
    Some(matched)
}

/// Choose a pool for `req`: the first pool fitting the first preferred topology that any
/// pool fits, else the same over the requisite ones. `Ok(None)` without constrained pools or
/// without requirements (the StorageClass's `pool` applies); RESOURCE_EXHAUSTED when no pool
/// fits any of them.
pub fn choose(
    pools: &[ConstrainedPool],
    req: Option<&TopologyRequirement>,
) -> Result<Option<Choice>> {
    let Some(req) = req.filter(|r| !r.preferred.is_empty() || !r.requisite.is_empty()) else {
        return Ok(None);
    };
    if pools.is_empty() {
        return Ok(None);
    }
    for t in req.preferred.iter().chain(&req.requisite) {
        for p in pools {
            if let Some(segments) = fits(p, t) {
                return Ok(Some(Choice {
                    pool: p.pool.clone(),
                    data_pool: p.data_pool.clone(),
                    accessible: Topology {
                        segments: segments.into_iter().collect(),
                    },
                }));
            }
        }
    }
    let show =
        |ts: &[Topology]| format!("{:?}", ts.iter().map(|t| &t.segments).collect::<Vec<_>>());
    Err(Error::NoPoolFits {
        preferred: show(&req.preferred),
        requisite: show(&req.requisite),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(pairs: &[(&str, &str)]) -> Topology {
        Topology {
            segments: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const JSON: &str = r#"[
        {"poolName":"pa","domainSegments":[{"domainLabel":"zone","value":"a"}]},
        {"poolName":"pb","dataPoolName":"ec-b",
         "domainSegments":[{"domainLabel":"zone","value":"b"},{"domainLabel":"rack","value":"1"}]}
    ]"#;

    #[test]
    fn picks_preferred_then_requisite() {
        let pools = parse(JSON).unwrap();
        assert_eq!(choose(&pools, None).unwrap(), None);
        let any = TopologyRequirement {
            requisite: vec![topo(&[("zone", "q")])],
            preferred: vec![],
        };
        assert_eq!(
            choose(&[], Some(&any)).unwrap(),
            None,
            "no constrained pools"
        );
        let req = TopologyRequirement {
            requisite: vec![topo(&[("topology.x/zone", "a")])],
            preferred: vec![
                topo(&[("topology.x/zone", "c")]),
                topo(&[
                    ("topology.x/zone", "b"),
                    ("topology.x/rack", "1"),
                    ("host", "h"),
                ]),
            ],
        };
        let c = choose(&pools, Some(&req)).unwrap().unwrap();
        assert_eq!(c.pool, "pb");
        assert_eq!(c.data_pool.as_deref(), Some("ec-b"));
        assert_eq!(c.accessible.segments.len(), 2);
        assert_eq!(c.accessible.segments["topology.x/rack"], "1");
        let req = TopologyRequirement {
            requisite: vec![topo(&[("zone", "a")])],
            preferred: vec![],
        };
        assert_eq!(choose(&pools, Some(&req)).unwrap().unwrap().pool, "pa");
        let req = TopologyRequirement {
            requisite: vec![topo(&[("zone", "z")]), topo(&[("rack", "1")])],
            preferred: vec![],
        };
        let e = choose(&pools, Some(&req)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn bad_json_is_refused() {
        for bad in [
            "",
            "{}",
            "[]",
            r#"[{"poolName":"p"}]"#,
            r#"[{"poolName":"p","domainSegments":[]}]"#,
            r#"[{"poolName":"a/b","domainSegments":[{"domainLabel":"z","value":"a"}]}]"#,
            r#"[{"poolName":"p","domainSegments":[{"domainLabel":"","value":"a"}]}]"#,
            r#"[{"poolName":"p","typo":1,"domainSegments":[{"domainLabel":"z","value":"a"}]}]"#,
        ] {
            let e: Error = parse(bad).unwrap_err().into();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }
}
