//! The StorageClass controller: the host's StorageClasses shown read-only
//! in the virtual cluster ([`crate::storageclass`]), kept as they change
//! and removed when they go. Runs only when the host lets the syncer list
//! StorageClasses (a cluster-scoped read, the chart's `sync.hostStorage`);
//! otherwise it says so once and idles, and claims keep whatever class the
//! tenant names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::engine::{Context, drive, is_status, run_workers, watch_store};
use crate::queue::Queue;
use crate::storageclass::{is_ours, needs_replace, needs_update, virtual_storage_class};

/// The kind name, as in metrics.
pub const KIND: &str = crate::storageclass::KIND;

/// Runs the StorageClass controller until it fails.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let host_api = Api::<StorageClass>::all(ctx.host_client.clone());
    match host_api
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => {}
        Err(e) if is_status(&e, 403) => {
            tracing::info!(
                "the host forbids listing StorageClasses; the tenant sees none of the host's"
            );
            return std::future::pending().await;
        }
        Err(e) => return Err(e).context("listing host StorageClasses"),
    }
    let queue: Arc<Queue<String>> = Arc::new(Queue::default());
    ctx.metrics.register_queue(KIND, &queue);
    let (host, host_stream) = watch_store(host_api, watcher::Config::default());
    let (virt, virt_stream) = watch_store(
        Api::<StorageClass>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    let feed = |queue: Arc<Queue<String>>| {
        move |ev: watcher::Event<StorageClass>| match ev {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                queue.add(o.name_any());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    };
    let work = {
        let (host, virt, c, q) = (
            host.clone(),
            virt.clone(),
            Arc::clone(&ctx),
            Arc::clone(&queue),
        );
        async move {
            host.wait_until_ready().await?;
            virt.wait_until_ready().await?;
            run_workers(KIND, c, q, move |name, since| {
                let (ctx, host, virt) = (Arc::clone(&ctx), host.clone(), virt.clone());
                async move { reconcile(&ctx, &host, &virt, &name, since).await }
            })
            .await
        }
    };
    tokio::select! {
        r = drive(host_stream, feed(Arc::clone(&queue))) => r,
        r = drive(virt_stream, feed(Arc::clone(&queue))) => r,
        r = work => r,
    }
}

async fn reconcile(
    ctx: &Context,
    host: &Store<StorageClass>,
    virt: &Store<StorageClass>,
    name: &str,
    _since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let api = Api::<StorageClass>::all(ctx.virtual_client.clone());
    let current = virt.get(&ObjectRef::new(name));
    if current.as_ref().is_some_and(|c| !is_ours(&ctx.tenant, c)) {
        // The tenant's own class of that name wins; the host's stays hidden.
        return Ok(None);
    }
    let Some(h) = host.get(&ObjectRef::new(name)) else {
        if let Some(c) = current {
            delete(&api, &c).await?;
        }
        return Ok(None);
    };
    let desired = virtual_storage_class(&ctx.tenant, &h);
    match current {
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(None),
            Err(e) if is_status(&e, 409) => Ok(Some(Duration::from_secs(1))),
            Err(e) => Err(e).with_context(|| format!("creating virtual StorageClass {name}")),
        },
        Some(c) if needs_replace(&desired, &c) => {
            delete(&api, &c).await?;
            Ok(Some(Duration::from_millis(100)))
        }
        Some(c) if needs_update(&desired, &c) => {
            let mut out = desired;
            out.metadata.resource_version = c.metadata.resource_version.clone();
            api.replace(name, &PostParams::default(), &out)
                .await
                .with_context(|| format!("updating virtual StorageClass {name}"))?;
            Ok(None)
        }
        Some(_) => Ok(None),
    }
}

async fn delete(api: &Api<StorageClass>, c: &StorageClass) -> anyhow::Result<()> {
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: c.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&c.name_any(), &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting virtual StorageClass {}", c.name_any())),
    }
}
