//! The Service controller: virtual Services → host Services, and what the
//! host reports (nodePorts it allocated later, `status.loadBalancer`) →
//! virtual Services; and [`HostServices`], which allocates a Service's
//! addresses on the host while the tenant's create or update request is
//! still running. Translations and comparisons are the pure functions of
//! [`crate::service`]; the identity decision is [`host_action`] and the
//! virtual-side decision [`virtual_update`].
//!
//! **Identity.** A tenant's Service keeps its uid and ClusterIP for life. The
//! virtual API server stores it once, already carrying the ClusterIP(s) and
//! nodePorts the host allocated for its host copy ([`HostServices`]), as
//! vcluster intercepts Service creation. The syncer then treats the virtual
//! addresses as the truth: a host copy it creates asks for exactly them
//! ([`pure::with_virtual_allocations`]), and a host copy that holds other
//! ones (deleted and recreated by someone on the host) is replaced. The
//! virtual Service itself is never deleted or recreated.
//!
//! Per virtual key (namespace, name), level-based:
//! * virtual Service gone → delete our host Service (UID precondition),
//!   once a live GET confirms it and it has been missing for
//!   [`DELETE_GRACE`] (a create's host copy exists a moment before the
//!   virtual Service is stored);
//! * `spec.externalIPs` → refused (`SyncRefused` Warning Event);
//! * no host Service → create it with the virtual addresses; a host that
//!   refuses them (taken, out of its range) gets a `SyncRefused` Warning
//!   Event and a retry with backoff;
//! * host Service not ours → `SyncConflict` Warning Event, nothing written;
//! * ours, an earlier incarnation or other clusterIPs → replace it;
//! * ours → push spec changes (carrying the host's allocations), then write
//!   nodePorts or load-balancer status that differ to the virtual Service in
//!   place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::Value;
use vkube_core::service::{BoxFuture, HostAllocator, HostRefusal};

use crate::engine::{Context, Key, SyncerConfig, is_status};
use crate::metrics::Direction;
use crate::names::{Mismatch, Ownership, Tenant, VirtualIdentity, host_name, is_managed};
use crate::pod::ReferenceKind;
use crate::queue::Queue;
use crate::service::{self as pure, TranslateError};

use super::mirror::{self, Mirrored, owned_copy_of};

/// The kind name, as in metrics and markers.
pub const KIND: &str = pure::KIND;

/// Reason of the Warning Event for a Service the syncer will not sync.
pub const REASON_SYNC_REFUSED: &str = crate::event::REASON_SYNC_REFUSED;

/// How long a host Service must stay without its virtual Service before it
/// is deleted: [`HostServices`] creates the host copy a moment before the
/// virtual API server stores the Service, and a host watch event in that
/// moment must not remove it.
pub const DELETE_GRACE: Duration = Duration::from_secs(2);

/// The virtual API server's own Service (`default/kubernetes`), which is
/// never synced: host pods reach the virtual API server through
/// `KUBERNETES_SERVICE_*` instead (as in vcluster).
pub fn is_apiserver_service(key: &Key) -> bool {
    key.0 == "default" && key.1 == "kubernetes"
}

/// Lets the Service controller use [`mirror::delete_host`] and
/// [`mirror::conflict`]; Services are never run through [`mirror::run`]
/// (they are synced whenever they exist), so `REFERENCE` and `sync_all`
/// are not consulted.
impl Mirrored for Service {
    const KIND: &'static str = KIND;
    const REFERENCE: ReferenceKind = ReferenceKind::ConfigMap;
    fn sync_all(_config: &SyncerConfig) -> bool {
        true
    }
    fn translate(tenant: &Tenant, v: &Self) -> Result<Self, crate::error::TranslateError> {
        pure::translate(tenant, v)
    }
    fn needs_update(desired: &Self, host: &Self) -> bool {
        pure::needs_update(desired, host)
    }
}

/// What to do about the host Service at a virtual Service's host name
/// (pure; see the module docs on identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAction {
    /// None exists: create it, asking for the virtual addresses.
    Create,
    /// Ours, this incarnation, holding the virtual ClusterIP(s).
    Keep,
    /// Ours, but an earlier incarnation or other ClusterIP(s) than the
    /// virtual Service holds: delete it so it is created anew.
    Replace,
    /// Not ours: leave it alone and warn.
    Conflict(Mismatch),
}

/// Whether virtual Service `v` holds a ClusterIP of its own (not headless,
/// not ExternalName, not empty), which its host copy must then hold too.
fn holds_cluster_ip(v: &Service) -> bool {
    let spec = v.spec.clone().unwrap_or_default();
    spec.type_.as_deref() != Some("ExternalName")
        && spec
            .cluster_ip
            .as_deref()
            .is_some_and(|ip| !ip.is_empty() && ip != pure::HEADLESS)
}

/// Decides [`HostAction`] from [`is_managed`]'s verdict, virtual Service
/// `v` and the host Service `h` at its host name.
pub fn host_action(ownership: Ownership, v: &Service, h: Option<&Service>) -> HostAction {
    match ownership {
        Ownership::Absent => HostAction::Create,
        Ownership::NotOurs(why) => HostAction::Conflict(why),
        Ownership::Stale { .. } => HostAction::Replace,
        Ownership::Owned => match h {
            Some(h) if holds_cluster_ip(v) && pure::reflect(v, h).cluster_ip_differs => {
                HostAction::Replace
            }
            _ => HostAction::Keep,
        },
    }
}

/// `desired` (a [`pure::translate`] output) with what the host allocated
/// for `host` carried over, so an update never asks the host to unset an
/// immutable field: clusterIP/clusterIPs/ipFamilies, and for NodePort and
/// LoadBalancer Services the nodePorts of matching ports (by name and
/// protocol, or index) and healthCheckNodePort. The nodePorts virtual
/// Service `v` names explicitly win (a tenant moving a port).
pub fn with_host_allocations(mut desired: Service, host: &Service, v: &Service) -> Service {
    let h = host.spec.clone().unwrap_or_default();
    let d = desired.spec.get_or_insert_default();
    let ty = d.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    if ty != "ExternalName" {
        d.cluster_ip = h.cluster_ip.clone();
        d.cluster_ips = h.cluster_ips.clone();
        if d.ip_families.is_none() {
            d.ip_families = h.ip_families.clone();
        }
        if d.ip_family_policy.is_none() {
            d.ip_family_policy = h.ip_family_policy.clone();
        }
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        let reflected = pure::reflect(&desired, host).virtual_service;
        let d = desired.spec.get_or_insert_default();
        let r = reflected.spec.unwrap_or_default();
        d.ports = r.ports;
        if ty == "LoadBalancer" {
            d.health_check_node_port = r.health_check_node_port;
        }
    }
    pure::with_virtual_allocations(desired, v)
}

/// What the virtual Service needs so that the tenant sees what the host
/// reports.
#[derive(Debug, Clone, PartialEq)]
pub enum VirtualUpdate {
    /// Nothing.
    None,
    /// Write in place: the spec (nodePorts, healthCheckNodePort) when
    /// `Some`, and `status.loadBalancer` when `Some`.
    InPlace {
        /// The virtual Service with the host's nodePorts, to replace.
        spec: Option<Box<Service>>,
        /// The host's load-balancer status, to write to the status subresource.
        load_balancer: Option<LoadBalancerStatus>,
    },
}

/// Decides [`VirtualUpdate`] for virtual Service `v` given host Service `h`
/// (pure; [`pure::reflect`] and [`pure::status_differs`] do the comparing).
pub fn virtual_update(v: &Service, h: &Service) -> VirtualUpdate {
    if !pure::status_differs(v, h) {
        return VirtualUpdate::None;
    }
    let want = pure::reflect(v, h).virtual_service;
    let node_ports = |s: &Service| -> (Vec<Option<i32>>, Option<i32>) {
        let spec = s.spec.clone().unwrap_or_default();
        (
            spec.ports.iter().flatten().map(|p| p.node_port).collect(),
            spec.health_check_node_port,
        )
    };
    let lb = |s: &Service| s.status.as_ref().and_then(|s| s.load_balancer.clone());
    let spec = (node_ports(&want) != node_ports(v)).then(|| Box::new(want.clone()));
    let load_balancer = (lb(&want).unwrap_or_default() != lb(v).unwrap_or_default())
        .then(|| lb(&want).unwrap_or_default());
    VirtualUpdate::InPlace {
        spec,
        load_balancer,
    }
}

/// The host side of a virtual cluster's Service writes: the
/// [`HostAllocator`] the virtual API server asks, inside a tenant's create
/// or update request, for the addresses to store. It creates or updates the
/// Service's host copy (the same translation, markers and owner the Service
/// controller uses) and returns it, so the virtual Service is stored with
/// the host's ClusterIP(s) and nodePorts from the start.
///
/// It reaches only the tenant's own host copy: the host name comes from the
/// virtual identity, an unmanaged object at that name is refused (`409`),
/// and a stale copy of an earlier incarnation is deleted with a UID
/// precondition. What it leaves to the server: the API server's own
/// `default/kubernetes` Service, Services that need no address (headless,
/// ExternalName), updates that change no allocation
/// ([`vkube_core::service::allocation_changed`]) and Services the syncer
/// refuses (`externalIPs`); the Service controller syncs those as usual.
#[derive(Clone)]
pub struct HostServices {
    api: Api<Service>,
    tenant: Tenant,
    owner: Option<OwnerReference>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// How often [`HostServices`] retries when the host copy changes under it.
const HOST_ATTEMPTS: usize = 4;

impl HostServices {
    /// Allocates through `host` into `config`'s host namespace, with its
    /// tenant and owner ([`SyncerConfig::owner`]).
    pub fn new(host: kube::Client, config: &SyncerConfig) -> Self {
        Self {
            api: Api::namespaced(host, config.tenant.host_namespace()),
            tenant: config.tenant.clone(),
            owner: config.owner.clone(),
        }
    }

    /// [`HostAllocator::allocate`] on typed objects.
    async fn allocate_typed(
        &self,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<Option<Service>, HostRefusal> {
        let v: Service = serde_json::from_value(new.clone())
            .map_err(|e| internal(&format!("decoding the Service: {e}")))?;
        let key: Key = (v.namespace().unwrap_or_default(), v.name_any());
        if is_apiserver_service(&key) {
            return Ok(None);
        }
        if let Some(old) = old
            && !vkube_core::service::allocation_changed(old, new)
        {
            return Ok(None);
        }
        use vkube_core::service::{
            needs_cluster_ip, needs_health_check_node_port, needs_node_ports,
        };
        if !needs_cluster_ip(new) && !needs_node_ports(new) && !needs_health_check_node_port(new) {
            return Ok(None);
        }
        let mut desired = match pure::translate(&self.tenant, &v) {
            Ok(d) => d,
            Err(TranslateError::Forbidden(_)) => return Ok(None),
            Err(e) => return Err(internal(&e.to_string())),
        };
        desired.metadata.owner_references = self.owner.clone().map(|o| vec![o]);
        let id =
            VirtualIdentity::from_meta(KIND, v.meta()).map_err(|e| internal(&e.to_string()))?;
        let hname = host_name(&self.tenant, &key.0, &key.1);
        let refusal = |e: kube::Error| host_refusal(e, &hname, &key.1);
        // A create expects no host copy yet; an update expects ours.
        let mut look = old.is_some();
        for _ in 0..HOST_ATTEMPTS {
            let existing = if look {
                self.api.get_opt(&hname).await.map_err(refusal)?
            } else {
                None
            };
            look = true;
            let Some(h) = existing else {
                let create = pure::with_virtual_allocations(desired.clone(), &v);
                match self.api.create(&PostParams::default(), &create).await {
                    Ok(created) => return Ok(Some(created)),
                    Err(e) if is_status(&e, 409) => continue,
                    Err(e) => return Err(refusal(e)),
                }
            };
            match is_managed(&self.tenant, Some(h.meta()), &id) {
                Ownership::Owned => {
                    let mut update = with_host_allocations(desired.clone(), &h, &v);
                    update.metadata.resource_version = h.resource_version();
                    match self
                        .api
                        .replace(&hname, &PostParams::default(), &update)
                        .await
                    {
                        Ok(written) => return Ok(Some(written)),
                        Err(e) if is_status(&e, 409) => continue,
                        Err(e) => return Err(refusal(e)),
                    }
                }
                Ownership::Stale { .. } => {
                    // An earlier incarnation's copy: the REST layer checked
                    // that no virtual Service of this name is stored.
                    self.delete(&h).await.map_err(refusal)?;
                }
                Ownership::NotOurs(why) => {
                    return Err(HostRefusal {
                        code: 409,
                        reason: "Conflict".into(),
                        message: format!(
                            "Operation cannot be fulfilled on services \"{}\": host Service {}/{hname} \
                             exists and is not managed by this virtual cluster ({why:?})",
                            key.1,
                            self.tenant.host_namespace()
                        ),
                        details: Some(serde_json::json!({"name": key.1, "kind": "services"})),
                    });
                }
                Ownership::Absent => {}
            }
        }
        Err(internal(&format!(
            "host Service {hname} kept changing while allocating its addresses"
        )))
    }

    /// Deletes host Service `h` with its UID as precondition; gone already
    /// is fine.
    async fn delete(&self, h: &Service) -> Result<(), kube::Error> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: h.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.api.delete(&h.name_any(), &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl HostAllocator for HostServices {
    fn allocate<'a>(
        &'a self,
        old: Option<&'a Value>,
        new: &'a Value,
    ) -> BoxFuture<'a, Result<Option<Value>, HostRefusal>> {
        Box::pin(async move {
            let host = self.allocate_typed(old, new).await?;
            host.map(|h| serde_json::to_value(h).map_err(|e| internal(&e.to_string())))
                .transpose()
        })
    }

    fn release<'a>(&'a self, host: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(h) = serde_json::from_value::<Service>(host.clone()) else {
                return;
            };
            if let Err(e) = self.delete(&h).await {
                tracing::warn!(error = %e, name = %h.name_any(), "removing an unused host Service");
            }
        })
    }
}

/// A `500 InternalError` refusal.
fn internal(message: &str) -> HostRefusal {
    HostRefusal {
        code: 500,
        reason: "InternalError".into(),
        message: format!("Internal error occurred: {message}"),
        details: None,
    }
}

/// The host's answer `e` about host Service `hname` as the virtual API
/// server's answer about virtual Service `name`: an API `Status` keeps its
/// code, reason and causes with the host name replaced; a transport failure
/// is a `500` naming the host.
pub fn host_refusal(e: kube::Error, hname: &str, name: &str) -> HostRefusal {
    match e {
        kube::Error::Api(status) => {
            let details = status.details.as_ref().and_then(|d| {
                let mut d = serde_json::to_value(d).ok()?;
                if let Some(obj) = d.as_object_mut() {
                    obj.insert("name".into(), Value::from(name));
                    // The host object's uid is not the tenant's to see.
                    obj.remove("uid");
                }
                Some(d)
            });
            HostRefusal {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.replace(hname, name),
                details,
            }
        }
        other => internal(&format!(
            "allocating addresses for Service \"{name}\" on the host: {other}"
        )),
    }
}

struct State {
    vstore: Store<Service>,
    hstore: Store<Service>,
    /// When each key was first found with a host copy but no virtual
    /// Service ([`DELETE_GRACE`]).
    orphaned_since: Mutex<HashMap<Key, Instant>>,
}

/// Runs the Service controller.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue: Arc<Queue<Key>> = Arc::new(Queue::new());
    ctx.metrics.register_queue(KIND, &queue);
    let (vstore, vstream, hstore, hstream) = super::watch_both::<Service>(&ctx, "");
    let resync = super::resync_stores(KIND, vstore.clone(), hstore.clone(), Arc::clone(&queue));
    let state = Arc::new(State {
        vstore,
        hstore,
        orphaned_since: Mutex::default(),
    });
    let ready = {
        let state = Arc::clone(&state);
        async move {
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
    tokio::select! {
        r = super::queue_virtual(vstream, Arc::clone(&queue), Arc::clone(&resync)) => r,
        r = super::queue_host(hstream, KIND, Arc::clone(&queue), resync) => r,
        r = work => r,
    }
}

fn get(store: &Store<Service>, ns: &str, name: &str) -> Option<Arc<Service>> {
    store.get(&ObjectRef::new(name).within(ns))
}

/// Requeue delay while waiting for a cache to catch up.
const SHORT: Duration = Duration::from_millis(500);

/// Requeue delay after the host refused a Service's addresses.
const REFUSED_RETRY: Duration = Duration::from_secs(30);

async fn reconcile(
    ctx: &Context,
    state: &State,
    key: &Key,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    if is_apiserver_service(key) {
        return Ok(None);
    }
    let hname = host_name(&ctx.tenant, &key.0, &key.1);
    let h = get(&state.hstore, ctx.tenant.host_namespace(), &hname);
    let mut v = get(&state.vstore, &key.0, &key.1).map(|v| (*v).clone());
    let vapi = ctx.virtual_api::<Service>(&key.0);
    let live = |v: &Option<Service>| {
        v.as_ref()
            .is_some_and(|v| v.meta().deletion_timestamp.is_none())
    };
    if !live(&v) {
        if let Some(h) = h.as_deref()
            && owned_copy_of(&ctx.tenant, h.meta(), KIND, key)
        {
            // The cache may lag, and a create's host copy exists a moment
            // before its virtual Service: ask the server, and wait out the
            // grace period.
            if live(&vapi.get_opt(&key.1).await?) {
                state.orphaned_since.lock().expect("lock").remove(key);
                return Ok(Some(SHORT));
            }
            let first = *state
                .orphaned_since
                .lock()
                .expect("lock")
                .entry(key.clone())
                .or_insert_with(Instant::now);
            if first.elapsed() < DELETE_GRACE {
                return Ok(Some(DELETE_GRACE - first.elapsed() + SHORT));
            }
            mirror::delete_host::<Service>(ctx, h).await?;
        }
        state.orphaned_since.lock().expect("lock").remove(key);
        return Ok(None);
    }
    state.orphaned_since.lock().expect("lock").remove(key);
    let mut desired = match pure::translate(&ctx.tenant, v.as_ref().expect("live")) {
        Ok(d) => d,
        Err(TranslateError::Forbidden(why)) => {
            let v = v.as_ref().expect("live");
            ctx.warn(v, REASON_SYNC_REFUSED, &why).await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    desired.metadata.owner_references = ctx.owner_references();
    let mut ownership = {
        let v = v.as_ref().expect("live");
        is_managed(
            &ctx.tenant,
            h.as_deref().map(|h| h.meta()),
            &VirtualIdentity::from_meta(KIND, v.meta())?,
        )
    };
    if matches!(ownership, Ownership::Stale { .. }) {
        // Decide on the server's current incarnation, not a lagging cache.
        v = vapi.get_opt(&key.1).await?;
        if !live(&v) {
            return Ok(Some(SHORT));
        }
        let id = VirtualIdentity::from_meta(KIND, v.as_ref().expect("live").meta())?;
        ownership = is_managed(&ctx.tenant, h.as_deref().map(|h| h.meta()), &id);
    }
    let v = v.expect("live");
    let api = ctx.host_api::<Service>();
    let host: Service = match host_action(ownership, &v, h.as_deref()) {
        HostAction::Create => {
            let create = pure::with_virtual_allocations(desired, &v);
            match api.create(&PostParams::default(), &create).await {
                Ok(created) => {
                    ctx.metrics
                        .observe_latency(KIND, Direction::VirtualToHost, since.elapsed());
                    created
                }
                Err(e) if is_status(&e, 409) => {
                    let live_h = api.get_opt(&hname).await?;
                    let id = VirtualIdentity::from_meta(KIND, v.meta())?;
                    if let Ownership::NotOurs(why) =
                        is_managed(&ctx.tenant, live_h.as_ref().map(|h| h.meta()), &id)
                    {
                        mirror::conflict(ctx, &v, &hname, &why).await?;
                        return Ok(None);
                    }
                    return Err(e).context("creating the host Service (exists)");
                }
                Err(e) if is_status(&e, 422) => {
                    // The virtual addresses are taken or outside the host's
                    // range: the tenant keeps them; say why nothing runs.
                    let why = host_refusal(e, &hname, &key.1).message;
                    ctx.warn(
                        &v,
                        REASON_SYNC_REFUSED,
                        &format!("the host refused this Service's addresses: {why}"),
                    )
                    .await?;
                    return Ok(Some(REFUSED_RETRY));
                }
                Err(e) => return Err(e).with_context(|| format!("creating host Service {hname}")),
            }
        }
        HostAction::Conflict(why) => {
            mirror::conflict(ctx, &v, &hname, &why).await?;
            return Ok(None);
        }
        HostAction::Replace => {
            mirror::delete_host::<Service>(ctx, h.as_deref().expect("stale")).await?;
            // The host watch's delete event queues the key again.
            return Ok(Some(Duration::from_secs(1)));
        }
        HostAction::Keep => {
            let h = h.as_deref().expect("owned");
            if pure::needs_update(&desired, h) {
                let mut updated = with_host_allocations(desired, h, &v);
                updated.metadata.resource_version = h.resource_version();
                let written = api
                    .replace(&hname, &PostParams::default(), &updated)
                    .await
                    .with_context(|| format!("updating host Service {hname}"))?;
                ctx.metrics
                    .observe_latency(KIND, Direction::VirtualToHost, since.elapsed());
                written
            } else {
                h.clone()
            }
        }
    };
    reflect(ctx, &v, &host, since).await
}

/// Writes what the host reports to virtual Service `v` ([`virtual_update`]).
async fn reflect(
    ctx: &Context,
    v: &Service,
    h: &Service,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let ns = v.namespace().unwrap_or_default();
    let vapi = ctx.virtual_api::<Service>(&ns);
    match virtual_update(v, h) {
        VirtualUpdate::None => Ok(None),
        VirtualUpdate::InPlace {
            spec,
            load_balancer,
        } => {
            if let Some(s) = spec {
                vapi.replace(&v.name_any(), &PostParams::default(), &s)
                    .await
                    .context("writing the host's nodePorts to the virtual Service")?;
            }
            if let Some(lb) = load_balancer {
                let patch = serde_json::json!({ "status": { "loadBalancer": lb } });
                vapi.patch_status(
                    &v.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .context("writing the host's load-balancer status to the virtual Service")?;
            }
            ctx.metrics
                .observe_latency(KIND, Direction::HostToVirtual, since.elapsed());
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, ServicePort, ServiceSpec, ServiceStatus,
    };
    use kube::api::ObjectMeta;

    fn svc(uid: &str, ip: &str, node_port: Option<i32>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("team".into()),
                uid: Some(uid.into()),
                resource_version: Some("7".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some(
                    [(
                        "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                        "{}".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(
                    if node_port.is_some() {
                        "NodePort"
                    } else {
                        "ClusterIP"
                    }
                    .into(),
                ),
                cluster_ip: Some(ip.into()),
                cluster_ips: Some(vec![ip.into()]),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    node_port,
                    ..Default::default()
                }]),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn the_virtual_cluster_ip_decides_whether_a_host_copy_is_kept() {
        let v = svc("u1", "10.96.5.5", None);
        let same = svc("h", "10.96.5.5", None);
        assert_eq!(
            host_action(Ownership::Owned, &v, Some(&same)),
            HostAction::Keep
        );
        // Recreated on the host by someone else: another IP, replaced so
        // that the tenant's address comes back.
        let moved = svc("h", "10.96.9.9", None);
        assert_eq!(
            host_action(Ownership::Owned, &v, Some(&moved)),
            HostAction::Replace
        );
        // An earlier incarnation's copy is replaced whatever its IP.
        let stale = Ownership::Stale {
            host_uid: "old".into(),
        };
        assert_eq!(host_action(stale, &v, Some(&same)), HostAction::Replace);
        // No virtual IP (headless, ExternalName): nothing to compare.
        let mut headless = svc("u1", pure::HEADLESS, None);
        headless.spec.as_mut().unwrap().cluster_ips = Some(vec![pure::HEADLESS.into()]);
        assert_eq!(
            host_action(Ownership::Owned, &headless, Some(&moved)),
            HostAction::Keep
        );
        assert_eq!(host_action(Ownership::Absent, &v, None), HostAction::Create);
        assert_eq!(
            host_action(Ownership::NotOurs(Mismatch::ManagedBy), &v, Some(&same)),
            HostAction::Conflict(Mismatch::ManagedBy)
        );
    }

    #[test]
    fn the_virtual_service_is_never_given_another_cluster_ip() {
        let v = svc("u1", "10.96.0.9", Some(30001));
        let h = svc("h", "10.96.5.5", Some(31234));
        match virtual_update(&v, &h) {
            VirtualUpdate::InPlace {
                spec: Some(s),
                load_balancer: None,
            } => {
                let spec = s.spec.unwrap();
                assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.9"));
                assert_eq!(spec.ports.unwrap()[0].node_port, Some(31234));
                assert_eq!(s.metadata.uid.as_deref(), Some("u1"));
            }
            other => panic!("expected an in-place nodePort write, got {other:?}"),
        }
    }

    #[test]
    fn node_ports_and_load_balancer_are_written_in_place() {
        let v = svc("u1", "10.96.5.5", Some(30001));
        let mut h = svc("h", "10.96.5.5", Some(31234));
        assert!(matches!(
            virtual_update(&v, &h),
            VirtualUpdate::InPlace {
                spec: Some(_),
                load_balancer: None
            }
        ));
        let same = svc("u1", "10.96.5.5", Some(31234));
        assert_eq!(virtual_update(&same, &h), VirtualUpdate::None);
        let lb = LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some("192.0.2.10".into()),
                ..Default::default()
            }]),
        };
        h.status = Some(ServiceStatus {
            load_balancer: Some(lb.clone()),
            ..Default::default()
        });
        assert_eq!(
            virtual_update(&same, &h),
            VirtualUpdate::InPlace {
                spec: None,
                load_balancer: Some(lb)
            }
        );
    }

    #[test]
    fn an_update_keeps_the_host_allocations_unless_the_tenant_names_others() {
        let h = svc("h", "10.96.5.5", Some(31234));
        let mut desired = svc("u1", "", Some(1));
        let spec = desired.spec.as_mut().unwrap();
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        spec.ports.as_mut().unwrap()[0].node_port = None;
        let unset = {
            let mut v = svc("u1", "10.96.5.5", None);
            v.spec.as_mut().unwrap().type_ = Some("NodePort".into());
            v
        };
        let out = with_host_allocations(desired.clone(), &h, &unset)
            .spec
            .unwrap();
        assert_eq!(out.cluster_ip.as_deref(), Some("10.96.5.5"));
        assert_eq!(out.ports.unwrap()[0].node_port, Some(31234));
        let moved = svc("u1", "10.96.5.5", Some(30099));
        let out = with_host_allocations(desired, &h, &moved).spec.unwrap();
        assert_eq!(out.ports.unwrap()[0].node_port, Some(30099));
        let mut cluster_ip = svc("u1", "", None);
        cluster_ip.spec.as_mut().unwrap().cluster_ip = None;
        let out = with_host_allocations(cluster_ip.clone(), &h, &cluster_ip)
            .spec
            .unwrap();
        assert_eq!(
            out.ports.unwrap()[0].node_port,
            None,
            "a ClusterIP Service has no nodePorts"
        );
    }

    #[test]
    fn host_refusals_name_the_virtual_service() {
        let status = kube::core::Status::failure(
            "Service \"web-x-default-x-vc1\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.5\"]: \
             failed to allocate IP 10.96.0.5: provided IP is already allocated",
            "Invalid",
        )
        .with_code(422)
        .with_details(kube::core::response::StatusDetails {
            name: "web-x-default-x-vc1".into(),
            group: String::new(),
            kind: "Service".into(),
            uid: "host-uid".into(),
            causes: Vec::new(),
            retry_after_seconds: 0,
        });
        let r = host_refusal(
            kube::Error::Api(Box::new(status)),
            "web-x-default-x-vc1",
            "web",
        );
        assert_eq!((r.code, r.reason.as_str()), (422, "Invalid"));
        assert!(
            r.message
                .starts_with("Service \"web\" is invalid: spec.clusterIPs"),
            "{}",
            r.message
        );
        let details = r.details.unwrap();
        assert_eq!(details["name"], "web");
        assert!(details.get("uid").is_none(), "{details}");
    }

    #[test]
    fn only_the_apiserver_service_is_skipped() {
        assert!(is_apiserver_service(&(
            "default".into(),
            "kubernetes".into()
        )));
        assert!(!is_apiserver_service(&("team".into(), "kubernetes".into())));
    }
}
