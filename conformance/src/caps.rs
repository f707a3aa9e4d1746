//! The capability probe a run starts with, and the requirements a case declares. A case whose
//! requirement the driver does not advertise is skipped (and reported as skipped).
//!
//! Spec: "Identity Service RPC / GetPluginCapabilities", "ControllerGetCapabilities",
//! "NodeGetCapabilities": an SP MUST NOT be asked to perform an RPC it did not advertise.

use std::collections::HashSet;

use berth_csi::csi::{
    ControllerGetCapabilitiesRequest, GetPluginCapabilitiesRequest, NodeGetCapabilitiesRequest,
    controller_service_capability, node_service_capability, plugin_capability,
};

pub use controller_service_capability::rpc::Type as CtrlCap;
pub use node_service_capability::rpc::Type as NodeCap;
pub use plugin_capability::service::Type as PluginService;

use super::config::AccessType;
use crate::csi_client::CsiClient;

/// What the driver advertised. `*_error` holds why a capability call failed (then the
/// service counts as absent for skipping, and the capability case itself fails).
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub plugin_services: HashSet<i32>,
    pub online_expansion: bool,
    pub offline_expansion: bool,
    pub plugin_error: Option<String>,
    pub controller: HashSet<i32>,
    pub controller_error: Option<String>,
    pub node: HashSet<i32>,
    pub node_error: Option<String>,
}

impl Capabilities {
    /// Ask all three services. Errors are recorded, not returned: a driver with a broken
    /// capability RPC still gets the rest of its report.
    pub async fn probe(controller: &mut CsiClient, node: &mut CsiClient) -> Capabilities {
        let mut caps = Capabilities::default();
        match controller
            .identity
            .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
            .await
        {
            Ok(r) => {
                for c in r.into_inner().capabilities {
                    match c.r#type {
                        Some(plugin_capability::Type::Service(s)) => {
                            caps.plugin_services.insert(s.r#type);
                        }
                        Some(plugin_capability::Type::VolumeExpansion(e)) => {
                            use plugin_capability::volume_expansion::Type;
                            caps.online_expansion |= e.r#type == Type::Online as i32;
                            caps.offline_expansion |= e.r#type == Type::Offline as i32;
                        }
                        None => {}
                    }
                }
            }
            Err(s) => caps.plugin_error = Some(format!("GetPluginCapabilities: {s}")),
        }
        if caps
            .plugin_services
            .contains(&(PluginService::ControllerService as i32))
        {
            match controller
                .controller
                .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
                .await
            {
                Ok(r) => {
                    for c in r.into_inner().capabilities {
                        if let Some(controller_service_capability::Type::Rpc(rpc)) = c.r#type {
                            caps.controller.insert(rpc.r#type);
                        }
                    }
                }
                Err(s) => caps.controller_error = Some(format!("ControllerGetCapabilities: {s}")),
            }
        }
        match node
            .node
            .node_get_capabilities(NodeGetCapabilitiesRequest {})
            .await
        {
            Ok(r) => {
                for c in r.into_inner().capabilities {
                    if let Some(node_service_capability::Type::Rpc(rpc)) = c.r#type {
                        caps.node.insert(rpc.r#type);
                    }
                }
            }
            Err(s) => caps.node_error = Some(format!("NodeGetCapabilities: {s}")),
        }
        caps
    }

    pub fn controller_service(&self) -> bool {
        self.plugin_services
            .contains(&(PluginService::ControllerService as i32))
            && self.controller_error.is_none()
    }

    pub fn has_ctrl(&self, c: CtrlCap) -> bool {
        self.controller_service() && self.controller.contains(&(c as i32))
    }

    pub fn node_service(&self) -> bool {
        self.node_error.is_none()
    }

    pub fn has_node(&self, c: NodeCap) -> bool {
        self.node_service() && self.node.contains(&(c as i32))
    }

    /// Why `req` is not met (the skip reason), or None when it is.
    pub fn unmet(&self, req: Req, access: AccessType) -> Option<String> {
        let ok = match req {
            Req::ControllerService => self.controller_service(),
            Req::Ctrl(c) => self.has_ctrl(c),
            Req::NodeService => self.node_service(),
            Req::Node(c) => self.has_node(c),
            Req::NoNode(c) => self.node_service() && !self.node.contains(&(c as i32)),
            Req::Plugin(s) => self.plugin_services.contains(&(s as i32)),
            Req::Access(a) => a == access,
        };
        if ok {
            return None;
        }
        Some(match req {
            Req::ControllerService => self
                .controller_error
                .clone()
                .unwrap_or_else(|| "no CONTROLLER_SERVICE".into()),
            Req::Ctrl(c) => format!("controller does not advertise {}", c.as_str_name()),
            Req::NodeService | Req::Node(_) | Req::NoNode(_) if !self.node_service() => {
                self.node_error.clone().unwrap_or_default()
            }
            Req::Node(c) => format!("node does not advertise {}", c.as_str_name()),
            Req::NoNode(c) => format!("node advertises {}", c.as_str_name()),
            Req::NodeService => unreachable!("handled above"),
            Req::Plugin(s) => format!("plugin does not advertise {}", s.as_str_name()),
            Req::Access(a) => format!("only for {a} access (this run: {access})"),
        })
    }
}

/// One precondition of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req {
    /// The plugin advertises CONTROLLER_SERVICE and ControllerGetCapabilities answers.
    ControllerService,
    /// The controller advertises this RPC capability.
    Ctrl(CtrlCap),
    /// NodeGetCapabilities answers.
    NodeService,
    /// The node advertises this RPC capability.
    Node(NodeCap),
    /// The node answers and does NOT advertise this capability.
    NoNode(NodeCap),
    /// The plugin advertises this service.
    Plugin(PluginService),
    /// The run uses this access type.
    Access(AccessType),
}
