//! The RBAC authorizer (pure): whether a user may make a request, decided
//! from Roles, ClusterRoles, RoleBindings and ClusterRoleBindings with
//! kube-apiserver's semantics (plugin/pkg/auth/authorizer/rbac and
//! pkg/registry/rbac/validation):
//!
//! * every ClusterRoleBinding whose subjects name the user, then every
//!   RoleBinding of the request's namespace, in turn; a binding's rules are
//!   its ClusterRole's (or, for a RoleBinding, its namespace's Role);
//! * a subject names the user when it is the `User` of that name, a
//!   `Group` the user is in, or the `ServiceAccount` whose user name is
//!   `system:serviceaccount:NS:NAME` (a RoleBinding's own namespace when the
//!   subject names none);
//! * a rule allows a resource request when its verbs, API groups,
//!   resources (`resource/subresource`, `*`, `*/subresource`) and
//!   resourceNames (none: any name) match; a non-resource request when its
//!   verbs and `nonResourceURLs` (exact, `*`, or a `prefix*`) match;
//! * the group `system:masters` is always allowed, before RBAC is asked
//!   (kube-apiserver's privileged-group authorizer), with an empty reason.
//!
//! An allowed request's reason names the binding, as kube's does
//! (`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User
//! "alice"`); a denial has no reason unless a binding names a role that does
//! not exist (`RBAC: clusterrole.rbac.authorization.k8s.io "y" not found`).
//! RBAC never denies outright: a request no rule allows is "no opinion",
//! which is a denial when RBAC is the last authorizer.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};

/// The group every request of which is allowed (kube's
/// `user.SystemPrivilegedGroup`).
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// The user a request is made as.
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    /// User name, e.g. `alice` or `system:serviceaccount:dev:builder`.
    pub name: &'a str,
    /// Group names.
    pub groups: &'a [String],
}

/// What a request asks to do (kube's `authorizer.Attributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A request on an API resource.
    Resource {
        /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
        /// `deletecollection`, or a special verb (`impersonate`, `bind`, …).
        verb: String,
        /// Namespace; empty for cluster-scoped or all-namespaces requests.
        namespace: String,
        /// API group; empty for core.
        group: String,
        /// Resource (plural).
        resource: String,
        /// Subresource, e.g. `log`; empty for none.
        subresource: String,
        /// Object name; empty for collections.
        name: String,
    },
    /// A request on a path outside the resource API (`/healthz`, `/metrics`).
    NonResource {
        /// `get`, `post`, `put`, `delete`, …
        verb: String,
        /// The URL path.
        path: String,
    },
}

impl Request {
    fn namespace(&self) -> &str {
        match self {
            Request::Resource { namespace, .. } => namespace,
            Request::NonResource { .. } => "",
        }
    }
}

/// The RBAC objects decisions read (kube's RBAC authorizer reads the same
/// four listers): every ClusterRole and ClusterRoleBinding, and every
/// namespace's Roles and RoleBindings. A decision in namespace `ns` reads
/// only `ns`'s Roles and RoleBindings.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// ClusterRoleBindings by name, visited in name order.
    pub cluster_role_bindings: BTreeMap<String, ClusterRoleBinding>,
    /// ClusterRoles by name.
    pub cluster_roles: BTreeMap<String, ClusterRole>,
    /// RoleBindings by namespace, then name (visited in name order).
    pub role_bindings: BTreeMap<String, BTreeMap<String, RoleBinding>>,
    /// Roles by namespace, then name.
    pub roles: BTreeMap<String, BTreeMap<String, Role>>,
}

impl Policy {
    /// Adds or replaces one stored object of `resource` (`clusterroles`,
    /// `clusterrolebindings`, `roles`, `rolebindings`), keyed by its own
    /// namespace and name; other resources are ignored.
    ///
    /// # Errors
    /// `bytes` do not decode as the resource's kind (the policy is then
    /// unchanged, as an informer never holds such an object).
    pub fn insert(&mut self, resource: &str, bytes: &[u8]) -> Result<(), serde_json::Error> {
        fn id(
            meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        ) -> (String, String) {
            (
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            )
        }
        match resource {
            "clusterroles" => {
                let r: ClusterRole = serde_json::from_slice(bytes)?;
                self.cluster_roles.insert(id(&r.metadata).1, r);
            }
            "clusterrolebindings" => {
                let b: ClusterRoleBinding = serde_json::from_slice(bytes)?;
                self.cluster_role_bindings.insert(id(&b.metadata).1, b);
            }
            "roles" => {
                let r: Role = serde_json::from_slice(bytes)?;
                let (ns, name) = id(&r.metadata);
                self.roles.entry(ns).or_default().insert(name, r);
            }
            "rolebindings" => {
                let b: RoleBinding = serde_json::from_slice(bytes)?;
                let (ns, name) = id(&b.metadata);
                self.role_bindings.entry(ns).or_default().insert(name, b);
            }
            _ => {}
        }
        Ok(())
    }

    /// Removes the object of `resource` named `name` in `namespace` (empty
    /// for the cluster-scoped kinds), if present.
    pub fn remove(&mut self, resource: &str, namespace: &str, name: &str) {
        fn take<T>(m: &mut BTreeMap<String, BTreeMap<String, T>>, ns: &str, name: &str) {
            if let Some(inner) = m.get_mut(ns) {
                inner.remove(name);
                if inner.is_empty() {
                    m.remove(ns);
                }
            }
        }
        match resource {
            "clusterroles" => drop(self.cluster_roles.remove(name)),
            "clusterrolebindings" => drop(self.cluster_role_bindings.remove(name)),
            "roles" => take(&mut self.roles, namespace, name),
            "rolebindings" => take(&mut self.role_bindings, namespace, name),
            _ => {}
        }
    }
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Why (kube's reason text; may be empty).
    pub reason: String,
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|s| s == want)
}

/// Whether `subject` names `user`, in a binding of `namespace` (empty for a
/// ClusterRoleBinding).
pub fn applies_to(user: User<'_>, subject: &Subject, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => has(user.groups, &subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

fn describe_subject(s: &Subject, binding_namespace: &str) -> String {
    match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            format!("{} {:?}", s.kind, format!("{}/{ns}", s.name))
        }
        _ => format!("{} {:?}", s.kind, s.name),
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || g == group)
}

fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().flatten().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => has(names, name),
    }
}

fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().flatten().any(|u| {
        u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
    })
}

/// Whether `rule` allows `request` (kube's `RuleAllows`).
pub fn rule_allows(request: &Request, rule: &PolicyRule) -> bool {
    match request {
        Request::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            verb_matches(rule, verb)
                && group_matches(rule, group)
                && resource_matches(rule, &combined, subresource)
                && name_matches(rule, name)
        }
        Request::NonResource { verb, path } => verb_matches(rule, verb) && url_matches(rule, path),
    }
}

/// The rules of role reference (`kind`, `name`) in a binding of
/// `binding_namespace` (`None` for a ClusterRoleBinding, whose Role is
/// looked up with no namespace and so never exists), or kube's lookup
/// error.
pub(crate) fn role_rules<'p>(
    policy: &'p Policy,
    kind: &str,
    name: &str,
    binding_namespace: Option<&str>,
) -> Result<&'p [PolicyRule], String> {
    let rules = match kind {
        "Role" => policy
            .roles
            .get(binding_namespace.unwrap_or_default())
            .and_then(|roles| roles.get(name))
            .map(|r| r.rules.as_deref())
            .ok_or_else(|| format!("role.rbac.authorization.k8s.io {name:?} not found"))?,
        "ClusterRole" => policy
            .cluster_roles
            .get(name)
            .map(|r| r.rules.as_deref())
            .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io {name:?} not found"))?,
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    Ok(rules.unwrap_or_default())
}

/// Calls `visit(source, rule)` for every rule granted to `user` in
/// `namespace` (ClusterRoleBindings first), and `error(text)` for each
/// binding whose role is missing, until `visit` returns `false` (kube's
/// `VisitRulesFor`).
fn visit_rules(
    policy: &Policy,
    user: User<'_>,
    namespace: &str,
    mut visit: impl FnMut(&dyn Fn() -> String, &PolicyRule) -> bool,
    mut error: impl FnMut(String),
) {
    for b in policy.cluster_role_bindings.values() {
        let subjects = b.subjects.as_deref().unwrap_or_default();
        let Some(subject) = subjects.iter().find(|s| applies_to(user, s, "")) else {
            continue;
        };
        match role_rules(policy, &b.role_ref.kind, &b.role_ref.name, None) {
            Err(e) => error(e),
            Ok(rules) => {
                let source = || {
                    format!(
                        "ClusterRoleBinding {:?} of {} {:?} to {}",
                        b.metadata.name.as_deref().unwrap_or_default(),
                        b.role_ref.kind,
                        b.role_ref.name,
                        describe_subject(subject, "")
                    )
                };
                for r in rules {
                    if !visit(&source, r) {
                        return;
                    }
                }
            }
        }
    }
    if namespace.is_empty() {
        return;
    }
    let bindings = policy.role_bindings.get(namespace).into_iter().flatten();
    for b in bindings.map(|(_, b)| b) {
        let subjects = b.subjects.as_deref().unwrap_or_default();
        let Some(subject) = subjects.iter().find(|s| applies_to(user, s, namespace)) else {
            continue;
        };
        match role_rules(policy, &b.role_ref.kind, &b.role_ref.name, Some(namespace)) {
            Err(e) => error(e),
            Ok(rules) => {
                let source = || {
                    format!(
                        "RoleBinding {:?} of {} {:?} to {}",
                        format!(
                            "{}/{}",
                            b.metadata.name.as_deref().unwrap_or_default(),
                            b.metadata.namespace.as_deref().unwrap_or(namespace)
                        ),
                        b.role_ref.kind,
                        b.role_ref.name,
                        describe_subject(subject, namespace)
                    )
                };
                for r in rules {
                    if !visit(&source, r) {
                        return;
                    }
                }
            }
        }
    }
}

/// kube's error aggregate text: duplicates dropped, then one error as is,
/// several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for e in errors {
        if !unique.contains(&e.as_str()) {
            unique.push(e);
        }
    }
    match unique.as_slice() {
        [one] => (*one).to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Whether `user` may make `request`, with kube's reason (module docs).
pub fn authorize(policy: &Policy, user: User<'_>, request: &Request) -> Decision {
    if has(user.groups, PRIVILEGED_GROUP) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut reason = None;
    let mut errors = Vec::new();
    visit_rules(
        policy,
        user,
        request.namespace(),
        |source, rule| {
            if rule_allows(request, rule) {
                reason = Some(format!("RBAC: allowed by {}", source()));
                return false;
            }
            true
        },
        |e| errors.push(e),
    );
    match reason {
        Some(reason) => Decision {
            allowed: true,
            reason,
        },
        None => Decision {
            allowed: false,
            reason: if errors.is_empty() {
                String::new()
            } else {
                format!("RBAC: {}", aggregate(&errors))
            },
        },
    }
}

/// Every rule granted to `user` in `namespace` (ClusterRoleBindings', then
/// the namespace's RoleBindings'), and the evaluation error text if a
/// binding names a missing role (kube's `RulesFor`; the privileged-group
/// authorizer lists no rules).
pub fn rules_for(policy: &Policy, user: User<'_>, namespace: &str) -> (Vec<PolicyRule>, String) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    visit_rules(
        policy,
        user,
        namespace,
        |_, rule| {
            rules.push(rule.clone());
            true
        },
        |e| errors.push(e),
    );
    let error = if errors.is_empty() {
        String::new()
    } else {
        aggregate(&errors)
    };
    (rules, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        let cr = |name: &str, rules: serde_json::Value| json!({"metadata": {"name": name}, "rules": rules});
        let mut p = Policy::default();
        let objects = [
            (
                "clusterrolebindings",
                json!([
                    {"metadata": {"name": "readers"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
                     "subjects": [{"kind": "Group", "name": "devs"}]},
                    {"metadata": {"name": "broken"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gone"},
                     "subjects": [{"kind": "User", "name": "bob"}]},
                    {"metadata": {"name": "monitoring"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "metrics"},
                     "subjects": [{"kind": "ServiceAccount", "name": "prom", "namespace": "mon"}]},
                ]),
            ),
            (
                "clusterroles",
                json!([
                    cr(
                        "reader",
                        json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}])
                    ),
                    cr(
                        "metrics",
                        json!([{"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]}])
                    ),
                    cr(
                        "pod-admin",
                        json!([{"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]},
                    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["app"], "verbs": ["get"]}])
                    ),
                ]),
            ),
            (
                "rolebindings",
                json!([
                    {"metadata": {"name": "builders", "namespace": "dev"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-admin"},
                     "subjects": [{"kind": "ServiceAccount", "name": "builder"}]},
                    {"metadata": {"name": "local", "namespace": "dev"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm"},
                     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]},
                ]),
            ),
            (
                "roles",
                json!([
                    {"metadata": {"name": "cm", "namespace": "dev"},
                     "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]},
                ]),
            ),
        ];
        for (resource, items) in objects {
            for item in items.as_array().unwrap() {
                p.insert(resource, item.to_string().as_bytes()).unwrap();
            }
        }
        p
    }

    fn res(verb: &str, ns: &str, group: &str, resource: &str, sub: &str, name: &str) -> Request {
        Request::Resource {
            verb: verb.into(),
            namespace: ns.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
        }
    }

    fn user<'a>(name: &'a str, groups: &'a [String]) -> User<'a> {
        User { name, groups }
    }

    #[test]
    fn bindings_grant_what_their_roles_allow_with_kubes_reasons() {
        let p = policy();
        let devs = ["devs".to_string()];
        let d = authorize(
            &p,
            user("carol", &devs),
            &res("list", "any", "", "pods", "", ""),
        );
        assert_eq!(
            d,
            Decision {
                allowed: true,
                reason: r#"RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "reader" to Group "devs""#.into()
            }
        );
        assert!(
            authorize(
                &p,
                user("carol", &devs),
                &res("get", "x", "", "pods", "log", "p")
            )
            .allowed
        );
        assert!(
            !authorize(
                &p,
                user("carol", &devs),
                &res("get", "x", "", "pods", "exec", "p")
            )
            .allowed
        );
        assert!(
            !authorize(
                &p,
                user("carol", &devs),
                &res("delete", "x", "", "pods", "", "p")
            )
            .allowed
        );
        assert!(
            !authorize(
                &p,
                user("carol", &devs),
                &res("get", "x", "apps", "pods", "", "")
            )
            .allowed
        );
        // A service account in the RoleBinding's own namespace.
        let sa = "system:serviceaccount:dev:builder";
        let d = authorize(
            &p,
            user(sa, &[]),
            &res("update", "dev", "apps", "deployments", "status", "web"),
        );
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by RoleBinding "builders/dev" of ClusterRole "pod-admin" to ServiceAccount "builder/dev""#
        );
        assert!(
            !authorize(
                &p,
                user(sa, &[]),
                &res("update", "dev", "apps", "deployments", "", "web")
            )
            .allowed
        );
        assert!(
            !authorize(
                &p,
                user(sa, &[]),
                &res("update", "prod", "apps", "deployments", "status", "w")
            )
            .allowed
        );
        assert!(
            authorize(
                &p,
                user(sa, &[]),
                &res("get", "dev", "", "secrets", "", "app")
            )
            .allowed
        );
        assert!(
            !authorize(
                &p,
                user(sa, &[]),
                &res("get", "dev", "", "secrets", "", "db")
            )
            .allowed
        );
        assert!(
            !authorize(
                &p,
                user(sa, &[]),
                &res("list", "dev", "", "secrets", "", "")
            )
            .allowed
        );
        assert!(
            authorize(
                &p,
                user("alice", &[]),
                &res("create", "dev", "", "configmaps", "", "")
            )
            .allowed
        );
        assert!(
            !authorize(
                &p,
                user("alice", &[]),
                &res("create", "", "", "configmaps", "", "")
            )
            .allowed
        );
    }

    #[test]
    fn non_resource_urls_prefixes_masters_and_missing_roles() {
        let p = policy();
        let prom = "system:serviceaccount:mon:prom";
        let get = |path: &str| Request::NonResource {
            verb: "get".into(),
            path: path.into(),
        };
        assert!(authorize(&p, user(prom, &[]), &get("/metrics")).allowed);
        assert!(authorize(&p, user(prom, &[]), &get("/debug/pprof")).allowed);
        assert!(!authorize(&p, user(prom, &[]), &get("/metrics/x")).allowed);
        let masters = [PRIVILEGED_GROUP.to_string()];
        assert_eq!(
            authorize(
                &p,
                user("root", &masters),
                &res("delete", "", "", "nodes", "", "n")
            ),
            Decision {
                allowed: true,
                reason: String::new()
            }
        );
        assert_eq!(
            authorize(&p, user("bob", &[]), &res("get", "", "", "nodes", "", "")),
            Decision {
                allowed: false,
                reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#.into()
            }
        );
        let (rules, error) = rules_for(&p, user("alice", &["devs".to_string()]), "dev");
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(error, "");
        let (_, error) = rules_for(&p, user("bob", &[]), "dev");
        assert_eq!(
            error,
            r#"clusterrole.rbac.authorization.k8s.io "gone" not found"#
        );
        assert!(rules_for(&p, user("root", &masters), "dev").0.is_empty());
    }
}
