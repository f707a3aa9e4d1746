//! The harness's Kubernetes control plane: two run side by side (own ports, dirs, PKI), each
//! serves the admin, enforces RBAC on a ServiceAccount token, and leaves nothing behind.
//!
//! Needs the Go tools (`bash tests/scripts/build-k8s-tools.sh`) and etcd-server.

use anyhow::{Result, ensure};
use berth_tests::k8s::ControlPlane;
use berth_tests::suite::plain;
use libtest_mimic::Arguments;

fn main() {
    let args = Arguments::from_args();
    let trials = vec![plain(
        "two_control_planes_side_by_side_with_rbac",
        side_by_side,
    )];
    let conclusion = libtest_mimic::run(&args, trials);
    let left = berth_tests::sweep::own_leftovers();
    if !left.is_empty() {
        eprintln!("left on the host after the suite:\n{}", left.join("\n"));
        std::process::exit(1);
    }
    conclusion.exit()
}

fn side_by_side() -> Result<()> {
    let a = ControlPlane::start()?;
    let b = ControlPlane::start()?;
    eprintln!(
        "control planes up in {:.2?} ({}) and {:.2?} ({})",
        a.started_in, a.server, b.started_in, b.server
    );
    ensure!(a.server != b.server && a.dir != b.dir);
    // Each is its own cluster: a namespace made in one is not in the other.
    a.kubectl(&["create", "namespace", "only-in-a"])?;
    ensure!(a.kubectl(&["get", "namespace", "only-in-a"]).is_ok());
    ensure!(b.kubectl(&["get", "namespace", "only-in-a"]).is_err());
    // RBAC: a ServiceAccount with no bindings is refused; the admin is not.
    a.kubectl(&["create", "serviceaccount", "-n", "only-in-a", "nobody"])?;
    let sa = a.service_account_kubeconfig("only-in-a", "nobody")?;
    let who = a.kubectl_as(
        &sa,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )?;
    ensure!(
        who == "system:serviceaccount:only-in-a:nobody",
        "whoami: {who}"
    );
    let denied = a.kubectl_as(&sa, &["get", "secrets", "-n", "kube-system"]);
    ensure!(
        denied
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains("forbidden")),
        "an unbound ServiceAccount listed secrets: {denied:?}"
    );
    let dirs = [a.dir.clone(), b.dir.clone()];
    drop(a);
    drop(b);
    for d in dirs {
        ensure!(!d.exists(), "{} left behind", d.display());
        ensure!(
            berth_tests::sweep::processes_using(&d).is_empty(),
            "daemons of {} still run",
            d.display()
        );
    }
    Ok(())
}
