//! Which webhooks a request calls, as kube-apiserver's webhook dispatcher
//! decides (k8s.io/apiserver pkg/admission/plugin/webhook: `predicates/rules`,
//! `predicates/namespace`, `predicates/object`, `generic/webhook.go`'s
//! `ShouldCallHook`, and `matchconditions`): the namespace selector, the
//! object selector, the rules (with `matchPolicy: Equivalent` trying the
//! other served versions of the same resource), then the match conditions
//! in CEL. Pure: the namespace's labels are looked up by the caller.

use super::config::{Rule, Webhook};
use crate::pki::Identity;
use serde_json::{Value, json};

/// An admission operation (`AdmissionRequest.operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A create (also a PUT that creates, and subresource creates).
    Create,
    /// An update, patch or apply.
    Update,
    /// A delete (one object, or each object of a collection delete).
    Delete,
    /// A connect subresource (`pods/exec`, `pods/portforward`, …).
    Connect,
}

impl Operation {
    /// The name rules and AdmissionReviews use (`CREATE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// The kind of the request's `options` (`CreateOptions`, …); connect
    /// requests carry their own options kind.
    pub fn options_kind(self) -> Option<&'static str> {
        match self {
            Operation::Create => Some("CreateOptions"),
            Operation::Update => Some("UpdateOptions"),
            Operation::Delete => Some("DeleteOptions"),
            Operation::Connect => None,
        }
    }
}

/// A group, version and resource (or kind) triple.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gvr {
    /// API group, `""` for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    /// The kind of the objects at this version.
    pub kind: String,
    /// The kind's `apiVersion` when it is not this group-version (a
    /// `scale` subresource's `autoscaling/v1` `Scale`); empty otherwise.
    pub kind_api_version: String,
}

impl Gvr {
    /// `{group, version, kind}` (`metav1.GroupVersionKind`).
    pub fn gvk_json(&self) -> Value {
        let (group, version) = match self.kind_api_version.split_once('/') {
            _ if self.kind_api_version.is_empty() => (self.group.as_str(), self.version.as_str()),
            Some((g, v)) => (g, v),
            None => ("", self.kind_api_version.as_str()),
        };
        json!({"group": group, "version": version, "kind": self.kind})
    }

    /// `{group, version, resource}` (`metav1.GroupVersionResource`).
    pub fn gvr_json(&self) -> Value {
        json!({"group": self.group, "version": self.version, "resource": self.resource})
    }

    /// The `apiVersion` of objects at this group-version.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The request admission sees (kube's `admission.Attributes`).
#[derive(Clone, Debug)]
pub struct Attributes {
    /// What the request does.
    pub operation: Operation,
    /// The resource the request named.
    pub resource: Gvr,
    /// The subresource, `""` for the main resource.
    pub subresource: String,
    /// The kind's object is namespaced (Namespaces themselves are not).
    pub namespaced: bool,
    /// The request's namespace; for a Namespace object, its name (as
    /// kube's request info sets it).
    pub namespace: String,
    /// The object's name (`""` for a create with `generateName`).
    pub name: String,
    /// The new object (creates, updates; the options object of a connect).
    pub object: Option<Value>,
    /// The stored object (updates, deletes).
    pub old_object: Option<Value>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// The request's options object (`CreateOptions`, `DeleteOptions`, …).
    pub options: Value,
    /// Who makes the request.
    pub user: Identity,
    /// The other versions this group-resource is served at whose objects
    /// differ only in `apiVersion` (custom resources without conversion):
    /// the resources `matchPolicy: Equivalent` also matches.
    pub equivalent_versions: Vec<Gvr>,
}

/// How a webhook is to be called for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The resource and kind the webhook sees: the request's, or the
    /// equivalent version its rules matched.
    pub resource: Gvr,
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// `rules.Matcher.Matches`: scope, operation, group, version and resource
/// (`*` matches main resources only, `*/*` everything, `pods/*` every
/// subresource of pods, `*/status` every status subresource).
pub fn rule_matches(rule: &Rule, attrs: &Attributes, resource: &Gvr) -> bool {
    let scope = match rule.scope.as_str() {
        "" | "*" => true,
        "Cluster" => !attrs.namespaced,
        "Namespaced" => attrs.namespaced,
        _ => false,
    };
    scope
        && has(&rule.operations, attrs.operation.as_str())
        && has(&rule.api_groups, &resource.group)
        && has(&rule.api_versions, &resource.version)
        && rule.resources.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r, ""));
            (res == "*" || res == resource.resource) && (sub == "*" || sub == attrs.subresource)
        })
}

/// The rules part of `ShouldCallHook`: the request's own resource first,
/// then (`matchPolicy: Equivalent`) its equivalent versions, earlier rules
/// first.
pub fn match_rules(webhook: &Webhook, attrs: &Attributes) -> Option<Invocation> {
    if webhook
        .rules
        .iter()
        .any(|r| rule_matches(r, attrs, &attrs.resource))
    {
        return Some(Invocation {
            resource: attrs.resource.clone(),
        });
    }
    if webhook.match_policy == super::config::MatchPolicy::Exact {
        return None;
    }
    webhook.rules.iter().find_map(|r| {
        attrs
            .equivalent_versions
            .iter()
            .find(|e| **e != attrs.resource && rule_matches(r, attrs, e))
            .map(|e| Invocation {
                resource: e.clone(),
            })
    })
}

fn labels(obj: Option<&Value>) -> Option<&Value> {
    obj?.pointer("/metadata/labels")
}

/// `objectSelector`: the new or the old object's labels match (a missing
/// object matches nothing; an empty selector matches everything).
pub fn object_selector_matches(webhook: &Webhook, attrs: &Attributes) -> Result<bool, String> {
    let selector = webhook.object_selector.as_ref().map_err(Clone::clone)?;
    if selector.is_empty() {
        return Ok(true);
    }
    let matches = |o: Option<&Value>| o.is_some() && selector.matches_json(labels(o));
    Ok(matches(attrs.object.as_ref()) || matches(attrs.old_object.as_ref()))
}

/// Whether the namespace selector must be checked, and against which
/// labels: `None` for cluster-scoped kinds other than Namespace (never
/// exempted); for a Namespace being created or updated its own labels;
/// otherwise the caller reads the stored namespace `attrs.namespace`.
pub enum NamespaceLabels<'a> {
    /// Not checked: the webhook applies.
    NotApplicable,
    /// The labels of the object itself (a Namespace create or update).
    Object(Option<&'a Value>),
    /// The labels of the stored namespace of this name.
    Stored(&'a str),
}

/// Which labels the namespace selector is matched against
/// (`namespace.Matcher.GetNamespaceLabels`).
pub fn namespace_labels(attrs: &Attributes) -> NamespaceLabels<'_> {
    let is_namespace = attrs.resource.group.is_empty() && attrs.resource.resource == "namespaces";
    if attrs.namespace.is_empty() && !is_namespace {
        return NamespaceLabels::NotApplicable;
    }
    if is_namespace
        && attrs.subresource.is_empty()
        && matches!(attrs.operation, Operation::Create | Operation::Update)
    {
        return NamespaceLabels::Object(labels(attrs.object.as_ref()));
    }
    NamespaceLabels::Stored(&attrs.namespace)
}

/// One compiled `matchConditions[]` entry.
#[derive(Debug)]
pub struct MatchCondition {
    /// The condition's `name`.
    pub name: String,
    program: Result<cel::Program, String>,
}

impl MatchCondition {
    /// Compiles a `{name, expression}` entry; a compile error is kept and
    /// reported when the condition is evaluated (validation keeps such
    /// entries out of new configurations).
    pub fn compile(v: &Value) -> Self {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let program = match v.get("expression").and_then(Value::as_str) {
            Some(expr) => cel::Program::compile(expr).map_err(|e| e.to_string()),
            None => Err("expression is required".into()),
        };
        Self { name, program }
    }
}

/// The outcome of a webhook's match conditions.
#[derive(Debug, PartialEq, Eq)]
pub enum ConditionOutcome {
    /// Every condition is true (or there are none).
    Match,
    /// A condition is false: the webhook is skipped.
    NoMatch,
    /// No condition is false, but one could not be evaluated: the
    /// webhook's failure policy decides.
    Error(String),
}

/// The AdmissionRequest of `attrs` without `uid`, `object` and
/// `oldObject`: the `request` variable of match conditions (kube's CEL
/// admission library), and the body of the review a webhook is sent
/// ([`super::review::request`]).
pub fn request_variable(attrs: &Attributes, invocation: &Invocation) -> Value {
    let mut user = json!({
        "username": attrs.user.user,
        "groups": attrs.user.groups,
    });
    if !attrs.user.uid.is_empty() {
        user["uid"] = json!(attrs.user.uid);
    }
    if !attrs.user.extra.is_empty() {
        user["extra"] = json!(attrs.user.extra);
    }
    json!({
        "kind": invocation.resource.gvk_json(),
        "resource": invocation.resource.gvr_json(),
        "subResource": attrs.subresource,
        "requestKind": attrs.resource.gvk_json(),
        "requestResource": attrs.resource.gvr_json(),
        "requestSubResource": attrs.subresource,
        "name": attrs.name,
        "namespace": attrs.namespace,
        "operation": attrs.operation.as_str(),
        "userInfo": user,
        "dryRun": attrs.dry_run,
        "options": attrs.options,
    })
}

/// Evaluates `conditions` with `object`, `oldObject` (`null` when absent)
/// and `request` bound: any false condition skips the webhook, even when
/// another errs; otherwise the first error decides (`matchconditions`'
/// `Match`). Conditions that use `authorizer` are not supported here and
/// err.
pub fn evaluate_conditions(
    conditions: &[MatchCondition],
    attrs: &Attributes,
    invocation: &Invocation,
) -> ConditionOutcome {
    if conditions.is_empty() {
        return ConditionOutcome::Match;
    }
    let mut context = cel::Context::default();
    let mut bind = |name: &str, v: Option<&Value>| match cel::to_value(v.unwrap_or(&Value::Null)) {
        Ok(value) => {
            context.add_variable_from_value(name, value);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    };
    let bound = bind("object", attrs.object.as_ref())
        .and_then(|()| bind("oldObject", attrs.old_object.as_ref()))
        .and_then(|()| bind("request", Some(&request_variable(attrs, invocation))));
    if let Err(e) = bound {
        return ConditionOutcome::Error(e);
    }
    evaluate_conditions_in(conditions, &context)
}

/// Evaluates `conditions` in a context with their variables bound: any
/// false condition wins, else the first error, else a match.
pub fn evaluate_conditions_in(
    conditions: &[MatchCondition],
    context: &cel::Context,
) -> ConditionOutcome {
    let mut first_error = None;
    for condition in conditions {
        let result = match &condition.program {
            Ok(program) => program.execute(context).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return ConditionOutcome::NoMatch,
            Ok(_) => {
                first_error.get_or_insert_with(|| {
                    format!(
                        "matchCondition '{}': expression must evaluate to bool",
                        condition.name
                    )
                });
            }
            Err(e) => {
                first_error
                    .get_or_insert_with(|| format!("matchCondition '{}': {e}", condition.name));
            }
        }
    }
    match first_error {
        Some(e) => ConditionOutcome::Error(e),
        None => ConditionOutcome::Match,
    }
}
