//! The endpointslice controller: the discovery.k8s.io/v1 EndpointSlices of
//! every Service with a selector, from the pods it selects.
//!
//! Follows k8s.io/kubernetes pkg/controller/endpointslice
//! (endpointslice_controller.go `syncService`, staging
//! endpointslice/reconciler.go `reconcile`, utils.go `podToEndpoint`,
//! `newEndpointSlice`):
//!
//! * a selected pod with an IP of the Service's address family that is not
//!   terminal becomes an endpoint, terminating pods included, with
//!   conditions `serving` (pod Ready), `terminating` (being deleted) and
//!   `ready` (serving and not terminating, or always with
//!   `publishNotReadyAddresses`), `targetRef`, `nodeName` and `hostname`;
//! * endpoints are grouped by their resolved ports (see
//!   [`crate::endpoints::find_port`]) and cut into slices of at most
//!   [`MAX_ENDPOINTS_PER_SLICE`], in a stable order; a Service with no
//!   endpoints keeps one empty placeholder slice;
//! * every slice has `generateName: <service>-`, the labels
//!   `kubernetes.io/service-name` and
//!   `endpointslice.kubernetes.io/managed-by:
//!   endpointslice-controller.k8s.io` plus the Service's own, and a
//!   controller ownerReference to the Service;
//! * existing slices are reused for a group with the same ports (updated
//!   only when they differ), extra ones are deleted, missing ones created
//!   ([`plan`], pure; simpler than upstream's packing, which also fills
//!   partly full slices to save writes);
//! * a Service that loses its selector loses its slices; a deleted
//!   Service's slices are deleted (the garbage collector would also
//!   delete them through the ownerReference).

use crate::endpoints::{
    endpoint_labels, find_port, pod_hostname, pod_ip, pod_ref, pod_store, pods_of_namespace,
    publishes_not_ready, selects, services_of_namespace,
};
use crate::{Error, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{self, Action, Controller};
use kube_runtime::reflector::{self, ObjectRef, Store};
use kube_runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The label naming a slice's Service (`discovery.LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The label naming a slice's manager (`discovery.LabelManagedBy`).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// This controller's value of [`MANAGED_BY_LABEL`]
/// (`endpointslice-controller.k8s.io`).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Most endpoints in one slice (kube-controller-manager's
/// `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The address type of the Service's slices: its first IP family
/// (`IPv4` when unset).
pub fn address_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .map_or("IPv4", String::as_str)
}

/// The endpoint of `pod` in `svc`'s slices, with the ports it resolves;
/// `None` when the pod does not belong (no IP of the address type, or
/// terminal) (podToEndpoint, ShouldPodBeInEndpoints with terminating pods).
pub fn pod_endpoint(svc: &Service, pod: &Pod) -> Option<(Vec<EndpointPort>, Endpoint)> {
    let ip = pod_ip(pod)?;
    if crate::endpoints::is_terminal(pod) || ip.contains(':') != (address_type(svc) == "IPv6") {
        return None;
    }
    let serving = crate::util::is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publishes_not_ready(svc) || (serving && !terminating);
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            find_port(pod, p).map(|n| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(n),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect();
    let endpoint = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pod_hostname(svc, pod),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(pod_ref(pod)),
        ..Default::default()
    };
    Some((ports, endpoint))
}

/// The labels of `svc`'s slices.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = endpoint_labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

/// The slices `svc` should have (names unset): `None` when it has no
/// selector.
pub fn desired(svc: &Service, pods: &[Arc<Pod>]) -> Option<Vec<EndpointSlice>> {
    if !crate::endpoints::has_selector(svc) {
        return None;
    }
    let mut groups: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for pod in pods.iter().filter(|p| selects(svc, p)) {
        let Some((ports, endpoint)) = pod_endpoint(svc, pod) else {
            continue;
        };
        match groups.iter_mut().find(|(p, _)| *p == ports) {
            Some((_, eps)) => eps.push(endpoint),
            None => groups.push((ports, vec![endpoint])),
        }
    }
    let key = |p: &Vec<EndpointPort>| format!("{p:?}");
    groups.sort_by_key(|(p, _)| key(p));
    let slice = |ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>| EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![crate::util::controller_ref(
                "v1",
                "Service",
                &svc.metadata,
            )]),
            ..Default::default()
        },
        address_type: address_type(svc).to_string(),
        endpoints: Some(endpoints),
        ports: Some(ports),
    };
    if groups.is_empty() {
        return Some(vec![slice(Vec::new(), Vec::new())]);
    }
    let mut out = Vec::new();
    for (ports, mut endpoints) in groups {
        endpoints.sort_by(|a, b| {
            (&a.addresses, a.target_ref.as_ref().map(|r| &r.name))
                .cmp(&(&b.addresses, b.target_ref.as_ref().map(|r| &r.name)))
        });
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push(slice(ports.clone(), chunk.to_vec()));
        }
    }
    Some(out)
}

/// Writes that bring a Service's slices to the desired state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Slices to create (with `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices rewritten (name and resourceVersion kept).
    pub update: Vec<EndpointSlice>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

impl Plan {
    /// Whether nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// A slice's endpoints (none when unset).
pub fn endpoints_of(s: &EndpointSlice) -> &[Endpoint] {
    s.endpoints.as_deref().unwrap_or_default()
}

fn same_content(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.address_type == b.address_type
        && endpoints_of(a) == endpoints_of(b)
        && a.ports.as_deref().unwrap_or_default() == b.ports.as_deref().unwrap_or_default()
        && a.metadata.labels == b.metadata.labels
        && a.metadata.owner_references == b.metadata.owner_references
}

/// The writes for `svc`, the pods of its namespace and its current managed
/// slices (`existing`): each desired slice takes an unused existing slice
/// with the same address type and ports (one already equal first), which
/// is rewritten only if it differs; leftovers are created or deleted.
pub fn plan(svc: &Service, pods: &[Arc<Pod>], existing: &[Arc<EndpointSlice>]) -> Plan {
    let mut plan = Plan::default();
    let Some(wanted) = desired(svc, pods) else {
        plan.delete = existing.iter().map(|s| s.name_any()).collect();
        return plan;
    };
    let mut existing: Vec<&EndpointSlice> = existing.iter().map(|s| &**s).collect();
    existing.sort_by_key(|s| s.name_any());
    let mut used = vec![false; existing.len()];
    let mut unmatched = Vec::new();
    // Equal slices first, so a reshuffle does not rewrite them.
    for w in wanted {
        match (0..existing.len()).find(|&i| !used[i] && same_content(existing[i], &w)) {
            Some(i) => used[i] = true,
            None => unmatched.push(w),
        }
    }
    for w in unmatched {
        let fits = |s: &EndpointSlice| {
            s.address_type == w.address_type
                && s.ports.as_deref().unwrap_or_default() == w.ports.as_deref().unwrap_or_default()
        };
        match (0..existing.len()).find(|&i| !used[i] && fits(existing[i])) {
            Some(i) => {
                used[i] = true;
                let mut s = existing[i].clone();
                s.metadata.managed_fields = None;
                s.metadata.labels = w.metadata.labels;
                s.metadata.owner_references = w.metadata.owner_references;
                s.endpoints = w.endpoints;
                plan.update.push(s);
            }
            None => plan.create.push(w),
        }
    }
    plan.delete = existing
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(s, _)| s.name_any())
        .collect();
    plan
}

/// Writes whose effect the slice store has not shown yet, per Service (the
/// upstream endpointSliceTracker): a reconcile waits for them rather than
/// plan from a stale store and create duplicates.
#[derive(Default)]
struct Pending {
    /// name -> resourceVersion the store must show (`None`: absent).
    writes: HashMap<String, Option<String>>,
    since: Option<Instant>,
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    pending: Mutex<HashMap<ObjectRef<Service>, Pending>>,
}

impl Ctx {
    fn slices_of(&self, ns: &str, service: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .state()
            .into_iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(ns)
                    && s.labels().get(SERVICE_NAME_LABEL).map(String::as_str) == Some(service)
            })
            .collect()
    }

    /// Whether the store reflects every write made for `svc` (forgotten
    /// after 5 s in case a watch event was lost).
    fn caught_up(&self, svc: &ObjectRef<Service>) -> bool {
        let mut pending = self.pending.lock().unwrap();
        let Some(p) = pending.get(svc) else {
            return true;
        };
        let ns = svc.namespace.as_deref().unwrap_or_default();
        let seen = p.writes.iter().all(|(name, rv)| {
            let stored = self.slices.get(&ObjectRef::new(name).within(ns));
            match rv {
                None => stored.is_none(),
                Some(rv) => stored.is_some_and(|s| {
                    s.resource_version()
                        .and_then(|v| v.parse::<u64>().ok())
                        .zip(rv.parse::<u64>().ok())
                        .map_or(s.resource_version().as_ref() == Some(rv), |(a, b)| a >= b)
                }),
            }
        });
        let expired = p
            .since
            .is_some_and(|t| t.elapsed() > Duration::from_secs(5));
        if seen || expired {
            pending.remove(svc);
            true
        } else {
            false
        }
    }

    fn expect(&self, svc: ObjectRef<Service>, writes: HashMap<String, Option<String>>) {
        if writes.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap();
        let p = pending.entry(svc).or_default();
        p.writes.extend(writes);
        p.since.get_or_insert_with(Instant::now);
    }
}

fn conflict_or_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 404 | 409))
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    let key = ObjectRef::from_obj(&*svc);
    if !ctx.caught_up(&key) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let ns = svc.namespace().unwrap_or_default();
    let existing = ctx.slices_of(&ns, &svc.name_any());
    let pods = pods_of_namespace(&ctx.pods, &ns);
    let plan = plan(&svc, &pods, &existing);
    if plan.is_empty() {
        return Ok(Action::await_change());
    }
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PostParams::default();
    let mut writes = HashMap::new();
    let mut first_error = None;
    let mut retry = false;
    for s in &plan.create {
        match api.create(&pp, s).await {
            Ok(c) => {
                writes.insert(c.name_any(), c.resource_version());
            }
            Err(e) if conflict_or_gone(&e) => retry = true,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for s in &plan.update {
        match api.replace(&s.name_any(), &pp, s).await {
            Ok(c) => {
                writes.insert(c.name_any(), c.resource_version());
            }
            Err(e) if conflict_or_gone(&e) => retry = true,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for name in &plan.delete {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                writes.insert(name.clone(), None);
            }
            Err(e) if conflict_or_gone(&e) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    ctx.expect(key, writes);
    if let Some(e) = first_error {
        return Err(Error::Kube(e));
    }
    Ok(if retry {
        Action::requeue(Duration::from_millis(200))
    } else {
        Action::await_change()
    })
}

fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(service = %svc.name_any(), error = %err, "endpointslice sync failed");
    Action::requeue(Duration::from_secs(1))
}

/// Deletes the managed slices of a Service that is gone.
async fn delete_orphans(ctx: &Ctx, svc: &ObjectRef<kube::api::DynamicObject>) {
    let Some(ns) = svc.namespace.as_deref() else {
        return;
    };
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    for s in ctx.slices_of(ns, &svc.name) {
        if let Err(e) = api.delete(&s.name_any(), &DeleteParams::default()).await
            && !conflict_or_gone(&e)
        {
            tracing::warn!(service = %svc.name, error = %e, "deleting endpointslice failed");
        }
    }
}

/// Runs the endpointslice controller until the process ends: watches on
/// Services, pods (trimmed) and the slices labelled as this controller's.
pub async fn run(client: Client) {
    let (services, svc_writer) = reflector::store();
    let svc_stream = watcher::watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(svc_writer)
    .touched_objects();
    let (pods, pod_stream) = pod_store(&client);
    let (slices, slice_writer) = reflector::store();
    let slice_stream = watcher::watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
    )
    .default_backoff()
    .modify(|s: &mut EndpointSlice| s.metadata.managed_fields = None)
    .reflect(slice_writer)
    .touched_objects();
    let ctx = Arc::new(Ctx {
        client,
        pods,
        slices,
        pending: Mutex::new(HashMap::new()),
    });
    let by_pod = services.clone();
    Controller::for_stream(svc_stream, services)
        .watches_stream(pod_stream, move |pod| {
            services_of_namespace(&by_pod, pod.metadata.namespace.as_deref())
        })
        .watches_stream(slice_stream, |s| {
            let ns = s.namespace().unwrap_or_default();
            s.labels()
                .get(SERVICE_NAME_LABEL)
                .map(|name| ObjectRef::new(name).within(&ns))
        })
        .run(
            crate::measured(reconcile),
            crate::counted(error_policy),
            ctx.clone(),
        )
        .for_each(|r| {
            let ctx = ctx.clone();
            async move {
                if let Err(controller::Error::ObjectNotFound(svc)) = r {
                    delete_orphans(&ctx, &svc).await;
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::tests::{pod, service, web_ports};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn svc() -> Service {
        let mut s = service(web_ports());
        s.metadata.uid = Some("svc-uid".into());
        s
    }

    /// (ready, serving, terminating) per address.
    fn conditions(s: &EndpointSlice) -> Vec<(String, bool, bool, bool)> {
        endpoints_of(s)
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap();
                (
                    e.addresses[0].clone(),
                    c.ready.unwrap(),
                    c.serving.unwrap(),
                    c.terminating.unwrap(),
                )
            })
            .collect()
    }

    fn ports(s: &EndpointSlice) -> Vec<(String, i32)> {
        s.ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap(), p.port.unwrap()))
            .collect()
    }

    #[test]
    fn endpoints_with_conditions_grouped_by_ports() {
        let mut terminating = (*pod("t", Some("10.0.0.4"), true)).clone();
        terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut unnamed = (*pod("u", Some("10.0.0.6"), true)).clone();
        unnamed.spec.as_mut().unwrap().containers[0].ports = None;
        let pods = vec![
            pod("b", Some("10.0.0.2"), true),
            pod("a", Some("10.0.0.1"), false),
            pod("p", None, true),
            Arc::new(terminating),
            Arc::new(unnamed),
        ];
        let slices = desired(&svc(), &pods).unwrap();
        let got: Vec<_> = slices.iter().map(|s| (ports(s), conditions(s))).collect();
        let c = |ip: &str, r, s, t| (ip.to_string(), r, s, t);
        assert_eq!(
            got,
            [
                (
                    vec![("metrics".into(), 9100)],
                    vec![c("10.0.0.6", true, true, false)]
                ),
                (
                    vec![("web".into(), 8080), ("metrics".into(), 9100)],
                    vec![
                        c("10.0.0.1", false, false, false),
                        c("10.0.0.2", true, true, false),
                        c("10.0.0.4", false, true, true),
                    ]
                ),
            ]
        );
        let s = &slices[1];
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        let labels = s.metadata.labels.clone().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels["team"], "a");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("Service", "web", "svc-uid", Some(true))
        );
        let e = &endpoints_of(s)[0];
        assert_eq!(e.node_name.as_deref(), Some("n1"));
        assert_eq!(e.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));

        // publishNotReadyAddresses: every endpoint is ready.
        let mut publish = svc();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let slices = desired(&publish, &pods).unwrap();
        assert!(slices.iter().all(|s| conditions(s).iter().all(|c| c.1)));
    }

    #[test]
    fn placeholder_chunks_and_no_selector() {
        let empty = desired(&svc(), &[]).unwrap();
        assert_eq!(empty.len(), 1);
        assert!(endpoints_of(&empty[0]).is_empty() && ports(&empty[0]).is_empty());
        let many: Vec<_> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    Some(&format!("10.1.{}.{}", i / 200, i % 200)),
                    true,
                )
            })
            .collect();
        let sizes: Vec<_> = desired(&svc(), &many)
            .unwrap()
            .iter()
            .map(|s| endpoints_of(s).len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(
            desired(&service(json!({"ports": [{"port": 80}]})), &many),
            None
        );
    }

    fn named(mut s: EndpointSlice, name: &str) -> Arc<EndpointSlice> {
        s.metadata.name = Some(name.into());
        s.metadata.resource_version = Some("7".into());
        Arc::new(s)
    }

    #[test]
    fn plan_reuses_updates_creates_and_deletes() {
        let svc = svc();
        let one = vec![pod("a", Some("10.0.0.1"), true)];
        let two = vec![
            pod("a", Some("10.0.0.1"), true),
            pod("b", Some("10.0.0.2"), true),
        ];

        // Nothing yet: create one slice.
        let p = plan(&svc, &one, &[]);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 0));
        let current = named(p.create[0].clone(), "web-abc");

        // In step: nothing to write.
        assert!(plan(&svc, &one, std::slice::from_ref(&current)).is_empty());

        // A new pod: the slice is rewritten in place.
        let p = plan(&svc, &two, std::slice::from_ref(&current));
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].metadata.name.as_deref(), Some("web-abc"));
        assert_eq!(p.update[0].metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(endpoints_of(&p.update[0]).len(), 2);

        // A duplicate slice is deleted; the equal one kept.
        let dup = named(p.update[0].clone(), "web-dup");
        let p = plan(&svc, &two, &[current.clone(), dup]);
        assert_eq!(p.delete, ["web-abc"]);
        assert!(p.create.is_empty() && p.update.is_empty());

        // The selector goes: every slice goes.
        let mut selectorless = svc.clone();
        selectorless.spec.as_mut().unwrap().selector = None;
        assert_eq!(
            plan(&selectorless, &two, std::slice::from_ref(&current)).delete,
            ["web-abc"]
        );
    }
}
