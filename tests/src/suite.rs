//! The `main` of an integration test binary that needs Ceph (libtest-mimic, `harness = false`):
//! one real cluster shared by the cases, stopped before the binary exits, then a check that
//! nothing this process made is left on the host (state dirs, mounts, loop devices, processes).

use std::sync::Arc;

use anyhow::Result;
use libtest_mimic::{Arguments, Failed, Trial};

use crate::ceph::Cluster;

/// A test case that gets the shared cluster.
pub type Case = fn(&Cluster) -> Result<()>;

/// Run `trials(&cluster)` and exit with the verdict. `serial`: one case at a time (for cases
/// that share something beyond the cluster, or that break loop devices on purpose).
pub fn run_with_cluster(serial: bool, trials: impl FnOnce(&Arc<Cluster>) -> Vec<Trial>) -> ! {
    let mut args = Arguments::from_args();
    if serial {
        args.test_threads = Some(1);
    }
    let cluster = match Cluster::start() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("{e:#}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "ceph cluster up in {:.2?} ({})",
        cluster.started_in, cluster.mon_addr
    );
    let trials = trials(&cluster);
    let conclusion = libtest_mimic::run(&args, trials);
    drop(cluster);
    let left = crate::sweep::own_leftovers();
    if !left.is_empty() {
        eprintln!("left on the host after the suite:\n{}", left.join("\n"));
        std::process::exit(1);
    }
    conclusion.exit()
}

/// A trial running `f` on the shared cluster; an error (with its causes) fails it.
pub fn trial(name: &str, cluster: &Arc<Cluster>, f: Case) -> Trial {
    let c = cluster.clone();
    Trial::test(name, move || {
        f(&c).map_err(|e| Failed::from(format!("{e:#}")))
    })
}

/// A trial that needs no cluster.
pub fn plain(name: &str, f: fn() -> Result<()>) -> Trial {
    Trial::test(name, move || {
        f().map_err(|e| Failed::from(format!("{e:#}")))
    })
}
