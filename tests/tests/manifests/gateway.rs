//! deploy/ingress's Gateway API parts: the vendored standard-channel CRDs are the five kinds
//! berth-ingress serves at one pinned bundle version, the `berth` GatewayClass component names
//! our controller, and the example's Gateway, HTTPRoute and Service fit together. Each
//! kustomization is rendered with `kubectl kustomize` when kubectl is at hand.

use super::*;

/// The bundle version vendored into deploy/ingress/gateway-api (see its kustomization.yaml).
const BUNDLE_VERSION: &str = "v1.4.1";
/// The controllerName berth-ingress accepts by default.
const CONTROLLER_NAME: &str = berth_ingress::gateway::DEFAULT_GATEWAY_CONTROLLER_NAME;

/// A Gateway API object in deploy/: parses into berth-ingress's own type for its kind with
/// nothing lost (a misspelled field would be ignored by the controller).
pub fn gateway_api_object(file: &Path, v: &Value) {
    use berth_ingress::gateway::{Gateway, GatewayClass, HTTPRoute};
    match v["kind"].as_str() {
        Some("GatewayClass") => drop(strict::<GatewayClass>(file, v)),
        Some("Gateway") => drop(strict::<Gateway>(file, v)),
        Some("HTTPRoute") => drop(strict::<HTTPRoute>(file, v)),
        other => panic!("{}: {other:?}", file.display()),
    }
}

/// `kubectl kustomize DIR` as documents (None: kubectl is missing).
fn kustomized(dir: &Path) -> Option<Vec<Value>> {
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
    Some(
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).unwrap())
            .collect(),
    )
}

fn crds() -> Vec<(PathBuf, CustomResourceDefinition)> {
    documents()
        .into_iter()
        .filter(|(f, v)| v["kind"] == "CustomResourceDefinition" && f.starts_with(gw_dir()))
        .map(|(f, v)| {
            let crd = serde_json::from_value(v).unwrap();
            (f, crd)
        })
        .collect()
}

fn gw_dir() -> PathBuf {
    deploy_dir().join("ingress/gateway-api")
}

#[test]
fn the_gateway_api_crds_are_the_standard_channel_at_one_version() {
    let mut kinds = BTreeSet::new();
    for (file, crd) in crds() {
        let ann = crd.metadata.annotations.clone().unwrap_or_default();
        let f = file.display();
        assert_eq!(
            ann.get("gateway.networking.k8s.io/bundle-version")
                .map(String::as_str),
            Some(BUNDLE_VERSION),
            "{f}"
        );
        assert_eq!(
            ann.get("gateway.networking.k8s.io/channel")
                .map(String::as_str),
            Some("standard"),
            "{f}"
        );
        assert_eq!(crd.spec.group, "gateway.networking.k8s.io", "{f}");
        // The version berth-ingress reads is served and stored.
        let want = if crd.spec.names.kind == "ReferenceGrant" {
            "v1beta1"
        } else {
            "v1"
        };
        assert!(
            crd.spec
                .versions
                .iter()
                .any(|v| v.name == want && v.served && v.storage),
            "{f}: {want} not served and stored"
        );
        kinds.insert(crd.spec.names.kind.clone());
    }
    let want: BTreeSet<String> = ["GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute"]
        .into_iter()
        .chain(["ReferenceGrant"])
        .map(String::from)
        .collect();
    assert_eq!(kinds, want);
    let text = std::fs::read_to_string(gw_dir().join("kustomization.yaml")).unwrap();
    assert!(
        text.contains(&format!("sigs.k8s.io/gateway-api {BUNDLE_VERSION}")),
        "the kustomization names the vendored version"
    );
    if let Some(docs) = kustomized(&gw_dir()) {
        assert_eq!(docs.len(), 5);
        assert!(docs.iter().all(|d| d["kind"] == "CustomResourceDefinition"));
    }
}

#[test]
fn the_gateway_class_component_names_our_controller() {
    let component = deploy_dir().join("ingress/components/gateway-api");
    let k: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(component.join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(k["kind"], "Component");
    let (_, class) = documents()
        .into_iter()
        .find(|(_, v)| v["kind"] == "GatewayClass")
        .expect("a GatewayClass in deploy/");
    assert_eq!(class["metadata"]["name"], "berth");
    assert_eq!(class["spec"]["controllerName"], CONTROLLER_NAME);
    // The base installs without the CRDs: no Gateway API object in it.
    let base = deploy_dir().join("ingress");
    if let Some(docs) = kustomized(&base) {
        assert!(
            !docs.iter().any(|d| d["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("gateway.networking.k8s.io/"))),
            "deploy/ingress needs the Gateway API CRDs"
        );
    }
}

#[test]
fn the_example_gateway_fits_together() {
    let dir = deploy_dir().join("ingress/example-gateway");
    let docs: Vec<Value> = documents()
        .into_iter()
        .filter(|(f, _)| f.starts_with(&dir))
        .map(|(_, v)| v)
        .collect();
    let one = |kind: &str| {
        let all: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
        assert_eq!(all.len(), 1, "one {kind} in the example");
        all[0].clone()
    };
    let (gateway, route, service) = (one("Gateway"), one("HTTPRoute"), one("Service"));
    assert_eq!(gateway["spec"]["gatewayClassName"], "berth");
    let listeners: Vec<&Value> = gateway["spec"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    for parent in route["spec"]["parentRefs"].as_array().unwrap() {
        assert_eq!(parent["name"], gateway["metadata"]["name"]);
        if let Some(section) = parent["sectionName"].as_str() {
            assert!(listeners.iter().any(|l| l["name"] == section), "{section}");
        }
    }
    let ports: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    for rule in route["spec"]["rules"].as_array().unwrap() {
        for b in rule["backendRefs"].as_array().unwrap() {
            assert_eq!(b["name"], service["metadata"]["name"]);
            assert!(ports.iter().any(|p| p["port"] == b["port"]), "{b}");
        }
    }
    if let Some(rendered) = kustomized(&dir) {
        assert_eq!(rendered.len(), docs.len());
    }
}
