//! The controller path as Kubernetes drives it: a real control plane (harness), deploy/csi
//! applied to it, berth-csi on a real local Ceph cluster, and the real CSI sidecars
//! (csi-provisioner, csi-resizer, csi-snapshotter, and csi-attacher when deploy/csi has it)
//! running as host processes with deploy/csi's own args and a token of its own
//! ServiceAccount, so deploy/csi's RBAC is what is tested. snapshot-controller (a cluster
//! add-on, not part of deploy/csi) runs as the admin.
//!
//! PVC -> Bound, VolumeSnapshot -> readyToUse, PVC from the snapshot, PVC cloned from a PVC,
//! expansion, a ReadWriteOnce volume attached on one node and refused on a second
//! (csi-attacher, [`attach`]), deletions -> the Ceph pool, its trash and berth's journal
//! empty; no sidecar log says "forbidden". Before the sidecars, the node plugin's
//! `--domain-labels` against this API server ([`domain_labels`]). Seconds per step are printed.
//!
//! Needs `bash tests/scripts/build-k8s-tools.sh`, etcd-server and the berth-csi binary.

#[path = "k8s_csi_sidecars/attach.rs"]
mod attach;
#[path = "k8s_csi_sidecars/domain_labels.rs"]
mod domain_labels;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_tests::ceph::{Cluster, write_private};
use berth_tests::k8s::{ControlPlane, wait_for};
use berth_tests::suite::{run_with_cluster, trial};
use serde_json::{Value, json};

const CLUSTER_ID: &str = "berth-local";
const NS: &str = "berth-system";
const SC: &str = "berth-rbd-test";
const VSC: &str = "berth-rbd-snapshots-test";

fn main() {
    run_with_cluster(true, |c| {
        vec![trial(
            "pvc_snapshot_restore_clone_expand_delete_through_the_real_sidecars",
            c,
            flow,
        )]
    })
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A step's duration, printed as it ends.
fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t0 = Instant::now();
    let r = f().with_context(|| format!("step {name:?}"))?;
    eprintln!("step {name}: {:.2} s", t0.elapsed().as_secs_f64());
    Ok(r)
}

/// A host process tied to the test, killed on Drop; its log is read for "forbidden".
struct Proc {
    name: String,
    log: PathBuf,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, name: &str, program: &Path, args: &[String]) -> Result<Proc> {
    let log = dir.join(format!("{name}.log"));
    let mut cmd = Command::new(program);
    cmd.args(args);
    let child = berth_tests::proc::spawn_tied(&cmd, &log)?;
    Ok(Proc {
        name: name.to_owned(),
        log,
        child,
    })
}

/// deploy/csi's controller Deployment, as JSON.
fn controller_deployment() -> Result<Value> {
    let text = std::fs::read_to_string(repo().join("deploy/csi/controller.yaml"))?;
    Ok(serde_yaml_ng::from_str(&text)?)
}

fn flow(c: &Cluster) -> Result<()> {
    let cp = step("control plane up", ControlPlane::start)?;
    let dir = cp.dir.clone();
    let kubectl = |args: &[&str]| cp.kubectl(args);

    step("snapshot CRDs", || {
        for crd in berth_tests::tools::snapshot_crds()? {
            kubectl(&["apply", "--server-side", "-f", &crd.to_string_lossy()])?;
        }
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/volumesnapshots.snapshot.storage.k8s.io",
            "crd/volumesnapshotclasses.snapshot.storage.k8s.io",
            "crd/volumesnapshotcontents.snapshot.storage.k8s.io",
            "crd/volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io",
        ])
    })?;

    step("deploy/csi and its example: server-side dry run", || {
        kubectl(&["create", "namespace", NS])?;
        let deploy = repo().join("deploy/csi");
        kubectl(&[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-k",
            &deploy.to_string_lossy(),
        ])?;
        let example = repo().join("deploy/csi/example");
        kubectl(&[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-k",
            &example.to_string_lossy(),
        ])
    })?;

    step(
        "deploy/csi applied, with this cluster's Secret and classes",
        || {
            kubectl(&[
                "apply",
                "--server-side",
                "-k",
                &repo().join("deploy/csi").to_string_lossy(),
            ])?;
            // The Secret through a 0600 file: the key never reaches an argv.
            let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "berth-csi-rbd", "namespace": NS}, "type": "Opaque",
            "stringData": {"userID": c.client_id, "userKey": c.client_key}});
            let f = dir.join("secret.json");
            write_private(&f, &secret.to_string())?;
            kubectl(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &f.to_string_lossy(),
            ])?;
            std::fs::remove_file(&f)?;
            // deploy/csi's classes with this cluster's clusterID/pool and the fuse mounter
            // (class parameters are immutable: new names).
            let text = std::fs::read_to_string(repo().join("deploy/csi/storageclass.yaml"))?;
            let mut sc: Value = serde_yaml_ng::from_str(&text)?;
            sc["metadata"]["name"] = json!(SC);
            sc["parameters"]["clusterID"] = json!(CLUSTER_ID);
            sc["parameters"]["pool"] = json!(c.pool);
            sc["parameters"]["mounter"] = json!("fuse");
            cp.apply(&sc.to_string())?;
            let text = std::fs::read_to_string(repo().join("deploy/csi/snapshotclass.yaml"))?;
            let mut vsc: Value = serde_yaml_ng::from_str(&text)?;
            vsc["metadata"]["name"] = json!(VSC);
            vsc["parameters"]["clusterID"] = json!(CLUSTER_ID);
            cp.apply(&vsc.to_string())
        },
    )?;

    // The node plugin's --domain-labels with deploy/csi's node ServiceAccount (its own
    // berth-csi processes; the pool is empty again before the sidecars start).
    domain_labels::flow(&cp, c, CLUSTER_ID, NS)?;

    // berth-csi's controller, as the Deployment runs it (socket and cluster config local).
    let cfg = dir.join("cluster-config.json");
    std::fs::write(&cfg, c.csi_cluster_config(CLUSTER_ID))?;
    let socket = dir.join("csi.sock");
    let _driver = spawn(
        &dir,
        "berth-csi",
        &berth_tests::driver::binary()?,
        &[
            "--mode=controller".into(),
            format!("--endpoint=unix://{}", socket.display()),
            format!("--cluster-config={}", cfg.display()),
            format!("--state-dir={}", dir.join("csi-state").display()),
        ],
    )?;
    berth_tests::proc::wait_until("berth-csi socket", Duration::from_secs(20), || {
        socket.exists()
    })?;

    let mut health = Vec::new();
    let sidecars = step("sidecars up with the ServiceAccount's token", || {
        let sa = cp.service_account_kubeconfig(NS, "berth-csi-controller")?;
        let mut procs = Vec::new();
        let deployment = controller_deployment()?;
        let containers = deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .context("containers")?;
        for ct in containers {
            let image = ct["image"].as_str().unwrap_or_default();
            let name = image
                .rsplit('/')
                .next()
                .and_then(|s| s.split(':').next())
                .unwrap_or_default();
            if !name.starts_with("csi-") {
                continue; // berth-csi itself, livenessprobe
            }
            let mut args: Vec<String> = ct["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .filter(|a| !a.starts_with("--csi-address"))
                .map(str::to_owned)
                .collect();
            // The health port deploy/csi gives it (its livenessProbe), here on a free
            // loopback port: checked below.
            let endpoint = args
                .iter_mut()
                .find(|a| a.starts_with("--http-endpoint="))
                .with_context(|| format!("{name} in deploy/csi has no --http-endpoint"))?;
            let port = berth_tests::proc::free_port()?;
            *endpoint = format!("--http-endpoint=127.0.0.1:{port}");
            health.push((name.to_string(), port));
            args.push(format!("--csi-address={}", socket.display()));
            args.push(format!("--kubeconfig={}", sa.display()));
            // In a pod the namespace comes from the service account mount.
            args.push(format!("--leader-election-namespace={NS}"));
            args.push("--v=2".into());
            procs.push(spawn(&dir, name, &berth_tests::tools::path(name)?, &args)?);
        }
        let names: Vec<&str> = procs.iter().map(|p: &Proc| p.name.as_str()).collect();
        for want in [
            "csi-provisioner",
            "csi-attacher",
            "csi-resizer",
            "csi-snapshotter",
        ] {
            ensure!(names.contains(&want), "{want} not in deploy/csi: {names:?}");
        }
        let admin = cp.kubeconfig.display().to_string();
        procs.push(spawn(
            &dir,
            "snapshot-controller",
            &berth_tests::tools::path("snapshot-controller")?,
            &[
                format!("--kubeconfig={admin}"),
                "--leader-election=false".into(),
                "--v=2".into(),
            ],
        )?);
        Ok(procs)
    })?;

    let r = pvc_flow(&cp, c).and_then(|()| {
        // Every sidecar's liveness endpoint (deploy/csi's livenessProbe) answers 200.
        for (name, port) in &health {
            let r = berth_tests::nginx::http_get(
                &format!("127.0.0.1:{port}"),
                "localhost",
                "/healthz/leader-election",
            )?;
            ensure!(
                r.status == 200,
                "{name} /healthz/leader-election: {}",
                r.status
            );
        }
        eprintln!("health endpoints of {} sidecars answer 200", health.len());
        Ok(())
    });
    let forbidden: Vec<String> = sidecars
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.to_lowercase().contains("forbidden"))
                .take(3)
                .collect();
            (!lines.is_empty()).then(|| format!("{}: {}", p.name, lines.join("\n  ")))
        })
        .collect();
    if let Err(e) = r {
        let tails: Vec<String> = sidecars
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- {}:\n{}",
                    p.name,
                    lines[lines.len().saturating_sub(8)..].join("\n")
                )
            })
            .collect();
        bail!("{e:#}\nforbidden: {forbidden:?}\n{}", tails.join("\n"));
    }
    ensure!(
        forbidden.is_empty(),
        "sidecars were refused by RBAC:\n{}",
        forbidden.join("\n")
    );
    Ok(())
}

fn pvc(name: &str, size: &str, source: Option<Value>) -> Value {
    let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": SC,
                 "resources": {"requests": {"storage": size}}}});
    if let Some(s) = source {
        v["spec"]["dataSource"] = s;
    }
    v
}

fn bound(cp: &ControlPlane, name: &str) -> Result<()> {
    wait_for(
        cp,
        &["pvc", name, "-n", "default"],
        "{.status.phase}",
        "Bound",
    )
}

fn pvc_flow(cp: &ControlPlane, c: &Cluster) -> Result<()> {
    step("PVC -> Bound", || {
        cp.apply(&pvc("data", "1Gi", None).to_string())?;
        bound(cp, "data")
    })?;
    step("VolumeSnapshot -> readyToUse", || {
        cp.apply(
            &json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "metadata": {"name": "snap", "namespace": "default"},
                "spec": {"volumeSnapshotClassName": VSC,
                         "source": {"persistentVolumeClaimName": "data"}}})
            .to_string(),
        )?;
        wait_for(
            cp,
            &["volumesnapshot", "snap", "-n", "default"],
            "{.status.readyToUse}",
            "true",
        )
    })?;
    step("PVC from the snapshot -> Bound", || {
        let src = json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"});
        cp.apply(&pvc("restored", "1Gi", Some(src)).to_string())?;
        bound(cp, "restored")
    })?;
    step("PVC cloned from a PVC -> Bound", || {
        let src = json!({"kind": "PersistentVolumeClaim", "name": "data"});
        cp.apply(&pvc("cloned", "1Gi", Some(src)).to_string())?;
        bound(cp, "cloned")
    })?;
    step("expansion 1Gi -> 2Gi (the PV's capacity)", || {
        cp.apply(&pvc("data", "2Gi", None).to_string())?;
        let pv = cp.kubectl(&[
            "get",
            "pvc",
            "data",
            "-n",
            "default",
            "-o=jsonpath={.spec.volumeName}",
        ])?;
        wait_for(cp, &["pv", pv.trim()], "{.spec.capacity.storage}", "2Gi")
    })?;
    let pv = cp.kubectl(&[
        "get",
        "pvc",
        "data",
        "-n",
        "default",
        "-o=jsonpath={.spec.volumeName}",
    ])?;
    attach::flow(cp, pv.trim())?;
    step("deletions -> no PV, empty pool, trash and journal", || {
        cp.kubectl(&[
            "delete",
            "volumesnapshot",
            "snap",
            "-n",
            "default",
            "--wait=true",
            "--timeout=120s",
        ])?;
        cp.kubectl(&[
            "delete",
            "pvc",
            "data",
            "restored",
            "cloned",
            "-n",
            "default",
            "--wait=true",
            "--timeout=120s",
        ])?;
        berth_tests::proc::wait_until("PVs deleted", Duration::from_secs(120), || {
            cp.kubectl(&["get", "pv", "-o", "name"])
                .is_ok_and(|s| s.trim().is_empty())
        })?;
        berth_tests::proc::wait_until(
            "volumesnapshotcontents deleted",
            Duration::from_secs(120),
            || {
                cp.kubectl(&["get", "volumesnapshotcontents", "-o", "name"])
                    .is_ok_and(|s| s.trim().is_empty())
            },
        )?;
        let mut left = Vec::new();
        berth_tests::proc::wait_until("empty pool", Duration::from_secs(60), || {
            left = c.pool_leftovers();
            left.is_empty()
        })
        .with_context(|| format!("left in Ceph: {left:?}"))
    })?;
    Ok(())
}
