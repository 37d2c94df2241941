//! The controller of the tenant's cluster-scoped objects synced to the host
//! (PriorityClasses, StorageClasses, PersistentVolumes, each behind its
//! option): every virtual object gets its host copy
//! ([`crate::cluster_scoped`] names and markers, the kind's translation),
//! updated as it changes (only the syncer's `vkube.dev/` markers and the
//! kind's own fields; what host controllers add stays), replaced when only
//! a delete and create helps or the virtual object was recreated, and
//! deleted (UID precondition) when the virtual object goes or is refused. A host
//! object at the target name that is not this tenant's copy is never
//! touched (a `SyncConflict` Warning Event goes on the virtual object); a
//! refused object gets a `SyncRefused` Warning Event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::cluster_scoped::{host_cluster_name, is_ours, same_incarnation, virtual_name};
use crate::engine::{Context, SyncerConfig, drive, is_status, run_workers, watch_store};
use crate::error::TranslateError;
use crate::metrics::Direction;
use crate::queue::Queue;

/// A cluster-scoped kind the tenant's objects of which are synced to the
/// host.
pub trait SyncedToHost: super::ClusterKind {
    /// The kind, as in metrics and the `vkube.dev/object-kind` marker.
    const KIND: &'static str;
    /// Whether the option that syncs this kind is on.
    fn enabled(config: &SyncerConfig) -> bool;
    /// Whether virtual object `v` is the tenant's to sync (not one the
    /// syncer made itself in the virtual cluster).
    fn syncs(_config: &SyncerConfig, _v: &Self) -> bool {
        true
    }
    /// The host copy of virtual object `v` (pure; metadata from
    /// [`crate::cluster_scoped::host_cluster_meta`]).
    fn translate(config: &SyncerConfig, v: &Self) -> Result<Self, TranslateError>;
    /// Whether only a delete and create brings `host` to `desired` (an
    /// immutable field differs).
    fn needs_replace(desired: &Self, host: &Self) -> bool;
    /// The host object to write over `host` so that it matches `desired`
    /// in what the syncer owns (what the host set, e.g. finalizers, is
    /// kept), or `None` when nothing differs.
    fn update(desired: &Self, host: &Self) -> Option<Self>;
    /// The status the virtual object should get from its host copy (a
    /// JSON `status` value), or `None` when it has it already or the kind
    /// reflects none.
    fn reflect_status(_host: &Self, _virt: &Self) -> Option<serde_json::Value> {
        None
    }
}

/// Runs the controller of `K` (idles while its option is off).
pub async fn run<K: SyncedToHost>(ctx: Arc<Context>) -> anyhow::Result<()> {
    if !K::enabled(&ctx.config) {
        return std::future::pending().await;
    }
    let queue: Arc<Queue<String>> = Arc::new(Queue::default());
    ctx.metrics.register_queue(K::KIND, &queue);
    let (virt, virt_stream) = watch_store(
        Api::<K>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    let (host, host_stream) = watch_store(
        Api::<K>::all(ctx.host_client.clone()),
        watcher::Config::default().labels(&ctx.managed_selector()),
    );
    let virt_events = {
        let queue = Arc::clone(&queue);
        drive(virt_stream, move |ev| match ev {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                queue.add(o.name_any());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        })
    };
    let host_events = {
        let (queue, tenant) = (Arc::clone(&queue), ctx.tenant.clone());
        drive(host_stream, move |ev| match ev {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                if let Some(name) = virtual_name(&tenant, o.meta(), K::KIND) {
                    queue.add(name.to_string());
                }
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        })
    };
    let work = {
        let (virt, host, c, q) = (
            virt.clone(),
            host.clone(),
            Arc::clone(&ctx),
            Arc::clone(&queue),
        );
        async move {
            virt.wait_until_ready().await?;
            host.wait_until_ready().await?;
            run_workers(K::KIND, c, q, move |name, since| {
                let (ctx, virt, host) = (Arc::clone(&ctx), virt.clone(), host.clone());
                async move { reconcile(&ctx, &virt, &host, &name, since).await }
            })
            .await
        }
    };
    tokio::select! {
        r = virt_events => r,
        r = host_events => r,
        r = work => r,
    }
}

async fn reconcile<K: SyncedToHost>(
    ctx: &Context,
    virt: &Store<K>,
    host: &Store<K>,
    name: &str,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let api = Api::<K>::all(ctx.host_client.clone());
    let hname = host_cluster_name(&ctx.tenant, name);
    let h = host.get(&ObjectRef::new(&hname));
    let ours = |h: &K| is_ours(&ctx.tenant, h.meta(), K::KIND, name);
    let v = virt
        .get(&ObjectRef::new(name))
        .filter(|v| v.meta().deletion_timestamp.is_none() && K::syncs(&ctx.config, v));
    let Some(v) = v else {
        if let Some(h) = h.filter(|h| ours(h)) {
            crate::engine::delete_guarded(&api, h.as_ref(), &format!("host {}", K::KIND)).await?;
        }
        return Ok(None);
    };
    let desired = match K::translate(&ctx.config, &v) {
        Ok(d) => d,
        Err(TranslateError::Forbidden(why)) => {
            ctx.warn(v.as_ref(), crate::event::REASON_SYNC_REFUSED, &why)
                .await?;
            // What is refused now (the object changed, or the options
            // narrowed) does not keep a host copy made before.
            if let Some(h) = h.filter(|h| ours(h)) {
                crate::engine::delete_guarded(&api, h.as_ref(), &format!("host {}", K::KIND))
                    .await?;
            }
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let Some(h) = h else {
        return match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {
                ctx.metrics
                    .observe_latency(K::KIND, Direction::VirtualToHost, since.elapsed());
                Ok(None)
            }
            Err(e) if is_status(&e, 409) => {
                let live = api.get_opt(&hname).await?;
                if live.is_some_and(|l| !ours(&l)) {
                    conflict(ctx, v.as_ref(), &hname).await?;
                    return Ok(None);
                }
                Ok(Some(Duration::from_secs(1)))
            }
            Err(e) => Err(e).with_context(|| format!("creating host {} {hname}", K::KIND)),
        };
    };
    if !ours(&h) {
        conflict(ctx, v.as_ref(), &hname).await?;
        return Ok(None);
    }
    // A copy of an earlier incarnation (the tenant deleted and recreated
    // the object while the syncer was away) is replaced, never adopted.
    if !same_incarnation(h.meta(), v.meta()) || K::needs_replace(&desired, &h) {
        crate::engine::delete_guarded(&api, h.as_ref(), &format!("host {}", K::KIND)).await?;
        return Ok(Some(Duration::from_millis(200)));
    }
    if let Some(mut out) = K::update(&desired, &h) {
        out.meta_mut()
            .resource_version
            .clone_from(&h.meta().resource_version);
        api.replace(&hname, &PostParams::default(), &out)
            .await
            .with_context(|| format!("updating host {} {hname}", K::KIND))?;
    }
    if let Some(status) = K::reflect_status(&h, &v) {
        Api::<K>::all(ctx.virtual_client.clone())
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .with_context(|| format!("writing the status of virtual {} {name}", K::KIND))?;
    }
    Ok(None)
}

async fn conflict<K: SyncedToHost>(ctx: &Context, v: &K, hname: &str) -> anyhow::Result<()> {
    ctx.warn(
        v,
        crate::event::REASON_SYNC_CONFLICT,
        &format!(
            "host {} {hname} exists and is not managed by this virtual cluster; not syncing",
            K::KIND
        ),
    )
    .await
}
