//! The generic virtual → host mirror behind the ConfigMap and Secret
//! controllers (STYLE.md item 10: the engine owns every side effect, a kind
//! only says how to translate and when an update is due).
//!
//! A virtual object is *needed* on the host when a virtual pod references
//! it ([`super::References`]) or its kind's `sync_all_*` flag is set. Needed
//! and absent → created; needed and differing → replaced; not needed (or
//! its virtual source gone, or replaced by a new UID) → the host copy is
//! deleted with a UID precondition. A host object at the target name that
//! is not ours ([`crate::names::is_managed`] → `NotOurs`) is never touched:
//! a `SyncConflict` Warning Event goes on the virtual object instead.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::NamespaceResourceScope;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Context, Key, SyncerConfig, is_status};
use crate::error::TranslateError;
use crate::metrics::Direction;
use crate::names::{Ownership, Tenant, VirtualIdentity, host_name, is_managed};
use crate::pod::ReferenceKind;
use crate::queue::Queue;

/// Reason of the Warning Event when an unmanaged host object holds the
/// target name.
pub const REASON_SYNC_CONFLICT: &str = crate::event::REASON_SYNC_CONFLICT;

/// A kind mirrored virtual → host by this module.
pub trait Mirrored:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind, as in the `vkube.dev/object-kind` annotation.
    const KIND: &'static str;
    /// How pods reference it.
    const REFERENCE: ReferenceKind;
    /// Whether every object of the kind is synced, referenced or not.
    fn sync_all(config: &SyncerConfig) -> bool;
    /// Label selector terms added to the host watch (after the
    /// `vkube.dev/managed-by=VC` term, comma-joined), to leave out host
    /// objects of this kind that other controllers manage (so they are not
    /// cached twice); empty for none.
    const HOST_SELECTOR_EXTRA: &'static str = "";
    /// The host copy of virtual object `v` (pure).
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, TranslateError>;
    /// Whether host object `host` must be replaced by `desired` (pure).
    fn needs_update(desired: &Self, host: &Self) -> bool;
    /// The object to write over `host` (ours, current) for `desired`, or
    /// `None` when it is up to date (pure). The default replaces it with
    /// `desired` when [`Mirrored::needs_update`] says so; a kind whose host
    /// object carries fields of the host's own (a claim's binding and
    /// finalizers) merges them in instead.
    fn update(desired: Self, host: &Self) -> Option<Self> {
        Self::needs_update(&desired, host).then_some(desired)
    }
}

/// Whether host object `h` is ours as the copy of virtual key `key` of kind
/// `kind` (any incarnation): used before deleting when the virtual side is
/// gone.
pub fn owned_copy_of(tenant: &Tenant, h: &kube::api::ObjectMeta, kind: &str, key: &Key) -> bool {
    let Some(id) = VirtualIdentity::from_host(h) else {
        return false;
    };
    id.kind == kind
        && id.namespace == key.0
        && id.name == key.1
        && is_managed(tenant, Some(h), &id) == Ownership::Owned
}

pub use crate::summary::virtual_key;

/// Runs the mirror controller of `K` with `queue` (also fed by
/// [`super::References`]).
pub async fn run<K: Mirrored>(ctx: Arc<Context>, queue: Arc<Queue<Key>>) -> anyhow::Result<()> {
    ctx.metrics.register_queue(K::KIND, &queue);
    let (vstore, vstream, hstore, hstream) = super::watch_both::<K>(&ctx, K::HOST_SELECTOR_EXTRA);
    let resync = super::resync_stores(K::KIND, vstore.clone(), hstore.clone(), Arc::clone(&queue));
    let ready = {
        let (vs, hs) = (vstore.clone(), hstore.clone());
        async move {
            vs.wait_until_ready().await?;
            hs.wait_until_ready().await?;
            Ok(())
        }
    };
    let work = super::work_with_resync(
        K::KIND,
        Arc::clone(&ctx),
        Arc::clone(&queue),
        ready,
        Arc::clone(&resync),
        |key, since| {
            let (ctx, vs, hs) = (Arc::clone(&ctx), vstore.clone(), hstore.clone());
            async move { reconcile::<K>(&ctx, &vs, &hs, &key, since).await }
        },
    );
    tokio::select! {
        r = super::queue_virtual(vstream, Arc::clone(&queue), Arc::clone(&resync)) => r,
        r = super::queue_host(hstream, K::KIND, Arc::clone(&queue), resync) => r,
        r = work => r,
    }
}

async fn reconcile<K: Mirrored>(
    ctx: &Context,
    vstore: &Store<K>,
    hstore: &Store<K>,
    key: &Key,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let v = vstore.get(&ObjectRef::new(&key.1).within(&key.0));
    let hname = host_name(&ctx.tenant, &key.0, &key.1);
    let h = hstore.get(&ObjectRef::new(&hname).within(ctx.tenant.host_namespace()));
    let needed = K::sync_all(&ctx.config) || ctx.references.is_referenced(K::REFERENCE, key);
    match v {
        Some(v) if needed && v.meta().deletion_timestamp.is_none() => {
            sync_one(ctx, v.as_ref(), h.as_deref(), since).await
        }
        _ => {
            delete_if_owned(ctx, h.as_deref(), key).await?;
            Ok(None)
        }
    }
}

/// Deletes host object `h` with a UID precondition; 404 and 409 (already
/// gone or replaced) count as done.
pub async fn delete_host<K: Mirrored>(ctx: &Context, h: &K) -> anyhow::Result<()> {
    crate::engine::delete_guarded(&ctx.host_api::<K>(), h, &format!("host {}", K::KIND)).await
}

/// Deletes host object `h` (the one at virtual key `key`'s host name, if
/// any) when it is this tenant's copy of `key` (any incarnation): what a
/// controller does once the virtual object is gone or being deleted.
pub async fn delete_if_owned<K: Mirrored>(
    ctx: &Context,
    h: Option<&K>,
    key: &Key,
) -> anyhow::Result<()> {
    match h {
        Some(h) if owned_copy_of(&ctx.tenant, h.meta(), K::KIND, key) => delete_host(ctx, h).await,
        _ => Ok(()),
    }
}

/// Brings the host copy of virtual object `v` in line, given the host
/// object currently at its host name (`h`, from a cache or a GET).
pub async fn sync_one<K: Mirrored>(
    ctx: &Context,
    v: &K,
    h: Option<&K>,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    sync_translated(ctx, v, K::translate(&ctx.tenant, v), h, since).await
}

/// [`sync_one`] with the translation of `v` already made (`translated`), for
/// kinds whose translation needs more than the object itself.
pub async fn sync_translated<K: Mirrored>(
    ctx: &Context,
    v: &K,
    translated: Result<K, TranslateError>,
    h: Option<&K>,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let id = VirtualIdentity::from_meta(K::KIND, v.meta())?;
    let mut desired = match translated {
        Ok(d) => d,
        Err(TranslateError::Forbidden(why)) => {
            ctx.warn(v, crate::event::REASON_SYNC_REFUSED, &why).await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    desired.meta_mut().owner_references = ctx.owner_references();
    let api = ctx.host_api::<K>();
    match is_managed(&ctx.tenant, h.map(|h| h.meta()), &id) {
        Ownership::Absent => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {
                ctx.metrics
                    .observe_latency(K::KIND, Direction::VirtualToHost, since.elapsed());
                Ok(None)
            }
            Err(e) if is_status(&e, 409) => {
                // Not in our cache: unlabelled (not ours) or just created.
                let name = desired.name_any();
                let live = api.get_opt(&name).await?;
                if let Ownership::NotOurs(why) =
                    is_managed(&ctx.tenant, live.as_ref().map(|h| h.meta()), &id)
                {
                    conflict(ctx, v, &name, &why).await?;
                    return Ok(None);
                }
                Err(e).context("creating the host copy (exists)")
            }
            Err(e) => {
                Err(e).with_context(|| format!("creating host {} {}", K::KIND, desired.name_any()))
            }
        },
        Ownership::Owned => {
            let h = h.expect("owned implies present");
            if let Some(mut out) = K::update(desired, h) {
                out.meta_mut().resource_version = h.meta().resource_version.clone();
                match api
                    .replace(&h.name_any(), &PostParams::default(), &out)
                    .await
                {
                    Ok(_) => {}
                    // The host refuses the change itself (a claim whose class
                    // cannot expand, an immutable field): retrying cannot
                    // help, the tenant is told why.
                    Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => {
                        let why = format!("the host refused the update: {}", s.message);
                        ctx.warn(v, crate::event::REASON_SYNC_REFUSED, &why).await?;
                        return Ok(None);
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("updating host {} {}", K::KIND, h.name_any())
                        });
                    }
                }
                ctx.metrics
                    .observe_latency(K::KIND, Direction::VirtualToHost, since.elapsed());
            }
            Ok(None)
        }
        Ownership::Stale { .. } => {
            let h = h.expect("stale implies present");
            delete_host::<K>(ctx, h).await?;
            // The host watch's delete event queues the key again.
            Ok(Some(Duration::from_secs(1)))
        }
        Ownership::NotOurs(why) => {
            conflict(ctx, v, &desired.name_any(), &why).await?;
            Ok(None)
        }
    }
}

/// Records a `SyncConflict` Warning Event on virtual object `v`.
pub async fn conflict<K>(
    ctx: &Context,
    v: &K,
    host_name: &str,
    why: &crate::names::Mismatch,
) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()>,
{
    tracing::warn!(kind = %K::kind(&()), host_name, ?why, "host object is not ours; leaving both alone");
    ctx.warn(
        v,
        REASON_SYNC_CONFLICT,
        &format!(
            "host {} {}/{host_name} exists and is not managed by this virtual cluster ({why:?}); not syncing",
            K::kind(&()),
            ctx.tenant.host_namespace()
        ),
    )
    .await
}

/// Syncs the virtual object (`namespace`, `name`) of kind `K` to the host
/// now, with live reads of both sides (the pod controller calls this for
/// each reference before creating a host pod). A missing virtual object is
/// not an error: the host pod waits for it, as a kubelet does.
pub async fn ensure<K: Mirrored>(ctx: &Context, key: &Key) -> anyhow::Result<()> {
    let Some(v) = ctx.virtual_api::<K>(&key.0).get_opt(&key.1).await? else {
        return Ok(());
    };
    let h = ctx
        .host_api::<K>()
        .get_opt(&host_name(&ctx.tenant, &key.0, &key.1))
        .await?;
    sync_one(ctx, &v, h.as_ref(), Instant::now()).await?;
    Ok(())
}
