//! Candidates -> model: who gets which host, path, certificate and fallback (pure).
//!
//! Tenancy rules (docs/ingress-semantics.md):
//! - A host belongs to the namespace of its oldest claimant (a rule, a `spec.tls` entry or a
//!   labelled Service naming it). Objects of other namespaces that name it are reported
//!   ([`Reason::Conflict`]) and add nothing to it: no paths, no certificate, no fallback.
//!   Objects of the owning namespace share it; per (host, path, match kind) the oldest wins.
//! - Routes without a host are served by the catch-all server only (as ingress-nginx does);
//!   they never add paths to a named host, which would hand requests decrypted with one
//!   namespace's certificate to another namespace.
//! - A canary Ingress's route splits the main route of its host, path and kind (`canary.rs`).
//! - Fallback (requests no location matches): the controller's `--default-backend-service`
//!   everywhere when set, overriding every `spec.defaultBackend` (reported). Otherwise the
//!   catch-all gets the oldest Ingress `spec.defaultBackend`, and a host gets the oldest
//!   `spec.defaultBackend` among the owning namespace's Ingresses that name that host; else 404.

use std::collections::{BTreeMap, BTreeSet, btree_map::Entry};

use super::{Age, Candidate, DefaultCandidate, TlsCandidate, Translated};
use crate::model::{
    Certificate, DefaultBackend, Host, Location, Model, ObjectRef, PathKind, Reason, Report,
    Server, ServerTls, TlsChoice, Upstream,
};

/// Which namespace each host belongs to, and the object whose claim decided it.
struct Owners(BTreeMap<Host, ObjectRef>);

impl Owners {
    fn new(t: &Translated) -> Self {
        let mut claims: Vec<(&Age, &Host, &ObjectRef)> = Vec::new();
        for c in &t.routes {
            if let Some(h) = &c.host {
                claims.push((&c.age, h, &c.origin));
            }
        }
        claims.extend(t.tls.iter().map(|c| (&c.age, &c.host, &c.origin)));
        for d in &t.defaults {
            claims.extend(d.hosts.iter().map(|h| (&d.age, h, &d.origin)));
        }
        claims.sort_by(|a, b| a.0.cmp(b.0));
        let mut owners = BTreeMap::new();
        for (_, host, origin) in claims {
            owners.entry(host.clone()).or_insert_with(|| origin.clone());
        }
        Owners(owners)
    }

    /// `None` when `origin` may use `host`; otherwise the report saying why not.
    fn refuse(&self, host: &Host, origin: &ObjectRef) -> Option<Report> {
        let owner = self.0.get(host)?;
        (owner.namespace != origin.namespace).then(|| Report {
            object: origin.clone(),
            field: "host".into(),
            reason: Reason::Conflict,
            detail: format!(
                "host {host} belongs to namespace {} (claimed first by older {owner}); \
                 another namespace cannot add routes, TLS or a default backend to it",
                owner.namespace
            ),
        })
    }
}

/// Every route by (host, (path, match kind)); the value is the oldest claimant's location.
pub(super) type Routes = BTreeMap<(Option<Host>, (String, PathKind)), Location>;

/// Resolve conflicts (oldest wins, hosts stay in their namespace) and assemble the model.
pub fn merge(mut t: Translated) -> Model {
    t.routes.sort_by(|a, b| a.age.cmp(&b.age));
    t.defaults.sort_by(|a, b| a.age.cmp(&b.age));
    t.tls.sort_by(|a, b| a.age.cmp(&b.age));
    let owners = Owners::new(&t);
    let mut reports = std::mem::take(&mut t.reports);
    let mut upstreams: BTreeMap<String, Upstream> = BTreeMap::new();
    // One flat map of every route, not a map per host: a map holding one entry still
    // allocates a whole B-tree node (11 slots), which cost ~4 KiB per host at 10 000 hosts.
    let mut routes: Routes = BTreeMap::new();
    let mut hosts: BTreeSet<Option<Host>> = BTreeSet::new();
    hosts.insert(None);

    let mut canaries = Vec::new();
    for c in std::mem::take(&mut t.routes) {
        if let Some(r) = c.host.as_ref().and_then(|h| owners.refuse(h, &c.origin)) {
            reports.push(r);
        } else if c.options.canary.is_some() {
            canaries.push(c);
        } else {
            route(c, &mut routes, &mut upstreams, &mut reports);
        }
    }
    for c in canaries {
        if let Err(r) = super::canary::attach(c, &mut routes, &mut upstreams) {
            reports.push(r);
        }
    }

    let tls_candidates: Vec<TlsCandidate> = std::mem::take(&mut t.tls)
        .into_iter()
        .filter(|c| match owners.refuse(&c.host, &c.origin) {
            Some(r) => {
                reports.push(r);
                false
            }
            None => true,
        })
        .collect();
    let (tls, certificates) = merge_tls(tls_candidates, &mut reports);
    hosts.extend(tls.keys().cloned().map(Some));

    let fallbacks = fallbacks(t.defaults, &owners, &mut upstreams, &mut reports);
    hosts.extend(fallbacks.per_server.keys().cloned());
    hosts.extend(routes.keys().map(|(h, _)| h.clone()));

    // Both in (host, path, kind) order: each server takes the run of routes of its host.
    let mut routes = routes.into_iter().peekable();
    let servers = hosts
        .into_iter()
        .map(|host| {
            let mut locations = Vec::new();
            while let Some((_, location)) = routes.next_if(|((h, _), _)| *h == host) {
                locations.push(location);
            }
            locations.shrink_to_fit();
            Server {
                tls: host.as_ref().and_then(|h| tls.get(h).cloned()),
                fallback: fallbacks.of(&host),
                host,
                locations,
            }
        })
        .collect();

    reports.sort();
    reports.dedup();
    Model {
        servers,
        upstreams: upstreams.into_values().collect(),
        reports,
        certificates,
        default_certificate: None,
        gateway: Vec::new(),
    }
}

/// One route into its server: oldest wins a (host, path, kind) key, the loser is reported.
fn route(
    c: Candidate,
    routes: &mut Routes,
    upstreams: &mut BTreeMap<String, Upstream>,
    reports: &mut Vec<Report>,
) {
    match routes.entry((c.host, (c.path, c.kind))) {
        Entry::Occupied(winner) => {
            let (host, (path, kind)) = winner.key();
            reports.push(Report {
                object: c.origin,
                field: "route".into(),
                reason: Reason::Conflict,
                detail: format!(
                    "{} {kind:?} {path} is already served by older {}",
                    host.as_ref().map_or("*".to_owned(), Host::to_string),
                    winner.get().origin
                ),
            });
        }
        Entry::Vacant(slot) => {
            let (_, (path, kind)) = slot.key();
            let (path, kind) = (path.clone(), *kind);
            let name = c.upstream.name.clone();
            upstreams.entry(name.clone()).or_insert(c.upstream);
            if let Some(e) = c.error_upstream {
                upstreams.entry(e.name.clone()).or_insert(e);
            }
            slot.insert(Location {
                path,
                kind,
                upstream: name,
                origin: c.origin,
                options: c.options,
            });
        }
    }
}

/// TLS per host: the oldest object's choice wins; a younger object naming a different
/// certificate is reported. Returns the per-host choice and the certificates in use.
fn merge_tls(
    mut candidates: Vec<TlsCandidate>,
    reports: &mut Vec<Report>,
) -> (BTreeMap<Host, TlsChoice>, Vec<Certificate>) {
    candidates.sort_by(|a, b| a.age.cmp(&b.age));
    let mut chosen: BTreeMap<Host, TlsChoice> = BTreeMap::new();
    let mut certs: BTreeMap<String, Certificate> = BTreeMap::new();
    for c in candidates {
        let want = match &c.certificate {
            Some(cert) => ServerTls::Certificate(cert.id.clone()),
            None => ServerTls::Default,
        };
        match chosen.entry(c.host.clone()) {
            Entry::Occupied(winner) => {
                if winner.get().certificate != want {
                    reports.push(Report {
                        object: c.origin,
                        field: "spec.tls".into(),
                        reason: Reason::Conflict,
                        detail: format!(
                            "host {} already has its TLS certificate from older {}",
                            c.host,
                            winner.get().origin
                        ),
                    });
                }
            }
            Entry::Vacant(slot) => {
                if let Some(cert) = c.certificate {
                    certs.entry(cert.id.clone()).or_insert(cert);
                }
                slot.insert(TlsChoice {
                    certificate: want,
                    origin: c.origin,
                });
            }
        }
    }
    (chosen, certs.into_values().collect())
}

/// Who serves unmatched requests: the flag's backend on every server, or one per server.
#[derive(Default)]
struct Fallbacks {
    everywhere: Option<DefaultBackend>,
    /// Key: the server's host (`None`: the catch-all).
    per_server: BTreeMap<Option<Host>, DefaultBackend>,
}

impl Fallbacks {
    fn of(&self, host: &Option<Host>) -> Option<DefaultBackend> {
        self.everywhere
            .clone()
            .or_else(|| self.per_server.get(host).cloned())
    }
}

/// Who serves unmatched requests of each server (see the module doc).
fn fallbacks(
    defaults: Vec<DefaultCandidate>,
    owners: &Owners,
    upstreams: &mut BTreeMap<String, Upstream>,
    reports: &mut Vec<Report>,
) -> Fallbacks {
    let mut out = Fallbacks::default();
    let mut use_upstream = |d: &DefaultCandidate| {
        upstreams
            .entry(d.upstream.name.clone())
            .or_insert_with(|| d.upstream.clone());
        DefaultBackend {
            upstream: d.upstream.name.clone(),
            origin: d.origin.clone(),
        }
    };
    if let Some(flag) = defaults.iter().find(|d| d.flag) {
        out.everywhere = Some(use_upstream(flag));
        for d in defaults.iter().filter(|d| !d.flag) {
            reports.push(Report {
                object: d.origin.clone(),
                field: "spec.defaultBackend".into(),
                reason: Reason::Conflict,
                detail: "the controller's --default-backend-service serves unmatched requests; \
                         spec.defaultBackend is not used"
                    .into(),
            });
        }
        return out;
    }
    for d in &defaults {
        let mut served_some = false;
        for h in &d.hosts {
            if owners.refuse(h, &d.origin).is_some() {
                continue; // reported with its routes / TLS
            }
            if let Entry::Vacant(slot) = out.per_server.entry(Some(h.clone())) {
                slot.insert(use_upstream(d));
                served_some = true;
            }
        }
        match out.per_server.entry(None) {
            Entry::Vacant(slot) => _ = slot.insert(use_upstream(d)),
            Entry::Occupied(winner) => reports.push(Report {
                object: d.origin.clone(),
                field: "spec.defaultBackend".into(),
                reason: Reason::Conflict,
                detail: format!(
                    "the catch-all server's default backend is already set by older {}; {}",
                    winner.get().origin,
                    if served_some {
                        "this one serves only unmatched paths of this Ingress's own hosts"
                    } else {
                        "not used"
                    }
                ),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::model::Model;
    use crate::snapshot::Snapshot;
    use crate::translate::{TranslateConfig, build};

    const TWO_TEAMS: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: flag, namespace: infra}, spec: {clusterIP: 10.0.0.9, ports: [{port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: a, namespace: team-a}, spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: b, namespace: team-b}, spec: {clusterIP: 10.0.0.2, ports: [{port: 80}]}}
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata: {name: a, namespace: team-a, creationTimestamp: "2024-01-01T00:00:00Z"}
  spec:
    ingressClassName: berth
    defaultBackend: {service: {name: a, port: {number: 80}}}
    rules: [{host: a.test, http: {paths: [{path: /a, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}]}}]
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata: {name: b, namespace: team-b, creationTimestamp: "2024-02-01T00:00:00Z"}
  spec:
    ingressClassName: berth
    rules: [{http: {paths: [{path: /b, pathType: Exact, backend: {service: {name: b, port: {number: 80}}}}]}}, {host: b.test}]
"#;

    /// Memory of one build at many hosts (the bench's 10 000 Ingresses, one host each, scaled
    /// down). A map of routes per host cost a whole B-tree node (11 locations, ~4 KiB) per
    /// host while the model was merged, twice the resident memory of berth-ingress at
    /// 10 000 hosts (115 MiB instead of 58). A host costs ~2.5 KB now (the model itself plus
    /// the transient maps; ~9.4 KB with a map per host); the bound leaves ~1.5 times that.
    #[test]
    fn merging_many_hosts_costs_no_node_per_host() {
        const HOSTS: usize = 1_000;
        let mut all = String::from(
            "{apiVersion: v1, kind: Service, metadata: {name: web, namespace: m}, \
             spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}}\n",
        );
        for i in 0..HOSTS {
            all.push_str(&format!(
                "---\n{{apiVersion: networking.k8s.io/v1, kind: Ingress, \
                 metadata: {{name: i{i}, namespace: m}}, spec: {{ingressClassName: berth, \
                 rules: [{{host: h{i}.test, http: {{paths: [{{path: /, pathType: Prefix, \
                 backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}}}]}}}}\n"
            ));
        }
        let mut snap = Snapshot::default();
        crate::source::files::parse_manifests(&all, "many.yaml", &mut snap);
        let (model, peak) =
            crate::alloc_count::peak_bytes(|| build(&snap, &TranslateConfig::default()));
        assert_eq!(model.servers.len(), HOSTS + 1, "{:?}", model.reports);
        let per_host = peak / HOSTS;
        assert!(
            per_host <= PEAK_PER_HOST,
            "translate::build of {HOSTS} hosts peaked at {per_host} bytes per host (> {PEAK_PER_HOST})"
        );
    }
    /// Bytes per host [`merging_many_hosts_costs_no_node_per_host`] allows.
    const PEAK_PER_HOST: usize = 4_000;

    fn model(flag: bool) -> Model {
        let mut snap = Snapshot::default();
        crate::source::files::parse_manifests(TWO_TEAMS, "t.yaml", &mut snap);
        let config = TranslateConfig {
            default_backend_service: flag.then(|| ("infra".into(), "flag".into())),
            ..TranslateConfig::default()
        };
        build(&snap, &config)
    }

    fn fallback(m: &Model, host: Option<&str>) -> Option<String> {
        let s = m
            .servers
            .iter()
            .find(|s| s.host.as_ref().map(|h| h.to_string()).as_deref() == host)?;
        s.fallback.as_ref().map(|f| f.upstream.clone())
    }

    #[test]
    fn fallbacks_stay_with_their_namespace_and_the_flag_wins() {
        let m = model(false);
        assert_eq!(fallback(&m, None).as_deref(), Some("team-a_a_80"));
        assert_eq!(fallback(&m, Some("a.test")).as_deref(), Some("team-a_a_80"));
        // team-b's host-less rule: catch-all only.
        let b_paths: Vec<_> = m
            .servers
            .iter()
            .filter(|s| s.locations.iter().any(|l| l.path == "/b"))
            .map(|s| s.host.clone())
            .collect();
        assert_eq!(b_paths, vec![None]);
        let m = model(true);
        for host in [None, Some("a.test")] {
            assert_eq!(fallback(&m, host).as_deref(), Some("infra_flag_80"));
        }
        assert!(
            m.reports
                .iter()
                .any(|r| r.object.name == "a" && r.detail.contains("--default-backend-service")),
            "{:#?}",
            m.reports
        );
    }

    #[test]
    fn without_nothing_is_the_model_and_every_part_is_attributed() {
        for flag in [false, true] {
            let m = model(flag);
            assert_eq!(m.without(&BTreeSet::new()), m);
            let all = m.origins();
            let bare = m.without(&all);
            assert!(bare.origins().is_empty(), "{bare:#?}");
            assert!(bare.upstreams.is_empty() && bare.certificates.is_empty());
            assert_eq!(bare.servers.len(), 1, "only the catch-all is left");
        }
    }
}
