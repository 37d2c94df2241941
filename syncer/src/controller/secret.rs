//! The Secret controller: [`super::mirror`] for Secrets.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use crate::engine::{Context, SyncerConfig};
use crate::error::TranslateError;
use crate::names::Tenant;
use crate::pod::ReferenceKind;

use super::mirror::Mirrored;

/// The kind name, as in metrics and markers.
pub const KIND: &str = crate::secret::KIND;

impl Mirrored for Secret {
    const KIND: &'static str = KIND;
    const REFERENCE: ReferenceKind = ReferenceKind::Secret;
    fn sync_all(config: &SyncerConfig) -> bool {
        config.sync_all_secrets
    }
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, TranslateError> {
        crate::secret::translate(tenant, v)
    }
    fn needs_update(desired: &Self, host: &Self) -> bool {
        crate::secret::needs_update(desired, host)
    }
}

/// Runs the Secret controller (see [`super::mirror`]).
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue = Arc::clone(&ctx.references.secrets);
    super::mirror::run::<Secret>(ctx, queue).await
}
