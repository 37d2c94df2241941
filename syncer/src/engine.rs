//! The syncer's I/O engine: configuration, the shared [`Context`], and
//! [`Syncer::run`], which prepares the host namespace and runs every
//! per-kind controller (`crate::controller::*`) concurrently.
//!
//! Each controller follows one shape (STYLE.md items 10 and 13): reflector
//! stores of both sides (virtual: all namespaces; host: only the tenant's
//! host namespace with label selector `vkube.dev/managed-by=VC`), a
//! [`Queue`] of virtual keys fed by watch events of both sides and by a full
//! resync on start and every [`SyncerConfig::resync_period`], and
//! level-based reconciles that load both sides and decide with pure
//! functions. Reconcile errors back off per key ([`crate::queue::backoff`]);
//! watch errors are retried by kube-runtime's default backoff, so either API
//! server may restart without anything being lost.

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;
use crate::names::Tenant;
use crate::pod::TranslateOptions;
use crate::queue::Queue;
use crate::security::PodSecurityLevel;

/// The default [`SyncerConfig::resync_period`]: 5 minutes.
pub const DEFAULT_RESYNC_PERIOD: Duration = Duration::from_secs(300);

/// Name of the component recorded in the Events the syncer writes
/// (`source.component`, `reportingComponent`).
pub const COMPONENT: &str = crate::event::SYNCER_COMPONENT;

/// What the syncer syncs and how.
#[derive(Debug, Clone)]
pub struct SyncerConfig {
    /// The virtual cluster and its host namespace.
    pub tenant: Tenant,
    /// Sync every virtual ConfigMap, not only those synced pods reference.
    pub sync_all_configmaps: bool,
    /// Sync every virtual Secret, not only those synced pods reference.
    pub sync_all_secrets: bool,
    /// The Pod Security Standards level enforced before a pod is synced
    /// (default `baseline`); pods violating it are refused with a
    /// `SyncRefused` Warning Event and status.
    pub pod_security: PodSecurityLevel,
    /// The host service account host pods run as; `None` means
    /// `vkube-workload-VC`, created (with `automountServiceAccountToken:
    /// false`) in the host namespace if missing. A named one must exist.
    pub host_service_account: Option<String>,
    /// Set on every host object the syncer creates, so deleting that owner
    /// (the tenant's install) lets the host's garbage collector remove
    /// everything ([`resolve_owner`] builds one).
    pub owner: Option<OwnerReference>,
    /// `(host, port)` host pods get as `KUBERNETES_SERVICE_HOST`/`_PORT`, so
    /// in-pod clients reach the *virtual* API server; `None` sets neither.
    pub kubernetes_service: Option<(String, u16)>,
    /// Which host nodes the tenant sees as virtual Nodes (default
    /// [`NodeVisibility::Auto`]).
    pub nodes: crate::node::NodeVisibility,
    /// The tenant's DNS server host pods resolve through
    /// ([`crate::pod::apply_tenant_dns`]); `None` leaves pods' DNS settings
    /// as the tenant wrote them (they then use the host's cluster DNS).
    pub dns: Option<crate::pod::TenantDns>,
    /// Deliver pods' service-account tokens through one host Secret per
    /// pod (a write more per pod) instead of the host pod's annotations
    /// and a downwardAPI volume (the default; no host object but the pod).
    pub token_secrets: bool,
    /// How Ingresses are translated (the annotations never copied).
    pub ingress: crate::ingress::IngressOptions,
    /// Sync the tenant's PriorityClasses to the host (cluster-scoped
    /// writes) with these options; `None` (the default) syncs none and
    /// host pods name no class.
    pub priority_classes: Option<crate::priorityclass::PriorityClassOptions>,
    /// Sync the tenant's StorageClasses to the host under per-tenant names
    /// (claims then name those) instead of showing the host's classes in
    /// the tenant (the default).
    pub storage_classes_to_host: bool,
    /// The provisioners a tenant StorageClass synced to the host may name
    /// (a class's parameters are the provisioner's to read, and some
    /// provisioners' parameters name shared storage: list only those whose
    /// parameters cannot reach another tenant's); empty refuses every class.
    pub storage_class_provisioners: Vec<String>,
    /// Sync the PersistentVolumes the tenant creates to the host with these
    /// options (cluster-scoped writes); `None` (the default) syncs none.
    pub persistent_volumes: Option<crate::persistentvolume::PersistentVolumeOptions>,
    /// How often both sides are compared in full (and on start).
    pub resync_period: Duration,
    /// Reconciles run concurrently per kind.
    pub workers: usize,
}

impl SyncerConfig {
    /// Defaults for `tenant`: only referenced ConfigMaps/Secrets, Pod
    /// Security level `baseline`, `vkube-workload-VC`, no owner, no
    /// `KUBERNETES_SERVICE_*`, no tenant DNS, [`DEFAULT_RESYNC_PERIOD`],
    /// 16 workers.
    pub fn new(tenant: Tenant) -> Self {
        Self {
            tenant,
            sync_all_configmaps: false,
            sync_all_secrets: false,
            pod_security: PodSecurityLevel::default(),
            host_service_account: None,
            owner: None,
            kubernetes_service: None,
            nodes: crate::node::NodeVisibility::Auto,
            dns: None,
            token_secrets: false,
            ingress: crate::ingress::IngressOptions::default(),
            priority_classes: None,
            storage_classes_to_host: false,
            storage_class_provisioners: Vec::new(),
            persistent_volumes: None,
            resync_period: DEFAULT_RESYNC_PERIOD,
            workers: 16,
        }
    }

    /// The [`TranslateOptions`] for [`crate::pod::translate`]: the host
    /// service account, and the `allow_*` switches open only at level
    /// `privileged` (baseline and restricted forbid host namespaces,
    /// hostPath, privileged containers and host ports alike).
    pub fn translate_options(&self) -> TranslateOptions {
        let open = self.pod_security == PodSecurityLevel::Privileged;
        TranslateOptions {
            host_service_account: Some(self.host_service_account_name()),
            allow_host_path: open,
            allow_host_namespaces: open,
            allow_privileged: open,
            allow_host_ports: open,
            dns: self.dns.clone(),
            priority_classes: self.priority_classes.is_some(),
        }
    }

    /// The host service account host pods run as.
    pub fn host_service_account_name(&self) -> String {
        self.host_service_account
            .clone()
            .unwrap_or_else(|| crate::pod::default_service_account(&self.tenant))
    }
}

/// Reads host object `spec` (`statefulset/NAME`, `deployment/NAME`,
/// `service/NAME` or `configmap/NAME`, kind case-insensitive) in `namespace`
/// and returns an ownerReference to it (no `controller`, no
/// `blockOwnerDeletion`, so setting it needs no extra RBAC), as in the
/// Kubernetes garbage-collection docs ("Owners and dependents").
///
/// Errors: malformed spec, unknown kind, or the GET failing (e.g. 404).
pub async fn resolve_owner(
    host: &Client,
    namespace: &str,
    spec: &str,
) -> anyhow::Result<OwnerReference> {
    let Some((kind, name)) = spec.split_once('/') else {
        bail!("owner {spec:?}: expected KIND/NAME");
    };
    if name.is_empty() {
        bail!("owner {spec:?}: empty name");
    }
    async fn owner_of<K>(host: &Client, ns: &str, name: &str) -> anyhow::Result<OwnerReference>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let obj = Api::<K>::namespaced(host.clone(), ns)
            .get(name)
            .await
            .with_context(|| format!("reading owner {} {ns}/{name}", K::kind(&())))?;
        Ok(OwnerReference {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: name.to_string(),
            uid: obj.meta().uid.clone().context("owner has no uid")?,
            controller: None,
            block_owner_deletion: None,
        })
    }
    match kind.to_ascii_lowercase().as_str() {
        "statefulset" | "statefulsets" | "sts" => {
            owner_of::<StatefulSet>(host, namespace, name).await
        }
        "deployment" | "deployments" | "deploy" => {
            owner_of::<Deployment>(host, namespace, name).await
        }
        "service" | "services" | "svc" => owner_of::<Service>(host, namespace, name).await,
        "configmap" | "configmaps" | "cm" => owner_of::<ConfigMap>(host, namespace, name).await,
        other => bail!(
            "owner {spec:?}: kind {other:?} is not one of statefulset, deployment, service, configmap"
        ),
    }
}

/// A virtual namespaced key: (namespace, name).
pub type Key = (String, String);

/// Everything a controller's reconcile needs; shared as `Arc<Context>`.
pub struct Context {
    /// The virtual cluster and host namespace.
    pub tenant: Tenant,
    /// Client of the virtual API server.
    pub virtual_client: Client,
    /// Client of the host cluster.
    pub host_client: Client,
    /// The configuration.
    pub config: SyncerConfig,
    /// Metrics every controller updates.
    pub metrics: Arc<Metrics>,
    /// Which ConfigMaps/Secrets virtual pods reference.
    pub references: crate::controller::References,
    /// (uid, reason, message) of Warning Events already written, so a
    /// retried reconcile does not write the same Event again.
    warned: Mutex<HashSet<(String, String, String)>>,
}

impl Context {
    /// An `Api` for kind `K` in the tenant's host namespace.
    pub fn host_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.host_client.clone(), self.tenant.host_namespace())
    }

    /// An `Api` for kind `K` in virtual namespace `namespace`.
    pub fn virtual_api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.virtual_client.clone(), namespace)
    }

    /// The ownerReferences every host object the syncer creates carries
    /// ([`SyncerConfig::owner`]), or `None`.
    pub fn owner_references(&self) -> Option<Vec<OwnerReference>> {
        self.config.owner.clone().map(|o| vec![o])
    }

    /// The label selector of the host watches: `vkube.dev/managed-by=VC`.
    pub fn managed_selector(&self) -> String {
        format!("{}={}", crate::names::LABEL_MANAGED_BY, self.tenant.name())
    }

    /// Writes a core/v1 Warning Event ([`crate::event::warning_event`])
    /// about virtual object `obj` in its namespace, so `kubectl get events`
    /// and `kubectl describe` show it; once per (object uid, reason,
    /// message) for this process.
    /// Errors: the create failing.
    pub async fn warn<K>(&self, obj: &K, reason: &str, message: &str) -> anyhow::Result<()>
    where
        K: Resource<DynamicType = ()>,
    {
        let meta = obj.meta();
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let uid = meta.uid.clone().unwrap_or_default();
        let key = (uid.clone(), reason.to_string(), message.to_string());
        if !self.warned_lock().insert(key.clone()) {
            return Ok(());
        }
        let name = meta.name.clone().unwrap_or_default();
        let mut event = crate::event::warning_event(
            &K::kind(&()),
            &ns,
            &name,
            &uid,
            reason,
            message,
            jiff::Timestamp::now(),
        );
        event.involved_object.api_version = Some(K::api_version(&()).into_owned());
        event.involved_object.resource_version = meta.resource_version.clone();
        let res = self
            .virtual_api::<Event>(&ns)
            .create(&PostParams::default(), &event)
            .await;
        if let Err(e) = res {
            self.warned_lock().remove(&key);
            return Err(e).context("writing a Warning Event");
        }
        Ok(())
    }

    fn warned_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String, String)>> {
        self.warned.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The syncer: build with [`Syncer::new`], run with [`Syncer::run`].
pub struct Syncer {
    ctx: Arc<Context>,
}

impl Syncer {
    /// A syncer between `virtual_client` and `host_client` (clients are
    /// cheap to clone; nothing is contacted until [`Syncer::run`]).
    pub fn new(virtual_client: Client, host_client: Client, config: SyncerConfig) -> Syncer {
        Self::with_metrics(
            virtual_client,
            host_client,
            config,
            Arc::new(Metrics::new()),
        )
    }

    /// As [`Syncer::new`], reporting in `metrics` (e.g. registered in the
    /// registry of the virtual API server beside it, so one `/metrics`
    /// serves both).
    pub fn with_metrics(
        virtual_client: Client,
        host_client: Client,
        config: SyncerConfig,
        metrics: Arc<Metrics>,
    ) -> Syncer {
        let ctx = Context {
            tenant: config.tenant.clone(),
            virtual_client,
            host_client,
            config,
            metrics,
            references: crate::controller::References::default(),
            warned: Mutex::new(HashSet::new()),
        };
        Syncer { ctx: Arc::new(ctx) }
    }

    /// The metrics the running syncer updates (render for `/metrics`).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.ctx.metrics)
    }

    /// The shared context (for embedding and tests).
    pub fn context(&self) -> Arc<Context> {
        Arc::clone(&self.ctx)
    }

    /// Creates the host namespace if missing (a 403 is tolerated: a
    /// namespaced install may not create namespaces but its own exists),
    /// creates the default host service account if configured so, then runs
    /// every controller until one fails. Runs forever otherwise; stop it by
    /// aborting or dropping the task.
    pub async fn run(self) -> anyhow::Result<()> {
        let ctx = self.ctx;
        ensure_namespace(&ctx).await?;
        ensure_service_account(&ctx).await?;
        crate::controller::run_all(ctx).await
    }
}

async fn ensure_namespace(ctx: &Context) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.host_client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(ctx.tenant.host_namespace().to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => Ok(()),
        Err(e) => Err(e).context("creating the host namespace"),
    }
}

async fn ensure_service_account(ctx: &Context) -> anyhow::Result<()> {
    if ctx.config.host_service_account.is_some() {
        return Ok(());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(ctx.config.host_service_account_name()),
            namespace: Some(ctx.tenant.host_namespace().to_string()),
            labels: Some(
                [(
                    crate::names::LABEL_MANAGED_BY.to_string(),
                    ctx.tenant.name().to_string(),
                )]
                .into(),
            ),
            owner_references: ctx.owner_references(),
            ..Default::default()
        },
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    match ctx
        .host_api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).context("creating the host service account"),
    }
}

/// A reflector store of `api` and the watch-event stream that fills it
/// (kube-runtime's default watch backoff, so API server restarts are
/// survived); cached objects have no `managedFields`, which are never read
/// and often the largest part of an object. The stream must be polled for
/// the store to fill.
pub fn watch_store<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    watch_store_with(api, config, |_| {})
}

/// [`watch_store`], with `trim` applied to every object before it is
/// cached and passed on (to keep only what reconciles read).
pub fn watch_store_with<K, F>(
    api: Api<K>,
    config: watcher::Config,
    mut trim: F,
) -> (
    Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    F: FnMut(&mut K) + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .default_backoff()
            .modify(move |o: &mut K| {
                o.meta_mut().managed_fields = None;
                trim(o);
            }),
    );
    (reader, stream)
}

/// Polls a watch stream forever, calling `f` for every event; watch errors
/// are logged (the stream retries with backoff).
pub async fn drive<K, S, F>(stream: S, mut f: F) -> anyhow::Result<()>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    F: FnMut(watcher::Event<K>),
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => f(ev),
            Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
        }
    }
    bail!("a watch stream ended")
}

/// Runs `workers` concurrent loops taking keys from `queue` and calling
/// `reconcile(key, since)`, where `since` is when the key was first queued.
/// `Ok(Some(d))` requeues after `d`; `Err` is logged, counted in
/// [`Metrics::reconciled`] and retried with per-key backoff. Never returns.
pub async fn run_workers<K, F, Fut>(
    kind: &'static str,
    ctx: Arc<Context>,
    queue: Arc<Queue<K>>,
    reconcile: F,
) -> anyhow::Result<()>
where
    K: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static,
    F: Fn(K, Instant) -> Fut,
    Fut: Future<Output = anyhow::Result<Option<Duration>>>,
{
    let worker = |_| {
        let queue = Arc::clone(&queue);
        let ctx = Arc::clone(&ctx);
        let reconcile = &reconcile;
        async move {
            loop {
                let (key, since) = queue.next().await;
                let started = Instant::now();
                let res = reconcile(key.clone(), since).await;
                queue.worked(started.elapsed());
                ctx.metrics.reconciled(kind, res.is_err());
                match res {
                    Ok(requeue) => {
                        queue.done(&key, true);
                        if let Some(d) = requeue {
                            queue.add_after(key, d);
                        }
                    }
                    Err(e) if is_conflict(&e) => {
                        // An ordinary optimistic-concurrency conflict: the
                        // retry reads the newer object; not worth a warning.
                        tracing::debug!(
                            kind,
                            ?key,
                            error = format!("{e:#}"),
                            "reconcile conflicted; retrying"
                        );
                        if let Some(d) = queue.done(&key, false) {
                            queue.add_after(key, d);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(kind, ?key, error = format!("{e:#}"), "reconcile failed");
                        if let Some(d) = queue.done(&key, false) {
                            queue.add_after(key, d);
                        }
                    }
                }
            }
        }
    };
    futures::future::join_all((0..ctx.config.workers.max(1)).map(worker)).await;
    bail!("{kind} workers stopped")
}

/// Deletes object `obj` through `api` with a UID precondition, so a
/// recreated object of the same name is never deleted in its place; 404 and
/// 409 (already gone, or replaced) count as done. `what` names the object
/// in the error (e.g. `host Ingress`).
pub async fn delete_guarded<K>(api: &Api<K>, obj: &K, what: &str) -> anyhow::Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let dp = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: obj.meta().uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let name = obj.meta().name.clone().unwrap_or_default();
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting {what} {name}")),
    }
}

/// Whether `e` is an API error with HTTP status `code`.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Whether reconcile error `e` is (anywhere in its context chain) an
/// HTTP 409 Conflict from an API server, i.e. an optimistic-concurrency
/// failure of an update or status write (a stale `resourceVersion`, see
/// the Kubernetes API conventions, "Concurrency Control and Consistency")
/// or a create racing another writer. Such errors are retried quietly.
pub fn is_conflict(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<kube::Error>()
            .is_some_and(|k| is_status(k, 409))
    })
}

/// Key of a namespaced object: (namespace, name), empty strings if unset.
pub fn key_of<K: ResourceExt>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("the object has been modified", "Conflict")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn conflicts_are_found_through_context_and_others_are_not() {
        let conflict =
            anyhow::Error::new(api_error(409)).context("writing the virtual pod's status");
        assert!(is_conflict(&conflict));
        let not_found = anyhow::Error::new(api_error(404)).context("updating the host pod");
        assert!(!is_conflict(&not_found));
        assert!(!is_conflict(&anyhow::anyhow!(
            "409 in a message is not a status"
        )));
    }
}
