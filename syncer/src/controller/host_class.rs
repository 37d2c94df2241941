//! The controllers of host classes shown read-only in the virtual cluster:
//! StorageClasses, CSIDrivers and the CSINodes of the nodes the tenant
//! sees ([`crate::storageclass`]) and
//! IngressClasses ([`crate::ingress::virtual_ingress_class`]), kept as they change and
//! removed when they go. Each runs only when the host lets the syncer list
//! that kind (a cluster-scoped read the chart grants); otherwise it says so
//! once and idles, and objects keep whatever class the tenant names. A
//! class the tenant made itself (without the `vkube.dev/managed-by=VC`
//! label) is never touched, and hides the host's class of the same name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, StorageClass};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::engine::{Context, drive, is_status, run_workers, watch_store};
use crate::names::Tenant;
use crate::queue::Queue;

/// A cluster-scoped host kind shown read-only in the virtual cluster.
pub trait ShownFromHost: super::ClusterKind {
    /// The kind, as in metrics.
    const KIND: &'static str;
    /// Whether the host's objects of this kind are shown (all by default).
    fn shown_with(_config: &crate::engine::SyncerConfig) -> bool {
        true
    }
    /// Whether host object `host` is never shown (another tenant's own).
    fn hidden(_host: &Self) -> bool {
        false
    }
    /// Whether an object is shown only while the virtual Node of its name
    /// exists (objects that describe a node, such as CSINodes).
    const PER_NODE: bool = false;
    /// The virtual copy of host object `host` (pure), labelled
    /// `vkube.dev/managed-by=VC`.
    fn shown(tenant: &Tenant, host: &Self) -> Self;
    /// Whether the copy `current` must be updated to `desired`.
    fn needs_update(desired: &Self, current: &Self) -> bool;
    /// Whether only a delete and create brings `current` to `desired`
    /// (an immutable field differs).
    fn needs_replace(desired: &Self, current: &Self) -> bool;
}

/// Whether virtual object `meta` is a copy this syncer made.
pub fn is_ours(tenant: &Tenant, meta: &kube::api::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(crate::names::LABEL_MANAGED_BY))
        .is_some_and(|t| t == tenant.name())
}

impl ShownFromHost for StorageClass {
    const KIND: &'static str = crate::storageclass::KIND;
    // With the tenant's classes synced to the host, the host's are not the
    // tenant's to use.
    fn shown_with(config: &crate::engine::SyncerConfig) -> bool {
        !config.storage_classes_to_host
    }
    // Other tenants' classes synced to the host are theirs alone.
    fn hidden(host: &Self) -> bool {
        crate::storageclass::is_tenant_copy(&host.metadata)
    }
    fn shown(tenant: &Tenant, host: &Self) -> Self {
        crate::storageclass::virtual_storage_class(tenant, host)
    }
    fn needs_update(desired: &Self, current: &Self) -> bool {
        crate::storageclass::needs_update(desired, current)
    }
    fn needs_replace(desired: &Self, current: &Self) -> bool {
        crate::storageclass::needs_replace(desired, current)
    }
}

impl ShownFromHost for IngressClass {
    const KIND: &'static str = "IngressClass";
    fn shown(tenant: &Tenant, host: &Self) -> Self {
        crate::ingress::virtual_ingress_class(tenant, host)
    }
    fn needs_update(desired: &Self, current: &Self) -> bool {
        desired.metadata.labels != current.metadata.labels
            || desired.metadata.annotations != current.metadata.annotations
            || desired.spec != current.spec
    }
    fn needs_replace(_: &Self, _: &Self) -> bool {
        false
    }
}

impl ShownFromHost for CSINode {
    const KIND: &'static str = "CSINode";
    const PER_NODE: bool = true;
    fn shown(tenant: &Tenant, host: &Self) -> Self {
        crate::storageclass::virtual_csi_node(tenant, host)
    }
    fn needs_update(desired: &Self, current: &Self) -> bool {
        desired.metadata.labels != current.metadata.labels || desired.spec != current.spec
    }
    // A registered driver's entry is immutable: a driver that registers
    // again with another node ID or topology recreates the copy.
    fn needs_replace(desired: &Self, current: &Self) -> bool {
        desired.spec != current.spec
    }
}

impl ShownFromHost for CSIDriver {
    const KIND: &'static str = "CSIDriver";
    fn shown(tenant: &Tenant, host: &Self) -> Self {
        crate::storageclass::virtual_csi_driver(tenant, host)
    }
    fn needs_update(desired: &Self, current: &Self) -> bool {
        desired.metadata.labels != current.metadata.labels || desired.spec != current.spec
    }
    // Most of a driver's spec is immutable: a changed one is recreated.
    fn needs_replace(desired: &Self, current: &Self) -> bool {
        desired.spec != current.spec
    }
}

/// Runs the controller of `K` until it fails.
pub async fn run<K: ShownFromHost>(ctx: Arc<Context>) -> anyhow::Result<()> {
    if !K::shown_with(&ctx.config) {
        return std::future::pending().await;
    }
    let host_api = Api::<K>::all(ctx.host_client.clone());
    match host_api
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => {}
        Err(e) if is_status(&e, 403) => {
            tracing::info!(
                kind = K::KIND,
                "the host forbids listing this kind; the tenant sees none of the host's"
            );
            return std::future::pending().await;
        }
        Err(e) => return Err(e).with_context(|| format!("listing host {}", K::KIND)),
    }
    let queue: Arc<Queue<String>> = Arc::new(Queue::default());
    ctx.metrics.register_queue(K::KIND, &queue);
    let (host, host_stream) = watch_store(host_api, watcher::Config::default());
    let (virt, virt_stream) = watch_store(
        Api::<K>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    fn feed<O: ResourceExt>(queue: Arc<Queue<String>>) -> impl FnMut(watcher::Event<O>) {
        move |ev: watcher::Event<O>| match ev {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                queue.add(o.name_any());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
    // The virtual Nodes the syncer shows, for kinds shown per node.
    let (nodes, node_stream) = if K::PER_NODE {
        let (store, stream) = watch_store(
            Api::<Node>::all(ctx.virtual_client.clone()),
            watcher::Config::default().labels(&format!(
                "{}={}",
                crate::names::LABEL_MANAGED_BY,
                ctx.tenant.name()
            )),
        );
        (Some(store), Some(stream))
    } else {
        (None, None)
    };
    let node_events = {
        let queue = Arc::clone(&queue);
        async move {
            match node_stream {
                Some(stream) => drive(stream, feed(queue)).await,
                None => std::future::pending().await,
            }
        }
    };
    let work = {
        let (host, virt, nodes, c, q) = (
            host.clone(),
            virt.clone(),
            nodes.clone(),
            Arc::clone(&ctx),
            Arc::clone(&queue),
        );
        async move {
            host.wait_until_ready().await?;
            virt.wait_until_ready().await?;
            if let Some(n) = &nodes {
                n.wait_until_ready().await?;
            }
            run_workers(K::KIND, c, q, move |name, since| {
                let (ctx, host, virt, nodes) =
                    (Arc::clone(&ctx), host.clone(), virt.clone(), nodes.clone());
                async move { reconcile(&ctx, &host, &virt, nodes.as_ref(), &name, since).await }
            })
            .await
        }
    };
    tokio::select! {
        r = drive(host_stream, feed(Arc::clone(&queue))) => r,
        r = drive(virt_stream, feed(Arc::clone(&queue))) => r,
        r = node_events => r,
        r = work => r,
    }
}

async fn reconcile<K: ShownFromHost>(
    ctx: &Context,
    host: &Store<K>,
    virt: &Store<K>,
    nodes: Option<&Store<Node>>,
    name: &str,
    _since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let api = Api::<K>::all(ctx.virtual_client.clone());
    let current = virt.get(&ObjectRef::new(name));
    if current
        .as_ref()
        .is_some_and(|c| !is_ours(&ctx.tenant, c.meta()))
    {
        // The tenant's own class of that name wins; the host's stays hidden.
        return Ok(None);
    }
    let node_seen = nodes.is_none_or(|n| n.get(&ObjectRef::new(name)).is_some());
    let Some(h) = host
        .get(&ObjectRef::new(name))
        .filter(|h| node_seen && !K::hidden(h))
    else {
        if let Some(c) = current {
            delete(&api, &c).await?;
        }
        return Ok(None);
    };
    let desired = K::shown(&ctx.tenant, &h);
    match current {
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(None),
            Err(e) if is_status(&e, 409) => Ok(Some(Duration::from_secs(1))),
            Err(e) => Err(e).with_context(|| format!("creating virtual {} {name}", K::KIND)),
        },
        Some(c) if K::needs_replace(&desired, &c) => {
            delete(&api, &c).await?;
            Ok(Some(Duration::from_millis(100)))
        }
        Some(c) if K::needs_update(&desired, &c) => {
            let mut out = desired;
            out.meta_mut().resource_version = c.meta().resource_version.clone();
            api.replace(name, &PostParams::default(), &out)
                .await
                .with_context(|| format!("updating virtual {} {name}", K::KIND))?;
            Ok(None)
        }
        Some(_) => Ok(None),
    }
}

async fn delete<K: ShownFromHost>(api: &Api<K>, c: &K) -> anyhow::Result<()> {
    crate::engine::delete_guarded(api, c, &format!("virtual {}", K::KIND)).await
}
