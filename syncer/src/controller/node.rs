//! The Node controller: for each host node the tenant sees
//! ([`NodeVisibility`]), a virtual Node of the same name (labels,
//! capacity/allocatable, conditions, addresses), removed when it is no
//! longer seen. Nodes that run a synced pod are always seen: the Pod
//! controller feeds them (host pod events name the node), they are
//! refreshed every minute while in use and read with plain GETs (so a host
//! that forbids listing nodes still works, with a placeholder when even a
//! GET is forbidden). With `all` or a selector, a watch of those host nodes
//! feeds and caches the rest.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::engine::{Context, drive, is_status, run_workers, watch_store_with};
use crate::names::LABEL_MANAGED_BY;
use crate::node::NodeVisibility;
use crate::queue::Queue;

/// The kind name, as in metrics.
pub const KIND: &str = "Node";

/// How often a virtual Node in use is refreshed from its host Node.
pub const REFRESH: Duration = Duration::from_secs(60);

/// What the Pod controller tells the Node controller: which nodes host
/// pods use. Queues a node only when it may need a change (first use seen,
/// or a pod left it), not on every host pod event.
#[derive(Default)]
pub struct NodeFeed {
    queue: Arc<Queue<String>>,
    /// Nodes believed to have a virtual Node.
    known: Mutex<HashSet<String>>,
}

impl NodeFeed {
    /// A host pod runs on `node`.
    pub fn used(&self, node: String) {
        if self.lock().insert(node.clone()) {
            self.queue.add(node);
        }
    }

    /// `node` may have lost a pod (or a resync): look at it again.
    pub fn check(&self, node: String) {
        self.queue.add(node);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the Node controller over `feed`'s queue (node names), deciding use
/// with `in_use(node)`: whether a host pod of this tenant runs there, or
/// only virtual pods name it (the Pod controller answers from its caches). With
/// [`NodeVisibility::All`] or a selector (and [`NodeVisibility::Auto`] when
/// the host lets the syncer list nodes) it also watches those host nodes
/// and shows each of them.
pub async fn run(
    ctx: Arc<Context>,
    in_use: impl Fn(&str) -> NodeUse + Send + Sync + 'static,
    feed: Arc<NodeFeed>,
) -> anyhow::Result<()> {
    let visibility = resolve(&ctx).await;
    tracing::info!(nodes = %visibility, "virtual nodes");
    ctx.metrics.register_queue(KIND, &feed.queue);
    let watched = visibility.watch_selector().map(|selector| {
        watch_store_with(
            Api::<Node>::all(ctx.host_client.clone()),
            watcher::Config::default().labels(selector),
            |n: &mut Node| {
                // Only what a virtual Node shows is kept.
                n.metadata.annotations = None;
                if let Some(s) = n.status.as_mut() {
                    s.images = None;
                    s.volumes_attached = None;
                    s.volumes_in_use = None;
                }
            },
        )
    });
    let (visible, events) = match watched {
        Some((store, stream)) => (Some(store), Some(stream)),
        None => (None, None),
    };
    // The virtual Nodes shown before this start (another mode, pods gone
    // while stopped) are looked at once, so none is left behind.
    match Api::<Node>::all(ctx.virtual_client.clone())
        .list_metadata(&ListParams::default().labels(&ctx.managed_selector()))
        .await
    {
        Ok(list) => list.items.iter().for_each(|n| feed.check(n.name_any())),
        Err(e) => tracing::warn!(error = %e, "listing the virtual nodes"),
    }
    let in_use = Arc::new(in_use);
    let c = Arc::clone(&ctx);
    let f = Arc::clone(&feed);
    let v = visible.clone();
    let workers = run_workers(KIND, ctx, Arc::clone(&feed.queue), move |name, since| {
        let (ctx, in_use, feed) = (Arc::clone(&c), Arc::clone(&in_use), Arc::clone(&f));
        let cached = v.as_ref().map(|s| s.get(&ObjectRef::new(&name)));
        async move {
            // Forgotten while reconciling, so a use seen meanwhile queues
            // the node again; remembered only if it ends up present.
            feed.lock().remove(&name);
            let watched = cached.as_ref().is_some_and(Option::is_some);
            let usage = in_use(&name);
            let shown = usage != NodeUse::Unused || watched;
            let only_while_on_host = usage == NodeUse::VirtualPods && !watched;
            let res = reconcile(
                &ctx,
                shown,
                only_while_on_host,
                &name,
                cached.flatten(),
                since,
            )
            .await;
            if matches!(res, Ok(Some(_))) {
                feed.lock().insert(name);
            }
            res
        }
    });
    match events {
        None => workers.await,
        Some(stream) => {
            let queue = Arc::clone(&feed.queue);
            let events = drive(stream, move |ev| match ev {
                watcher::Event::Apply(n)
                | watcher::Event::Delete(n)
                | watcher::Event::InitApply(n) => {
                    queue.add(n.name_any());
                }
                watcher::Event::Init | watcher::Event::InitDone => {}
            });
            tokio::select! {
                r = workers => r,
                r = events => r,
            }
        }
    }
}

/// [`SyncerConfig::nodes`](crate::SyncerConfig), with `Auto` decided: `All`
/// when the host answers a LIST of nodes, `Used` when it forbids it (or
/// keeps failing).
async fn resolve(ctx: &Context) -> NodeVisibility {
    if ctx.config.nodes != NodeVisibility::Auto {
        return ctx.config.nodes.clone();
    }
    let api: Api<Node> = Api::all(ctx.host_client.clone());
    for attempt in 0..5 {
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => return NodeVisibility::All,
            Err(e) if is_status(&e, 403) => return NodeVisibility::Used,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "listing host nodes; retrying");
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
        }
    }
    NodeVisibility::Used
}

/// Whether a node runs pods of this tenant, as the Pod controller sees
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeUse {
    /// No pod of the tenant is bound to it.
    Unused,
    /// A host pod of the tenant runs there.
    HostPods,
    /// Only virtual pods name it (their host copies are gone or not yet
    /// made, e.g. after a resume): a virtual node already shown stays while
    /// the host node exists, so the tenant's pod garbage collector does not
    /// take a live node for a deleted one, and does collect the pods of a
    /// node the host deleted. None is made for it: the tenant writes
    /// `nodeName`.
    VirtualPods,
}

/// Shows (`shown`) or removes the virtual Node `name`, from host node
/// `cached` when the node watch has it, else a GET. With
/// `only_while_on_host` (only virtual pods name it) an existing virtual
/// node is kept, never created, and a host node that is not found (404)
/// removes it.
async fn reconcile(
    ctx: &Context,
    shown: bool,
    only_while_on_host: bool,
    name: &str,
    cached: Option<Arc<Node>>,
    _since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let vapi: Api<Node> = Api::all(ctx.virtual_client.clone());
    let current = vapi.get_opt(name).await?;
    let ours = current.as_ref().is_some_and(|n| {
        n.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(ctx.tenant.name())
    });
    let remove = async || -> anyhow::Result<Option<Duration>> {
        if ours {
            match vapi.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(e).context("deleting the virtual node"),
            }
        }
        Ok(None)
    };
    if !shown {
        return remove().await;
    }
    if current.is_some() && !ours {
        // A node the tenant (or someone) created: leave it alone.
        return Ok(Some(REFRESH));
    }
    // A virtual pod's `nodeName` is the tenant's to write: it keeps a node
    // the tenant was shown, never makes one appear.
    if only_while_on_host && current.is_none() {
        return Ok(None);
    }
    let host = match cached {
        Some(n) => Some((*n).clone()),
        None => match Api::<Node>::all(ctx.host_client.clone())
            .get_opt(name)
            .await
        {
            Ok(None) if only_while_on_host => return remove().await,
            Ok(n) => n,
            // Not allowed to look: a kept node stays as it is.
            Err(e) if is_status(&e, 403) && only_while_on_host => return Ok(Some(REFRESH)),
            Err(e) if is_status(&e, 403) => None,
            Err(e) => return Err(e).context("reading the host node"),
        },
    };
    let mut want = match &host {
        Some(h) => crate::node::virtual_node(h),
        None => crate::node::placeholder_node(name),
    };
    want.labels_mut()
        .insert(LABEL_MANAGED_BY.into(), ctx.tenant.name().into());
    match current {
        None => {
            let status = want.status.clone();
            let created = match vapi.create(&PostParams::default(), &want).await {
                Ok(n) => n,
                Err(e) if is_status(&e, 409) => return Ok(Some(Duration::from_secs(1))),
                Err(e) => return Err(e).context("creating the virtual node"),
            };
            if created.status != status {
                let mut n = created;
                n.status = status;
                vapi.replace_status(name, &PostParams::default(), &n)
                    .await
                    .context("writing the virtual node's status")?;
            }
        }
        Some(cur) => {
            if crate::node::node_needs_update(&want, &cur) {
                let mut n = cur.clone();
                n.metadata.labels = want.metadata.labels.clone();
                n.spec = want.spec.clone();
                if n.metadata.labels != cur.metadata.labels || n.spec != cur.spec {
                    n = vapi
                        .replace(name, &PostParams::default(), &n)
                        .await
                        .context("updating the virtual node")?;
                }
                n.status = want.status;
                vapi.replace_status(name, &PostParams::default(), &n)
                    .await
                    .context("writing the virtual node's status")?;
            }
        }
    }
    Ok(Some(REFRESH))
}
