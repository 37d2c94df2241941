//! The API server's Prometheus metrics, served on `/metrics` with
//! kube-apiserver's names, labels and buckets (k8s.io/apiserver
//! `pkg/endpoints/metrics`, `pkg/storage`), so the API server dashboards
//! and alerts written for Kubernetes (kubernetes-mixin) read a virtual
//! cluster unchanged:
//!
//! * `apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,component,code}`;
//! * `apiserver_request_duration_seconds{…}` (not for long-running
//!   requests, whose duration is their connection's) and
//!   `apiserver_request_sli_duration_seconds{…}`, the latency the API
//!   server's SLO rules read (kube subtracts webhook calls and fair-queue
//!   waits from it; here it is the whole duration, an upper bound);
//! * `apiserver_response_sizes{verb,group,version,resource,subresource,scope,component}`
//!   (reads only, `GET` and `LIST`, as kube);
//! * `apiserver_current_inflight_requests{request_kind}` (`readOnly`,
//!   `mutating`: requests holding a seat of the server's limits when
//!   scraped) and `apiserver_longrunning_requests{…}`;
//! * `apiserver_watch_events_total{group,version,kind}`;
//! * `apiserver_storage_objects{resource}`, counted when scraped, at most
//!   once a minute, and `etcd_request_duration_seconds{operation,type}`,
//!   the store's latency under kube's name ([`MeteredStore`]);
//! * `process_*` of this process ([`ProcessCollector`]);
//! * the `workqueue_*` series of the controllers and syncer that run
//!   beside the server, registered in the same registry.
//!
//! Label values never come from object or user names: a path that names no
//! served resource is counted under `resource="unknown"` with empty group
//! and version, and verbs outside kube's set under `verb="other"`, so no
//! tenant can grow the series without bound (a custom resource counts once
//! its CRD is established, as in kube-apiserver, and its series go when it
//! is no longer served).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use vkube_core::monitoring::{SharedRegistry, WorkqueueMetrics};

use crate::filters::authorization::rbac::Request as Attributes;

/// `apiserver_request_duration_seconds` buckets, in seconds
/// (k8s.io/apiserver `pkg/endpoints/metrics`).
pub const REQUEST_DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The value of `component` on every request series (kube-apiserver's own).
const COMPONENT: &str = "apiserver";

/// The labels every request series shares: what kube-apiserver reports of
/// a request ([`RequestInfo::of`]).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestInfo {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`,
    /// `CONNECT` (log, exec, attach, port-forward, proxy) or `other`; the
    /// HTTP method for a non-resource request (`HEAD` as `GET`).
    pub verb: &'static str,
    /// API group; empty for core and non-resource requests.
    pub group: String,
    /// API version; empty for non-resource requests.
    pub version: String,
    /// Resource (plural); `unknown` when the path names none served.
    pub resource: String,
    /// Subresource, or empty.
    pub subresource: String,
    /// `resource` (one object, or a create), `namespace`, `cluster`, or
    /// empty for a non-resource request.
    pub scope: &'static str,
    /// Always `apiserver`.
    pub component: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DryRunLabels {
    #[prometheus(flatten)]
    info: RequestInfo,
    dry_run: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    #[prometheus(flatten)]
    info: RequestInfo,
    dry_run: &'static str,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestKind {
    request_kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    group: String,
    version: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_duration_histogram() -> Histogram {
    Histogram::new(REQUEST_DURATION_BUCKETS)
}

/// `apiserver_request_sli_duration_seconds` buckets, in seconds.
pub const REQUEST_SLI_DURATION_BUCKETS: [f64; 21] = [
    0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
    30.0, 45.0, 60.0,
];

fn request_sli_duration_histogram() -> Histogram {
    Histogram::new(REQUEST_SLI_DURATION_BUCKETS)
}

/// `apiserver_response_sizes` buckets: 1 kB to 1 GB by powers of ten.
fn response_size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1000.0, 10.0, 7))
}

/// Subresources reported as verb `CONNECT` (kube's
/// `validConnectRequests`).
const CONNECT_SUBRESOURCES: [&str; 5] = ["log", "exec", "portforward", "attach", "proxy"];

impl RequestInfo {
    /// What is reported of a request with authorization `attributes`, API
    /// `version` (the path's), and whether it is a server-side apply patch
    /// (pure; kube's `CleanScope`, `CanonicalVerb` and `cleanVerb`: the
    /// verb comes from the HTTP method, so a delete-collection is a
    /// `DELETE` and a `HEAD` a `GET`). `served(group, version,
    /// resource, subresource)` says whether the path names a served
    /// resource; when it does not, group, version and subresource are
    /// empty and resource is `unknown`.
    pub fn of(
        attributes: &Attributes,
        version: &str,
        apply: bool,
        served: impl FnOnce(&str, &str, &str, &str) -> bool,
    ) -> Self {
        match attributes {
            Attributes::NonResource { verb, .. } => Self {
                verb: match verb.as_str() {
                    "get" | "head" => "GET",
                    "post" => "POST",
                    "put" => "PUT",
                    "patch" => "PATCH",
                    "delete" => "DELETE",
                    _ => "other",
                },
                group: String::new(),
                version: String::new(),
                resource: String::new(),
                subresource: String::new(),
                scope: "",
                component: COMPONENT,
            },
            Attributes::Resource {
                verb,
                namespace,
                group,
                resource,
                subresource,
                name,
            } => {
                let reported = if CONNECT_SUBRESOURCES.contains(&subresource.as_str()) {
                    "CONNECT"
                } else {
                    match verb.as_str() {
                        "get" => "GET",
                        "list" => "LIST",
                        "watch" => "WATCH",
                        "create" => "POST",
                        "update" => "PUT",
                        "patch" if apply => "APPLY",
                        "patch" => "PATCH",
                        "delete" | "deletecollection" => "DELETE",
                        _ => "other",
                    }
                };
                let scope = if !name.is_empty() || verb == "create" {
                    "resource"
                } else if !namespace.is_empty() {
                    "namespace"
                } else {
                    "cluster"
                };
                let (group, version, resource, subresource) =
                    if served(group, version, resource, subresource) {
                        (
                            group.clone(),
                            version.to_string(),
                            resource.clone(),
                            subresource.clone(),
                        )
                    } else {
                        (
                            String::new(),
                            String::new(),
                            "unknown".into(),
                            String::new(),
                        )
                    };
                Self {
                    verb: reported,
                    group,
                    version,
                    resource,
                    subresource,
                    scope,
                    component: COMPONENT,
                }
            }
        }
    }
}

/// Who serves a resource path ([`served`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// A built-in kind, review kind or `metrics.k8s.io`.
    Builtin,
    /// A custom resource of an established CRD.
    Custom,
}

/// Who serves `group`/`version`/`resource` with `subresource` (empty for
/// none), looking at the custom resources only when `custom` is given;
/// `None` when nothing does (pure).
pub fn served(
    custom: Option<&crate::crd::CustomTable>,
    group: &str,
    version: &str,
    resource: &str,
    subresource: &str,
) -> Option<Served> {
    let has = |subs: Vec<&str>| subresource.is_empty() || subs.contains(&subresource);
    if let Some(def) = crate::registry::lookup(group, version, resource) {
        return has(def.subresources()).then_some(Served::Builtin);
    }
    let other = crate::registry::lookup_review(group, version, resource).is_some()
        || (group == vkube_core::metrics::GROUP
            && version == vkube_core::metrics::VERSION
            && crate::metrics_api::RESOURCES.contains(&resource));
    if other {
        return subresource.is_empty().then_some(Served::Builtin);
    }
    let def = custom?.lookup(group, version, resource)?;
    has(def.subresources()).then_some(Served::Custom)
}

/// kube's `dry_run` label value for a request's raw `query`: the distinct
/// `dryRun` values sorted and joined with `,` (so `All` or empty), or
/// `invalid` when one is not `All` (pure; kube's `cleanDryRun`).
pub fn dry_run_label(query: Option<&str>) -> &'static str {
    let mut all = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "dryRun" {
            if v != "All" {
                return "invalid";
            }
            all = true;
        }
    }
    if all { "All" } else { "" }
}

/// The API server's metrics and the registry they are encoded from.
/// Shared through the REST layer ([`crate::rest::Api::metrics`]).
pub struct Metrics {
    registry: SharedRegistry,
    requests: Family<CodeLabels, Counter>,
    durations: HistogramFamily<DryRunLabels>,
    sli_durations: HistogramFamily<RequestInfo>,
    sizes: HistogramFamily<RequestInfo>,
    inflight: Family<RequestKind, Gauge>,
    longrunning: Family<RequestInfo, Gauge>,
    watch_events: Family<WatchLabels, Counter>,
    storage_objects: Family<ResourceLabel, Gauge>,
    storage_durations: HistogramFamily<StorageLabels>,
    /// When stored objects were last counted; held by one scrape at a time.
    counting: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// The series of custom resources, by group and resource.
    custom: std::sync::Mutex<
        std::collections::HashMap<(String, String), std::collections::HashSet<CustomSeries>>,
    >,
    /// The `workqueue_*` families of this server's controllers and syncer.
    pub workqueue: WorkqueueMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A new registry with every API server family, the work queue
    /// families and the process collector registered.
    pub fn new() -> Self {
        let registry = SharedRegistry::new();
        let mut r = registry.lock();
        let m = Self {
            registry: registry.clone(),
            requests: Family::default(),
            durations: Family::new_with_constructor(request_duration_histogram),
            sli_durations: Family::new_with_constructor(request_sli_duration_histogram),
            sizes: Family::new_with_constructor(response_size_histogram),
            inflight: Family::default(),
            longrunning: Family::default(),
            watch_events: Family::default(),
            storage_objects: Family::default(),
            storage_durations: Family::new_with_constructor(storage_duration_histogram),
            counting: tokio::sync::Mutex::new(None),
            custom: Default::default(),
            workqueue: WorkqueueMetrics::register(&mut r),
        };
        r.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            m.requests.clone(),
        );
        r.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
            m.durations.clone(),
        );
        r.register(
            "apiserver_request_sli_duration_seconds",
            "Response latency distribution (not counting webhook duration and priority & fairness queue wait times) in seconds for each verb, group, version, resource, subresource, scope and component",
            m.sli_durations.clone(),
        );
        r.register(
            "apiserver_response_sizes",
            "Response size distribution in bytes for each group, version, verb, resource, subresource, scope and component",
            m.sizes.clone(),
        );
        r.register(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind in last second",
            m.inflight.clone(),
        );
        r.register(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way",
            m.longrunning.clone(),
        );
        r.register(
            "apiserver_watch_events",
            "Number of events sent in watch clients",
            m.watch_events.clone(),
        );
        r.register(
            "etcd_request_duration_seconds",
            "Etcd request latency in seconds for each operation and object type",
            m.storage_durations.clone(),
        );
        r.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind",
            m.storage_objects.clone(),
        );
        for kind in ["readOnly", "mutating"] {
            drop(
                m.inflight
                    .get_or_create(&RequestKind { request_kind: kind }),
            );
        }
        r.register_collector(Box::new(ProcessCollector));
        drop(r);
        m
    }

    /// The registry, for the controllers and syncer that run beside the
    /// server to register their own series in.
    pub fn registry(&self) -> &SharedRegistry {
        &self.registry
    }

    /// Records a served request: its count by status `code`, its
    /// `duration` and response `size` (bytes, when known). A long-running
    /// request is counted now and returns a guard that keeps it in
    /// `apiserver_longrunning_requests` until dropped (with its response
    /// body).
    ///
    /// `custom` says the request named a custom resource, whose series are
    /// removed when it is no longer served ([`Metrics::scrape`]).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &self,
        info: &RequestInfo,
        dry_run: &'static str,
        code: u16,
        duration: Duration,
        size: Option<u64>,
        long_running: bool,
        custom: bool,
    ) -> Option<impl Drop + Send + Sync + use<>> {
        let labels = CodeLabels {
            info: info.clone(),
            dry_run,
            code,
        };
        self.requests.get_or_create(&labels).inc();
        if custom {
            self.track_custom(&info.group, &info.resource, CustomSeries::Request(labels));
        }
        if long_running {
            let gauge = self.longrunning.get_or_create_owned(info);
            gauge.inc();
            return Some(GaugeGuard(gauge));
        }
        self.durations
            .get_or_create(&DryRunLabels {
                info: info.clone(),
                dry_run,
            })
            .observe(duration.as_secs_f64());
        self.sli_durations
            .get_or_create(info)
            .observe(duration.as_secs_f64());
        // kube records the sizes of reads only.
        if let (Some(size), "GET" | "LIST") = (size, info.verb) {
            self.sizes.get_or_create(info).observe(size as f64);
        }
        None
    }

    /// A handle that counts events sent to watchers of `def`'s objects
    /// (labels group, version and kind, as kube's).
    pub fn watch_events(&self, def: &crate::registry::Def) -> Counter {
        let labels = WatchLabels {
            group: def.group.to_string(),
            version: def.version.to_string(),
            kind: def.kind.to_string(),
        };
        if def.custom().is_some() {
            self.track_custom(def.group, def.resource, CustomSeries::Watch(labels.clone()));
        }
        self.watch_events.get_or_create_owned(&labels)
    }

    /// Sets the gauges read when scraped, then encodes the registry:
    /// `apiserver_current_inflight_requests` from `inflight` (read-only and
    /// mutating requests holding a seat of the server's limits now), and
    /// `apiserver_storage_objects` (`resource` as kube names it: `pods`,
    /// `deployments.apps`), counted again when the last count is older
    /// than [`STORAGE_COUNT_INTERVAL`] (kube-apiserver counts once a
    /// minute). The series of custom resources no longer served (a
    /// deleted CRD) are removed, so CRDs created and deleted under new
    /// names do not accumulate series.
    pub async fn scrape(&self, api: &crate::rest::Api, inflight: (usize, usize)) -> String {
        // One scrape at a time: the updates and the encoding are one step.
        let mut last_count = self.counting.lock().await;
        for (kind, n) in [("readOnly", inflight.0), ("mutating", inflight.1)] {
            self.inflight
                .get_or_create(&RequestKind { request_kind: kind })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let custom = api.custom_resources().await.ok();
        self.forget_unserved(custom.as_deref());
        if last_count.is_none_or(|at| at.elapsed() >= STORAGE_COUNT_INTERVAL) {
            *last_count = Some(std::time::Instant::now());
            let mut counted = std::collections::HashSet::new();
            let builtin = crate::registry::RESOURCES
                .iter()
                .filter(|d| d.computed.is_none());
            let custom_defs = custom.iter().flat_map(|t| t.iter()).map(|c| &c.def);
            let mut counts = Vec::new();
            for def in builtin.chain(custom_defs) {
                let prefix = def.prefix();
                if !counted.insert(prefix.clone()) {
                    continue;
                }
                let resource = def.group_resource().to_string();
                match api.store.count(&prefix).await {
                    Ok(n) => counts.push((resource, n)),
                    Err(e) => tracing::warn!(%resource, error = %e, "counting stored objects"),
                }
            }
            // Resources gone (a deleted CRD) leave the series.
            self.storage_objects.clear();
            for (resource, n) in counts {
                self.storage_objects
                    .get_or_create(&ResourceLabel { resource })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        self.registry.encode()
    }

    /// Remembers that `labels` (of a request or a watch) name a custom
    /// resource, so that its series can be removed once it is no longer
    /// served.
    fn track_custom(&self, group: &str, resource: &str, series: CustomSeries) {
        let mut custom = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        custom
            .entry((group.to_string(), resource.to_string()))
            .or_default()
            .insert(series);
    }

    /// Remembers a custom resource's store series (see
    /// [`Metrics::track_custom`]).
    fn track_custom_storage(&self, kind: StorageType) {
        let (resource, group) = kind.r#type.split_once('.').unwrap_or((&kind.r#type, ""));
        let (group, resource) = (group.to_string(), resource.to_string());
        self.track_custom(&group, &resource, CustomSeries::Storage(kind));
    }

    /// Removes the series of tracked custom resources that `table` no
    /// longer serves (in any version).
    fn forget_unserved(&self, table: Option<&crate::crd::CustomTable>) {
        let Some(table) = table else { return };
        let mut custom = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        custom.retain(|(group, resource), series| {
            let served = table
                .iter()
                .any(|c| c.def.group == group.as_str() && c.def.resource == resource.as_str());
            if !served {
                for s in series.drain() {
                    match s {
                        CustomSeries::Request(labels) => {
                            self.durations.remove(&DryRunLabels {
                                info: labels.info.clone(),
                                dry_run: labels.dry_run,
                            });
                            self.sli_durations.remove(&labels.info);
                            self.sizes.remove(&labels.info);
                            self.longrunning.remove(&labels.info);
                            self.requests.remove(&labels);
                        }
                        CustomSeries::Watch(labels) => {
                            self.watch_events.remove(&labels);
                        }
                        CustomSeries::Storage(kind) => {
                            for operation in STORAGE_OPERATIONS {
                                self.storage_durations.remove(&StorageLabels {
                                    operation,
                                    kind: kind.clone(),
                                });
                            }
                        }
                    }
                }
            }
            served
        });
    }
}

/// `etcd_request_duration_seconds` buckets, in seconds (kube-apiserver's
/// `pkg/storage/etcd3/metrics`).
pub const STORAGE_DURATION_BUCKETS: [f64; 23] = REQUEST_DURATION_BUCKETS;

/// The store operations timed in `etcd_request_duration_seconds`.
const STORAGE_OPERATIONS: [&str; 5] = ["get", "list", "create", "update", "delete"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    operation: &'static str,
    #[prometheus(flatten)]
    kind: StorageType,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageType {
    /// kube's `type` label: here the stored resource, `pods` or
    /// `deployments.apps`.
    r#type: String,
}

fn storage_duration_histogram() -> Histogram {
    Histogram::new(STORAGE_DURATION_BUCKETS)
}

/// The resource a storage key belongs to, as `apiserver_storage_objects`
/// names it (`pods`, `deployments.apps`, `widgets.example.com`), and
/// whether it is a custom resource (pure; the layout of
/// [`crate::registry::ResourceDef::prefix`]).
fn key_resource(key: &str) -> Option<(String, bool)> {
    let mut segs = key.trim_start_matches('/').split('/');
    match (segs.next()?, segs.next()?) {
        ("customresources", group) => Some((format!("{}.{group}", segs.next()?), true)),
        ("core", resource) => Some((resource.to_string(), false)),
        (group, resource) => Some((format!("{resource}.{group}"), false)),
    }
}

/// A [`Storage`](crate::store::Storage) whose reads and writes are timed
/// in `etcd_request_duration_seconds{operation,type}` (kube-apiserver's
/// name for its store's latency, so its dashboards read this store's).
pub struct MeteredStore {
    inner: Arc<dyn crate::store::Storage>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// `inner`, timed into `metrics`.
    pub fn new(inner: Arc<dyn crate::store::Storage>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn timed<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        key: &'a str,
        f: futures::future::BoxFuture<'a, T>,
    ) -> futures::future::BoxFuture<'a, T> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let out = f.await;
            if let Some((resource, custom)) = key_resource(key) {
                let labels = StorageLabels {
                    operation,
                    kind: StorageType { r#type: resource },
                };
                self.metrics
                    .storage_durations
                    .get_or_create(&labels)
                    .observe(started.elapsed().as_secs_f64());
                if custom {
                    self.metrics.track_custom_storage(labels.kind);
                }
            }
            out
        })
    }
}

impl crate::store::Storage for MeteredStore {
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures::future::BoxFuture<
        'a,
        Result<Option<crate::store::KeyValue>, crate::store::StorageError>,
    > {
        self.timed("get", key, self.inner.get(key))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        opts: crate::store::ListOptions,
    ) -> futures::future::BoxFuture<'a, Result<crate::store::ListPage, crate::store::StorageError>>
    {
        self.timed("list", prefix, self.inner.list(prefix, opts))
    }

    fn create<'a>(
        &'a self,
        key: &'a str,
        value: bytes::Bytes,
    ) -> futures::future::BoxFuture<'a, Result<u64, crate::store::StorageError>> {
        self.timed("create", key, self.inner.create(key, value))
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
        value: bytes::Bytes,
    ) -> futures::future::BoxFuture<'a, Result<u64, crate::store::StorageError>> {
        self.timed("update", key, self.inner.update(key, expected, value))
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
    ) -> futures::future::BoxFuture<'a, Result<u64, crate::store::StorageError>> {
        self.timed("delete", key, self.inner.delete(key, expected))
    }

    fn count<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<u64, crate::store::StorageError>> {
        self.inner.count(prefix)
    }

    fn watch(
        &self,
        prefix: &str,
        after: u64,
    ) -> Result<crate::store::WatchStream, crate::store::StorageError> {
        self.inner.watch(prefix, after)
    }

    fn current_revision(&self) -> u64 {
        self.inner.current_revision()
    }

    fn compacted_revision(&self) -> u64 {
        self.inner.compacted_revision()
    }

    fn wait_for_revision(
        &self,
        revision: u64,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'_, bool> {
        self.inner.wait_for_revision(revision, timeout)
    }
}

/// How long a count of stored objects is reported before it is taken again.
pub const STORAGE_COUNT_INTERVAL: Duration = Duration::from_secs(60);

/// A series of a custom resource, remembered to be removed with it.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum CustomSeries {
    Request(CodeLabels),
    Watch(WatchLabels),
    Storage(StorageType),
}

/// Decrements a gauge when dropped.
struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The `process_*` series of the Prometheus client libraries, read from
/// `/proc/self` when scraped (Linux; elsewhere nothing is reported):
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_start_time_seconds`,
/// `process_open_fds`, `process_max_fds`.
#[derive(Debug)]
pub struct ProcessCollector;

/// Clock ticks per second of `/proc/<pid>/stat`'s times: `USER_HZ`, 100
/// on every Linux architecture (Prometheus' own procfs reader assumes the
/// same).
const USER_HZ: f64 = 100.0;

/// The figures of [`ProcessCollector`] (pure parsing of the `/proc` files).
#[derive(Debug, Default, PartialEq)]
pub struct ProcessFigures {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: f64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: f64,
    /// Start time since the Unix epoch, in seconds.
    pub start_time_seconds: f64,
}

impl ProcessFigures {
    /// Figures from `/proc/self/stat` (`stat`), `/proc/self/status`
    /// (`status`) and `/proc/stat`'s `btime` line (`boot_time`, seconds
    /// since the epoch); `None` when `stat` is malformed.
    pub fn parse(stat: &str, status: &str, boot_time: f64) -> Option<Self> {
        // The command name may hold spaces and parentheses: fields are
        // counted after its last `)`.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): utime is 14, stime 15,
        // starttime 22.
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|k| k * 1024.0)
        };
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
            resident_bytes: kib("VmRSS:").unwrap_or(0.0),
            virtual_bytes: kib("VmSize:").unwrap_or(0.0),
            start_time_seconds: boot_time + field(22)? / USER_HZ,
        })
    }
}

/// The soft `Max open files` of `/proc/self/limits` (pure).
fn max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let boot_time = read("/proc/stat")
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        let Some(p) = ProcessFigures::parse(
            &read("/proc/self/stat"),
            &read("/proc/self/status"),
            boot_time,
        ) else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauges = vec![
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                p.virtual_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                p.start_time_seconds,
            ),
        ];
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauges.push((
                "process_open_fds",
                "Number of open file descriptors",
                fds.count() as f64,
            ));
        }
        if let Some(max) = max_fds(&read("/proc/self/limits")) {
            gauges.push((
                "process_max_fds",
                "Maximum number of open file descriptors",
                max,
            ));
        }
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// Wraps a response `body` so that `guard` lives as long as the body is
/// being sent (a watch's stream, a log follow).
pub fn hold_with_body(
    body: axum::body::Body,
    guard: impl Send + Sync + 'static,
) -> axum::body::Body {
    use futures::StreamExt;
    axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
        let _held = &guard;
        chunk
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str, query: Option<&str>, apply: bool) -> RequestInfo {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let attrs = crate::filters::authorization::attributes::of(method, &segs, path, query);
        let version = match segs.as_slice() {
            ["api", v, ..] | ["apis", _, v, ..] => *v,
            _ => "",
        };
        RequestInfo::of(&attrs, version, apply, |g, v, r, s| {
            served(None, g, v, r, s).is_some()
        })
    }

    fn labels(i: &RequestInfo) -> (&str, &str, &str, &str, &str, &str) {
        (
            i.verb,
            &i.group,
            &i.version,
            &i.resource,
            &i.subresource,
            i.scope,
        )
    }

    #[test]
    fn verbs_and_scopes_as_kube_reports_them() {
        let cases = [
            (
                "GET",
                "/api/v1/pods",
                None,
                false,
                ("LIST", "", "v1", "pods", "", "cluster"),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods",
                Some("watch=true"),
                false,
                ("WATCH", "", "v1", "pods", "", "namespace"),
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/a/deployments",
                None,
                false,
                ("POST", "apps", "v1", "deployments", "", "resource"),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d",
                None,
                true,
                ("APPLY", "apps", "v1", "deployments", "", "resource"),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/a/deployments/d/status",
                None,
                false,
                ("PUT", "apps", "v1", "deployments", "status", "resource"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/configmaps",
                None,
                false,
                ("DELETE", "", "v1", "configmaps", "", "namespace"),
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods/p/exec",
                None,
                false,
                ("CONNECT", "", "v1", "pods", "exec", "resource"),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/p/log",
                None,
                false,
                ("CONNECT", "", "v1", "pods", "log", "resource"),
            ),
            ("GET", "/healthz", None, false, ("GET", "", "", "", "", "")),
            ("HEAD", "/healthz", None, false, ("GET", "", "", "", "", "")),
            (
                "OPTIONS",
                "/healthz",
                None,
                false,
                ("other", "", "", "", "", ""),
            ),
            (
                "BREW",
                "/healthz",
                None,
                false,
                ("other", "", "", "", "", ""),
            ),
        ];
        for (method, path, query, apply, want) in cases {
            assert_eq!(
                labels(&info(method, path, query, apply)),
                want,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn paths_naming_nothing_served_collapse_to_unknown() {
        for path in [
            "/apis/evil.example/v1/namespaces/a/things-7f3a/x",
            "/api/v1/namespaces/a/pods/p/not-a-subresource",
            "/api/v9/pods",
        ] {
            let i = info("GET", path, None, false);
            assert_eq!(
                (&*i.group, &*i.version, &*i.resource, &*i.subresource),
                ("", "", "unknown", ""),
                "{path}"
            );
        }
    }

    #[test]
    fn series_of_a_custom_resource_go_when_it_is_no_longer_served() {
        let m = Metrics::new();
        let widgets = RequestInfo {
            verb: "LIST",
            group: "example.com".into(),
            version: "v1".into(),
            resource: "widgets".into(),
            subresource: String::new(),
            scope: "cluster",
            component: COMPONENT,
        };
        let pods = RequestInfo {
            resource: "pods".into(),
            group: String::new(),
            ..widgets.clone()
        };
        m.observe(
            &widgets,
            "",
            200,
            Duration::from_millis(1),
            Some(10),
            false,
            true,
        );
        m.observe(
            &pods,
            "",
            200,
            Duration::from_millis(1),
            Some(10),
            false,
            false,
        );
        assert!(m.registry().encode().contains("resource=\"widgets\""));
        m.forget_unserved(Some(&crate::crd::CustomTable::default()));
        let text = m.registry().encode();
        assert!(!text.contains("widgets"), "{text}");
        assert!(text.contains("resource=\"pods\""), "{text}");
    }

    #[test]
    fn storage_keys_name_their_resource() {
        assert_eq!(
            key_resource("/core/pods/default/p"),
            Some(("pods".into(), false))
        );
        assert_eq!(
            key_resource("/apps/deployments/"),
            Some(("deployments.apps".into(), false))
        );
        assert_eq!(
            key_resource("/customresources/example.com/widgets/ns/w"),
            Some(("widgets.example.com".into(), true))
        );
        assert_eq!(key_resource("/"), None);
    }

    #[test]
    fn dry_run_values() {
        assert_eq!(dry_run_label(None), "");
        assert_eq!(dry_run_label(Some("dryRun=All")), "All");
        assert_eq!(dry_run_label(Some("dryRun=All&dryRun=All")), "All");
        assert_eq!(dry_run_label(Some("dryRun=Some")), "invalid");
    }

    #[test]
    fn process_figures_parse_proc_files() {
        let stat = "42 (vkube (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 \
                    123456 789 18446744073709551615";
        let status = "Name:\tvkube\nVmSize:\t  2048 kB\nVmRSS:\t    1024 kB\n";
        let p = ProcessFigures::parse(stat, status, 1_700_000_000.0).unwrap();
        assert_eq!(
            p,
            ProcessFigures {
                cpu_seconds: 3.0,
                resident_bytes: 1024.0 * 1024.0,
                virtual_bytes: 2048.0 * 1024.0,
                start_time_seconds: 1_700_000_010.0,
            }
        );
        assert_eq!(ProcessFigures::parse("garbage", "", 0.0), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_fds(limits), Some(1024.0));
    }

    #[test]
    fn encodes_kube_names_and_buckets() {
        let m = Metrics::new();
        let i = info("GET", "/api/v1/pods", None, false);
        m.observe(
            &i,
            "",
            200,
            Duration::from_millis(30),
            Some(1500),
            false,
            false,
        );
        let text = m.registry().encode();
        for line in [
            "# TYPE apiserver_request_total counter",
            "apiserver_request_total{verb=\"LIST\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"cluster\",component=\"apiserver\",dry_run=\"\",code=\"200\"} 1",
            "apiserver_request_duration_seconds_bucket{verb=\"LIST\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"cluster\",component=\"apiserver\",dry_run=\"\",le=\"0.05\"} 1",
            "apiserver_request_duration_seconds_bucket{verb=\"LIST\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"cluster\",component=\"apiserver\",dry_run=\"\",le=\"0.025\"} 0",
            "apiserver_response_sizes_bucket{verb=\"LIST\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"cluster\",component=\"apiserver\",le=\"10000\"} 1",
            "apiserver_current_inflight_requests{request_kind=\"mutating\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
    }
}
