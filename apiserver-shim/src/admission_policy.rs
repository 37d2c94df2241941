//! ValidatingAdmissionPolicy: CEL validations bound to requests by
//! ValidatingAdmissionPolicyBindings (admissionregistration.k8s.io/v1), as
//! kube-apiserver's plugin evaluates them (k8s.io/apiserver
//! pkg/admission/plugin/policy/validating, `generic` and `matching`).
//!
//! Each binding whose policy exists is tried, in binding-name order: the
//! policy's `matchConstraints` and then the binding's `matchResources` must
//! match the request (the webhooks' rules, selectors and `Equivalent`
//! matching, plus `resourceNames` and `excludeResourceRules`); the params
//! are read (`paramRef` by name or selector; none without `paramKind`);
//! the `matchConditions` must hold; then every validation is evaluated with
//! `object`, `oldObject`, `request`, `params`, `namespaceObject` and
//! `variables`. A false validation is a violation; the binding's
//! `validationActions` decide what it does: `Deny` fails the request
//! (`<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<p>' with
//! binding '<b>' denied request: <message>`, code from the validation's
//! `reason`, 422 by default), `Warn` adds a `Warning`, `Audit` is not
//! recorded here. An expression that errs is a violation under
//! `failurePolicy: Fail` and skipped under `Ignore`.
//!
//! The policies run in the validating phase, after the kind's validation
//! and the built-in validating plugins and before the validating webhooks,
//! as kube orders its plugins.
//!
//! Not done: `auditAnnotations` and the `Audit` action (nothing is
//! recorded), the `authorizer` variable, CEL cost limits and the
//! Kubernetes CEL libraries beyond what the `cel` crate offers, type
//! checking (a policy's `status.typeChecking` stays empty), and variables
//! are evaluated eagerly (a variable that errs fails the policy even when
//! no validation uses it).

use crate::error::{ApiError, ApiResult, GroupResource};
use crate::registry::ResourceDef;
use crate::rest::Api;
use crate::store::{Followed, Storage};
use crate::webhook::config::{self, MatchPolicy, Rule, selector, strings};
use crate::webhook::matching::{
    self, Attributes, ConditionOutcome, Invocation, MatchCondition, NamespaceLabels,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use vkube_core::field::FieldError;
use vkube_core::labels::LabelSelector;

/// Most param objects one binding is evaluated with.
const MAX_PARAMS: usize = 100;
/// Most validations, variables or match conditions a policy may have.
const MAX_EXPRESSIONS: usize = 64;
/// Longest expression, in bytes.
const MAX_EXPRESSION_BYTES: usize = 5 * 1024;
/// Longest message a `messageExpression` may make, in bytes.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// `matchConstraints` or `matchResources`.
#[derive(Debug)]
pub struct MatchResources {
    /// `resourceRules`, each with its `resourceNames`.
    pub rules: Vec<(Rule, Vec<String>)>,
    /// `excludeResourceRules`.
    pub exclude: Vec<(Rule, Vec<String>)>,
    /// `namespaceSelector` (everything when unset).
    pub namespace_selector: Result<LabelSelector, String>,
    /// `objectSelector` (everything when unset).
    pub object_selector: Result<LabelSelector, String>,
    /// `matchPolicy`.
    pub match_policy: MatchPolicy,
}

/// A compiled CEL expression and its source.
pub struct Expression {
    /// The source text.
    pub source: String,
    program: Result<cel::Program, String>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl Expression {
    fn compile(source: &str) -> Self {
        Self {
            source: source.to_string(),
            program: cel::Program::compile(source).map_err(|e| e.to_string()),
        }
    }

    fn eval(&self, context: &cel::Context) -> Result<cel::Value, String> {
        match &self.program {
            Ok(p) => p.execute(context).map_err(|e| e.to_string()),
            Err(e) => Err(format!("compilation error: {e}")),
        }
    }
}

/// One `validations[]` entry.
#[derive(Debug)]
pub struct Validation {
    /// `expression`, which must evaluate to a bool.
    pub expression: Expression,
    /// `message`.
    pub message: String,
    /// `messageExpression`.
    pub message_expression: Option<Expression>,
    /// `reason` (`Invalid` when unset).
    pub reason: String,
}

/// A stored ValidatingAdmissionPolicy, compiled.
#[derive(Debug)]
pub struct Policy {
    /// `metadata.name`.
    pub name: String,
    /// `failurePolicy: Ignore`.
    pub ignore_failures: bool,
    /// `paramKind` as (`apiVersion`, `kind`).
    pub param_kind: Option<(String, String)>,
    /// `matchConstraints`.
    pub match_constraints: Option<MatchResources>,
    /// `matchConditions`.
    pub match_conditions: Vec<MatchCondition>,
    /// `variables`, in order.
    pub variables: Vec<(String, Expression)>,
    /// `validations`.
    pub validations: Vec<Validation>,
}

/// `paramRef`.
#[derive(Debug)]
pub struct ParamRef {
    /// `name`, or empty.
    pub name: String,
    /// `namespace`, or empty.
    pub namespace: String,
    /// `selector`, when set.
    pub selector: Option<Result<LabelSelector, String>>,
    /// `parameterNotFoundAction: Allow`.
    pub allow_missing: bool,
}

/// A stored ValidatingAdmissionPolicyBinding.
#[derive(Debug)]
pub struct Binding {
    /// `metadata.name`.
    pub name: String,
    /// `spec.policyName`.
    pub policy_name: String,
    /// `spec.paramRef`.
    pub param_ref: Option<ParamRef>,
    /// `spec.matchResources`.
    pub match_resources: Option<MatchResources>,
    /// `validationActions` includes `Deny`.
    pub deny: bool,
    /// `validationActions` includes `Warn`.
    pub warn: bool,
}

fn named_rules(v: Option<&Value>) -> Vec<(Rule, Vec<String>)> {
    v.and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|r| (config::rule(r), strings(r.get("resourceNames"))))
                .collect()
        })
        .unwrap_or_default()
}

fn match_resources(v: Option<&Value>) -> Option<MatchResources> {
    let v = v.filter(|v| v.is_object())?;
    Some(MatchResources {
        rules: named_rules(v.get("resourceRules")),
        exclude: named_rules(v.get("excludeResourceRules")),
        namespace_selector: selector(v.get("namespaceSelector")),
        object_selector: selector(v.get("objectSelector")),
        match_policy: match v.get("matchPolicy").and_then(Value::as_str) {
            Some("Exact") => MatchPolicy::Exact,
            _ => MatchPolicy::Equivalent,
        },
    })
}

/// A stored policy, compiled. Pure.
pub fn policy_of(obj: &Value) -> Policy {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Policy {
        name: text(obj.get("metadata").unwrap_or(&Value::Null), "name"),
        ignore_failures: spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore"),
        param_kind: spec
            .get("paramKind")
            .filter(|p| p.is_object())
            .map(|p| (text(p, "apiVersion"), text(p, "kind"))),
        match_constraints: match_resources(spec.get("matchConstraints")),
        match_conditions: spec
            .get("matchConditions")
            .and_then(Value::as_array)
            .map(|c| c.iter().map(MatchCondition::compile).collect())
            .unwrap_or_default(),
        variables: spec
            .get("variables")
            .and_then(Value::as_array)
            .map(|vars| {
                vars.iter()
                    .map(|v| (text(v, "name"), Expression::compile(&text(v, "expression"))))
                    .collect()
            })
            .unwrap_or_default(),
        validations: spec
            .get("validations")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .map(|v| Validation {
                        expression: Expression::compile(&text(v, "expression")),
                        message: text(v, "message"),
                        message_expression: v
                            .get("messageExpression")
                            .and_then(Value::as_str)
                            .map(Expression::compile),
                        reason: text(v, "reason"),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A stored binding. Pure.
pub fn binding_of(obj: &Value) -> Binding {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let actions = strings(spec.get("validationActions"));
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Binding {
        name: text(obj.get("metadata").unwrap_or(&Value::Null), "name"),
        policy_name: text(spec, "policyName"),
        param_ref: spec
            .get("paramRef")
            .filter(|p| p.is_object())
            .map(|p| ParamRef {
                name: text(p, "name"),
                namespace: text(p, "namespace"),
                selector: p
                    .get("selector")
                    .filter(|s| !s.is_null())
                    .map(|s| selector(Some(s))),
                allow_missing: p.get("parameterNotFoundAction").and_then(Value::as_str)
                    == Some("Allow"),
            }),
        match_resources: match_resources(spec.get("matchResources")),
        deny: actions.iter().any(|a| a == "Deny"),
        warn: actions.iter().any(|a| a == "Warn"),
    }
}

/// Whether `m` matches the request (`matching.Matches`): selectors, then
/// the exclusions, then the rules (an empty rule list matches every
/// resource). The invocation gives the resource matched (an equivalent
/// version under `matchPolicy: Equivalent`). Selector errors are returned
/// only when a rule matched. `namespace_labels` are the labels of the
/// request's namespace, when [`matching::namespace_labels`] wants stored
/// ones.
pub fn matches(
    m: &MatchResources,
    attrs: &Attributes,
    namespace_labels: Option<&Value>,
) -> Result<Option<Invocation>, String> {
    let namespace_match = match &m.namespace_selector {
        Err(e) => Err(e.clone()),
        Ok(s) if s.is_empty() => Ok(true),
        Ok(s) => Ok(match matching::namespace_labels(attrs) {
            NamespaceLabels::NotApplicable => true,
            NamespaceLabels::Object(labels) => s.matches_json(labels),
            NamespaceLabels::Stored(_) => s.matches_json(namespace_labels),
        }),
    };
    if let Ok(false) = namespace_match {
        return Ok(None);
    }
    let object_match = match &m.object_selector {
        Err(e) => Err(e.clone()),
        Ok(s) if s.is_empty() => Ok(true),
        Ok(s) => {
            fn labels(o: Option<&Value>) -> Option<&Value> {
                o?.pointer("/metadata/labels")
            }
            Ok(
                (attrs.object.is_some() && s.matches_json(labels(attrs.object.as_ref())))
                    || (attrs.old_object.is_some()
                        && s.matches_json(labels(attrs.old_object.as_ref()))),
            )
        }
    };
    if let Ok(false) = object_match {
        return Ok(None);
    }
    let named = |(rule, names): &(Rule, Vec<String>), r: &matching::Gvr| {
        matching::rule_matches(rule, attrs, r) && (names.is_empty() || names.contains(&attrs.name))
    };
    if m.exclude.iter().any(|x| named(x, &attrs.resource)) {
        return Ok(None);
    }
    let invocation = if m.rules.is_empty() || m.rules.iter().any(|x| named(x, &attrs.resource)) {
        Some(attrs.resource.clone())
    } else if m.match_policy == MatchPolicy::Equivalent {
        m.rules.iter().find_map(|x| {
            attrs
                .equivalent_versions
                .iter()
                .find(|e| named(x, e))
                .cloned()
        })
    } else {
        None
    };
    let Some(resource) = invocation else {
        return Ok(None);
    };
    namespace_match?;
    object_match?;
    Ok(Some(Invocation { resource }))
}

/// A failed validation, or an expression that erred under
/// `failurePolicy: Fail`.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    /// The message (without kube's prefix).
    pub message: String,
    /// The `StatusReason` (`Invalid` when empty).
    pub reason: String,
}

fn bind(context: &mut cel::Context, name: &str, value: &Value) -> Result<(), String> {
    context.add_variable_from_value(name, cel::to_value(value).map_err(|e| e.to_string())?);
    Ok(())
}

/// Evaluates `policy` for one `params` object (`Null` without params):
/// its variables, its match conditions (which may use them), then every
/// validation; all the violations, in order. `None` when a match
/// condition is false (the policy does not apply). Expressions that err
/// are violations under `failurePolicy: Fail` and are skipped under
/// `Ignore`. Pure.
pub fn evaluate(
    policy: &Policy,
    attrs: &Attributes,
    invocation: &Invocation,
    params: &Value,
    namespace_object: &Value,
) -> Option<Vec<Violation>> {
    let mut violations = Vec::new();
    // An expression that errs: a violation under `Fail`, nothing under
    // `Ignore`.
    let failed = |violations: &mut Vec<Violation>, message: String| {
        if !policy.ignore_failures {
            violations.push(Violation {
                message,
                reason: String::new(),
            });
        }
    };
    let request = matching::request_variable(attrs, invocation);
    let mut context = cel::Context::default();
    let bound = bind(
        &mut context,
        "object",
        attrs.object.as_ref().unwrap_or(&Value::Null),
    )
    .and_then(|()| {
        bind(
            &mut context,
            "oldObject",
            attrs.old_object.as_ref().unwrap_or(&Value::Null),
        )
    })
    .and_then(|()| bind(&mut context, "request", &request))
    .and_then(|()| bind(&mut context, "params", params))
    // kube leaves `namespaceObject` null in match conditions; it is
    // bound for the validations below.
    .and_then(|()| bind(&mut context, "namespaceObject", &Value::Null));
    if let Err(e) = bound {
        failed(&mut violations, e);
        return Some(violations);
    }
    // Variables in order, each seeing the earlier ones.
    let mut variables: std::collections::HashMap<String, cel::Value> = Default::default();
    for (name, expr) in &policy.variables {
        context.add_variable_from_value("variables", variables.clone());
        match expr.eval(&context) {
            Ok(v) => {
                variables.insert(name.clone(), v);
            }
            Err(e) => {
                failed(
                    &mut violations,
                    format!("composited variable {name:?} fails to evaluate: {e}"),
                );
                return Some(violations);
            }
        }
    }
    context.add_variable_from_value("variables", variables);
    match matching::evaluate_conditions_in(&policy.match_conditions, &context) {
        ConditionOutcome::Match => {}
        ConditionOutcome::NoMatch => return None,
        ConditionOutcome::Error(e) => {
            failed(&mut violations, e);
            return Some(violations);
        }
    }
    if let Err(e) = bind(&mut context, "namespaceObject", namespace_object) {
        failed(&mut violations, e);
        return Some(violations);
    }
    for v in &policy.validations {
        match v.expression.eval(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => violations.push(Violation {
                message: violation_message(v, &context),
                reason: v.reason.clone(),
            }),
            Ok(_) => failed(
                &mut violations,
                format!(
                    "expression '{}' resulted in error: must evaluate to bool",
                    v.expression.source
                ),
            ),
            Err(e) => failed(
                &mut violations,
                format!(
                    "expression '{}' resulted in error: {e}",
                    v.expression.source
                ),
            ),
        }
    }
    Some(violations)
}

/// A failed validation's message: its `messageExpression` when that gives
/// a usable string, else `message`, else `failed expression: <expr>`
/// (`validator.go`).
fn violation_message(v: &Validation, context: &cel::Context) -> String {
    if let Some(expr) = &v.message_expression
        && let Ok(cel::Value::String(s)) = expr.eval(context)
    {
        let s = s.trim();
        if !s.is_empty() && s.len() <= MAX_MESSAGE_BYTES && !s.contains('\n') {
            return s.to_string();
        }
    }
    match v.message.trim() {
        "" => format!("failed expression: {}", v.expression.source.trim()),
        m => m.to_string(),
    }
}

/// The HTTP code of a violation's reason (`reasonToCode`).
pub fn reason_code(reason: &str) -> u16 {
    match reason {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    }
}

/// The policies and bindings, followed from the store.
#[derive(Default)]
pub struct PolicyCache {
    policies: Followed<BTreeMap<String, Arc<Policy>>>,
    bindings: Followed<BTreeMap<String, Arc<Binding>>>,
}

fn prefix(resource: &str) -> String {
    crate::registry::lookup("admissionregistration.k8s.io", "v1", resource)
        .expect("admission policies registered")
        .key(None, "")
}

type Pairs = Arc<[(Arc<Binding>, Arc<Policy>)]>;

impl PolicyCache {
    /// Every binding with its policy, as of every acknowledged write.
    ///
    /// # Errors
    /// `500` when the store cannot be listed or watched.
    pub async fn current(&self, store: &dyn Storage) -> ApiResult<Pairs> {
        fn fold<T>(
            map: &mut BTreeMap<String, Arc<T>>,
            key: &str,
            value: Option<&[u8]>,
            of: fn(&Value) -> T,
        ) {
            match value.and_then(|v| serde_json::from_slice::<Value>(v).ok()) {
                Some(obj) => {
                    map.insert(key.to_string(), Arc::new(of(&obj)));
                }
                None => {
                    map.remove(key);
                }
            }
        }
        let bindings: Vec<Arc<Binding>> = self
            .bindings
            .current(
                store,
                &prefix("validatingadmissionpolicybindings"),
                |m, k, v| fold(m, k, v, binding_of),
                |m, _| m.values().cloned().collect(),
            )
            .await?;
        if bindings.is_empty() {
            return Ok(Arc::new([]));
        }
        let policies: BTreeMap<String, Arc<Policy>> = self
            .policies
            .current(
                store,
                &prefix("validatingadmissionpolicies"),
                |m, k, v| fold(m, k, v, policy_of),
                |m, _| m.values().map(|p| (p.name.clone(), p.clone())).collect(),
            )
            .await?;
        Ok(bindings
            .into_iter()
            .filter_map(|b| Some((b.clone(), policies.get(&b.policy_name)?.clone())))
            .collect())
    }
}

impl Api {
    /// The resource served for `kind` at `api_version` (`group/version`,
    /// or `version` for core): a built-in one, else a custom resource's.
    pub(crate) async fn resolve_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Option<crate::registry::Def> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        if let Some(d) = crate::registry::RESOURCES
            .iter()
            .find(|d| d.group == group && d.version == version && d.kind == kind)
        {
            return Some(crate::registry::Def::Builtin(d));
        }
        let customs = self.custom_resources().await.ok()?;
        customs
            .iter()
            .find(|c| c.def.group == group && c.def.version == version && c.def.kind == kind)
            .cloned()
            .map(crate::registry::Def::Custom)
    }

    /// ValidatingAdmissionPolicy for a request ([`crate::webhook::Request`])
    /// with its objects.
    ///
    /// # Errors
    /// A denying violation (module docs); `404` when a namespaced
    /// request's namespace is missing and a selector needs its labels.
    pub(crate) async fn admit_policies(
        &self,
        request: &crate::webhook::Request<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let def: &ResourceDef = &request.target.def;
        if def.group == "admissionregistration.k8s.io"
            && crate::webhook::EXEMPT_KINDS.contains(&def.kind)
        {
            return Ok(());
        }
        let pairs = self.admission_policies.current(&*self.store).await?;
        if pairs.is_empty() {
            return Ok(());
        }
        let attrs = self
            .attributes(request, object.cloned(), old.cloned())
            .await?;
        let stored_namespace = match matching::namespace_labels(&attrs) {
            NamespaceLabels::Stored(ns) => self.stored_namespace(ns).await?,
            _ => None,
        };
        let labels = stored_namespace
            .as_ref()
            .and_then(|n| n.pointer("/metadata/labels"));
        // `namespaceObject` is null for cluster-scoped kinds, Namespaces too.
        let namespace_object = stored_namespace.as_ref().filter(|_| attrs.namespaced);
        let gr = GroupResource::new(&attrs.resource.group, &attrs.resource.resource);
        let mut denial = None;
        for (binding, policy) in pairs.iter() {
            let Some(constraints) = &policy.match_constraints else {
                continue;
            };
            // A selector that cannot be read is a configuration error:
            // the failure policy decides.
            let matched = matches(constraints, &attrs, labels)
                .map_err(|e| format!("failed to configure policy: {e}"))
                .and_then(|m| match (m, &binding.match_resources) {
                    (Some(inv), Some(r)) => Ok(matches(r, &attrs, labels)
                        .map_err(|e| format!("failed to configure binding: {e}"))?
                        .map(|_| inv)),
                    (m, None) => Ok(m),
                    (None, _) => Ok(None),
                });
            let invocation = match matched {
                Ok(Some(inv)) => inv,
                Ok(None) => continue,
                Err(_) if policy.ignore_failures => continue,
                Err(why) => {
                    denial.get_or_insert_with(|| deny(&gr, &attrs, policy, binding, &why, ""));
                    continue;
                }
            };
            let params = match self.params(policy, binding, &attrs).await {
                Ok(p) => p,
                Err(why) if policy.ignore_failures => {
                    tracing::warn!(policy = %policy.name, binding = %binding.name, error = %why, "admission policy skipped");
                    continue;
                }
                Err(why) => {
                    denial.get_or_insert_with(|| deny(&gr, &attrs, policy, binding, &why, ""));
                    continue;
                }
            };
            for param in params.iter().take(MAX_PARAMS) {
                let violations = evaluate(
                    policy,
                    &attrs,
                    &invocation,
                    param,
                    namespace_object.unwrap_or(&Value::Null),
                );
                for Violation { message, reason } in violations.unwrap_or_default() {
                    if binding.warn {
                        crate::warning::add(format!(
                            "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {message}",
                            policy.name, binding.name
                        ));
                    }
                    if binding.deny && denial.is_none() {
                        denial = Some(deny(&gr, &attrs, policy, binding, &message, &reason));
                    }
                }
            }
        }
        // Every binding is evaluated (its warnings given); the first
        // denial answers.
        denial.map_or(Ok(()), Err)
    }

    /// The params of `binding` for `attrs`: `[null]` without `paramKind`
    /// or `paramRef`, else the objects it names (`CollectParams`).
    async fn params(
        &self,
        policy: &Policy,
        binding: &Binding,
        attrs: &Attributes,
    ) -> Result<Vec<Value>, String> {
        let (Some((api_version, kind)), Some(param_ref)) = (&policy.param_kind, &binding.param_ref)
        else {
            return Ok(vec![Value::Null]);
        };
        let def = self.resolve_kind(api_version, kind).await.ok_or_else(|| {
                format!("failed to configure policy: failed to find resource referenced by paramKind: '{api_version}, Kind={kind}'")
            })?;
        let namespace = if !def.namespaced {
            if !param_ref.namespace.is_empty() {
                return Err("failed to configure binding: paramRef.namespace must not be provided for a cluster-scoped `paramKind`".into());
            }
            None
        } else if !param_ref.namespace.is_empty() {
            Some(param_ref.namespace.as_str())
        } else if attrs.namespaced {
            Some(attrs.namespace.as_str())
        } else {
            return Err("failed to configure binding: cannot use namespaced paramRef in policy binding that matches cluster-scoped resources".into());
        };
        let found: Vec<Value> = if !param_ref.name.is_empty() {
            let key = def.key(namespace, &param_ref.name);
            match self.store.get(&key).await.map_err(|e| e.to_string())? {
                Some(kv) => vec![crate::rest::decode_as(&def, &kv).map_err(|e| e.message)?],
                None => Vec::new(),
            }
        } else {
            let selector = match &param_ref.selector {
                Some(Ok(s)) => s.clone(),
                Some(Err(e)) => return Err(format!("failed to configure binding: {e}")),
                None => LabelSelector::everything(),
            };
            self.list_prefix(&def, &def.key(namespace, ""))
                .await
                .map_err(|e| e.message)?
                .iter()
                .filter_map(|kv| crate::rest::decode_as(&def, kv).ok())
                .filter(|o| selector.matches_json(o.pointer("/metadata/labels")))
                .collect()
        };
        if found.is_empty() && !param_ref.allow_missing {
            return Err(
                "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
                    .into(),
            );
        }
        Ok(found)
    }
}

/// The denial of a violation (`admission.NewForbidden` with the
/// violation's reason and code).
fn deny(
    gr: &GroupResource,
    attrs: &Attributes,
    policy: &Policy,
    binding: &Binding,
    message: &str,
    reason: &str,
) -> ApiError {
    let why = format!(
        "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {message}",
        policy.name, binding.name
    );
    let name = match attrs.name.as_str() {
        "" => attrs
            .object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/generateName"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("Unknown"),
        n => n,
    };
    let reason = if reason.is_empty() { "Invalid" } else { reason };
    let forbidden = ApiError::forbidden(gr, name, &why);
    ApiError::from_parts(
        reason_code(reason),
        reason.to_string(),
        forbidden.message,
        forbidden.details.map(|mut d| {
            d["causes"] = json!([{"message": why}]);
            d
        }),
    )
}

/// Sets the v1 defaults on a policy being stored (`failurePolicy: Fail`,
/// `matchPolicy: Equivalent`, empty selectors, rule scope `*`). Pure.
pub fn set_policy_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("failurePolicy").or_insert_with(|| json!("Fail"));
    if let Some(m) = spec.get_mut("matchConstraints") {
        set_match_defaults(m);
    }
}

/// Sets the v1 defaults of a binding's `matchResources`. Pure.
pub fn set_binding_defaults(obj: &mut Value) {
    if let Some(m) = obj.pointer_mut("/spec/matchResources") {
        set_match_defaults(m);
    }
}

fn set_match_defaults(m: &mut Value) {
    let Some(m) = m.as_object_mut() else {
        return;
    };
    m.entry("matchPolicy")
        .or_insert_with(|| json!("Equivalent"));
    m.entry("namespaceSelector").or_insert_with(|| json!({}));
    m.entry("objectSelector").or_insert_with(|| json!({}));
    for key in ["resourceRules", "excludeResourceRules"] {
        if let Some(rules) = m.get_mut(key).and_then(Value::as_array_mut) {
            for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                r.entry("scope").or_insert_with(|| json!("*"));
            }
        }
    }
}

/// Validation of a policy being stored, with kube's messages
/// (`ValidateValidatingAdmissionPolicy`). Pure.
pub fn validate_policy(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let count = |k: &str| spec.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    if count("validations") == 0 && count("auditAnnotations") == 0 {
        errs.push(FieldError::required(
            "spec.validations",
            "validations or auditAnnotations must contain at least one item",
        ));
    }
    match spec.get("matchConstraints").filter(|m| m.is_object()) {
        None => errs.push(FieldError::required("spec.matchConstraints", "")),
        Some(m)
            if m.get("resourceRules")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty) =>
        {
            errs.push(FieldError::required(
                "spec.matchConstraints.resourceRules",
                "",
            ));
        }
        Some(_) => {}
    }
    if let Some(p) = spec.get("failurePolicy").filter(|v| !v.is_null())
        && !matches!(p.as_str(), Some("Fail" | "Ignore"))
    {
        errs.push(FieldError::not_supported(
            "spec.failurePolicy",
            p,
            &["Fail", "Ignore"],
        ));
    }
    // Bounds on what one request evaluates (kube bounds it by CEL cost;
    // see the module docs).
    for key in ["validations", "variables", "matchConditions"] {
        if count(key) > MAX_EXPRESSIONS {
            errs.push(FieldError {
                reason: "FieldValueTooMany",
                field: format!("spec.{key}"),
                message: format!(
                    "Too many: {}: must have at most {MAX_EXPRESSIONS} items",
                    count(key)
                ),
            });
        }
        for (i, item) in spec
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for field in ["expression", "messageExpression"] {
                if let Some(e) = item.get(field).and_then(Value::as_str)
                    && e.len() > MAX_EXPRESSION_BYTES
                {
                    errs.push(FieldError {
                        reason: "FieldValueTooLong",
                        field: format!("spec.{key}[{i}].{field}"),
                        message: format!(
                            "Too long: may not be more than {MAX_EXPRESSION_BYTES} bytes"
                        ),
                    });
                }
            }
        }
    }
    if let Some(vs) = spec.get("validations").and_then(Value::as_array) {
        for (i, v) in vs.iter().enumerate() {
            let path = format!("spec.validations[{i}]");
            match v.get("expression").and_then(Value::as_str) {
                None | Some("") => errs.push(FieldError::required(
                    format!("{path}.expression"),
                    "expression is not specified",
                )),
                Some(e) => {
                    if let Err(err) = cel::Program::compile(e) {
                        errs.push(FieldError::invalid(
                            format!("{path}.expression"),
                            &json!(e),
                            &format!("compilation failed: {err}"),
                        ));
                    }
                }
            }
            if let Some(m) = v.get("message").and_then(Value::as_str) {
                if m.trim().is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{path}.message"),
                        &json!(m),
                        "message must be non-empty if specified",
                    ));
                } else if m.contains('\n') {
                    errs.push(FieldError::invalid(
                        format!("{path}.message"),
                        &json!(m),
                        "message must not contain line breaks",
                    ));
                }
            }
            if let Some(r) = v.get("reason").filter(|r| !r.is_null())
                && !matches!(
                    r.as_str(),
                    Some("Forbidden" | "Invalid" | "RequestEntityTooLarge")
                )
            {
                errs.push(FieldError::not_supported(
                    format!("{path}.reason"),
                    r,
                    &["Forbidden", "Invalid", "RequestEntityTooLarge"],
                ));
            }
        }
    }
    errs
}

/// Validation of a binding being stored, with kube's messages
/// (`ValidateValidatingAdmissionPolicyBinding`). Pure.
pub fn validate_binding(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if spec
        .get("policyName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        errs.push(FieldError::required("spec.policyName", ""));
    }
    let actions = strings(spec.get("validationActions"));
    if actions.is_empty() {
        errs.push(FieldError::required(
            "spec.validationActions",
            "at least one validation action is required",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, a) in actions.iter().enumerate() {
        if !matches!(a.as_str(), "Audit" | "Deny" | "Warn") {
            errs.push(FieldError::not_supported(
                format!("spec.validationActions[{i}]"),
                &json!(a),
                &["Audit", "Deny", "Warn"],
            ));
        }
        if !seen.insert(a) {
            errs.push(FieldError::duplicate(
                format!("spec.validationActions[{i}]"),
                &json!(a),
            ));
        }
    }
    if seen.contains(&"Deny".to_string()) && seen.contains(&"Warn".to_string()) {
        errs.push(FieldError::invalid(
            "spec.validationActions",
            &json!(actions),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    if let Some(p) = spec.get("paramRef").filter(|p| p.is_object()) {
        let has = |k: &str| p.get(k).is_some_and(|v| !v.is_null() && v != "");
        match (has("name"), has("selector")) {
            (false, false) => errs.push(FieldError::required(
                "spec.paramRef",
                "one of name or selector must be specified",
            )),
            (true, true) => errs.push(FieldError::forbidden(
                "spec.paramRef",
                "name and selector are mutually exclusive",
            )),
            _ => {}
        }
        match p.get("parameterNotFoundAction").filter(|v| !v.is_null()) {
            None => errs.push(FieldError::required(
                "spec.paramRef.parameterNotFoundAction",
                "",
            )),
            Some(a) if !matches!(a.as_str(), Some("Allow" | "Deny")) => {
                errs.push(FieldError::not_supported(
                    "spec.paramRef.parameterNotFoundAction",
                    a,
                    &["Allow", "Deny"],
                ));
            }
            Some(_) => {}
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Identity;
    use crate::webhook::matching::{Gvr, Operation};

    fn deployments() -> Gvr {
        Gvr {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            ..Default::default()
        }
    }

    fn attrs(replicas: i64) -> Attributes {
        Attributes {
            operation: Operation::Create,
            resource: deployments(),
            subresource: String::new(),
            namespaced: true,
            namespace: "team".into(),
            name: "web".into(),
            object: Some(
                json!({"metadata": {"name": "web", "labels": {"env": "prod"}}, "spec": {"replicas": replicas}}),
            ),
            old_object: None,
            dry_run: false,
            options: Value::Null,
            user: Identity::default(),
            equivalent_versions: Vec::new(),
        }
    }

    fn policy(spec: Value) -> Policy {
        policy_of(&json!({"metadata": {"name": "replicas"}, "spec": spec}))
    }

    fn decide(p: &Policy, a: &Attributes, params: Value) -> Option<Vec<Violation>> {
        let inv = Invocation {
            resource: a.resource.clone(),
        };
        evaluate(
            p,
            a,
            &inv,
            &params,
            &json!({"metadata": {"name": "team", "labels": {"tier": "gold"}}}),
        )
    }

    fn violation(message: &str, reason: &str) -> Option<Vec<Violation>> {
        Some(vec![Violation {
            message: message.into(),
            reason: reason.into(),
        }])
    }

    #[test]
    fn validations_decide_with_their_messages() {
        let p = policy(json!({
            "variables": [{"name": "r", "expression": "object.spec.replicas"}],
            "validations": [
                {"expression": "variables.r <= 5", "messageExpression": "'replicas must be at most 5, got ' + string(variables.r)", "reason": "Forbidden"},
                {"expression": "variables.r != 4", "message": "not four"},
                {"expression": "variables.r != 3"},
                {"expression": "namespaceObject.metadata.labels.tier == 'gold' && params == null"},
            ],
        }));
        assert_eq!(decide(&p, &attrs(2), Value::Null), Some(vec![]));
        assert_eq!(
            decide(&p, &attrs(7), Value::Null),
            violation("replicas must be at most 5, got 7", "Forbidden")
        );
        assert_eq!(
            decide(&p, &attrs(4), Value::Null),
            violation("not four", "")
        );
        assert_eq!(
            decide(&p, &attrs(3), Value::Null),
            violation("failed expression: variables.r != 3", "")
        );
        assert_eq!(
            decide(&p, &attrs(2), json!({"x": 1})),
            violation(
                "failed expression: namespaceObject.metadata.labels.tier == 'gold' && params == null",
                ""
            )
        );
    }

    #[test]
    fn params_and_match_conditions_feed_the_expressions() {
        let p = policy(json!({
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConditions": [{"name": "prod", "expression": "object.metadata.labels.env == 'prod'"}],
            "validations": [{"expression": "object.spec.replicas <= int(params.data.max)"}],
        }));
        let params = json!({"data": {"max": "3"}});
        assert_eq!(decide(&p, &attrs(3), params.clone()), Some(vec![]));
        assert!(matches!(
            decide(&p, &attrs(4), params.clone()),
            Some(v) if v.len() == 1
        ));
        let mut staging = attrs(9);
        staging.object.as_mut().unwrap()["metadata"]["labels"]["env"] = json!("staging");
        assert_eq!(decide(&p, &staging, params), None);
    }

    #[test]
    fn errors_follow_the_failure_policy() {
        let spec = json!({"validations": [{"expression": "object.spec.nope > 1"}, {"expression": "'text'"}]});
        let fail = policy(spec.clone());
        let decided = decide(&fail, &attrs(1), Value::Null);
        let Some([Violation { message, reason }, _]) = decided.as_deref() else {
            panic!("an error under Fail denies");
        };
        assert!(
            message.starts_with("expression 'object.spec.nope > 1' resulted in error: "),
            "{message}"
        );
        assert_eq!(reason, "");
        let mut ignore_spec = spec;
        ignore_spec["failurePolicy"] = json!("Ignore");
        assert_eq!(
            decide(&policy(ignore_spec), &attrs(1), Value::Null),
            Some(vec![])
        );
        let not_bool = policy(json!({"validations": [{"expression": "'text'"}]}));
        assert_eq!(
            decide(&not_bool, &attrs(1), Value::Null),
            violation(
                "expression ''text'' resulted in error: must evaluate to bool",
                ""
            )
        );
    }

    #[test]
    fn match_resources_use_rules_names_exclusions_and_selectors() {
        let m = |v: Value| match_resources(Some(&v)).unwrap();
        let rules = json!([{"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}]);
        let a = attrs(1);
        assert!(
            matches(&m(json!({"resourceRules": rules})), &a, None)
                .unwrap()
                .is_some()
        );
        let named = json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "resourceNames": ["other"]}]);
        assert!(
            matches(&m(json!({"resourceRules": named})), &a, None)
                .unwrap()
                .is_none()
        );
        assert!(
            matches(
                &m(json!({"resourceRules": rules, "excludeResourceRules": rules})),
                &a,
                None
            )
            .unwrap()
            .is_none()
        );
        let by_ns = m(
            json!({"resourceRules": rules, "namespaceSelector": {"matchLabels": {"tier": "gold"}}}),
        );
        assert!(
            matches(&by_ns, &a, Some(&json!({"tier": "gold"})))
                .unwrap()
                .is_some()
        );
        assert!(
            matches(&by_ns, &a, Some(&json!({"tier": "bronze"})))
                .unwrap()
                .is_none()
        );
        let by_object =
            m(json!({"resourceRules": rules, "objectSelector": {"matchLabels": {"env": "dev"}}}));
        assert!(matches(&by_object, &a, None).unwrap().is_none());
    }

    #[test]
    fn denials_read_as_kubes() {
        let p = policy(json!({}));
        let b = binding_of(
            &json!({"metadata": {"name": "b"}, "spec": {"policyName": "replicas", "validationActions": ["Deny"]}}),
        );
        let gr = GroupResource::new("apps", "deployments");
        let e = deny(&gr, &attrs(1), &p, &b, "too many", "");
        assert_eq!(e.code, 422);
        assert_eq!(e.reason, "Invalid");
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'replicas' with binding 'b' denied request: too many"
        );
        assert_eq!(deny(&gr, &attrs(1), &p, &b, "x", "Forbidden").code, 403);
    }

    #[test]
    fn policies_and_bindings_are_validated_with_kubes_messages() {
        let errs = |v: Vec<FieldError>| -> Vec<String> {
            v.into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect()
        };
        let p = errs(validate_policy(
            &json!({"spec": {"validations": [{"expression": "1 +", "reason": "Teapot", "message": "a\nb"}]}}),
        ));
        for expected in [
            "spec.matchConstraints: Required value",
            "spec.validations[0].message: Invalid value: \"a\\nb\": message must not contain line breaks",
            "spec.validations[0].reason: Unsupported value: \"Teapot\": supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\"",
        ] {
            assert!(
                p.iter().any(|e| e == expected),
                "missing {expected:?} in {p:#?}"
            );
        }
        assert!(p.iter().any(|e| e.starts_with(
            "spec.validations[0].expression: Invalid value: \"1 +\": compilation failed: "
        )));
        let empty = errs(validate_policy(
            &json!({"spec": {"matchConstraints": {"resourceRules": [{}]}}}),
        ));
        assert_eq!(
            empty,
            [
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item"
            ]
        );
        let b = errs(validate_binding(
            &json!({"spec": {"validationActions": ["Deny", "Warn", "Deny"], "paramRef": {"name": "a", "selector": {}}}}),
        ));
        for expected in [
            "spec.policyName: Required value",
            "spec.validationActions[2]: Duplicate value: \"Deny\"",
            "spec.validationActions: Invalid value: [\"Deny\",\"Warn\",\"Deny\"]: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            "spec.paramRef: Forbidden: name and selector are mutually exclusive",
            "spec.paramRef.parameterNotFoundAction: Required value",
        ] {
            assert!(
                b.iter().any(|e| e == expected),
                "missing {expected:?} in {b:#?}"
            );
        }
    }
}
