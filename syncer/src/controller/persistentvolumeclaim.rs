//! The PersistentVolumeClaim controller: every virtual claim is mirrored to
//! the host ([`super::mirror`], translation in
//! [`crate::persistentvolumeclaim`]), and what the host's binder and
//! provisioner do comes back: the host claim's status becomes the virtual
//! claim's, and a bound claim gets a virtual PersistentVolume (same name as
//! the host volume, claimRef the virtual claim) and its `spec.volumeName`,
//! as kube's PV controller binds a claim once. A virtual claim that goes
//! (or is recreated) takes its host claim (UID precondition; the host's
//! `kubernetes.io/pvc-protection` finalizer keeps it while a host pod uses
//! it) and its virtual volume with it.
//!
//! The host volume is read (GET, cluster-scoped) to show its reclaim policy
//! and CSI driver; a host that forbids it gets volumes built from the claim
//! alone, and is not asked again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::json;

use crate::engine::{Context, Key, SyncerConfig, is_status, watch_store};
use crate::error::TranslateError;
use crate::names::{Ownership, Tenant, VirtualIdentity, host_name, is_managed};
use crate::persistentvolumeclaim::{
    self as pvc, ANNOTATION_BIND_COMPLETED, ANNOTATION_BOUND_BY_CONTROLLER,
};
use crate::pod::ReferenceKind;

use super::mirror::{self, Mirrored};

/// The kind name, as in metrics and markers.
pub const KIND: &str = pvc::KIND;

impl Mirrored for PersistentVolumeClaim {
    const KIND: &'static str = KIND;
    // Claims are synced whether or not a pod uses them (a StatefulSet's
    // claims outlive its pods: `sync_all`), so the reference kind is never
    // looked up.
    const REFERENCE: ReferenceKind = ReferenceKind::Secret;
    fn sync_all(_: &SyncerConfig) -> bool {
        true
    }
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, TranslateError> {
        pvc::translate(tenant, v, &pvc::HostStorage::default())
    }
    fn needs_update(desired: &Self, host: &Self) -> bool {
        pvc::update(desired, host).is_some()
    }
    fn update(desired: Self, host: &Self) -> Option<Self> {
        pvc::update(&desired, host)
    }
}

struct Stores {
    /// The host's StorageClasses, when the host lets the syncer list them.
    classes: Option<Store<StorageClass>>,
    claims: Store<PersistentVolumeClaim>,
    host: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    /// Cleared once the host forbids reading its volumes.
    read_host_volumes: AtomicBool,
}

/// Runs the PersistentVolumeClaim controller.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue = Arc::new(crate::queue::Queue::default());
    ctx.metrics.register_queue(KIND, &queue);
    let (vstore, vstream, hstore, hstream) = super::watch_both::<PersistentVolumeClaim>(&ctx, "");
    // The volumes the syncer shows for bound claims, and with the tenant's
    // volumes synced to the host, those too (a claim they pre-bind is
    // pinned to them).
    let volume_selector = if ctx.config.persistent_volumes.is_some() {
        String::new()
    } else {
        format!("{}={}", crate::names::LABEL_MANAGED_BY, ctx.tenant.name())
    };
    let (volumes, volume_stream) = watch_store(
        Api::<PersistentVolume>::all(ctx.virtual_client.clone()),
        watcher::Config::default().labels(&volume_selector),
    );
    // Which classes provision and which is the default decide what a
    // claim may ask for (`pvc::translate`); unknown when the host forbids
    // listing them.
    let host_classes = Api::<StorageClass>::all(ctx.host_client.clone());
    // With the tenant's own classes synced to the host, claims name those
    // and the host's do not matter.
    let listable = !ctx.config.storage_classes_to_host
        && match host_classes
            .list_metadata(&ListParams::default().limit(1))
            .await
        {
            Ok(_) => true,
            Err(e) if is_status(&e, 403) => false,
            Err(e) => return Err(e).context("listing host StorageClasses"),
        };
    let (classes, class_stream) = if listable {
        let (store, stream) = watch_store(host_classes, watcher::Config::default());
        (Some(store), Some(stream))
    } else {
        (None, None)
    };
    let stores = Arc::new(Stores {
        classes,
        claims: vstore.clone(),
        host: hstore.clone(),
        volumes: volumes.clone(),
        read_host_volumes: AtomicBool::new(true),
    });
    let resync = {
        let claims = super::resync_stores(KIND, vstore.clone(), hstore.clone(), Arc::clone(&queue));
        let (volumes, queue, tenant) = (volumes.clone(), Arc::clone(&queue), ctx.tenant.clone());
        Arc::new(move || {
            claims();
            for pv in volumes.state() {
                if let Some(key) = claim_of_volume(&pv, &tenant) {
                    queue.add(key);
                }
            }
        }) as super::Resync
    };
    let ready = {
        let s = Arc::clone(&stores);
        async move {
            s.claims.wait_until_ready().await?;
            s.host.wait_until_ready().await?;
            s.volumes.wait_until_ready().await?;
            if let Some(c) = &s.classes {
                c.wait_until_ready().await?;
            }
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
            let (ctx, stores) = (Arc::clone(&ctx), Arc::clone(&stores));
            async move { reconcile(&ctx, &stores, &key, since).await }
        },
    );
    let volume_events = {
        let (queue, tenant) = (Arc::clone(&queue), ctx.tenant.clone());
        crate::engine::drive(volume_stream, move |ev| {
            if let watcher::Event::Apply(pv) | watcher::Event::Delete(pv) = ev
                && let Some(key) = claim_of_volume(&pv, &tenant)
            {
                queue.add(key);
            }
        })
    };
    let class_resync = Arc::clone(&resync);
    let class_events = async move {
        match class_stream {
            // A class change may admit or refuse waiting claims: resync.
            Some(stream) => {
                let resync = class_resync;
                crate::engine::drive(stream, move |ev| {
                    if let watcher::Event::Apply(_) | watcher::Event::Delete(_) = ev {
                        resync();
                    }
                })
                .await
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = class_events => r,
        r = super::queue_virtual(vstream, Arc::clone(&queue), Arc::clone(&resync)) => r,
        r = super::queue_host(hstream, KIND, Arc::clone(&queue), resync) => r,
        r = volume_events => r,
        r = work => r,
    }
}

async fn reconcile(
    ctx: &Context,
    stores: &Stores,
    key: &Key,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let v = stores.claims.get(&ObjectRef::new(&key.1).within(&key.0));
    let hname = host_name(&ctx.tenant, &key.0, &key.1);
    let h = stores
        .host
        .get(&ObjectRef::new(&hname).within(ctx.tenant.host_namespace()));
    let live = v
        .as_ref()
        .filter(|v| v.metadata.deletion_timestamp.is_none());
    // Virtual volumes of this key that no longer stand for the live claim.
    for pv in stores.volumes.state() {
        let Some((ns, name, uid)) = pvc::volume_claim(&pv, &ctx.tenant) else {
            continue;
        };
        let current = live.is_some_and(|v| v.metadata.uid.as_deref() == Some(uid.as_str()))
            && h.as_deref().and_then(pvc::bound_volume) == pv.metadata.name.as_deref();
        if (ns.as_str(), name.as_str()) == (key.0.as_str(), key.1.as_str()) && !current {
            delete_volume(ctx, &pv).await?;
        }
    }
    let Some(v) = live else {
        mirror::delete_if_owned(ctx, h.as_deref(), key).await?;
        return Ok(None);
    };
    let id = VirtualIdentity::from_meta(KIND, &v.metadata)?;
    let owned = h
        .as_ref()
        .filter(|h| is_managed(&ctx.tenant, Some(&h.metadata), &id) == Ownership::Owned);
    let classes = stores.classes.as_ref().map(|store| {
        store
            .state()
            .iter()
            .filter(|c| !crate::storageclass::is_tenant_copy(&c.metadata))
            .map(|c| {
                let default = c.metadata.annotations.as_ref().is_some_and(|a| {
                    crate::storageclass::DEFAULT_CLASS_ANNOTATIONS
                        .iter()
                        .any(|k| a.get(*k).is_some_and(|v| v == "true"))
                });
                (c.name_any(), c.provisioner.clone(), default)
            })
            .collect::<Vec<_>>()
    });
    let tenant_volume = ctx
        .config
        .persistent_volumes
        .is_some()
        .then(|| tenant_volume_of(&ctx.tenant, &stores.volumes, v))
        .flatten();
    let storage = pvc::HostStorage {
        bound_volume: owned
            .and_then(|h| h.spec.as_ref())
            .and_then(|s| s.volume_name.as_deref()),
        classes: classes.as_deref(),
        classes_to_host: ctx.config.storage_classes_to_host,
        tenant_volume: tenant_volume.as_deref(),
    };
    let translated = pvc::translate(&ctx.tenant, v, &storage);
    let next = mirror::sync_translated(ctx, v.as_ref(), translated, h.as_deref(), since).await?;
    if let Some(h) = owned {
        reflect(ctx, stores, v, h, tenant_volume.as_deref()).await?;
    }
    Ok(next)
}

/// The virtual claim a virtual volume concerns: the claim a volume the
/// syncer shows stands for, or the claim a tenant's volume is pre-bound to.
fn claim_of_volume(pv: &PersistentVolume, tenant: &Tenant) -> Option<Key> {
    if let Some((ns, name, _)) = pvc::volume_claim(pv, tenant) {
        return Some((ns, name));
    }
    let r = pv.spec.as_ref()?.claim_ref.as_ref()?;
    Some((r.namespace.clone()?, r.name.clone()?))
}

/// The tenant's own volume pre-bound to virtual claim `claim` (its
/// claimRef names the claim, and the claim's uid when it names one), not
/// being deleted.
fn tenant_volume_of(
    tenant: &Tenant,
    volumes: &Store<PersistentVolume>,
    claim: &PersistentVolumeClaim,
) -> Option<String> {
    volumes
        .state()
        .into_iter()
        .find(|pv| {
            let r = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
            pvc::volume_claim(pv, tenant).is_none()
                && pv.metadata.deletion_timestamp.is_none()
                && r.is_some_and(|r| {
                    r.namespace == claim.metadata.namespace
                        && r.name == claim.metadata.name
                        && r.uid
                            .as_ref()
                            .is_none_or(|u| Some(u) == claim.metadata.uid.as_ref())
                })
        })
        .map(|pv| pv.name_any())
}

/// Brings virtual claim `v` in line with its host claim `h`: the virtual
/// volume first (so `spec.volumeName` never names a missing volume), then
/// the binding and the status.
async fn reflect(
    ctx: &Context,
    stores: &Stores,
    v: &PersistentVolumeClaim,
    h: &PersistentVolumeClaim,
    tenant_volume: Option<&str>,
) -> anyhow::Result<()> {
    let ns = v.namespace().unwrap_or_default();
    let claims = ctx.virtual_api::<PersistentVolumeClaim>(&ns);
    let uid_test = json!({"op": "test", "path": "/metadata/uid", "value": v.metadata.uid});
    if let Some(bound) = pvc::bound_volume(h) {
        // Bound to the host copy of the tenant's own volume: the claim
        // names that volume; else the syncer shows one of the host's name.
        let volume = match tenant_volume {
            Some(t) if crate::persistentvolume::host_volume_name(&ctx.tenant, t) == bound => t,
            _ => {
                let host_volume = host_volume(ctx, stores, bound).await;
                if let Some(desired) = pvc::virtual_volume(&ctx.tenant, v, h, host_volume.as_ref())
                {
                    ensure_volume(ctx, stores, desired).await?;
                }
                bound
            }
        };
        let spec_volume = v.spec.as_ref().and_then(|s| s.volume_name.as_deref());
        if spec_volume.is_none_or(str::is_empty) {
            let ann = v.metadata.annotations.as_ref();
            let mut ops = vec![uid_test.clone()];
            if ann.is_none() {
                ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
            }
            for key in [ANNOTATION_BIND_COMPLETED, ANNOTATION_BOUND_BY_CONTROLLER] {
                let path = format!("/metadata/annotations/{}", key.replace('/', "~1"));
                ops.push(json!({"op": "add", "path": path, "value": "yes"}));
            }
            ops.push(json!({"op": "add", "path": "/spec/volumeName", "value": volume}));
            claims
                .patch(&v.name_any(), &PatchParams::default(), &json_patch(ops)?)
                .await
                .with_context(|| format!("binding virtual claim {ns}/{}", v.name_any()))?;
        }
    }
    let status = pvc::reflect_status(h);
    if v.status.as_ref() != Some(&status) {
        let ops = vec![
            uid_test,
            json!({"op": "add", "path": "/status", "value": status}),
        ];
        claims
            .patch_status(&v.name_any(), &PatchParams::default(), &json_patch(ops)?)
            .await
            .with_context(|| {
                format!("writing the status of virtual claim {ns}/{}", v.name_any())
            })?;
    }
    Ok(())
}

fn json_patch(ops: Vec<serde_json::Value>) -> anyhow::Result<Patch<serde_json::Value>> {
    Ok(Patch::Json(serde_json::from_value(
        serde_json::Value::Array(ops),
    )?))
}

/// The host volume `name`, when the host lets the syncer read volumes.
async fn host_volume(ctx: &Context, stores: &Stores, name: &str) -> Option<PersistentVolume> {
    if !stores.read_host_volumes.load(Ordering::Relaxed) {
        return None;
    }
    match Api::<PersistentVolume>::all(ctx.host_client.clone())
        .get_opt(name)
        .await
    {
        Ok(pv) => pv,
        Err(e) => {
            if is_status(&e, 403) {
                tracing::info!(
                    "the host forbids reading PersistentVolumes; virtual volumes show the claim's view"
                );
                stores.read_host_volumes.store(false, Ordering::Relaxed);
            }
            None
        }
    }
}

/// Creates or updates virtual volume `desired`; a tenant-made volume of
/// the same name is left alone.
async fn ensure_volume(
    ctx: &Context,
    stores: &Stores,
    desired: PersistentVolume,
) -> anyhow::Result<()> {
    let api = Api::<PersistentVolume>::all(ctx.virtual_client.clone());
    let name = desired.name_any();
    let current = match stores.volumes.get(&ObjectRef::new(&name)) {
        Some(pv) => Some(pv.as_ref().clone()),
        None => api.get_opt(&name).await?,
    };
    let Some(current) = current else {
        let created = match api.create(&PostParams::default(), &desired).await {
            Ok(pv) => pv,
            Err(e) if is_status(&e, 409) => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("creating virtual volume {name}")),
        };
        // The status is the volume's own subresource.
        let status = json!({"status": desired.status});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .with_context(|| {
                format!(
                    "writing the status of virtual volume {}",
                    created.name_any()
                )
            })?;
        return Ok(());
    };
    if pvc::volume_claim(&current, &ctx.tenant).is_none() {
        tracing::warn!(volume = %name, "a virtual PersistentVolume not made by the syncer has the host volume's name; leaving it");
        return Ok(());
    }
    if pvc::volume_needs_update(&desired, &current) {
        let mut out = desired.clone();
        out.metadata.resource_version = current.metadata.resource_version.clone();
        out.status = current.status.clone();
        api.replace(&name, &PostParams::default(), &out)
            .await
            .with_context(|| format!("updating virtual volume {name}"))?;
        if current.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
            let status = json!({"status": desired.status});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await?;
        }
    }
    Ok(())
}

/// The finalizer the virtual API server's StorageObjectInUseProtection
/// admission puts on every PersistentVolume.
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

async fn delete_volume(ctx: &Context, pv: &PersistentVolume) -> anyhow::Result<()> {
    let api = Api::<PersistentVolume>::all(ctx.virtual_client.clone());
    // The copy of a host volume that is gone protects nothing: the
    // pv-protection finalizer would keep it (still showing Bound)
    // Terminating for ever.
    if pv.finalizers().iter().any(|f| f == PV_PROTECTION) {
        let kept: Vec<&String> = pv
            .finalizers()
            .iter()
            .filter(|f| *f != PV_PROTECTION)
            .collect();
        let patch = json!({"metadata": {"finalizers": kept}});
        match api
            .patch(
                &pv.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("releasing virtual volume {}", pv.name_any()));
            }
        }
    }
    crate::engine::delete_guarded(&api, pv, "virtual volume").await
}
