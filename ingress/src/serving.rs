//! What the live nginx config serves: published by the sync loop after every applied pass
//! (`sync.rs`, [`crate::sync::Served`]) and read by the status writers, so an Ingress gets its
//! load-balancer status, and a Gateway API object `Accepted`/`Programmed`, only for what nginx
//! actually took (`status.rs`, `gateway/status.rs`).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Model, ObjectRef, Reason};

/// The live config's objects, and those nginx refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Serving {
    /// False until a config was applied (nothing is served yet).
    pub applied: bool,
    /// Every object the live config serves something of ([`Model::origins`]).
    pub origins: BTreeSet<ObjectRef>,
    /// Objects `nginx -t` refused and isolation dropped, with the report's detail.
    pub refused: BTreeMap<ObjectRef, String>,
}

impl Serving {
    /// What the applied `model` serves (its refused objects from its `NginxRejected` reports).
    pub fn of(model: &Model) -> Self {
        let refused = model
            .reports
            .iter()
            .filter(|r| r.reason == Reason::NginxRejected)
            .map(|r| (r.object.clone(), r.detail.clone()))
            .collect();
        Self {
            applied: true,
            origins: model.origins(),
            refused,
        }
    }

    pub fn serves(&self, o: &ObjectRef) -> bool {
        self.origins.contains(o)
    }
}
