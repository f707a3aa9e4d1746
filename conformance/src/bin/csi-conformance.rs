//! `csi-conformance`: run berth's spec-driven CSI conformance suite against any CSI driver.
//!
//! ```text
//! csi-conformance --endpoint unix:///tmp/berth-csi.sock \
//!     --params params.yaml --secrets secrets.yaml [--access-type block] [--filter node/]
//! ```
//!
//! Flags mirror csi-sanity's where they mean the same (parameters and secrets files are in
//! csi-sanity's formats). Prints one line per case and `N passed, N failed, N skipped`; exits 1
//! when a case failed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_conformance::config::parse_endpoint;
use berth_conformance::{AccessType, Config};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "csi-conformance",
    about = "CSI v1.12 conformance suite for any CSI driver"
)]
struct Cli {
    /// Socket serving all services (csi-sanity: --csi.endpoint).
    #[arg(long)]
    endpoint: Option<String>,
    /// Socket of the controller (Identity + Controller) when it is separate.
    #[arg(long)]
    controller_endpoint: Option<String>,
    /// Socket of the node plugin (Identity + Node) when it is separate.
    #[arg(long)]
    node_endpoint: Option<String>,
    /// Root for per-case staging directories (created and removed by the suite).
    #[arg(long, default_value = "/tmp/csi-staging")]
    staging_dir: PathBuf,
    /// Root for per-case target parent directories.
    #[arg(long, default_value = "/tmp/csi-mount")]
    mount_dir: PathBuf,
    /// CreateVolume parameters, a flat YAML map (csi-sanity: --csi.testvolumeparameters).
    #[arg(long)]
    params: Option<PathBuf>,
    /// Secrets per RPC, csi-sanity's format (csi-sanity: --csi.secrets).
    #[arg(long)]
    secrets: Option<PathBuf>,
    /// Test volume size in bytes (default 10 GiB, as csi-sanity).
    #[arg(long)]
    volume_size: Option<i64>,
    /// mount or block.
    #[arg(long, default_value = "mount")]
    access_type: AccessType,
    /// MountVolume.fs_type (empty: the driver's default).
    #[arg(long, default_value = "")]
    fs_type: String,
    /// Only run cases whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Per-case timeout in seconds.
    #[arg(long, default_value_t = 300)]
    case_timeout: u64,
    /// List the case names and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.list {
        for c in berth_conformance::all_cases() {
            println!("{}", c.name);
        }
        return Ok(());
    }
    let main_ep = cli.endpoint.as_deref().map(parse_endpoint).transpose()?;
    let ctl = match (&cli.controller_endpoint, &main_ep) {
        (Some(e), _) => parse_endpoint(e)?,
        (None, Some(m)) => m.clone(),
        (None, None) => anyhow::bail!("--endpoint or --controller-endpoint is required"),
    };
    let mut cfg = Config::new(&ctl);
    cfg.node_endpoint = match (&cli.node_endpoint, &main_ep) {
        (Some(e), _) => parse_endpoint(e)?,
        (None, Some(m)) => m.clone(),
        (None, None) => anyhow::bail!("--endpoint or --node-endpoint is required"),
    };
    cfg.staging_dir = cli.staging_dir;
    cfg.mount_dir = cli.mount_dir;
    if let Some(p) = &cli.params {
        cfg.load_parameters(p)?;
    }
    if let Some(s) = &cli.secrets {
        cfg.load_secrets(s)?;
    }
    if let Some(size) = cli.volume_size {
        cfg.volume_size = size;
    }
    cfg.access_type = cli.access_type;
    cfg.fs_type = cli.fs_type;
    cfg.filter = cli.filter;
    cfg.case_timeout = Duration::from_secs(cli.case_timeout);
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt
        .block_on(berth_conformance::run(cfg))
        .context("conformance run")?;
    if report.failed() > 0 {
        std::process::exit(1);
    }
    Ok(())
}
