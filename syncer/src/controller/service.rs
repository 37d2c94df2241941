//! The Service controller: virtual Services → host Services, and the host's
//! allocations (clusterIP/clusterIPs, nodePorts, healthCheckNodePort,
//! `status.loadBalancer`) → virtual Services. Translations and comparisons
//! are the pure functions of [`crate::service`]; the identity decision is
//! [`host_action`] and the virtual-side decision [`virtual_update`].
//!
//! Per virtual key (namespace, name), level-based:
//! * virtual Service gone → delete our host Service (UID precondition),
//!   after a live GET confirms it is really gone (the virtual Service is
//!   briefly absent while it is being recreated, see below);
//! * `spec.externalIPs` → refused (`SyncRefused` Warning Event);
//! * no host Service → create it;
//! * host Service not ours → `SyncConflict` Warning Event, nothing written;
//! * ours → push spec changes (carrying the host's allocations), then
//!   reflect: clusterIP differs → **recreate the virtual Service** with the
//!   host's clusterIP(s) and nodePorts (clusterIP is immutable), then record
//!   the new virtual UID on the host Service in place; nodePorts or
//!   load-balancer status differ → write them to the virtual Service in
//!   place.
//!
//! Identity ([`host_action`]): a host Service whose `object-uid` names an
//! earlier incarnation is `Stale`. Recreating the virtual Service produces
//! exactly that state (new virtual UID, host unchanged) for a moment, and
//! the generic rule (delete and recreate the host copy) would make the host
//! allocate a new IP and start the cycle again. So a stale host Service
//! whose clusterIPs equal the (live) virtual Service's is **adopted**: its
//! UID annotation is updated in place. A tenant that deletes and recreates a
//! Service gets a fresh virtual IP, which differs, so its stale host copy is
//! replaced as for every other kind. Adoption never widens what the tenant
//! reaches: all other markers (namespace, name, managed-by, object-name,
//! object-namespace, object-kind) must already be this tenant's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service, ServiceSpec};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use crate::engine::{Context, Key, SyncerConfig, is_status};
use crate::metrics::Direction;
use crate::names::{
    ANNOTATION_OBJECT_UID, Mismatch, Ownership, Tenant, VirtualIdentity, host_name, is_managed,
};
use crate::pod::ReferenceKind;
use crate::queue::Queue;
use crate::service::{self as pure, TranslateError};

use super::mirror::{self, Mirrored, owned_copy_of};

/// The kind name, as in metrics and markers.
pub const KIND: &str = pure::KIND;

/// Reason of the Warning Event for a Service the syncer will not sync.
pub const REASON_SYNC_REFUSED: &str = crate::event::REASON_SYNC_REFUSED;

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
    /// None exists: create it.
    Create,
    /// Ours, this incarnation.
    Keep,
    /// Ours, an earlier incarnation with the same clusterIPs: record the
    /// virtual UID on it in place.
    Adopt,
    /// Ours, an earlier incarnation with other clusterIPs: delete it so it
    /// is created anew.
    Replace,
    /// Not ours: leave it alone and warn.
    Conflict(Mismatch),
}

/// The primary clusterIP and the clusterIPs list of `s`.
fn cluster_ips(s: &Service) -> (Option<String>, Vec<String>) {
    let spec = s.spec.clone().unwrap_or_default();
    (spec.cluster_ip, spec.cluster_ips.unwrap_or_default())
}

/// Decides [`HostAction`] from [`is_managed`]'s verdict, virtual Service
/// `v` and the host Service `h` at its host name.
pub fn host_action(ownership: Ownership, v: &Service, h: Option<&Service>) -> HostAction {
    match ownership {
        Ownership::Absent => HostAction::Create,
        Ownership::Owned => HostAction::Keep,
        Ownership::NotOurs(why) => HostAction::Conflict(why),
        Ownership::Stale { .. } => {
            let (vip, vips) = cluster_ips(v);
            match h.map(cluster_ips) {
                Some((hip, hips))
                    if vip.as_deref().is_some_and(|ip| !ip.is_empty())
                        && vip == hip
                        && vips == hips =>
                {
                    HostAction::Adopt
                }
                _ => HostAction::Replace,
            }
        }
    }
}

/// `desired` (a [`pure::translate`] output) with what the host allocated
/// for `host` carried over, so a replace keeps them on any conformant
/// server: clusterIP/clusterIPs/ipFamilies (immutable), and for NodePort and
/// LoadBalancer Services the nodePorts of matching ports (by name and
/// protocol, or index) and healthCheckNodePort.
pub fn with_host_allocations(mut desired: Service, host: &Service) -> Service {
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
    desired
}

/// What the virtual Service needs so that the tenant sees the host's
/// allocations.
#[derive(Debug, Clone, PartialEq)]
pub enum VirtualUpdate {
    /// Nothing.
    None,
    /// The clusterIP differs: delete the virtual Service and create this one
    /// (no uid, resourceVersion or server-set metadata; labels, annotations
    /// incl. kubectl's last-applied-configuration and ownerReferences kept).
    Recreate(Box<Service>),
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
    let r = pure::reflect(v, h);
    if r.cluster_ip_differs {
        let mut fresh = r.virtual_service;
        fresh.metadata = ObjectMeta {
            name: v.metadata.name.clone(),
            namespace: v.metadata.namespace.clone(),
            labels: v.metadata.labels.clone(),
            annotations: v.metadata.annotations.clone(),
            owner_references: v.metadata.owner_references.clone(),
            ..Default::default()
        };
        fresh.status = None;
        return VirtualUpdate::Recreate(Box::new(fresh));
    }
    if !pure::status_differs(v, h) {
        return VirtualUpdate::None;
    }
    let want = r.virtual_service;
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

struct State {
    vstore: Store<Service>,
    hstore: Store<Service>,
}

/// Runs the Service controller.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue: Arc<Queue<Key>> = Arc::new(Queue::new());
    ctx.metrics.register_queue(KIND, &queue);
    let (vstore, vstream, hstore, hstream) = super::watch_both::<Service>(&ctx, "");
    let resync = super::resync_stores(KIND, vstore.clone(), hstore.clone(), Arc::clone(&queue));
    let state = Arc::new(State { vstore, hstore });
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
            // The cache may not have seen a recreate yet: ask the server.
            if live(&vapi.get_opt(&key.1).await?) {
                return Ok(Some(SHORT));
            }
            mirror::delete_host::<Service>(ctx, h).await?;
        }
        return Ok(None);
    }
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
        HostAction::Create => match api.create(&PostParams::default(), &desired).await {
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
            Err(e) => return Err(e).with_context(|| format!("creating host Service {hname}")),
        },
        HostAction::Conflict(why) => {
            mirror::conflict(ctx, &v, &hname, &why).await?;
            return Ok(None);
        }
        HostAction::Replace => {
            mirror::delete_host::<Service>(ctx, h.as_deref().expect("stale")).await?;
            // The host watch's delete event queues the key again.
            return Ok(Some(Duration::from_secs(1)));
        }
        HostAction::Adopt => {
            let h = h.as_deref().expect("stale");
            record_uid(ctx, h, v.uid().as_deref().unwrap_or_default()).await?
        }
        HostAction::Keep => {
            let h = h.as_deref().expect("owned");
            if pure::needs_update(&desired, h) {
                let mut updated = with_host_allocations(desired, h);
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

/// Records virtual UID `uid` in host Service `h`'s `object-uid` annotation
/// (merge patch guarded by `h`'s resourceVersion); returns the written
/// Service.
async fn record_uid(ctx: &Context, h: &Service, uid: &str) -> anyhow::Result<Service> {
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": h.resource_version(),
            "annotations": { ANNOTATION_OBJECT_UID: uid },
        }
    });
    ctx.host_api::<Service>()
        .patch(
            &h.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .with_context(|| format!("recording the virtual UID on host Service {}", h.name_any()))
}

/// Writes the host's allocations to virtual Service `v` ([`virtual_update`]).
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
        VirtualUpdate::Recreate(fresh) => {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: v.uid(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match vapi.delete(&v.name_any(), &dp).await {
                Ok(_) => {}
                // Already replaced or gone: decide again on the new state.
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => return Ok(Some(SHORT)),
                Err(e) => return Err(e).context("deleting the virtual Service to recreate it"),
            }
            let created = match vapi.create(&PostParams::default(), &fresh).await {
                Ok(c) => c,
                Err(e) => {
                    // Put the tenant's Service back (its own allocations)
                    // rather than leave it missing; retried with backoff.
                    let mut restore = (*fresh).clone();
                    let spec = restore.spec.get_or_insert_with(ServiceSpec::default);
                    if spec.cluster_ip.as_deref() != Some(pure::HEADLESS) {
                        spec.cluster_ip = None;
                        spec.cluster_ips = None;
                    }
                    for p in spec.ports.iter_mut().flatten() {
                        p.node_port = None;
                    }
                    spec.health_check_node_port = None;
                    if let Err(e2) = vapi.create(&PostParams::default(), &restore).await {
                        tracing::warn!(error = %e2, "restoring the virtual Service failed");
                    }
                    return Err(e)
                        .context("recreating the virtual Service with the host's clusterIP");
                }
            };
            record_uid(ctx, h, created.uid().as_deref().unwrap_or_default()).await?;
            ctx.metrics
                .observe_latency(KIND, Direction::HostToVirtual, since.elapsed());
            Ok(None)
        }
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
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, ServicePort, ServiceStatus};

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
    fn stale_host_service_with_the_same_ip_is_adopted_not_replaced() {
        let stale = Ownership::Stale {
            host_uid: "old".into(),
        };
        let host = svc("h", "10.96.5.5", None);
        // The virtual Service was just recreated with the host's IP.
        let recreated = svc("new", "10.96.5.5", None);
        assert_eq!(
            host_action(stale.clone(), &recreated, Some(&host)),
            HostAction::Adopt
        );
        // The tenant deleted and recreated it: a fresh virtual IP.
        let tenant_recreated = svc("new", "10.96.0.9", None);
        assert_eq!(
            host_action(stale.clone(), &tenant_recreated, Some(&host)),
            HostAction::Replace
        );
        let mut no_ip = svc("new", "", None);
        no_ip.spec.as_mut().unwrap().cluster_ip = None;
        let mut host_no_ip = host.clone();
        host_no_ip.spec.as_mut().unwrap().cluster_ip = None;
        assert_eq!(
            host_action(stale, &no_ip, Some(&host_no_ip)),
            HostAction::Replace,
            "no IP is no evidence of a recreate"
        );
        assert_eq!(
            host_action(Ownership::Owned, &recreated, Some(&host)),
            HostAction::Keep
        );
        assert_eq!(
            host_action(Ownership::Absent, &recreated, None),
            HostAction::Create
        );
        assert_eq!(
            host_action(
                Ownership::NotOurs(Mismatch::ManagedBy),
                &recreated,
                Some(&host)
            ),
            HostAction::Conflict(Mismatch::ManagedBy)
        );
    }

    #[test]
    fn differing_cluster_ip_recreates_with_host_allocations_and_tenant_metadata() {
        let v = svc("u1", "10.96.0.9", Some(30001));
        let h = svc("h", "10.96.5.5", Some(31234));
        let VirtualUpdate::Recreate(fresh) = virtual_update(&v, &h) else {
            panic!("expected a recreate");
        };
        let spec = fresh.spec.clone().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.5.5"));
        assert_eq!(spec.cluster_ips, Some(vec!["10.96.5.5".to_string()]));
        assert_eq!(spec.ports.unwrap()[0].node_port, Some(31234));
        assert_eq!(fresh.metadata.uid, None);
        assert_eq!(fresh.metadata.resource_version, None);
        assert_eq!(fresh.metadata.labels, v.metadata.labels);
        assert!(
            fresh
                .metadata
                .annotations
                .unwrap()
                .contains_key("kubectl.kubernetes.io/last-applied-configuration")
        );
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
    fn a_replace_keeps_the_host_allocations() {
        let h = svc("h", "10.96.5.5", Some(31234));
        let mut desired = svc("u1", "", Some(1));
        let spec = desired.spec.as_mut().unwrap();
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        spec.ports.as_mut().unwrap()[0].node_port = None;
        let out = with_host_allocations(desired, &h).spec.unwrap();
        assert_eq!(out.cluster_ip.as_deref(), Some("10.96.5.5"));
        assert_eq!(out.ports.unwrap()[0].node_port, Some(31234));
        let mut cluster_ip = svc("u1", "", None);
        cluster_ip.spec.as_mut().unwrap().cluster_ip = None;
        let out = with_host_allocations(cluster_ip, &h).spec.unwrap();
        assert_eq!(
            out.ports.unwrap()[0].node_port,
            None,
            "a ClusterIP Service has no nodePorts"
        );
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
