//! API priority and fairness objects (`flowcontrol.apiserver.k8s.io/v1`):
//! the mandatory and suggested FlowSchemas and PriorityLevelConfigurations
//! kube-apiserver creates at start (k8s.io/apiserver
//! pkg/apis/flowcontrol/bootstrap/default.go), so `kubectl get flowschemas`
//! and tools that read them see a real cluster's set. They are stored and
//! served; this server does not queue requests by them (its own fairness is
//! a later piece of work).
//!
//! Each carries `apf.kubernetes.io/autoupdate-spec: "true"`, and each
//! FlowSchema the `Dangling` condition kube's controller sets (`False`:
//! its priority level exists).

use serde_json::{Value, json};

/// The annotation marking objects the server keeps up to date.
pub const AUTOUPDATE: &str = "apf.kubernetes.io/autoupdate-spec";

fn meta(name: &str) -> Value {
    json!({"name": name, "annotations": {AUTOUPDATE: "true"}})
}

fn exempt(name: &str) -> Value {
    json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": meta(name),
        "spec": {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}},
    })
}

/// A `Limited` level of `shares` and `lendable` percent; `queuing` is
/// (queues, handSize, queueLengthLimit), none for `Reject`.
fn limited(name: &str, shares: i32, lendable: i32, queuing: Option<(i32, i32, i32)>) -> Value {
    let response = match queuing {
        Some((queues, hand, limit)) => json!({"type": "Queue",
            "queuing": {"queues": queues, "handSize": hand, "queueLengthLimit": limit}}),
        None => json!({"type": "Reject"}),
    };
    json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": meta(name),
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": shares,
            "lendablePercent": lendable, "limitResponse": response}},
    })
}

/// The PriorityLevelConfigurations, mandatory then suggested.
pub fn priority_levels() -> Vec<Value> {
    vec![
        limited("catch-all", 5, 0, None),
        exempt("exempt"),
        limited("system", 30, 33, Some((64, 6, 50))),
        limited("node-high", 40, 25, Some((64, 6, 50))),
        limited("leader-election", 10, 0, Some((16, 4, 50))),
        limited("workload-high", 40, 50, Some((128, 6, 50))),
        limited("workload-low", 100, 90, Some((128, 6, 50))),
        limited("global-default", 20, 50, Some((128, 6, 50))),
    ]
}

fn groups(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| json!({"kind": "Group", "group": {"name": n}}))
        .collect()
}

fn users(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| json!({"kind": "User", "user": {"name": n}}))
        .collect()
}

fn kube_system_service_accounts() -> Value {
    json!({"kind": "ServiceAccount", "serviceAccount": {"name": "*", "namespace": "kube-system"}})
}

fn resource_rule(verbs: &[&str], groups: &[&str], resources: &[&str], cluster: bool) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources,
        "namespaces": ["*"], "clusterScope": cluster})
}

/// Every verb, group and resource, cluster-wide and in every namespace, and
/// every non-resource URL.
fn everything(subjects: Vec<Value>) -> Value {
    json!({"subjects": subjects,
        "resourceRules": [resource_rule(&["*"], &["*"], &["*"], true)],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]})
}

fn flow_schema(
    name: &str,
    level: &str,
    precedence: i32,
    distinguisher: Option<&str>,
    rules: Value,
) -> Value {
    let mut spec = json!({"priorityLevelConfiguration": {"name": level},
        "matchingPrecedence": precedence, "rules": [rules]});
    if let Some(d) = distinguisher {
        spec["distinguisherMethod"] = json!({"type": d});
    }
    json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": meta(name),
        "spec": spec,
        "status": {"conditions": [{"type": "Dangling", "status": "False", "reason": "Found",
            "message": format!("This FlowSchema references the PriorityLevelConfiguration object named {level:?} and it exists")}]},
    })
}

/// The FlowSchemas, mandatory then suggested.
pub fn flow_schemas() -> Vec<Value> {
    let all = ["system:unauthenticated", "system:authenticated"];
    let mut leader = users(&["system:kube-controller-manager", "system:kube-scheduler"]);
    leader.push(kube_system_service_accounts());
    let leases = resource_rule(
        &["get", "create", "update"],
        &["coordination.k8s.io"],
        &["leases"],
        false,
    );
    vec![
        flow_schema(
            "exempt",
            "exempt",
            1,
            None,
            everything(groups(&["system:masters"])),
        ),
        flow_schema(
            "catch-all",
            "catch-all",
            10000,
            Some("ByUser"),
            everything(groups(&all)),
        ),
        flow_schema(
            "probes",
            "exempt",
            2,
            None,
            json!({"subjects": groups(&all), "nonResourceRules": [
                {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]}),
        ),
        flow_schema(
            "system-leader-election",
            "leader-election",
            100,
            Some("ByUser"),
            json!({"subjects": leader, "resourceRules": [leases.clone()]}),
        ),
        flow_schema(
            "system-node-high",
            "node-high",
            400,
            Some("ByUser"),
            json!({"subjects": groups(&["system:nodes"]), "resourceRules": [
                resource_rule(&["*"], &[""], &["nodes", "nodes/status"], true),
                resource_rule(&["*"], &["coordination.k8s.io"], &["leases"], false)]}),
        ),
        flow_schema(
            "system-nodes",
            "system",
            500,
            Some("ByUser"),
            everything(groups(&["system:nodes"])),
        ),
        flow_schema(
            "kube-controller-manager",
            "workload-high",
            800,
            Some("ByNamespace"),
            everything(users(&["system:kube-controller-manager"])),
        ),
        flow_schema(
            "kube-scheduler",
            "workload-high",
            800,
            Some("ByNamespace"),
            everything(users(&["system:kube-scheduler"])),
        ),
        flow_schema(
            "kube-system-service-accounts",
            "workload-high",
            900,
            Some("ByNamespace"),
            everything(vec![kube_system_service_accounts()]),
        ),
        flow_schema(
            "service-accounts",
            "workload-low",
            9000,
            Some("ByUser"),
            everything(groups(&["system:serviceaccounts"])),
        ),
        flow_schema(
            "global-default",
            "global-default",
            9900,
            Some("ByUser"),
            everything(groups(&all)),
        ),
    ]
}

/// The MissingPL column of `kubectl get flowschemas`: the `Dangling`
/// condition's status, `?` without one.
pub fn missing_level(fs: &Value) -> String {
    fs.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Dangling")
        .and_then(|c| c["status"].as_str())
        .unwrap_or("?")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_set_is_kubes_and_decodes_as_its_types() {
        let levels = priority_levels();
        let schemas = flow_schemas();
        assert_eq!((levels.len(), schemas.len()), (8, 11));
        for l in &levels {
            serde_json::from_value::<k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration>(
                l.clone(),
            )
            .unwrap();
        }
        for s in &schemas {
            let fs: k8s_openapi::api::flowcontrol::v1::FlowSchema =
                serde_json::from_value(s.clone()).unwrap();
            let level = fs.spec.priority_level_configuration.name;
            assert!(
                levels
                    .iter()
                    .any(|l| l["metadata"]["name"] == level.as_str()),
                "{level}"
            );
            assert_eq!(missing_level(s), "False");
        }
    }
}
