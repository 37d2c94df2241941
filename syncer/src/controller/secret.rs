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
    /// Pod token Secrets are the Pod controller's (which caches their
    /// metadata only): caching them here too, data included, cost ~4 KiB
    /// per synced pod (issue 4). A tenant Secret colliding with one still
    /// meets it on create (409) and is reported as a conflict.
    const HOST_SELECTOR_EXTRA: &'static str = "!vkube.dev/service-account-token";
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_watch_leaves_out_pod_token_secrets() {
        assert_eq!(
            <Secret as Mirrored>::HOST_SELECTOR_EXTRA,
            format!("!{}", crate::summary::LABEL_TOKEN)
        );
    }
}
