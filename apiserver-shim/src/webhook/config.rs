//! From stored `MutatingWebhookConfiguration` and
//! `ValidatingWebhookConfiguration` objects (admissionregistration.k8s.io/v1)
//! to the webhooks admission calls, in the order kube-apiserver calls them:
//! configurations sorted by name, webhooks in their configuration's order
//! (k8s.io/apiserver pkg/admission/plugin/webhook/configuration). Fields
//! are read with the v1 defaults (`failurePolicy: Fail`, `matchPolicy:
//! Equivalent`, empty selectors, `timeoutSeconds: 10`, `reinvocationPolicy:
//! Never`, rule `scope: "*"`, service port 443), so an object stored without
//! them behaves as the defaulted one would. Pure: no I/O.

use super::matching::MatchCondition;
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;
use vkube_core::field::FieldError;
use vkube_core::labels::LabelSelector as Selector;

/// Which admission phase a webhook belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// MutatingAdmissionWebhook: called one after another, may patch.
    Mutating,
    /// ValidatingAdmissionWebhook: called after validation, may only deny.
    Validating,
}

/// One `rules[]` entry (`RuleWithOperations`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `*`.
    pub operations: Vec<String>,
    /// API groups; `""` is the core group, `*` any.
    pub api_groups: Vec<String>,
    /// API versions; `*` any.
    pub api_versions: Vec<String>,
    /// `resource`, `resource/subresource`, `*`, `*/*`, `resource/*`, `*/sub`.
    pub resources: Vec<String>,
    /// `Cluster`, `Namespaced` or `*`.
    pub scope: String,
}

/// `failurePolicy`: what a failed call does to the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The request fails (the default).
    Fail,
    /// The webhook is skipped.
    Ignore,
}

/// `matchPolicy`: whether rules also match other versions of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchPolicy {
    /// Only the request's own group-version-resource.
    Exact,
    /// Also its equivalent versions (the default).
    Equivalent,
}

/// Where a webhook is reached (`clientConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientConfig {
    /// `clientConfig.url`: an `https://` URL, called as given.
    Url(String),
    /// `clientConfig.service`: a Service of the cluster.
    Service {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
        /// URL path, `/` when unset.
        path: String,
        /// The Service port (not the target port), 443 when unset.
        port: u16,
    },
}

/// One webhook of a configuration, as admission uses it.
pub struct Webhook {
    /// The webhook's `name` (fully qualified, e.g. `pods.example.com`).
    pub name: String,
    /// The configuration's `metadata.name`.
    pub configuration: String,
    /// Mutating or validating.
    pub phase: Phase,
    /// Where to send the AdmissionReview.
    pub client_config: Option<ClientConfig>,
    /// `clientConfig.caBundle`, decoded (PEM); empty: the system roots.
    pub ca_bundle: Vec<u8>,
    /// `rules`.
    pub rules: Vec<Rule>,
    /// `failurePolicy`.
    pub failure_policy: FailurePolicy,
    /// `matchPolicy`.
    pub match_policy: MatchPolicy,
    /// `namespaceSelector` (everything when unset).
    pub namespace_selector: Result<Selector, String>,
    /// `objectSelector` (everything when unset).
    pub object_selector: Result<Selector, String>,
    /// `sideEffects` is `None` or `NoneOnDryRun`: the webhook may be called
    /// for a dry-run request.
    pub no_side_effects_on_dry_run: bool,
    /// `timeoutSeconds` (10 when unset).
    pub timeout: Duration,
    /// `reinvocationPolicy: IfNeeded` (mutating webhooks only).
    pub reinvoke: bool,
    /// `admissionReviewVersions` includes `v1`, the version this server
    /// speaks.
    pub accepts_v1: bool,
    /// `matchConditions`, compiled.
    pub match_conditions: Vec<MatchCondition>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("configuration", &self.configuration)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// Default `timeoutSeconds` (admissionregistration/v1 defaults).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

/// The strings of a JSON array (others skipped); empty when absent.
pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A `metav1.LabelSelector`; everything when absent or `null`.
pub(crate) fn selector(v: Option<&Value>) -> Result<Selector, String> {
    match v {
        None | Some(Value::Null) => Ok(Selector::everything()),
        Some(s) => Selector::from_label_selector_json(s).map_err(|e| e.to_string()),
    }
}

/// A `rules[]` entry (`RuleWithOperations`), scope `*` when unset.
pub(crate) fn rule(v: &Value) -> Rule {
    Rule {
        operations: strings(v.get("operations")),
        api_groups: strings(v.get("apiGroups")),
        api_versions: strings(v.get("apiVersions")),
        resources: strings(v.get("resources")),
        scope: v
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("*")
            .to_string(),
    }
}

fn client_config(client: &Value) -> Option<ClientConfig> {
    if let Some(url) = client.get("url").and_then(Value::as_str) {
        return Some(ClientConfig::Url(url.to_string()));
    }
    let svc = client.get("service")?;
    let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
    Some(ClientConfig::Service {
        namespace: svc.get("namespace")?.as_str()?.to_string(),
        name: svc.get("name")?.as_str()?.to_string(),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        port: svc
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(443),
    })
}

/// The webhooks of one stored configuration, in its order. Entries that
/// cannot be read (validation keeps them out; an object stored before it
/// existed may have them) keep their name and fail when called, as a
/// webhook whose client cannot be built does upstream.
pub fn webhooks_of(configuration: &Value, phase: Phase) -> Vec<Webhook> {
    let config_name = configuration
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(items) = configuration.get("webhooks").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|w| {
            let client = w.get("clientConfig").cloned().unwrap_or(Value::Null);
            let ca_bundle = client
                .get("caBundle")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .unwrap_or_default();
            let side_effects = w.get("sideEffects").and_then(Value::as_str);
            Webhook {
                name: w
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                configuration: config_name.to_string(),
                phase,
                client_config: client_config(&client),
                ca_bundle,
                rules: w
                    .get("rules")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().map(rule).collect())
                    .unwrap_or_default(),
                failure_policy: match w.get("failurePolicy").and_then(Value::as_str) {
                    Some("Ignore") => FailurePolicy::Ignore,
                    _ => FailurePolicy::Fail,
                },
                match_policy: match w.get("matchPolicy").and_then(Value::as_str) {
                    Some("Exact") => MatchPolicy::Exact,
                    _ => MatchPolicy::Equivalent,
                },
                namespace_selector: selector(w.get("namespaceSelector")),
                object_selector: selector(w.get("objectSelector")),
                no_side_effects_on_dry_run: matches!(side_effects, Some("None" | "NoneOnDryRun")),
                timeout: Duration::from_secs(
                    w.get("timeoutSeconds")
                        .and_then(Value::as_u64)
                        .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
                        .clamp(1, 30),
                ),
                reinvoke: phase == Phase::Mutating
                    && w.get("reinvocationPolicy").and_then(Value::as_str) == Some("IfNeeded"),
                accepts_v1: strings(w.get("admissionReviewVersions"))
                    .iter()
                    .any(|v| v == "v1"),
                match_conditions: w
                    .get("matchConditions")
                    .and_then(Value::as_array)
                    .map(|conds| conds.iter().map(MatchCondition::compile).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Sets the v1 defaults on a configuration being stored
/// (`SetDefaults_ValidatingWebhook`, `SetDefaults_MutatingWebhook`,
/// `SetDefaults_Rule`, `SetDefaults_ServiceReference` in
/// k8s.io/kubernetes pkg/apis/admissionregistration/v1/defaults.go).
/// Tolerates malformed input: only objects are touched.
pub fn set_defaults(configuration: &mut Value, phase: Phase) {
    let Some(items) = configuration
        .get_mut("webhooks")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for w in items.iter_mut().filter_map(Value::as_object_mut) {
        let mut fill = |key: &str, v: Value| {
            if w.get(key).is_none_or(Value::is_null) {
                w.insert(key.to_string(), v);
            }
        };
        fill("failurePolicy", "Fail".into());
        fill("matchPolicy", "Equivalent".into());
        fill("namespaceSelector", serde_json::json!({}));
        fill("objectSelector", serde_json::json!({}));
        fill("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS.into());
        if phase == Phase::Mutating {
            fill("reinvocationPolicy", "Never".into());
        }
        if let Some(rules) = w.get_mut("rules").and_then(Value::as_array_mut) {
            for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                if r.get("scope").is_none_or(Value::is_null) {
                    r.insert("scope".into(), "*".into());
                }
            }
        }
        if let Some(svc) = w
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
            && svc.get("port").is_none_or(Value::is_null)
        {
            svc.insert("port".into(), 443.into());
        }
    }
}

/// Most `matchConditions` a webhook may have.
const MAX_MATCH_CONDITIONS: usize = 64;

fn one_of(errs: &mut Vec<FieldError>, w: &Value, key: &str, path: &str, allowed: &[&str]) {
    if let Some(v) = w.get(key).filter(|v| !v.is_null())
        && !v.as_str().is_some_and(|s| allowed.contains(&s))
    {
        errs.push(FieldError::not_supported(
            format!("{path}.{key}"),
            v,
            allowed,
        ));
    }
}

fn validate_rule(errs: &mut Vec<FieldError>, rule: &Value, path: &str) {
    let list = |key: &str| -> Vec<String> { strings(rule.get(key)) };
    for (key, what) in [
        ("operations", "operations"),
        ("apiGroups", "groups"),
        ("apiVersions", "versions"),
        ("resources", "resources"),
    ] {
        let items = list(key);
        if items.is_empty() {
            errs.push(FieldError::required(format!("{path}.{key}"), ""));
        } else if items.len() > 1 && items.iter().any(|i| i == "*") {
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(items),
                &format!("if '*' is present, must not specify other {what}"),
            ));
        }
    }
    for (j, op) in list("operations").iter().enumerate() {
        if !["*", "CREATE", "UPDATE", "DELETE", "CONNECT"].contains(&op.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{path}.operations[{j}]"),
                &json!(op),
                &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"],
            ));
        }
    }
    for (j, v) in list("apiVersions").iter().enumerate() {
        if v.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.apiVersions[{j}]"),
                "version must not be empty",
            ));
        }
    }
    for (j, r) in list("resources").iter().enumerate() {
        if r.is_empty() {
            errs.push(FieldError::required(format!("{path}.resources[{j}]"), ""));
        } else if r.starts_with('/') || r.matches('/').count() > 1 {
            errs.push(FieldError::invalid(
                format!("{path}.resources[{j}]"),
                &json!(r),
                "must be of the form 'resource' or 'resource/subresource'",
            ));
        }
    }
    one_of(errs, rule, "scope", path, &["Cluster", "Namespaced", "*"]);
}

fn validate_client_config(errs: &mut Vec<FieldError>, client: &Value, path: &str) {
    let url = client.get("url").filter(|v| !v.is_null());
    let service = client.get("service").filter(|v| !v.is_null());
    match (url, service) {
        (Some(_), Some(_)) | (None, None) => {
            errs.push(FieldError::required(
                path,
                "exactly one of url or service is required",
            ));
        }
        (Some(url), None) => {
            let field = format!("{path}.url");
            let text = url.as_str().unwrap_or_default();
            let why = match text.parse::<http::Uri>() {
                Err(e) => Some(format!("host must be specified: {e}")),
                Ok(u) if u.scheme_str() != Some("https") => Some(
                    "'https' is the only allowed URL scheme; desired format: https://host[/path]"
                        .into(),
                ),
                Ok(u) if u.host().is_none_or(str::is_empty) => {
                    Some("host must be specified".into())
                }
                Ok(u) if u.query().is_some() => {
                    Some("query parameters are not permitted in the URL".into())
                }
                Ok(_) if text.contains('#') => {
                    Some("fragments are not permitted in the URL".into())
                }
                Ok(u) if u.authority().is_some_and(|a| a.as_str().contains('@')) => {
                    Some("user information is not permitted in the URL".into())
                }
                Ok(_) => None,
            };
            if let Some(why) = why {
                errs.push(FieldError::invalid(field, url, &why));
            }
        }
        (None, Some(svc)) => {
            let path = format!("{path}.service");
            for key in ["name", "namespace"] {
                if svc
                    .get(key)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errs.push(FieldError::required(
                        format!("{path}.{key}"),
                        &format!("service {key} is required"),
                    ));
                }
            }
            if let Some(p) = svc.get("path").and_then(Value::as_str)
                && !p.is_empty()
                && !p.starts_with('/')
            {
                errs.push(FieldError::invalid(
                    format!("{path}.path"),
                    &json!(p),
                    "must start with a '/'",
                ));
            }
            if let Some(port) = svc.get("port").filter(|p| !p.is_null())
                && !port.as_u64().is_some_and(|p| (1..=65535).contains(&p))
            {
                errs.push(FieldError::invalid(
                    format!("{path}.port"),
                    port,
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
        }
    }
}

fn validate_match_conditions(errs: &mut Vec<FieldError>, w: &Value, path: &str) {
    let Some(conditions) = w.get("matchConditions").and_then(Value::as_array) else {
        return;
    };
    if conditions.len() > MAX_MATCH_CONDITIONS {
        errs.push(FieldError {
            reason: "FieldValueTooMany",
            field: format!("{path}.matchConditions"),
            message: format!(
                "Too many: {}: must have at most {MAX_MATCH_CONDITIONS} items",
                conditions.len()
            ),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for (k, c) in conditions.iter().enumerate() {
        let cpath = format!("{path}.matchConditions[{k}]");
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(format!("{cpath}.name"), "")),
            Some(name) => {
                for m in vkube_core::validation::is_qualified_name(name) {
                    errs.push(FieldError::invalid(
                        format!("{cpath}.name"),
                        &json!(name),
                        &m,
                    ));
                }
                if !seen.insert(name) {
                    errs.push(FieldError::duplicate(format!("{cpath}.name"), &json!(name)));
                }
            }
        }
        match c.get("expression").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(format!("{cpath}.expression"), "")),
            Some(expr) => {
                if let Err(e) = cel::Program::compile(expr) {
                    errs.push(FieldError::invalid(
                        format!("{cpath}.expression"),
                        &json!(expr),
                        &format!("compilation failed: {e}"),
                    ));
                }
            }
        }
    }
}

/// Validation of a configuration being stored, with kube's messages
/// (`ValidateValidatingWebhookConfiguration` and
/// `ValidateMutatingWebhookConfiguration` in k8s.io/kubernetes
/// pkg/apis/admissionregistration/validation), after [`set_defaults`].
/// Pure.
pub fn validate(configuration: &Value, phase: Phase) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(items) = configuration.get("webhooks").and_then(Value::as_array) else {
        return errs;
    };
    let mut names = std::collections::HashSet::new();
    for (i, w) in items.iter().enumerate() {
        let path = format!("webhooks[{i}]");
        match w.get("name").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(format!("{path}.name"), "")),
            Some(name) => {
                let msgs = vkube_core::validation::is_dns1123_subdomain(name);
                for m in &msgs {
                    errs.push(FieldError::invalid(format!("{path}.name"), &json!(name), m));
                }
                if msgs.is_empty() && name.split('.').count() < 3 {
                    errs.push(FieldError::invalid(
                        format!("{path}.name"),
                        &json!(name),
                        "should be a domain with at least three segments separated by dots",
                    ));
                }
                if !names.insert(name) {
                    errs.push(FieldError::duplicate(format!("{path}.name"), &json!(name)));
                }
            }
        }
        if let Some(rules) = w.get("rules").and_then(Value::as_array) {
            for (j, r) in rules.iter().enumerate() {
                validate_rule(&mut errs, r, &format!("{path}.rules[{j}]"));
            }
        }
        one_of(&mut errs, w, "failurePolicy", &path, &["Fail", "Ignore"]);
        one_of(&mut errs, w, "matchPolicy", &path, &["Exact", "Equivalent"]);
        if phase == Phase::Mutating {
            one_of(
                &mut errs,
                w,
                "reinvocationPolicy",
                &path,
                &["Never", "IfNeeded"],
            );
        }
        match w.get("sideEffects").filter(|v| !v.is_null()) {
            None => errs.push(FieldError::required(
                format!("{path}.sideEffects"),
                "must specify one of None, NoneOnDryRun",
            )),
            Some(v) if !matches!(v.as_str(), Some("None" | "NoneOnDryRun")) => {
                errs.push(FieldError::not_supported(
                    format!("{path}.sideEffects"),
                    v,
                    &["None", "NoneOnDryRun"],
                ));
            }
            Some(_) => {}
        }
        let versions = strings(w.get("admissionReviewVersions"));
        if versions.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.admissionReviewVersions"),
                "must specify one of v1, v1beta1",
            ));
        } else if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
            errs.push(FieldError::invalid(
                format!("{path}.admissionReviewVersions"),
                &json!(versions),
                "must include at least one of v1, v1beta1",
            ));
        }
        if let Some(t) = w.get("timeoutSeconds").filter(|v| !v.is_null())
            && !t.as_i64().is_some_and(|t| (1..=30).contains(&t))
        {
            errs.push(FieldError::invalid(
                format!("{path}.timeoutSeconds"),
                t,
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
        validate_client_config(
            &mut errs,
            w.get("clientConfig").unwrap_or(&Value::Null),
            &format!("{path}.clientConfig"),
        );
        for key in ["namespaceSelector", "objectSelector"] {
            if let Some(Err(e)) = w
                .get(key)
                .filter(|v| !v.is_null())
                .map(Selector::from_label_selector_json)
            {
                errs.push(FieldError::invalid(
                    format!("{path}.{key}"),
                    &w[key],
                    &e.to_string(),
                ));
            }
        }
        validate_match_conditions(&mut errs, w, &path);
    }
    errs
}
