//! The CSI Identity service: plugin name/version, advertised plugin capabilities, Probe.

use tonic::{Request, Response, Status};

use crate::csi::{
    self, GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse, identity_server,
    plugin_capability,
};

#[derive(Debug, Clone)]
pub struct Identity {
    name: String,
    controller: bool,
    topology: bool,
}

impl Identity {
    /// `controller`: whether this process serves the Controller service; `topology`: whether
    /// it advertises VOLUME_ACCESSIBILITY_CONSTRAINTS.
    pub fn new(name: impl Into<String>, controller: bool, topology: bool) -> Self {
        Identity {
            name: name.into(),
            controller,
            topology,
        }
    }

    fn capabilities(&self) -> Vec<PluginCapability> {
        use plugin_capability::{Service, Type, VolumeExpansion, service, volume_expansion};
        let service = |t: service::Type| PluginCapability {
            r#type: Some(Type::Service(Service { r#type: t as i32 })),
        };
        // Topology: nodes report `--topology` segments, `topologyConstrainedPools` places
        // volumes by them (without either, volumes are accessible everywhere).
        let mut caps = Vec::new();
        if self.topology {
            caps.push(service(service::Type::VolumeAccessibilityConstraints));
        }
        if self.controller {
            caps.push(service(service::Type::ControllerService));
            // Volume group snapshots: served with the Controller (controller/group.rs).
            caps.push(service(service::Type::GroupControllerService));
            caps.push(PluginCapability {
                r#type: Some(Type::VolumeExpansion(VolumeExpansion {
                    r#type: volume_expansion::Type::Online as i32,
                })),
            });
        }
        caps
    }
}

#[tonic::async_trait]
impl identity_server::Identity for Identity {
    async fn get_plugin_info(
        &self,
        _req: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(csi::GetPluginInfoResponse {
            name: self.name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _req: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: self.capabilities(),
        }))
    }

    async fn probe(&self, _req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        // Probe is called often by the livenessprobe sidecar: keep it cheap and local.
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csi::identity_server::Identity as _;

    #[tokio::test]
    async fn node_only_advertises_no_controller() {
        let id = Identity::new("x", false, false);
        let caps = id
            .get_plugin_capabilities(Request::new(Default::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(caps.capabilities.is_empty());
        let id = Identity::new("x", false, true);
        let caps = id
            .get_plugin_capabilities(Request::new(Default::default()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(caps.capabilities.len(), 1, "topology only");
        let id = Identity::new("x", true, true);
        let caps = id
            .get_plugin_capabilities(Request::new(Default::default()))
            .await
            .unwrap()
            .into_inner();
        // Topology, Controller, GroupController, online expansion.
        assert_eq!(caps.capabilities.len(), 4);
    }

    #[tokio::test]
    async fn info_names_the_driver() {
        let info = Identity::new("rbd.csi.berth.dev", true, false)
            .get_plugin_info(Request::new(Default::default()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.name, "rbd.csi.berth.dev");
        assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    }
}
