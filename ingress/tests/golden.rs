//! Golden files: each `tests/golden/<case>.yaml` (manifests) renders to `<case>.conf`, and its
//! reports (one per line) are `<case>.reports`. Cases whose name contains `endpoints` use
//! `--upstream=endpoints`. Regenerate with `UPDATE_GOLDEN=1 cargo test -p berth-ingress --test golden`.

use std::fs;
use std::path::Path;

use berth_ingress::render::{RenderConfig, render};
use berth_ingress::snapshot::Snapshot;
use berth_ingress::source::files::parse_manifests;
use berth_ingress::translate::{self, BackendPolicy, LabelSelector, TranslateConfig, UpstreamMode};

fn check(expected_path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(expected_path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(expected_path).unwrap_or_else(|_| {
        panic!(
            "{} missing; run with UPDATE_GOLDEN=1",
            expected_path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs from the rendered output:\n{}\n(run with UPDATE_GOLDEN=1 to accept)",
            expected_path.display(),
            actual
        );
    }
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case.file_stem().unwrap().to_str().unwrap().to_owned();
        let mut snapshot = Snapshot::default();
        parse_manifests(&fs::read_to_string(&case).unwrap(), &name, &mut snapshot);
        let config = TranslateConfig {
            service_selector: LabelSelector::parse("app.kubernetes.io/expose=true").unwrap(),
            backends: BackendPolicy {
                mode: if name.contains("endpoints") {
                    UpstreamMode::Endpoints
                } else {
                    UpstreamMode::ClusterIp
                },
                ..BackendPolicy::default()
            },
            ..TranslateConfig::default()
        };
        let model = translate::build(&snapshot, &config);
        let mut rc = RenderConfig::new("/run/berth-golden", 8080, 8443).unwrap();
        rc.worker_processes = Some(1);
        check(&case.with_extension("conf"), &render(&model, &rc));
        let reports: String = model.reports.iter().map(|r| format!("{r}\n")).collect();
        check(&case.with_extension("reports"), &reports);
    }
}

/// The `server { ... }` block whose `server_name` is `name` (`_` for the catch-all).
fn server_block<'a>(conf: &'a str, name: &str) -> &'a str {
    let marker = format!("        server_name {name};\n");
    let at = conf
        .find(&marker)
        .unwrap_or_else(|| panic!("no server {name}"));
    let start = conf[..at].rfind("    server {\n").unwrap();
    let end = at + conf[at..].find("\n    }\n").unwrap();
    &conf[start..end]
}

/// Issue 12 item 1, asserted on the multi-tenant corpus (the golden files pin the rest).
#[test]
fn tenants_never_receive_each_others_traffic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut snapshot = Snapshot::default();
    let text = fs::read_to_string(dir.join("tenants.yaml")).unwrap();
    parse_manifests(&text, "tenants", &mut snapshot);
    let config = TranslateConfig {
        service_selector: LabelSelector::parse("app.kubernetes.io/expose=true").unwrap(),
        ..TranslateConfig::default()
    };
    let model = translate::build(&snapshot, &config);
    let rc = RenderConfig::new("/run/berth-golden", 8080, 8443).unwrap();
    let conf = render(&model, &rc);
    let shop = server_block(&conf, "shop.example.com");
    for foreign in ["team-b", "team-c", "team-d"] {
        assert!(
            !shop.contains(foreign),
            "{foreign} in shop.example.com:\n{shop}"
        );
    }
    assert!(shop.contains("proxy_pass http://team-a_api_80;"), "{shop}");
    assert!(shop.contains("ssl_certificate "), "{shop}");
    let catch_all = server_block(&conf, "_");
    assert!(catch_all.contains("location ^~ /login/"), "{catch_all}");
    assert!(
        catch_all.contains("proxy_pass http://team-c_fallback_80;"),
        "{catch_all}"
    );
    let d = server_block(&conf, "d.example.com");
    assert!(
        d.contains("proxy_pass http://team-d_other_80;") && !d.contains("team-c"),
        "{d}"
    );
    let c = server_block(&conf, "c.example.com");
    assert!(c.contains("proxy_pass http://team-c_fallback_80;"), "{c}");
    let reported = |object: &str, what: &str| {
        model
            .reports
            .iter()
            .any(|r| r.object.to_string() == object && r.to_string().contains(what))
    };
    assert!(
        reported("Ingress/team-b/grab", "shop.example.com"),
        "{:#?}",
        model.reports
    );
    assert!(
        reported("Service/team-b/grab-svc", "shop.example.com"),
        "{:#?}",
        model.reports
    );
    assert!(
        reported("Ingress/team-d/fallback", "default backend"),
        "{:#?}",
        model.reports
    );
}
