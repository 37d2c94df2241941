//! PersistentVolumes the tenant creates, synced to the host
//! (`SyncerConfig::persistent_volumes`): the [`super::to_host::SyncedToHost`]
//! rows of [`crate::persistentvolume`]. The host volume's status comes back
//! to the tenant's; the binding to the tenant's claim is the host binder's
//! (both sides are pre-bound, [`crate::persistentvolumeclaim`]).

use k8s_openapi::api::core::v1::PersistentVolume;

use super::to_host::SyncedToHost;
use crate::cluster_scoped::host_cluster_name;
use crate::engine::SyncerConfig;
use crate::error::TranslateError;
use crate::persistentvolume as pv;

impl SyncedToHost for PersistentVolume {
    const KIND: &'static str = pv::KIND;
    fn enabled(config: &SyncerConfig) -> bool {
        config.persistent_volumes.is_some()
    }
    // The volumes the syncer shows for bound claims stay virtual.
    fn syncs(config: &SyncerConfig, v: &Self) -> bool {
        crate::persistentvolumeclaim::volume_claim(v, &config.tenant).is_none()
    }
    fn translate(config: &SyncerConfig, v: &Self) -> Result<Self, TranslateError> {
        let opts = config.persistent_volumes.clone().unwrap_or_default();
        let tenant = &config.tenant;
        pv::translate(tenant, v, &opts, |class| {
            if config.storage_classes_to_host {
                host_cluster_name(tenant, class)
            } else {
                class.to_string()
            }
        })
    }
    fn needs_replace(desired: &Self, host: &Self) -> bool {
        pv::needs_replace(desired, host)
    }
    fn update(desired: &Self, host: &Self) -> Option<Self> {
        pv::update(desired, host)
    }
    fn reflect_status(host: &Self, virt: &Self) -> Option<serde_json::Value> {
        pv::reflect_status(host, virt)
    }
}
