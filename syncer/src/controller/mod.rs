//! One I/O module per synced kind, each exposing
//! `pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()>` (see
//! [`crate::engine`] for the shared shape), and [`run_all`], the
//! registration table that runs them together.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use crate::engine::{Context, Key, drive, key_of, run_workers};
use crate::pod::{Reference, ReferenceKind};
use crate::queue::Queue;

pub mod compact;
pub mod configmap;
pub mod connect;
pub mod endpoints;
pub mod event;
pub mod host_class;
pub mod ingress;
pub mod mirror;
pub mod networkpolicy;
pub mod node;
pub mod persistentvolume;
pub mod persistentvolumeclaim;
pub mod pod;
pub mod poddisruptionbudget;
pub mod priorityclass;
pub mod resource_metrics;
pub mod secret;
pub mod service;
pub mod storageclass;
pub mod to_host;

/// A cluster-scoped kind a syncer controller can watch, cache and write on
/// either side (the bounds [`host_class::ShownFromHost`] and
/// [`to_host::SyncedToHost`] share).
pub trait ClusterKind:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> ClusterKind for K where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// One synced kind: its name (as in metrics) and its controller.
pub struct ControllerDef {
    /// The kind, e.g. `Pod`.
    pub kind: &'static str,
    /// Runs the kind's controller until it fails.
    pub run: fn(Arc<Context>) -> BoxFuture<'static, anyhow::Result<()>>,
}

/// Every controller [`run_all`] starts (registration is data, STYLE.md 12).
pub static CONTROLLERS: &[ControllerDef] = &[
    ControllerDef {
        kind: crate::pod::KIND,
        run: |ctx| Box::pin(pod::run(ctx)),
    },
    ControllerDef {
        kind: configmap::KIND,
        run: |ctx| Box::pin(configmap::run(ctx)),
    },
    ControllerDef {
        kind: secret::KIND,
        run: |ctx| Box::pin(secret::run(ctx)),
    },
    ControllerDef {
        kind: persistentvolumeclaim::KIND,
        run: |ctx| Box::pin(persistentvolumeclaim::run(ctx)),
    },
    ControllerDef {
        kind: service::KIND,
        run: |ctx| Box::pin(service::run(ctx)),
    },
    ControllerDef {
        kind: crate::storageclass::KIND,
        run: |ctx| Box::pin(host_class::run::<k8s_openapi::api::storage::v1::StorageClass>(ctx)),
    },
    ControllerDef {
        kind: crate::storageclass::KIND,
        run: |ctx| {
            Box::pin(to_host::run::<k8s_openapi::api::storage::v1::StorageClass>(
                ctx,
            ))
        },
    },
    ControllerDef {
        kind: crate::persistentvolume::KIND,
        run: |ctx| Box::pin(to_host::run::<k8s_openapi::api::core::v1::PersistentVolume>(ctx)),
    },
    ControllerDef {
        kind: "CSIDriver",
        run: |ctx| {
            Box::pin(host_class::run::<k8s_openapi::api::storage::v1::CSIDriver>(
                ctx,
            ))
        },
    },
    ControllerDef {
        kind: "CSINode",
        run: |ctx| {
            Box::pin(host_class::run::<k8s_openapi::api::storage::v1::CSINode>(
                ctx,
            ))
        },
    },
    ControllerDef {
        kind: ingress::KIND,
        run: |ctx| Box::pin(ingress::run(ctx)),
    },
    ControllerDef {
        kind: networkpolicy::KIND,
        run: |ctx| Box::pin(networkpolicy::run(ctx)),
    },
    ControllerDef {
        kind: poddisruptionbudget::KIND,
        run: |ctx| Box::pin(poddisruptionbudget::run(ctx)),
    },
    ControllerDef {
        kind: priorityclass::KIND,
        run: |ctx| {
            Box::pin(to_host::run::<
                k8s_openapi::api::scheduling::v1::PriorityClass,
            >(ctx))
        },
    },
    ControllerDef {
        kind: "IngressClass",
        run: |ctx| {
            Box::pin(host_class::run::<
                k8s_openapi::api::networking::v1::IngressClass,
            >(ctx))
        },
    },
    ControllerDef {
        kind: endpoints::KIND,
        run: |ctx| Box::pin(endpoints::run(ctx)),
    },
    ControllerDef {
        kind: event::KIND,
        run: |ctx| Box::pin(event::run(ctx)),
    },
];

/// Runs every controller of [`CONTROLLERS`] concurrently; returns the first
/// error (the others are dropped with it).
pub async fn run_all(ctx: Arc<Context>) -> anyhow::Result<()> {
    let futures = CONTROLLERS.iter().map(|c| {
        let ctx = Arc::clone(&ctx);
        let fut = (c.run)(ctx);
        let kind = c.kind;
        Box::pin(async move {
            let res = fut.await;
            if let Err(e) = &res {
                tracing::error!(kind, error = format!("{e:#}"), "controller stopped");
            }
            res
        })
    });
    let (res, _, _) = futures::future::select_all(futures).await;
    res
}

/// The two caches of a kind synced one to one: every virtual object (all
/// namespaces) and the host copies this tenant manages (its host namespace,
/// `vkube.dev/managed-by=VC`, plus label selector terms `host_extra`, e.g.
/// `!some-label`; empty for none), with the watch streams that fill them.
#[allow(clippy::type_complexity)]
pub fn watch_both<K>(
    ctx: &Context,
    host_extra: &str,
) -> (
    Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>,
    Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>,
)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut selector = ctx.managed_selector();
    if !host_extra.is_empty() {
        selector = format!("{selector},{host_extra}");
    }
    let (vstore, vstream) = crate::engine::watch_store(
        kube::Api::<K>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    let (hstore, hstream) = crate::engine::watch_store(
        ctx.host_api::<K>(),
        watcher::Config::default().labels(&selector),
    );
    (vstore, vstream, hstore, hstream)
}

/// A full comparison of both sides: queues every key either side knows.
pub type Resync = Arc<dyn Fn() + Send + Sync>;

/// The [`Resync`] of a two-sided controller: every virtual object of
/// `vstore` under its own key and every host object of `hstore` under the
/// virtual key its `vkube.dev/object-*` annotations name (objects of another
/// kind than `kind` are skipped).
pub fn resync_stores<V, H>(
    kind: &'static str,
    vstore: Store<V>,
    hstore: Store<H>,
    queue: Arc<Queue<Key>>,
) -> Resync
where
    V: ResourceExt + Clone + Send + Sync + 'static,
    V::DynamicType: Eq + Hash + Clone + Send + Sync,
    H: ResourceExt + Clone + Send + Sync + 'static,
    H::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    Arc::new(move || {
        for v in vstore.state() {
            queue.add(key_of(v.as_ref()));
        }
        for h in hstore.state() {
            if let Some(k) = mirror::virtual_key(h.meta(), kind) {
                queue.add(k);
            }
        }
    })
}

/// Drives a virtual-side watch into `queue`: every object under its own
/// key; the end of each (re)list runs `resync`, so a relist after a watch
/// gap compares both sides in full. Returns when the stream ends (an error).
pub async fn queue_virtual<K, S>(
    stream: S,
    queue: Arc<Queue<Key>>,
    resync: Resync,
) -> anyhow::Result<()>
where
    K: ResourceExt,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    drive(stream, move |ev| match ev {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
            queue.add(key_of(&o));
        }
        watcher::Event::InitDone => resync(),
        watcher::Event::Init => {}
    })
    .await
}

/// Drives a host-side watch into `queue`: every object under the virtual
/// key its markers name (objects of another `kind` or without markers are
/// ignored); the end of each (re)list runs `resync`.
pub async fn queue_host<K, S>(
    stream: S,
    kind: &'static str,
    queue: Arc<Queue<Key>>,
    resync: Resync,
) -> anyhow::Result<()>
where
    K: ResourceExt,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    drive(stream, move |ev| match ev {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
            if let Some(k) = mirror::virtual_key(o.meta(), kind) {
                queue.add(k);
            }
        }
        watcher::Event::InitDone => resync(),
        watcher::Event::Init => {}
    })
    .await
}

/// Once `ready` resolves (the controller's stores have listed), runs
/// `reconcile` on the engine's workers ([`run_workers`]) and a full
/// `resync` every `ctx.config.resync_period`. Returns only with an error.
pub async fn work_with_resync<F, Fut>(
    kind: &'static str,
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    ready: impl Future<Output = anyhow::Result<()>>,
    resync: Resync,
    reconcile: F,
) -> anyhow::Result<()>
where
    F: Fn(Key, Instant) -> Fut,
    Fut: Future<Output = anyhow::Result<Option<Duration>>>,
{
    ready.await?;
    let period = ctx.config.resync_period;
    let periodic = async {
        loop {
            tokio::time::sleep(period).await;
            resync();
        }
    };
    tokio::select! {
        r = run_workers(kind, ctx, queue, reconcile) => r,
        () = periodic => unreachable!("the resync loop never ends"),
    }
}

/// What kind of virtual object holds references ([`References`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A Pod (its volumes, env, imagePullSecrets).
    Pod,
    /// An Ingress (its TLS Secrets).
    Ingress,
}

/// Which virtual ConfigMaps and Secrets the virtual pods and Ingresses
/// reference (the "sync only what is used" rule), kept up to date from the
/// pod and Ingress controllers' virtual watches, plus the queues of the
/// ConfigMap and Secret controllers, which get the key of every reference
/// that appears or goes.
#[derive(Default)]
pub struct References {
    by_holder: Mutex<HashMap<(Holder, Key), Vec<Reference>>>,
    counts: Mutex<HashMap<Reference, usize>>,
    /// Queue of the ConfigMap controller.
    pub configmaps: Arc<Queue<Key>>,
    /// Queue of the Secret controller.
    pub secrets: Arc<Queue<Key>>,
}

impl References {
    /// Records that object `key` of kind `holder` now references exactly
    /// `refs`; queues every reference whose use count went to or from zero.
    pub fn set(&self, holder: Holder, key: Key, refs: Vec<Reference>) {
        let old = {
            let mut by_holder = self.by_holder.lock().unwrap_or_else(|p| p.into_inner());
            if refs.is_empty() {
                by_holder.remove(&(holder, key))
            } else {
                by_holder.insert((holder, key), refs.clone())
            }
        }
        .unwrap_or_default();
        if old == refs {
            return;
        }
        let mut changed = BTreeSet::new();
        {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            for r in &old {
                if let Some(n) = counts.get_mut(r) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(r);
                        changed.insert(r.clone());
                    }
                }
            }
            for r in &refs {
                let n = counts.entry(r.clone()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    changed.insert(r.clone());
                }
            }
        }
        for r in changed {
            self.queue(r.kind).add((r.namespace, r.name));
        }
    }

    /// Whether any pod or Ingress references (`kind`, namespace, name).
    pub fn is_referenced(&self, kind: ReferenceKind, key: &Key) -> bool {
        let r = Reference {
            kind,
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&r)
    }

    /// Forgets holders of kind `holder` that are not in `alive` (after a
    /// watch relist).
    pub fn retain(&self, holder: Holder, alive: impl Fn(&Key) -> bool) {
        let gone: Vec<Key> = self
            .by_holder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|(h, k)| *h == holder && !alive(k))
            .map(|(_, k)| k.clone())
            .collect();
        for k in gone {
            self.set(holder, k, Vec::new());
        }
    }

    /// The queue of the controller of `kind`.
    pub fn queue(&self, kind: ReferenceKind) -> &Arc<Queue<Key>> {
        match kind {
            ReferenceKind::ConfigMap => &self.configmaps,
            ReferenceKind::Secret => &self.secrets,
        }
    }
}

/// The references of virtual pod `pod` as [`crate::pod::translate`] finds
/// them; none for a pod that is refused or lacks identity.
pub fn references_of(ctx: &Context, pod: &Pod) -> Vec<Reference> {
    crate::pod::translate(&ctx.tenant, pod, &ctx.config.translate_options())
        .map(|t| t.references)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: ReferenceKind, name: &str) -> Reference {
        Reference {
            kind,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn key(name: &str) -> Key {
        ("ns".into(), name.into())
    }

    #[test]
    fn references_are_counted_per_pod_and_queue_only_on_first_and_last_use() {
        let refs = References::default();
        let cm = r(ReferenceKind::ConfigMap, "cfg");
        let secret = r(ReferenceKind::Secret, "pw");
        refs.set(Holder::Pod, key("a"), vec![cm.clone(), secret.clone()]);
        assert!(refs.is_referenced(ReferenceKind::ConfigMap, &key("cfg")));
        assert!(refs.is_referenced(ReferenceKind::Secret, &key("pw")));
        assert!(
            !refs.is_referenced(ReferenceKind::Secret, &key("cfg")),
            "kind matters"
        );
        assert_eq!((refs.configmaps.len(), refs.secrets.len()), (1, 1));
        refs.set(Holder::Pod, key("b"), vec![cm.clone()]);
        assert_eq!(refs.configmaps.len(), 1, "second user: no new work");
        refs.set(Holder::Pod, key("a"), Vec::new());
        assert!(
            refs.is_referenced(ReferenceKind::ConfigMap, &key("cfg")),
            "b still uses it"
        );
        assert!(!refs.is_referenced(ReferenceKind::Secret, &key("pw")));
        refs.set(Holder::Ingress, key("b"), vec![secret.clone()]);
        refs.retain(Holder::Pod, |k| k.1 != "b");
        assert!(
            refs.is_referenced(ReferenceKind::Secret, &key("pw")),
            "the Ingress b is not a pod"
        );
        assert!(!refs.is_referenced(ReferenceKind::ConfigMap, &key("cfg")));
    }
}
