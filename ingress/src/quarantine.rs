//! Finding the object(s) nginx refuses, so one bad object never blocks the others.
//!
//! Validation should make this unnecessary, but nginx can still refuse a valid-looking value
//! (an ExternalName that does not resolve, a certificate chain OpenSSL's security level
//! refuses, a limit we did not foresee). When the full candidate fails `nginx -t`, [`isolate`]
//! re-renders the model without objects and bisects. Every part of a config is attributed to
//! an object ([`Model::origins`]: locations, server TLS, fallbacks, the default certificate),
//! so the config without any object is the bare base config, and whatever nginx refuses
//! belongs to some object.
//!
//! The search: nginx's message usually names the culprit (a certificate file, or a line of the
//! candidate, which render prefixes with a `# Kind/namespace/name` comment): that object is
//! confirmed with one check of the base config plus it alone, so a culprit usually costs two
//! checks whatever the number of objects (20 among 200: 42). Otherwise: with the origins in a
//! fixed order, the smallest prefix whose config fails ends with a culprit; drop it and look for the next one in the rest, knowing that everything
//! before it passed (so the next search starts there). There is no cap on the number of
//! culprits: giving up would freeze every namespace's updates. Cost without a usable message:
//! one check of the base,
//! then per culprit one check of "everything else" plus a bisection over the objects after the
//! previous culprit: at most k * (1 + log2 n) + 2 `nginx -t` runs for k culprits among n
//! objects (20 among 200: 159 measured by the unit test). Last round's culprits (`hint`) are
//! checked alone first (one check each) and excluded if they still fail, so a known-bad object
//! costs one check instead of a bisection, and a fixed one is served again.

use std::collections::BTreeSet;

use crate::model::{Model, ObjectRef};
use crate::nginx::{Apply, NginxError};
use crate::render::{RenderConfig, render};

/// Why isolation did not end in a passing config.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// Even the config without any object fails: not an object's fault.
    #[error("the config fails even without any object: {0}")]
    NotObjectRelated(#[source] NginxError),
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
    Ok(check(nginx, model, excluded, config)
        .await?
        .map_err(|(msg, _)| msg))
}

/// Like [`passes`], but a refusal also returns the text nginx refused.
async fn check<A: Apply>(
    nginx: &mut A,
    model: &Model,
    excluded: &BTreeSet<ObjectRef>,
    config: &RenderConfig,
) -> Result<Result<(), (String, String)>, IsolateError> {
    let text = render(&model.without(excluded), config);
    match nginx.check(&text).await {
        Ok(()) => Ok(Ok(())),
        Err(NginxError::Rejected(msg)) => Ok(Err((msg, text))),
        Err(e) => Err(IsolateError::Check(e)),
    }
}

/// The object nginx's message points at, if it names one: a certificate file
/// (`tls/<id>.pem`) or a line of the refused `text` (`...conf:LINE`), read back to the
/// `# Kind/ns/name` comment render writes before each location, or to the server's TLS owner,
/// or to a user of the upstream block. Only a guess: [`isolate`] verifies it with one check.
fn suspect(model: &Model, text: &str, message: &str) -> Option<ObjectRef> {
    let origins = model.origins();
    for s in &model.servers {
        if let Some(t) = &s.tls
            && let crate::model::ServerTls::Certificate(id) = &t.certificate
            && message.contains(&format!("/{id}.pem"))
        {
            return Some(t.origin.clone());
        }
    }
    let at = message.find(".conf:")? + ".conf:".len();
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let line: usize = digits.parse().ok()?;
    let lines: Vec<&str> = text.lines().collect();
    for l in lines.get(..line.min(lines.len()))?.iter().rev() {
        if let Some(comment) = l.trim_start().strip_prefix("# ") {
            let name = comment.trim_end_matches(" (default backend)");
            return origins.iter().find(|o| o.to_string() == name).cloned();
        }
        if let Some(up) = l.strip_prefix("    upstream ") {
            let up = up.trim_end_matches(" {");
            return model.servers.iter().find_map(|s| {
                s.locations
                    .iter()
                    .find(|loc| loc.upstream == up)
                    .map(|loc| loc.origin.clone())
                    .or_else(|| {
                        s.fallback
                            .as_ref()
                            .filter(|f| f.upstream == up)
                            .map(|f| f.origin.clone())
                    })
            });
        }
        if *l == "    server {" {
            break;
        }
    }
    // A server-level line (listen, ssl_certificate): the server of that line's TLS owner.
    let start = lines
        .get(..line.min(lines.len()))?
        .iter()
        .rposition(|l| *l == "    server {")?;
    let name = lines[start..]
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("server_name "))?;
    let name = name.trim_end_matches(';');
    model.servers.iter().find_map(|s| {
        let host = s.host.as_ref()?.to_string();
        (host == name).then(|| s.tls.as_ref().map(|t| t.origin.clone()))?
    })
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
    // A hinted culprit is kept only if it still fails on its own (its owner may have fixed
    // it; keeping it dropped would freeze that owner behind whoever is bad now).
    let mut culprits = Vec::new();
    for h in hint.iter().filter(|c| all.contains(&c.object)) {
        let mut others = all.clone();
        others.remove(&h.object);
        if let Err(message) = passes(nginx, model, &others, config).await? {
            culprits.push(Culprit {
                object: h.object.clone(),
                message,
            });
        }
    }
    // remaining[..known_good] passes together (with the culprits excluded).
    let mut known_good = 0usize;
    loop {
        let excluded: BTreeSet<ObjectRef> = culprits.iter().map(|c| c.object.clone()).collect();
        let Err((mut message, text)) = check(nginx, model, &excluded, config).await? else {
            return Ok(culprits);
        };
        let remaining: Vec<&ObjectRef> = origins.iter().filter(|o| !excluded.contains(o)).collect();
        // nginx usually names the culprit (a file or a line): one check confirms it alone.
        if let Some(s) = suspect(&model.without(&excluded), &text, &message) {
            let mut others = all.clone();
            others.remove(&s);
            if let Err(message) = passes(nginx, model, &others, config).await? {
                if remaining
                    .iter()
                    .position(|o| **o == s)
                    .is_some_and(|i| i < known_good)
                {
                    known_good -= 1;
                }
                culprits.push(Culprit { object: s, message });
                continue;
            }
        }
        // Invariant: including remaining[..lo] passes, including remaining[..hi] fails.
        let (mut lo, mut hi) = (known_good.min(remaining.len()), remaining.len());
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
        culprits.push(Culprit {
            object: remaining[hi - 1].clone(),
            message,
        });
        // remaining[..hi - 1] passed; without the culprit it is the next round's prefix.
        known_good = hi - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, PathKind, Server, one_server_model};

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
        one_server_model(PathKind::Exact, (0..n).map(|i| format!("obj{i:03}")))
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

    /// Issue 12 item 2: more than 16 refused objects used to end in `TooMany` (nothing applied).
    #[tokio::test]
    async fn twenty_refused_objects_among_many_are_all_found() {
        let config = RenderConfig::new("/tmp/q", 80, 443).unwrap();
        let bad: Vec<String> = (0..20).map(|i| format!("/obj{:03} ", i * 7 + 3)).collect();
        let leaked: Vec<&'static str> = bad.iter().map(|b| &*b.clone().leak()).collect();
        let mut nginx = Picky {
            bad: leaked,
            checks: 0,
        };
        let found = isolate(&mut nginx, &model(200), &config, &[])
            .await
            .unwrap();
        assert_eq!(found.len(), 20, "{found:?}");
        // At most k * (1 + log2 n) + 2 checks (log2 200 < 8).
        assert!(nginx.checks <= 2 + 20 * 9, "{} checks", nginx.checks);
    }

    /// Issue 12 item 2: an object whose only contribution is a host's certificate (no
    /// location) is found like any other.
    #[tokio::test]
    async fn a_tls_only_object_is_found() {
        use crate::model::{Host, ServerTls, TlsChoice};
        let config = RenderConfig::new("/tmp/q", 80, 443).unwrap();
        let mut m = model(30);
        let mut tls_only = Server::new(Some(Host::Exact("t.example.com".into())));
        tls_only.tls = Some(TlsChoice {
            certificate: ServerTls::Certificate("evil_weak_0011".into()),
            origin: ObjectRef::new(Kind::Ingress, "evil", "tls-only"),
        });
        m.servers.push(tls_only);
        let mut nginx = Picky {
            bad: vec!["evil_weak_0011.pem"],
            checks: 0,
        };
        let found = isolate(&mut nginx, &m, &config, &[]).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].object.to_string(), "Ingress/evil/tls-only");
    }

    /// Like nginx: names the file and line of the first refused directive.
    struct Liney(Picky);

    impl Apply for Liney {
        async fn check(&mut self, text: &str) -> Result<(), NginxError> {
            self.0.checks += 1;
            let line = text
                .lines()
                .position(|l| self.0.bad.iter().any(|b| l.contains(b.trim_end())));
            match line {
                Some(n) => Err(NginxError::Rejected(format!(
                    "nginx: [emerg] refused in /p/.berth-candidate-x.conf:{}",
                    n + 1
                ))),
                None => Ok(()),
            }
        }
        async fn apply(&mut self, text: &str) -> Result<(), NginxError> {
            self.check(text).await
        }
    }

    /// When nginx names the line, each culprit costs two checks (confirm it alone, then the
    /// rest), whatever the number of objects.
    #[tokio::test]
    async fn the_line_nginx_names_is_confirmed_instead_of_bisecting() {
        let config = RenderConfig::new("/tmp/q", 80, 443).unwrap();
        let bad: Vec<&'static str> = (0..20)
            .map(|i| &*format!("/obj{:03} ", i * 7 + 3).leak())
            .collect();
        let mut nginx = Liney(Picky {
            bad: bad.clone(),
            checks: 0,
        });
        let found = isolate(&mut nginx, &model(200), &config, &[])
            .await
            .unwrap();
        let mut names: Vec<String> = found
            .iter()
            .map(|c| format!("/{} ", c.object.name))
            .collect();
        names.sort();
        assert_eq!(names, bad);
        assert!(nginx.0.checks <= 2 + 20 * 2, "{} checks", nginx.0.checks);
        eprintln!("20 culprits among 200 objects: {} checks", nginx.0.checks);
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
        // Base, the hint alone, everything but the hint.
        assert_eq!(nginx.checks, 3);
    }

    /// A culprit fixed by its owner while another object is bad is not kept dropped.
    #[tokio::test]
    async fn a_fixed_hint_is_served_again() {
        let config = RenderConfig::new("/tmp/q", 80, 443).unwrap();
        let mut nginx = Picky {
            bad: vec!["/obj013 "],
            checks: 0,
        };
        let first = isolate(&mut nginx, &model(50), &config, &[]).await.unwrap();
        nginx.bad = vec!["/obj031 "];
        let now = isolate(&mut nginx, &model(50), &config, &first)
            .await
            .unwrap();
        let names: Vec<&str> = now.iter().map(|c| c.object.name.as_str()).collect();
        assert_eq!(names, ["obj031"]);
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
