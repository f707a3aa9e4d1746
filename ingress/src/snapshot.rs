//! The in-memory set of Kubernetes objects both sources (kube, files) produce.
//!
//! A snapshot is cheap to clone (objects are `Arc`s shared with the kube reflector stores) and
//! is the only input of translation. Its `Debug` prints counts only: Secrets are never printed.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::gateway::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::model::Report;

#[derive(Clone, Default)]
pub struct Snapshot {
    /// All Services in scope (the selector is applied in translation).
    pub services: Vec<Arc<Service>>,
    pub ingresses: Vec<Arc<Ingress>>,
    pub ingress_classes: Vec<Arc<IngressClass>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Only `kubernetes.io/tls` Secrets (TLS) and Secrets with an `auth` key (htpasswd files
    /// for basic authentication).
    pub secrets: Vec<Arc<Secret>>,
    /// Gateway API (`gateway/`): every GatewayClass (translation picks ours by
    /// controllerName), Gateway, HTTPRoute, GRPCRoute and ReferenceGrant in scope.
    pub gateway_classes: Vec<Arc<GatewayClass>>,
    pub gateways: Vec<Arc<Gateway>>,
    pub http_routes: Vec<Arc<HTTPRoute>>,
    pub grpc_routes: Vec<Arc<GRPCRoute>>,
    pub reference_grants: Vec<Arc<ReferenceGrant>>,
    /// Namespaces (only their labels matter: a listener's `allowedRoutes` selector).
    pub namespaces: Vec<Arc<Namespace>>,
    /// Problems the source itself found (e.g. a manifest file that does not parse).
    pub reports: Vec<Report>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("services", &self.services.len())
            .field("ingresses", &self.ingresses.len())
            .field("ingress_classes", &self.ingress_classes.len())
            .field("endpoint_slices", &self.endpoint_slices.len())
            .field("secrets", &self.secrets.len())
            .field("gateway_classes", &self.gateway_classes.len())
            .field("gateways", &self.gateways.len())
            .field("http_routes", &self.http_routes.len())
            .field("grpc_routes", &self.grpc_routes.len())
            .field("reference_grants", &self.reference_grants.len())
            .field("namespaces", &self.namespaces.len())
            .field("reports", &self.reports.len())
            .finish()
    }
}

/// One decoded object of a kind the controller understands (shared, so cached manifests and
/// snapshots hold the same allocation).
#[derive(Clone)]
pub enum Object {
    Service(Arc<Service>),
    Ingress(Arc<Ingress>),
    IngressClass(Arc<IngressClass>),
    EndpointSlice(Arc<EndpointSlice>),
    Secret(Arc<Secret>),
    GatewayClass(Arc<GatewayClass>),
    Gateway(Arc<Gateway>),
    HTTPRoute(Arc<HTTPRoute>),
    GRPCRoute(Arc<GRPCRoute>),
    ReferenceGrant(Arc<ReferenceGrant>),
    Namespace(Arc<Namespace>),
}

impl Snapshot {
    /// Add one object. Secrets other than `kubernetes.io/tls` or with an `auth` key are not
    /// kept.
    pub fn push(&mut self, object: Object) {
        match object {
            Object::Service(o) => self.services.push(o),
            Object::Ingress(o) => self.ingresses.push(o),
            Object::IngressClass(o) => self.ingress_classes.push(o),
            Object::EndpointSlice(o) => self.endpoint_slices.push(o),
            Object::Secret(o)
                if o.type_.as_deref() == Some("kubernetes.io/tls") || has_auth(&o) =>
            {
                self.secrets.push(o)
            }
            Object::Secret(_) => {}
            Object::GatewayClass(o) => self.gateway_classes.push(o),
            Object::Gateway(o) => self.gateways.push(o),
            Object::HTTPRoute(o) => self.http_routes.push(o),
            Object::GRPCRoute(o) => self.grpc_routes.push(o),
            Object::ReferenceGrant(o) => self.reference_grants.push(o),
            Object::Namespace(o) => self.namespaces.push(o),
        }
    }
}

/// Does the Secret hold an `auth` key (an htpasswd file, `auth-secret`)?
fn has_auth(s: &Secret) -> bool {
    s.data.as_ref().is_some_and(|d| d.contains_key("auth"))
        || s.string_data
            .as_ref()
            .is_some_and(|d| d.contains_key("auth"))
}

/// The objects' allocations, sorted (order-free identity of a list of shared objects).
fn ptrs<T>(v: &[Arc<T>]) -> Vec<usize> {
    let mut p: Vec<usize> = v.iter().map(|a| Arc::as_ptr(a) as usize).collect();
    p.sort_unstable();
    p
}

impl Snapshot {
    /// Whether `other` holds exactly the same objects: the same allocations (a reflector
    /// store keeps an unchanged object's `Arc`, and replaces a changed one), in any order, and
    /// equal reports. Only meaningful while `self` is alive (it keeps its allocations from
    /// being reused); a false `false` only costs a recomputation.
    pub fn same_objects(&self, other: &Snapshot) -> bool {
        ptrs(&self.services) == ptrs(&other.services)
            && ptrs(&self.ingresses) == ptrs(&other.ingresses)
            && ptrs(&self.ingress_classes) == ptrs(&other.ingress_classes)
            && ptrs(&self.endpoint_slices) == ptrs(&other.endpoint_slices)
            && ptrs(&self.secrets) == ptrs(&other.secrets)
            && ptrs(&self.gateway_classes) == ptrs(&other.gateway_classes)
            && ptrs(&self.gateways) == ptrs(&other.gateways)
            && ptrs(&self.http_routes) == ptrs(&other.http_routes)
            && ptrs(&self.grpc_routes) == ptrs(&other.grpc_routes)
            && ptrs(&self.reference_grants) == ptrs(&other.reference_grants)
            && ptrs(&self.namespaces) == ptrs(&other.namespaces)
            && self.reports == other.reports
    }
}
