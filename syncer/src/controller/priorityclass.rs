//! The PriorityClass controller: with PriorityClass sync on
//! (`SyncerConfig::priority_classes`), every virtual PriorityClass gets its
//! host copy ([`crate::priorityclass`]: renamed, value capped, never the
//! host's default), replaced when its immutable value or preemption policy
//! changes and deleted (UID precondition) when the virtual class goes. A
//! host class at the target name that is not this tenant's copy is never
//! touched (a `SyncConflict` Warning Event goes on the virtual class).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::engine::{Context, drive, is_status, run_workers, watch_store};
use crate::names::ANNOTATION_OBJECT_NAME;
use crate::priorityclass::{
    self as pc, ANNOTATION_HOST_NAMESPACE, PriorityClassOptions, host_class_name,
};
use crate::queue::Queue;

/// The kind name, as in metrics.
pub const KIND: &str = pc::KIND;

/// Runs the controller (idles when PriorityClass sync is off).
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let Some(opts) = ctx.config.priority_classes else {
        return std::future::pending().await;
    };
    let queue: Arc<Queue<String>> = Arc::new(Queue::default());
    ctx.metrics.register_queue(KIND, &queue);
    let (virt, virt_stream) = watch_store(
        Api::<PriorityClass>::all(ctx.virtual_client.clone()),
        watcher::Config::default(),
    );
    let (host, host_stream) = watch_store(
        Api::<PriorityClass>::all(ctx.host_client.clone()),
        watcher::Config::default().labels(&ctx.managed_selector()),
    );
    let virt_events = {
        let queue = Arc::clone(&queue);
        drive(virt_stream, move |ev| match ev {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                queue.add(o.name_any());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        })
    };
    let host_events = {
        let (queue, host_ns) = (Arc::clone(&queue), ctx.tenant.host_namespace().to_string());
        drive(host_stream, move |ev| match ev {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                let ann = o.annotations();
                if ann.get(ANNOTATION_HOST_NAMESPACE) == Some(&host_ns)
                    && let Some(name) = ann.get(ANNOTATION_OBJECT_NAME)
                {
                    queue.add(name.clone());
                }
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        })
    };
    let work = {
        let (virt, host, c, q) = (
            virt.clone(),
            host.clone(),
            Arc::clone(&ctx),
            Arc::clone(&queue),
        );
        async move {
            virt.wait_until_ready().await?;
            host.wait_until_ready().await?;
            run_workers(KIND, c, q, move |name, since| {
                let (ctx, virt, host) = (Arc::clone(&ctx), virt.clone(), host.clone());
                async move { reconcile(&ctx, &opts, &virt, &host, &name, since).await }
            })
            .await
        }
    };
    tokio::select! {
        r = virt_events => r,
        r = host_events => r,
        r = work => r,
    }
}

async fn reconcile(
    ctx: &Context,
    opts: &PriorityClassOptions,
    virt: &Store<PriorityClass>,
    host: &Store<PriorityClass>,
    name: &str,
    _since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let api = Api::<PriorityClass>::all(ctx.host_client.clone());
    let hname = host_class_name(&ctx.tenant, name);
    let h = host.get(&ObjectRef::new(&hname));
    let v = virt
        .get(&ObjectRef::new(name))
        .filter(|v| v.metadata.deletion_timestamp.is_none());
    let Some(v) = v else {
        if let Some(h) = h.filter(|h| pc::is_ours(&ctx.tenant, h, name)) {
            delete(&api, &h).await?;
        }
        return Ok(None);
    };
    let desired = pc::translate(&ctx.tenant, &v, opts)?;
    match h {
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(None),
            Err(e) if is_status(&e, 409) => {
                let live = api.get_opt(&hname).await?;
                if live.is_some_and(|l| !pc::is_ours(&ctx.tenant, &l, name)) {
                    conflict(ctx, &v, &hname).await?;
                    return Ok(None);
                }
                Ok(Some(Duration::from_secs(1)))
            }
            Err(e) => Err(e).with_context(|| format!("creating host PriorityClass {hname}")),
        },
        Some(h) if !pc::is_ours(&ctx.tenant, &h, name) => {
            conflict(ctx, &v, &hname).await?;
            Ok(None)
        }
        Some(h) if pc::needs_replace(&desired, &h) => {
            delete(&api, &h).await?;
            Ok(Some(Duration::from_millis(200)))
        }
        Some(h) if pc::needs_update(&desired, &h) => {
            let mut out = desired;
            out.metadata.resource_version = h.metadata.resource_version.clone();
            api.replace(&hname, &PostParams::default(), &out)
                .await
                .with_context(|| format!("updating host PriorityClass {hname}"))?;
            Ok(None)
        }
        Some(_) => Ok(None),
    }
}

async fn conflict(ctx: &Context, v: &PriorityClass, hname: &str) -> anyhow::Result<()> {
    ctx.warn(
        v,
        crate::event::REASON_SYNC_CONFLICT,
        &format!(
            "host PriorityClass {hname} exists and is not managed by this virtual cluster; not syncing"
        ),
    )
    .await
}

async fn delete(api: &Api<PriorityClass>, h: &PriorityClass) -> anyhow::Result<()> {
    crate::engine::delete_guarded(api, h, "host PriorityClass").await
}

/// Makes sure the host copy of virtual class `name` exists before a host
/// pod names it (the host's Priority admission refuses a pod whose class
/// does not exist). A missing virtual class is not an error: the pod then
/// fails on the host as it would have in the virtual cluster.
pub async fn ensure(ctx: &Context, name: &str) -> anyhow::Result<()> {
    let Some(opts) = ctx.config.priority_classes else {
        return Ok(());
    };
    let api = Api::<PriorityClass>::all(ctx.host_client.clone());
    if api
        .get_opt(&host_class_name(&ctx.tenant, name))
        .await?
        .is_some()
    {
        return Ok(());
    }
    let Some(v) = Api::<PriorityClass>::all(ctx.virtual_client.clone())
        .get_opt(name)
        .await?
    else {
        return Ok(());
    };
    match api
        .create(
            &PostParams::default(),
            &pc::translate(&ctx.tenant, &v, &opts)?,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).context("creating the host PriorityClass a pod names"),
    }
}
