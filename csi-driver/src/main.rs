//! berth-csi binary: parse flags, set up logging, run the CSI services until SIGTERM/SIGINT.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = berth_csi::args::Args::parse();
    berth_csi::logging::init(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(berth_csi::server::WORKER_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(berth_csi::server::run_from_args(args))
}
