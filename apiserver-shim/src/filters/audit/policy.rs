//! The audit policy (`audit.k8s.io/v1` `Policy`): which requests are
//! recorded and at what level, decided as kube-apiserver's policy checker
//! decides (k8s.io/apiserver pkg/audit/policy/checker.go): the first rule
//! that matches gives the level; no matching rule means `None`.

use crate::filters::authorization::rbac::Request as Attributes;
use serde::Deserialize;

/// How much of a request an event holds (`audit.k8s.io/v1` `Level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
pub enum Level {
    /// Not recorded.
    None,
    /// The request's metadata: user, verb, object reference, status.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata, the request body and the response body.
    RequestResponse,
}

/// A point in a request's life an event is written at
/// (`audit.k8s.io/v1` `Stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Stage {
    /// As soon as the request is received, before it is served.
    RequestReceived,
    /// Once a long-running request's response headers are sent.
    ResponseStarted,
    /// Once the response is complete.
    ResponseComplete,
    /// When serving the request failed unexpectedly.
    Panic,
}

/// The policy file's content (`audit.k8s.io/v1` `Policy`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// `audit.k8s.io/v1` (or v1beta1 / v1alpha1, which read the same).
    #[serde(default)]
    pub api_version: String,
    /// `Policy`.
    #[serde(default)]
    pub kind: String,
    /// Ignored, as kube-apiserver ignores it.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    /// Stages never recorded, for every rule.
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    /// Drop `managedFields` from recorded bodies unless a rule says
    /// otherwise.
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// One rule (`audit.k8s.io/v1` `PolicyRule`); an empty list matches
/// everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// The level of requests this rule matches.
    pub level: Level,
    /// User names.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups; a user in any of them matches.
    #[serde(default)]
    pub user_groups: Vec<String>,
    /// Verbs (`get`, `list`, `watch`, `create`, …).
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Resources; a rule naming resources or namespaces matches only
    /// resource requests.
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    /// Namespaces; `""` matches cluster-scoped requests.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Non-resource paths (`/healthz`, `/metrics*`, `*`); a rule naming
    /// them matches only non-resource requests.
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    /// Stages not recorded for this rule, besides the policy's.
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    /// Overrides the policy's `omitManagedFields` for this rule.
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

/// Resources of one API group (`audit.k8s.io/v1` `GroupResources`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    /// API group; `""` is core.
    #[serde(default)]
    pub group: String,
    /// Resources (`pods`, `pods/log`, `*`, `*/status`, `pods/*`); empty:
    /// every resource of the group.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Object names; empty: every object.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// What the policy decides for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The level.
    pub level: Level,
    /// Stages not recorded.
    pub omit_stages: Vec<Stage>,
    /// Whether recorded bodies lose their `managedFields`.
    pub omit_managed_fields: bool,
}

impl Evaluation {
    /// Whether `stage` is recorded.
    pub fn records(&self, stage: Stage) -> bool {
        self.level > Level::None && !self.omit_stages.contains(&stage)
    }
}

impl Policy {
    /// Reads a policy file's content, YAML or JSON (pure).
    ///
    /// # Errors
    /// A syntax error, an unknown field, or a kind other than `Policy` in
    /// `audit.k8s.io`.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        let known = [
            "audit.k8s.io/v1",
            "audit.k8s.io/v1beta1",
            "audit.k8s.io/v1alpha1",
        ];
        if policy.kind != "Policy" || !known.contains(&policy.api_version.as_str()) {
            return Err(format!(
                "expected kind Policy in audit.k8s.io/v1, got kind {:?} in {:?}",
                policy.kind, policy.api_version
            ));
        }
        Ok(policy)
    }

    /// The level and stages for a request by `user` in `groups` with
    /// `attributes` (pure; checker.go's `EvaluatePolicyRule`).
    pub fn evaluate(&self, user: &str, groups: &[String], attributes: &Attributes) -> Evaluation {
        let rule = self
            .rules
            .iter()
            .find(|r| rule_matches(r, user, groups, attributes));
        let mut omit_stages = self.omit_stages.clone();
        match rule {
            Some(rule) => {
                for stage in &rule.omit_stages {
                    if !omit_stages.contains(stage) {
                        omit_stages.push(*stage);
                    }
                }
                Evaluation {
                    level: rule.level,
                    omit_stages,
                    omit_managed_fields: rule
                        .omit_managed_fields
                        .unwrap_or(self.omit_managed_fields),
                }
            }
            None => Evaluation {
                level: Level::None,
                omit_stages,
                omit_managed_fields: self.omit_managed_fields,
            },
        }
    }
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|s| s == want)
}

fn rule_matches(rule: &PolicyRule, user: &str, groups: &[String], attributes: &Attributes) -> bool {
    if !rule.users.is_empty() && !has(&rule.users, user) {
        return false;
    }
    if !rule.user_groups.is_empty() && !groups.iter().any(|g| has(&rule.user_groups, g)) {
        return false;
    }
    let verb = match attributes {
        Attributes::Resource { verb, .. } | Attributes::NonResource { verb, .. } => verb,
    };
    if !rule.verbs.is_empty() && !has(&rule.verbs, verb) {
        return false;
    }
    if !rule.namespaces.is_empty() || !rule.resources.is_empty() {
        return matches_resource(rule, attributes);
    }
    if !rule.non_resource_urls.is_empty() {
        return match attributes {
            Attributes::NonResource { path, .. } => rule
                .non_resource_urls
                .iter()
                .any(|spec| path_matches(path, spec)),
            Attributes::Resource { .. } => false,
        };
    }
    true
}

/// `spec` is a path, `*`, or a prefix ending in `*`.
fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

fn matches_resource(rule: &PolicyRule, attributes: &Attributes) -> bool {
    let Attributes::Resource {
        namespace,
        group,
        resource,
        subresource,
        name,
        ..
    } = attributes
    else {
        return false;
    };
    if !rule.namespaces.is_empty() && !has(&rule.namespaces, namespace) {
        return false;
    }
    if rule.resources.is_empty() {
        return true;
    }
    let combined = if subresource.is_empty() {
        resource.clone()
    } else {
        format!("{resource}/{subresource}")
    };
    rule.resources
        .iter()
        .filter(|gr| &gr.group == group)
        .any(|gr| {
            gr.resources.is_empty()
                || (gr.resource_names.is_empty() || has(&gr.resource_names, name))
                    && gr.resources.iter().any(|res| {
                        res == &combined
                            || res == "*"
                            || (!subresource.is_empty()
                                && res.strip_prefix("*/") == Some(subresource.as_str()))
                            || res.strip_suffix("/*") == Some(resource.as_str())
                    })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(method: &str, path: &str) -> Attributes {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        crate::filters::authorization::attributes::of(method, &segments, path, None)
    }

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "configmaps/*"]
- level: RequestResponse
  verbs: ["create"]
  namespaces: ["dev"]
  omitStages: [ResponseStarted]
  omitManagedFields: true
- level: Request
  userGroups: ["devs"]
  resources:
  - group: apps
- level: Metadata
  resources:
  - group: ""
    resources: ["*/exec"]
"#;

    fn level(user: &str, groups: &[&str], method: &str, path: &str) -> Level {
        let policy = Policy::parse(POLICY).unwrap();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        policy.evaluate(user, &groups, &at(method, path)).level
    }

    #[test]
    fn the_first_matching_rule_decides() {
        assert_eq!(
            level(
                "system:kube-proxy",
                &[],
                "GET",
                "/api/v1/namespaces/dev/secrets"
            ),
            Level::None
        );
        assert_eq!(level("alice", &[], "GET", "/healthz/ping"), Level::None);
        assert_eq!(level("alice", &[], "GET", "/version"), Level::None);
        assert_eq!(
            level("alice", &[], "GET", "/api/v1/namespaces/dev/secrets/db"),
            Level::Metadata
        );
        assert_eq!(
            level("alice", &[], "POST", "/api/v1/namespaces/dev/pods"),
            Level::RequestResponse
        );
        assert_eq!(
            level("alice", &[], "POST", "/api/v1/namespaces/prod/pods"),
            Level::None
        );
        assert_eq!(
            level("bob", &["devs"], "GET", "/apis/apps/v1/deployments"),
            Level::Request
        );
        assert_eq!(
            level("bob", &["ops"], "GET", "/apis/apps/v1/deployments"),
            Level::None
        );
        assert_eq!(
            level("bob", &[], "POST", "/api/v1/namespaces/x/pods/p/exec"),
            Level::Metadata
        );
        // `configmaps/*` names the resource and each of its subresources.
        assert_eq!(
            level("bob", &[], "GET", "/api/v1/namespaces/x/configmaps/c"),
            Level::Metadata
        );
        assert_eq!(
            level("bob", &[], "GET", "/api/v1/namespaces/x/services/s"),
            Level::None
        );
        // A rule naming resources never matches a non-resource request.
        assert_eq!(level("bob", &["devs"], "GET", "/apis/apps"), Level::None);
    }

    #[test]
    fn omitted_stages_and_managed_fields_combine() {
        let policy = Policy::parse(POLICY).unwrap();
        let e = policy.evaluate("a", &[], &at("POST", "/api/v1/namespaces/dev/pods"));
        assert_eq!(
            e.omit_stages,
            vec![Stage::RequestReceived, Stage::ResponseStarted]
        );
        assert!(e.omit_managed_fields);
        assert!(e.records(Stage::ResponseComplete));
        assert!(!e.records(Stage::RequestReceived));
        let none = policy.evaluate("a", &[], &at("GET", "/version"));
        assert!(!none.records(Stage::ResponseComplete));
    }

    #[test]
    fn bad_policies_are_refused() {
        assert!(Policy::parse("apiVersion: v1\nkind: Policy\nrules: []").is_err());
        assert!(
            Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]")
                .is_err()
        );
        assert!(
            Policy::parse(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, userz: [a]}]"
            )
            .is_err()
        );
    }
}
