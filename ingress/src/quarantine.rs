//! Finding the object(s) nginx refuses, so one bad object never blocks the others.
//!
//! Validation should make this unnecessary, but nginx can still refuse a valid-looking value
//! (an ExternalName that does not resolve, a limit we did not foresee). When the full candidate
//! fails `nginx -t`, [`isolate`] re-renders the model without objects and bisects: with the
//! origins in a fixed order, the smallest prefix whose config fails ends with a culprit; drop it
//! and repeat until the config passes. Cost: about log2(objects) checks per culprit.

use std::collections::BTreeSet;

use crate::model::{Model, ObjectRef};
use crate::nginx::{Apply, NginxError};
use crate::render::{RenderConfig, render};

/// Give up after this many culprits: beyond it the problem is not a few bad objects.
pub const MAX_CULPRITS: usize = 16;

/// Why isolation did not end in a passing config.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// Even the config without any object fails: not an object's fault.
    #[error("the config fails even without any object: {0}")]
    NotObjectRelated(#[source] NginxError),
    #[error("more than {MAX_CULPRITS} objects are refused by nginx; giving up")]
    TooMany,
    #[error("checking a candidate: {0}")]
    Check(#[source] NginxError),
}

/// One object nginx refused, with nginx's message for the smallest config that showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Culprit {
    pub object: ObjectRef,
    pub message: String,
}

async fn passes<A: Apply>(
    nginx: &mut A,
    model: &Model,
    excluded: &BTreeSet<ObjectRef>,
    config: &RenderConfig,
) -> Result<Result<(), String>, IsolateError> {
    let text = render(&model.without(excluded), config);
    match nginx.check(&text).await {
        Ok(()) => Ok(Ok(())),
        Err(NginxError::Rejected(msg)) => Ok(Err(msg)),
        Err(e) => Err(IsolateError::Check(e)),
    }
}

/// Find the objects whose removal makes `model` acceptable to nginx. `hint` (last round's
/// culprits) is tried first, so a known-bad object costs one check instead of a bisection.
pub async fn isolate<A: Apply>(
    nginx: &mut A,
    model: &Model,
    config: &RenderConfig,
    hint: &[Culprit],
) -> Result<Vec<Culprit>, IsolateError> {
    let origins: Vec<ObjectRef> = model.origins().into_iter().collect();
    let all: BTreeSet<ObjectRef> = origins.iter().cloned().collect();
    if let Err(msg) = passes(nginx, model, &all, config).await? {
        return Err(IsolateError::NotObjectRelated(NginxError::Rejected(msg)));
    }
    let mut culprits: Vec<Culprit> = hint
        .iter()
        .filter(|c| all.contains(&c.object))
        .cloned()
        .collect();
    loop {
        let excluded: BTreeSet<ObjectRef> = culprits.iter().map(|c| c.object.clone()).collect();
        if passes(nginx, model, &excluded, config).await?.is_ok() {
            return Ok(culprits);
        }
        if culprits.len() >= MAX_CULPRITS {
            return Err(IsolateError::TooMany);
        }
        let remaining: Vec<&ObjectRef> = origins.iter().filter(|o| !excluded.contains(o)).collect();
        // Invariant: including remaining[..lo] passes, including remaining[..hi] fails.
        let (mut lo, mut hi) = (0usize, remaining.len());
        let mut message = String::new();
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let mut without = excluded.clone();
            without.extend(remaining[mid..].iter().map(|o| (*o).clone()));
            match passes(nginx, model, &without, config).await? {
                Ok(()) => lo = mid,
                Err(msg) => {
                    hi = mid;
                    message = msg;
                }
            }
        }
        if message.is_empty() {
            let mut without = excluded.clone();
            without.extend(remaining[hi..].iter().map(|o| (*o).clone()));
            if let Err(msg) = passes(nginx, model, &without, config).await? {
                message = msg;
            }
        }
        culprits.push(Culprit {
            object: remaining[hi - 1].clone(),
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Location, PathKind, Server, Upstream};

    /// Refuses any config containing one of the marker paths.
    struct Picky {
        bad: Vec<&'static str>,
        checks: usize,
    }

    impl Apply for Picky {
        async fn check(&mut self, text: &str) -> Result<(), NginxError> {
            self.checks += 1;
            match self.bad.iter().find(|b| text.contains(*b)) {
                Some(b) => Err(NginxError::Rejected(format!("refused {b}"))),
                None => Ok(()),
            }
        }
        async fn apply(&mut self, text: &str) -> Result<(), NginxError> {
            self.check(text).await
        }
    }

    fn model(n: usize) -> Model {
        let locations = (0..n)
            .map(|i| Location {
                path: format!("/obj{i:03}"),
                kind: PathKind::Exact,
                upstream: "u".into(),
                origin: ObjectRef::new(Kind::Ingress, "ns", format!("obj{i:03}")),
                options: Default::default(),
            })
            .collect();
        Model {
            servers: vec![Server {
                locations,
                ..Server::new(None)
            }],
            upstreams: vec![Upstream {
                name: "u".into(),
                endpoints: vec![],
            }],
            ..Model::default()
        }
    }

    #[tokio::test]
    async fn finds_each_bad_object() {
        let config = RenderConfig::new("/tmp/q", 80, 443).unwrap();
        let table: &[(&[&'static str], &[&str])] = &[
            (&[], &[]),
            (&["/obj000 "], &["obj000"]),
            (&["/obj099 "], &["obj099"]),
            (&["/obj042 ", "/obj007 "], &["obj007", "obj042"]),
        ];
        for (bad, want) in table {
            let mut nginx = Picky {
                bad: bad.to_vec(),
                checks: 0,
            };
            let found = isolate(&mut nginx, &model(100), &config, &[])
                .await
                .unwrap();
            let mut names: Vec<&str> = found.iter().map(|c| c.object.name.as_str()).collect();
            names.sort();
            assert_eq!(&names, want);
            assert!(nginx.checks <= 2 + bad.len() * 9, "{} checks", nginx.checks);
            assert!(found.iter().all(|c| c.message.starts_with("refused")));
        }
    }

    #[tokio::test]
    async fn hint_saves_the_bisection() {
        let config = RenderConfig::new("/tmp/q", 80, 443).unwrap();
        let mut nginx = Picky {
            bad: vec!["/obj013 "],
            checks: 0,
        };
        let first = isolate(&mut nginx, &model(50), &config, &[]).await.unwrap();
        nginx.checks = 0;
        let again = isolate(&mut nginx, &model(50), &config, &first)
            .await
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(nginx.checks, 2);
    }

    #[tokio::test]
    async fn base_config_failure_is_not_blamed_on_objects() {
        let config = RenderConfig::new("/tmp/q", 80, 443).unwrap();
        let mut nginx = Picky {
            bad: vec!["events"],
            checks: 0,
        };
        let err = isolate(&mut nginx, &model(3), &config, &[])
            .await
            .unwrap_err();
        assert!(matches!(err, IsolateError::NotObjectRelated(_)));
    }
}
