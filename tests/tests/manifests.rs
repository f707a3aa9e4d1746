//! deploy/ is valid against the real Kubernetes API: every document parses into its
//! k8s-openapi type with unknown fields rejected, every flag a manifest passes to a berth
//! binary exists in that binary's CLI, and the RBAC rules cover the API access the code makes.
//!
//! k8s-openapi's deserializers skip unknown fields, so "rejected" is checked by a round trip:
//! the typed value serialized again must hold every field of the original document.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Parser;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolumeClaim, Pod, PodSpec, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
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

/// snapshot.storage.k8s.io/v1 VolumeSnapshotClass is a CRD, not in k8s-openapi.
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
            "CSIDriver" => drop(strict::<CSIDriver>(&file, &v)),
            "StorageClass" => drop(strict::<StorageClass>(&file, &v)),
            "IngressClass" => drop(strict::<IngressClass>(&file, &v)),
            "Ingress" => drop(strict::<Ingress>(&file, &v)),
            "VolumeSnapshotClass" => drop(strict::<VolumeSnapshotClass>(&file, &v)),
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
        "IngressClass",
        "ClusterRole",
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

#[test]
fn every_berth_csi_flag_in_deploy_exists() {
    let found = containers_of("/berth-csi:");
    assert_eq!(found.len(), 2, "controller Deployment + node DaemonSet");
    for (file, c) in found {
        let mut argv = vec!["berth-csi".to_string()];
        argv.extend(c.args.unwrap_or_default());
        if let Err(e) = berth_csi::args::Args::try_parse_from(&argv) {
            panic!("{}: {argv:?}: {e}", file.display());
        }
    }
}

#[test]
fn every_berth_ingress_flag_in_deploy_exists() {
    let found = containers_of("/berth-ingress:");
    assert_eq!(found.len(), 1);
    for (file, c) in found {
        let mut argv = vec!["berth-ingress".to_string()];
        argv.extend(c.args.unwrap_or_default());
        if let Err(e) = berth_ingress::args::Args::try_parse_from(&argv) {
            panic!("{}: {argv:?}: {e}", file.display());
        }
    }
}

/// What berth-ingress does with the API (source/kube.rs reflectors, status.rs leader election
/// and status writes): (group, resource, verbs). Kept next to the check below; the test after
/// it fails when the code starts using an API type this table does not name.
const INGRESS_API_ACCESS: &[(&str, &str, &[&str])] = &[
    ("", "services", &["get", "list", "watch"]),
    ("", "secrets", &["list", "watch"]),
    ("discovery.k8s.io", "endpointslices", &["list", "watch"]),
    ("networking.k8s.io", "ingresses", &["list", "watch"]),
    ("networking.k8s.io", "ingressclasses", &["list", "watch"]),
    (
        "networking.k8s.io",
        "ingresses/status",
        &["get", "update", "patch"],
    ),
    (
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    ),
];

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

#[test]
fn ingress_rbac_covers_what_the_code_uses() {
    let mut rules = rules_of("ClusterRole", "berth-ingress");
    rules.extend(rules_of("Role", "berth-ingress-leader-election"));
    for (group, resource, verbs) in INGRESS_API_ACCESS {
        for verb in *verbs {
            assert!(
                covers(&rules, group, resource, verb),
                "RBAC lacks {verb} {group}/{resource}"
            );
        }
    }
    // Least privilege: nothing that writes outside status and leases.
    for r in rules_of("ClusterRole", "berth-ingress") {
        let writes = r
            .verbs
            .iter()
            .any(|v| ["create", "update", "patch", "delete"].contains(&v.as_str()));
        if writes {
            assert_eq!(
                r.resources.as_deref(),
                Some(&["ingresses/status".to_string()][..])
            );
        }
    }
}

#[test]
fn the_access_table_names_every_api_type_the_ingress_code_uses() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingress/src");
    let type_to_resource = [
        ("Service", "services"),
        ("Secret", "secrets"),
        ("EndpointSlice", "endpointslices"),
        ("Ingress", "ingresses"),
        ("IngressClass", "ingressclasses"),
        ("Lease", "leases"),
    ];
    let mut text = String::new();
    for f in walk_rs(&src) {
        if !f.to_string_lossy().ends_with("_tests.rs") {
            text.push_str(&std::fs::read_to_string(&f).unwrap());
        }
    }
    for (ty, resource) in type_to_resource {
        let used = text.contains(&format!("Api::<{ty}>"))
            || text.contains(&format!("Api<{ty}>"))
            || text.contains(&format!("reflect::<{ty}>"));
        if used {
            assert!(
                INGRESS_API_ACCESS.iter().any(|(_, r, _)| *r == resource),
                "ingress code uses Api<{ty}> but the access table has no {resource}"
            );
        }
    }
    for (_, resource, _) in INGRESS_API_ACCESS {
        let base = resource.split('/').next().unwrap();
        assert!(
            type_to_resource.iter().any(|(_, r)| *r == base),
            "table names {resource}, unknown to the check"
        );
    }
}

fn walk_rs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_rs(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn csi_node_plugin_has_what_attach_and_mount_need() {
    let (file, spec) = pod_specs()
        .into_iter()
        .find(|(f, _)| f.ends_with("csi/node.yaml"))
        .expect("node DaemonSet");
    assert_eq!(spec.host_network, Some(true), "{}", file.display());
    assert_eq!(spec.host_pid, Some(true));
    let c = spec
        .containers
        .iter()
        .find(|c| c.name == "berth-csi")
        .unwrap();
    assert_eq!(
        c.security_context.as_ref().and_then(|s| s.privileged),
        Some(true)
    );
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    let kubelet = mounts
        .iter()
        .find(|m| m.mount_path == "/var/lib/kubelet")
        .expect("kubelet dir mounted");
    assert_eq!(kubelet.mount_propagation.as_deref(), Some("Bidirectional"));
    for path in ["/dev", "/sys"] {
        assert!(
            mounts.iter().any(|m| m.mount_path == path),
            "{path} not mounted"
        );
    }
}

/// The CSI sidecar images deploy/ pins are the versions the Kubernetes tests build and run
/// (tests/tools/tools.txt): what CI checks is what users deploy.
#[test]
fn sidecar_images_are_the_versions_the_tests_run() {
    let mut checked = 0;
    for (file, c) in containers_of("registry.k8s.io/sig-storage/") {
        let image = c.image.unwrap_or_default();
        let (repo, tag) = image.rsplit_once(':').expect("tagged image");
        let name = repo.rsplit('/').next().unwrap();
        if let Some(pinned) = berth_tests::tools::version(name) {
            assert_eq!(tag, pinned, "{}: {image}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 3, "provisioner, resizer, snapshotter at least");
}

const DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";

/// The `berth` IngressClass in `kubectl kustomize DIR`'s output (None: kubectl is missing).
fn kustomized_class(dir: &Path) -> Option<Value> {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .find(|v| v["kind"] == "IngressClass")
}

/// Issue 12 item 7: installing berth-ingress does not make it the cluster's default class
/// (it would take every Ingress without a class); the `default-class` component opts in.
#[test]
fn the_ingress_class_is_the_default_only_with_the_component() {
    let (_, class) = documents()
        .into_iter()
        .find(|(f, v)| v["kind"] == "IngressClass" && !f.to_string_lossy().contains("components"))
        .expect("an IngressClass in deploy/");
    assert!(
        class["metadata"]["annotations"][DEFAULT_CLASS].is_null(),
        "the shipped IngressClass is the default: {class}"
    );
    let component = deploy_dir().join("ingress/components/default-class");
    let k: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(component.join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(k["kind"], "Component");
    // With kubectl at hand, render both ways.
    let base = deploy_dir().join("ingress").canonicalize().unwrap();
    if let Some(plain) = kustomized_class(&base) {
        assert!(plain["metadata"]["annotations"][DEFAULT_CLASS].is_null());
        let dir = tempfile::tempdir().unwrap();
        // kustomize takes relative paths only: climb from the temp dir to /.
        let up = "../".repeat(dir.path().components().count() - 1);
        let rel = |p: &Path| format!("{up}{}", p.display().to_string().trim_start_matches('/'));
        std::fs::write(
            dir.path().join("kustomization.yaml"),
            format!(
                "resources: [{}]\ncomponents: [{}]\n",
                rel(&base),
                rel(&component.canonicalize().unwrap())
            ),
        )
        .unwrap();
        let opted = kustomized_class(dir.path()).unwrap();
        assert_eq!(opted["metadata"]["annotations"][DEFAULT_CLASS], "true");
    }
}

/// Issue 11 item 1: Kubernetes runs its multi-attach check and calls ControllerPublish only
/// with `attachRequired: true` and an external-attacher beside the controller, allowed what
/// its upstream deploy/kubernetes/rbac.yaml (v4.13.0) lists; the StorageClass names the
/// secret ControllerPublish gets.
#[test]
fn csi_attach_is_required_and_the_attacher_may_do_its_job() {
    let (_, v) = documents()
        .into_iter()
        .find(|(_, v)| v["kind"] == "CSIDriver")
        .expect("a CSIDriver");
    let driver: CSIDriver = serde_json::from_value(v).unwrap();
    assert_eq!(driver.spec.attach_required, Some(true));
    let attachers = containers_of("/csi-attacher:");
    assert_eq!(attachers.len(), 1, "one external-attacher");
    let (file, c) = &attachers[0];
    assert!(file.ends_with("csi/controller.yaml"), "{}", file.display());
    let args = c.args.clone().unwrap_or_default();
    assert!(
        args.iter().any(|a| a == "--csi-address=/csi/csi.sock"),
        "{args:?}"
    );
    assert!(
        args.iter().any(|a| a == "--leader-election=true"),
        "{args:?}"
    );
    let mut rules = rules_of("ClusterRole", "berth-csi-controller");
    rules.extend(rules_of("Role", "berth-csi-controller-leader-election"));
    let attacher: &[(&str, &str, &[&str])] = &[
        ("", "persistentvolumes", &["get", "list", "watch", "patch"]),
        ("storage.k8s.io", "csinodes", &["get", "list", "watch"]),
        (
            "storage.k8s.io",
            "volumeattachments",
            &["get", "list", "watch", "patch"],
        ),
        ("storage.k8s.io", "volumeattachments/status", &["patch"]),
        (
            "coordination.k8s.io",
            "leases",
            &["get", "watch", "list", "delete", "update", "create"],
        ),
        ("", "secrets", &["get"]),
    ];
    for (group, resource, verbs) in attacher {
        for verb in *verbs {
            assert!(
                covers(&rules, group, resource, verb),
                "RBAC lacks {verb} {group}/{resource}"
            );
        }
    }
    let (_, sc) = documents()
        .into_iter()
        .find(|(_, v)| v["kind"] == "StorageClass")
        .expect("a StorageClass");
    for key in [
        "controller-publish-secret-name",
        "controller-publish-secret-namespace",
    ] {
        let k = format!("csi.storage.k8s.io/{key}");
        assert!(sc["parameters"][&k].is_string(), "StorageClass lacks {k}");
    }
}
