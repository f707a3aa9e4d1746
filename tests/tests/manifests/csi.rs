//! deploy/csi: berth-csi's flags exist, the node plugin has what attach and mount need, the
//! sidecars are the versions the tests run, attach is required and the attacher may do it.

use super::*;

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

/// `--domain-labels`: the node plugin's pod runs as berth-csi-node with a token, and a
/// ClusterRoleBinding of that ServiceAccount grants `get` on nodes (its one API call).
#[test]
fn csi_node_plugin_may_get_its_node_for_domain_labels() {
    let (file, spec) = pod_specs()
        .into_iter()
        .find(|(f, _)| f.ends_with("csi/node.yaml"))
        .expect("node DaemonSet");
    let sa = spec.service_account_name.clone().expect("a ServiceAccount");
    assert_eq!(sa, "berth-csi-node", "{}", file.display());
    assert_eq!(
        spec.automount_service_account_token,
        Some(true),
        "the pod needs its token for --domain-labels"
    );
    let mut rules = Vec::new();
    for (_, v) in documents() {
        if v["kind"] != "ClusterRoleBinding" {
            continue;
        }
        let binding: ClusterRoleBinding = serde_json::from_value(v).unwrap();
        let bound = binding.subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == sa
                && s.namespace.as_deref() == Some("berth-system")
        });
        if bound && binding.role_ref.kind == "ClusterRole" {
            rules.extend(rules_of("ClusterRole", &binding.role_ref.name));
        }
    }
    assert!(
        covers(&rules, "", "nodes", "get"),
        "RBAC lacks get /nodes for ServiceAccount {sa}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("--domain-labels="),
        "{} shows no --domain-labels example",
        file.display()
    );
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

/// Fencing: Kubernetes runs its multi-attach check and calls ControllerPublish only
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

/// A VolumeAttributesClass (storage.k8s.io/v1, newer than the API types these tests build
/// with): berth's driver and only the QoS mutable parameters berth-csi accepts.
pub fn volume_attributes_class(file: &Path, v: &Value) {
    let ctx = file.display();
    assert_eq!(v["apiVersion"], "storage.k8s.io/v1", "{ctx}");
    assert_eq!(v["driverName"], "rbd.csi.berth.dev", "{ctx}");
    let params = v["parameters"].as_object().expect("parameters");
    for (k, val) in params {
        assert!(
            berth_csi::controller::QOS_KEYS.contains(&k.as_str()),
            "{ctx}: {k} is not a mutable parameter of berth-csi"
        );
        let n = val.as_str().expect("string values");
        assert!(n.parse::<u64>().is_ok(), "{ctx}: {k}: {n:?}");
    }
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    for k in keys {
        assert!(
            ["apiVersion", "kind", "metadata", "driverName", "parameters"].contains(&k.as_str()),
            "{ctx}: unknown field {k}"
        );
    }
}

/// Every StorageClass of berth's driver in deploy/ is accepted by berth-csi's own parameter
/// parser (what CreateVolume runs first), and the encrypted example names a Secret holding
/// the passphrase for both the provisioner and node stage.
#[test]
fn storage_classes_parse_as_berth_csi_reads_them() {
    let docs = documents();
    let mut encrypted = 0;
    for (file, sc) in docs.iter().filter(|(_, v)| v["kind"] == "StorageClass") {
        if sc["provisioner"] != "rbd.csi.berth.dev" {
            continue;
        }
        let params: std::collections::HashMap<String, String> = sc["parameters"]
            .as_object()
            .expect("parameters")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
            .collect();
        let p = berth_csi::params::VolumeParams::parse(&params)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if p.encryption == berth_csi::params::Encryption::File {
            encrypted += 1;
            let secret_of =
                |role: &str| params[&format!("csi.storage.k8s.io/{role}-secret-name")].clone();
            let name = secret_of("provisioner");
            assert_eq!(name, secret_of("node-stage"), "{}", file.display());
            let secret = docs
                .iter()
                .find(|(_, v)| v["kind"] == "Secret" && v["metadata"]["name"] == name.as_str())
                .unwrap_or_else(|| panic!("no Secret {name}"));
            assert!(
                secret.1["stringData"][berth_csi::kms::PASSPHRASE_KEY].is_string(),
                "Secret {name} lacks {}",
                berth_csi::kms::PASSPHRASE_KEY
            );
        }
    }
    assert!(encrypted > 0, "no encrypted StorageClass example");
}
