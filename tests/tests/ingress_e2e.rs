//! berth-ingress end to end (issue 6, issue 7 "graceful operation"): the real binary with the
//! files source, a real nginx it supervises, and real HTTP backends that answer with their
//! name and the path they received. No part of nginx is mocked.
//!
//! Routing: a labelled Service appears / changes / disappears; Ingress Exact vs Prefix,
//! longest match, wildcard hosts, default backends, oldest-wins conflicts. Safety: the injection
//! corpus and a candidate nginx refuses (`corpus.rs`). Operation: nginx killed with SIGKILL is
//! restarted; SIGTERM drains nginx and exits 0; `render --from DIR` prints a config nginx accepts.
//! The routing trials run again with simple hosts in shared server blocks (`shared_servers_*`).

#[path = "ingress_e2e/affinity.rs"]
mod affinity;
#[path = "ingress_e2e/annotations.rs"]
mod annotations;
#[path = "ingress_e2e/auth.rs"]
mod auth;
#[path = "ingress_e2e/buffering.rs"]
mod buffering;
#[path = "ingress_e2e/canary.rs"]
mod canary;
#[path = "ingress_e2e/corpus.rs"]
mod corpus;
#[path = "ingress_e2e/corpus_values.rs"]
mod corpus_values;
#[path = "ingress_e2e/cors.rs"]
mod cors;
#[path = "ingress_e2e/errors.rs"]
mod errors;
#[path = "ingress_e2e/external_auth.rs"]
mod external_auth;
#[path = "ingress_e2e/gateway.rs"]
mod gateway;
#[path = "ingress_e2e/gateway_fixture.rs"]
mod gateway_fixture;
#[path = "ingress_e2e/isolation.rs"]
mod isolation;
#[path = "ingress_e2e/limits.rs"]
mod limits;
#[path = "ingress_e2e/process.rs"]
mod process;
#[path = "ingress_e2e/redirects.rs"]
mod redirects;
#[path = "ingress_e2e/routing.rs"]
mod routing;
#[path = "ingress_e2e/scale.rs"]
mod scale;
#[path = "ingress_e2e/tenancy.rs"]
mod tenancy;

use std::cell::Cell;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_tests::backend::Backend;
use berth_tests::ingress_ctl::{self, IngressCtl, local_service};
use berth_tests::nginx::http_get;
use berth_tests::proc::{free_port, run, spawn_tied, wait_until};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};

fn main() {
    let args = Arguments::from_args();
    let t = |name: &str, f: fn() -> Result<()>| {
        Trial::test(name, move || {
            f().map_err(|e| Failed::from(format!("{e:#}")))
        })
    };
    // The same routing trials with every simple host in a shared server block
    // (`--shared-min-hosts=1`, render_shared.rs): routing must not change.
    let shared = |name: &str, f: fn() -> Result<()>| {
        Trial::test(format!("shared_servers_{name}"), move || {
            SHARED_SERVERS.set(true);
            f().map_err(|e| Failed::from(format!("{e:#}")))
        })
    };
    let trials = vec![
        shared("service_lifecycle", routing::service_lifecycle),
        shared("exact_prefix_and_longest_match", routing::path_matching),
        shared("wildcard_host", routing::wildcard_host),
        shared(
            "default_backend_flag_then_ingress",
            routing::default_backend,
        ),
        shared(
            "tenancy",
            tenancy::host_less_rules_and_default_backends_stay_in_the_catch_all,
        ),
        t(
            "service_appears_moves_and_disappears",
            routing::service_lifecycle,
        ),
        t("exact_prefix_and_longest_match", routing::path_matching),
        t(
            "wildcard_host_matches_one_label_only",
            routing::wildcard_host,
        ),
        t(
            "default_backend_flag_then_ingress",
            routing::default_backend,
        ),
        t("conflict_oldest_wins_loser_reported", routing::conflict),
        t(
            "tenancy_host_less_and_default_backend_stay_in_catch_all",
            tenancy::host_less_rules_and_default_backends_stay_in_the_catch_all,
        ),
        t(
            "nginx_annotation_unsupported_refused_rest_served",
            annotations::unsupported_annotation_is_refused_the_rest_serves,
        ),
        t(
            "annotation_basic_auth_and_source_ranges",
            auth::basic_auth_and_source_ranges,
        ),
        t(
            "annotation_auth_url_allows_and_denies",
            external_auth::auth_url_allows_and_denies,
        ),
        t(
            "annotation_auth_signin_redirects_to_sign_in",
            external_auth::auth_signin_redirects_to_sign_in,
        ),
        t(
            "annotation_redirects_and_upstream_vhost",
            redirects::redirects_and_upstream_vhost,
        ),
        t(
            "annotation_rate_and_connection_limits",
            limits::rate_and_connection_limits,
        ),
        t(
            "annotation_cors_preflight_and_hsts",
            cors::cors_preflight_and_hsts,
        ),
        t(
            "annotation_proxy_buffering_off_streams",
            buffering::proxy_buffering_off_streams,
        ),
        t(
            "annotation_proxy_send_timeout_gives_504",
            buffering::proxy_send_timeout_gives_504,
        ),
        t(
            "annotation_custom_http_errors_pages",
            errors::custom_error_pages,
        ),
        t(
            "annotation_affinity_cookie_sticks",
            affinity::sticky_cookie_keeps_one_backend,
        ),
        t(
            "annotation_canary_weight_header_and_cookie",
            canary::canary_weight_header_and_cookie,
        ),
        t(
            "gateway_http_routes_match_filter_and_redirect",
            gateway::http_routes_match_filter_and_redirect,
        ),
        t(
            "gateway_weighted_backends_and_tls_listener",
            gateway::weighted_backends_and_tls_listener,
        ),
        t("injection_corpus_never_reaches_nginx", corpus::injection),
        t(
            "nginx_refuses_candidate_last_good_serves",
            corpus::nginx_refuses,
        ),
        t(
            "isolation_tls_only_refused_certificate_blocks_nobody",
            isolation::tls_only_refused_certificate_blocks_nobody,
        ),
        t(
            "isolation_twenty_refused_objects_do_not_block_the_rest",
            isolation::twenty_refused_objects_do_not_block_the_rest,
        ),
        t(
            "isolation_startup_with_a_refused_object_serves_the_rest",
            isolation::startup_with_a_refused_object_serves_the_rest,
        ),
        t(
            "scale_6000_hosts_pass_nginx_t_without_warnings",
            scale::six_thousand_hosts_pass_nginx_t_without_warnings,
        ),
        t("nginx_killed_is_restarted", process::nginx_killed),
        t("sigterm_drains_nginx_and_exits_zero", process::sigterm),
        t(
            "render_from_dir_prints_a_valid_config",
            process::render_from_dir,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// How long a change may take to be served in these tests (the goal is far lower; CI is slow).
pub const SERVED_WITHIN: Duration = Duration::from_secs(10);

/// A Service selected by the default label, routed by `berth.dev/host`, ClusterIP 127.0.0.1.
pub fn labelled_service(ns: &str, name: &str, host: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns,
                        "labels": {"berth.dev/expose": "true"},
                        "annotations": {"berth.dev/host": host}},
           "spec": {"clusterIP": "127.0.0.1", "ports": [{"port": port}]}})
}

/// An Ingress of class `berth` with one rule: `(path, pathType, service, port)` entries.
pub fn ingress_rule(ns: &str, name: &str, host: &str, paths: &[(&str, &str, &str, u16)]) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(p, kind, svc, port)| {
            json!({"path": p, "pathType": kind,
                   "backend": {"service": {"name": svc, "port": {"number": port}}}})
        })
        .collect();
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"ingressClassName": "berth",
                    "rules": [{"host": host, "http": {"paths": paths}}]}})
}

pub fn remove(ctl: &IngressCtl, name: &str) -> Result<()> {
    std::fs::remove_file(ctl.manifests.join(format!("{name}.json")))
        .with_context(|| format!("removing manifest {name}"))
}

/// (status, body) of GET `path` with `Host: host` through the controller's nginx.
pub fn get(ctl: &IngressCtl, host: &str, path: &str) -> (u16, String) {
    match http_get(&ctl.http_addr(), host, path) {
        Ok(r) => (r.status, r.body),
        Err(e) => (0, format!("{e:#}")),
    }
}

/// Wait until `host` + `path` answers `status` (and `body`, when given).
/// Every check waits: after a reload, old nginx workers may still accept a connection for a
/// moment, so one answer from the new config does not mean the next cannot come from the old.
pub fn served(
    ctl: &IngressCtl,
    host: &str,
    path: &str,
    status: u16,
    body: Option<&str>,
) -> Result<()> {
    let mut last = (0, String::new());
    wait_until(
        &format!("{host}{path} -> {status} {body:?}"),
        SERVED_WITHIN,
        || {
            last = get(ctl, host, path);
            last.0 == status && body.is_none_or(|b| last.1 == b)
        },
    )
    .with_context(|| format!("last answer {last:?}; log:\n{}", ctl.log_text()))
}

/// Wait until `ask()` gives an answer `ok` accepts (`what` names the wait); on timeout the
/// error shows the last answer and the controller's log.
pub fn answered<T: std::fmt::Debug + Default>(
    ctl: &IngressCtl,
    what: &str,
    mut ask: impl FnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> Result<()> {
    let mut last = T::default();
    wait_until(what, SERVED_WITHIN, || {
        last = ask();
        ok(&last)
    })
    .with_context(|| format!("last {last:?}; log:\n{}", ctl.log_text()))
}

/// Wait until a line of the controller's log names `ns/name` and says every one of `says`.
pub fn refused_in_log(ctl: &IngressCtl, ns: &str, name: &str, says: &[&str]) -> Result<()> {
    let object = format!("{ns}/{name}");
    wait_until(&format!("{name} reported"), SERVED_WITHIN, || {
        ctl.log_text()
            .lines()
            .any(|l| l.contains(&object) && says.iter().all(|s| l.contains(s)))
    })
    .with_context(|| ctl.log_text())
}

thread_local! {
    /// This trial's controller renders simple hosts into shared server blocks.
    static SHARED_SERVERS: Cell<bool> = const { Cell::new(false) };
}

pub fn started(manifests: &[(&str, Value)], extra: &[String]) -> Result<IngressCtl> {
    let mut extra = extra.to_vec();
    if SHARED_SERVERS.get() {
        extra.push("--shared-min-hosts=1".to_owned());
    }
    let ctl = IngressCtl::start(manifests, &extra)?;
    ctl.wait_ready()?;
    // /readyz turns true at the first successful install, a moment before the supervised nginx
    // has bound its port.
    wait_until("nginx to listen", SERVED_WITHIN, || {
        std::net::TcpStream::connect(ctl.http_addr()).is_ok()
    })?;
    Ok(ctl)
}
