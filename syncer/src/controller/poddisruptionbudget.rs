//! The PodDisruptionBudget controller: every virtual budget mirrored to the
//! host ([`super::mirror`], translation in [`crate::poddisruptionbudget`]),
//! so host drains respect it and the tenant's evictions, forwarded to the
//! host ([`super::connect::HostPods`]), are decided by it.

use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::engine::{Context, SyncerConfig};
use crate::error::TranslateError;
use crate::names::Tenant;
use crate::pod::ReferenceKind;

use super::mirror::Mirrored;

/// The kind name, as in metrics and markers.
pub const KIND: &str = crate::poddisruptionbudget::KIND;

impl Mirrored for PodDisruptionBudget {
    const KIND: &'static str = KIND;
    // Every budget is synced (`sync_all`): the reference kind is never
    // looked up.
    const REFERENCE: ReferenceKind = ReferenceKind::Secret;
    fn sync_all(_: &SyncerConfig) -> bool {
        true
    }
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, TranslateError> {
        crate::poddisruptionbudget::translate(tenant, v)
    }
    fn needs_update(desired: &Self, host: &Self) -> bool {
        crate::poddisruptionbudget::needs_update(desired, host)
    }
    fn update(desired: Self, host: &Self) -> Option<Self> {
        // The host's disruption controller owns the status.
        Self::needs_update(&desired, host).then(|| PodDisruptionBudget {
            status: host.status.clone(),
            ..desired
        })
    }
}

/// Runs the PodDisruptionBudget controller (see [`super::mirror`]).
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue = Arc::new(crate::queue::Queue::default());
    super::mirror::run::<PodDisruptionBudget>(ctx, queue).await
}
