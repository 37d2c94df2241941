//! RBAC escalation prevention, as kube-apiserver's RBAC storage applies it
//! (pkg/registry/rbac: the "policybased" Role, ClusterRole, RoleBinding and
//! ClusterRoleBinding storage, and pkg/registry/rbac/validation):
//!
//! * a Role or ClusterRole may be written only with rules the writer holds
//!   itself in the object's namespace (`ConfirmNoEscalation`), unless the
//!   writer is in `system:masters` or is allowed the `escalate` verb on it;
//!   a ClusterRole with an `aggregationRule` needs every permission;
//! * a RoleBinding or ClusterRoleBinding may be written only for a role
//!   whose rules the writer holds, unless it is allowed the `bind` verb on
//!   that role; the role must then exist (`404` otherwise);
//! * an update that changes only the fields the garbage collector writes
//!   (ownerReferences, finalizers, managedFields) is never checked.
//!
//! Refusals are `403 Forbidden` with kube's text: `user "alice"
//! (groups=["devs" "system:authenticated"]) is attempting to grant RBAC
//! permissions not currently held:` and one line per missing rule, in
//! kube's compact form (`{APIGroups:[""], Resources:["secrets"],
//! Verbs:["get" "list"]}`), sorted.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::rbac::{self, Policy, Request, User};

/// Every permission (kube's `fullAuthority`), which an `aggregationRule`
/// can gather.
fn full_authority() -> Vec<PolicyRule> {
    let all = || Some(vec!["*".to_string()]);
    vec![
        PolicyRule {
            verbs: vec!["*".into()],
            api_groups: all(),
            resources: all(),
            ..Default::default()
        },
        PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: all(),
            ..Default::default()
        },
    ]
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|s| s == want)
}

/// `rule` split into rules of one group, resource, verb and resource name,
/// or one URL and verb (kube's `BreakdownRule`).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| Some(vec![s.clone()]);
    let mut out = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: vec![verb.clone()],
                    ..Default::default()
                };
                match list(&rule.resource_names) {
                    [] => out.push(base),
                    names => out.extend(names.iter().map(|n| PolicyRule {
                        resource_names: one(n),
                        ..base.clone()
                    })),
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..Default::default()
            });
        }
    }
    out
}

fn resource_covers(owner: &[String], resource: &str) -> bool {
    if has(owner, "*") || has(owner, resource) {
        return true;
    }
    // `*/status` covers `pods/status`.
    resource
        .split_once('/')
        .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
}

fn url_covers(owner: &[String], url: &str) -> bool {
    owner
        .iter()
        .any(|o| o == url || (o.ends_with('*') && url.starts_with(o.trim_end_matches('*'))))
}

/// Whether `owner` covers the broken-down rule `sub` (kube's `ruleCovers`).
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let all = |owner: &[String], sub: &[String]| sub.iter().all(|s| has(owner, s));
    let verbs = has(&owner.verbs, "*") || all(&owner.verbs, &sub.verbs);
    let groups =
        has(list(&owner.api_groups), "*") || all(list(&owner.api_groups), list(&sub.api_groups));
    let resources = list(&sub.resources)
        .iter()
        .all(|r| resource_covers(list(&owner.resources), r));
    let urls = list(&sub.non_resource_urls)
        .iter()
        .all(|u| url_covers(list(&owner.non_resource_urls), u));
    let names = match (list(&owner.resource_names), list(&sub.resource_names)) {
        ([], _) => true,
        (_, []) => false,
        (owner, sub) => all(owner, sub),
    };
    verbs && groups && resources && names && urls
}

/// The parts of `rules` that no rule of `owner` covers, broken down (kube's
/// `Covers`); empty when `owner` covers them all.
pub fn uncovered(owner: &[PolicyRule], rules: &[PolicyRule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect()
}

/// Merges rules of one group, one resource and at most one name that differ
/// only by verb (kube's `CompactRules`).
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut other = Vec::new();
    for rule in rules {
        let is_simple = list(&rule.resource_names).len() <= 1
            && rule.non_resource_urls.is_none()
            && list(&rule.api_groups).len() == 1
            && list(&rule.resources).len() == 1;
        if !is_simple {
            other.push(rule);
            continue;
        }
        match simple.iter_mut().find(|s| {
            s.api_groups == rule.api_groups
                && s.resources == rule.resources
                && s.resource_names == rule.resource_names
        }) {
            Some(s) => s.verbs.extend(rule.verbs),
            None => simple.push(rule),
        }
    }
    other.extend(simple);
    other
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// kube's `CompactString` of a rule.
fn compact_string(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (label, values) in [
        ("APIGroups", list(&rule.api_groups)),
        ("Resources", list(&rule.resources)),
        ("NonResourceURLs", list(&rule.non_resource_urls)),
        ("ResourceNames", list(&rule.resource_names)),
        ("Verbs", rule.verbs.as_slice()),
    ] {
        if !values.is_empty() {
            parts.push(format!("{label}:{}", quoted(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// Whether `user` holds every permission of `rules` in `namespace` (empty:
/// cluster-wide only), or kube's refusal text (`ConfirmNoEscalation`).
pub fn confirm_no_escalation(
    policy: &Policy,
    user: User<'_>,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (owner, errors) = rbac::rules_for(policy, user, namespace);
    let missing = uncovered(&owner, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let lines: BTreeSet<String> = compact(missing).iter().map(compact_string).collect();
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        quoted(user.groups),
        lines.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{errors}]"));
    }
    Err(msg)
}

/// What a write of an RBAC object needs beyond the request's own
/// authorization, decided by [`check`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write<'a> {
    /// A Role (`cluster` false) or ClusterRole with its rules and whether it
    /// has an `aggregationRule`.
    Role {
        /// A ClusterRole.
        cluster: bool,
        /// Its rules.
        rules: &'a [PolicyRule],
        /// Whether it has an `aggregationRule`.
        aggregates: bool,
    },
    /// A binding (RoleBinding when `namespace` is not empty) to the role of
    /// `role_kind` (`Role` or `ClusterRole`) named `role_name`.
    Binding {
        /// `roleRef.apiGroup`.
        role_group: &'a str,
        /// `roleRef.kind`.
        role_kind: &'a str,
        /// `roleRef.name`.
        role_name: &'a str,
    },
}

/// Why a write is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `403 Forbidden` with this text.
    Forbidden(String),
    /// `404`: the binding's role (`roles` or `clusterroles`) does not exist.
    RoleNotFound {
        /// `roles` or `clusterroles`.
        resource: &'static str,
    },
}

/// Whether `user` may make the write `write` to the RBAC object the request
/// names `name` (empty on a create) in `namespace` (empty for the
/// cluster-scoped kinds) (module docs). A caller in `system:masters` is
/// decided before this is asked.
///
/// # Errors
/// The [`Refusal`] kube gives.
pub fn check(
    policy: &Policy,
    user: User<'_>,
    namespace: &str,
    name: &str,
    write: &Write<'_>,
) -> Result<(), Refusal> {
    let allowed = |verb: &str, group: &str, resource: &str, name: &str| {
        rbac::authorize(
            policy,
            user,
            &Request::Resource {
                verb: verb.into(),
                namespace: namespace.into(),
                group: group.into(),
                resource: resource.into(),
                subresource: String::new(),
                name: name.into(),
            },
        )
        .allowed
    };
    match write {
        Write::Role {
            cluster,
            rules,
            aggregates,
        } => {
            let resource = if *cluster { "clusterroles" } else { "roles" };
            if allowed("escalate", "rbac.authorization.k8s.io", resource, name) {
                return Ok(());
            }
            confirm_no_escalation(policy, user, namespace, rules).map_err(Refusal::Forbidden)?;
            if *aggregates
                && confirm_no_escalation(policy, user, namespace, &full_authority()).is_err()
            {
                return Err(Refusal::Forbidden(
                    "must have cluster-admin privileges to use the aggregationRule".into(),
                ));
            }
            Ok(())
        }
        Write::Binding {
            role_group,
            role_kind,
            role_name,
        } => {
            let resource = match *role_kind {
                "Role" => "roles",
                "ClusterRole" => "clusterroles",
                other => {
                    return Err(Refusal::Forbidden(format!(
                        "unsupported role reference kind: {other:?}"
                    )));
                }
            };
            if allowed("bind", role_group, resource, role_name) {
                return Ok(());
            }
            let rules = rbac::role_rules(policy, role_kind, role_name, Some(namespace))
                .map_err(|_| Refusal::RoleNotFound { resource })?;
            confirm_no_escalation(policy, user, namespace, rules).map_err(Refusal::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: serde_json::Value) -> Vec<PolicyRule> {
        serde_json::from_value(v).unwrap()
    }

    fn policy() -> Policy {
        let mut p = Policy::default();
        let objects = [
            (
                "clusterroles",
                json!({"metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]}),
            ),
            (
                "clusterroles",
                json!({"metadata": {"name": "secret-admin"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]}),
            ),
            (
                "clusterroles",
                json!({"metadata": {"name": "rbac-writer"},
                "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "update"]}]}),
            ),
            (
                "rolebindings",
                json!({"metadata": {"name": "readers", "namespace": "dev"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
            ),
            (
                "rolebindings",
                json!({"metadata": {"name": "writers", "namespace": "dev"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rbac-writer"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
            ),
            (
                "clusterrolebindings",
                json!({"metadata": {"name": "binders"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "binder"},
                "subjects": [{"kind": "User", "name": "bob"}]}),
            ),
            (
                "clusterroles",
                json!({"metadata": {"name": "binder"},
                "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["secret-admin"], "verbs": ["bind"]},
                          {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]}),
            ),
        ];
        for (resource, obj) in objects {
            p.insert(resource, obj.to_string().as_bytes()).unwrap();
        }
        p
    }

    fn user<'a>(name: &'a str, groups: &'a [String]) -> User<'a> {
        User { name, groups }
    }

    #[test]
    fn roles_may_grant_only_what_the_writer_holds() {
        let p = policy();
        let groups = ["system:authenticated".to_string()];
        let alice = user("alice", &groups);
        let fine =
            rules(json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "get"]}]));
        let role = |rules| Write::Role {
            cluster: false,
            rules,
            aggregates: false,
        };
        assert_eq!(check(&p, alice, "dev", "r", &role(&fine)), Ok(()));
        // The same rules outside the namespace alice holds them in.
        assert!(check(&p, alice, "prod", "r", &role(&fine)).is_err());
        let more = rules(json!([
            {"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "list", "delete"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        ]));
        assert_eq!(
            check(&p, alice, "dev", "r", &role(&more)),
            Err(Refusal::Forbidden(
                "user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n\
                 {APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}\n\
                 {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\" \"delete\"]}\n\
                 {NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
                    .into()
            ))
        );
        // `escalate` on roles lets bob write any Role.
        let bob = user("bob", &groups);
        assert_eq!(check(&p, bob, "dev", "r", &role(&more)), Ok(()));
        let aggregating = Write::Role {
            cluster: true,
            rules: &[],
            aggregates: true,
        };
        assert_eq!(
            check(&p, alice, "", "agg", &aggregating),
            Err(Refusal::Forbidden(
                "must have cluster-admin privileges to use the aggregationRule".into()
            ))
        );
    }

    #[test]
    fn bindings_need_the_roles_rules_or_bind() {
        let p = policy();
        let groups = ["system:authenticated".to_string()];
        let alice = user("alice", &groups);
        let binding = |role_kind, role_name| Write::Binding {
            role_group: "rbac.authorization.k8s.io",
            role_kind,
            role_name,
        };
        assert_eq!(
            check(&p, alice, "dev", "b", &binding("ClusterRole", "pod-reader")),
            Ok(())
        );
        assert!(matches!(
            check(&p, alice, "dev", "b", &binding("ClusterRole", "secret-admin")),
            Err(Refusal::Forbidden(m)) if m.ends_with(r#"{APIGroups:[""], Resources:["secrets"], Verbs:["*"]}"#)
        ));
        assert_eq!(
            check(&p, alice, "dev", "b", &binding("ClusterRole", "missing")),
            Err(Refusal::RoleNotFound {
                resource: "clusterroles"
            })
        );
        // `bind` on the named role lets bob bind it, and only it.
        let bob = user("bob", &groups);
        assert_eq!(
            check(&p, bob, "dev", "b", &binding("ClusterRole", "secret-admin")),
            Ok(())
        );
        assert!(check(&p, bob, "dev", "b", &binding("ClusterRole", "rbac-writer")).is_err());
    }

    #[test]
    fn coverage_follows_kubes_rule_covers() {
        let owner = rules(json!([
            {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]},
            {"nonResourceURLs": ["/debug/*"], "verbs": ["get"]},
        ]));
        let want = |v| uncovered(&owner, &rules(v));
        assert!(want(json!([{"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["get"]}])).is_empty());
        assert!(want(json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]}])).is_empty());
        // A name-restricted owner never covers every name.
        assert_eq!(
            want(json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])).len(),
            1
        );
        assert!(want(json!([{"nonResourceURLs": ["/debug/pprof"], "verbs": ["get"]}])).is_empty());
        assert_eq!(
            want(json!([{"nonResourceURLs": ["/debug/*", "/metrics"], "verbs": ["get", "post"]}]))
                .len(),
            3
        );
    }
}
