//! A gRPC backend through nginx: a tonic server (berth-csi's Identity service) reached by an
//! Ingress as plain gRPC, as gRPC over TLS behind a private TLS nginx, and by a GRPCRoute on a
//! Gateway's HTTPS listener (a method it does not match is not routed).

use std::process::Command;

use anyhow::{Result, ensure};
use berth_tests::ingress_ctl::{IngressCtl, TestCa, ingress, local_service, tls_secret};
use berth_tests::nginx::{Nginx, private_http_paths, private_paths};
use berth_tests::proc::free_port;
use serde_json::Value;

use super::write_ca;

/// A tonic server (CSI Identity, from berth-csi) on 127.0.0.1:`port`, in its own thread.
fn start_grpc(port: u16) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let identity = berth_csi::identity::Identity::new("grpc.berth.test", false, false);
            let _ = tonic::transport::Server::builder()
                .add_service(berth_csi::csi::identity_server::IdentityServer::new(
                    identity,
                ))
                .serve(([127, 0, 0, 1], port).into())
                .await;
        });
    });
}

/// A real TLS gRPC backend: a private nginx terminating TLS (HTTP/2, a leaf of `ca`) in front
/// of the tonic server on `port`.
fn tls_grpc_front(ca: &TestCa, port: u16) -> Result<Nginx> {
    let (crt, key) = ca.leaf("identity-tls.rpc", 8)?;
    Nginx::start_with(|prefix, p| {
        let d = prefix.display();
        _ = std::fs::write(prefix.join("tls.crt"), &crt);
        _ = std::fs::write(prefix.join("tls.key"), &key);
        format!(
            "{}events {{ worker_connections 64; }}\nhttp {{\n{}server {{ listen 127.0.0.1:{p} ssl http2; \
             ssl_certificate {d}/tls.crt; ssl_certificate_key {d}/tls.key; \
             location / {{ grpc_pass grpc://127.0.0.1:{port}; }} }}\n}}\n",
            private_paths(prefix),
            private_http_paths(prefix),
        )
    })
}

pub(crate) fn grpc() -> Result<()> {
    let port = free_port()?;
    start_grpc(port);
    let ca = TestCa::new()?;
    let front = tls_grpc_front(&ca, port)?;
    let (crt, key) = ca.leaf("grpc.test", 7)?;
    let (crt2, key2) = ca.leaf("grpcs.test", 9)?;
    let (crt3, key3) = ca.leaf("grpc-gw.test", 10)?;
    let manifests: Vec<(&str, Value)> = vec![
        ("secret3", tls_secret("rpc", "grpc-gw-tls", &crt3, &key3)),
        (
            "class",
            serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass", "metadata": {"name": "berth"},
            "spec": {"controllerName": "berth.dev/gateway"}}),
        ),
        (
            "gw",
            serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "rpc"},
            "spec": {"gatewayClassName": "berth", "listeners": [{"name": "https", "port": 443,
                "protocol": "HTTPS", "hostname": "grpc-gw.test",
                "tls": {"certificateRefs": [{"name": "grpc-gw-tls"}]}}]}}),
        ),
        // GRPCRoute (issue 15): service + method is the exact path /service/method.
        (
            "grpcroute",
            serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GRPCRoute", "metadata": {"name": "identity", "namespace": "rpc"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{
                "matches": [{"method": {"service": "csi.v1.Identity", "method": "GetPluginInfo"}}],
                "backendRefs": [{"name": "identity", "port": port}]}]}}),
        ),
        ("svc", local_service("rpc", "identity", port)),
        ("svc-tls", local_service("rpc", "identity-tls", front.port)),
        ("secret", tls_secret("rpc", "grpc-tls", &crt, &key)),
        ("secret2", tls_secret("rpc", "grpcs-tls", &crt2, &key2)),
        (
            "ing",
            ingress(
                "rpc",
                "grpc",
                "grpc.test",
                "/",
                ("identity", port),
                &[("berth.dev/backend-protocol", "GRPC")],
                Some("grpc-tls"),
            ),
        ),
        (
            "ing-s",
            ingress(
                "rpc",
                "grpcs",
                "grpcs.test",
                "/",
                ("identity-tls", front.port),
                &[("nginx.ingress.kubernetes.io/backend-protocol", "GRPCS")],
                Some("grpcs-tls"),
            ),
        ),
    ];
    let ctl = IngressCtl::start(&manifests, &[])?;
    ctl.wait_ready()?;
    let ca_path = write_ca(&ctl, &ca)?;
    // One unary call by hand: an empty GetPluginInfoRequest is the 5-byte frame 0,0,0,0,0.
    let frame = ctl.dir.join("req.bin");
    std::fs::write(&frame, [0u8; 5])?;
    let headers = ctl.dir.join("headers.txt");
    let call_method = |host: &str, method: &str| -> Result<(String, String)> {
        _ = std::fs::remove_file(&headers);
        let out = berth_tests::proc::run(
            Command::new("curl")
                .args(["-sS", "--http2", "--max-time", "10", "-o", "-", "-D"])
                .arg(&headers)
                .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
                .arg("--resolve")
                .arg(format!("{host}:{}:127.0.0.1", ctl.https_port))
                .arg("--cacert")
                .arg(&ca_path)
                .arg("--data-binary")
                .arg(format!("@{}", frame.display()))
                .arg(format!(
                    "https://{host}:{}/csi.v1.Identity/{method}",
                    ctl.https_port
                )),
        )?;
        Ok((std::fs::read_to_string(&headers)?, out))
    };
    let call = |host: &str| call_method(host, "GetPluginInfo");
    // grpc.test: plain gRPC to tonic; grpcs.test: gRPC over TLS to the TLS front;
    // grpc-gw.test: a GRPCRoute on a Gateway's HTTPS listener.
    for host in ["grpc.test", "grpcs.test", "grpc-gw.test"] {
        let (head, out) = call(host)?;
        ensure!(head.starts_with("HTTP/2 200"), "{host}: {head}");
        ensure!(
            head.contains("content-type: application/grpc"),
            "{host}: {head}"
        );
        ensure!(head.contains("grpc-status: 0"), "{host}: {head}");
        ensure!(out.contains("grpc.berth.test"), "{host}: reply {out:?}");
    }
    // A method the GRPCRoute does not match is not routed.
    let (head, _) = call_method("grpc-gw.test", "Probe")?;
    ensure!(head.starts_with("HTTP/2 404"), "Probe: {head}");
    let conf = std::fs::read_to_string(ctl.prefix.join("nginx.conf"))?;
    ensure!(
        conf.contains("grpc_pass grpcs://"),
        "no grpcs upstream in:\n{conf}"
    );
    drop(front);
    Ok(())
}
