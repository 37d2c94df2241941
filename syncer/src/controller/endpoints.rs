//! The Endpoints controller: the Endpoints of selector-less virtual
//! Services → host Endpoints of the same host name as the host Service
//! (translated by [`crate::endpoints::translate`]). Services with a
//! selector get their host Endpoints from the host's own endpoints
//! controller, so theirs are never copied.
//!
//! Per virtual key (namespace, name): the virtual Endpoints are *wanted* on
//! the host when a virtual Service of that name exists, is not being
//! deleted, has no selector, is not `ExternalName`, and is not the virtual
//! API server's own `default/kubernetes`. Wanted → [`mirror::sync_one`]
//! (create, update, replace a stale copy, or `SyncConflict` when an
//! unmanaged object holds the name); refused addresses → `SyncRefused`
//! Warning Event; not wanted → our host copy (if any) is deleted with a UID
//! precondition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::endpoints::{self as pure, TranslateError};
use crate::engine::{Context, Key, SyncerConfig, key_of, watch_store};
use crate::names::{Tenant, host_name};
use crate::pod::ReferenceKind;
use crate::queue::Queue;

use super::mirror::{self, Mirrored, owned_copy_of};

/// The kind name, as in metrics and markers.
pub const KIND: &str = pure::KIND;

/// Lets this controller use [`mirror::sync_one`] and [`mirror::delete_host`];
/// Endpoints are never run through [`mirror::run`] (whether they are wanted
/// depends on their Service, [`wanted`]), so `REFERENCE` and `sync_all` are
/// not consulted.
impl Mirrored for Endpoints {
    const KIND: &'static str = KIND;
    const REFERENCE: ReferenceKind = ReferenceKind::ConfigMap;
    fn sync_all(_config: &SyncerConfig) -> bool {
        false
    }
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, crate::error::TranslateError> {
        pure::translate(tenant, v)
    }
    fn needs_update(desired: &Self, host: &Self) -> bool {
        pure::needs_update(desired, host)
    }
}

/// Whether the Endpoints of virtual Service `svc` are synced to the host
/// (see the module docs).
pub fn wanted(svc: &Service) -> bool {
    let key = key_of(svc);
    let spec = svc.spec.clone().unwrap_or_default();
    svc.meta().deletion_timestamp.is_none()
        && !super::service::is_apiserver_service(&key)
        && spec.selector.unwrap_or_default().is_empty()
        && spec.type_.as_deref() != Some("ExternalName")
}

struct State {
    services: Store<Service>,
    vstore: Store<Endpoints>,
    hstore: Store<Endpoints>,
}

/// Runs the Endpoints controller.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue: Arc<Queue<Key>> = Arc::new(Queue::new());
    ctx.metrics.register_queue(KIND, &queue);
    let (services, sstream) = watch_store(
        Api::<Service>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    let (vstore, vstream, hstore, hstream) = super::watch_both::<Endpoints>(&ctx, "");
    let resync = super::resync_stores(KIND, vstore.clone(), hstore.clone(), Arc::clone(&queue));
    let state = Arc::new(State {
        services,
        vstore,
        hstore,
    });
    let ready = {
        let state = Arc::clone(&state);
        async move {
            state.services.wait_until_ready().await?;
            state.vstore.wait_until_ready().await?;
            state.hstore.wait_until_ready().await?;
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
            let (ctx, state) = (Arc::clone(&ctx), Arc::clone(&state));
            async move { reconcile(&ctx, &state, &key, since).await }
        },
    );
    // A Service's Endpoints key is the Service's own key, so the Service
    // watch queues like a virtual watch of the kind.
    tokio::select! {
        r = super::queue_virtual(sstream, Arc::clone(&queue), Arc::clone(&resync)) => r,
        r = super::queue_virtual(vstream, Arc::clone(&queue), Arc::clone(&resync)) => r,
        r = super::queue_host(hstream, KIND, Arc::clone(&queue), resync) => r,
        r = work => r,
    }
}

async fn reconcile(
    ctx: &Context,
    state: &State,
    key: &Key,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let svc = state.services.get(&ObjectRef::new(&key.1).within(&key.0));
    let v = state.vstore.get(&ObjectRef::new(&key.1).within(&key.0));
    let hname = host_name(&ctx.tenant, &key.0, &key.1);
    let h = state
        .hstore
        .get(&ObjectRef::new(&hname).within(ctx.tenant.host_namespace()));
    match (svc, v) {
        (Some(svc), Some(v)) if wanted(&svc) && v.meta().deletion_timestamp.is_none() => {
            match pure::translate(&ctx.tenant, &v) {
                Err(TranslateError::Forbidden(why)) => {
                    ctx.warn(v.as_ref(), crate::event::REASON_SYNC_REFUSED, &why)
                        .await?;
                    // A copy made before the addresses turned bad goes.
                    if let Some(h) = h
                        && owned_copy_of(&ctx.tenant, h.meta(), KIND, key)
                    {
                        mirror::delete_host::<Endpoints>(ctx, &h).await?;
                    }
                    Ok(None)
                }
                Err(e) => Err(e.into()),
                Ok(_) => mirror::sync_one(ctx, v.as_ref(), h.as_deref(), since).await,
            }
        }
        _ => {
            if let Some(h) = h
                && owned_copy_of(&ctx.tenant, h.meta(), KIND, key)
            {
                tracing::debug!(
                    name = h.name_any(),
                    "deleting host Endpoints no longer wanted"
                );
                mirror::delete_host::<Endpoints>(ctx, &h).await?;
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use kube::api::ObjectMeta;

    fn svc(ns: &str, name: &str, selector: bool, ty: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: selector.then(|| [("app".to_string(), "x".to_string())].into()),
                type_: Some(ty.into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn only_selector_less_tenant_services_have_their_endpoints_synced() {
        assert!(wanted(&svc("team", "db", false, "ClusterIP")));
        assert!(!wanted(&svc("team", "web", true, "ClusterIP")));
        assert!(!wanted(&svc("team", "ext", false, "ExternalName")));
        assert!(!wanted(&svc("default", "kubernetes", false, "ClusterIP")));
    }
}
