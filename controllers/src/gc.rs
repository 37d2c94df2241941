//! The garbage collector: deletes objects whose owners are gone, and
//! carries out foreground and orphan deletion.
//!
//! Follows k8s.io/kubernetes/pkg/controller/garbagecollector
//! (garbagecollector.go `attemptToDeleteItem`, `processDeletingDependentsItem`,
//! `orphanDependents`) over a metadata-only graph of the kinds in
//! [`WATCHED`]:
//!
//! * **background**: an object all of whose owners are gone (verified with a
//!   live GET, owners are matched by uid) is deleted, with the propagation
//!   its own finalizers ask for; owners that are gone or being deleted in
//!   the foreground are removed from an object that still has a live owner;
//! * **foreground** (`foregroundDeletion` finalizer, set by the API server on
//!   `propagationPolicy=Foreground`): the owner's dependents are deleted
//!   (in the foreground themselves when they have dependents), and the
//!   finalizer is removed once no dependent with `blockOwnerDeletion`
//!   remains;
//! * **orphan** (`orphan` finalizer): ownerReferences to the owner are
//!   removed from its dependents, then the finalizer.
//!
//! Custom resources join the graph as their CustomResourceDefinitions appear
//! (one more metadata watch per defined kind, stopped when the CRD goes), so
//! an operator's objects are collected with their owners, and foreground or
//! orphan deletion of a custom resource completes.
//!
//! Work is event driven: every watch event marks the graph dirty and a scan
//! ([`plan`], pure) runs after a short quiet period; nothing runs at idle.

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{GroupVersionKind, PartialObjectMeta};
use kube::{Client, ResourceExt};
use kube_runtime::watcher::{self, Event};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// A watched kind: group, version, kind, plural, namespaced.
pub type KindDef = (&'static str, &'static str, &'static str, &'static str, bool);

/// The kinds whose objects the collector tracks (those that have owners in
/// practice, and their usual owners).
pub static WATCHED: &[KindDef] = &[
    ("", "v1", "Pod", "pods", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Endpoints", "endpoints", true),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
    ),
    ("", "v1", "PodTemplate", "podtemplates", true),
    ("", "v1", "PersistentVolume", "persistentvolumes", false),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
    ),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    // CRDs themselves, so a foreground or orphan delete of one completes.
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

fn api_resource(k: &KindDef) -> ApiResource {
    let (group, version, kind, plural, _) = *k;
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A kind the collector watches: [`WATCHED`]'s, then custom kinds.
struct Kind {
    ar: ApiResource,
    namespaced: bool,
}

/// The kind a CustomResourceDefinition defines, as the collector watches
/// it (at its storage version, or the first served one), or `None` when
/// it serves nothing.
pub fn custom_kind(crd: &serde_json::Value) -> Option<(ApiResource, bool)> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?;
    let names = spec.get("names")?;
    let versions = spec.get("versions")?.as_array()?;
    let served = |v: &&serde_json::Value| v["served"] == true;
    let version = versions
        .iter()
        .filter(served)
        .find(|v| v["storage"] == true)
        .or_else(|| versions.iter().find(served))?["name"]
        .as_str()?;
    Some((
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: names.get("kind")?.as_str()?.into(),
            plural: names.get("plural")?.as_str()?.into(),
        },
        spec.get("scope").and_then(|s| s.as_str()) == Some("Namespaced"),
    ))
}

/// One object of the graph (its metadata).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index into the watched kinds ([`WATCHED`] first, then custom kinds).
    pub kind: usize,
    /// Namespace ("" when cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerReference>,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

/// What the collector does to one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GcAction {
    /// Delete it with this propagation policy.
    Delete {
        /// The object's uid.
        uid: String,
        /// `Background`, `Foreground` or `Orphan`.
        policy: &'static str,
    },
    /// Remove the ownerReferences with these owner uids from it.
    RemoveOwners {
        /// The object's uid.
        uid: String,
        /// Owner uids to drop.
        owners: Vec<String>,
    },
    /// Remove a finalizer from it.
    RemoveFinalizer {
        /// The object's uid.
        uid: String,
        /// `orphan` or `foregroundDeletion`.
        finalizer: &'static str,
    },
}

/// Decides the collector's actions on `graph` (uid → node). `absent` holds
/// owner uids verified gone with the API server; an owner neither in the
/// graph nor in `absent` counts as present.
pub fn plan(graph: &HashMap<String, Node>, absent: &HashSet<String>) -> Vec<GcAction> {
    let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in graph.values() {
        for o in &n.owners {
            dependents.entry(o.uid.as_str()).or_default().push(n);
        }
    }
    let mut out = Vec::new();
    let mut nodes: Vec<&Node> = graph.values().collect();
    nodes.sort_by(|a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)));
    for n in &nodes {
        let deps = dependents
            .get(n.uid.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if n.deleting && n.finalizers.iter().any(|f| f == ORPHAN) {
            // orphanDependents, then drop the finalizer.
            if deps.is_empty() {
                out.push(GcAction::RemoveFinalizer {
                    uid: n.uid.clone(),
                    finalizer: ORPHAN,
                });
            }
            for d in deps {
                out.push(GcAction::RemoveOwners {
                    uid: d.uid.clone(),
                    owners: vec![n.uid.clone()],
                });
            }
            continue;
        }
        if n.deleting && n.finalizers.iter().any(|f| f == FOREGROUND) {
            // processDeletingDependentsItem: wait for blocking dependents.
            let blocking = deps.iter().any(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == n.uid && o.block_owner_deletion == Some(true))
            });
            if !blocking {
                out.push(GcAction::RemoveFinalizer {
                    uid: n.uid.clone(),
                    finalizer: FOREGROUND,
                });
            }
        }
        if n.owners.is_empty() || n.deleting {
            continue;
        }
        // attemptToDeleteItem: classify the owners.
        let (mut solid, mut dangling, mut waiting) = (0, Vec::new(), Vec::new());
        for o in &n.owners {
            match graph.get(&o.uid) {
                Some(owner)
                    if owner.deleting && owner.finalizers.iter().any(|f| f == FOREGROUND) =>
                {
                    waiting.push(o.uid.clone())
                }
                Some(_) => solid += 1,
                None if absent.contains(&o.uid) => dangling.push(o.uid.clone()),
                None => solid += 1,
            }
        }
        let has_deps = !deps.is_empty();
        if solid > 0 {
            if !dangling.is_empty() || !waiting.is_empty() {
                dangling.extend(waiting);
                out.push(GcAction::RemoveOwners {
                    uid: n.uid.clone(),
                    owners: dangling,
                });
            }
        } else if !waiting.is_empty() && has_deps {
            out.push(GcAction::Delete {
                uid: n.uid.clone(),
                policy: "Foreground",
            });
        } else {
            let policy = if n.finalizers.iter().any(|f| f == ORPHAN) {
                "Orphan"
            } else if n.finalizers.iter().any(|f| f == FOREGROUND) {
                "Foreground"
            } else {
                "Background"
            };
            out.push(GcAction::Delete {
                uid: n.uid.clone(),
                policy,
            });
        }
    }
    out
}

fn node_of(kind: usize, m: &PartialObjectMeta<DynamicObject>) -> Node {
    Node {
        kind,
        namespace: m.metadata.namespace.clone().unwrap_or_default(),
        name: m.name_any(),
        uid: m.metadata.uid.clone().unwrap_or_default(),
        resource_version: m.metadata.resource_version.clone().unwrap_or_default(),
        owners: m.metadata.owner_references.clone().unwrap_or_default(),
        finalizers: m.metadata.finalizers.clone().unwrap_or_default(),
        deleting: m.metadata.deletion_timestamp.is_some(),
    }
}

struct Collector {
    client: Client,
    /// The watched kinds; [`Node::kind`] indexes it. A custom kind whose
    /// CRD went keeps its slot (indices stay valid), without a watch.
    kinds: Vec<Kind>,
    graph: HashMap<String, Node>,
    /// Objects of a kind seen since its last (re)list started.
    relisting: HashMap<usize, HashSet<String>>,
    /// Kinds whose watch has not listed yet: no scan runs until every
    /// built-in one has.
    unsynced: HashSet<usize>,
    /// The watches of custom kinds, by `(group, plural)`, with their index.
    custom: HashMap<(String, String), (usize, tokio::task::AbortHandle)>,
    /// The CRDs seen since the CRD watch's last (re)list started.
    crd_relist: Option<HashSet<(String, String)>>,
    /// Owner kinds outside [`WATCHED`], resolved by discovery.
    foreign: HashMap<(String, String), Option<(ApiResource, bool)>>,
    /// Recently issued actions, not repeated while the watch catches up.
    recent: HashMap<GcAction, Instant>,
}

impl Collector {
    fn apply(&mut self, kind: usize, ev: Event<PartialObjectMeta<DynamicObject>>) {
        match ev {
            Event::Init => {
                self.relisting.insert(kind, HashSet::new());
            }
            Event::InitApply(m) | Event::Apply(m) => {
                let n = node_of(kind, &m);
                if let Some(seen) = self.relisting.get_mut(&kind) {
                    seen.insert(n.uid.clone());
                }
                self.graph.insert(n.uid.clone(), n);
            }
            Event::Delete(m) => {
                if let Some(uid) = &m.metadata.uid {
                    self.graph.remove(uid);
                }
            }
            Event::InitDone => {
                let seen = self.relisting.remove(&kind).unwrap_or_default();
                self.graph
                    .retain(|uid, n| n.kind != kind || seen.contains(uid));
                self.unsynced.remove(&kind);
            }
        }
    }

    /// Whether the owner `o` of an object in `ns` is gone (404 or another
    /// uid); unknown kinds count as present.
    async fn owner_absent(&mut self, o: &OwnerReference, ns: &str) -> bool {
        let (group, version) = match o.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), o.api_version.clone()),
        };
        let known = self
            .kinds
            .iter()
            .find(|k| k.ar.group == group && k.ar.version == version && k.ar.kind == o.kind)
            .map(|k| (k.ar.clone(), k.namespaced));
        let resolved = match known {
            Some(r) => Some(r),
            None => {
                let key = (o.api_version.clone(), o.kind.clone());
                if !self.foreign.contains_key(&key) {
                    let gvk = GroupVersionKind::gvk(&group, &version, &o.kind);
                    let r = kube::discovery::pinned_kind(&self.client, &gvk)
                        .await
                        .ok()
                        .map(|(ar, caps)| (ar, caps.scope == kube::discovery::Scope::Namespaced));
                    self.foreign.insert(key.clone(), r);
                }
                self.foreign[&key].clone()
            }
        };
        let Some((ar, namespaced)) = resolved else {
            return false;
        };
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(self.client.clone(), ns, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        };
        match api.get_metadata_opt(&o.name).await {
            Ok(None) => true,
            Ok(Some(m)) => m.metadata.uid.as_deref() != Some(o.uid.as_str()),
            Err(_) => false,
        }
    }

    fn api_for(&self, n: &Node) -> Api<DynamicObject> {
        let k = &self.kinds[n.kind];
        if k.namespaced {
            Api::namespaced_with(self.client.clone(), &n.namespace, &k.ar)
        } else {
            Api::all_with(self.client.clone(), &k.ar)
        }
    }

    /// Starts watching kind `k` (index `i`), feeding `tx`.
    fn watch(
        &mut self,
        tasks: &mut tokio::task::JoinSet<()>,
        tx: &tokio::sync::mpsc::Sender<(usize, Event<PartialObjectMeta<DynamicObject>>)>,
        i: usize,
    ) -> tokio::task::AbortHandle {
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &self.kinds[i].ar);
        let tx = tx.clone();
        self.unsynced.insert(i);
        tasks.spawn(async move {
            let mut stream = std::pin::pin!(kube_runtime::WatchStreamExt::default_backoff(
                watcher::watcher(api, watcher::Config::default())
            ));
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        if tx.send((i, ev)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "garbage collector watch error"),
                }
            }
        })
    }

    /// Whether events of kind `i` still count: a custom kind's watch may
    /// have queued some before it was stopped.
    fn is_live(&self, i: usize) -> bool {
        i < WATCHED.len() || self.custom.values().any(|(j, _)| *j == i)
    }

    /// Follows a CRD event: a new custom kind is watched; a gone one (or
    /// one that serves nothing) stops being watched and its objects leave
    /// the graph. A relist forgets the kinds of CRDs it no longer lists.
    fn follow_crd(
        &mut self,
        tasks: &mut tokio::task::JoinSet<()>,
        tx: &tokio::sync::mpsc::Sender<(usize, Event<PartialObjectMeta<DynamicObject>>)>,
        ev: Event<DynamicObject>,
    ) {
        let (crd, present) = match ev {
            Event::InitApply(o) | Event::Apply(o) => (o, true),
            Event::Delete(o) => (o, false),
            Event::Init => {
                self.crd_relist = Some(HashSet::new());
                return;
            }
            Event::InitDone => {
                let seen = self.crd_relist.take().unwrap_or_default();
                let gone: Vec<_> = self
                    .custom
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                gone.iter().for_each(|k| self.forget(k));
                return;
            }
        };
        let Ok(value) = serde_json::to_value(&crd) else {
            return;
        };
        let spec_key = |v: &serde_json::Value| -> Option<(String, String)> {
            Some((
                v.pointer("/spec/group")?.as_str()?.to_string(),
                v.pointer("/spec/names/plural")?.as_str()?.to_string(),
            ))
        };
        let Some(key) = spec_key(&value) else {
            return;
        };
        if let Some(seen) = &mut self.crd_relist {
            seen.insert(key.clone());
        }
        let kind = if present { custom_kind(&value) } else { None };
        match (kind, self.custom.get(&key)) {
            (Some((ar, _)), Some((i, _))) if self.kinds[*i].ar == ar => {}
            (Some((ar, namespaced)), _) => {
                self.forget(&key);
                self.kinds.push(Kind { ar, namespaced });
                let i = self.kinds.len() - 1;
                let handle = self.watch(tasks, tx, i);
                self.custom.insert(key, (i, handle));
            }
            (None, _) => self.forget(&key),
        }
    }

    /// Stops watching the custom kind `key`, if watched.
    fn forget(&mut self, key: &(String, String)) {
        if let Some((i, handle)) = self.custom.remove(key) {
            handle.abort();
            self.unsynced.remove(&i);
            self.relisting.remove(&i);
            self.graph.retain(|_, n| n.kind != i);
        }
    }

    async fn scan(&mut self) {
        // Owners not in the graph are verified with the API server.
        let mut missing: Vec<(OwnerReference, String)> = Vec::new();
        let mut asked = HashSet::new();
        for n in self.graph.values() {
            if n.deleting {
                continue;
            }
            for o in &n.owners {
                if !self.graph.contains_key(&o.uid) && asked.insert(o.uid.clone()) {
                    missing.push((o.clone(), n.namespace.clone()));
                }
            }
        }
        let mut absent = HashSet::new();
        for (o, ns) in missing {
            if self.owner_absent(&o, &ns).await {
                absent.insert(o.uid.clone());
            }
        }
        let mut actions = plan(&self.graph, &absent);
        // While a custom kind has not listed, an owner's dependents may be
        // missing from the graph: releasing its orphan or foreground
        // finalizer now could lose them, so that waits.
        if self.unsynced.iter().any(|i| *i >= WATCHED.len()) {
            actions.retain(|a| !matches!(a, GcAction::RemoveFinalizer { .. }));
        }
        self.recent
            .retain(|_, at| at.elapsed() < Duration::from_secs(3));
        for a in actions {
            if self.recent.contains_key(&a) {
                continue;
            }
            if let Err(e) = self.execute(&a).await {
                tracing::debug!(action = ?a, error = %e, "garbage collector action failed");
            }
            self.recent.insert(a, Instant::now());
        }
    }

    async fn execute(&self, a: &GcAction) -> Result<(), kube::Error> {
        let uid = match a {
            GcAction::Delete { uid, .. }
            | GcAction::RemoveOwners { uid, .. }
            | GcAction::RemoveFinalizer { uid, .. } => uid,
        };
        let Some(n) = self.graph.get(uid) else {
            return Ok(());
        };
        let api = self.api_for(n);
        let result = match a {
            GcAction::Delete { policy, .. } => {
                tracing::debug!(name = %n.name, policy, "garbage collector deleting");
                let dp = DeleteParams {
                    propagation_policy: Some(match *policy {
                        "Foreground" => kube::api::PropagationPolicy::Foreground,
                        "Orphan" => kube::api::PropagationPolicy::Orphan,
                        _ => kube::api::PropagationPolicy::Background,
                    }),
                    preconditions: Some(kube::api::Preconditions {
                        uid: Some(n.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                api.delete(&n.name, &dp).await.map(|_| ())
            }
            GcAction::RemoveOwners { owners, .. } => {
                let keep: Vec<&OwnerReference> = n
                    .owners
                    .iter()
                    .filter(|o| !owners.contains(&o.uid))
                    .collect();
                let body = json!({"metadata": {
                    "ownerReferences": if keep.is_empty() { json!(null) } else { json!(keep) },
                    "resourceVersion": n.resource_version,
                }});
                api.patch(&n.name, &PatchParams::default(), &Patch::Merge(body))
                    .await
                    .map(|_| ())
            }
            GcAction::RemoveFinalizer { finalizer, .. } => {
                let keep: Vec<&String> = n.finalizers.iter().filter(|f| f != finalizer).collect();
                let body = json!({"metadata": {
                    "finalizers": if keep.is_empty() { json!(null) } else { json!(keep) },
                    "resourceVersion": n.resource_version,
                }});
                api.patch(&n.name, &PatchParams::default(), &Patch::Merge(body))
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            r => r,
        }
    }
}

/// What the collector's loop receives next.
enum Received {
    /// An event of watched kind `.0`.
    Object(usize, Event<PartialObjectMeta<DynamicObject>>),
    /// A CRD event.
    Crd(Event<DynamicObject>),
    /// `quiet` passed without news.
    Quiet,
    /// A channel closed: the collector stops.
    Closed,
}

/// The next event of either watch, or [`Received::Quiet`] once `quiet`
/// passes without one (never, when `None`).
async fn receive(
    rx: &mut tokio::sync::mpsc::Receiver<(usize, Event<PartialObjectMeta<DynamicObject>>)>,
    crd_rx: &mut tokio::sync::mpsc::Receiver<Event<DynamicObject>>,
    quiet: Option<Duration>,
) -> Received {
    let pause = async {
        match quiet {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        ev = rx.recv() => ev.map_or(Received::Closed, |(i, ev)| Received::Object(i, ev)),
        ev = crd_rx.recv() => ev.map_or(Received::Closed, Received::Crd),
        () = pause => Received::Quiet,
    }
}

/// Runs the garbage collector until the process ends: one metadata-only
/// watch per kind in [`WATCHED`] and per custom kind (followed from a CRD
/// watch) feeding the graph; a scan runs 50 ms after the last change (at
/// most every 500 ms under a steady stream) once every kind has listed.
pub async fn run(client: Client) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let (crd_tx, mut crd_rx) = tokio::sync::mpsc::channel(64);
    let mut tasks = tokio::task::JoinSet::new();
    let mut gc = Collector {
        client: client.clone(),
        kinds: WATCHED
            .iter()
            .map(|k| Kind {
                ar: api_resource(k),
                namespaced: k.4,
            })
            .collect(),
        graph: HashMap::new(),
        relisting: HashMap::new(),
        unsynced: HashSet::new(),
        custom: HashMap::new(),
        crd_relist: None,
        foreign: HashMap::new(),
        recent: HashMap::new(),
    };
    for i in 0..WATCHED.len() {
        gc.watch(&mut tasks, &tx, i);
    }
    let crds: Api<DynamicObject> = Api::all_with(
        client,
        &ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        },
    );
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(kube_runtime::WatchStreamExt::default_backoff(
            watcher::watcher(crds, watcher::Config::default())
        ));
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    if crd_tx.send(ev).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "garbage collector CRD watch error"),
            }
        }
    });
    loop {
        // Debounce: after the first news, drain until 50 ms pass without
        // more (at most 500 ms under a steady stream).
        let mut started: Option<Instant> = None;
        loop {
            let quiet = started.map(|_| Duration::from_millis(50));
            match receive(&mut rx, &mut crd_rx, quiet).await {
                Received::Object(i, ev) if gc.is_live(i) => gc.apply(i, ev),
                Received::Object(..) => {}
                Received::Crd(ev) => gc.follow_crd(&mut tasks, &tx, ev),
                Received::Quiet => break,
                Received::Closed => return,
            }
            if started.get_or_insert_with(Instant::now).elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        // The built-in kinds must have listed; a custom kind that has not
        // (yet, or ever) only leaves its own objects out of this scan
        // (owners missing from the graph are verified with the server).
        if !gc.unsynced.iter().any(|i| *i < WATCHED.len()) {
            crate::measured_pass(gc.scan()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: &str, owners: &[(&str, bool)]) -> Node {
        Node {
            kind: 0,
            namespace: "default".into(),
            name: uid.into(),
            uid: uid.into(),
            resource_version: "1".into(),
            owners: owners
                .iter()
                .map(|(o, block)| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: o.to_string(),
                    uid: o.to_string(),
                    controller: Some(true),
                    block_owner_deletion: Some(*block),
                })
                .collect(),
            finalizers: vec![],
            deleting: false,
        }
    }

    fn graph(nodes: Vec<Node>) -> HashMap<String, Node> {
        nodes.into_iter().map(|n| (n.uid.clone(), n)).collect()
    }

    #[test]
    fn a_crd_names_the_kind_to_watch_at_its_storage_version() {
        let crd = json!({"spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false},
                {"name": "v1", "served": true, "storage": true},
            ],
        }});
        let (ar, namespaced) = custom_kind(&crd).unwrap();
        assert_eq!(
            (
                ar.api_version.as_str(),
                ar.kind.as_str(),
                ar.plural.as_str(),
                namespaced
            ),
            ("stable.example.com/v1", "CronTab", "crontabs", true)
        );
        let mut unserved = crd.clone();
        unserved["spec"]["versions"][1]["served"] = json!(false);
        assert_eq!(custom_kind(&unserved).unwrap().0.version, "v1beta1");
        unserved["spec"]["versions"][0]["served"] = json!(false);
        assert!(custom_kind(&unserved).is_none());
    }

    #[test]
    fn background_deletes_dependents_of_verified_absent_owners_only() {
        let g = graph(vec![node("pod", &[("rs", true)])]);
        assert!(plan(&g, &HashSet::new()).is_empty(), "unverified owner");
        let absent: HashSet<String> = ["rs".to_string()].into();
        assert_eq!(
            plan(&g, &absent),
            [GcAction::Delete {
                uid: "pod".into(),
                policy: "Background"
            }]
        );
        // With one live owner left, only the dangling reference goes.
        let g = graph(vec![
            node("live", &[]),
            node("pod", &[("rs", true), ("live", false)]),
        ]);
        assert_eq!(
            plan(&g, &absent),
            [GcAction::RemoveOwners {
                uid: "pod".into(),
                owners: vec!["rs".into()]
            }]
        );
    }

    #[test]
    fn foreground_deletes_dependents_then_releases_the_owner() {
        let mut owner = node("deploy", &[]);
        owner.deleting = true;
        owner.finalizers = vec![FOREGROUND.into()];
        let rs = node("rs", &[("deploy", true)]);
        let pod = node("pod", &[("rs", true)]);
        let actions = plan(&graph(vec![owner.clone(), rs, pod]), &HashSet::new());
        assert_eq!(
            actions,
            [GcAction::Delete {
                uid: "rs".into(),
                policy: "Foreground"
            }],
            "the dependent with dependents of its own goes in the foreground"
        );
        // A dependent that does not block lets the owner go at once.
        let loose = node("cm", &[("deploy", false)]);
        let actions = plan(&graph(vec![owner.clone(), loose]), &HashSet::new());
        assert!(actions.contains(&GcAction::RemoveFinalizer {
            uid: "deploy".into(),
            finalizer: FOREGROUND
        }));
        assert!(actions.contains(&GcAction::Delete {
            uid: "cm".into(),
            policy: "Background"
        }));
        let actions = plan(&graph(vec![owner]), &HashSet::new());
        assert_eq!(
            actions,
            [GcAction::RemoveFinalizer {
                uid: "deploy".into(),
                finalizer: FOREGROUND
            }]
        );
    }

    #[test]
    fn orphan_strips_owner_references_then_the_finalizer() {
        let mut owner = node("deploy", &[]);
        owner.deleting = true;
        owner.finalizers = vec![ORPHAN.into()];
        let rs = node("rs", &[("deploy", true)]);
        assert_eq!(
            plan(&graph(vec![owner.clone(), rs]), &HashSet::new()),
            [GcAction::RemoveOwners {
                uid: "rs".into(),
                owners: vec!["deploy".into()]
            }]
        );
        assert_eq!(
            plan(&graph(vec![owner]), &HashSet::new()),
            [GcAction::RemoveFinalizer {
                uid: "deploy".into(),
                finalizer: ORPHAN
            }]
        );
    }
}
