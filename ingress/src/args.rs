//! Command line: one clap `Args` with subcommands; every flag has an env fallback.
//!
//! `berth-ingress [run]` runs the controller (default), `render --from DIR` prints the config
//! for a directory of manifests, `check --from DIR` says per Ingress which annotations are
//! honoured or refused (migrating from ingress-nginx), `init --from DIR --out FILE` writes the first config (the
//! original design's init container). Flags are global: they go before or after the command.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// The label that puts a Service on the labelled-Service routes (`berth.dev/host`,
/// `berth.dev/path`, `berth.dev/port` annotations); deploy/ingress and its example use it too.
pub const DEFAULT_SERVICE_SELECTOR: &str = "berth.dev/expose=true";

#[derive(Debug, Parser)]
#[command(
    name = "berth-ingress",
    version,
    about = "Services and Ingresses -> a validated, atomically swapped nginx config"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub opts: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (the default): watch, render, swap, reload; supervise nginx.
    Run,
    /// Print the nginx config for a directory of manifests (dry run) and its reports on stderr.
    Render {
        #[arg(long)]
        from: PathBuf,
    },
    /// Migration aid: for each Ingress in a directory of manifests, which annotations berth
    /// honours, which it refuses and why, and whether the Ingress would be served (exit status
    /// 1 when one of ours would not be).
    Check {
        #[arg(long)]
        from: PathBuf,
    },
    /// Write the first config for a directory of manifests (tested with nginx -t when present).
    Init {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// (internal) Run PROGRAM so that it gets SIGTERM when process PARENT dies.
    #[command(hide = true)]
    ExecTied {
        #[arg(long)]
        parent: i32,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<std::ffi::OsString>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    Kube,
    Files,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UpstreamArg {
    Clusterip,
    Endpoints,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

fn duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "ms"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 100ms or 1s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(format!("'{s}': unit must be ms or s")),
    }
}

fn namespaced(s: &str) -> Result<(String, String), String> {
    let (ns, name) = s.split_once('/').ok_or("expected namespace/name")?;
    crate::validate::dns_label(ns).map_err(|e| e.to_string())?;
    crate::validate::dns_label(name).map_err(|e| e.to_string())?;
    Ok((ns.to_owned(), name.to_owned()))
}

/// `namespace/name` of a Secret (names are DNS subdomains).
fn namespaced_secret(s: &str) -> Result<(String, String), String> {
    let (ns, name) = s.split_once('/').ok_or("expected namespace/name")?;
    crate::validate::dns_label(ns).map_err(|e| e.to_string())?;
    crate::validate::dns_name(name).map_err(|e| e.to_string())?;
    Ok((ns.to_owned(), name.to_owned()))
}

/// A Kubernetes label value (63 characters: letters, digits, `-`, `_`, `.`; alphanumeric ends).
/// An ingress-nginx annotation `--ignore-annotations` may name: `name` or
/// `nginx.ingress.kubernetes.io/name`; never a snippet.
fn ignorable_annotation(s: &str) -> Result<String, String> {
    use crate::translate::annotations::{NGINX_PREFIX, is_snippet};
    let name = s.trim();
    let name = name.strip_prefix(NGINX_PREFIX).unwrap_or(name);
    if is_snippet(name) {
        return Err(format!(
            "'{}': snippets are never accepted, they cannot be ignored",
            crate::validate::excerpt(s)
        ));
    }
    label_value(name).map_err(|_| {
        format!(
            "'{}' is not an ingress-nginx annotation name",
            crate::validate::excerpt(s)
        )
    })
}

fn label_value(s: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if s.len() <= 63 && s.chars().all(ok_char) && ends(s.chars().next()) && ends(s.chars().last()) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{}' is not a label value",
            crate::validate::excerpt(s)
        ))
    }
}

/// Comma-separated IPs or DNS names for Ingress status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishAddresses(pub Vec<String>);

fn publish_addresses(s: &str) -> Result<PublishAddresses, String> {
    let mut out = Vec::new();
    for a in s.split(',').map(str::trim) {
        if a.parse::<IpAddr>().is_err() {
            crate::validate::dns_name(a).map_err(|e| format!("'{a}': {e}"))?;
        }
        out.push(a.to_owned());
    }
    Ok(PublishAddresses(out))
}

#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// nginx executable.
    #[arg(
        long,
        global = true,
        env = "BERTH_NGINX_BINARY",
        default_value = "/usr/sbin/nginx"
    )]
    pub nginx_binary: PathBuf,
    /// The live nginx config file berth writes (atomically). Default: /etc/nginx/nginx.conf,
    /// but only if that file is absent or was written by berth-ingress: a system's own
    /// nginx.conf is never overwritten unless this flag names it.
    #[arg(long, global = true, env = "BERTH_NGINX_CONF")]
    pub nginx_conf: Option<PathBuf>,
    /// nginx prefix (-p): pid file and temp directories.
    #[arg(
        long,
        global = true,
        env = "BERTH_NGINX_PREFIX",
        default_value = "/var/lib/berth-ingress"
    )]
    pub nginx_prefix: PathBuf,
    /// Bound on each nginx call: `nginx -t`, and a reload until nginx serves it (e.g. 10s).
    #[arg(long, global = true, env = "BERTH_NGINX_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub nginx_timeout: Duration,
    /// Do not start nginx; reload the one whose pid is in PREFIX/nginx.pid.
    #[arg(long, global = true, env = "BERTH_EXTERNAL_NGINX")]
    pub external_nginx: bool,
    /// Label selector for Services routed by berth.dev/host and berth.dev/path annotations.
    #[arg(
        long,
        global = true,
        env = "BERTH_SERVICE_SELECTOR",
        default_value = DEFAULT_SERVICE_SELECTOR
    )]
    pub service_selector: String,
    /// Watch only this namespace (default: all).
    #[arg(long, global = true, env = "BERTH_NAMESPACE")]
    pub namespace: Option<String>,
    /// IngressClass name we answer to.
    #[arg(long, global = true, env = "BERTH_INGRESS_CLASS", default_value = crate::translate::DEFAULT_INGRESS_CLASS)]
    pub ingress_class: String,
    /// IngressClass spec.controller value that marks a class as ours.
    #[arg(long, global = true, env = "BERTH_CONTROLLER_NAME", default_value = crate::translate::DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// GatewayClass spec.controllerName value that marks a class (and its Gateways) as ours.
    #[arg(long, global = true, env = "BERTH_GATEWAY_CONTROLLER_NAME", default_value = crate::gateway::DEFAULT_GATEWAY_CONTROLLER_NAME)]
    pub gateway_controller_name: String,
    /// Upstream addresses: the Service ClusterIP, or the ready EndpointSlice addresses.
    #[arg(
        long,
        global = true,
        env = "BERTH_UPSTREAM",
        value_enum,
        default_value = "clusterip"
    )]
    pub upstream: UpstreamArg,
    /// With --upstream endpoints: EndpointSlice managers (values of the label
    /// endpointslice.kubernetes.io/managed-by), comma-separated, trusted besides the
    /// EndpointSlice controller (endpointslice-controller.k8s.io). Slices of any other manager
    /// are ignored and reported: whoever may write EndpointSlices in a namespace could otherwise
    /// send a Service's traffic anywhere. Examples: endpointslicemirroring-controller.k8s.io
    /// (selector-less Services with hand-written Endpoints), a test harness's own name.
    /// Addresses that are loopback, link-local (169.254.169.254), unspecified or multicast are
    /// never used, whoever manages the slice.
    #[arg(long, global = true, env = "BERTH_TRUST_ENDPOINTSLICE_MANAGERS", value_delimiter = ',', value_parser = label_value)]
    pub trust_endpointslice_managers: Vec<String>,
    /// Allow Services of type ExternalName as backends (off by default: nginx would proxy to
    /// whatever the name the Service owner chose resolves to, and resolving it can stall
    /// nginx -t).
    #[arg(long, global = true, env = "BERTH_ALLOW_EXTERNAL_NAME")]
    pub allow_external_name: bool,
    /// Port nginx serves plain HTTP on.
    #[arg(long, global = true, env = "BERTH_HTTP_PORT", default_value_t = 80)]
    pub http_port: u16,
    /// Port nginx serves HTTPS on (hosts with a certificate, and the default certificate).
    #[arg(long, global = true, env = "BERTH_HTTPS_PORT", default_value_t = 443)]
    pub https_port: u16,
    /// Address nginx listens on (default: all IPv4 addresses).
    #[arg(long, global = true, env = "BERTH_LISTEN_ADDRESS")]
    pub listen_address: Option<IpAddr>,
    /// nginx worker_processes (default: auto).
    #[arg(long, global = true, env = "BERTH_WORKER_PROCESSES")]
    pub worker_processes: Option<u16>,
    /// Simple hosts (exact name, no TLS, no annotations) with the same paths share one nginx
    /// server block, their upstreams chosen by `map $host`, once there are this many of them.
    #[arg(long, global = true, env = "BERTH_SHARED_MIN_HOSTS", default_value_t = crate::render::DEFAULT_SHARED_MIN_HOSTS)]
    pub shared_min_hosts: usize,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        global = true,
        env = "BERTH_METRICS_ADDRESS",
        default_value = "0.0.0.0:10254"
    )]
    pub metrics_address: SocketAddr,
    /// Where objects come from.
    #[arg(
        long,
        global = true,
        env = "BERTH_SOURCE",
        value_enum,
        default_value = "kube"
    )]
    pub source: SourceKind,
    /// Manifests directory for --source files.
    #[arg(long, global = true, env = "BERTH_MANIFESTS_DIR")]
    pub manifests_dir: Option<PathBuf>,
    /// Quiet time that ends a burst of changes (e.g. 100ms).
    #[arg(long, global = true, env = "BERTH_DEBOUNCE_MIN", default_value = "100ms", value_parser = duration)]
    pub debounce_min: Duration,
    /// Longest wait under a continuous stream of changes (e.g. 1s).
    #[arg(long, global = true, env = "BERTH_DEBOUNCE_MAX", default_value = "1s", value_parser = duration)]
    pub debounce_max: Duration,
    /// Log lines as human-readable text or as JSON objects (one per line).
    #[arg(
        long,
        global = true,
        env = "BERTH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Backend (namespace/name, first port) for requests no rule matches, on every server; it
    /// takes precedence over every Ingress's spec.defaultBackend (those are reported).
    #[arg(long, global = true, env = "BERTH_DEFAULT_BACKEND_SERVICE", value_parser = namespaced)]
    pub default_backend_service: Option<(String, String)>,
    /// nginx access log to stderr.
    #[arg(long, global = true, env = "BERTH_ACCESS_LOG")]
    pub access_log: bool,
    /// Send Strict-Transport-Security on every HTTPS response (ingress-nginx's `hsts`).
    #[arg(long, global = true, env = "BERTH_HSTS")]
    pub hsts: bool,
    /// HSTS max-age in seconds.
    #[arg(
        long,
        global = true,
        env = "BERTH_HSTS_MAX_AGE",
        default_value_t = 31_536_000
    )]
    pub hsts_max_age: u32,
    /// HSTS includeSubDomains (true|false).
    #[arg(long, global = true, env = "BERTH_HSTS_INCLUDE_SUBDOMAINS", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub hsts_include_subdomains: bool,
    /// HSTS preload.
    #[arg(long, global = true, env = "BERTH_HSTS_PRELOAD")]
    pub hsts_preload: bool,
    /// TLS Secret (namespace/name) of the catch-all HTTPS server; default: a self-signed
    /// certificate generated at start.
    #[arg(long, global = true, env = "BERTH_DEFAULT_SSL_CERTIFICATE", value_parser = namespaced_secret)]
    pub default_ssl_certificate: Option<(String, String)>,
    /// Name of the Lease used to elect the replica that writes Ingress status.
    #[arg(
        long,
        global = true,
        env = "BERTH_ELECTION_ID",
        default_value = "berth-ingress-leader"
    )]
    pub election_id: String,
    /// Namespace of the election Lease (the controller's own namespace).
    #[arg(long, global = true, env = "POD_NAMESPACE", default_value = "default")]
    pub election_namespace: String,
    /// This replica's identity in the Lease (default: the host name).
    #[arg(long, global = true, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Addresses written to status.loadBalancer.ingress (comma-separated IPs or DNS names).
    #[arg(long, global = true, env = "BERTH_PUBLISH_ADDRESS", value_parser = publish_addresses, conflicts_with = "publish_service")]
    pub publish_address: Option<PublishAddresses>,
    /// Service (namespace/name) whose address is written to status.loadBalancer.ingress.
    #[arg(long, global = true, env = "BERTH_PUBLISH_SERVICE", value_parser = namespaced)]
    pub publish_service: Option<(String, String)>,
    /// Watch the Gateway API kinds (GatewayClass, Gateway, HTTPRoute, GRPCRoute,
    /// ReferenceGrant): `auto` watches those the API server serves (looking again every 30 s
    /// while some are missing), `on` requires all five, `off` never watches them.
    #[arg(
        long,
        global = true,
        env = "BERTH_GATEWAY_API",
        value_enum,
        default_value = "auto"
    )]
    pub gateway_api: crate::source::kube_gateway::GatewayApi,
    /// ingress-nginx annotations (comma-separated, e.g. `limit-rps,proxy-buffering`, with or
    /// without the `nginx.ingress.kubernetes.io/` prefix) berth does not implement that are
    /// ignored with a report instead of refusing the Ingress. Your decision: ignoring
    /// `auth-url` serves the app without authentication. Snippets cannot be ignored.
    #[arg(long, global = true, env = "BERTH_IGNORE_ANNOTATIONS", value_delimiter = ',', value_parser = ignorable_annotation)]
    pub ignore_annotations: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_subcommands() {
        let a = Args::try_parse_from(["berth-ingress"]).unwrap();
        assert!(a.command.is_none());
        assert_eq!(a.opts.ingress_class, "berth");
        assert_eq!(a.opts.debounce_min, Duration::from_millis(100));
        assert_eq!(a.opts.service_selector, "berth.dev/expose=true");
        assert_eq!(a.opts.nginx_timeout, Duration::from_secs(10));
        assert_eq!(
            a.opts.gateway_api,
            crate::source::kube_gateway::GatewayApi::Auto
        );
        let a = Args::try_parse_from(["berth-ingress", "--gateway-api", "off"]).unwrap();
        assert_eq!(
            a.opts.gateway_api,
            crate::source::kube_gateway::GatewayApi::Off
        );
        assert!(Args::try_parse_from(["berth-ingress", "--gateway-api", "maybe"]).is_err());
        let a = Args::try_parse_from([
            "berth-ingress",
            "render",
            "--from",
            "/m",
            "--upstream",
            "endpoints",
            "--debounce-max",
            "2s",
            "--default-backend-service",
            "ns/web",
        ])
        .unwrap();
        assert!(matches!(a.command, Some(Command::Render { .. })));
        assert_eq!(a.opts.upstream, UpstreamArg::Endpoints);
        assert_eq!(a.opts.debounce_max, Duration::from_secs(2));
        assert_eq!(
            a.opts.default_backend_service,
            Some(("ns".into(), "web".into()))
        );
        assert!(
            Args::try_parse_from(["berth-ingress", "--default-backend-service", "x;y/z"]).is_err()
        );
        assert!(Args::try_parse_from(["berth-ingress", "--debounce-min", "1h"]).is_err());
        let a = Args::try_parse_from([
            "berth-ingress",
            "--ignore-annotations",
            "limit-rps, nginx.ingress.kubernetes.io/proxy-buffering",
        ])
        .unwrap();
        assert_eq!(a.opts.ignore_annotations, ["limit-rps", "proxy-buffering"]);
        for bad in [
            "configuration-snippet",
            "nginx.ingress.kubernetes.io/server-snippet",
            "a;b",
        ] {
            assert!(
                Args::try_parse_from(["berth-ingress", "--ignore-annotations", bad]).is_err(),
                "{bad}"
            );
        }
        let a = Args::try_parse_from([
            "berth-ingress",
            "--trust-endpointslice-managers",
            "berth-tests,endpointslicemirroring-controller.k8s.io",
            "--allow-external-name",
        ])
        .unwrap();
        assert_eq!(
            a.opts.trust_endpointslice_managers,
            ["berth-tests", "endpointslicemirroring-controller.k8s.io"]
        );
        assert!(a.opts.allow_external_name);
        assert!(
            Args::try_parse_from(["berth-ingress", "--trust-endpointslice-managers", "a b"])
                .is_err()
        );
        let a = Args::try_parse_from([
            "berth-ingress",
            "--default-ssl-certificate",
            "ingress/wild.example.com",
            "--publish-address",
            "192.0.2.1, lb.example.com",
        ])
        .unwrap();
        assert_eq!(
            a.opts.default_ssl_certificate,
            Some(("ingress".into(), "wild.example.com".into()))
        );
        assert_eq!(
            a.opts.publish_address,
            Some(PublishAddresses(vec![
                "192.0.2.1".into(),
                "lb.example.com".into()
            ]))
        );
        for bad in [
            ["--publish-address", "lb;evil"],
            ["--default-ssl-certificate", "x/y z"],
        ] {
            assert!(Args::try_parse_from(["berth-ingress", bad[0], bad[1]]).is_err());
        }
    }
}
