//! berth-ingress end to end on arbitrary manifests (YAML/JSON Ingresses, Services, classes,
//! Secrets, EndpointSlices): decode -> translate + validate -> render never panics, and the
//! rendered nginx config carries only values validate accepts. The invariant is checked on
//! the text nginx would read: every line is one directive (or a comment), braces balance,
//! and each `server_name`, `location`, `allow`, `client_max_body_size` argument passes the
//! grammar in ingress/src/validate.rs (a named location is `@` + letters, digits, `_`; the
//! external-auth location is `= //berth-auth/<12 hex>`; the lines of a `map` /
//! `split_clients` block are `key value;` entries without braces).
#![no_main]
use berth_ingress::model::PathKind;
use berth_ingress::render::{RenderConfig, render};
use berth_ingress::snapshot::Snapshot;
use berth_ingress::source::files::parse_manifests;
use berth_ingress::translate::{TranslateConfig, build};
use berth_ingress::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut snapshot = Snapshot::default();
    parse_manifests(text, "fuzz.yaml", &mut snapshot);
    let model = build(&snapshot, &TranslateConfig::default());
    let config = RenderConfig::new("/tmp/berth-fuzz", 8080, 8443).expect("safe prefix");
    check(&render(&model, &config));
});

fn check(conf: &str) {
    let mut depth: i64 = 0;
    // Inside a `map` / `split_clients` block: its lines are `key value;` entries.
    let mut in_map = false;
    for line in conf.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        assert!(
            !l.contains(['\r', '\0', '\t', '\u{b}', '\u{c}']),
            "control character in {line:?}"
        );
        if in_map && l != "}" {
            assert!(
                l.ends_with(';') && !l.contains(['{', '}']),
                "not one map entry: {line:?}"
            );
            continue;
        }
        assert!(
            l.ends_with(';') || l.ends_with('{') || l == "}",
            "not one directive: {line:?}"
        );
        // A directive without arguments (`internal;`) ends in its `;`.
        let word = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches(';');
        assert!(
            word == "}"
                || word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "not a directive name: {line:?}"
        );
        depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
        assert!(depth >= 0, "unbalanced at {line:?}");
        let args = || l.trim_end_matches([';', '{']).split_whitespace().skip(1);
        in_map = matches!(word, "map" | "split_clients") && l.ends_with('{');
        match word {
            "server_name" => {
                let name: Vec<&str> = args().collect();
                assert_eq!(name.len(), 1, "{line:?}");
                let n = name[0];
                if n != "_" && !n.starts_with("~^[^.]+") {
                    assert!(
                        validate::host(n).is_ok(),
                        "server_name refused by validate: {n:?}"
                    );
                }
            }
            "location" => {
                let a: Vec<&str> = args().collect();
                let path = *a.last().expect("location has a path");
                if let Some(name) = path.strip_prefix('@') {
                    assert!(
                        !name.is_empty()
                            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                        "named location: {line:?}"
                    );
                    continue;
                }
                // auth-url's internal location: `location = //berth-auth/<12 hex>`.
                if let Some(hash) = path.strip_prefix("//berth-auth/") {
                    assert!(
                        a.first() == Some(&"=")
                            && hash.len() == 12
                            && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                        "auth location: {line:?}"
                    );
                    continue;
                }
                let kind = if a.first() == Some(&"=") {
                    PathKind::Exact
                } else {
                    PathKind::Prefix
                };
                let trimmed = if path.len() > 1 {
                    path.trim_end_matches('/')
                } else {
                    path
                };
                assert!(
                    validate::path(path, kind).is_ok() || validate::path(trimmed, kind).is_ok(),
                    "location path refused by validate: {path:?}"
                );
            }
            "allow" => {
                let c: Vec<&str> = args().collect();
                assert!(c.len() == 1 && validate::cidr(c[0]).is_ok(), "{line:?}");
            }
            "client_max_body_size" => {
                let s: Vec<&str> = args().collect();
                assert!(s.len() == 1 && validate::size(s[0]).is_ok(), "{line:?}");
            }
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced braces");
}
