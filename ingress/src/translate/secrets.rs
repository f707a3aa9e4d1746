//! Secrets of a snapshot, indexed by namespace/name: TLS certificates (parsed at most once per
//! build) and htpasswd files for basic authentication (`auth` key, see `htpasswd.rs`).

use std::cell::RefCell;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Secret;

use crate::htpasswd::{self, HtpasswdFile};
use crate::model::{Kind, ObjectRef};
use crate::tls::{self, Certificate};

/// Lookup + memoised validation of `kubernetes.io/tls` Secrets.
pub struct Secrets<'a> {
    by_name: HashMap<(&'a str, &'a str), &'a Secret>,
    parsed: RefCell<HashMap<(String, String), Result<Certificate, String>>>,
}

impl<'a> Secrets<'a> {
    pub fn new(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut by_name = HashMap::new();
        for s in secrets {
            if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                by_name.insert((ns.as_str(), name.as_str()), s);
            }
        }
        Self {
            by_name,
            parsed: RefCell::new(HashMap::new()),
        }
    }

    /// The certificate of Secret `namespace/name`, or why there is none (no key material in
    /// the message). `namespace` and `name` must already be valid DNS names.
    pub fn certificate(&self, namespace: &str, name: &str) -> Result<Certificate, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(found) = self.parsed.borrow().get(&key) {
            return found.clone();
        }
        let result = match self.by_name.get(&(namespace, name)) {
            None => Err(format!(
                "TLS Secret {namespace}/{name} not found (or not of type kubernetes.io/tls)"
            )),
            Some(secret) => tls::from_secret(secret, ObjectRef::new(Kind::Secret, namespace, name))
                .map_err(|e| format!("TLS Secret {namespace}/{name}: {e}")),
        };
        self.parsed.borrow_mut().insert(key, result.clone());
        result
    }

    /// The htpasswd file in key `auth` of Secret `namespace/name` (any type, as ingress-nginx
    /// reads it), or why there is none. The message never holds any of the content.
    pub fn htpasswd(&self, namespace: &str, name: &str) -> Result<HtpasswdFile, String> {
        let Some(secret) = self.by_name.get(&(namespace, name)) else {
            return Err(format!("Secret {namespace}/{name} not found"));
        };
        let Some(bytes) = tls::secret_value(secret, "auth") else {
            return Err(format!("Secret {namespace}/{name} has no key 'auth'"));
        };
        htpasswd::parse(ObjectRef::new(Kind::Secret, namespace, name), bytes).map_err(|e| {
            format!("Secret {namespace}/{name} key 'auth' is not an htpasswd file: {e}")
        })
    }
}
