//! The resource metrics API (`metrics.k8s.io/v1beta1`, what `kubectl top`
//! reads) and the seam through which a server gets its figures.
//!
//! On a real cluster metrics-server serves the group through the
//! aggregation layer. A vkube server serves it only when it has a
//! [`MetricsProvider`] that says the figures exist (in a virtual cluster:
//! the host serves `metrics.k8s.io`): otherwise the group is absent, as on
//! a cluster without metrics-server, and `kubectl top` says `Metrics API
//! not available`. The server resolves which pods or nodes a request is
//! about from its own store (namespace, name, label selector), so a
//! provider only ever sees objects the client may see.

use crate::service::{BoxFuture, HostRefusal};
use serde_json::Value;

/// The group and version served.
pub const GROUP: &str = "metrics.k8s.io";
/// The version served.
pub const VERSION: &str = "v1beta1";

/// What a metrics request is about, resolved by the server.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsQuery {
    /// These pods (complete stored objects).
    Pods(Vec<Value>),
    /// These nodes, by name.
    Nodes(Vec<String>),
}

/// Where a server's resource metrics come from.
pub trait MetricsProvider: Send + Sync + std::fmt::Debug {
    /// Whether figures can be served now (checked on discovery and on
    /// every metrics request; a provider may cache the answer briefly).
    fn available(&self) -> BoxFuture<'_, bool>;

    /// The `PodMetrics` (for [`MetricsQuery::Pods`], each named and
    /// labelled as the pod it is given) or `NodeMetrics` objects of the
    /// queried objects that have figures; the others are left out.
    ///
    /// # Errors
    /// The figures' source failing, told in the client's names.
    fn metrics(&self, query: MetricsQuery) -> BoxFuture<'_, Result<Vec<Value>, HostRefusal>>;
}
