//! Identity service cases (spec: "Identity Service RPC").

use anyhow::{Result, ensure};
use berth_csi::csi::{
    GetPluginCapabilitiesRequest, GetPluginInfoRequest, ProbeRequest, plugin_capability,
};

use super::check::ok;
use super::ctx::Ctx;
use super::runner::Case;

pub fn cases() -> Vec<Case> {
    vec![
        case!("identity/get_plugin_info/name_and_version", [], info),
        case!(
            "identity/get_plugin_info/name_is_dns_like",
            [],
            info_name_format
        ),
        case!(
            "identity/get_plugin_info/stable_across_calls",
            [],
            info_stable
        ),
        case!(
            "identity/get_plugin_capabilities/known_types",
            [],
            plugin_caps
        ),
        case!("identity/probe/answers", [], probe),
        case!("identity/probe/repeated_10x", [], probe_repeated),
    ]
}

/// Spec GetPluginInfo: name and vendor_version are REQUIRED.
async fn info(c: Ctx) -> Result<()> {
    let i = ok(
        c.ctl
            .identity
            .clone()
            .get_plugin_info(GetPluginInfoRequest {})
            .await,
        "GetPluginInfo",
    )?;
    ensure!(!i.name.is_empty(), "name is empty");
    ensure!(!i.vendor_version.is_empty(), "vendor_version is empty");
    Ok(())
}

/// Spec GetPluginInfo.name: at most 63 characters, begins and ends with an alphanumeric
/// character, with dashes, dots and alphanumerics between (reverse domain name notation).
async fn info_name_format(c: Ctx) -> Result<()> {
    let i = ok(
        c.ctl
            .identity
            .clone()
            .get_plugin_info(GetPluginInfoRequest {})
            .await,
        "GetPluginInfo",
    )?;
    let n = i.name.as_bytes();
    ensure!(
        n.len() <= 63,
        "name {:?} is longer than 63 characters",
        i.name
    );
    ensure!(
        n.first().is_some_and(u8::is_ascii_alphanumeric)
            && n.last().is_some_and(u8::is_ascii_alphanumeric)
            && n.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')),
        "name {:?} is not DNS-like",
        i.name
    );
    Ok(())
}

/// The CO caches the name: it must not change between calls (spec: GetPluginInfo).
async fn info_stable(c: Ctx) -> Result<()> {
    let mut id = c.ctl.identity.clone();
    let first = ok(
        id.get_plugin_info(GetPluginInfoRequest {}).await,
        "GetPluginInfo",
    )?;
    for _ in 0..3 {
        let again = ok(
            id.get_plugin_info(GetPluginInfoRequest {}).await,
            "GetPluginInfo",
        )?;
        ensure!(
            again.name == first.name,
            "name changed: {} -> {}",
            first.name,
            again.name
        );
    }
    // A split driver must report the same name on both endpoints.
    let node = ok(
        c.nod
            .identity
            .clone()
            .get_plugin_info(GetPluginInfoRequest {})
            .await,
        "GetPluginInfo (node)",
    )?;
    ensure!(
        node.name == first.name,
        "node endpoint names {} , controller {}",
        node.name,
        first.name
    );
    Ok(())
}

/// Spec GetPluginCapabilities: every entry sets a type, and none is UNKNOWN.
async fn plugin_caps(c: Ctx) -> Result<()> {
    let r = c
        .ctl
        .identity
        .clone()
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await;
    for cap in ok(r, "GetPluginCapabilities")?.capabilities {
        match cap.r#type {
            Some(plugin_capability::Type::Service(s)) => ensure!(
                s.r#type != 0 && plugin_capability::service::Type::try_from(s.r#type).is_ok(),
                "service capability type {} is UNKNOWN or invalid",
                s.r#type
            ),
            Some(plugin_capability::Type::VolumeExpansion(e)) => ensure!(
                e.r#type != 0
                    && plugin_capability::volume_expansion::Type::try_from(e.r#type).is_ok(),
                "volume expansion type {} is UNKNOWN or invalid",
                e.r#type
            ),
            None => anyhow::bail!("a capability without a type"),
        }
    }
    Ok(())
}

/// Spec Probe: OK with `ready` unset, true or false (false: starting up).
async fn probe(c: Ctx) -> Result<()> {
    ok(c.ctl.identity.clone().probe(ProbeRequest {}).await, "Probe")?;
    ok(
        c.nod.identity.clone().probe(ProbeRequest {}).await,
        "Probe (node)",
    )?;
    Ok(())
}

/// Probe is polled by the liveness sidecar: ten calls in a row all answer and a ready
/// plugin stays ready.
async fn probe_repeated(c: Ctx) -> Result<()> {
    let mut was_ready = false;
    for i in 0..10 {
        let r = ok(c.ctl.identity.clone().probe(ProbeRequest {}).await, "Probe")?;
        let ready = r.ready != Some(false);
        ensure!(!was_ready || ready, "call {i}: ready went back to false");
        was_ready = ready;
    }
    Ok(())
}
