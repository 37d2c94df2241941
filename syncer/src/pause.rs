//! Pausing a virtual cluster without losing its pods.
//!
//! `vkube pause` stops the virtual cluster's process and deletes its host
//! pods, so a paused tenant costs the host nothing. The virtual pods stay in
//! the tenant's store. Without a record, the syncer that starts at `vkube
//! resume` would read "bound, ran, host pod gone" as "deleted or evicted on
//! the host" and delete them, as a kubelet finalizes a pod whose container
//! is gone. So the pause first writes a **record** into the host namespace
//! (a ConfigMap named [`record_name`], one data entry per paused pod:
//! virtual uid → `namespace/name`), and the Pod controller reads it at
//! start: a recorded pod that was running gets a `Pending` status and a new
//! host pod on the same node; one that had completed (`Succeeded`/`Failed`)
//! keeps its final status and is not run again. The record is deleted once
//! every entry is handled or its virtual pod is gone.
//!
//! [`record_entries`] is pure; [`pause_pods`], [`load`] and [`clear`] do the
//! host I/O (the CLI calls [`pause_pods`] once the virtual cluster's process
//! has stopped).

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::names::{LABEL_MANAGED_BY, Ownership, Tenant, VirtualIdentity, is_managed};

/// Label on the record, naming the virtual cluster it belongs to.
pub const LABEL_PAUSED_PODS: &str = "vkube.dev/paused-pods-of";

/// The record's name in the host namespace: `vkube-paused-pods-VC`. It
/// cannot be a translated name: those hold `-x-` twice.
pub fn record_name(tenant: &Tenant) -> String {
    format!("vkube-paused-pods-{}", tenant.name())
}

/// The record's entries for host pods `pods`: for each pod this tenant
/// manages (its markers pass [`is_managed`] for the identity they name),
/// virtual uid → `namespace/name`. Other pods are left out.
pub fn record_entries(tenant: &Tenant, pods: &[Pod]) -> BTreeMap<String, String> {
    pods.iter()
        .filter_map(|p| {
            let id = VirtualIdentity::from_host(p.meta())?;
            (id.kind == crate::pod::KIND
                && is_managed(tenant, Some(p.meta()), &id) == Ownership::Owned)
                .then(|| (id.uid, format!("{}/{}", id.namespace, id.name)))
        })
        .collect()
}

/// Parses an entry value back into the virtual key (`namespace`, `name`).
pub fn entry_key(value: &str) -> Option<(String, String)> {
    let (ns, name) = value.split_once('/')?;
    (!ns.is_empty() && !name.is_empty()).then(|| (ns.to_string(), name.to_string()))
}

/// Records every host pod of `tenant` and deletes them: the host half of
/// `vkube pause`, to run once the virtual cluster's process (its syncer)
/// has stopped. Entries are merged into an existing record, so pausing
/// twice keeps the first pause's pods. Returns how many pods were deleted.
///
/// # Errors
/// Listing pods, writing the record (nothing is deleted then), or a delete
/// other than 404.
pub async fn pause_pods(host: &Client, tenant: &Tenant) -> anyhow::Result<usize> {
    let pods: Api<Pod> = Api::namespaced(host.clone(), tenant.host_namespace());
    let selector = format!("{LABEL_MANAGED_BY}={}", tenant.name());
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .context("listing the synced host pods")?;
    let entries = record_entries(tenant, &listed.items);
    let api: Api<ConfigMap> = Api::namespaced(host.clone(), tenant.host_namespace());
    let name = record_name(tenant);
    let written = if api.get_opt(&name).await?.is_some() {
        let patch = serde_json::json!({ "data": entries });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    } else {
        let record = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(LABEL_PAUSED_PODS.to_string(), tenant.name().to_string())].into()),
                ..Default::default()
            },
            data: Some(entries),
            ..Default::default()
        };
        api.create(&PostParams::default(), &record).await.map(drop)
    };
    written.context("writing the paused-pods record")?;
    let mut deleted = 0;
    for p in &listed.items {
        match pods.delete(&p.name_any(), &DeleteParams::default()).await {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting pod {}", p.name_any())),
        }
    }
    Ok(deleted)
}

/// The record's entries (virtual uid → `namespace/name`); empty when there
/// is none or the host forbids reading it.
///
/// # Errors
/// Any other failure to read it (the caller retries: treating the pods as
/// unpaused would delete them).
pub async fn load(host: &Client, tenant: &Tenant) -> anyhow::Result<BTreeMap<String, String>> {
    let api: Api<ConfigMap> = Api::namespaced(host.clone(), tenant.host_namespace());
    match api.get_opt(&record_name(tenant)).await {
        Ok(Some(cm)) => Ok(cm.data.unwrap_or_default()),
        Ok(None) => Ok(BTreeMap::new()),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            tracing::warn!(
                "may not read the paused-pods record: pods removed by a pause are treated as deleted on the host"
            );
            Ok(BTreeMap::new())
        }
        Err(e) => Err(e).context("reading the paused-pods record"),
    }
}

/// Deletes the record (gone already is fine).
///
/// # Errors
/// A failed delete other than 404.
pub async fn clear(host: &Client, tenant: &Tenant) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(host.clone(), tenant.host_namespace());
    match api
        .delete(&record_name(tenant), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).context("deleting the paused-pods record"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{host_name, markers};

    fn tenant() -> Tenant {
        Tenant::new("vc1", "host-ns").unwrap()
    }

    fn host_pod(ns: &str, name: &str, uid: &str) -> Pod {
        let t = tenant();
        let vmeta = ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            uid: Some(uid.into()),
            ..Default::default()
        };
        let m = markers(&t, crate::pod::KIND, &vmeta).unwrap();
        Pod {
            metadata: ObjectMeta {
                name: Some(host_name(&t, ns, name)),
                namespace: Some("host-ns".into()),
                labels: Some(m.labels),
                annotations: Some(m.annotations),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_this_tenants_pods_are_recorded() {
        let ours = host_pod("default", "web-0", "u-1");
        let mut other_tenant = host_pod("default", "db-0", "u-2");
        other_tenant
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_MANAGED_BY.into(), "vc2".into());
        // Markers naming an identity whose host name is another object's.
        let mut forged = host_pod("default", "x", "u-3");
        forged.metadata.name = Some("something-else".into());
        let entries = record_entries(&tenant(), &[ours, other_tenant, forged]);
        assert_eq!(
            entries,
            BTreeMap::from([("u-1".to_string(), "default/web-0".to_string())])
        );
        assert_eq!(
            entry_key("default/web-0"),
            Some(("default".into(), "web-0".into()))
        );
        assert_eq!(entry_key("no-slash"), None);
        assert_eq!(entry_key("/x"), None);
        assert!(!record_name(&tenant()).contains("-x-"));
    }
}
