//! The seam of PodSecurity admission (KEP-2579, kube-apiserver's
//! `PodSecurity` plugin): a server that has one refuses, at create time and
//! on `ephemeralcontainers` updates, a pod that breaks the enforced Pod
//! Security Standards level, with `403 Forbidden: violates PodSecurity
//! "LEVEL:latest": …`. In a virtual cluster the level is the one the
//! syncer enforces before anything reaches the host, so a tenant hears of
//! a refusal when it writes the pod (`kubectl debug node/…` included), not
//! later as an event.

use serde_json::Value;

/// Checks a pod against the enforced level.
pub trait PodSecurityAdmission: Send + Sync + std::fmt::Debug {
    /// `None` when `pod` (a complete Pod) is allowed, else the reason the
    /// API server puts after `pods "NAME" is forbidden: `, e.g. `violates
    /// PodSecurity "baseline:latest": host namespaces (hostPID=true)`.
    fn forbidden(&self, pod: &Value) -> Option<String>;
}
