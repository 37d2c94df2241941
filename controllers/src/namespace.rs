//! The namespace controller: finishes the deletion of a terminating
//! namespace by deleting everything in it, then removing the `kubernetes`
//! finalizer so the API server can drop the namespace.
//!
//! Follows k8s.io/kubernetes pkg/controller/namespace (namespace_controller.go
//! `syncNamespaceFromKey`, deletion/namespaced_resources_deleter.go
//! `Delete`, `deleteAllContent`, `deleteAllContentForGroupVersionResource`,
//! `finalizeNamespace`):
//!
//! 1. a namespace without `deletionTimestamp` is left alone;
//! 2. its `status.phase` becomes `Terminating` if the API server did not
//!    already set it;
//! 3. a namespace whose `spec.finalizers` lacks `kubernetes` is done;
//! 4. every namespaced resource that discovery lists with the `list` and
//!    `delete` verbs is emptied (`deletecollection` with background
//!    propagation where offered, else one delete per object), then listed
//!    again (metadata only) to count what remains and which finalizers hold
//!    it;
//! 5. the `NamespaceDeletion*` / `Namespace*Remaining` conditions are
//!    written ([`conditions`], pure), and once nothing remains `kubernetes`
//!    is removed from `spec.finalizers` through the `finalize` subresource;
//!    otherwise the namespace is looked at again ([`recheck_after`]).
//!
//! Discovery results are reused for 10 s across passes.

use crate::{Error, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, Discovery, Scope};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The finalizer the API server puts on every namespace and this controller
/// removes (`v1.FinalizerKubernetes`).
pub const FINALIZER: &str = "kubernetes";

/// How long a discovery result is reused across passes (resources rarely
/// change, and none can be created in a terminating namespace).
const DISCOVERY_TTL: Duration = Duration::from_secs(10);

/// How soon a namespace whose content remains is looked at again, given
/// how long it has been terminating: every 0.5 s for the first 10 s (pods
/// finishing, finalizers about to be released), every 2 s up to a minute,
/// then every 5 s (content held by a finalizer nobody releases). Upstream
/// requeues after an estimate from the remaining pods' grace periods.
pub fn recheck_after(terminating_for: Duration) -> Duration {
    match terminating_for.as_secs() {
        0..10 => Duration::from_millis(500),
        10..60 => Duration::from_secs(2),
        _ => Duration::from_secs(5),
    }
}

/// What one pass over a terminating namespace's content found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Discovery failed (the error text); content of the resources it did
    /// return was still deleted.
    pub discovery_error: Option<String>,
    /// Resources whose listing or deletion failed (`resource.group: error`).
    pub failures: Vec<String>,
    /// Objects left after deletion, by `resource.group` (upstream's key, so
    /// core resources read `configmaps.`).
    pub remaining: BTreeMap<String, usize>,
    /// How many remaining objects each finalizer holds.
    pub finalizers: BTreeMap<String, usize>,
}

impl Outcome {
    /// Whether the namespace is empty and may be finalized.
    pub fn finished(&self) -> bool {
        self.discovery_error.is_none() && self.failures.is_empty() && self.remaining.is_empty()
    }

    /// Records the objects still present for `resource.group` after
    /// deletion: each object's finalizers.
    pub fn record_remaining<'a>(
        &mut self,
        key: &str,
        objects: impl IntoIterator<Item = &'a [String]>,
    ) {
        let mut count = 0;
        for finalizers in objects {
            count += 1;
            for f in finalizers {
                *self.finalizers.entry(f.clone()).or_default() += 1;
            }
        }
        if count > 0 {
            *self.remaining.entry(key.to_string()).or_default() += count;
        }
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

fn join_counts(counts: &BTreeMap<String, usize>, fmt: impl Fn(&str, usize) -> String) -> String {
    counts
        .iter()
        .map(|(k, n)| fmt(k, *n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The deletion conditions upstream's `NamespacedResourcesDeleter` writes
/// for `outcome`, in its order, keeping `lastTransitionTime` from
/// `existing` for conditions whose status did not change and stamping `now`
/// on the others:
///
/// * `NamespaceDeletionDiscoveryFailure`: `DiscoveryFailed` (error) or
///   `ResourcesDiscovered` / "All resources successfully discovered";
/// * `NamespaceDeletionGroupVersionParsingFailure`: always
///   `ParsedGroupVersions` / "All legacy kube types successfully parsed";
/// * `NamespaceDeletionContentFailure`: `ContentDeletionFailed` / "Failed to
///   delete all resource types, N remaining: …" or `ContentDeleted` / "All
///   content successfully deleted, may be waiting on finalization";
/// * `NamespaceContentRemaining`: `SomeResourcesRemain` / "Some resources
///   are remaining: configmaps. has 1 resource instances" or
///   `ContentRemoved` / "All content successfully removed";
/// * `NamespaceFinalizersRemaining`: `SomeFinalizersRemain` / "Some content
///   in the namespace has finalizers remaining: example.com/x in 1 resource
///   instances" or `ContentHasNoFinalizers` / "All content-preserving
///   finalizers finished".
pub fn conditions(
    outcome: &Outcome,
    existing: &[NamespaceCondition],
    now: Time,
) -> Vec<NamespaceCondition> {
    let mut out = vec![
        match &outcome.discovery_error {
            Some(e) => condition(
                "NamespaceDeletionDiscoveryFailure",
                true,
                "DiscoveryFailed",
                e.clone(),
            ),
            None => condition(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
            ),
        },
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        if outcome.failures.is_empty() {
            condition(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            condition(
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    outcome.failures.len(),
                    outcome.failures.join(", ")
                ),
            )
        },
        if outcome.remaining.is_empty() {
            condition(
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            condition(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!(
                    "Some resources are remaining: {}",
                    join_counts(&outcome.remaining, |k, n| format!(
                        "{k} has {n} resource instances"
                    ))
                ),
            )
        },
        if outcome.finalizers.is_empty() {
            condition(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            condition(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    join_counts(&outcome.finalizers, |k, n| format!(
                        "{k} in {n} resource instances"
                    ))
                ),
            )
        },
    ];
    for c in &mut out {
        let old = existing.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match old {
            Some(o) if o.status == c.status => o.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
    }
    out
}

/// Whether discovery's `caps` make a resource one the controller empties:
/// namespaced with the `list` and `delete` verbs (upstream filters
/// `ServerPreferredNamespacedResources` for `delete`, `list`).
pub fn deletable(caps: &ApiCapabilities) -> bool {
    caps.scope == Scope::Namespaced
        && caps.supports_operation("list")
        && caps.supports_operation("delete")
}

/// Upstream's name for a resource in conditions: `resource.group`.
fn resource_key(ar: &ApiResource) -> String {
    format!("{}.{}", ar.plural, ar.group)
}

/// `spec.finalizers` without [`FINALIZER`] (what the `finalize` subresource
/// is sent).
pub fn finalizers_without_kubernetes(ns: &Namespace) -> Vec<String> {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect()
}

fn holds_kubernetes(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// Empties one resource in `ns` and records what remains.
async fn empty_resource(
    client: &Client,
    ns: &str,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    outcome: &mut Outcome,
) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let lp = ListParams::default();
    let before = api.list_metadata(&lp).await?;
    if before.items.is_empty() {
        return Ok(());
    }
    let dp = DeleteParams::background();
    if before
        .items
        .iter()
        .any(|o| o.metadata.deletion_timestamp.is_none())
    {
        if caps.supports_operation("deletecollection") {
            api.delete_collection(&dp, &lp).await?;
        } else {
            for o in before
                .items
                .iter()
                .filter(|o| o.metadata.deletion_timestamp.is_none())
            {
                match api.delete(&o.name_any(), &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let after = api.list_metadata(&lp).await?;
    outcome.record_remaining(
        &resource_key(ar),
        after
            .items
            .iter()
            .map(|o| o.metadata.finalizers.as_deref().unwrap_or_default()),
    );
    Ok(())
}

/// Namespaced resources that can be listed and deleted, as discovered.
type Resources = Vec<(ApiResource, ApiCapabilities)>;

struct Ctx {
    client: Client,
    discovered: tokio::sync::Mutex<Option<(Instant, Arc<Resources>)>>,
}

impl Ctx {
    /// The deletable resources, from a discovery at most [`DISCOVERY_TTL`]
    /// old.
    async fn resources(&self) -> Result<Arc<Resources>, kube::Error> {
        let mut cached = self.discovered.lock().await;
        if let Some((at, r)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(r.clone());
        }
        let d = Discovery::new(self.client.clone()).run().await?;
        let r: Arc<Resources> = Arc::new(
            d.groups()
                .flat_map(|g| g.recommended_resources())
                .filter(|(_, caps)| deletable(caps))
                .collect(),
        );
        *cached = Some((Instant::now(), r.clone()));
        Ok(r)
    }
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    if !holds_kubernetes(&ns) {
        return Ok(Action::await_change());
    }

    let mut outcome = Outcome::default();
    let resources = match ctx.resources().await {
        Ok(r) => r,
        Err(e) => {
            outcome.discovery_error = Some(e.to_string());
            Arc::default()
        }
    };
    for (ar, caps) in resources.iter() {
        if let Err(e) = empty_resource(&ctx.client, &name, ar, caps, &mut outcome).await {
            outcome.failures.push(format!("{}: {e}", resource_key(ar)));
        }
    }

    let existing = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let wanted = conditions(&outcome, &existing, Time(jiff::Timestamp::now()));
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
    let unchanged = |a: &[NamespaceCondition], b: &[NamespaceCondition]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (&x.type_, &x.status, &x.reason, &x.message)
                    == (&y.type_, &y.status, &y.reason, &y.message)
            })
    };
    if phase != Some("Terminating") || !unchanged(&existing, &wanted) {
        let patch = json!({"status": {"phase": "Terminating", "conditions": wanted}});
        match namespaces
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    if !outcome.finished() {
        let since = ns
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| jiff::Timestamp::now().duration_since(t.0))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default();
        return Ok(Action::requeue(recheck_after(since)));
    }

    // Finalize: PUT the namespace with `kubernetes` dropped from
    // spec.finalizers to the `finalize` subresource (finalizeNamespace).
    let latest = match namespaces.get(&name).await {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
        Err(e) => return Err(Error::Kube(e)),
    };
    if !holds_kubernetes(&latest) {
        return Ok(Action::await_change());
    }
    let mut body = latest.clone();
    body.spec.get_or_insert_with(Default::default).finalizers =
        Some(finalizers_without_kubernetes(&latest));
    match namespaces
        .replace_subresource("finalize", &name, &Default::default(), &body)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(Error::Kube(e)),
    }
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %err, "namespace sync failed");
    Action::requeue(Duration::from_secs(1))
}

/// Runs the namespace controller until the process ends: one watch on
/// namespaces; content is discovered and listed on demand while a namespace
/// is terminating, so nothing else is cached.
pub async fn run(client: Client) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        discovered: tokio::sync::Mutex::new(None),
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .run(
            crate::measured(reconcile),
            crate::counted(error_policy),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceSpec;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    fn summary(c: &[NamespaceCondition]) -> Vec<(String, String, String, String)> {
        c.iter()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone().unwrap(),
                    c.message.clone().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn conditions_for_each_outcome() {
        struct Case {
            what: &'static str,
            outcome: Outcome,
            expect: [(&'static str, &'static str, &'static str); 5],
        }
        let mut held = Outcome::default();
        held.record_remaining("configmaps.", [&["example.com/hold".to_string()][..], &[]]);
        held.record_remaining("pods.", [&[][..]]);
        let cases = [
            Case {
                what: "everything gone",
                outcome: Outcome::default(),
                expect: [
                    (
                        "False",
                        "ResourcesDiscovered",
                        "All resources successfully discovered",
                    ),
                    (
                        "False",
                        "ParsedGroupVersions",
                        "All legacy kube types successfully parsed",
                    ),
                    (
                        "False",
                        "ContentDeleted",
                        "All content successfully deleted, may be waiting on finalization",
                    ),
                    (
                        "False",
                        "ContentRemoved",
                        "All content successfully removed",
                    ),
                    (
                        "False",
                        "ContentHasNoFinalizers",
                        "All content-preserving finalizers finished",
                    ),
                ],
            },
            Case {
                what: "content held by a finalizer and a terminating pod",
                outcome: held,
                expect: [
                    (
                        "False",
                        "ResourcesDiscovered",
                        "All resources successfully discovered",
                    ),
                    (
                        "False",
                        "ParsedGroupVersions",
                        "All legacy kube types successfully parsed",
                    ),
                    (
                        "False",
                        "ContentDeleted",
                        "All content successfully deleted, may be waiting on finalization",
                    ),
                    (
                        "True",
                        "SomeResourcesRemain",
                        "Some resources are remaining: configmaps. has 2 resource instances, pods. has 1 resource instances",
                    ),
                    (
                        "True",
                        "SomeFinalizersRemain",
                        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
                    ),
                ],
            },
            Case {
                what: "discovery and deletion failures",
                outcome: Outcome {
                    discovery_error: Some("boom".into()),
                    failures: vec!["widgets.example.com: 500".into()],
                    ..Default::default()
                },
                expect: [
                    ("True", "DiscoveryFailed", "boom"),
                    (
                        "False",
                        "ParsedGroupVersions",
                        "All legacy kube types successfully parsed",
                    ),
                    (
                        "True",
                        "ContentDeletionFailed",
                        "Failed to delete all resource types, 1 remaining: widgets.example.com: 500",
                    ),
                    (
                        "False",
                        "ContentRemoved",
                        "All content successfully removed",
                    ),
                    (
                        "False",
                        "ContentHasNoFinalizers",
                        "All content-preserving finalizers finished",
                    ),
                ],
            },
        ];
        let types = [
            "NamespaceDeletionDiscoveryFailure",
            "NamespaceDeletionGroupVersionParsingFailure",
            "NamespaceDeletionContentFailure",
            "NamespaceContentRemaining",
            "NamespaceFinalizersRemaining",
        ];
        for c in cases {
            let got = summary(&conditions(&c.outcome, &[], t(10)));
            let want: Vec<_> = types
                .iter()
                .zip(c.expect)
                .map(|(t, (s, r, m))| (t.to_string(), s.into(), r.into(), m.into()))
                .collect();
            assert_eq!(got, want, "{}", c.what);
            assert_eq!(
                c.outcome.finished(),
                c.what == "everything gone",
                "{}",
                c.what
            );
        }
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let first = conditions(&Outcome::default(), &[], t(10));
        let mut remaining = Outcome::default();
        remaining.record_remaining("pods.", [&[][..]]);
        let second = conditions(&remaining, &first, t(20));
        let times: Vec<_> = second
            .iter()
            .map(|c| c.last_transition_time.clone().unwrap())
            .collect();
        assert_eq!(times, [t(10), t(10), t(10), t(20), t(10)]);
    }

    #[test]
    fn rechecks_slow_down_as_termination_drags_on() {
        let after = |s| recheck_after(Duration::from_secs(s));
        assert_eq!(after(0), Duration::from_millis(500));
        assert_eq!(after(9), Duration::from_millis(500));
        assert_eq!(after(10), Duration::from_secs(2));
        assert_eq!(after(600), Duration::from_secs(5));
    }

    #[test]
    fn finalize_drops_only_kubernetes() {
        let ns = Namespace {
            spec: Some(NamespaceSpec {
                finalizers: Some(vec!["kubernetes".into(), "example.com/x".into()]),
            }),
            ..Default::default()
        };
        assert!(holds_kubernetes(&ns));
        assert_eq!(finalizers_without_kubernetes(&ns), ["example.com/x"]);
        assert!(!holds_kubernetes(&Namespace::default()));
    }
}
