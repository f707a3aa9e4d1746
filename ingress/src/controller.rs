//! Wiring for the three commands: `run` (source + sync loop + nginx + metrics), `render`, `init`.
//!
//! Start-up order of `run` (the original design's "nginx never starts without a config"):
//! source ready (files read / every kube list received) -> first render -> `nginx -t` +
//! atomic install (retried with backoff until it works) -> stop a leftover nginx named by the
//! pid file, start nginx as a child (unless `--external-nginx`) -> ready once nginx serves the
//! installed config (its status socket answers its hash) -> sync loop.
//!
//! SIGTERM or SIGINT: /readyz turns 503 at once, the leader releases its Lease, the sync loop
//! stops (a running nginx call is dropped, never waited for) and nginx gets SIGQUIT (graceful
//! drain: old workers end after `worker_shutdown_timeout`; all of it bounded by [`QUIT_GRACE`]).

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt as _;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::args::{Options, SourceKind, UpstreamArg};
use crate::certfiles::{CertFileError, CertFiles};
use crate::htpasswd_files::{HtpasswdFileError, HtpasswdFiles};
use crate::metrics::{self, Metrics};
use crate::model::{Kind, ObjectRef, Report};
use crate::nginx::{Nginx, NginxError, NginxPaths};
use crate::render::{RenderConfig, UnsafePrefix, render};
use crate::serving::Serving;
use crate::source::Source;
use crate::source::files::FilesSource;
use crate::source::kube::{KubeConfig, KubeSource};
use crate::sync::{SyncConfig, Syncer};
use crate::translate::{
    self, BackendPolicy, LabelSelector, TranslateConfig, UpstreamMode, selector::SelectorError,
};

/// How long nginx may take to finish in-flight requests at shutdown.
pub const QUIT_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error(transparent)]
    Prefix(#[from] UnsafePrefix),
    #[error("--source files needs --manifests-dir")]
    NoManifestsDir,
    #[error("watching the manifests directory: {0}")]
    Watch(#[from] notify::Error),
    #[error("connecting to the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Nginx(#[from] NginxError),
    #[error("binding {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("nginx exited unexpectedly ({0})")]
    NginxExited(String),
    #[error(transparent)]
    CertFile(#[from] CertFileError),
    #[error(transparent)]
    HtpasswdFile(#[from] HtpasswdFileError),
    #[error("generating the self-signed default certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error(
        "{0} exists and was not written by berth-ingress: refusing to overwrite it. Pass \
         --nginx-conf to choose the live config file (naming this one overwrites it on purpose)"
    )]
    ForeignNginxConf(std::path::PathBuf),
}

/// Where nginx.conf goes when `--nginx-conf` is not given.
pub const DEFAULT_NGINX_CONF: &str = "/etc/nginx/nginx.conf";

/// The live config file: the one `--nginx-conf` names, else `default` if it is absent or
/// carries render's header (written by us before). A system's own nginx.conf is never
/// overwritten by surprise.
pub fn live_conf_path(
    given: Option<&std::path::Path>,
    default: &std::path::Path,
) -> Result<std::path::PathBuf, Error> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    match std::fs::read_to_string(default) {
        Ok(text) if !text.starts_with(crate::render::HEADER) => {
            Err(Error::ForeignNginxConf(default.to_path_buf()))
        }
        _ => Ok(default.to_path_buf()),
    }
}

pub fn translate_config(opts: &Options) -> Result<TranslateConfig, Error> {
    Ok(TranslateConfig {
        service_selector: LabelSelector::parse(&opts.service_selector)?,
        ingress_class: opts.ingress_class.clone(),
        controller_name: opts.controller_name.clone(),
        gateway_controller_name: opts.gateway_controller_name.clone(),
        backends: BackendPolicy {
            mode: match opts.upstream {
                UpstreamArg::Clusterip => UpstreamMode::ClusterIp,
                UpstreamArg::Endpoints => UpstreamMode::Endpoints,
            },
            trusted_slice_managers: opts.trust_endpointslice_managers.clone(),
            allow_external_name: opts.allow_external_name,
        },
        default_backend_service: opts.default_backend_service.clone(),
        default_ssl_certificate: opts.default_ssl_certificate.clone(),
        ignore_annotations: opts.ignore_annotations.clone(),
    })
}

pub fn render_config(opts: &Options) -> Result<RenderConfig, Error> {
    let mut rc = RenderConfig::new(&opts.nginx_prefix, opts.http_port, opts.https_port)?;
    rc.listen_address = opts.listen_address;
    rc.worker_processes = opts.worker_processes;
    rc.access_log = opts.access_log;
    rc.hsts = opts.hsts.then(|| {
        let mut v = format!("max-age={}", opts.hsts_max_age);
        if opts.hsts_include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if opts.hsts_preload {
            v.push_str("; preload");
        }
        v
    });
    rc.shared_min_hosts = opts.shared_min_hosts;
    Ok(rc)
}

/// `render --from DIR`: the config text and the reports.
pub fn render_dir(opts: &Options, dir: &std::path::Path) -> Result<(String, Vec<Report>), Error> {
    let snapshot = FilesSource::new(dir).snapshot();
    let model = translate::build(&snapshot, &translate_config(opts)?);
    Ok((render(&model, &render_config(opts)?), model.reports))
}

/// `check --from DIR`: per Ingress, what berth makes of its annotations.
pub fn check_dir(
    opts: &Options,
    dir: &std::path::Path,
) -> Result<Vec<crate::check::IngressCheck>, Error> {
    let snapshot = FilesSource::new(dir).snapshot();
    Ok(crate::check::check(&snapshot, &translate_config(opts)?))
}

/// `init --from DIR --out FILE`: test with nginx (when the binary exists) and install.
pub async fn init(
    opts: &Options,
    dir: &std::path::Path,
    out: &std::path::Path,
) -> Result<Vec<Report>, Error> {
    let snapshot = FilesSource::new(dir).snapshot();
    let model = translate::build(&snapshot, &translate_config(opts)?);
    let mut rc = render_config(opts)?;
    rc.self_signed_default = true;
    let files = CertFiles::new(rc.tls_dir())?;
    files.write(&crate::tls::self_signed()?)?;
    files.install(&model.certificates)?;
    HtpasswdFiles::new(rc.auth_dir())?.install(&model.htpasswd_files())?;
    let (text, reports) = (render(&model, &rc), model.reports);
    let mut nginx = Nginx::new(
        NginxPaths {
            binary: opts.nginx_binary.clone(),
            conf: out.to_owned(),
            prefix: opts.nginx_prefix.clone(),
        },
        false,
    )
    .with_timeout(opts.nginx_timeout);
    nginx.prepare_dirs()?;
    nginx.install(&text).await?;
    Ok(reports)
}

/// Leader election + Ingress status (kube source only, when an address to publish is set):
/// status is written for the Ingresses the live config serves (`served`), whenever that set
/// changes. Returns the task (it releases the Lease when `stop` turns true).
fn spawn_status(
    opts: &Options,
    client: kube::Client,
    source: &KubeSource,
    served: watch::Receiver<Arc<Serving>>,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
    use crate::source::kube_gateway::GatewayApi;
    use crate::status::{self, Elector, Publish, StatusWriter};
    use crate::status_gateway::GatewayStatusWriter;
    let publish = match (&opts.publish_address, &opts.publish_service) {
        (Some(a), _) => Publish::Addresses(a.0.clone()),
        (None, Some((ns, name))) => Publish::Service(ns.clone(), name.clone()),
        (None, None) => {
            tracing::info!(
                "no --publish-address or --publish-service: Ingress status is not written"
            );
            return Ok(None);
        }
    };
    let identity = opts.pod_name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| format!("berth-ingress-{}", std::process::id()))
    });
    let elector = Elector::new(
        client.clone(),
        &opts.election_namespace,
        &opts.election_id,
        &identity,
    );
    let tc = translate_config(opts)?;
    let mut writer = StatusWriter::new(client.clone(), publish);
    if opts.gateway_api != GatewayApi::Off {
        let src = source.clone();
        let live = served.clone();
        writer = writer.with_gateway(
            GatewayStatusWriter::new(client, tc.clone()),
            Box::new(move || (src.snapshot(), live.borrow().clone())),
        );
    }
    let src = source.clone();
    let live = served.clone();
    let owned = move || {
        let live = live.borrow();
        let mut ingresses = translate::ingress::owned(&src.snapshot(), &tc);
        ingresses.retain(|i| {
            let (ns, name) = (i.namespace().unwrap_or_default(), i.name_any());
            live.serves(&ObjectRef::new(Kind::Ingress, ns, name))
        });
        ingresses
    };
    let releases = elector.releases();
    Ok(Some(tokio::spawn(status::run(
        elector,
        writer,
        owned,
        served,
        releases,
        async move {
            _ = stop.wait_for(|s| *s).await;
        },
    ))))
}

/// Wait for SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested");
}

/// Longest wait for the status task to release the Lease at shutdown.
const STATUS_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The object source `run` watches, and what must live as long as it.
struct Started {
    source: Arc<dyn Source>,
    /// Kube source: leader election + Ingress status.
    status_task: Option<tokio::task::JoinHandle<()>>,
    /// Files source: the directory watcher (dropping it stops the watch).
    _watcher: Option<notify::RecommendedWatcher>,
}

/// Phase 1 of `run`: the source of objects (kube reflectors or a watched directory), whose
/// changes bump `changes`; with the kube source also the status task.
async fn start_source(
    opts: &Options,
    changes: watch::Sender<u64>,
    served: watch::Receiver<Arc<Serving>>,
    quit: watch::Receiver<bool>,
) -> Result<Started, Error> {
    Ok(match opts.source {
        SourceKind::Files => {
            let dir = opts.manifests_dir.clone().ok_or(Error::NoManifestsDir)?;
            let files = FilesSource::new(dir);
            let watcher = files.watch(changes.clone())?;
            changes.send_modify(|n| *n += 1);
            Started {
                source: Arc::new(files),
                status_task: None,
                _watcher: Some(watcher),
            }
        }
        SourceKind::Kube => {
            let client = kube::Client::try_default().await?;
            let config = KubeConfig {
                namespace: opts.namespace.clone(),
                endpoint_slices: opts.upstream == UpstreamArg::Endpoints,
                gateway_api: opts.gateway_api,
            };
            let (kube_source, driver) = KubeSource::start(client.clone(), &config, changes);
            tokio::spawn(driver);
            let status_task = spawn_status(opts, client, &kube_source, served, quit)?;
            Started {
                source: Arc::new(kube_source),
                status_task,
                _watcher: None,
            }
        }
    })
}

/// Phase 2 of `run`: the sync loop with its nginx, certificate and htpasswd files (the
/// self-signed default certificate written first).
fn build_syncer(
    opts: &Options,
    metrics: Arc<Metrics>,
    served: crate::sync::Served,
) -> Result<Syncer<Nginx>, Error> {
    let mut render_cfg = render_config(opts)?;
    render_cfg.self_signed_default = true;
    let sync_config = SyncConfig {
        translate: translate_config(opts)?,
        render: render_cfg,
        debounce_min: opts.debounce_min,
        debounce_max: opts.debounce_max,
    };
    let paths = NginxPaths {
        binary: opts.nginx_binary.clone(),
        conf: live_conf_path(
            opts.nginx_conf.as_deref(),
            std::path::Path::new(DEFAULT_NGINX_CONF),
        )?,
        prefix: opts.nginx_prefix.clone(),
    };
    let nginx = Nginx::new(paths, !opts.external_nginx).with_timeout(opts.nginx_timeout);
    nginx.prepare_dirs()?;
    let cert_files = CertFiles::new(sync_config.render.tls_dir())?;
    cert_files.write(&crate::tls::self_signed()?)?;
    let htpasswd_files = HtpasswdFiles::new(sync_config.render.auth_dir())?;
    metrics.set_pid_file(sync_config.render.pid_file());
    Ok(Syncer::new(nginx, sync_config, metrics)
        .with_cert_files(cert_files)
        .with_htpasswd_files(htpasswd_files)
        .with_served(served))
}

/// The controller. Returns when `shutdown` resolves (Ok) or nginx dies (Err).
pub async fn run(
    opts: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::default());
    let listener = TcpListener::bind(opts.metrics_address)
        .await
        .map_err(|source| Error::Bind {
            address: opts.metrics_address,
            source,
        })?;
    // The metrics server outlives the drain (it reports 503 meanwhile); stopped last.
    let (metrics_stop, mut stop_metrics) = watch::channel(false);
    tokio::spawn(metrics::serve(listener, metrics.clone(), async move {
        _ = stop_metrics.wait_for(|s| *s).await;
    }));
    // Shutdown: unready at once (load balancers stop sending), then everything else stops.
    let (quit_tx, quit_rx) = watch::channel(false);
    let quit_tx = Arc::new(quit_tx);
    let (m, q) = (metrics.clone(), quit_tx.clone());
    tokio::spawn(async move {
        shutdown.await;
        m.set_shutting_down();
        _ = q.send(true);
    });
    let quitting = || {
        let mut q = quit_rx.clone();
        async move {
            _ = q.wait_for(|q| *q).await;
        }
    };

    let (changes_tx, mut changes) = watch::channel(0u64);
    let (served_tx, served_rx) = watch::channel(Arc::new(Serving::default()));
    let started = start_source(&opts, changes_tx, served_rx, quit_rx.clone()).await?;
    let (source, status_task) = (started.source, started.status_task);
    let mut syncer = build_syncer(&opts, metrics.clone(), served_tx)?;

    // First config before nginx serves (retried until it applies), then nginx.
    let mut supervisor = None;
    let mut result = Ok(());
    if syncer
        .run_until_applied(&source, &mut changes, quitting())
        .await
        && !opts.external_nginx
    {
        let mut s = syncer.nginx().supervisor();
        if let Ok(exe) = std::env::current_exe() {
            s = s.tied_to(exe);
        }
        result = s.start().await.map_err(Error::from);
        if result.is_ok() {
            // Ready = nginx serves the first config on every new connection.
            tokio::select! {
                _ = quitting() => {}
                served = syncer.nginx().wait_serving(&[]) => match served {
                    Ok(()) => {
                        metrics.set_live();
                        metrics.set_ready();
                    }
                    Err(e) => tracing::warn!(error = %e, "nginx does not serve the first config yet; ready once a reload is verified"),
                },
            }
            supervisor = Some(s);
        }
    }

    if result.is_ok() && !*quit_rx.borrow() {
        // A dying master is restarted (supervisor.rs); `run` fails only if that keeps failing.
        let restarts = metrics.clone();
        let exited = async {
            match &mut supervisor {
                Some(s) => {
                    s.supervise(|_| {
                        restarts.nginx_restarts.inc();
                    })
                    .await
                }
                None => std::future::pending().await,
            }
        };
        result = tokio::select! {
            _ = syncer.run(source, changes, quitting()) => Ok(()),
            status = exited => Err(Error::NginxExited(status)),
        };
    }
    metrics.set_shutting_down();
    _ = quit_tx.send(true);
    if let Some(s) = &mut supervisor {
        s.quit(QUIT_GRACE).await;
    }
    if let Some(task) = status_task {
        // It releases the Lease on quit (concurrently with the drain above).
        _ = tokio::time::timeout(STATUS_STOP_TIMEOUT, task).await;
    }
    _ = metrics_stop.send(true);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_nginx_conf_is_overwritten_only_if_ours() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("nginx.conf");
        // Absent: ours to write.
        assert_eq!(live_conf_path(None, &default).unwrap(), default);
        // The system's own config: refused, with the path and the way out in the message.
        std::fs::write(&default, "user www-data;\nworker_processes auto;\n").unwrap();
        let err = live_conf_path(None, &default).unwrap_err().to_string();
        assert!(err.contains(&*default.to_string_lossy()), "{err}");
        assert!(err.contains("--nginx-conf"), "{err}");
        // Named on purpose: overwritten.
        assert_eq!(live_conf_path(Some(&default), &default).unwrap(), default);
        // Written by us before: ours.
        std::fs::write(
            &default,
            format!("{}worker_processes 1;\n", crate::render::HEADER),
        )
        .unwrap();
        assert_eq!(live_conf_path(None, &default).unwrap(), default);
    }
}
