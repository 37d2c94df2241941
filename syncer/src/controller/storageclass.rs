//! StorageClasses synced to the host (`SyncerConfig::storage_classes_to_host`):
//! the [`super::to_host::SyncedToHost`] rows of the tenant's classes
//! ([`crate::storageclass::host_storage_class`]). By default the direction
//! is the other one ([`super::host_class`]).

use k8s_openapi::api::storage::v1::StorageClass;

use super::to_host::SyncedToHost;
use crate::cluster_scoped::with_markers;
use crate::engine::SyncerConfig;
use crate::error::TranslateError;
use crate::storageclass as sc;

impl SyncedToHost for StorageClass {
    const KIND: &'static str = sc::KIND;
    fn enabled(config: &SyncerConfig) -> bool {
        config.storage_classes_to_host
    }
    // The host's classes the syncer showed before the option was turned on
    // are not the tenant's.
    fn syncs(config: &SyncerConfig, v: &Self) -> bool {
        !super::host_class::is_ours(&config.tenant, &v.metadata)
    }
    fn translate(config: &SyncerConfig, v: &Self) -> Result<Self, TranslateError> {
        sc::host_storage_class(&config.tenant, v, &config.storage_class_provisioners)
    }
    fn needs_replace(desired: &Self, host: &Self) -> bool {
        sc::needs_replace(desired, host)
    }
    fn update(desired: &Self, host: &Self) -> Option<Self> {
        let mut out = host.clone();
        out.metadata = with_markers(&desired.metadata, &host.metadata);
        out.allow_volume_expansion = desired.allow_volume_expansion;
        out.mount_options.clone_from(&desired.mount_options);
        out.allowed_topologies
            .clone_from(&desired.allowed_topologies);
        (out != *host).then_some(out)
    }
}
