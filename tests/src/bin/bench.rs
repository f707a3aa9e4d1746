//! berth benchmarks: `bench csi|node|ingress|ingress-rss|ingress-scale|gateway|all` (subjects live in `berth_tests::bench`).
//! Prints a table, or one JSON object with `--json`. Build the binaries under test first
//! (`cargo build --release --workspace --bins`): the harness finds them next to this executable.

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
    /// berth-csi: CreateVolume latency vs `rbd create`, a 100-volume burst, memory per mode
    /// (node / controller idle, peaks), the 1 000-volume run.
    Csi,
    /// berth-csi node: NodeStage of a 1 GiB ext4 volume (fuse) vs attach + mkfs + mount by hand.
    Node,
    /// berth-ingress: render 10k routes, RSS with 10k Ingresses, change -> served, reload
    /// coalescing, failed requests under wrk load during 100 reloads.
    Ingress,
    /// berth-ingress at 10 000 hosts only (also part of `ingress`): first config, change ->
    /// served, memory of berth-ingress and nginx, reload time, nginx warnings.
    IngressScale,
    /// berth-ingress RSS holding 10 000 Ingresses only (also part of `ingress`).
    IngressRss,
    /// berth-ingress Gateway API: render 10 000 HTTPRoutes, RSS holding them, status rounds.
    Gateway,
    /// All of the above, one after the other.
    All,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let subjects: &[&str] = match args.subject {
        Subject::Csi => &["csi"],
        Subject::Node => &["node"],
        Subject::Ingress => &["ingress"],
        Subject::IngressScale => &["ingress-scale"],
        Subject::IngressRss => &["ingress-rss"],
        Subject::Gateway => &["gateway"],
        Subject::All => &["csi", "node", "ingress", "gateway"],
    };
    let mut json = serde_json::Map::new();
    for &name in subjects {
        let figures = match name {
            "csi" => rt.block_on(berth_tests::bench::csi::run())?,
            "node" => rt.block_on(berth_tests::bench::node::run())?,
            "ingress-scale" => berth_tests::bench::ingress_scale::run()?,
            "ingress-rss" => berth_tests::bench::ingress::run_rss()?,
            "gateway" => berth_tests::bench::gateway::run()?,
            _ => berth_tests::bench::ingress::run()?,
        };
        if args.json {
            json.insert(name.into(), berth_tests::bench::json(name, &figures));
        } else {
            print!("{}", berth_tests::bench::table(name, &figures));
        }
    }
    if args.json {
        // One subject: its object as before; several: {"csi": {...}, "node": {...}, ...}.
        let out = match subjects {
            [one] => json.remove(*one).unwrap_or_default(),
            _ => serde_json::Value::Object(json),
        };
        println!("{out}");
    }
    Ok(())
}
