//! deploy/ingress: berth-ingress's flags exist, its RBAC covers the API access the code
//! makes, and the IngressClass is the default only with the default-class component. The
//! Gateway API parts (the vendored CRDs, the GatewayClass component, the example) are checked
//! in [`gateway`].

#[path = "gateway.rs"]
mod gateway;
pub use gateway::gateway_api_object;

use super::*;

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
        &["get", "list", "watch", "create", "update"],
    ),
    ("", "namespaces", &["list", "watch"]),
    (GW, "gatewayclasses", &["list", "watch"]),
    (GW, "gateways", &["list", "watch"]),
    (GW, "httproutes", &["list", "watch"]),
    (GW, "grpcroutes", &["list", "watch"]),
    (GW, "referencegrants", &["list", "watch"]),
    (GW, "gatewayclasses/status", &["get", "update", "patch"]),
    (GW, "gateways/status", &["get", "update", "patch"]),
    (GW, "httproutes/status", &["get", "update", "patch"]),
    (GW, "grpcroutes/status", &["get", "update", "patch"]),
];

const GW: &str = "gateway.networking.k8s.io";

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
            for res in r.resources.iter().flatten() {
                assert!(res.ends_with("/status"), "the ClusterRole writes {res}");
            }
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
        ("Namespace", "namespaces"),
        ("GatewayClass", "gatewayclasses"),
        ("Gateway", "gateways"),
        ("HTTPRoute", "httproutes"),
        ("GRPCRoute", "grpcroutes"),
        ("ReferenceGrant", "referencegrants"),
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
            || text.contains(&format!("api::<{ty}>"))
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
