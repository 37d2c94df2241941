//! The Event controller: host core/v1 Events about host Pods and Services
//! the syncer manages → Events in the tenant's virtual namespace, about the
//! virtual object (built by [`crate::event::translate_to_virtual`]).
//!
//! Per host Event name (the queue key), level-based: the involved object
//! must be a Pod or Service in the host namespace that is ours — found in a
//! cache of managed host Pods/Services (or by a live GET when the cache has
//! not seen it yet), its `vkube.dev/object-*` annotations naming the
//! virtual object and [`is_managed`] agreeing; the Event's
//! `involvedObject.uid`, when set, must be that host object's UID (an Event
//! about an earlier incarnation is skipped). Names are never parsed. The
//! virtual copy has a deterministic name, so copying again (after a
//! restart, or when the host bumps `count`/`lastTimestamp`) updates it
//! instead of duplicating it. Host Events that go away are left to expire
//! on the virtual side like any Event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::api::{Api, ObjectMeta, PartialObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use super::compact::{Summaries, remove_shrinking};
use crate::engine::{Context, drive, is_status, run_workers};
use crate::event::translate_to_virtual;
use crate::metrics::Direction;
use crate::names::{Ownership, Tenant, VirtualIdentity, is_managed};
use crate::queue::Queue;

/// The kind name, as in metrics.
pub const KIND: &str = "Event";

/// What the Event controller keeps of an owned host Pod or Service between
/// its watch events (keyed by host name): the host UID and the virtual
/// object's identity, in boxed strings (about 200 B a pod, where the
/// object's trimmed metadata in a reflector store took about 2 KiB; issue
/// 4's memory aim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Involved {
    /// The host object's `metadata.uid`.
    host_uid: Option<Box<str>>,
    /// Virtual namespace, name and UID (the kind is the cache's).
    namespace: Box<str>,
    name: Box<str>,
    uid: Box<str>,
}

impl Involved {
    /// The identity host object `meta` of kind `kind` records, if it is
    /// ours: its `vkube.dev/object-*` annotations name an object of `kind`
    /// and [`is_managed`] says `Owned` for it. `None` otherwise.
    pub fn of(tenant: &Tenant, kind: &str, meta: &ObjectMeta) -> Option<Self> {
        let id = VirtualIdentity::from_host(meta)?;
        (id.kind == kind && is_managed(tenant, Some(meta), &id) == Ownership::Owned).then(|| {
            Involved {
                host_uid: meta.uid.as_deref().map(Box::from),
                namespace: id.namespace.into(),
                name: id.name.into(),
                uid: id.uid.into(),
            }
        })
    }
}

/// The virtual identity a host Event is about, given what is known of the
/// host object of kind `involved_kind` named `host_name` it names (looked
/// up by the caller by kind and name; `None`: not ours): `None` unless
/// `event.involvedObject` is in the host namespace, its kind is
/// `involved_kind`, its name `host_name`, and its uid (when set) the host
/// object's.
pub fn event_identity(
    tenant: &Tenant,
    event: &Event,
    involved_kind: &str,
    host_name: &str,
    involved: Option<&Involved>,
) -> Option<VirtualIdentity> {
    let r = &event.involved_object;
    if r.kind.as_deref() != Some(involved_kind)
        || r.namespace.as_deref() != Some(tenant.host_namespace())
        || r.name.as_deref() != Some(host_name)
    {
        return None;
    }
    let inv = involved?;
    if let Some(uid) = r.uid.as_deref().filter(|u| !u.is_empty())
        && Some(uid) != inv.host_uid.as_deref()
    {
        return None;
    }
    Some(VirtualIdentity {
        kind: involved_kind.to_string(),
        namespace: inv.namespace.to_string(),
        name: inv.name.to_string(),
        uid: inv.uid.to_string(),
    })
}

/// [`event_identity`] for host object metadata `involved` (what the
/// controller caches of it is [`Involved::of`]).
pub fn involved_identity(
    tenant: &Tenant,
    event: &Event,
    involved_kind: &str,
    involved: &ObjectMeta,
) -> Option<VirtualIdentity> {
    event_identity(
        tenant,
        event,
        involved_kind,
        involved.name.as_deref()?,
        Involved::of(tenant, involved_kind, involved).as_ref(),
    )
}

/// Whether virtual Event `have` must be replaced by `want` (the copy of the
/// current host Event): count, timestamps, series, message or reason differ.
pub fn needs_update(want: &Event, have: &Event) -> bool {
    want.count != have.count
        || want.last_timestamp != have.last_timestamp
        || want.event_time != have.event_time
        || want.series != have.series
        || want.message != have.message
        || want.reason != have.reason
        || want.type_ != have.type_
}

struct State {
    /// Host Events not copied yet, from their watch events: each is held
    /// until its reconcile ends well, then dropped (an Event is written
    /// once and rarely updated, so caching them all cost memory for
    /// nothing; issue 4).
    events: Mutex<HashMap<String, Arc<Event>>>,
    /// Managed host Pods and Services by host name: what the identity
    /// check needs ([`Involved`]; `None` for one that is not ours), from
    /// metadata-only watches.
    pods: Summaries<String, Option<Involved>>,
    services: Summaries<String, Option<Involved>>,
}

/// Runs the Event controller.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let queue: Arc<Queue<String>> = Arc::new(Queue::new());
    ctx.metrics.register_queue(KIND, &queue);
    let estream =
        watcher::watcher(ctx.host_api::<Event>(), watcher::Config::default()).default_backoff();
    let managed = || watcher::Config::default().labels(&ctx.managed_selector());
    // `Api<PartialObjectMeta<K>>` asks the server for metadata only.
    let pstream =
        watcher::watcher(ctx.host_api::<PartialObjectMeta<Pod>>(), managed()).default_backoff();
    let sstream =
        watcher::watcher(ctx.host_api::<PartialObjectMeta<Service>>(), managed()).default_backoff();
    let state = Arc::new(State {
        events: Mutex::new(HashMap::new()),
        pods: Summaries::default(),
        services: Summaries::default(),
    });
    let e_events = {
        let (queue, state) = (Arc::clone(&queue), Arc::clone(&state));
        drive(estream, move |ev| match ev {
            watcher::Event::Apply(mut o) | watcher::Event::InitApply(mut o) => {
                o.metadata.managed_fields = None;
                let name = o.name_any();
                state.held().insert(name.clone(), Arc::new(o));
                queue.add(name);
            }
            watcher::Event::Delete(o) => {
                remove_shrinking(&mut state.held(), &o.name_any());
            }
            watcher::Event::InitDone | watcher::Event::Init => {}
        })
    };
    let p_events = {
        let (ctx, state) = (Arc::clone(&ctx), Arc::clone(&state));
        drive(pstream, move |ev| {
            state.pods.apply(&ev, |o: &PartialObjectMeta<Pod>| {
                Some((o.name_any(), Involved::of(&ctx.tenant, "Pod", &o.metadata)))
            })
        })
    };
    let s_events = {
        let (ctx, state) = (Arc::clone(&ctx), Arc::clone(&state));
        drive(sstream, move |ev| {
            state.services.apply(&ev, |o: &PartialObjectMeta<Service>| {
                Some((
                    o.name_any(),
                    Involved::of(&ctx.tenant, "Service", &o.metadata),
                ))
            })
        })
    };
    let workers = {
        let (ctx, state) = (Arc::clone(&ctx), Arc::clone(&state));
        async move {
            state.pods.wait_until_ready().await?;
            state.services.wait_until_ready().await?;
            run_workers(KIND, Arc::clone(&ctx), queue, |name, since| {
                let (ctx, state) = (Arc::clone(&ctx), Arc::clone(&state));
                async move {
                    let Some(ev) = state.held().get(&name).cloned() else {
                        return Ok(None);
                    };
                    let res = reconcile(&ctx, &state, &ev, since).await;
                    if matches!(res, Ok(None)) {
                        // Done with this version (a newer one replaced it
                        // in the map and is queued again).
                        let mut held = state.held();
                        if held.get(&name).is_some_and(|h| Arc::ptr_eq(h, &ev)) {
                            remove_shrinking(&mut held, &name);
                        }
                    }
                    res
                }
            })
            .await
        }
    };
    tokio::select! {
        r = e_events => r,
        r = p_events => r,
        r = s_events => r,
        r = workers => r,
    }
}

/// What is known of host object `name` of kind `K` ([`Involved`], `None`
/// when not ours or gone): from `cache`, else from a live GET of its
/// metadata (the cache has not seen it yet).
async fn host_object<K>(
    ctx: &Context,
    cache: &Summaries<String, Option<Involved>>,
    kind: &str,
    name: &str,
) -> anyhow::Result<Option<Involved>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if let Some(known) = cache.get(&name.to_string()) {
        return Ok(known);
    }
    Ok(ctx
        .host_api::<K>()
        .get_metadata_opt(name)
        .await?
        .and_then(|o| Involved::of(&ctx.tenant, kind, &o.metadata)))
}

impl State {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Event>>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn reconcile(
    ctx: &Context,
    state: &State,
    ev: &Event,
    since: Instant,
) -> anyhow::Result<Option<Duration>> {
    let r = &ev.involved_object;
    let (Some(kind), Some(obj)) = (r.kind.as_deref(), r.name.as_deref()) else {
        return Ok(None);
    };
    if r.namespace.as_deref() != Some(ctx.tenant.host_namespace()) {
        return Ok(None);
    }
    let involved = match kind {
        "Pod" => host_object::<Pod>(ctx, &state.pods, kind, obj).await?,
        "Service" => host_object::<Service>(ctx, &state.services, kind, obj).await?,
        _ => None,
    };
    let Some(id) = event_identity(&ctx.tenant, ev, kind, obj, involved.as_ref()) else {
        return Ok(None);
    };
    let want = translate_to_virtual(ev, &id);
    let api: Api<Event> = ctx.virtual_api(&id.namespace);
    let vname = want.name_any();
    match api.get_opt(&vname).await? {
        None => match api.create(&PostParams::default(), &want).await {
            Ok(_) => {}
            // Created meanwhile (another worker or a restart): compare again.
            Err(e) if is_status(&e, 409) => return Ok(Some(Duration::from_millis(200))),
            // The virtual namespace is gone: nothing to show the event on.
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(e).context("creating the virtual Event"),
        },
        Some(have) => {
            if !needs_update(&want, &have) {
                return Ok(None);
            }
            let mut updated = want;
            updated.metadata.resource_version = have.resource_version();
            api.replace(&vname, &PostParams::default(), &updated)
                .await
                .context("updating the virtual Event")?;
        }
    }
    ctx.metrics
        .observe_latency(KIND, Direction::HostToVirtual, since.elapsed());
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{host_meta, host_name};
    use k8s_openapi::api::core::v1::ObjectReference;

    fn tenant() -> Tenant {
        Tenant::new("vc1", "host-ns").unwrap()
    }

    fn host_pod_meta(uid: &str) -> ObjectMeta {
        let v = ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("team".into()),
            uid: Some("virtual-uid".into()),
            ..Default::default()
        };
        let mut m = host_meta(&tenant(), "Pod", &v).unwrap();
        m.uid = Some(uid.into());
        m
    }

    fn event_about(ns: &str, name: &str, uid: Option<&str>) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(ns.into()),
                name: Some(name.into()),
                uid: uid.map(str::to_string),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn resolves_the_virtual_object_from_the_host_objects_annotations() {
        let t = tenant();
        let hname = host_name(&t, "team", "web-0");
        let meta = host_pod_meta("host-uid");
        let id = involved_identity(
            &t,
            &event_about("host-ns", &hname, Some("host-uid")),
            "Pod",
            &meta,
        )
        .expect("ours");
        assert_eq!((id.namespace.as_str(), id.name.as_str()), ("team", "web-0"));
        assert_eq!(id.uid, "virtual-uid");
        assert!(
            involved_identity(&t, &event_about("host-ns", &hname, None), "Pod", &meta).is_some(),
            "an Event without involvedObject.uid is matched by name"
        );
    }

    #[test]
    fn skips_events_about_other_incarnations_namespaces_kinds_and_unmanaged_objects() {
        let t = tenant();
        let hname = host_name(&t, "team", "web-0");
        let meta = host_pod_meta("host-uid");
        let ev = |ns: &str, uid: Option<&str>| event_about(ns, &hname, uid);
        assert!(involved_identity(&t, &ev("host-ns", Some("older")), "Pod", &meta).is_none());
        assert!(involved_identity(&t, &ev("other-ns", None), "Pod", &meta).is_none());
        assert!(involved_identity(&t, &ev("host-ns", None), "Service", &meta).is_none());
        let mut forged = meta.clone();
        forged
            .labels
            .as_mut()
            .unwrap()
            .insert(crate::names::LABEL_MANAGED_BY.into(), "other-vc".into());
        assert!(involved_identity(&t, &ev("host-ns", None), "Pod", &forged).is_none());
        let mut unannotated = meta;
        unannotated.annotations = None;
        assert!(involved_identity(&t, &ev("host-ns", None), "Pod", &unannotated).is_none());
    }

    #[test]
    fn the_cached_summary_resolves_as_the_metadata_does() {
        let t = tenant();
        let hname = host_name(&t, "team", "web-0");
        let mut meta = host_pod_meta("host-uid");
        meta.labels
            .as_mut()
            .unwrap()
            .insert("app".into(), "web".into());
        let cached = Involved::of(&t, "Pod", &meta).expect("ours");
        for uid in [Some("host-uid"), None, Some("older")] {
            let ev = event_about("host-ns", &hname, uid);
            assert_eq!(
                event_identity(&t, &ev, "Pod", &hname, Some(&cached)),
                involved_identity(&t, &ev, "Pod", &meta),
                "involvedObject.uid {uid:?}"
            );
        }
        let ev = event_about("host-ns", &hname, None);
        assert!(event_identity(&t, &ev, "Pod", &hname, Some(&cached)).is_some());
        assert!(
            event_identity(&t, &ev, "Pod", "other-name", Some(&cached)).is_none(),
            "the Event names another host object"
        );
        assert!(event_identity(&t, &ev, "Pod", &hname, None).is_none());
        assert_eq!(Involved::of(&t, "Service", &meta), None, "a Pod's markers");
    }

    #[test]
    fn a_bumped_count_updates_the_copy() {
        let a = Event {
            count: Some(1),
            ..Default::default()
        };
        let b = Event {
            count: Some(2),
            ..a.clone()
        };
        assert!(needs_update(&b, &a));
        assert!(!needs_update(&a, &a.clone()));
    }
}
