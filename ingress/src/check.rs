//! `berth-ingress check --from DIR` (pure): for each Ingress of a directory of manifests, which
//! annotations berth honours, which it refuses and why, and whether the Ingress would be
//! served — so an operator moving off ingress-nginx knows before switching.
//!
//! The verdicts come from the real translation (`translate::build` with the same flags as
//! `run`), not from a second list: an Ingress is "served" when the model serves something of
//! it, and an annotation is refused when translation's report names it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::{Kind, ObjectRef, Reason, Report};
use crate::snapshot::Snapshot;
use crate::translate::annotations::{
    KNOWN_ANNOTATIONS, NGINX_EQUIVALENTS, is_snippet, nginx_name, shown,
};
use crate::translate::{self, TranslateConfig};

/// What berth does with one annotation of an Ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Honoured; `Some(key)`: as this `berth.dev/` annotation (an ingress-nginx spelling).
    Honoured(Option<&'static str>),
    /// Refused: the Ingress is not served. The reason, as the controller would report it.
    Refused(String),
    /// Not implemented, ignored as `--ignore-annotations` asks (the Ingress is served).
    Ignored,
    /// Not a `berth.dev/` or ingress-nginx annotation: not berth's business.
    NotOurs,
}

/// One Ingress's verdicts.
#[derive(Clone, Debug)]
pub struct IngressCheck {
    pub ingress: ObjectRef,
    /// Of berth's IngressClass (else berth does not serve it, whatever it carries).
    pub ours: bool,
    /// Something of it would be served.
    pub served: bool,
    /// By annotation key as reports show it.
    pub annotations: BTreeMap<String, Verdict>,
    /// Every report about it (annotations, hosts, paths, backends, TLS).
    pub reports: Vec<Report>,
}

/// Check every Ingress of `snapshot`.
pub fn check(snapshot: &Snapshot, config: &TranslateConfig) -> Vec<IngressCheck> {
    let model = translate::build(snapshot, config);
    let served = model.origins();
    let owned = translate::ingress::owned(snapshot, config);
    let mut out = Vec::new();
    for ing in &snapshot.ingresses {
        let ingress = match translate::origin(Kind::Ingress, &ing.metadata, false) {
            Ok(o) => o,
            Err(r) => r.object,
        };
        let reports: Vec<Report> = model
            .reports
            .iter()
            .filter(|r| r.object == ingress)
            .cloned()
            .collect();
        let mut annotations = BTreeMap::new();
        for key in ing.metadata.annotations.iter().flat_map(|a| a.keys()) {
            let field = format!("metadata.annotations[{}]", shown(key));
            let verdict = match reports.iter().find(|r| r.field == field) {
                Some(r) if r.reason == Reason::IgnoredAnnotation => Verdict::Ignored,
                // One report names every unsupported key; say it per key.
                Some(r) if r.reason == Reason::UnsupportedAnnotation => classify(key, config),
                Some(r) => Verdict::Refused(format!("{} ({})", r.detail, r.reason.as_str())),
                None => classify(key, config),
            };
            annotations.insert(shown(key), verdict);
        }
        out.push(IngressCheck {
            ours: owned.iter().any(|o| std::sync::Arc::ptr_eq(o, ing)),
            served: served.contains(&ingress),
            ingress,
            annotations,
            reports,
        });
    }
    out.sort_by(|a, b| a.ingress.cmp(&b.ingress));
    out
}

/// An annotation no report names: what berth makes of its key.
fn classify(key: &str, config: &TranslateConfig) -> Verdict {
    if KNOWN_ANNOTATIONS.contains(&key) {
        return Verdict::Honoured(None);
    }
    let Some(name) = nginx_name(key) else {
        return Verdict::NotOurs;
    };
    if let Some((_, berth)) = NGINX_EQUIVALENTS.iter().find(|(n, _)| *n == name) {
        return Verdict::Honoured(Some(berth));
    }
    if !is_snippet(name) && config.ignore_annotations.iter().any(|i| i == name) {
        return Verdict::Ignored;
    }
    // An Ingress of ours is refused with it; one of another class is not translated, so say
    // what would happen.
    Verdict::Refused(if is_snippet(name) {
        "snippets (raw nginx configuration) are never accepted".into()
    } else {
        "not implemented by berth-ingress".into()
    })
}

/// The report `check` prints: one block per Ingress.
pub fn format(checks: &[IngressCheck]) -> String {
    let mut out = String::new();
    for c in checks {
        let state = match (c.ours, c.served) {
            (false, _) => {
                "not of berth's IngressClass, left alone (its annotations judged as if it were)"
            }
            (true, true) => "served",
            (true, false) => "NOT SERVED",
        };
        _ = writeln!(out, "{}: {state}", c.ingress);
        for (key, v) in &c.annotations {
            let text = match v {
                Verdict::Honoured(None) => "honoured".to_owned(),
                Verdict::Honoured(Some(b)) => format!("honoured (as {b})"),
                Verdict::Refused(why) => format!("REFUSED: {why}"),
                Verdict::Ignored => "ignored (--ignore-annotations)".to_owned(),
                Verdict::NotOurs => continue,
            };
            _ = writeln!(out, "  {key}: {text}");
        }
        for r in &c.reports {
            if !c.annotations.keys().any(|k| r.field.contains(k.as_str())) {
                _ = writeln!(out, "  {}: {} ({})", r.field, r.detail, r.reason.as_str());
            }
        }
    }
    out
}

/// Did any Ingress of ours come out not served?
pub fn any_refused(checks: &[IngressCheck]) -> bool {
    checks.iter().any(|c| c.ours && !c.served)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: web, namespace: shop}, spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}}
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata:
    name: legacy
    namespace: shop
    annotations:
      nginx.ingress.kubernetes.io/auth-tls-verify-client: "on"
      nginx.ingress.kubernetes.io/proxy-body-size: "8m"
      nginx.ingress.kubernetes.io/server-snippet: "return 200;"
      meta.helm.sh/release-name: shop
  spec:
    ingressClassName: berth
    rules: [{host: legacy.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata:
    name: fine
    namespace: shop
    annotations:
      nginx.ingress.kubernetes.io/whitelist-source-range: "10.0.0.0/8"
      berth.dev/proxy-read-timeout: "30"
  spec:
    ingressClassName: berth
    rules: [{host: fine.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata:
    name: bad-value
    namespace: shop
    annotations: {nginx.ingress.kubernetes.io/proxy-body-size: "8m; evil"}
  spec:
    ingressClassName: berth
    rules: [{host: bad.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata:
    name: theirs
    namespace: shop
    annotations: {nginx.ingress.kubernetes.io/auth-cache-key: "$remote_user"}
  spec:
    ingressClassName: nginx
    rules: [{host: theirs.test}]
"#;

    fn run(ignore: &[&str]) -> Vec<IngressCheck> {
        let mut snap = Snapshot::default();
        crate::source::files::parse_manifests(DIR, "dir.yaml", &mut snap);
        let config = TranslateConfig {
            ignore_annotations: ignore.iter().map(|s| s.to_string()).collect(),
            ..TranslateConfig::default()
        };
        check(&snap, &config)
    }

    #[test]
    fn says_per_ingress_what_is_honoured_refused_and_served() {
        let checks = run(&[]);
        let by = |name: &str| checks.iter().find(|c| c.ingress.name == name).unwrap();
        let legacy = by("legacy");
        assert!(legacy.ours && !legacy.served);
        let v = |c: &IngressCheck, k: &str| c.annotations[k].clone();
        let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
        assert!(
            matches!(v(legacy, &n("auth-tls-verify-client")), Verdict::Refused(w) if w.contains("not implemented"))
        );
        assert!(
            matches!(v(legacy, &n("server-snippet")), Verdict::Refused(w) if w.contains("snippet"))
        );
        assert_eq!(
            v(legacy, &n("proxy-body-size")),
            Verdict::Honoured(Some("berth.dev/proxy-body-size"))
        );
        assert_eq!(v(legacy, "meta.helm.sh/release-name"), Verdict::NotOurs);
        let fine = by("fine");
        assert!(fine.ours && fine.served);
        assert_eq!(
            v(fine, "berth.dev/proxy-read-timeout"),
            Verdict::Honoured(None)
        );
        let bad = by("bad-value");
        assert!(!bad.served);
        assert!(
            matches!(v(bad, &n("proxy-body-size")), Verdict::Refused(w) if w.contains("invalid_annotation"))
        );
        let theirs = by("theirs");
        assert!(!theirs.ours);
        assert!(matches!(
            v(theirs, &n("auth-cache-key")),
            Verdict::Refused(_)
        ));
        assert!(any_refused(&checks));

        let text = format(&checks);
        assert!(text.contains("Ingress/shop/legacy: NOT SERVED\n"), "{text}");
        assert!(text.contains("Ingress/shop/fine: served\n"), "{text}");
        assert!(
            text.contains(
                "  nginx.ingress.kubernetes.io/whitelist-source-range: honoured (as berth.dev/allow-source-range)\n"
            ),
            "{text}"
        );
        assert!(!text.contains("helm"), "{text}");

        // --ignore-annotations auth-tls-verify-client: the snippet still refuses legacy.
        let checks = run(&["auth-tls-verify-client"]);
        let legacy = checks.iter().find(|c| c.ingress.name == "legacy").unwrap();
        assert!(!legacy.served);
        assert!(matches!(
            legacy.annotations[&n("server-snippet")],
            Verdict::Refused(_)
        ));
    }
}
