//! The Ingress controller: every virtual Ingress mirrored to the host
//! ([`super::mirror`], translation in [`crate::ingress`]), its TLS Secrets
//! synced with it (as pod references are, [`super::References`]), and the
//! host's `status.loadBalancer` (the address the host's ingress controller
//! publishes) written back. Annotations an option denies are dropped with a
//! Warning Event on the virtual Ingress.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::json;

use crate::engine::{Context, Key, SyncerConfig, drive, key_of};
use crate::error::TranslateError;
use crate::ingress::{self as ing, IngressOptions};
use crate::names::{Ownership, Tenant, VirtualIdentity, host_name, is_managed};
use crate::pod::{Reference, ReferenceKind};

use super::Holder;
use super::mirror::{self, Mirrored};

/// The kind name, as in metrics and markers.
pub const KIND: &str = ing::KIND;

impl Mirrored for Ingress {
    const KIND: &'static str = KIND;
    // Every Ingress is synced (`sync_all`): the reference kind is never
    // looked up.
    const REFERENCE: ReferenceKind = ReferenceKind::Secret;
    fn sync_all(_: &SyncerConfig) -> bool {
        true
    }
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, TranslateError> {
        ing::translate(tenant, v, &IngressOptions::default()).map(|t| t.ingress)
    }
    fn needs_update(desired: &Self, host: &Self) -> bool {
        ing::needs_update(desired, host)
    }
}

/// Runs the Ingress controller.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue = Arc::new(crate::queue::Queue::default());
    ctx.metrics.register_queue(KIND, &queue);
    let (vstore, vstream, hstore, hstream) = super::watch_both::<Ingress>(&ctx, "");
    let resync = super::resync_stores(KIND, vstore.clone(), hstore.clone(), Arc::clone(&queue));
    let ready = {
        let (vs, hs) = (vstore.clone(), hstore.clone());
        async move {
            vs.wait_until_ready().await?;
            hs.wait_until_ready().await?;
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
            let (ctx, vs, hs) = (Arc::clone(&ctx), vstore.clone(), hstore.clone());
            async move { reconcile(&ctx, &vs, &hs, &key, since).await }
        },
    );
    // The TLS Secrets each Ingress uses, kept as pods' references are.
    let references = {
        let (ctx, queue, resync, vs) = (
            Arc::clone(&ctx),
            Arc::clone(&queue),
            Arc::clone(&resync),
            vstore.clone(),
        );
        drive(vstream, move |ev| match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let k = key_of(&o);
                ctx.references
                    .set(Holder::Ingress, k.clone(), secrets_of(&ctx, &o));
                queue.add(k);
            }
            watcher::Event::Delete(o) => {
                let k = key_of(&o);
                ctx.references.set(Holder::Ingress, k.clone(), Vec::new());
                queue.add(k);
            }
            watcher::Event::InitDone => {
                ctx.references.retain(Holder::Ingress, |k| {
                    vs.get(&ObjectRef::new(&k.1).within(&k.0)).is_some()
                });
                resync();
            }
            watcher::Event::Init => {}
        })
    };
    tokio::select! {
        r = references => r,
        r = super::queue_host(hstream, KIND, Arc::clone(&queue), resync) => r,
        r = work => r,
    }
}

/// The Secrets Ingress `o` needs on the host (none while it is refused or
/// being deleted).
fn secrets_of(ctx: &Context, o: &Ingress) -> Vec<Reference> {
    if o.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let ns = o.namespace().unwrap_or_default();
    ing::translate(&ctx.tenant, o, &ctx.config.ingress)
        .map(|t| {
            t.secrets
                .into_iter()
                .map(|name| Reference {
                    kind: ReferenceKind::Secret,
                    namespace: ns.clone(),
                    name,
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn reconcile(
    ctx: &Context,
    vstore: &Store<Ingress>,
    hstore: &Store<Ingress>,
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
    let translated = ing::translate(&ctx.tenant, &v, &ctx.config.ingress);
    if let Ok(t) = &translated
        && !t.dropped_annotations.is_empty()
    {
        let why = format!(
            "annotations not copied to the host (denied by the syncer's options): {}",
            t.dropped_annotations.join(", ")
        );
        ctx.warn(v.as_ref(), crate::event::REASON_SYNC_REFUSED, &why)
            .await?;
    }
    let next = mirror::sync_translated(
        ctx,
        v.as_ref(),
        translated.map(|t| t.ingress),
        h.as_deref(),
        since,
    )
    .await?;
    let id = VirtualIdentity::from_meta(KIND, &v.metadata)?;
    if let Some(h) = h
        && is_managed(&ctx.tenant, Some(&h.metadata), &id) == Ownership::Owned
    {
        let status = ing::reflect_status(&h);
        let current = v.status.clone().unwrap_or_default();
        if current != status {
            let ops = json!([
                {"op": "test", "path": "/metadata/uid", "value": v.metadata.uid},
                {"op": "add", "path": "/status", "value": status},
            ]);
            ctx.virtual_api::<Ingress>(&key.0)
                .patch_status(
                    &v.name_any(),
                    &PatchParams::default(),
                    &Patch::Json::<()>(serde_json::from_value(ops)?),
                )
                .await
                .with_context(|| format!("writing the status of Ingress {}/{}", key.0, key.1))?;
        }
    }
    Ok(next)
}
