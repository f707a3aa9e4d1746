//! `--domain-labels` (ceph-csi's way of finding where a node is): the node plugin reads the
//! labels it names from its own Node object through the Kubernetes API, once at start, and
//! reports each as a topology segment keyed `topology.<driver name>/<label name after its
//! last '/'>`, e.g. `topology.kubernetes.io/zone=a` -> `topology.rbd.csi.berth.dev/zone=a`
//! (ceph-csi's `GetTopologyFromDomainLabels` key; `topologyConstrainedPools`' `domainLabel:
//! zone` matches it). The segments merge with `--topology`'s.
//!
//! The pure part ([`DomainLabels::parse`], [`DomainLabels::segments`], [`merge`]) is
//! separate from the one API call ([`node_labels`]), which retries an unreachable API
//! server with backoff for a bounded time. A named label missing on the Node, a key given
//! both ways, an unknown Node or a refused `get`: the plugin refuses to start.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest segment key prefix (`topology.<driver>`): a label key's prefix part.
const PREFIX_LIMIT: usize = 63;

/// Default bound on waiting for the API server at start (`--domain-labels-wait-ms`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DomainLabelsError {
    #[error("--domain-labels names {0:?} twice")]
    Duplicate(String),
    #[error("--domain-labels item {0:?} is not a label name")]
    BadLabel(String),
    #[error("--domain-labels {first:?} and {second:?} would both report segment {key:?}")]
    SameKey {
        first: String,
        second: String,
        key: String,
    },
    #[error("topology key prefix {0:?} (from the driver name) exceeds 63 characters")]
    PrefixTooLong(String),
    #[error("node {node:?} lacks the domain label(s) {labels:?} named by --domain-labels")]
    Missing { node: String, labels: Vec<String> },
    #[error(
        "topology key {key:?} is given both by --topology and by --domain-labels \
         (label {label:?}); give it one way"
    )]
    Conflict { key: String, label: String },
    #[error("--domain-labels: no Kubernetes API client configuration (in-cluster or KUBECONFIG)")]
    Config(#[source] kube::config::InferConfigError),
    #[error("--domain-labels: Kubernetes API client")]
    Client(#[source] kube::Error),
    #[error("--domain-labels: get node {node:?}: the API server refused it ({code}); {hint}")]
    Refused {
        node: String,
        code: u16,
        hint: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("--domain-labels: get node {node:?}: API server unreachable for {waited:?}")]
    Unreachable {
        node: String,
        waited: Duration,
        #[source]
        source: kube::Error,
    },
}

/// The parsed flag: the label keys to read, each with the segment key it becomes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainLabels {
    /// (node label key, segment key), in flag order.
    pub labels: Vec<(String, String)>,
}

impl DomainLabels {
    /// `--domain-labels a/zone,region` for driver `driver`. Empty items are ignored; a label
    /// named twice, or two labels with the same name after their prefix, are refused.
    pub fn parse(items: &[String], driver: &str) -> Result<DomainLabels, DomainLabelsError> {
        let prefix = format!("topology.{}", driver.to_lowercase());
        let mut labels: Vec<(String, String)> = Vec::new();
        for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if prefix.len() > PREFIX_LIMIT {
                return Err(DomainLabelsError::PrefixTooLong(prefix));
            }
            let name = item.rsplit('/').next().unwrap_or_default();
            if name.is_empty() || item.len() > 316 || item.chars().any(|c| c.is_whitespace()) {
                return Err(DomainLabelsError::BadLabel(item.to_string()));
            }
            let key = format!("{prefix}/{name}");
            if let Some((first, _)) = labels.iter().find(|(l, k)| l == item || *k == key) {
                return Err(if first == item {
                    DomainLabelsError::Duplicate(item.to_string())
                } else {
                    DomainLabelsError::SameKey {
                        first: first.clone(),
                        second: item.to_string(),
                        key,
                    }
                });
            }
            labels.push((item.to_string(), key));
        }
        Ok(DomainLabels { labels })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The segments from the Node's labels; every named label must be there.
    pub fn segments(
        &self,
        node: &str,
        node_labels: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DomainLabelsError> {
        let missing: Vec<String> = self
            .labels
            .iter()
            .filter(|(l, _)| !node_labels.contains_key(l))
            .map(|(l, _)| l.clone())
            .collect();
        if !missing.is_empty() {
            return Err(DomainLabelsError::Missing {
                node: node.to_string(),
                labels: missing,
            });
        }
        Ok(self
            .labels
            .iter()
            .map(|(l, k)| (k.clone(), node_labels[l].clone()))
            .collect())
    }

    /// Refuse a segment key `--topology` already gives (checked before the API call, so a
    /// wrong flag fails at once).
    pub fn check_against(&self, flags: &BTreeMap<String, String>) -> Result<(), DomainLabelsError> {
        match self.labels.iter().find(|(_, k)| flags.contains_key(k)) {
            Some((label, key)) => Err(DomainLabelsError::Conflict {
                key: key.clone(),
                label: label.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// `--topology`'s segments plus the labels' (a key in both is refused).
pub fn merge(
    flags: &BTreeMap<String, String>,
    labels: &DomainLabels,
    from_labels: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, DomainLabelsError> {
    labels.check_against(flags)?;
    let mut out = flags.clone();
    out.extend(from_labels);
    Ok(out)
}

/// Is this API error worth another try (the server unreachable, overloaded or starting)?
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The Node's labels through the API (in-cluster config, else KUBECONFIG / ~/.kube/config).
/// An unreachable server is retried with backoff (0.2 s doubling to 5 s) for `wait`, then
/// refused; a
/// definite answer (no such Node, forbidden) fails at once.
pub async fn node_labels(
    node: &str,
    wait: Duration,
) -> Result<BTreeMap<String, String>, DomainLabelsError> {
    use k8s_openapi::api::core::v1::Node;
    let config = kube::Config::infer()
        .await
        .map_err(DomainLabelsError::Config)?;
    let client = kube::Client::try_from(config).map_err(DomainLabelsError::Client)?;
    let api: kube::Api<Node> = kube::Api::all(client);
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let err = match api.get(node).await {
            Ok(n) => return Ok(n.metadata.labels.unwrap_or_default()),
            Err(e) => e,
        };
        if !transient(&err) {
            let (code, hint) = match &err {
                kube::Error::Api(s) if s.code == 404 => (404, "no Node of that name (--node-id)"),
                kube::Error::Api(s) if s.code == 401 || s.code == 403 => (
                    s.code,
                    "the node plugin's ServiceAccount needs get on nodes (deploy/csi/rbac-node.yaml)",
                ),
                kube::Error::Api(s) => (s.code, "see the cause"),
                _ => (0, "see the cause"),
            };
            return Err(DomainLabelsError::Refused {
                node: node.to_string(),
                code,
                hint,
                source: err,
            });
        }
        let waited = start.elapsed();
        if waited >= wait {
            return Err(DomainLabelsError::Unreachable {
                node: node.to_string(),
                waited,
                source: err,
            });
        }
        let delay_now = delay.min(wait - waited);
        tracing::warn!(node, error = %err, retry_in = ?delay_now, "--domain-labels: API server not answering");
        tokio::time::sleep(delay_now).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRIVER: &str = "rbd.csi.berth.dev";

    fn items(s: &str) -> Vec<String> {
        s.split(',').map(String::from).collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_are_ceph_csis() {
        let d = DomainLabels::parse(
            &items("topology.kubernetes.io/zone, topology.kubernetes.io/region,rack,"),
            "RBD.csi.Berth.dev",
        )
        .unwrap();
        let keys: Vec<&str> = d.labels.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "topology.rbd.csi.berth.dev/zone",
                "topology.rbd.csi.berth.dev/region",
                "topology.rbd.csi.berth.dev/rack"
            ]
        );
        assert!(DomainLabels::parse(&items(""), DRIVER).unwrap().is_empty());
    }

    #[test]
    fn bad_flags_are_refused() {
        let e = DomainLabels::parse(&items("a/zone,a/zone"), DRIVER).unwrap_err();
        assert!(
            matches!(e, DomainLabelsError::Duplicate(ref l) if l == "a/zone"),
            "{e}"
        );
        let e = DomainLabels::parse(&items("a.io/zone,b.io/zone"), DRIVER).unwrap_err();
        assert!(matches!(e, DomainLabelsError::SameKey { .. }), "{e}");
        assert!(e.to_string().contains("b.io/zone"), "{e}");
        for bad in ["a/", "a b", "/"] {
            let e = DomainLabels::parse(&items(bad), DRIVER).unwrap_err();
            assert!(matches!(e, DomainLabelsError::BadLabel(_)), "{bad}: {e}");
        }
        let long = "d".repeat(60);
        let e = DomainLabels::parse(&items("zone"), &long).unwrap_err();
        assert!(matches!(e, DomainLabelsError::PrefixTooLong(_)), "{e}");
        // A long driver name is fine while no label is asked for.
        assert!(DomainLabels::parse(&[], &long).unwrap().is_empty());
    }

    #[test]
    fn labels_become_segments_and_a_missing_one_is_named() {
        let d = DomainLabels::parse(&items("topology.kubernetes.io/zone,x/rack"), DRIVER).unwrap();
        let node = map(&[
            ("topology.kubernetes.io/zone", "z1"),
            ("x/rack", "r7"),
            ("kubernetes.io/hostname", "n1"),
        ]);
        assert_eq!(
            d.segments("n1", &node).unwrap(),
            map(&[
                ("topology.rbd.csi.berth.dev/zone", "z1"),
                ("topology.rbd.csi.berth.dev/rack", "r7")
            ])
        );
        let e = d
            .segments("n1", &map(&[("topology.kubernetes.io/zone", "z1")]))
            .unwrap_err();
        assert!(
            matches!(&e, DomainLabelsError::Missing { labels, .. } if labels == &["x/rack"]),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("x/rack") && msg.contains("n1"), "{msg}");
    }

    #[test]
    fn merge_with_topology_flags_refuses_a_key_given_both_ways() {
        let d = DomainLabels::parse(&items("topology.kubernetes.io/zone"), DRIVER).unwrap();
        let from = map(&[("topology.rbd.csi.berth.dev/zone", "z1")]);
        let flags = map(&[("topology.rbd.csi.berth.dev/rack", "1")]);
        let m = merge(&flags, &d, from.clone()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["topology.rbd.csi.berth.dev/zone"], "z1");
        let flags = map(&[("topology.rbd.csi.berth.dev/zone", "a")]);
        let e = merge(&flags, &d, from).unwrap_err();
        assert!(matches!(e, DomainLabelsError::Conflict { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("\"topology.rbd.csi.berth.dev/zone\""),
            "{e}"
        );
    }
}
