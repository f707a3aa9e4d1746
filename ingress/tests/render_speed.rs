//! Render speed: 10 000 routes (10 000 Ingresses, one host each) must render in ≤ 50 ms in
//! release builds (`cargo test --release -p berth-ingress --test render_speed -- --nocapture`).
//! Debug builds only report the figure.

use std::sync::Arc;
use std::time::Instant;

use berth_ingress::render::{RenderConfig, render};
use berth_ingress::snapshot::Snapshot;
use berth_ingress::source::files::parse_manifests;
use berth_ingress::translate::{self, TranslateConfig};

const ROUTES: usize = 10_000;

#[test]
fn render_10k_routes() {
    let mut snap = Snapshot::default();
    parse_manifests(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: bench}\nspec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}\n",
        "svc.yaml",
        &mut snap,
    );
    let template = {
        let mut s = Snapshot::default();
        parse_manifests(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: bench}\nspec:\n  ingressClassName: berth\n  rules: [{host: h.example.com, http: {paths: [{path: /app, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]\n",
            "ing.yaml",
            &mut s,
        );
        (*s.ingresses[0]).clone()
    };
    for i in 0..ROUTES {
        let mut ing = template.clone();
        ing.metadata.name = Some(format!("ing-{i}"));
        let spec = ing.spec.as_mut().unwrap();
        spec.rules.as_mut().unwrap()[0].host = Some(format!("host-{i}.example.com"));
        snap.ingresses.push(Arc::new(ing));
    }
    let config = TranslateConfig::default();
    let rc = RenderConfig::new("/run/berth", 80, 443).unwrap();

    let t = Instant::now();
    let model = translate::build(&snap, &config);
    let translate_time = t.elapsed();
    let locations: usize = model.servers.iter().map(|s| s.locations.len()).sum();
    assert_eq!(locations, ROUTES);

    let mut best = std::time::Duration::MAX;
    let mut bytes = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let text = render(&model, &rc);
        best = best.min(t.elapsed());
        bytes = text.len();
    }
    println!("render {ROUTES} routes: best {best:?} ({bytes} bytes); translate {translate_time:?}");
    if !cfg!(debug_assertions) {
        assert!(best.as_millis() <= 50, "render took {best:?}");
    }
}
