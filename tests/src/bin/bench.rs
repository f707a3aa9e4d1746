//! berth benchmarks: `bench csi` (more subjects can be added in `berth_tests::bench`).
//! Prints a table, or one JSON object with `--json`. Build the binaries under test first
//! (`cargo build --release -p berth-csi`): the harness finds them next to this executable.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "berth benchmarks on the real local environment")]
struct Args {
    /// One JSON object of figures instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    subject: Subject,
}

#[derive(Subcommand)]
enum Subject {
    /// berth-csi controller: CreateVolume latency vs `rbd create`, a 100-volume burst, RSS.
    Csi,
    /// berth-csi node: NodeStage of a 1 GiB ext4 volume (fuse) vs attach + mkfs + mount by hand.
    Node,
    /// berth-ingress: render 10k routes, RSS with 10k Ingresses, change -> served, reload
    /// coalescing, failed requests under wrk load during 100 reloads.
    Ingress,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (name, figures) = match args.subject {
        Subject::Csi => ("csi", rt.block_on(berth_tests::bench::csi::run())?),
        Subject::Node => ("node", rt.block_on(berth_tests::bench::node::run())?),
        Subject::Ingress => ("ingress", berth_tests::bench::ingress::run()?),
    };
    if args.json {
        println!("{}", berth_tests::bench::json(name, &figures));
    } else {
        print!("{}", berth_tests::bench::table(name, &figures));
    }
    Ok(())
}
