//! `testenv`: the test environment for humans, the demo and external conformance tools.
//!
//! ```text
//! testenv up     start a local Ceph cluster that outlives this command; write its env file,
//!                the berth-csi cluster config and csi-sanity parameter/secret YAML files
//! testenv env    print the env file of the running environment
//! testenv down   stop it and remove every trace (mounts, loop devices, daemons, files)
//! testenv sweep  remove leftovers of crashed test runs
//! testenv k8s up|down   a Kubernetes control plane (etcd, kube-apiserver,
//!                kube-controller-manager) on 127.0.0.1; `up` prints KUBECONFIG
//! ```

use std::path::PathBuf;

use anyhow::Result;
use berth_tests::ceph::{Cluster, Lifetime};
use berth_tests::k8s::ControlPlane;
use clap::{Parser, Subcommand};

/// The clusterID the generated files use.
const CLUSTER_ID: &str = "berth-local";

#[derive(Parser)]
#[command(name = "testenv", about = "berth's local test environment")]
struct Cli {
    /// Where the environment lives.
    #[arg(
        long,
        env = "BERTH_TESTENV_DIR",
        default_value = "/tmp/berth-test/testenv"
    )]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a local Ceph cluster that outlives this command; print its env (eval-able) and
    /// write the berth-csi cluster config and csi-sanity files. A second `up` replaces the
    /// running environment (it says so).
    Up,
    /// Print the env file of the running environment.
    Env,
    /// Stop the environment and remove every trace (mounts, loop devices, daemons, files).
    Down,
    /// Remove what crashed test runs left behind (only state of processes that are gone).
    Sweep,
    /// A Kubernetes control plane in <dir>/k8s (built by tests/scripts/build-k8s-tools.sh).
    K8s {
        #[command(subcommand)]
        cmd: K8sCmd,
    },
}

#[derive(Subcommand)]
enum K8sCmd {
    /// Start etcd, kube-apiserver and kube-controller-manager on 127.0.0.1; print KUBECONFIG.
    Up,
    /// Stop them and remove their directory.
    Down,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("testenv: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let ceph_dir = cli.dir.join("ceph");
    match cli.cmd {
        Cmd::Up => {
            if cli.dir.join("env").exists() {
                eprintln!(
                    "testenv: an environment is already up in {}: replacing it",
                    cli.dir.display()
                );
            }
            std::fs::create_dir_all(&cli.dir)?;
            let cluster = Cluster::start_in(ceph_dir, Lifetime::Detached)?;
            write_files(&cli.dir, &cluster)?;
            eprintln!("ceph up in {:.2?}", cluster.started_in);
            print!("{}", std::fs::read_to_string(cli.dir.join("env"))?);
            eprint!("{}", next_steps(&cli.dir));
        }
        Cmd::Env => {
            let Ok(env) = std::fs::read_to_string(cli.dir.join("env")) else {
                anyhow::bail!(
                    "no environment is up in {} (run `testenv up`)",
                    cli.dir.display()
                );
            };
            print!("{env}");
        }
        Cmd::Down => {
            if !cli.dir.exists() {
                eprintln!("testenv: nothing is up in {}", cli.dir.display());
                return Ok(());
            }
            berth_tests::sweep::directory(&cli.dir);
            eprintln!("environment in {} removed", cli.dir.display());
        }
        Cmd::Sweep => berth_tests::sweep::leftovers(),
        Cmd::K8s { cmd: K8sCmd::Up } => {
            let dir = cli.dir.join("k8s");
            if dir.join("admin.kubeconfig").exists() {
                eprintln!(
                    "testenv: a control plane is already up in {}: replacing it",
                    dir.display()
                );
            }
            std::fs::create_dir_all(&cli.dir)?;
            let cp = ControlPlane::start_in(dir, Lifetime::Detached)?;
            eprintln!(
                "kubernetes control plane up in {:.2?} at {}",
                cp.started_in, cp.server
            );
            println!("export KUBECONFIG={}", cp.kubeconfig.display());
        }
        Cmd::K8s { cmd: K8sCmd::Down } => {
            let dir = cli.dir.join("k8s");
            if !dir.exists() {
                eprintln!("testenv: no control plane is up in {}", dir.display());
                return Ok(());
            }
            berth_tests::sweep::directory(&dir);
            eprintln!("control plane in {} removed", dir.display());
        }
    }
    Ok(())
}

/// How to start berth-csi on this environment and check it (stderr, so `eval` of stdout works).
fn next_steps(dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "\nstart berth-csi:\n  berth-csi --mode all --endpoint unix:///tmp/berth-csi.sock \\\n    \
         --cluster-config {d}/cluster-config.json --node-id $(hostname) \\\n    \
         --controller-secrets-dir {d}/controller-secrets --list-pools $BERTH_LIST_POOLS\n\
         check it with csi-sanity:\n  csi-sanity --csi.endpoint unix:///tmp/berth-csi.sock \\\n    \
         --csi.stagingdir /tmp/csi-staging --csi.mountdir /tmp/csi-mount \\\n    \
         --csi.testvolumeparameters {d}/csi-sanity-params.yaml --csi.secrets {d}/csi-sanity-secrets.yaml\n\
         or with berth's own suite:\n  csi-conformance --endpoint unix:///tmp/berth-csi.sock \\\n    \
         --params {d}/csi-sanity-params.yaml --secrets {d}/csi-sanity-secrets.yaml\n"
    )
}

/// The files tools need to use the cluster: env, cluster config, csi-sanity YAMLs, the
/// controller's own credentials.
fn write_files(dir: &std::path::Path, c: &Cluster) -> Result<()> {
    let cfg = dir.join("cluster-config.json");
    std::fs::write(&cfg, c.csi_cluster_config(CLUSTER_ID))?;
    let f = berth_tests::csi_sanity::write_files(dir, c, CLUSTER_ID)?;
    // csi-sanity once it is built (tests/scripts/build-k8s-tools.sh csi-sanity).
    let sanity = berth_tests::tools::path("csi-sanity")
        .map(|p| format!("export BERTH_CSI_SANITY={}\n", p.display()))
        .unwrap_or_default();
    let env = format!(
        "export CEPH_CONF={conf}\nexport BERTH_CEPH_DIR={d}\nexport BERTH_MON_ADDR={mon}\n\
         export BERTH_POOL={pool}\nexport BERTH_CLIENT_ID={id}\n\
         export BERTH_CLIENT_KEYRING={d}/ceph.client.{id}.keyring\n\
         export BERTH_CLUSTER_CONFIG={cfg}\nexport BERTH_CONTROLLER_SECRETS_DIR={csd}\n\
         export BERTH_LIST_POOLS={lp}\nexport BERTH_CSI_SANITY_PARAMS={params}\n\
         export BERTH_CSI_SANITY_PARAMS_XFS={params_xfs}\n\
         export BERTH_CSI_SANITY_MUTABLE_PARAMS={mutable}\n\
         export BERTH_CSI_SANITY_SECRETS={secrets}\n{sanity}",
        conf = c.conf.display(),
        d = c.dir.display(),
        mon = c.mon_addr,
        pool = c.pool,
        id = c.client_id,
        cfg = cfg.display(),
        csd = f.controller_secrets_dir.display(),
        lp = f.list_pools,
        params = f.params_ext4.display(),
        params_xfs = f.params_xfs.display(),
        mutable = f.mutable_params.display(),
        secrets = f.secrets.display(),
    );
    std::fs::write(dir.join("env"), env)?;
    Ok(())
}
