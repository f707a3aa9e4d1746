//! The files source: a directory of YAML (or JSON) manifests, watched with notify.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file directly in the directory is read; a file may hold
//! several documents (`---`) and `kind: List` documents. Kinds other than Service, Ingress,
//! IngressClass, EndpointSlice, Secret, Namespace and the Gateway API kinds (GatewayClass,
//! Gateway, HTTPRoute, GRPCRoute, ReferenceGrant) are ignored (a directory may also hold Deployments).
//! A document that does not decode is reported (kind `File`) and the rest still loads. Parsed
//! files are cached by (mtime, size, inode), so a change re-reads only what changed.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::de::DeserializeOwned;

use notify::{RecursiveMode, Watcher};
use serde_yaml_ng::Value;
use tokio::sync::watch;

use super::Source;
use crate::gateway::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::model::{Kind, ObjectRef, Reason, Report};
use crate::snapshot::{Object, Snapshot};
use crate::validate::excerpt;

/// Decode every document of one manifest file into `snapshot`.
pub fn parse_manifests(text: &str, file: &str, snapshot: &mut Snapshot) {
    let mut objects = Vec::new();
    let mut reports = Vec::new();
    decode(text, file, &mut objects, &mut reports);
    for o in objects {
        snapshot.push(o);
    }
    snapshot.reports.extend(reports);
}

fn unparseable(file: &str, field: String, detail: &str) -> Report {
    // Decoder messages can quote the input: keep them short and escaped.
    let mut detail: String = detail
        .chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect();
    detail.insert_str(0, "cannot decode: ");
    Report {
        object: ObjectRef::new(Kind::File, "", excerpt(file)),
        field,
        reason: Reason::Unparseable,
        detail,
    }
}

fn decode(text: &str, file: &str, objects: &mut Vec<Object>, reports: &mut Vec<Report>) {
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        match <Value as serde::Deserialize>::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(value) => one_value(value, file, &format!("document[{i}]"), objects, reports),
            Err(e) => {
                reports.push(unparseable(file, format!("document[{i}]"), &e.to_string()));
                // A syntax error poisons the rest of the stream.
                break;
            }
        }
    }
}

fn one_value(
    value: Value,
    file: &str,
    field: &str,
    objects: &mut Vec<Object>,
    reports: &mut Vec<Report>,
) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let result = match kind.as_str() {
        "List" => {
            if let Some(Value::Sequence(items)) = value.get("items") {
                for (j, item) in items.iter().enumerate() {
                    one_value(
                        item.clone(),
                        file,
                        &format!("{field}.items[{j}]"),
                        objects,
                        reports,
                    );
                }
            }
            return;
        }
        "Service" => namespaced::<Service>(value).map(|o| Object::Service(Arc::new(o))),
        "Ingress" => namespaced::<Ingress>(value).map(|o| Object::Ingress(Arc::new(o))),
        "IngressClass" => serde_yaml_ng::from_value::<IngressClass>(value)
            .map(|o| Object::IngressClass(Arc::new(o))),
        "EndpointSlice" => {
            namespaced::<EndpointSlice>(value).map(|o| Object::EndpointSlice(Arc::new(o)))
        }
        "Secret" => namespaced::<Secret>(value).map(|o| Object::Secret(Arc::new(o))),
        "Namespace" => {
            serde_yaml_ng::from_value::<Namespace>(value).map(|o| Object::Namespace(Arc::new(o)))
        }
        "GatewayClass" if gateway_api(&value) => serde_yaml_ng::from_value::<GatewayClass>(value)
            .map(|o| Object::GatewayClass(Arc::new(o))),
        "Gateway" if gateway_api(&value) => {
            namespaced::<Gateway>(value).map(|o| Object::Gateway(Arc::new(o)))
        }
        "HTTPRoute" if gateway_api(&value) => {
            namespaced::<HTTPRoute>(value).map(|o| Object::HTTPRoute(Arc::new(o)))
        }
        "GRPCRoute" if gateway_api(&value) => {
            namespaced::<GRPCRoute>(value).map(|o| Object::GRPCRoute(Arc::new(o)))
        }
        "ReferenceGrant" if gateway_api(&value) => {
            namespaced::<ReferenceGrant>(value).map(|o| Object::ReferenceGrant(Arc::new(o)))
        }
        _ => return,
    };
    match result {
        Ok(o) => objects.push(o),
        Err(e) => reports.push(unparseable(file, field.to_owned(), &e.to_string())),
    }
}

/// Is the document's `apiVersion` in the Gateway API group (any version: v1, v1beta1)?
fn gateway_api(value: &Value) -> bool {
    value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("gateway.networking.k8s.io/"))
}

/// Decode a namespaced object; a missing namespace means `default`, as with kubectl.
fn namespaced<K: kube::Resource + DeserializeOwned>(
    value: Value,
) -> Result<K, serde_yaml_ng::Error> {
    let mut o: K = serde_yaml_ng::from_value(value)?;
    o.meta_mut()
        .namespace
        .get_or_insert_with(|| "default".to_owned());
    Ok(o)
}

/// Identity of a file's content as far as the cache is concerned.
type Stamp = (i64, i64, u64, u64);

struct Parsed {
    stamp: Stamp,
    objects: Vec<Object>,
    reports: Vec<Report>,
}

/// A watched manifests directory.
pub struct FilesSource {
    dir: PathBuf,
    cache: Mutex<HashMap<PathBuf, Parsed>>,
}

fn is_manifest(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

impl FilesSource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Watch the directory; every filesystem event bumps `changes`. Keep the returned watcher
    /// alive for as long as events are wanted.
    pub fn watch(&self, changes: watch::Sender<u64>) -> notify::Result<notify::RecommendedWatcher> {
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reading the files ourselves raises Access events: only content changes count.
                let relevant = event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_)));
                if relevant {
                    changes.send_modify(|n| *n += 1);
                }
            })?;
        watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    }
}

impl Source for FilesSource {
    fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut paths: Vec<PathBuf> = match fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_manifest(p))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read manifests directory");
                Vec::new()
            }
        };
        paths.sort();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|p, _| paths.binary_search(p).is_ok());
        for path in paths {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let stamp = (meta.mtime(), meta.mtime_nsec(), meta.size(), meta.ino());
            let fresh = cache.get(&path).is_some_and(|p| p.stamp == stamp);
            if !fresh {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (mut objects, mut reports) = (Vec::new(), Vec::new());
                match fs::read_to_string(&path) {
                    Ok(text) => decode(&text, &name, &mut objects, &mut reports),
                    Err(e) => reports.push(unparseable(&name, "file".into(), &e.to_string())),
                }
                cache.insert(
                    path.clone(),
                    Parsed {
                        stamp,
                        objects,
                        reports,
                    },
                );
            }
            if let Some(p) = cache.get(&path) {
                for o in &p.objects {
                    snapshot.push(o.clone());
                }
                snapshot.reports.extend(p.reports.iter().cloned());
            }
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_DOCS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app.kubernetes.io/expose: "true"}}
spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata: {name: i, namespace: shop}
  spec: {ingressClassName: berth}
"#;

    #[test]
    fn decodes_multi_document_and_lists() {
        let mut s = Snapshot::default();
        parse_manifests(TWO_DOCS, "a.yaml", &mut s);
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.services[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(s.ingresses.len(), 1);
        assert!(s.reports.is_empty(), "{:?}", s.reports);
    }

    #[test]
    fn bad_documents_are_reported_by_file() {
        let mut s = Snapshot::default();
        parse_manifests("kind: Service\nmetadata: 7\n", "bad.yaml", &mut s);
        parse_manifests("kind: Service\n  : : {\n", "worse.yaml", &mut s);
        assert_eq!(s.reports.len(), 2, "{:?}", s.reports);
        assert!(s.reports.iter().all(|r| r.reason == Reason::Unparseable));
        assert_eq!(s.reports[0].object.to_string(), "File/bad.yaml");
    }

    #[test]
    fn directory_reload_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let src = FilesSource::new(dir.path());
        fs::write(dir.path().join("a.yaml"), TWO_DOCS).unwrap();
        fs::write(dir.path().join(".hidden.yaml"), "not: [valid").unwrap();
        fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(src.snapshot().services.len(), 1);
        fs::write(
            dir.path().join("b.yml"),
            TWO_DOCS.replace("name: web", "name: web2"),
        )
        .unwrap();
        assert_eq!(src.snapshot().services.len(), 2);
        fs::remove_file(dir.path().join("a.yaml")).unwrap();
        let s = src.snapshot();
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.services[0].metadata.name.as_deref(), Some("web2"));
    }
}
