//! ResourceQuota evaluation: what an object uses, whether a create fits a
//! quota, and the error texts of kube-apiserver's ResourceQuota admission
//! plugin (k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go
//! `CheckRequest`, with the evaluators of pkg/quota/v1/evaluator/core).
//!
//! Pure: objects are JSON values, quantities [`Quantity`] values. The API
//! server's admission and the resourcequota controller both use these.
//! Supported resource names: `pods`, `services`, `services.loadbalancers`,
//! `services.nodeports`, `configmaps`, `secrets`, `persistentvolumeclaims`,
//! `requests.storage`, `replicationcontrollers`, `resourcequotas`,
//! `count/<resource>[.<group>]` for any kind, and on pods `requests.cpu`,
//! `requests.memory`, `limits.cpu`, `limits.memory` (`cpu`/`memory` as
//! aliases of the requests). Quota scopes and scope selectors are not
//! evaluated.

use crate::quantity::Quantity;
use serde_json::Value;
use std::collections::BTreeMap;

/// Resource name → quantity (corev1.ResourceList).
pub type ResourceList = BTreeMap<String, Quantity>;

/// Reads a JSON `ResourceList` (`spec.hard`, `status.used`); entries that
/// do not parse are skipped (validation rejects them on write).
pub fn parse_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), Quantity::parse(v.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Renders a `ResourceList` as JSON strings.
pub fn render_list(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, q)| (k.clone(), Value::String(q.to_string())))
            .collect(),
    )
}

/// The `count/<resource>[.<group>]` name of a kind.
pub fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// The collection `(group, resource)` whose objects a quota resource name
/// counts, or `None` for names this module does not evaluate.
pub fn source_of(name: &str) -> Option<(String, String)> {
    let core = |r: &str| Some((String::new(), r.to_string()));
    match name {
        "pods" | "cpu" | "memory" | "requests.cpu" | "requests.memory" | "limits.cpu"
        | "limits.memory" => core("pods"),
        "services" | "services.loadbalancers" | "services.nodeports" => core("services"),
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => core(name),
        "persistentvolumeclaims" | "requests.storage" => core("persistentvolumeclaims"),
        _ => {
            let rest = name.strip_prefix("count/")?;
            match rest.split_once('.') {
                Some((r, g)) => Some((g.to_string(), r.to_string())),
                None => core(rest),
            }
        }
    }
}

fn phase(obj: &Value) -> &str {
    obj.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Sum of one resource over a pod's containers, maxed with each init
/// container's value (resourcehelper.PodRequests/PodLimits without
/// overhead or sidecars); `None` when no container sets it.
fn pod_resource(pod: &Value, kind: &str, res: &str) -> Option<Quantity> {
    let get = |c: &Value| {
        c.pointer(&format!("/resources/{kind}/{res}"))
            .and_then(Value::as_str)
            .and_then(|s| Quantity::parse(s).ok())
    };
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
    let mut sum: Option<Quantity> = None;
    for c in containers.into_iter().flatten() {
        if let Some(q) = get(c) {
            sum = Some(sum.map_or(q, |s| s + q));
        }
    }
    let inits = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array);
    for c in inits.into_iter().flatten() {
        if let Some(q) = get(c)
            && sum.is_none_or(|s| q > s)
        {
            sum = Some(q);
        }
    }
    sum
}

/// What `obj` of collection `(group, resource)` uses (each evaluator's
/// `Usage`): `count/…` is 1 for every object; the kind-specific names as
/// listed in the module docs. Pods in phase Succeeded or Failed use nothing
/// but their `count/pods` (podEvaluator: terminal pods are not charged).
pub fn usage(group: &str, resource: &str, obj: &Value) -> ResourceList {
    let mut u = ResourceList::new();
    let one = Quantity::from_int(1);
    u.insert(count_name(group, resource), one);
    if !group.is_empty() {
        return u;
    }
    match resource {
        "pods" => {
            if matches!(phase(obj), "Succeeded" | "Failed") {
                return u;
            }
            u.insert("pods".into(), one);
            for res in ["cpu", "memory"] {
                if let Some(q) = pod_resource(obj, "requests", res) {
                    u.insert(format!("requests.{res}"), q);
                    u.insert(res.into(), q);
                }
                if let Some(q) = pod_resource(obj, "limits", res) {
                    u.insert(format!("limits.{res}"), q);
                }
            }
        }
        "services" => {
            u.insert("services".into(), one);
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if ty == "LoadBalancer" {
                u.insert("services.loadbalancers".into(), one);
            }
            if matches!(ty, "NodePort" | "LoadBalancer") {
                let ports = obj
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                u.insert(
                    "services.nodeports".into(),
                    Quantity::from_int(ports as i64),
                );
            }
        }
        "persistentvolumeclaims" => {
            u.insert("persistentvolumeclaims".into(), one);
            if let Some(q) = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(|s| Quantity::parse(s).ok())
            {
                u.insert("requests.storage".into(), q);
            }
        }
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => {
            u.insert(resource.into(), one);
        }
        _ => {}
    }
    u
}

/// `k=v` pairs sorted by name, comma-separated (the plugin's `prettyPrint`).
pub fn pretty_print(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a create does not fit a quota: the text after
/// `<resource> "<name>" is forbidden: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// `exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`.
    #[error("exceeded quota: {quota}, requested: {requested}, used: {used}, limited: {limited}")]
    Exceeded {
        /// Quota name.
        quota: String,
        /// The requested amounts of the exceeded resources (pretty-printed).
        requested: String,
        /// Their current usage.
        used: String,
        /// Their hard limits.
        limited: String,
    },
    /// A pod lacks requests/limits a compute quota tracks:
    /// `failed quota: q: must specify limits.cpu,requests.memory`.
    #[error("failed quota: {quota}: must specify {missing}")]
    MustSpecify {
        /// Quota name.
        quota: String,
        /// Missing resource names, sorted, comma-separated.
        missing: String,
    },
}

/// The pod constraint of a compute quota (podEvaluator.Constraints): every
/// container must set each of `requests.cpu`, `requests.memory`,
/// `limits.cpu`, `limits.memory` (and `cpu`/`memory`) the quota tracks.
/// Returns the missing names, sorted.
pub fn pod_missing(pod: &Value, hard: &ResourceList) -> Vec<String> {
    let mut missing = std::collections::BTreeSet::new();
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            pod.pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    for c in containers {
        for name in hard.keys() {
            let (kind, res) = match name.as_str() {
                "requests.cpu" | "cpu" => ("requests", "cpu"),
                "requests.memory" | "memory" => ("requests", "memory"),
                "limits.cpu" => ("limits", "cpu"),
                "limits.memory" => ("limits", "memory"),
                _ => continue,
            };
            if c.pointer(&format!("/resources/{kind}/{res}")).is_none() {
                missing.insert(name.clone());
            }
        }
    }
    missing.into_iter().collect()
}

/// Checks one quota for a create (CheckRequest for one quota): the
/// `requested` usage masked to the quota's `hard` names is added to `used`;
/// any requested name whose new usage exceeds `hard` fails the create.
/// Returns the quota's new usage (all of `used`, plus the request), or
/// `None` when the quota tracks nothing requested.
pub fn check(
    quota: &str,
    hard: &ResourceList,
    used: &ResourceList,
    requested: &ResourceList,
) -> Result<Option<ResourceList>, QuotaError> {
    let masked: ResourceList = requested
        .iter()
        .filter(|(k, _)| hard.contains_key(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if masked.is_empty() {
        return Ok(None);
    }
    let mut new_used = used.clone();
    let mut exceeded = Vec::new();
    for (k, req) in &masked {
        let next = used.get(k).map_or(*req, |u| *u + *req);
        if next > hard[k] {
            exceeded.push(k.clone());
        }
        new_used.insert(k.clone(), next);
    }
    if !exceeded.is_empty() {
        let pick = |l: &ResourceList| -> ResourceList {
            exceeded
                .iter()
                .map(|k| (k.clone(), l.get(k).copied().unwrap_or(Quantity::ZERO)))
                .collect()
        };
        return Err(QuotaError::Exceeded {
            quota: quota.to_string(),
            requested: pretty_print(&pick(&masked)),
            used: pretty_print(&pick(used)),
            limited: pretty_print(&pick(hard)),
        });
    }
    Ok(Some(new_used))
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
    fn pods_use_counts_and_compute_resources_until_terminal() {
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m"}}},
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}],
        }});
        let u = usage("", "pods", &pod);
        assert_eq!(
            pretty_print(&u),
            "count/pods=1,cpu=500m,limits.cpu=1,memory=64Mi,pods=1,requests.cpu=500m,requests.memory=64Mi"
        );
        let done = json!({"status": {"phase": "Succeeded"}});
        assert_eq!(pretty_print(&usage("", "pods", &done)), "count/pods=1");
        let svc = json!({"spec": {"type": "NodePort", "ports": [{}, {}]}});
        assert_eq!(
            pretty_print(&usage("", "services", &svc)),
            "count/services=1,services=1,services.nodeports=2"
        );
        assert_eq!(
            pretty_print(&usage("apps", "deployments", &json!({}))),
            "count/deployments.apps=1"
        );
    }

    #[test]
    fn check_matches_kube_apiserver_messages() {
        // (hard, used, requested) -> result
        let hard = list(&[("pods", "2"), ("requests.cpu", "1")]);
        let req = list(&[("pods", "1"), ("requests.cpu", "300m"), ("count/pods", "1")]);
        let ok = check(
            "q",
            &hard,
            &list(&[("pods", "1"), ("requests.cpu", "700m")]),
            &req,
        )
        .unwrap()
        .unwrap();
        assert_eq!(pretty_print(&ok), "pods=2,requests.cpu=1");
        let err = check(
            "q",
            &hard,
            &list(&[("pods", "2"), ("requests.cpu", "0")]),
            &req,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
        );
        let err = check(
            "q",
            &hard,
            &list(&[("pods", "2"), ("requests.cpu", "900m")]),
            &req,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "exceeded quota: q, requested: pods=1,requests.cpu=300m, used: pods=2,requests.cpu=900m, limited: pods=2,requests.cpu=1"
        );
        assert_eq!(
            check("q", &list(&[("secrets", "1")]), &ResourceList::new(), &req),
            Ok(None)
        );
    }

    #[test]
    fn sources_and_constraints() {
        assert_eq!(source_of("requests.cpu"), Some(("".into(), "pods".into())));
        assert_eq!(
            source_of("count/deployments.apps"),
            Some(("apps".into(), "deployments".into()))
        );
        assert_eq!(
            source_of("count/secrets"),
            Some(("".into(), "secrets".into()))
        );
        assert_eq!(source_of("nvidia.com/gpu"), None);
        let pod = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        let hard = list(&[
            ("requests.cpu", "4"),
            ("limits.memory", "1Gi"),
            ("pods", "3"),
        ]);
        assert_eq!(pod_missing(&pod, &hard), ["limits.memory"]);
        assert_eq!(
            QuotaError::MustSpecify {
                quota: "q".into(),
                missing: "limits.memory".into()
            }
            .to_string(),
            "failed quota: q: must specify limits.memory"
        );
    }
}
