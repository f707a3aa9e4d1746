//! The spec's rules for the berth-csi Node service against REAL Ceph (fuse attacher): error
//! codes for missing and foreign arguments (each asked ten times), access modes
//! (SINGLE_NODE_SINGLE_WRITER, read-only publish, unstage while published), actionable errors
//! when krbd/rbd-nbd cannot work on this host, `mounter=auto`, NodeGetInfo/Capabilities.

use anyhow::{Result, ensure};
use berth_csi::csi::volume_capability::access_mode::Mode;
use berth_csi::csi::{
    NodeGetCapabilitiesRequest, NodeGetInfoRequest, NodePublishVolumeRequest,
    NodeStageVolumeRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest,
};
use berth_tests::node_fixture::{NodeEnv, case, mount_cap, run_suite};
use tonic::Code;

fn main() {
    run_suite(vec![
        case("argument_errors_follow_the_spec", |e| {
            Box::pin(argument_errors(e))
        }),
        case("access_modes_readonly_and_conflicts", |e| {
            Box::pin(access_modes(e))
        }),
        case("krbd_and_nbd_without_modules_say_what_to_do", |e| {
            Box::pin(attach_errors(e))
        }),
        case("info_and_capabilities", |e| Box::pin(info(e))),
    ])
}

fn code<T>(r: std::result::Result<T, tonic::Status>) -> Code {
    r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

fn to_status(e: anyhow::Error) -> tonic::Status {
    e.downcast::<tonic::Status>()
        .unwrap_or_else(|e| tonic::Status::unknown(e.to_string()))
}

async fn argument_errors(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("args", "64M")?;
    let staging = e.staging("args");
    let target = e.target("argspod");
    let cap = mount_cap("ext4", Mode::SingleNodeWriter);
    let good = e.stage_req(&id, &staging, cap.clone());
    let stage_cases: Vec<(NodeStageVolumeRequest, Code)> = vec![
        (
            NodeStageVolumeRequest {
                volume_id: String::new(),
                ..good.clone()
            },
            Code::InvalidArgument,
        ),
        (
            NodeStageVolumeRequest {
                staging_target_path: String::new(),
                ..good.clone()
            },
            Code::InvalidArgument,
        ),
        (
            NodeStageVolumeRequest {
                volume_capability: None,
                ..good.clone()
            },
            Code::InvalidArgument,
        ),
        (
            NodeStageVolumeRequest {
                volume_id: "fake-vol-id-1234".into(),
                ..good.clone()
            },
            Code::NotFound,
        ),
        (
            e.stage_req(
                &berth_csi::volume_id::VolumeId::new("berth-test", "rbd", "no-such-image")
                    .encode()
                    .unwrap(),
                &staging,
                cap.clone(),
            ),
            Code::NotFound,
        ),
        (
            NodeStageVolumeRequest {
                secrets: Default::default(),
                ..good.clone()
            },
            Code::Unauthenticated,
        ),
        (
            e.stage_req(&id, &staging, mount_cap("ntfs", Mode::SingleNodeWriter)),
            Code::InvalidArgument,
        ),
    ];
    let pub_good = e.publish_req(&id, &staging, &target, cap.clone(), false);
    let publish_cases: Vec<(NodePublishVolumeRequest, Code)> = vec![
        (
            NodePublishVolumeRequest {
                volume_id: String::new(),
                ..pub_good.clone()
            },
            Code::InvalidArgument,
        ),
        (
            NodePublishVolumeRequest {
                target_path: String::new(),
                ..pub_good.clone()
            },
            Code::InvalidArgument,
        ),
        (
            NodePublishVolumeRequest {
                volume_capability: None,
                staging_target_path: String::new(),
                ..pub_good.clone()
            },
            Code::InvalidArgument,
        ),
        (pub_good.clone(), Code::FailedPrecondition),
        (
            NodePublishVolumeRequest {
                volume_id: "fake-vol-id-1234".into(),
                ..pub_good.clone()
            },
            Code::NotFound,
        ),
    ];
    let staging_path: String = staging.to_string_lossy().into();
    let target_path: String = target.to_string_lossy().into();
    let unstage_cases = [
        (
            NodeUnstageVolumeRequest {
                volume_id: id.clone(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            NodeUnstageVolumeRequest {
                staging_target_path: staging_path.clone(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            NodeUnstageVolumeRequest {
                volume_id: id.clone(),
                staging_target_path: staging_path,
            },
            Code::Ok,
        ),
    ];
    let unpublish_cases = [
        (
            NodeUnpublishVolumeRequest {
                volume_id: id.clone(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            NodeUnpublishVolumeRequest {
                volume_id: id.clone(),
                target_path,
            },
            Code::Ok,
        ),
    ];
    for _ in 0..10 {
        for (req, want) in &stage_cases {
            let got = code(e.csi.node.node_stage_volume(req.clone()).await);
            ensure!(
                got == *want,
                "stage {:?}: {got:?}, want {want:?}",
                req.volume_id
            );
        }
        for (req, want) in &publish_cases {
            let got = code(e.csi.node.node_publish_volume(req.clone()).await);
            ensure!(
                got == *want,
                "publish {:?}: {got:?}, want {want:?}",
                req.volume_id
            );
        }
        for (req, want) in &unstage_cases {
            let got = code(e.csi.node.node_unstage_volume(req.clone()).await);
            ensure!(got == *want, "unstage {req:?}: {got:?}, want {want:?}");
        }
        for (req, want) in &unpublish_cases {
            let got = code(e.csi.node.node_unpublish_volume(req.clone()).await);
            ensure!(got == *want, "unpublish {req:?}: {got:?}, want {want:?}");
        }
        ensure!(
            code(
                e.stats("fake-vol-id-1234", std::path::Path::new("some/path"))
                    .await
                    .map_err(to_status)
            ) == Code::NotFound
        );
    }
    ensure!(
        e.leftovers().is_empty(),
        "failed stages left {:?}",
        e.leftovers()
    );
    let state = e.driver.state_dir.join("volumes");
    let stashes = std::fs::read_dir(&state)?.count();
    ensure!(
        stashes == 0,
        "{stashes} stash dirs left in {}",
        state.display()
    );
    Ok(())
}

async fn access_modes(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("modes", "512M")?;
    let snsw = || mount_cap("xfs", Mode::SingleNodeSingleWriter);
    let staging = e.staging("modes");
    let (t1, t2) = (e.target("m1"), e.target("m2"));
    e.stage(&id, &staging, snsw()).await?;
    e.publish(&id, &staging, &t1, snsw(), false).await?;
    for _ in 0..10 {
        let second = e.publish_req(&id, &staging, &t2, snsw(), false);
        ensure!(code(e.csi.node.node_publish_volume(second).await) == Code::FailedPrecondition);
    }
    e.unpublish(&id, &t1).await?;
    e.publish(&id, &staging, &t2, snsw(), true).await?;
    let err = std::fs::write(t2.join("x"), b"x").unwrap_err();
    ensure!(
        err.raw_os_error() == Some(libc::EROFS),
        "read-only publish wrote: {err}"
    );
    let st = e.stats(&id, &t2).await?;
    ensure!(
        st.volume_condition.is_some_and(|c| !c.abnormal),
        "ro publish is healthy"
    );
    let busy = e.csi.node.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: id.clone(),
        staging_target_path: staging.to_string_lossy().into(),
    });
    ensure!(
        code(busy.await) == Code::FailedPrecondition,
        "unstage while published"
    );
    e.unpublish(&id, &t2).await?;
    e.unstage(&id, &staging).await?;
    Ok(())
}

async fn attach_errors(e: &mut NodeEnv<'_>) -> Result<()> {
    let id = e.image("kernel", "64M")?;
    let staging = e.staging("kernel");
    for (mounter, module) in [("krbd", "rbd"), ("rbd-nbd", "nbd")] {
        if std::path::Path::new(&format!("/sys/module/{module}")).exists() {
            continue; // this host has it: nothing to prove here
        }
        let mut req = e.stage_req(&id, &staging, mount_cap("ext4", Mode::SingleNodeWriter));
        req.volume_context.insert("mounter".into(), mounter.into());
        let st = e.csi.node.node_stage_volume(req).await.unwrap_err();
        ensure!(st.code() == Code::FailedPrecondition, "{mounter}: {st:?}");
        ensure!(
            st.message().contains("use mounter=fuse"),
            "{mounter}: {}",
            st.message()
        );
    }
    let mut req = e.stage_req(&id, &staging, mount_cap("ext4", Mode::SingleNodeWriter));
    req.volume_context.insert("mounter".into(), "auto".into());
    e.csi.node.node_stage_volume(req).await?;
    ensure!(
        e.driver.log_text().contains("mounter=auto chose"),
        "auto must say what it chose"
    );
    e.unstage(&id, &staging).await?;
    Ok(())
}

async fn info(e: &mut NodeEnv<'_>) -> Result<()> {
    let i = e
        .csi
        .node
        .node_get_info(NodeGetInfoRequest {})
        .await?
        .into_inner();
    ensure!(i.node_id == "berth-test-node", "{i:?}");
    let caps = e
        .csi
        .node
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await?
        .into_inner();
    ensure!(caps.capabilities.len() == 5, "{caps:?}");
    Ok(())
}
