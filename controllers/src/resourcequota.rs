//! The ResourceQuota controller: keeps each quota's `status.hard` equal to
//! `spec.hard` and `status.used` equal to what the namespace's objects use.
//!
//! Follows k8s.io/kubernetes/pkg/controller/resourcequota
//! (`syncResourceQuota`: usage recalculated from the objects, written only
//! when it changed, through an update carrying the resourceVersion read
//! before counting, so a charge made meanwhile by quota admission is never
//! overwritten by a stale count). Replenishment: pod changes in a namespace
//! resync its quotas at once; other kinds are recounted every
//! [`RESYNC`] (upstream watches every counted kind and resyncs every 5
//! minutes). Usage per object is [`vkube_core::quota::usage`]; names it does
//! not evaluate are reported as 0.
//!
//! [`plan_used`] is the pure decision; [`run`] is the kube-runtime controller.

use crate::{Error, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, ResourceQuotaStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::reflector::ObjectRef;
use kube_runtime::watcher;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use vkube_core::quantity::Quantity;
use vkube_core::quota::{self, ResourceList};

/// How often every quota is recounted even without a pod event.
pub const RESYNC: Duration = Duration::from_secs(10);

/// Objects per collection `(group, resource)`, as JSON.
pub type Objects = BTreeMap<(String, String), Vec<Value>>;

/// The collections a quota's hard names need counted.
pub fn sources(hard: &ResourceList) -> Vec<(String, String)> {
    let mut v: Vec<_> = hard.keys().filter_map(|k| quota::source_of(k)).collect();
    v.sort();
    v.dedup();
    v
}

/// The usage to report for `hard` given the namespace's objects: for each
/// hard name, the sum of every object's usage of it (0 when none).
pub fn plan_used(hard: &ResourceList, objects: &Objects) -> ResourceList {
    hard.keys()
        .map(|name| {
            // Summed like upstream's quota.Add: the first term's format wins.
            let mut total: Option<Quantity> = None;
            if let Some(src) = quota::source_of(name) {
                for obj in objects.get(&src).into_iter().flatten() {
                    if let Some(q) = quota::usage(&src.0, &src.1, obj).get(name) {
                        total = Some(total.map_or(*q, |t| t + *q));
                    }
                }
            }
            (name.clone(), total.unwrap_or(Quantity::ZERO))
        })
        .collect()
}

fn to_k8s(list: &ResourceList) -> BTreeMap<String, K8sQuantity> {
    list.iter()
        .map(|(k, v)| (k.clone(), K8sQuantity(v.to_string())))
        .collect()
}

fn from_k8s(list: Option<&BTreeMap<String, K8sQuantity>>) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Quantity::parse(&v.0).ok()?)))
        .collect()
}

async fn list_objects(
    client: &Client,
    ns: &str,
    group: &str,
    resource: &str,
) -> Result<Vec<Value>> {
    let g = kube::discovery::oneshot::group(client, group).await?;
    let Some((ar, _)) = g
        .recommended_resources()
        .into_iter()
        .find(|(ar, _)| ar.plural == resource)
    else {
        return Ok(Vec::new());
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect())
}

async fn reconcile(rq: Arc<ResourceQuota>, client: Arc<Client>) -> Result<Action> {
    let ns = rq.namespace().unwrap_or_default();
    let api: Api<ResourceQuota> = Api::namespaced((*client).clone(), &ns);
    // Read fresh: the update below must carry the revision counted against.
    let current = match api.get(&rq.name_any()).await {
        Ok(q) => q,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    };
    let hard = from_k8s(current.spec.as_ref().and_then(|s| s.hard.as_ref()));
    let mut objects = Objects::new();
    for (g, r) in sources(&hard) {
        let items = list_objects(&client, &ns, &g, &r).await?;
        objects.insert((g, r), items);
    }
    let used = plan_used(&hard, &objects);
    let status = ResourceQuotaStatus {
        hard: Some(to_k8s(&hard)),
        used: Some(to_k8s(&used)),
    };
    let old = current.status.clone().unwrap_or_default();
    let same = from_k8s(old.hard.as_ref()) == hard
        && old.hard.as_ref().map(BTreeMap::len) == Some(hard.len())
        && from_k8s(old.used.as_ref()) == used
        && old.used.as_ref().map(BTreeMap::len) == Some(used.len());
    if !same {
        let mut updated = current.clone();
        updated.status = Some(status);
        match api
            .replace_status(&current.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            // Charged by admission (or changed) meanwhile: count again.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(RESYNC))
}

fn error_policy(rq: Arc<ResourceQuota>, err: &Error, _client: Arc<Client>) -> Action {
    tracing::warn!(resourcequota = %rq.name_any(), error = %err, "resourcequota sync failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the ResourceQuota controller until the process ends: a watch on
/// quotas and one on pods (a pod event resyncs its namespace's quotas).
pub async fn run(client: Client) {
    let controller = Controller::new(
        Api::<ResourceQuota>::all(client.clone()),
        watcher::Config::default(),
    );
    let quotas = controller.store();
    controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod: Pod| {
                let ns = pod.namespace();
                quotas
                    .state()
                    .iter()
                    .filter(|q| q.namespace() == ns)
                    .map(|q| ObjectRef::from_obj(q.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(
            crate::measured(reconcile),
            crate::counted(error_policy),
            Arc::new(client),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
            .collect()
    }

    #[test]
    fn used_sums_each_hard_name_over_its_collection() {
        let hard = list(&[
            ("pods", "10"),
            ("requests.memory", "1Gi"),
            ("count/deployments.apps", "5"),
            ("secrets", "3"),
            ("example.com/widgets", "1"),
        ]);
        assert_eq!(
            sources(&hard),
            [
                ("".to_string(), "pods".to_string()),
                ("".into(), "secrets".into()),
                ("apps".into(), "deployments".into())
            ]
        );
        let pod = |mem: &str, phase: &str| {
            json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": mem}}}]},
                   "status": {"phase": phase}})
        };
        let mut objects = Objects::new();
        objects.insert(
            ("".into(), "pods".into()),
            vec![
                pod("256Mi", "Running"),
                pod("256Mi", "Pending"),
                pod("1Gi", "Succeeded"),
            ],
        );
        objects.insert(("apps".into(), "deployments".into()), vec![json!({})]);
        let used = plan_used(&hard, &objects);
        assert_eq!(
            quota::pretty_print(&used),
            "count/deployments.apps=1,example.com/widgets=0,pods=2,requests.memory=512Mi,secrets=0"
        );
    }
}
