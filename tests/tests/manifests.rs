//! deploy/ is valid against the real Kubernetes API: every document parses into its
//! k8s-openapi type with unknown fields rejected, every flag a manifest passes to a berth
//! binary exists in that binary's CLI, and the RBAC rules cover the API access the code makes.
//!
//! k8s-openapi's deserializers skip unknown fields, so "rejected" is checked by a round trip:
//! the typed value serialized again must hold every field of the original document.
//!
//! This file: the generic checks and helpers; [`csi`] and [`ingress`] check each component's
//! flags, RBAC and options.

#[path = "manifests/csi.rs"]
mod csi;
#[path = "manifests/ingress.rs"]
mod ingress;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Parser;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, PodSpec, Secret,
    Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every YAML file under deploy/, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// All documents of all manifest files (not kustomizations), with their file.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut docs = Vec::new();
    for file in yaml_files(&deploy_dir()) {
        if file.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !v.is_null() {
                docs.push((file.clone(), v));
            }
        }
    }
    assert!(
        docs.len() >= 20,
        "expected the full deploy/ tree, found {}",
        docs.len()
    );
    docs
}

/// Paths present in `orig` but missing (or different) in `back`.
fn lost_fields(orig: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => lost_fields(va, vb, &p, out),
                    // An explicit null (generated CRDs' `status: {conditions: null}`) is absent.
                    None if va.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path} (length {} vs {})", a.len(), b.len()));
            }
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                lost_fields(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        // `minimum: 0` in a CRD schema comes back as 0.0 (JSONSchemaProps holds an f64).
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        // YAML numbers given where the API has strings (or the reverse) round-trip as strings.
        (Value::Number(n), Value::String(s)) if n.to_string() == *s => {}
        (a, b) => out.push(format!("{path} ({a} became {b})")),
    }
}

fn strict<T: DeserializeOwned + serde::Serialize>(file: &Path, v: &Value) -> T {
    let typed: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{}: {} does not parse: {e}", file.display(), v["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    let mut lost = Vec::new();
    lost_fields(v, &back, "", &mut lost);
    assert!(
        lost.is_empty(),
        "{}: {} {}: unknown or misspelled fields: {lost:?}",
        file.display(),
        v["kind"],
        v["metadata"]["name"]
    );
    typed
}

/// snapshot.storage.k8s.io/v1 VolumeSnapshotClass is a CRD, not in k8s-openapi; so is
/// groupsnapshot.storage.k8s.io/v1beta2 VolumeGroupSnapshotClass, of the same shape.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VolumeSnapshotClass {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    driver: String,
    deletion_policy: String,
    #[serde(default)]
    parameters: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    patches: Vec<Value>,
}

#[test]
fn every_manifest_is_a_valid_api_object() {
    let mut kinds = BTreeSet::new();
    for (file, v) in documents() {
        let kind = v["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Namespace" => drop(strict::<Namespace>(&file, &v)),
            "ServiceAccount" => drop(strict::<ServiceAccount>(&file, &v)),
            "ClusterRole" => drop(strict::<ClusterRole>(&file, &v)),
            "ClusterRoleBinding" => drop(strict::<ClusterRoleBinding>(&file, &v)),
            "Role" => drop(strict::<Role>(&file, &v)),
            "RoleBinding" => drop(strict::<RoleBinding>(&file, &v)),
            "ConfigMap" => drop(strict::<ConfigMap>(&file, &v)),
            "Secret" => drop(strict::<Secret>(&file, &v)),
            "Deployment" => drop(strict::<Deployment>(&file, &v)),
            "DaemonSet" => drop(strict::<DaemonSet>(&file, &v)),
            "Service" => drop(strict::<Service>(&file, &v)),
            "Pod" => drop(strict::<Pod>(&file, &v)),
            "PersistentVolumeClaim" => drop(strict::<PersistentVolumeClaim>(&file, &v)),
            "PersistentVolume" => drop(strict::<PersistentVolume>(&file, &v)),
            "VolumeAttributesClass" => csi::volume_attributes_class(&file, &v),
            "CSIDriver" => drop(strict::<CSIDriver>(&file, &v)),
            "StorageClass" => drop(strict::<StorageClass>(&file, &v)),
            "IngressClass" => drop(strict::<IngressClass>(&file, &v)),
            "Ingress" => drop(strict::<Ingress>(&file, &v)),
            "VolumeSnapshotClass" | "VolumeGroupSnapshotClass" => {
                drop(strict::<VolumeSnapshotClass>(&file, &v))
            }
            "CustomResourceDefinition" => drop(strict::<CustomResourceDefinition>(&file, &v)),
            "GatewayClass" | "Gateway" | "HTTPRoute" => ingress::gateway_api_object(&file, &v),
            other => panic!("{}: no schema check for kind {other:?}", file.display()),
        }
        kinds.insert(kind);
    }
    for want in [
        "CSIDriver",
        "DaemonSet",
        "Deployment",
        "StorageClass",
        "VolumeSnapshotClass",
        "VolumeGroupSnapshotClass",
        "IngressClass",
        "ClusterRole",
        "CustomResourceDefinition",
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
    ] {
        assert!(kinds.contains(want), "deploy/ has no {want}");
    }
}

#[test]
fn the_round_trip_check_catches_a_misspelled_field() {
    let v: Value = serde_yaml_ng::from_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  selectr: {app: x}\n  ports: [{port: 80}]\n",
    )
    .unwrap();
    let result = std::panic::catch_unwind(|| strict::<Service>(Path::new("inline"), &v));
    assert!(result.is_err(), "a misspelled field must be rejected");
}

#[test]
fn kustomizations_list_existing_files() {
    for file in yaml_files(&deploy_dir()) {
        if file.file_name().unwrap() != "kustomization.yaml" {
            continue;
        }
        let k: Kustomization =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let dir = file.parent().unwrap();
        for r in k.resources.iter().chain(&k.components) {
            assert!(
                dir.join(r).exists(),
                "{}: missing resource {r}",
                file.display()
            );
        }
        for p in &k.patches {
            assert!(p["target"].is_object(), "{}: patch {p}", file.display());
        }
        if let Some(ns) = &k.namespace {
            assert_eq!(ns, "berth-system", "{}", file.display());
        }
    }
}

fn pod_specs() -> Vec<(PathBuf, PodSpec)> {
    let mut out = Vec::new();
    for (file, v) in documents() {
        match v["kind"].as_str() {
            Some("Deployment") => {
                let d: Deployment = serde_json::from_value(v).unwrap();
                out.push((file, d.spec.unwrap().template.spec.unwrap()));
            }
            Some("DaemonSet") => {
                let d: DaemonSet = serde_json::from_value(v).unwrap();
                out.push((file, d.spec.unwrap().template.spec.unwrap()));
            }
            _ => {}
        }
    }
    out
}

fn containers_of(image_part: &str) -> Vec<(PathBuf, Container)> {
    pod_specs()
        .into_iter()
        .flat_map(|(f, spec)| spec.containers.into_iter().map(move |c| (f.clone(), c)))
        .filter(|(_, c)| c.image.as_deref().is_some_and(|i| i.contains(image_part)))
        .collect()
}

fn rules_of(kind: &str, name: &str) -> Vec<PolicyRule> {
    for (_, v) in documents() {
        if v["kind"] == kind && v["metadata"]["name"] == name {
            let rules = v["rules"].clone();
            return serde_json::from_value(rules).unwrap();
        }
    }
    panic!("no {kind} {name}");
}

fn covers(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|x| x == group))
            && r.resources
                .as_ref()
                .is_some_and(|g| g.iter().any(|x| x == resource))
            && r.verbs.iter().any(|v| v == verb)
    })
}
