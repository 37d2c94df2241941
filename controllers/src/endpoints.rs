//! The endpoints controller: the v1 Endpoints of every Service with a
//! selector, from the pods it selects; plus the pod and port helpers the
//! endpointslice controller shares.
//!
//! Follows k8s.io/kubernetes pkg/controller/endpoint
//! (endpoints_controller.go `syncService`, `addEndpointSubset`) and
//! pkg/api/v1/pod `FindPort`:
//!
//! * a Service without `spec.selector` is left alone (its Endpoints are
//!   someone else's, e.g. the API server's `default/kubernetes`);
//! * a selected pod counts when it has a `podIP`, is not terminal
//!   (`Succeeded`/`Failed`) and is not being deleted (unless the Service
//!   sets `publishNotReadyAddresses`);
//! * a ready pod (or any, with `publishNotReadyAddresses`) goes into
//!   `addresses`, the others into `notReadyAddresses`, each with `ip`,
//!   `nodeName`, `targetRef` and `hostname` (when the pod's `subdomain` is
//!   the Service's name);
//! * each Service port becomes an EndpointPort whose `port` is the
//!   `targetPort`, a named targetPort resolved against the pod's container
//!   ports with the same protocol (a pod lacking it is left out of that
//!   port); a headless Service without ports lists bare addresses;
//! * addresses with the same ports share a subset (`RepackSubsets`), in a
//!   stable order; the Endpoints carry the Service's labels (plus
//!   `service.kubernetes.io/headless` for headless Services);
//! * when the Service is deleted its Endpoints are deleted, if this
//!   controller wrote them (marked with the
//!   `endpoints.kubernetes.io/last-change-trigger-time` annotation).

use crate::{Error, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Container, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod,
    PodSpec, PodStatus, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{self, Action, Controller};
use kube_runtime::reflector::{self, ObjectRef, Store};
use kube_runtime::{WatchStreamExt, watcher};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The label marking headless Services' Endpoints and EndpointSlices
/// (`v1.IsHeadlessService`).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The annotation the endpoints controller stamps on Endpoints it writes
/// (`v1.EndpointsLastChangeTriggerTime`); here it also marks them as this
/// controller's, so only those are deleted with their Service.
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// The port number `port` reaches on `pod` (podutil.FindPort): a numeric
/// `targetPort` as is (absent or 0: the Service port), a named one the
/// `containerPort` of the pod's container port with that name and the
/// Service port's protocol (TCP when unset). `None` when the name is not
/// found.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
        Some(IntOrString::Int(n)) if *n != 0 => Some(*n),
        _ => Some(port.port),
    }
}

/// Whether `svc` has a selector and it selects `pod` (same namespace,
/// every selector label equal; an empty selector selects every pod, as
/// `labels.Set(selector).AsSelectorPreValidated()` does).
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    if pod.metadata.namespace != svc.metadata.namespace {
        return false;
    }
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether the Service has a selector (the endpoints and endpointslice
/// controllers manage nothing for Services without one).
pub fn has_selector(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| s.selector.is_some())
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether the Service publishes not-ready addresses.
pub fn publishes_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Whether the pod's phase is `Succeeded` or `Failed` (podutil.IsPodTerminal).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's IP, when it has one.
pub fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
}

/// A `targetRef` to the pod.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The pod's hostname within the Service: `spec.hostname` when
/// `spec.subdomain` names the Service.
pub fn pod_hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref())
        .then(|| spec.hostname.clone())
        .flatten()
        .filter(|h| !h.is_empty())
}

/// The labels of a Service's Endpoints or EndpointSlices: the Service's
/// own, plus [`HEADLESS_LABEL`] for a headless Service.
pub fn endpoint_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// Drops what the endpoint controllers never read from a cached pod
/// (managed fields, annotations, everything of containers but their
/// ports, most of the status) to keep the reflector store small.
pub fn trim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.owner_references = None;
    if let Some(spec) = pod.spec.take() {
        pod.spec = Some(PodSpec {
            node_name: spec.node_name,
            hostname: spec.hostname,
            subdomain: spec.subdomain,
            containers: spec
                .containers
                .into_iter()
                .map(|c| Container {
                    name: c.name,
                    ports: c.ports,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
    if let Some(status) = pod.status.take() {
        pod.status = Some(PodStatus {
            phase: status.phase,
            pod_ip: status.pod_ip,
            pod_ips: status.pod_ips,
            conditions: status.conditions,
            ..Default::default()
        });
    }
}

/// The `subsets` the Endpoints of `svc` should have for the pods of its
/// namespace (`pods`, in any order; those the selector does not match are
/// ignored). `None` when the Service has no selector (the controller
/// leaves its Endpoints alone).
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Option<Vec<EndpointSubset>> {
    if !has_selector(svc) {
        return None;
    }
    let tolerate_unready = publishes_not_ready(svc);
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    // ports of a subset -> (ready, not ready) addresses
    type Addresses = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<Vec<(String, i32, String, String)>, Addresses> = BTreeMap::new();
    for pod in pods.iter().filter(|p| selects(svc, p)) {
        let Some(ip) = pod_ip(pod) else { continue };
        if is_terminal(pod) || (!tolerate_unready && pod.metadata.deletion_timestamp.is_some()) {
            continue;
        }
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname: pod_hostname(svc, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
        };
        let ready = tolerate_unready || crate::util::is_pod_ready(pod);
        let key: Vec<_> = if ports.is_empty() {
            if !is_headless(svc) {
                continue;
            }
            Vec::new()
        } else {
            let resolved: Vec<_> = ports
                .iter()
                .filter_map(|p| {
                    find_port(pod, p).map(|n| {
                        (
                            p.name.clone().unwrap_or_default(),
                            n,
                            p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                            p.app_protocol.clone().unwrap_or_default(),
                        )
                    })
                })
                .collect();
            if resolved.is_empty() {
                continue;
            }
            resolved
        };
        let entry = groups.entry(key).or_default();
        if ready {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let sort = |v: &mut Vec<EndpointAddress>| {
        v.sort_by(|a, b| {
            (&a.ip, a.target_ref.as_ref().map(|r| &r.name))
                .cmp(&(&b.ip, b.target_ref.as_ref().map(|r| &r.name)))
        })
    };
    Some(
        groups
            .into_iter()
            .map(|(key, (mut ready, mut not_ready))| {
                sort(&mut ready);
                sort(&mut not_ready);
                EndpointSubset {
                    addresses: (!ready.is_empty()).then_some(ready),
                    not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                    ports: (!key.is_empty()).then(|| {
                        key.into_iter()
                            .map(|(name, port, protocol, app_protocol)| EndpointPort {
                                name: (!name.is_empty()).then_some(name),
                                port,
                                protocol: Some(protocol),
                                app_protocol: (!app_protocol.is_empty()).then_some(app_protocol),
                            })
                            .collect()
                    }),
                }
            })
            .collect(),
    )
}

/// What the endpoints controller does for one Service.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointsPlan {
    /// Nothing: no selector, or the Endpoints are as they should be.
    Nothing,
    /// Create these Endpoints.
    Create(Endpoints),
    /// Replace the existing Endpoints with these (resourceVersion kept).
    Update(Endpoints),
}

/// The endpoints controller's decision for `svc`, the pods of its
/// namespace and its current Endpoints (`existing`): create or rewrite
/// them when `subsets` or labels differ (syncService).
pub fn plan_endpoints(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: Option<&Endpoints>,
) -> EndpointsPlan {
    let Some(subsets) = desired_subsets(svc, pods) else {
        return EndpointsPlan::Nothing;
    };
    let labels = endpoint_labels(svc);
    let stamp = |mut e: Endpoints| {
        e.subsets = Some(subsets.clone());
        e.metadata.labels = Some(labels.clone());
        e.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(TRIGGER_TIME.into(), jiff::Timestamp::now().to_string());
        e
    };
    match existing {
        None => EndpointsPlan::Create(stamp(Endpoints {
            metadata: ObjectMeta {
                name: svc.metadata.name.clone(),
                namespace: svc.metadata.namespace.clone(),
                ..Default::default()
            },
            subsets: None,
        })),
        Some(e) => {
            let same_subsets = e.subsets.as_deref().unwrap_or_default() == subsets.as_slice();
            let same_labels = e.metadata.labels.clone().unwrap_or_default() == labels;
            if same_subsets && same_labels {
                EndpointsPlan::Nothing
            } else {
                let mut e = e.clone();
                e.metadata.managed_fields = None;
                EndpointsPlan::Update(stamp(e))
            }
        }
    }
}

/// A pod stream reflected into a trimmed store, shared by both endpoint
/// controllers' `run`.
pub(crate) fn pod_store(
    client: &Client,
) -> (
    Store<Pod>,
    impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
) {
    let (pods, writer) = reflector::store();
    let stream = watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(trim_pod)
        .reflect(writer)
        .touched_objects();
    (pods, stream)
}

/// The Services to look at again after a change to `pod`: every Service of
/// its namespace (a relabelled pod may have left one selector and entered
/// another).
pub(crate) fn services_of_namespace(
    services: &Store<Service>,
    namespace: Option<&str>,
) -> Vec<ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == namespace)
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

/// The pods of `namespace` in `pods`.
pub(crate) fn pods_of_namespace(pods: &Store<Pod>, namespace: &str) -> Vec<Arc<Pod>> {
    pods.state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
        .collect()
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
}

fn conflict_or_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 404 | 409))
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let existing = ctx.endpoints.get(&ObjectRef::new(&name).within(&ns));
    let pods = pods_of_namespace(&ctx.pods, &ns);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let result = match plan_endpoints(&svc, &pods, existing.as_deref()) {
        EndpointsPlan::Nothing => return Ok(Action::await_change()),
        EndpointsPlan::Create(e) => api.create(&PostParams::default(), &e).await,
        EndpointsPlan::Update(e) => api.replace(&name, &PostParams::default(), &e).await,
    };
    match result {
        Ok(_) => Ok(Action::await_change()),
        // The store lags behind (409) or the namespace is going (404/403):
        // look again shortly.
        Err(e) if conflict_or_gone(&e) => Ok(Action::requeue(Duration::from_millis(200))),
        Err(e) => Err(Error::Kube(e)),
    }
}

fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(service = %svc.name_any(), error = %err, "endpoints sync failed");
    Action::requeue(Duration::from_secs(1))
}

/// Deletes the Endpoints of a Service that is gone, when this controller
/// wrote them.
async fn delete_orphan(ctx: &Ctx, svc: &ObjectRef<kube::api::DynamicObject>) {
    let Some(ns) = svc.namespace.as_deref() else {
        return;
    };
    let ours = ctx
        .endpoints
        .get(&ObjectRef::new(&svc.name).within(ns))
        .is_some_and(|e| e.annotations().contains_key(TRIGGER_TIME));
    if ours {
        let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
        if let Err(e) = api.delete(&svc.name, &DeleteParams::default()).await
            && !conflict_or_gone(&e)
        {
            tracing::warn!(service = %svc.name, error = %e, "deleting endpoints failed");
        }
    }
}

/// Runs the endpoints controller until the process ends: watches on
/// Services, pods (trimmed, see [`trim_pod`]) and Endpoints; a deleted
/// Service surfaces as kube-runtime's `ObjectNotFound` and has its
/// Endpoints deleted.
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
    let (endpoints, ep_writer) = reflector::store();
    let ep_stream = watcher::watcher(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|e: &mut Endpoints| e.metadata.managed_fields = None)
    .reflect(ep_writer)
    .touched_objects();
    let ctx = Arc::new(Ctx {
        client,
        pods,
        endpoints,
    });
    let by_pod = services.clone();
    Controller::for_stream(svc_stream, services)
        .watches_stream(pod_stream, move |pod| {
            services_of_namespace(&by_pod, pod.metadata.namespace.as_deref())
        })
        .watches_stream(ep_stream, |e| {
            Some(ObjectRef::new(&e.name_any()).within(&e.namespace().unwrap_or_default()))
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
                    delete_orphan(&ctx, &svc).await;
                }
            }
        })
        .await;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
            "spec": spec,
        }))
        .unwrap()
    }

    /// A pod `name` labelled app=web with a container port `http`=8080.
    pub(crate) fn pod(name: &str, ip: Option<&str>, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                             "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                         "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": ip,
                           "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
            }))
            .unwrap(),
        )
    }

    pub(crate) fn web_ports() -> serde_json::Value {
        json!({
            "selector": {"app": "web"},
            "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
                      {"name": "metrics", "port": 9090, "targetPort": 9100, "protocol": "TCP"}],
        })
    }

    fn summary(subsets: &[EndpointSubset]) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
        subsets
            .iter()
            .map(|s| {
                let ips = |a: &Option<Vec<EndpointAddress>>| {
                    a.iter().flatten().map(|a| a.ip.clone()).collect()
                };
                (
                    ips(&s.addresses),
                    ips(&s.not_ready_addresses),
                    s.ports
                        .iter()
                        .flatten()
                        .map(|p| format!("{}={}", p.name.clone().unwrap_or_default(), p.port))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn subsets_from_selected_pods() {
        let mut other = (*pod("other", Some("10.0.0.9"), true)).clone();
        other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        let mut gone = (*pod("gone", Some("10.0.0.8"), true)).clone();
        gone.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let mut done = (*pod("done", Some("10.0.0.7"), false)).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut unnamed = (*pod("unnamed", Some("10.0.0.6"), true)).clone();
        unnamed.spec.as_mut().unwrap().containers[0].ports = None;
        let pods = vec![
            pod("b", Some("10.0.0.2"), true),
            pod("a", Some("10.0.0.1"), true),
            pod("slow", Some("10.0.0.3"), false),
            pod("pending", None, false),
            Arc::new(other),
            Arc::new(gone),
            Arc::new(done),
            Arc::new(unnamed),
        ];
        /// Ready IPs, not-ready IPs, `name=port`s of one subset.
        type Subset = (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>);
        struct Case {
            what: &'static str,
            spec: serde_json::Value,
            want: Option<Vec<Subset>>,
        }
        let publish = {
            let mut s = web_ports();
            s["publishNotReadyAddresses"] = json!(true);
            s
        };
        let cases = [
            Case {
                what: "named and numeric target ports; a pod without the named port keeps the numeric one",
                spec: web_ports(),
                want: Some(vec![
                    (vec!["10.0.0.6"], vec![], vec!["metrics=9100"]),
                    (
                        vec!["10.0.0.1", "10.0.0.2"],
                        vec!["10.0.0.3"],
                        vec!["web=8080", "metrics=9100"],
                    ),
                ]),
            },
            Case {
                what: "publishNotReadyAddresses: every pod with an IP is ready, terminating ones too",
                spec: publish,
                want: Some(vec![
                    (vec!["10.0.0.6"], vec![], vec!["metrics=9100"]),
                    (
                        vec!["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.8"],
                        vec![],
                        vec!["web=8080", "metrics=9100"],
                    ),
                ]),
            },
            Case {
                what: "headless without ports: bare addresses",
                spec: json!({"selector": {"app": "web"}, "clusterIP": "None"}),
                want: Some(vec![(
                    vec!["10.0.0.1", "10.0.0.2", "10.0.0.6"],
                    vec!["10.0.0.3"],
                    vec![],
                )]),
            },
            Case {
                what: "no matching pods: no subsets",
                spec: json!({"selector": {"app": "none"}, "ports": [{"port": 80}]}),
                want: Some(vec![]),
            },
            Case {
                what: "no selector: not managed",
                spec: json!({"ports": [{"port": 80}]}),
                want: None,
            },
        ];
        for c in cases {
            let got = desired_subsets(&service(c.spec), &pods).map(|s| summary(&s));
            let want = c.want.map(|w| {
                w.into_iter()
                    .map(|(a, n, p)| {
                        let s = |v: Vec<&str>| v.into_iter().map(String::from).collect();
                        (s(a), s(n), s(p))
                    })
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "{}", c.what);
        }
    }

    #[test]
    fn addresses_carry_target_ref_node_and_hostname() {
        let mut p = (*pod("a", Some("10.0.0.1"), true)).clone();
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("a-host".into());
        spec.subdomain = Some("web".into());
        let subsets = desired_subsets(&service(web_ports()), &[Arc::new(p)]).unwrap();
        let a = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(a.hostname.as_deref(), Some("a-host"));
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );
    }

    #[test]
    fn plan_creates_updates_or_leaves_alone() {
        let svc = service(web_ports());
        let pods = vec![pod("a", Some("10.0.0.1"), true)];
        let EndpointsPlan::Create(created) = plan_endpoints(&svc, &pods, None) else {
            panic!("create expected")
        };
        assert_eq!(created.metadata.name.as_deref(), Some("web"));
        assert_eq!(created.labels().get("team").map(String::as_str), Some("a"));
        assert!(created.annotations().contains_key(TRIGGER_TIME));
        assert_eq!(
            plan_endpoints(&svc, &pods, Some(&created)),
            EndpointsPlan::Nothing
        );
        let unready = vec![pod("a", Some("10.0.0.1"), false)];
        let EndpointsPlan::Update(updated) = plan_endpoints(&svc, &unready, Some(&created)) else {
            panic!("update expected")
        };
        assert_eq!(
            summary(updated.subsets.as_deref().unwrap()),
            [(
                vec![],
                vec!["10.0.0.1".to_string()],
                vec!["web=8080".to_string(), "metrics=9100".to_string()]
            )]
        );
        let headless = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let EndpointsPlan::Create(h) = plan_endpoints(&headless, &pods, None) else {
            panic!("create expected")
        };
        assert_eq!(h.labels().get(HEADLESS_LABEL).map(String::as_str), Some(""));
        let selectorless = service(json!({"ports": [{"port": 443}]}));
        assert_eq!(
            plan_endpoints(&selectorless, &pods, None),
            EndpointsPlan::Nothing
        );
    }

    #[test]
    fn find_port_resolves_names_by_protocol() {
        let p = pod("a", Some("10.0.0.1"), true);
        let port = |v: serde_json::Value| -> ServicePort { serde_json::from_value(v).unwrap() };
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": "http"}))),
            Some(8080)
        );
        assert_eq!(
            find_port(
                &p,
                &port(json!({"port": 80, "targetPort": "http", "protocol": "UDP"}))
            ),
            None
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": "nope"}))),
            None
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": 81}))),
            Some(81)
        );
        assert_eq!(find_port(&p, &port(json!({"port": 80}))), Some(80));
    }

    #[test]
    fn trimmed_pods_keep_what_planning_reads() {
        let svc = service(web_ports());
        let pods = vec![
            pod("a", Some("10.0.0.1"), true),
            pod("b", Some("10.0.0.2"), false),
        ];
        let trimmed: Vec<_> = pods
            .iter()
            .map(|p| {
                let mut p = (**p).clone();
                trim_pod(&mut p);
                Arc::new(p)
            })
            .collect();
        assert_eq!(
            desired_subsets(&svc, &pods),
            desired_subsets(&svc, &trimmed)
        );
    }
}
