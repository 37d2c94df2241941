//! The NetworkPolicy controller: every virtual NetworkPolicy mirrored to
//! the host ([`super::mirror`], translation in [`crate::networkpolicy`]),
//! with namespace selectors resolved against the virtual namespaces'
//! labels: a namespace created, deleted or relabelled re-translates every
//! policy, so host policies follow the tenant's namespaces.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::engine::{Context, Key, SyncerConfig, drive, watch_store};
use crate::error::TranslateError;
use crate::names::{Tenant, host_name};
use crate::networkpolicy::{self as np, NamespaceLabels};
use crate::pod::ReferenceKind;

use super::mirror::{self, Mirrored};

/// The kind name, as in metrics and markers.
pub const KIND: &str = np::KIND;

impl Mirrored for NetworkPolicy {
    const KIND: &'static str = KIND;
    // Every policy is synced (`sync_all`): the reference kind is never
    // looked up.
    const REFERENCE: ReferenceKind = ReferenceKind::Secret;
    fn sync_all(_: &SyncerConfig) -> bool {
        true
    }
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, TranslateError> {
        np::translate(tenant, v, &[])
    }
    fn needs_update(desired: &Self, host: &Self) -> bool {
        np::needs_update(desired, host)
    }
}

/// Runs the NetworkPolicy controller.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue = Arc::new(crate::queue::Queue::default());
    ctx.metrics.register_queue(KIND, &queue);
    let (vstore, vstream, hstore, hstream) = super::watch_both::<NetworkPolicy>(&ctx, "");
    let (namespaces, ns_stream) = watch_store(
        Api::<Namespace>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    let resync = super::resync_stores(KIND, vstore.clone(), hstore.clone(), Arc::clone(&queue));
    let ready = {
        let (vs, hs, ns) = (vstore.clone(), hstore.clone(), namespaces.clone());
        async move {
            vs.wait_until_ready().await?;
            hs.wait_until_ready().await?;
            ns.wait_until_ready().await?;
            Ok(())
        }
    };
    let work = super::work_with_resync(
        KIND,
        Arc::clone(&ctx),
        Arc::clone(&queue),
        ready,
        Arc::clone(&resync),
        |key, since| {
            let (ctx, vs, hs, ns) = (
                Arc::clone(&ctx),
                vstore.clone(),
                hstore.clone(),
                namespaces.clone(),
            );
            async move { reconcile(&ctx, &vs, &hs, &ns, &key, since).await }
        },
    );
    // Only label changes matter; the rest of a namespace's updates (status,
    // finalizers) would re-translate every policy for nothing.
    let namespace_events = {
        let resync = Arc::clone(&resync);
        let mut seen: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        drive(ns_stream, move |ev| match ev {
            watcher::Event::Apply(n) => {
                let labels = n.labels().clone();
                if seen.insert(n.name_any(), labels.clone()).as_ref() != Some(&labels) {
                    resync();
                }
            }
            watcher::Event::Delete(n) => {
                seen.remove(&n.name_any());
                resync();
            }
            watcher::Event::InitApply(n) => {
                seen.insert(n.name_any(), n.labels().clone());
            }
            watcher::Event::InitDone => resync(),
            watcher::Event::Init => seen.clear(),
        })
    };
    tokio::select! {
        r = namespace_events => r,
        r = super::queue_virtual(vstream, Arc::clone(&queue), Arc::clone(&resync)) => r,
        r = super::queue_host(hstream, KIND, Arc::clone(&queue), resync) => r,
        r = work => r,
    }
}

async fn reconcile(
    ctx: &Context,
    vstore: &Store<NetworkPolicy>,
    hstore: &Store<NetworkPolicy>,
    namespaces: &Store<Namespace>,
    key: &Key,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let v = vstore.get(&ObjectRef::new(&key.1).within(&key.0));
    let hname = host_name(&ctx.tenant, &key.0, &key.1);
    let h = hstore.get(&ObjectRef::new(&hname).within(ctx.tenant.host_namespace()));
    let Some(v) = v.filter(|v| v.metadata.deletion_timestamp.is_none()) else {
        mirror::delete_if_owned(ctx, h.as_deref(), key).await?;
        return Ok(None);
    };
    let labels: Vec<NamespaceLabels> = namespaces
        .state()
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect();
    let translated = np::translate(&ctx.tenant, &v, &labels);
    mirror::sync_translated(ctx, v.as_ref(), translated, h.as_deref(), since).await
}
