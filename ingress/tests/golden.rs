//! Golden files: each `tests/golden/<case>.yaml` (manifests) renders to `<case>.conf`, and its
//! reports (one per line) are `<case>.reports`. Cases whose name contains `endpoints` use
//! `--upstream=endpoints`. Regenerate with `UPDATE_GOLDEN=1 cargo test -p berth-ingress --test golden`.

use std::fs;
use std::path::Path;

use berth_ingress::render::{RenderConfig, render};
use berth_ingress::snapshot::Snapshot;
use berth_ingress::source::files::parse_manifests;
use berth_ingress::translate::{self, LabelSelector, TranslateConfig, UpstreamMode};

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
            upstream_mode: if name.contains("endpoints") {
                UpstreamMode::Endpoints
            } else {
                UpstreamMode::ClusterIp
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
