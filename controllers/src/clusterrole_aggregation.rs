//! The clusterrole-aggregation controller: every ClusterRole with an
//! `aggregationRule` gets, as its `rules`, the rules of the ClusterRoles its
//! selectors match, kept up to date as roles come, change and go. As
//! kube-controller-manager's (pkg/controller/clusterroleaggregation):
//! selectors in order, each selector's matches sorted by name, the role
//! itself skipped, a rule already collected not repeated; the result is
//! written with server-side apply as field manager
//! `clusterrole-aggregation-controller` (forced), and nothing is written
//! when the rules are already those.
//!
//! So a chart that installs a ClusterRole labelled
//! `rbac.authorization.k8s.io/aggregate-to-edit: "true"` extends `edit` and
//! `admin`, as on a real cluster.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;
use vkube_core::labels::LabelSelector;

use crate::{Error, Result};

/// The field manager of the rules this controller writes.
pub const FIELD_MANAGER: &str = "clusterrole-aggregation-controller";

/// `rule` with empty lists as absent ones (kube compares rules with
/// semantic equality, where the two are the same).
fn normalized(rule: &PolicyRule) -> PolicyRule {
    let some = |l: &Option<Vec<String>>| l.clone().filter(|l| !l.is_empty());
    PolicyRule {
        verbs: rule.verbs.clone(),
        api_groups: some(&rule.api_groups),
        resources: some(&rule.resources),
        resource_names: some(&rule.resource_names),
        non_resource_urls: some(&rule.non_resource_urls),
    }
}

/// The rules aggregated ClusterRole `role` should have given every
/// ClusterRole `all` (pure); `None` for a role without `aggregationRule`,
/// or one with a selector that does not parse (kube then leaves the role
/// as it is).
pub fn aggregated_rules(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let mut sorted: Vec<&ClusterRole> = all.iter().map(AsRef::as_ref).collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out: Vec<PolicyRule> = Vec::new();
    for selector in rule.cluster_role_selectors.iter().flatten() {
        let selector = serde_json::to_value(selector)
            .ok()
            .and_then(|v| LabelSelector::from_label_selector_json(&v).ok())?;
        for other in &sorted {
            if other.metadata.name == role.metadata.name
                || !selector.matches(
                    other
                        .metadata
                        .labels
                        .as_ref()
                        .unwrap_or(&Default::default()),
                )
            {
                continue;
            }
            for r in other.rules.iter().flatten() {
                if !out.iter().any(|o| normalized(o) == normalized(r)) {
                    out.push(r.clone());
                }
            }
        }
    }
    Some(out)
}

/// Whether `have` already holds `want` (no rules and an empty list alike).
pub fn same_rules(want: &[PolicyRule], have: Option<&Vec<PolicyRule>>) -> bool {
    let have = have.map(Vec::as_slice).unwrap_or_default();
    want.len() == have.len()
        && want
            .iter()
            .zip(have)
            .all(|(a, b)| normalized(a) == normalized(b))
}

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let api = Api::<ClusterRole>::all(client.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default());
    let roles = controller.store();
    controller
        // Any role's change may change what an aggregated role collects.
        .watches(api, watcher::Config::default(), move |_: ClusterRole| {
            roles
                .state()
                .iter()
                .filter(|r| r.aggregation_rule.is_some())
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(
            crate::measured(reconcile),
            crate::counted(error_policy),
            Arc::new(client),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(role: Arc<ClusterRole>, client: Arc<Client>) -> Result<Action> {
    let client = client.as_ref();
    // A fresh list: the trigger may come from a watch the store has not
    // caught up with yet.
    let all: Vec<Arc<ClusterRole>> = Api::<ClusterRole>::all(client.clone())
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(Arc::new)
        .collect();
    let Some(role) = all.iter().find(|r| r.metadata.name == role.metadata.name) else {
        return Ok(Action::await_change());
    };
    let Some(want) = aggregated_rules(role, &all) else {
        return Ok(Action::await_change());
    };
    if same_rules(&want, role.rules.as_ref()) {
        return Ok(Action::await_change());
    }
    let apply = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": role.name_any()},
        "rules": want,
    });
    Api::<ClusterRole>::all(client.clone())
        .patch(
            &role.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(apply),
        )
        .await?;
    Ok(Action::await_change())
}

fn error_policy(role: Arc<ClusterRole>, err: &Error, _client: Arc<Client>) -> Action {
    tracing::debug!(role = %role.name_any(), error = %err, "aggregating ClusterRole rules failed");
    Action::requeue(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(v: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn selected_roles_rules_are_collected_in_selector_then_name_order_once() {
        let edit = role(json!({"metadata": {"name": "edit",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}}]}}));
        let admin = role(json!({"metadata": {"name": "admin"},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
                {"matchLabels": {"extra": "yes"}}]},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["stale"]}]}));
        let widgets = role(json!({"metadata": {"name": "widgets",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true", "extra": "yes"}},
            "rules": [{"verbs": ["*"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}));
        let apps = role(json!({"metadata": {"name": "apps",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
            "rules": [{"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]}]}));
        let all = vec![edit.clone(), admin.clone(), widgets, apps];
        let edit_rules = aggregated_rules(&edit, &all).unwrap();
        let groups: Vec<_> = edit_rules
            .iter()
            .map(|r| r.api_groups.clone().unwrap()[0].clone())
            .collect();
        assert_eq!(groups, ["apps", "example.com"], "by name: apps, widgets");
        // admin sees edit's current (stale: none yet) rules, then widgets by
        // its second selector, once.
        let admin_rules = aggregated_rules(&admin, &all).unwrap();
        assert_eq!(admin_rules.len(), 1, "{admin_rules:?}");
        assert!(!same_rules(&admin_rules, admin.rules.as_ref()));
        assert!(same_rules(&[], None));
        assert_eq!(aggregated_rules(&all[2], &all), None, "not aggregated");
    }
}
