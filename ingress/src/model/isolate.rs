//! Attribution and isolation: every object that contributes to a [`Model`] ([`Model::origins`])
//! and the same model without some of them ([`Model::without`]), which is how an object nginx
//! refuses is found and dropped (`quarantine.rs` bisects over exactly these origins).

use std::collections::BTreeSet;

use super::{GwServer, Model, ObjectRef, Server, ServerTls, TlsChoice, gateway};

impl Model {
    fn default_certificate_origin(&self) -> Option<&ObjectRef> {
        let id = self.default_certificate.as_ref()?;
        self.certificates
            .iter()
            .find(|c| &c.id == id)
            .map(|c| &c.origin)
    }

    /// Every object that contributes something to the config (locations, server TLS,
    /// fallbacks, the default certificate), sorted. Isolation bisects over exactly this set,
    /// so nothing in a rendered config is unattributed.
    pub fn origins(&self) -> BTreeSet<ObjectRef> {
        let mut set = BTreeSet::new();
        for s in &self.servers {
            set.extend(s.locations.iter().map(|l| l.origin.clone()));
            let canaries = s.locations.iter().filter_map(|l| l.options.canary.as_ref());
            set.extend(canaries.map(|c| c.origin.clone()));
            set.extend(s.tls.iter().map(|t| t.origin.clone()));
            set.extend(s.fallback.iter().map(|f| f.origin.clone()));
        }
        for g in &self.gateway {
            let entries = g.locations.iter().flat_map(|l| &l.entries);
            set.extend(entries.map(|e| e.rule.origin.clone()));
            set.extend(g.tls.iter().map(|t| t.origin.clone()));
        }
        set.extend(self.default_certificate_origin().cloned());
        set
    }

    /// The same model without anything `excluded` objects contributed (used to isolate an object
    /// nginx refuses). `without(&empty)` is the model itself. Servers left with nothing (other
    /// than the catch-all), unused upstreams and unused certificates disappear too.
    pub fn without(&self, excluded: &BTreeSet<ObjectRef>) -> Model {
        let keep = |o: &ObjectRef| !excluded.contains(o);
        let mut servers = Vec::with_capacity(self.servers.len());
        for s in &self.servers {
            let server = Server {
                host: s.host.clone(),
                locations: s
                    .locations
                    .iter()
                    .filter(|l| keep(&l.origin))
                    .map(|l| {
                        let mut l = l.clone();
                        if l.options.canary.as_ref().is_some_and(|c| !keep(&c.origin)) {
                            l.options.canary = None;
                        }
                        l
                    })
                    .collect(),
                tls: s.tls.clone().filter(|t| keep(&t.origin)),
                fallback: s.fallback.clone().filter(|f| keep(&f.origin)),
            };
            let empty =
                server.locations.is_empty() && server.tls.is_none() && server.fallback.is_none();
            if server.host.is_none() || !empty {
                servers.push(server);
            }
        }
        let gateway = gateway::without(&self.gateway, excluded);
        let default_certificate = self
            .default_certificate
            .clone()
            .filter(|_| self.default_certificate_origin().is_none_or(keep));
        let used: BTreeSet<&str> = servers
            .iter()
            .flat_map(|s| {
                s.locations
                    .iter()
                    .flat_map(|l| {
                        let o = &l.options;
                        let errors = o.custom_errors.as_ref().map(|e| e.upstream.as_str());
                        let canary = o.canary.as_ref().map(|c| c.upstream.as_str());
                        [Some(l.upstream.as_str()), errors, canary]
                            .into_iter()
                            .flatten()
                    })
                    .chain(s.fallback.iter().map(|f| f.upstream.as_str()))
            })
            .chain(gateway.iter().flat_map(GwServer::upstreams))
            .collect();
        let upstreams = self
            .upstreams
            .iter()
            .filter(|u| used.contains(u.name.as_str()))
            .cloned()
            .collect();
        let certs: BTreeSet<&str> = servers
            .iter()
            .filter_map(|s| match &s.tls {
                Some(TlsChoice {
                    certificate: ServerTls::Certificate(id),
                    ..
                }) => Some(id.as_str()),
                _ => None,
            })
            .chain(gateway.iter().filter_map(|s| match &s.tls {
                Some(TlsChoice {
                    certificate: ServerTls::Certificate(id),
                    ..
                }) => Some(id.as_str()),
                _ => None,
            }))
            .chain(default_certificate.as_deref())
            .collect();
        let certificates = self
            .certificates
            .iter()
            .filter(|c| certs.contains(c.id.as_str()))
            .cloned()
            .collect();
        Model {
            servers,
            upstreams,
            reports: self.reports.clone(),
            certificates,
            default_certificate,
            gateway,
        }
    }
}
