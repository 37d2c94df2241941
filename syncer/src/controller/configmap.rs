//! The ConfigMap controller: [`super::mirror`] for ConfigMaps.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::engine::{Context, SyncerConfig};
use crate::error::TranslateError;
use crate::names::Tenant;
use crate::pod::ReferenceKind;

use super::mirror::Mirrored;

/// The kind name, as in metrics and markers.
pub const KIND: &str = crate::configmap::KIND;

impl Mirrored for ConfigMap {
    const KIND: &'static str = KIND;
    const REFERENCE: ReferenceKind = ReferenceKind::ConfigMap;
    fn sync_all(config: &SyncerConfig) -> bool {
        config.sync_all_configmaps
    }
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, TranslateError> {
        crate::configmap::translate(tenant, v)
    }
    fn needs_update(desired: &Self, host: &Self) -> bool {
        crate::configmap::needs_update(desired, host)
    }
}

/// Runs the ConfigMap controller (see [`super::mirror`]).
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue = Arc::clone(&ctx.references.configmaps);
    super::mirror::run::<ConfigMap>(ctx, queue).await
}
