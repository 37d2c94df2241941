//! The Pod controller: virtual pods → host pods, host status → virtual
//! pods, and the syncer's kubelet duties for the virtual cluster (binding,
//! finalizing graceful deletes). Decisions are pure functions of
//! [`crate::pod`]; this module loads both sides and writes.
//!
//! Per virtual key (namespace, name), level-based:
//! * virtual pod gone → delete our host pod (UID precondition);
//! * virtual pod being deleted → delete the host pod with the same grace
//!   period; once it is gone, delete the virtual pod with grace 0 (the
//!   kubelet's last step);
//! * refused by policy → `Pending`/`SyncRefused` status and a Warning Event;
//! * no host pod → if `vkube pause` removed it ([`crate::pause`]), a
//!   running pod is set `Pending` and created again, a finished one keeps
//!   its final status; else if the virtual pod already ran there (host pod
//!   deleted or evicted), copy the last host status and delete the virtual
//!   pod; otherwise sync its ConfigMaps/Secrets, create the host pod, then its
//!   service account token Secret;
//! * host pod of an older incarnation (`Stale`) → delete it, recreate later;
//! * host pod not ours → `SyncConflict` Warning Event, nothing written;
//! * ours → push mutable fields, refresh the token, reflect status, bind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, ObjectReference, PersistentVolumeClaim, Pod, Secret, Service,
    ServiceAccount,
};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;

use crate::engine::{
    Context, Key, drive, is_status, key_of, run_workers, watch_store, watch_store_with,
};
use crate::metrics::Direction;
use crate::names::{
    ANNOTATION_OBJECT_UID, LABEL_MANAGED_BY, Ownership, VirtualIdentity, host_name, is_managed,
};
use crate::pod::{self as pure, KIND, ReferenceKind, TranslateError};
use crate::queue::Queue;
use crate::summary::{FrozenPod, HostSummary, TokenSummary, VirtualSummary, settled_mark};

use super::compact::{Interner, Summaries, remove_shrinking};
use super::mirror::{self, owned_copy_of, virtual_key};

/// Kind recorded on the host Secret holding a pod's service account token.
pub const TOKEN_KIND: &str = "ServiceAccountToken";

pub use crate::summary::{ANNOTATION_REFRESH_AT, LABEL_TOKEN};

/// Lifetime requested for pod tokens, in seconds (kubelet asks for 1 h
/// and refreshes at 80 %).
pub const TOKEN_SECONDS: i64 = 3600;

/// The ConfigMap holding the cluster CA in every namespace
/// (`kube-root-ca.crt`, published by kube-controller-manager), whose
/// `ca.crt` goes into each pod's token Secret.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// Reason of the Warning Event for a pod the syncer will not run.
pub const REASON_SYNC_REFUSED: &str = crate::event::REASON_SYNC_REFUSED;

/// Host name of the token Secret of virtual pod (`namespace`, `name`):
/// the host name of virtual name `NAME.sa-token` (a Pod name may hold dots,
/// but a tenant Secret of that name is told apart by its kind annotation,
/// so a collision is a conflict, never an overwrite).
pub fn token_secret_name(ctx: &Context, key: &Key) -> String {
    host_name(&ctx.tenant, &key.0, &format!("{}.sa-token", key.1))
}

/// How soon a key whose full objects are still held is looked at again,
/// so that a reconcile finding nothing changed drops them (see
/// [`State::held`]).
const SETTLE: Duration = Duration::from_secs(2);

/// Page size of the initial (and re-)lists of pods (kube-runtime's
/// default is 500).
const LIST_PAGE: u32 = 100;

/// The full objects of one key, held (encoded, see [`FrozenPod`]) from
/// their watch events until the key settles.
#[derive(Default)]
struct Held {
    v: Option<FrozenPod>,
    h: Option<FrozenPod>,
}

struct State {
    /// Every virtual pod, as a compact summary (issue 4: memory per pod).
    vsums: Summaries<Key, VirtualSummary>,
    /// Host pods of this tenant by host name, as compact summaries.
    hsums: Summaries<String, HostSummary>,
    /// Token Secrets by name (watched as metadata only).
    tokens: Summaries<String, TokenSummary>,
    /// The full virtual/host pods of keys not settled yet, from their watch
    /// events (host pods slimmed by [`pure::slim_host_pod`]): a reconcile
    /// reads them instead of a GET. Dropped when a reconcile finds neither
    /// side written since the last one that ended well; a key holding them
    /// is requeued after [`SETTLE`] for that.
    held: Mutex<HashMap<Key, Held>>,
    node_names: Interner,
    /// Virtual `kube-root-ca.crt` ConfigMaps (one per namespace), so a
    /// token Secret needs no GET for its `ca.crt`.
    root_ca: Store<ConfigMap>,
    /// Last state of host pods seen in a watch Delete event, by virtual key.
    tombstones: Mutex<HashMap<Key, Pod>>,
    nodes: Arc<super::node::NodeFeed>,
    /// Virtual ServiceAccounts (for `automountServiceAccountToken`).
    sas: Store<ServiceAccount>,
    /// Virtual Services (for service environment variables).
    services: Store<Service>,
    /// Host copies of the virtual Services (their ClusterIPs are the ones
    /// host pods can reach).
    host_services: Store<Service>,
    /// Token Secrets this process wrote that the token store may not show
    /// yet: virtual key → (pod uid, refresh time). Without it, the
    /// reconcile that follows a create (queued by the host pod's watch
    /// event) finds no token in the cache and asks for another one.
    /// Dropped once the store shows the Secret, or with the pod.
    issued: Mutex<HashMap<Key, (String, jiff::Timestamp)>>,
    /// Virtual pods whose host pods `vkube pause` removed, by virtual uid
    /// ([`crate::pause`]): read once before the workers start, each entry
    /// dropped when handled or when its virtual pod is gone.
    paused: Mutex<HashMap<String, Key>>,
}

impl State {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds (or, with `None`, forgets) one side's full object of `key`.
    fn hold(&self, key: &Key, virtual_side: bool, obj: Option<&Pod>) {
        let frozen = obj.and_then(FrozenPod::freeze);
        let mut held = self.held();
        match frozen {
            Some(o) => {
                let e = held.entry(key.clone()).or_default();
                *(if virtual_side { &mut e.v } else { &mut e.h }) = Some(o);
            }
            None => {
                if let Some(e) = held.get_mut(key) {
                    *(if virtual_side { &mut e.v } else { &mut e.h }) = None;
                    if e.v.is_none() && e.h.is_none() {
                        remove_shrinking(&mut held, key);
                    }
                }
            }
        }
    }

    /// One side's held full object of `key`, if it is pod `name` (when
    /// given) at version `rv`.
    fn held_side(
        &self,
        key: &Key,
        virtual_side: bool,
        name: Option<&str>,
        rv: Option<&str>,
    ) -> Option<Arc<Pod>> {
        let held = self.held();
        let e = held.get(key)?;
        let p = (if virtual_side { &e.v } else { &e.h }).as_ref()?;
        p.is(name, rv).then(|| p.thaw()).flatten().map(Arc::new)
    }

    /// One side's full object of `key` at version `rv`: the held one, else
    /// a GET of `name` through `api` (held from then on; a host pod
    /// slimmed as in the cache). `None`: gone.
    async fn full_pod(
        &self,
        key: &Key,
        virtual_side: bool,
        api: Api<Pod>,
        name: &str,
        rv: Option<&str>,
    ) -> anyhow::Result<Option<Arc<Pod>>> {
        let held_name = (!virtual_side).then_some(name);
        if let Some(p) = self.held_side(key, virtual_side, held_name, rv) {
            return Ok(Some(p));
        }
        let side = if virtual_side { "virtual" } else { "host" };
        let Some(mut p) = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading the {side} pod"))?
        else {
            return Ok(None);
        };
        p.metadata.managed_fields = None;
        if !virtual_side {
            pure::slim_host_pod(&mut p);
        }
        self.hold(key, virtual_side, Some(&p));
        Ok(Some(Arc::new(p)))
    }
}

/// Runs the Pod controller (and the Node controller it feeds).
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue: Arc<Queue<Key>> = Arc::new(Queue::new());
    ctx.metrics.register_queue(KIND, &queue);
    // List pages of LIST_PAGE pods: each page is decoded whole (full
    // k8s-openapi pods) before its items are summarized, so the default
    // 500 made a starting syncer's peak, and so its RSS, much larger.
    let vstream = watcher::watcher(
        Api::<Pod>::all(ctx.virtual_client.clone()),
        watcher::Config::default().page_size(LIST_PAGE),
    )
    .default_backoff();
    let hstream = watcher::watcher(
        ctx.host_api::<Pod>(),
        watcher::Config::default()
            .labels(&ctx.managed_selector())
            .page_size(LIST_PAGE),
    )
    .default_backoff();
    // The token and CA bodies are written, never read back: watch the
    // token Secrets' metadata only.
    let tstream = watcher::watcher(
        ctx.host_api::<PartialObjectMeta<Secret>>(),
        watcher::Config::default().labels(&format!(
            "{}={},{LABEL_TOKEN}=true",
            LABEL_MANAGED_BY,
            ctx.tenant.name()
        )),
    )
    .default_backoff();
    let (root_ca, castream) = watch_store_with(
        Api::<ConfigMap>::all(ctx.virtual_client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIGMAP}")),
        |c: &mut ConfigMap| {
            c.binary_data = None;
            c.metadata.annotations = None;
        },
    );
    let (sas, sastream) = watch_store(
        Api::<ServiceAccount>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    let (services, svcstream) = watch_store(
        Api::<Service>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    let (host_services, hsvcstream) = watch_store(
        ctx.host_api::<Service>(),
        watcher::Config::default().labels(&ctx.managed_selector()),
    );
    let state = Arc::new(State {
        vsums: Summaries::default(),
        hsums: Summaries::default(),
        tokens: Summaries::default(),
        held: Mutex::new(HashMap::new()),
        node_names: Interner::default(),
        root_ca,
        tombstones: Mutex::new(HashMap::new()),
        paused: Mutex::new(HashMap::new()),
        nodes: Arc::new(super::node::NodeFeed::default()),
        sas,
        services,
        host_services,
        issued: Mutex::new(HashMap::new()),
    });
    let resync = {
        let (ctx, state, queue) = (Arc::clone(&ctx), Arc::clone(&state), Arc::clone(&queue));
        move || {
            let mut nodes = Vec::new();
            state.vsums.for_each(|k, v| {
                queue_virtual(&ctx, &state, &queue, k.clone());
                if let Some(n) = &v.node_name {
                    nodes.push(n.to_string());
                }
            });
            state.hsums.for_each(|_, h| {
                if let Some(k) = &h.key {
                    queue.add(k.clone());
                }
                if let Some(n) = &h.node_name {
                    nodes.push(n.to_string());
                }
            });
            for n in nodes {
                state.nodes.check(n);
            }
            state.tokens.for_each(|_, t| {
                if let Some(k) = &t.key {
                    queue.add(k.clone());
                }
            });
        }
    };
    let v_events = {
        let (ctx, queue, state, resync) = (
            Arc::clone(&ctx),
            Arc::clone(&queue),
            Arc::clone(&state),
            resync.clone(),
        );
        drive(vstream, move |mut ev| {
            if let watcher::Event::Apply(o)
            | watcher::Event::InitApply(o)
            | watcher::Event::Delete(o) = &mut ev
            {
                o.metadata.managed_fields = None;
            }
            state.vsums.apply(&ev, |p| {
                Some((
                    key_of(p),
                    VirtualSummary::of(p, |n| state.node_names.intern(n)),
                ))
            });
            // A node that virtual pods name is shown, so the tenant's pod
            // garbage collector never finds them orphaned on a live node.
            match &ev {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    if let Some(n) = bound_node(o) {
                        state.nodes.used(n);
                    }
                }
                watcher::Event::Delete(o) => {
                    if let Some(n) = bound_node(o) {
                        state.nodes.check(n);
                    }
                }
                _ => {}
            }
            match ev {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    let k = key_of(&o);
                    ctx.references.set(
                        super::Holder::Pod,
                        k.clone(),
                        super::references_of(&ctx, &o),
                    );
                    state.hold(&k, true, Some(&o));
                    queue_virtual(&ctx, &state, &queue, k);
                }
                watcher::Event::Delete(o) => {
                    let k = key_of(&o);
                    ctx.references
                        .set(super::Holder::Pod, k.clone(), Vec::new());
                    state.hold(&k, true, None);
                    queue.add(k);
                }
                watcher::Event::InitDone => {
                    ctx.references
                        .retain(super::Holder::Pod, |k| state.vsums.contains(k));
                    resync();
                }
                watcher::Event::Init => {}
            }
        })
    };
    let h_events = {
        let (queue, state, resync) = (Arc::clone(&queue), Arc::clone(&state), resync.clone());
        drive(hstream, move |mut ev| {
            if let watcher::Event::Apply(o)
            | watcher::Event::InitApply(o)
            | watcher::Event::Delete(o) = &mut ev
            {
                o.metadata.managed_fields = None;
                pure::slim_host_pod(o);
            }
            state.hsums.apply(&ev, |p| {
                Some((
                    p.name_any(),
                    HostSummary::of(p, KIND, |n| state.node_names.intern(n)),
                ))
            });
            match ev {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    let node = o.spec.as_ref().and_then(|s| s.node_name.clone());
                    if let Some(k) = virtual_key(o.meta(), KIND) {
                        state.hold(&k, false, Some(&o));
                        queue.add(k);
                    }
                    if let Some(n) = node {
                        state.nodes.used(n);
                    }
                }
                watcher::Event::Delete(o) => {
                    if let Some(n) = o.spec.as_ref().and_then(|s| s.node_name.clone()) {
                        state.nodes.check(n);
                    }
                    if let Some(k) = virtual_key(o.meta(), KIND) {
                        state.hold(&k, false, None);
                        state
                            .tombstones
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(k.clone(), o);
                        queue.add(k);
                    }
                }
                watcher::Event::InitDone => resync(),
                watcher::Event::Init => {}
            }
        })
    };
    let t_events = {
        let (queue, state) = (Arc::clone(&queue), Arc::clone(&state));
        drive(tstream, move |ev| {
            state.tokens.apply(&ev, |s| {
                Some((s.name_any(), TokenSummary::of(&s.metadata, TOKEN_KIND)))
            });
            match ev {
                watcher::Event::Apply(o)
                | watcher::Event::InitApply(o)
                | watcher::Event::Delete(o) => {
                    if let Some(k) = virtual_key(&o.metadata, TOKEN_KIND) {
                        queue.add(k);
                    }
                }
                watcher::Event::InitDone | watcher::Event::Init => {}
            }
        })
    };
    let workers = {
        let (ctx, state) = (Arc::clone(&ctx), Arc::clone(&state));
        async move {
            state.vsums.wait_until_ready().await?;
            state.hsums.wait_until_ready().await?;
            state.tokens.wait_until_ready().await?;
            state.root_ca.wait_until_ready().await?;
            state.sas.wait_until_ready().await?;
            state.services.wait_until_ready().await?;
            state.host_services.wait_until_ready().await?;
            let had_record = load_paused(&ctx, &state).await;
            let resumed = finish_resume(&ctx, &state, had_record);
            let periodic = async {
                loop {
                    tokio::time::sleep(ctx.config.resync_period).await;
                    resync();
                }
            };
            let work = run_workers(KIND, Arc::clone(&ctx), queue, |key, since| {
                let (ctx, state) = (Arc::clone(&ctx), Arc::clone(&state));
                async move { reconcile(&ctx, &state, &key, since).await }
            });
            let in_use = {
                let state = Arc::clone(&state);
                move |node: &str| {
                    if state.hsums.any(|h| h.node_name.as_deref() == Some(node)) {
                        super::node::NodeUse::HostPods
                    } else if state.vsums.any(|v| v.node_name.as_deref() == Some(node)) {
                        super::node::NodeUse::VirtualPods
                    } else {
                        super::node::NodeUse::Unused
                    }
                }
            };
            let nodes = super::node::run(Arc::clone(&ctx), in_use, Arc::clone(&state.nodes));
            tokio::select! {
                r = work => r,
                r = nodes => r,
                () = periodic => unreachable!("the resync loop never ends"),
                () = resumed => unreachable!("finish_resume never ends"),
            }
        }
    };
    let sa_events = drive(sastream, |_| {});
    let svc_events = drive(svcstream, |_| {});
    let hsvc_events = drive(hsvcstream, |_| {});
    let ca_events = drive(castream, |_| {});
    tokio::select! {
        r = ca_events => r,
        r = svc_events => r,
        r = hsvc_events => r,
        r = sa_events => r,
        r = v_events => r,
        r = h_events => r,
        r = t_events => r,
        r = workers => r,
    }
}

/// Reads the paused-pods record ([`crate::pause`]) into `state.paused`,
/// retrying until the host answers (treating paused pods as deleted on the
/// host would delete them). Returns whether there was a record.
async fn load_paused(ctx: &Context, state: &State) -> bool {
    let mut delay = Duration::from_millis(200);
    let entries = loop {
        match crate::pause::load(&ctx.host_client, &ctx.tenant).await {
            Ok(e) => break e,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reading the paused-pods record; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    };
    let had = !entries.is_empty();
    let mut paused = state.paused.lock().unwrap_or_else(|p| p.into_inner());
    for (uid, value) in entries {
        if let Some(key) = crate::pause::entry_key(&value) {
            paused.insert(uid, key);
        }
    }
    had
}

/// Once every paused pod is handled or gone, deletes the record (when there
/// was one); then waits forever.
async fn finish_resume(ctx: &Context, state: &State, had_record: bool) {
    if had_record {
        loop {
            let empty = {
                let mut paused = state.paused.lock().unwrap_or_else(|p| p.into_inner());
                paused.retain(|uid, key| {
                    state
                        .vsums
                        .get(key)
                        .is_some_and(|s| s.uid.as_deref() == Some(uid.as_str()))
                });
                paused.is_empty()
            };
            if empty {
                match crate::pause::clear(&ctx.host_client, &ctx.tenant).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "removing the paused-pods record")
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    std::future::pending::<()>().await
}

/// Queues virtual pod `key`, in the urgent lane while it has no host pod
/// (its reconcile creates one), so a burst of new pods reaches the host
/// before the status writes and bindings of the pods already there.
/// Until the host pods are listed, nothing is known to be missing: keys go
/// to the ordinary lane, and the resync at the end of the host list moves
/// those without a host pod up (else a starting syncer would treat every
/// pod as new, and pods created while it was down would wait behind all).
fn queue_virtual(ctx: &Context, state: &State, queue: &Queue<Key>, key: Key) {
    let hname = host_name(&ctx.tenant, &key.0, &key.1);
    if !state.hsums.is_ready() || state.hsums.contains(&hname) {
        queue.add(key);
    } else {
        queue.add_urgent(key);
    }
}

fn uid_precondition(uid: Option<String>) -> Option<Preconditions> {
    Some(Preconditions {
        uid,
        resource_version: None,
    })
}

/// When nothing but the token can need work for `key`: `Some(requeue)`
/// if its virtual pod `vs` is settled against host version `host_rv` and
/// its token (if that reconcile looked after one) is fresh.
fn settled(
    ctx: &Context,
    state: &State,
    key: &Key,
    vs: &VirtualSummary,
    hs: Option<&HostSummary>,
) -> Option<Option<Duration>> {
    let host_rv = hs.and_then(|h| h.resource_version.as_deref());
    let (mark, token) = vs.settled?;
    if mark != settled_mark(vs.resource_version.as_deref(), host_rv) {
        return None;
    }
    if !token {
        return Some(None);
    }
    if !wants_token_in(state, &key.0, vs.service_account(), vs.automount) {
        return Some(None);
    }
    if !ctx.config.token_secrets {
        // The token rides on the host pod, which is this incarnation's
        // (the settled mark covers its resourceVersion).
        let at = hs?.token_refresh_at?;
        return crate::summary::wait_until(at, jiff::Timestamp::now()).map(Some);
    }
    let t = state.tokens.get(&token_secret_name(ctx, key))?;
    t.fresh_for(vs.uid.as_deref()?, jiff::Timestamp::now())
        .map(Some)
}

async fn reconcile(
    ctx: &Context,
    state: &State,
    key: &Key,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let hname = host_name(&ctx.tenant, &key.0, &key.1);
    let vs = state.vsums.get(key);
    let hs = state.hsums.get(&hname);
    let host_rv = hs.as_ref().and_then(|h| h.resource_version.as_deref());
    let tombstone = state
        .tombstones
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .cloned();
    if tombstone.is_none()
        && let Some(vs) = &vs
        && let Some(requeue) = settled(ctx, state, key, vs, hs.as_ref())
    {
        // Neither side written since a reconcile that ended well: drop
        // the full objects, if still held.
        remove_shrinking(&mut state.held(), key);
        return Ok(requeue);
    }
    // The full objects: held from their watch events, else a GET.
    let v = match &vs {
        None => None,
        Some(s) => {
            let api = ctx.virtual_api::<Pod>(&key.0);
            let rv = s.resource_version.as_deref();
            state.full_pod(key, true, api, &key.1, rv).await?
        }
    };
    let h = match &hs {
        None => None,
        Some(_) => (state.full_pod(key, false, ctx.host_api::<Pod>(), &hname, host_rv)).await?,
    };
    let res = reconcile_pod(
        ctx,
        state,
        key,
        v.as_deref(),
        h.as_deref(),
        tombstone.as_ref(),
        since,
    )
    .await;
    if res.is_ok() && tombstone.is_some() {
        remove_shrinking(
            &mut state.tombstones.lock().unwrap_or_else(|p| p.into_inner()),
            key,
        );
    }
    // The token Secret follows its pod: gone when the virtual pod is gone
    // (the host GC also removes it with the host pod it is owned by).
    if res.is_ok() && v.is_none() {
        remove_shrinking(&mut issued_lock(state), key);
        delete_token_secret(ctx, state, key).await?;
    }
    let requeue = res?;
    match &vs {
        Some(vs) => {
            let mark = settled_mark(vs.resource_version.as_deref(), host_rv);
            let token = requeue.is_some();
            state.vsums.update(key, |s| {
                if s.resource_version == vs.resource_version {
                    s.settled = Some((mark, token));
                }
            });
        }
        None => {
            remove_shrinking(&mut state.held(), key);
        }
    }
    if state.held().contains_key(key) {
        return Ok(Some(requeue.map_or(SETTLE, |d| d.min(SETTLE))));
    }
    Ok(requeue)
}

async fn reconcile_pod(
    ctx: &Context,
    state: &State,
    key: &Key,
    v: Option<&Pod>,
    h: Option<&Pod>,
    tombstone: Option<&Pod>,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let Some(v) = v else {
        if let Some(h) = h
            && owned_copy_of(&ctx.tenant, h.meta(), KIND, key)
            && h.meta().deletion_timestamp.is_none()
        {
            delete_host_pod(ctx, h, None).await?;
        }
        return Ok(None);
    };
    let id = VirtualIdentity::from_meta(KIND, v.meta())?;
    let ownership = is_managed(&ctx.tenant, h.map(|h| h.meta()), &id);
    // The host pod that mirrors this incarnation, if any.
    let ours = matches!(ownership, Ownership::Owned).then(|| h.expect("owned"));
    // The last state of this incarnation's host pod, if it just went away.
    let gone = tombstone.filter(|t| t.annotations().get(ANNOTATION_OBJECT_UID) == Some(&id.uid));

    if v.meta().deletion_timestamp.is_some() {
        if let Some(h) = ours {
            reflect(ctx, v, h, since).await?;
            if h.meta().deletion_timestamp.is_none() {
                delete_host_pod(ctx, h, v.meta().deletion_grace_period_seconds).await?;
            }
            return Ok(None);
        }
        if let Some(t) = gone {
            reflect(ctx, v, t, since).await?;
        }
        finalize_virtual(ctx, v).await?;
        return Ok(None);
    }

    let (violations, refused_ephemeral) = v
        .spec
        .as_ref()
        .map(|spec| {
            pure::split_ephemeral_violations(
                spec,
                crate::security::check(ctx.config.pod_security, spec),
            )
        })
        .unwrap_or_default();
    if !violations.is_empty() {
        let message = format!(
            "violates PodSecurity {:?}: {}",
            ctx.config.pod_security.to_string(),
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        refuse(ctx, v, &message).await?;
        return Ok(None);
    }
    let mut translated = match pure::translate(&ctx.tenant, v, &ctx.config.translate_options()) {
        Ok(t) => t,
        Err(e @ (TranslateError::Forbidden(_) | TranslateError::MissingSpec)) => {
            refuse(ctx, v, &e.to_string()).await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    for (name, why) in &refused_ephemeral {
        translated.ephemeral.retain(|c| &c.name != name);
        let message = format!(
            "ephemeral container {name:?} violates PodSecurity {:?}: {why}",
            ctx.config.pod_security.to_string()
        );
        ctx.warn(v, pure::REASON_SYNC_REFUSED, &message).await?;
    }

    match ownership {
        Ownership::Absent => {
            let paused = state
                .paused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&id.uid);
            if paused {
                // Its host pod was removed by `vkube pause`: a finished pod
                // keeps its final status; a running one starts again.
                if !pure::is_terminal(v) {
                    if pure::was_synced_running(v) {
                        write_status(ctx, v, pure::resumed_status(v.status.as_ref())).await?;
                    }
                    let requeue = create_host_pod(ctx, state, key, v, translated, since).await?;
                    unpause(state, &id.uid);
                    return Ok(requeue);
                }
                unpause(state, &id.uid);
                return Ok(None);
            }
            if gone.is_some() || pure::was_synced_running(v) {
                // Deleted or evicted on the host: copy the final status
                // first so Jobs and controllers see it, then finalize.
                if let Some(t) = gone {
                    reflect(ctx, v, t, since).await?;
                }
                finalize_virtual(ctx, v).await?;
                return Ok(None);
            }
            create_host_pod(ctx, state, key, v, translated, since).await
        }
        Ownership::Stale { .. } => {
            let h = h.expect("stale implies present");
            if h.meta().deletion_timestamp.is_none() {
                delete_host_pod(ctx, h, Some(0)).await?;
            }
            Ok(None)
        }
        Ownership::NotOurs(why) => {
            mirror::conflict(ctx, v, &translated.pod.name_any(), &why).await?;
            Ok(None)
        }
        Ownership::Owned => {
            let h = ours.expect("owned");
            let mut requeue = None;
            if h.meta().deletion_timestamp.is_none() {
                let desired = desired_pod(ctx, state, key, v, translated.pod);
                // The cache holds slim pods: compare there, update from a
                // fresh full copy.
                if pure::update_mutable(&desired, h).is_some() {
                    let api = ctx.host_api::<Pod>();
                    let live = api
                        .get(&h.name_any())
                        .await
                        .context("reading the host pod")?;
                    if live.uid() == h.uid()
                        && let Some(updated) = pure::update_mutable(&desired, &live)
                    {
                        api.replace(&h.name_any(), &PostParams::default(), &updated)
                            .await
                            .context("updating the host pod")?;
                        ctx.metrics.observe_latency(
                            KIND,
                            Direction::VirtualToHost,
                            since.elapsed(),
                        );
                    }
                }
                add_ephemeral_containers(ctx, v, h, &translated.ephemeral).await?;
                requeue = ensure_token(ctx, state, key, v, h).await?;
            }
            let evicted = h.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted");
            // A binding is due: compare with the status it will leave
            // (PodScheduled=True), so a host pod that is only bound costs
            // the binding alone, not a status write as well.
            let bound_view;
            let current = if binding_due(v, h) && !evicted {
                bound_view = Pod {
                    status: Some(pure::bound_status(v.status.as_ref())),
                    ..v.clone()
                };
                &bound_view
            } else {
                v
            };
            reflect(ctx, current, h, since).await?;
            if evicted {
                finalize_virtual(ctx, v).await?;
                return Ok(None);
            }
            bind(ctx, v, h).await?;
            Ok(requeue)
        }
    }
}

/// Adds the virtual pod's ephemeral containers the host pod lacks, through
/// its `ephemeralcontainers` subresource (what `kubectl debug` does on the
/// virtual pod), as a strategic merge on their names. A host that refuses
/// (its own Pod Security admission, a webhook, a Role without the
/// subresource) costs a Warning event on the virtual pod, not the pod's
/// sync: its status keeps being reflected.
async fn add_ephemeral_containers(
    ctx: &Context,
    v: &Pod,
    host: &Pod,
    translated: &[k8s_openapi::api::core::v1::EphemeralContainer],
) -> anyhow::Result<()> {
    let add = pure::ephemeral_to_add(translated, host);
    if add.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = add.iter().map(|c| format!("{:?}", c.name)).collect();
    let patch = serde_json::json!({"spec": {"ephemeralContainers": add}});
    let added = ctx
        .host_api::<Pod>()
        .patch_ephemeral_containers(
            &host.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await;
    match added {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => {
            let message = format!(
                "ephemeral container {} could not be added on the host: {}",
                names.join(", "),
                s.message.replace(&host.name_any(), &v.name_any())
            );
            ctx.warn(v, pure::REASON_SYNC_REFUSED, &message).await
        }
        Err(e) => Err(e).context("adding ephemeral containers to the host pod"),
    }
}

/// Drops `uid` from the paused pods: handled.
fn unpause(state: &State, uid: &str) {
    state
        .paused
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(uid);
}

/// The host pod to create for `v`: the translation plus the token volume,
/// `KUBERNETES_SERVICE_*` and the owner.
fn desired_pod(ctx: &Context, state: &State, key: &Key, v: &Pod, mut pod: Pod) -> Pod {
    if token_wanted(state, v) {
        if ctx.config.token_secrets {
            pure::inject_token(&mut pod, &token_secret_name(ctx, key));
        } else {
            pure::inject_token_projection(&mut pod);
        }
    }
    pure::inject_env_defaults(&mut pod, &service_env(ctx, state, v));
    pod.metadata.owner_references = ctx.owner_references();
    pod
}

/// The service variables of `v`: those of its virtual namespace's
/// Services unless `enableServiceLinks: false` (the virtual `kubernetes`
/// Service excepted), then `KUBERNETES_SERVICE_*` of
/// [`crate::engine::SyncerConfig::kubernetes_service`].
fn service_env(ctx: &Context, state: &State, v: &Pod) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    let ns = v.namespace().unwrap_or_default();
    let links = v.spec.as_ref().and_then(|s| s.enable_service_links) != Some(false);
    let mut vars = Vec::new();
    if links {
        // A virtual Service's addresses are the host copy's (the virtual one
        // is recreated with them, which may not have happened yet); one
        // without a host copy has no address a host pod could reach.
        let services: Vec<Service> = state
            .services
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .filter(|s| !(ns == "default" && s.name_any() == "kubernetes"))
            .filter_map(|s| {
                let host = state.host_services.get(
                    &ObjectRef::new(&host_name(&ctx.tenant, &ns, &s.name_any()))
                        .within(ctx.tenant.host_namespace()),
                )?;
                Some(crate::service::with_host_addresses(s, &host))
            })
            .collect();
        vars = crate::service::service_env(&services);
    }
    if let Some((host, port)) = &ctx.config.kubernetes_service {
        vars.extend(crate::service::kubernetes_service_env(host, *port));
    }
    vars
}

/// Whether `v` gets a token: its own `automountServiceAccountToken`, else
/// its virtual service account's (from the cache), else yes.
fn token_wanted(state: &State, v: &Pod) -> bool {
    wants_token_in(
        state,
        &v.namespace().unwrap_or_default(),
        pure::service_account_of(v),
        v.spec
            .as_ref()
            .and_then(|s| s.automount_service_account_token),
    )
}

/// [`crate::summary::wants_token`] for a pod in namespace `ns` running as
/// `service_account` with its own setting `automount`, the service
/// account's setting read from the cache.
fn wants_token_in(state: &State, ns: &str, service_account: &str, automount: Option<bool>) -> bool {
    let sa = state.sas.get(&ObjectRef::new(service_account).within(ns));
    crate::summary::wants_token(
        automount,
        sa.and_then(|s| s.automount_service_account_token),
    )
}

/// Whether every ephemeral-volume claim of `v` exists in the virtual
/// cluster and is controlled by `v` ([`pure::ephemeral_claims`]).
async fn ephemeral_claims_ready(ctx: &Context, v: &Pod) -> anyhow::Result<bool> {
    let claims = pure::ephemeral_claims(v);
    if claims.is_empty() {
        return Ok(true);
    }
    let api = ctx.virtual_api::<PersistentVolumeClaim>(&v.namespace().unwrap_or_default());
    let uid = v.metadata.uid.as_deref().unwrap_or_default();
    for name in claims {
        let owned = api.get_opt(&name).await?.is_some_and(|c| {
            c.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        });
        if !owned {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn create_host_pod(
    ctx: &Context,
    state: &State,
    key: &Key,
    v: &Pod,
    translated: pure::Translated,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    if !ephemeral_claims_ready(ctx, v).await? {
        return Ok(Some(Duration::from_secs(1)));
    }
    if let Some(class) = v
        .spec
        .as_ref()
        .and_then(|s| s.priority_class_name.as_deref())
        .filter(|c| !c.is_empty())
    {
        super::priorityclass::ensure(ctx, class).await?;
    }
    for r in &translated.references {
        let k = (r.namespace.clone(), r.name.clone());
        match r.kind {
            ReferenceKind::ConfigMap => mirror::ensure::<ConfigMap>(ctx, &k).await?,
            ReferenceKind::Secret => mirror::ensure::<Secret>(ctx, &k).await?,
        }
    }
    let mut desired = desired_pod(ctx, state, key, v, translated.pod);
    let api = ctx.host_api::<Pod>();
    if !ctx.config.token_secrets {
        // The token rides on the host pod: requested first, created with it.
        // A new host pod always gets a fresh one (a record of a token written
        // into an earlier host copy of this pod says nothing about this one),
        // and waits for the virtual service account, as the kubelet waits
        // for its token before starting containers.
        let wanted = token_wanted(state, v);
        if wanted
            && state
                .sas
                .get(&ObjectRef::new(pure::service_account_of(v)).within(&key.0))
                .is_none()
        {
            return Ok(Some(Duration::from_secs(2)));
        }
        let after = match wanted {
            true => {
                let token = request_token(ctx, key, v).await?;
                let ca = root_ca(ctx, state, &key.0).await?;
                let refresh_at = token_refresh_at();
                desired
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .extend(pure::token_annotations(&token, &ca, refresh_at));
                Some((refresh_at, v.uid().unwrap_or_default()))
            }
            false => None,
        };
        return match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {
                ctx.metrics
                    .observe_latency(KIND, Direction::VirtualToHost, since.elapsed());
                Ok(after.map(|(at, uid)| {
                    issued_lock(state).insert(key.clone(), (uid, at));
                    Duration::from_secs((TOKEN_SECONDS * 8 / 10) as u64)
                }))
            }
            Err(e) if is_status(&e, 409) => create_conflict(ctx, v, &api, &desired).await,
            Err(e) => Err(e).context("creating the host pod"),
        };
    }
    // The TokenRequest (virtual side) runs while the host pod is created;
    // only the token Secret, owned by the host pod, must wait for its uid.
    let need = token_need(ctx, state, key, v, None);
    let token = async {
        match &need {
            TokenNeed::Issue(_) => request_token(ctx, key, v).await.map(Some),
            TokenNeed::Nothing(_) => Ok(None),
        }
    };
    let pp = PostParams::default();
    let (created, token) = tokio::join!(api.create(&pp, &desired), token);
    match created {
        Ok(created) => {
            ctx.metrics
                .observe_latency(KIND, Direction::VirtualToHost, since.elapsed());
            match (need, token?) {
                (TokenNeed::Issue(existing), Some(token)) => {
                    write_token(ctx, state, key, v, &created, token, existing.as_ref()).await
                }
                (TokenNeed::Nothing(after), _) => Ok(after),
                (TokenNeed::Issue(_), None) => Ok(None),
            }
        }
        Err(e) if is_status(&e, 409) => create_conflict(ctx, v, &api, &desired).await,
        Err(e) => Err(e).context("creating the host pod"),
    }
}

/// A host pod create answered 409: a conflict Event when the pod at the
/// name is not ours; nothing when it is (not cached yet: its watch event
/// requeues the key).
async fn create_conflict(
    ctx: &Context,
    v: &Pod,
    api: &Api<Pod>,
    desired: &Pod,
) -> anyhow::Result<Option<Duration>> {
    let name = desired.name_any();
    let live = api.get_opt(&name).await?;
    let id = VirtualIdentity::from_meta(KIND, v.meta())?;
    if let Ownership::NotOurs(why) = is_managed(&ctx.tenant, live.as_ref().map(|p| p.meta()), &id) {
        mirror::conflict(ctx, v, &name, &why).await?;
    }
    Ok(None)
}

/// When a token issued now must be refreshed: at 80 % of its lifetime, as
/// the kubelet refreshes projected tokens.
fn token_refresh_at() -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_secs(TOKEN_SECONDS * 8 / 10)
}

/// The virtual cluster's CA as namespace `ns`'s `kube-root-ca.crt` holds
/// it (cached, else read: the namespace may be brand new); empty when
/// there is none yet.
async fn root_ca(ctx: &Context, state: &State, ns: &str) -> anyhow::Result<String> {
    let cached = state
        .root_ca
        .get(&ObjectRef::new(ROOT_CA_CONFIGMAP).within(ns));
    let map = match cached {
        Some(c) => Some(c),
        None => ctx
            .virtual_api::<ConfigMap>(ns)
            .get_opt(ROOT_CA_CONFIGMAP)
            .await?
            .map(Arc::new),
    };
    Ok(map
        .as_ref()
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get("ca.crt").cloned())
        .unwrap_or_default())
}

/// Writes a fresh `token` into the annotations of host pod `h` (ours,
/// mirroring `v`) with one JSON patch that tests the pod's uid, so a
/// recreated pod of the same name never gets it. Returns when to refresh.
async fn annotate_token(
    ctx: &Context,
    state: &State,
    key: &Key,
    v: &Pod,
    h: &Pod,
    token: String,
) -> anyhow::Result<Option<Duration>> {
    let ca = root_ca(ctx, state, &key.0).await?;
    let refresh_at = token_refresh_at();
    let mut ops =
        vec![serde_json::json!({"op": "test", "path": "/metadata/uid", "value": h.uid()})];
    if h.metadata.annotations.is_none() {
        ops.push(serde_json::json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    for (k, val) in pure::token_annotations(&token, &ca, refresh_at) {
        let path = format!(
            "/metadata/annotations/{}",
            k.replace('~', "~0").replace('/', "~1")
        );
        ops.push(serde_json::json!({"op": "add", "path": path, "value": val}));
    }
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))?;
    match ctx
        .host_api::<Pod>()
        .patch(
            &h.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => {
            issued_lock(state).insert(key.clone(), (v.uid().unwrap_or_default(), refresh_at));
            Ok(Some(Duration::from_secs((TOKEN_SECONDS * 8 / 10) as u64)))
        }
        // Gone or replaced meanwhile: its watch event requeues the key.
        Err(e) if is_status(&e, 404) || is_status(&e, 422) || is_status(&e, 409) => Ok(None),
        Err(e) => Err(e).context("writing the token into the host pod"),
    }
}

async fn delete_host_pod(ctx: &Context, h: &Pod, grace: Option<i64>) -> anyhow::Result<()> {
    let dp = DeleteParams {
        grace_period_seconds: grace.and_then(|g| u32::try_from(g).ok()),
        preconditions: uid_precondition(h.meta().uid.clone()),
        ..Default::default()
    };
    match ctx.host_api::<Pod>().delete(&h.name_any(), &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).context("deleting the host pod"),
    }
}

/// Deletes virtual pod `v` with grace 0 and its UID as precondition, as the
/// kubelet does once containers stopped.
async fn finalize_virtual(ctx: &Context, v: &Pod) -> anyhow::Result<()> {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: uid_precondition(v.meta().uid.clone()),
        ..Default::default()
    };
    match ctx
        .virtual_api::<Pod>(&v.namespace().unwrap_or_default())
        .delete(&v.name_any(), &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).context("finalizing the virtual pod"),
    }
}

/// Writes host pod `h`'s status to virtual pod `v` when it differs.
async fn reflect(ctx: &Context, v: &Pod, h: &Pod, since: Instant) -> anyhow::Result<()> {
    let Some(status) = h.status.as_ref() else {
        return Ok(());
    };
    let Some(new) = pure::reflect_status(status, v.status.as_ref()) else {
        return Ok(());
    };
    write_status(ctx, v, new).await?;
    ctx.metrics
        .observe_latency(KIND, Direction::HostToVirtual, since.elapsed());
    Ok(())
}

/// Replaces virtual pod `v`'s status with `status`: a JSON patch (RFC 6902)
/// of the `status` subresource that tests `metadata.uid` and then sets
/// `/status`. No resourceVersion, so a cache a write behind the virtual pod
/// (its binding, the previous status write) costs no 409 and retry; only
/// the syncer writes a virtual pod's status, so last-writer-wins is right.
/// The uid test keeps the write out of a recreated pod of the same name
/// (422 then; the next reconcile sees the new pod), as the kubelet's status
/// patch does with its uid precondition.
async fn write_status(
    ctx: &Context,
    v: &Pod,
    status: k8s_openapi::api::core::v1::PodStatus,
) -> anyhow::Result<()> {
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "test", "path": "/metadata/uid", "value": v.uid().unwrap_or_default()},
        {"op": "add", "path": "/status", "value": status},
    ]))
    .context("building the status patch")?;
    match ctx
        .virtual_api::<Pod>(&v.namespace().unwrap_or_default())
        .patch_status(
            &v.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone: nothing to reflect to.
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(e).context("writing the virtual pod's status"),
    }
}

/// Whether virtual pod `v` is to be bound: host pod `h` has a node and
/// `v` has none yet.
fn binding_due(v: &Pod, h: &Pod) -> bool {
    let node_of = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    node_of(h) && !node_of(v)
}

/// Binds virtual pod `v` to host pod `h`'s node (the `binding`
/// subresource, as kube-scheduler does) once the host scheduled it.
async fn bind(ctx: &Context, v: &Pod, h: &Pod) -> anyhow::Result<()> {
    if !binding_due(v, h) {
        return Ok(());
    }
    let Some(node) = h.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        return Ok(());
    };
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(v.name_any()),
            namespace: v.namespace(),
            uid: v.uid(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node),
            ..Default::default()
        },
    };
    let res: Result<serde_json::Value, _> = ctx
        .virtual_api::<Pod>(&v.namespace().unwrap_or_default())
        .create_subresource("binding", &v.name_any(), &PostParams::default(), &binding)
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).context("binding the virtual pod"),
    }
}

/// Marks `v` refused (status + Warning Event), unless already marked.
async fn refuse(ctx: &Context, v: &Pod, message: &str) -> anyhow::Result<()> {
    if let Some(status) = pure::refused_status(v.status.as_ref(), message) {
        write_status(ctx, v, status).await?;
    }
    ctx.warn(v, REASON_SYNC_REFUSED, message).await
}

/// What a pod's token Secret needs now (see [`token_need`]).
enum TokenNeed {
    /// Nothing now; look again after the duration, if any (the refresh
    /// time, or a retry while the virtual service account is missing).
    Nothing(Option<Duration>),
    /// A new token: a TokenRequest, then a create (no Secret cached) or a
    /// replace of the cached Secret.
    Issue(Option<TokenSummary>),
}

type Issued = HashMap<Key, (String, jiff::Timestamp)>;

fn issued_lock(state: &State) -> std::sync::MutexGuard<'_, Issued> {
    state.issued.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decides from the caches (no I/O) whether virtual pod `v` needs a new
/// token: it wants one and neither its token (the token Secret in the
/// token store, or the annotations of `host_pod`, its host copy) nor this
/// process's record of the tokens it wrote (`State::issued`) holds one for
/// this incarnation that is still before its refresh time.
fn token_need(
    ctx: &Context,
    state: &State,
    key: &Key,
    v: &Pod,
    host_pod: Option<&Pod>,
) -> TokenNeed {
    if !token_wanted(state, v) {
        return TokenNeed::Nothing(None);
    }
    let now = jiff::Timestamp::now();
    let uid = v.uid().unwrap_or_default();
    let (existing, cached) = if ctx.config.token_secrets {
        let existing = state.tokens.get(&token_secret_name(ctx, key));
        let cached = existing
            .as_ref()
            .filter(|s| s.object_uid.as_deref() == Some(uid.as_str()))
            .and_then(|s| s.refresh_at);
        (existing, cached)
    } else {
        // The host pod carries its token (the caller passes this
        // incarnation's copy only).
        let cached = host_pod
            .and_then(|h| h.metadata.annotations.as_ref())
            .and_then(|a| a.get(crate::summary::ANNOTATION_SA_REFRESH_AT))
            .and_then(|t| t.parse().ok());
        (None, cached)
    };
    let refresh_at = {
        let mut issued = issued_lock(state);
        let written = issued
            .get(key)
            .filter(|(u, _)| *u == uid)
            .map(|(_, at)| *at);
        if written.is_some_and(|w| cached.is_some_and(|c| c >= w)) {
            // The store caught up with what this process wrote.
            remove_shrinking(&mut issued, key);
        }
        cached.max(written)
    };
    if let Some(wait) = refresh_at.and_then(|at| crate::summary::wait_until(at, now)) {
        return TokenNeed::Nothing(Some(wait));
    }
    let sa_name = pure::service_account_of(v);
    if state
        .sas
        .get(&ObjectRef::new(sa_name).within(&key.0))
        .is_none()
    {
        // The virtual service account does not exist (yet): retry later.
        return TokenNeed::Nothing(Some(Duration::from_secs(2)));
    }
    TokenNeed::Issue(existing)
}

/// Ensures host pod `h` (ours, mirroring `v`) has a fresh token Secret.
/// Returns when to look again (the refresh time).
async fn ensure_token(
    ctx: &Context,
    state: &State,
    key: &Key,
    v: &Pod,
    h: &Pod,
) -> anyhow::Result<Option<Duration>> {
    match token_need(ctx, state, key, v, Some(h)) {
        TokenNeed::Nothing(after) => Ok(after),
        TokenNeed::Issue(existing) => {
            let token = request_token(ctx, key, v).await?;
            if ctx.config.token_secrets {
                write_token(ctx, state, key, v, h, token, existing.as_ref()).await
            } else {
                annotate_token(ctx, state, key, v, h, token).await
            }
        }
    }
}

/// Asks the virtual API server for a token of `v`'s service account bound
/// to `v` (TokenRequest, [`TOKEN_SECONDS`] long), as the kubelet does for
/// a projected service account token.
/// Errors: the request failing or returning no token.
async fn request_token(ctx: &Context, key: &Key, v: &Pod) -> anyhow::Result<String> {
    let request = TokenRequest {
        metadata: ObjectMeta::default(),
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(key.1.clone()),
                uid: v.uid(),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let issued = ctx
        .virtual_api::<ServiceAccount>(&key.0)
        .create_token_request(
            pure::service_account_of(v),
            &PostParams::default(),
            &request,
        )
        .await
        .context("requesting the pod's service account token")?;
    issued
        .status
        .and_then(|s| s.token)
        .context("the TokenRequest returned no token")
}

/// Writes `token` into the token Secret of host pod `h` (owned by `h`,
/// so the host's garbage collector removes it with the pod): a create, or
/// a replace of `existing`. Returns when to refresh it.
async fn write_token(
    ctx: &Context,
    state: &State,
    key: &Key,
    v: &Pod,
    h: &Pod,
    token: String,
    existing: Option<&TokenSummary>,
) -> anyhow::Result<Option<Duration>> {
    let name = token_secret_name(ctx, key);
    let ns = key.0.clone();
    let ca = root_ca(ctx, state, &ns).await?;
    let refresh_at = token_refresh_at();
    // object-name is the pod's, so the token's watch events queue the pod.
    let id = VirtualIdentity::from_meta(TOKEN_KIND, v.meta())?;
    let mut markers = crate::names::identity_markers(&ctx.tenant, &id);
    markers.labels.insert(LABEL_TOKEN.into(), "true".into());
    markers
        .annotations
        .insert(ANNOTATION_REFRESH_AT.into(), refresh_at.to_string());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ctx.tenant.host_namespace().to_string()),
            labels: Some(markers.labels),
            annotations: Some(markers.annotations),
            owner_references: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                    name: h.name_any(),
                    uid: h.uid().unwrap_or_default(),
                    controller: None,
                    block_owner_deletion: None,
                },
            ]),
            resource_version: existing
                .as_ref()
                .and_then(|s| s.resource_version.as_deref().map(String::from)),
            ..Default::default()
        },
        data: Some(
            [
                ("token".to_string(), ByteString(token.into_bytes())),
                ("ca.crt".to_string(), ByteString(ca.into_bytes())),
                ("namespace".to_string(), ByteString(ns.into_bytes())),
            ]
            .into(),
        ),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let api = ctx.host_api::<Secret>();
    let res = match existing {
        Some(_) => api.replace(&name, &PostParams::default(), &secret).await,
        None => api.create(&PostParams::default(), &secret).await,
    };
    match res {
        Ok(_) => {
            issued_lock(state).insert(key.clone(), (id.uid.clone(), refresh_at));
            Ok(Some(Duration::from_secs((TOKEN_SECONDS * 8 / 10) as u64)))
        }
        Err(e) if is_status(&e, 409) && existing.is_none() => {
            // Either ours and not yet cached, or not ours: check.
            let live = api.get_opt(&name).await?;
            if let Some(live) = live
                && live.labels().get(LABEL_TOKEN).map(String::as_str) != Some("true")
            {
                return Err(anyhow::anyhow!(
                    "host Secret {name} exists and is not this syncer's token Secret"
                ));
            }
            Ok(Some(Duration::from_secs(1)))
        }
        Err(e) => Err(e).context("writing the token Secret"),
    }
}

async fn delete_token_secret(ctx: &Context, state: &State, key: &Key) -> anyhow::Result<()> {
    let name = token_secret_name(ctx, key);
    let Some(s) = state.tokens.get(&name) else {
        return Ok(());
    };
    let dp = DeleteParams {
        preconditions: uid_precondition(s.uid.as_deref().map(String::from)),
        ..Default::default()
    };
    match ctx.host_api::<Secret>().delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).context("deleting the token Secret"),
    }
}

/// The node virtual pod `pod` is bound to (`spec.nodeName`, when set).
fn bound_node(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}
