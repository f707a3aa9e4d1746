//! The berth-csi binary's command line: the flags kubelet-facing manifests rely on exist, and
//! a bad endpoint fails fast with a message that says what is expected.
//! (Cargo builds the binary for this test, which the integration tests in tests/ then start.)

use std::process::Command;

fn berth_csi() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth-csi"))
}

#[test]
fn help_lists_the_deployment_flags() {
    let out = berth_csi().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--endpoint",
        "--mode",
        "--driver-name",
        "--node-id",
        "--cluster-config",
        "--state-dir",
        "--metrics-address",
        "--log-format",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn a_tcp_endpoint_is_refused_with_a_clear_message() {
    let out = berth_csi()
        .args(["--endpoint", "tcp://127.0.0.1:1", "--mode", "node"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unix"), "stderr: {err}");
}
