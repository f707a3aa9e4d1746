//! csi-sanity (kubernetes-csi/csi-test), the conformance tool adopters run, as the README's
//! recipe runs it: the files `testenv up` writes for it ([`write_files`], one writer for testenv
//! and the tests), a run with a JUnit report, and the report read back as one [`Case`] per spec.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::ceph::{Cluster, write_private};

/// Every secrets section csi-sanity v5 reads (pkg/sanity/sanity.go `CSISecrets`), so no RPC
/// reaches the driver without credentials. berth-csi reads `userID` / `userKey` from each.
pub const SECRET_SECTIONS: [&str; 14] = [
    "CreateVolumeSecret",
    "DeleteVolumeSecret",
    "ControllerPublishVolumeSecret",
    "ControllerUnpublishVolumeSecret",
    "ControllerValidateVolumeCapabilitiesSecret",
    "NodeStageVolumeSecret",
    "NodePublishVolumeSecret",
    "CreateSnapshotSecret",
    "DeleteSnapshotSecret",
    "ControllerExpandVolumeSecret",
    "ControllerModifyVolumeSecret",
    "ListSnapshotsSecret",
    "GetSnapshotSecret",
    "NodeExpandVolumeSecret",
];

/// What `testenv up` writes for csi-sanity and for berth-csi's controller flags.
#[derive(Debug, Clone)]
pub struct Files {
    /// StorageClass-like parameters with `csi.storage.k8s.io/fstype: ext4` / `: xfs`.
    pub params_ext4: PathBuf,
    pub params_xfs: PathBuf,
    /// Mutable parameters (a VolumeAttributesClass's): RBD QoS limits.
    pub mutable_params: PathBuf,
    /// csi-sanity's secrets YAML (0600).
    pub secrets: PathBuf,
    /// `--controller-secrets-dir`: the controller's own credentials (files userID, userKey),
    /// as deploy/csi mounts them from a Secret.
    pub controller_secrets_dir: PathBuf,
    /// `--list-pools`: `clusterID/pool`.
    pub list_pools: String,
}

/// Write the files into `dir` for cluster `c` under `cluster_id`.
pub fn write_files(dir: &Path, c: &Cluster, cluster_id: &str) -> Result<Files> {
    let params = |fstype: &str| {
        format!(
            "clusterID: {cluster_id}\npool: {}\nmounter: fuse\nimageFeatures: layering\n\
             csi.storage.k8s.io/fstype: {fstype}\n",
            c.pool
        )
    };
    let files = Files {
        params_ext4: dir.join("csi-sanity-params.yaml"),
        params_xfs: dir.join("csi-sanity-params-xfs.yaml"),
        mutable_params: dir.join("csi-sanity-mutable-params.yaml"),
        secrets: dir.join("csi-sanity-secrets.yaml"),
        controller_secrets_dir: dir.join("controller-secrets"),
        list_pools: format!("{cluster_id}/{}", c.pool),
    };
    std::fs::write(&files.params_ext4, params("ext4"))?;
    std::fs::write(&files.params_xfs, params("xfs"))?;
    std::fs::write(
        &files.mutable_params,
        "rbd_qos_iops_limit: \"1000\"\nrbd_qos_bps_limit: \"104857600\"\n",
    )?;
    let mut s = String::new();
    for key in SECRET_SECTIONS {
        s.push_str(&format!(
            "{key}:\n  userID: {}\n  userKey: {}\n",
            c.client_id, c.client_key
        ));
    }
    write_private(&files.secrets, &s)?;
    std::fs::create_dir_all(&files.controller_secrets_dir)?;
    write_private(&files.controller_secrets_dir.join("userID"), &c.client_id)?;
    write_private(&files.controller_secrets_dir.join("userKey"), &c.client_key)?;
    Ok(files)
}

/// How one spec ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
    /// Marked pending in csi-test itself (never runs).
    Pending,
}

/// One csi-sanity spec from the JUnit report.
#[derive(Debug, Clone)]
pub struct Case {
    /// The spec's full text without ginkgo's `[It] ` prefix.
    pub name: String,
    pub outcome: Outcome,
    /// The skip reason or the failure message.
    pub message: String,
}

/// Upper bound for one csi-sanity run (≈ 30 s on an idle machine; CI machines are shared).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// Run csi-sanity with `args`, writing its JUnit report to `junit` and its output to `log`;
/// the report's cases (csi-sanity exits non-zero when a spec failed: that is in the cases).
pub fn run(args: &[String], junit: &Path, log: &Path) -> Result<Vec<Case>> {
    let bin = crate::tools::path("csi-sanity")?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg(format!("--ginkgo.junit-report={}", junit.display()))
        .arg("--ginkgo.no-color");
    let out = crate::proc::run_with_timeout(&mut cmd, RUN_TIMEOUT);
    let text = match &out {
        Ok(s) => s.clone(),
        Err(e) => format!("{e:#}"),
    };
    std::fs::write(log, &text)?;
    let xml = std::fs::read_to_string(junit)
        .with_context(|| format!("csi-sanity wrote no report ({})", log.display()))?;
    parse_junit(&xml)
}

/// The `<testcase>` elements of a ginkgo JUnit report.
pub fn parse_junit(xml: &str) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<testcase ") {
        rest = &rest[start..];
        let end = rest
            .find("</testcase>")
            .or_else(|| rest.find("/>"))
            .context("unterminated <testcase>")?;
        let element = &rest[..end];
        rest = &rest[end..];
        let open_tag = &element[..element.find('>').unwrap_or(element.len())];
        let name = attr(open_tag, "name").context("<testcase> without name")?;
        let status = attr(open_tag, "status").unwrap_or_default();
        let outcome = match status.as_str() {
            "passed" => Outcome::Passed,
            "skipped" => Outcome::Skipped,
            "pending" => Outcome::Pending,
            _ => Outcome::Failed,
        };
        let message = ["<failure ", "<skipped ", "<error "]
            .iter()
            .find_map(|t| {
                let i = element.find(t)?;
                attr(&element[i..], "message")
            })
            .unwrap_or_default();
        let name = name.strip_prefix("[It] ").unwrap_or(&name).to_owned();
        cases.push(Case {
            name,
            outcome,
            message,
        });
    }
    Ok(cases)
}

/// The unescaped value of attribute `key` in the first tag of `tag`.
fn attr(tag: &str, key: &str) -> Option<String> {
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    let needle = format!(" {key}=\"");
    let i = tag.find(&needle)? + needle.len();
    let j = tag[i..].find('"')? + i;
    Some(
        tag[i..j]
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#xA;", "\n")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ginkgo_junit() {
        let xml = r#"<testsuites><testsuite name="s">
<testcase name="[It] A &amp; B" classname="s" status="passed" time="1"></testcase>
<testcase name="[It] C" classname="s" status="skipped" time="0"><skipped message="skipped - X not supported"></skipped></testcase>
<testcase name="[It] D" classname="s" status="failed" time="0"><failure message="boom &quot;x&quot;" type="failed">long</failure></testcase>
<testcase name="[It] E" classname="s" status="pending" time="0"><skipped message="pending"></skipped></testcase>
</testsuite></testsuites>"#;
        let c = parse_junit(xml).unwrap();
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.name.as_str(), c.outcome, c.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("A & B", Outcome::Passed, ""),
                ("C", Outcome::Skipped, "skipped - X not supported"),
                ("D", Outcome::Failed, "boom \"x\""),
                ("E", Outcome::Pending, "pending"),
            ]
        );
    }
}
