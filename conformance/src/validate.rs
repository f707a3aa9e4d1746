//! ValidateVolumeCapabilities cases (spec: "ValidateVolumeCapabilities" and its error table).

use anyhow::{Result, ensure};
use berth_csi::csi::ValidateVolumeCapabilitiesRequest;
use tonic::Code;

use super::caps::{CtrlCap, Req};
use super::check::{UNKNOWN_VOLUME_ID, code, ok};
use super::config::SecretFor;
use super::ctx::Ctx;
use super::runner::Case;

const CREATE: Req = Req::Ctrl(CtrlCap::CreateDeleteVolume);
const CS: Req = Req::ControllerService;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "controller/validate_capabilities/missing_id_invalid",
            [CS],
            validate_no_id
        ),
        case!(
            "controller/validate_capabilities/missing_capabilities_invalid",
            [CREATE],
            validate_no_caps
        ),
        case!(
            "controller/validate_capabilities/unknown_volume_not_found",
            [CS],
            validate_unknown
        ),
        case!(
            "controller/validate_capabilities/confirmed",
            [CREATE],
            validate_confirmed
        ),
    ]
}

fn validate_req(c: &Ctx, id: &str) -> ValidateVolumeCapabilitiesRequest {
    ValidateVolumeCapabilitiesRequest {
        volume_id: id.into(),
        volume_capabilities: vec![c.capability()],
        parameters: c.cfg().parameters.clone(),
        secrets: c.secrets(SecretFor::ValidateVolumeCapabilities),
        ..Default::default()
    }
}

/// Spec ValidateVolumeCapabilities: volume_id REQUIRED.
async fn validate_no_id(c: Ctx) -> Result<()> {
    let r = c
        .ctl
        .controller
        .clone()
        .validate_volume_capabilities(validate_req(&c, ""))
        .await;
    code(r, Code::InvalidArgument, "ValidateVolumeCapabilities")
}

/// Spec ValidateVolumeCapabilities: volume_capabilities REQUIRED.
async fn validate_no_caps(c: Ctx) -> Result<()> {
    let v = c.create_volume("valnocaps").await?;
    let mut req = validate_req(&c, &v.volume_id);
    req.volume_capabilities.clear();
    code(
        c.ctl
            .controller
            .clone()
            .validate_volume_capabilities(req)
            .await,
        Code::InvalidArgument,
        "ValidateVolumeCapabilities",
    )
}

/// Spec ValidateVolumeCapabilities errors: "Volume does not exist" -> NOT_FOUND.
async fn validate_unknown(c: Ctx) -> Result<()> {
    let r = c
        .ctl
        .controller
        .clone()
        .validate_volume_capabilities(validate_req(&c, UNKNOWN_VOLUME_ID))
        .await;
    code(r, Code::NotFound, "ValidateVolumeCapabilities")
}

/// Spec ValidateVolumeCapabilitiesResponse.confirmed: set when the capabilities are supported,
/// and then it lists the capabilities that were asked for.
async fn validate_confirmed(c: Ctx) -> Result<()> {
    let v = c.create_volume("val").await?;
    let mut req = validate_req(&c, &v.volume_id);
    req.volume_context = v.volume_context.clone();
    let r = ok(
        c.ctl
            .controller
            .clone()
            .validate_volume_capabilities(req)
            .await,
        "ValidateVolumeCapabilities",
    )?;
    let confirmed = r
        .confirmed
        .ok_or_else(|| anyhow::anyhow!("not confirmed: {}", r.message))?;
    ensure!(
        confirmed.volume_capabilities == vec![c.capability()],
        "confirmed capabilities {:?} differ from the request",
        confirmed.volume_capabilities
    );
    Ok(())
}
