//! The seam through which a virtual cluster's API server asks the host to
//! evict the host copy of a pod (`pods/eviction`), so the host's
//! PodDisruptionBudgets (the tenant's, synced, and the host's own) decide,
//! as they decide for the host's node drains.

use crate::service::{BoxFuture, HostRefusal};
use serde_json::Value;

/// What the host did with an eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostEviction {
    /// The host evicted (deleted) its copy of the pod.
    Evicted,
    /// The host has no copy of this pod (not synced yet, or refused): the
    /// virtual API server decides with its own budgets.
    NoHostPod,
}

/// Evicts host copies of a virtual cluster's pods.
pub trait HostEvictor: Send + Sync + std::fmt::Debug {
    /// Evicts the host copy of pod `namespace/name` (virtual uid `uid`)
    /// with `eviction`, the client's `policy/v1` Eviction (its
    /// `deleteOptions` apply on the host; preconditions naming the virtual
    /// pod are dropped). A refusal is the host's `Status` (e.g. `429
    /// TooManyRequests` when a budget forbids), naming virtual objects.
    fn evict<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        uid: &'a str,
        eviction: &'a Value,
    ) -> BoxFuture<'a, Result<HostEviction, HostRefusal>>;
}
