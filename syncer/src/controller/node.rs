//! The Node controller: for each host node that runs a synced pod, a
//! virtual Node of the same name (labels, capacity/allocatable, conditions,
//! addresses), removed when no synced pod uses it. Fed by the Pod
//! controller (host pod events name the node) and refreshed every minute
//! while in use; it reads host Nodes with plain GETs (no watch, so a host
//! that forbids listing nodes still works) and falls back to a placeholder
//! when forbidden.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};

use crate::engine::{Context, is_status, run_workers};
use crate::names::LABEL_MANAGED_BY;
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
/// with `in_use(node)`: whether any host pod of this tenant runs there (the
/// Pod controller answers from its host pod cache).
pub async fn run(
    ctx: Arc<Context>,
    in_use: impl Fn(&str) -> bool + Send + Sync + 'static,
    feed: Arc<NodeFeed>,
) -> anyhow::Result<()> {
    let in_use = Arc::new(in_use);
    ctx.metrics.register_queue(KIND, &feed.queue);
    let c = Arc::clone(&ctx);
    let f = Arc::clone(&feed);
    run_workers(KIND, ctx, Arc::clone(&feed.queue), move |name, since| {
        let (ctx, in_use, feed) = (Arc::clone(&c), Arc::clone(&in_use), Arc::clone(&f));
        async move {
            // Forgotten while reconciling, so a use seen meanwhile queues
            // the node again; remembered only if it ends up present.
            feed.lock().remove(&name);
            let res = reconcile(&ctx, in_use(&name), &name, since).await;
            if matches!(res, Ok(Some(_))) {
                feed.lock().insert(name);
            }
            res
        }
    })
    .await
}

async fn reconcile(
    ctx: &Context,
    in_use: bool,
    name: &str,
    _since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let vapi: Api<Node> = Api::all(ctx.virtual_client.clone());
    let current = vapi.get_opt(name).await?;
    let ours = current.as_ref().is_some_and(|n| {
        n.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(ctx.tenant.name())
    });
    if !in_use {
        if ours {
            match vapi.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(e).context("deleting the virtual node"),
            }
        }
        return Ok(None);
    }
    if current.is_some() && !ours {
        // A node the tenant (or someone) created: leave it alone.
        return Ok(Some(REFRESH));
    }
    let host = match Api::<Node>::all(ctx.host_client.clone())
        .get_opt(name)
        .await
    {
        Ok(n) => n,
        Err(e) if is_status(&e, 403) => None,
        Err(e) => return Err(e).context("reading the host node"),
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
