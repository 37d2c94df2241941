//! Dynamic admission: the MutatingAdmissionWebhook and
//! ValidatingAdmissionWebhook plugins of kube-apiserver
//! (k8s.io/apiserver pkg/admission/plugin/webhook), calling the webhooks
//! of the stored `MutatingWebhookConfiguration`s and
//! `ValidatingWebhookConfiguration`s on every matching request.
//!
//! Mutating webhooks run after the built-in mutating plugins and before
//! the kind's validation, one after another, each seeing the previous
//! one's patch; webhooks with `reinvocationPolicy: IfNeeded` run once more
//! when a later webhook changed the object. Validating webhooks run after
//! validation, all at once, before ResourceQuota. The configurations are
//! followed from the store the way the RBAC and CRD caches are, so a
//! request that follows a configuration write is admitted by it.
//!
//! A `service` reference names a Service of this cluster. The call goes to
//! one of its ready endpoints (kube-apiserver's endpoint routing): in a
//! virtual cluster these are the addresses of the tenant's pods on the
//! host, which the server (itself a host pod) reaches directly; the
//! certificate must name `<service>.<namespace>.svc`. `ExternalName`
//! Services are refused, as upstream's resolver refuses them, so a tenant
//! cannot point the server at an arbitrary host name.
//!
//! Not done here: audit annotations (the webhook's `auditAnnotations` and
//! kube's `mutation.webhook.admission.k8s.io/*` keys are not recorded) and
//! the `authorizer` variable of match conditions (a condition using it
//! errs, and the failure policy decides).

pub mod client;
pub mod config;
pub mod matching;
pub mod review;

#[cfg(test)]
mod tests;

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::request::Target;
use crate::rest::{Api, decode_stored};
use crate::store::{Followed, Storage};
use config::{ClientConfig, FailurePolicy, Phase, Webhook};
use matching::{Attributes, ConditionOutcome, Gvr, Invocation, NamespaceLabels, Operation};
use review::CallError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The kinds no webhook is called for, so that a broken webhook can always
/// be removed (`rules.IsExemptAdmissionConfigurationResource`).
pub(crate) const EXEMPT_KINDS: &[&str] = &[
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
];

/// The webhooks of one phase, keyed by configuration name (so iteration is
/// kube's call order), rebuilt into one list when a configuration changes.
#[derive(Default)]
struct Configurations {
    by_name: BTreeMap<String, Vec<Arc<Webhook>>>,
    ordered: Arc<[Arc<Webhook>]>,
}

/// The stored webhook configurations and the clients that call them.
#[derive(Default)]
pub struct WebhookCache {
    mutating: Followed<Configurations>,
    validating: Followed<Configurations>,
    clients: client::Clients,
}

fn prefix(phase: Phase) -> String {
    let resource = match phase {
        Phase::Mutating => "mutatingwebhookconfigurations",
        Phase::Validating => "validatingwebhookconfigurations",
    };
    let def = crate::registry::lookup("admissionregistration.k8s.io", "v1", resource)
        .expect("webhook configurations registered");
    def.key(None, "")
}

impl WebhookCache {
    /// The webhooks of `phase` in call order, as of every acknowledged
    /// configuration write.
    ///
    /// # Errors
    /// `500` when the store cannot be listed or watched.
    pub async fn current(
        &self,
        store: &dyn Storage,
        phase: Phase,
    ) -> ApiResult<Arc<[Arc<Webhook>]>> {
        let followed = match phase {
            Phase::Mutating => &self.mutating,
            Phase::Validating => &self.validating,
        };
        let prefix = prefix(phase);
        followed
            .current(
                store,
                &prefix,
                |state, key, value| {
                    let parsed = value.and_then(|v| serde_json::from_slice::<Value>(v).ok());
                    match parsed {
                        Some(obj) => {
                            let hooks = config::webhooks_of(&obj, phase)
                                .into_iter()
                                .map(Arc::new)
                                .collect();
                            state.by_name.insert(key.to_string(), hooks);
                        }
                        None => {
                            state.by_name.remove(key);
                        }
                    }
                },
                |state, changed| {
                    if changed {
                        state.ordered = state.by_name.values().flatten().cloned().collect();
                    }
                    state.ordered.clone()
                },
            )
            .await
    }
}

/// Which mutating webhooks run in which round, as kube's reinvocation
/// context decides (k8s.io/apiserver pkg/admission/plugin/webhook/mutating
/// `reinvocationcontext.go`): round 0 calls every matching webhook; when a
/// call changes the object, the `reinvocationPolicy: IfNeeded` webhooks
/// called before it are marked, and round 1 calls only those, once. Pure.
#[derive(Debug)]
pub struct Reinvocation {
    reinvoke: Vec<bool>,
    called: Vec<bool>,
    again: Vec<bool>,
}

impl Reinvocation {
    /// A plan for webhooks with these `reinvocationPolicy: IfNeeded` flags.
    pub fn new(reinvoke: impl Iterator<Item = bool>) -> Self {
        let reinvoke: Vec<bool> = reinvoke.collect();
        let n = reinvoke.len();
        Self {
            reinvoke,
            called: vec![false; n],
            again: vec![false; n],
        }
    }

    /// Whether webhook `i` is to be tried in `round` (0 or 1).
    pub fn runs(&self, round: usize, i: usize) -> bool {
        round == 0 || self.again.get(i).copied().unwrap_or(false)
    }

    /// Webhook `i` was called in `round`; `changed`: its patch changed the
    /// object.
    pub fn called(&mut self, round: usize, i: usize, changed: bool) {
        if let Some(c) = self.called.get_mut(i) {
            *c = true;
        }
        if round == 0 && changed {
            for j in 0..i.min(self.again.len()) {
                self.again[j] = self.called[j] && self.reinvoke[j];
            }
        }
    }

    /// Whether round 1 has anything to call.
    pub fn another_round(&self) -> bool {
        self.again.iter().any(|a| *a)
    }
}

/// What the REST layer tells admission about a request besides the
/// objects.
pub struct Request<'a> {
    /// The resource addressed.
    pub target: &'a Target,
    /// What the request does.
    pub operation: Operation,
    /// The object's name (`""` for a create with only `generateName`).
    pub name: &'a str,
    /// `dryRun=All`.
    pub dry_run: bool,
}

fn gvr_of(def: &ResourceDef) -> Gvr {
    Gvr {
        group: def.group.to_string(),
        version: def.version.to_string(),
        resource: def.resource.to_string(),
        kind: def.kind.to_string(),
        kind_api_version: String::new(),
    }
}

/// The options object admission sees (`CreateOptions`, …), with the
/// request's `dryRun`.
fn options(operation: Operation, dry_run: bool) -> Value {
    match operation.options_kind() {
        None => Value::Null,
        Some(kind) => {
            let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
            if dry_run {
                o["dryRun"] = json!(["All"]);
            }
            o
        }
    }
}

impl Api {
    /// The attributes of `request` with its objects.
    pub(crate) async fn attributes(
        &self,
        request: &Request<'_>,
        object: Option<Value>,
        old_object: Option<Value>,
    ) -> ApiResult<Attributes> {
        let def: &ResourceDef = &request.target.def;
        let mut resource = gvr_of(def);
        let subresource = request.target.subresource.clone().unwrap_or_default();
        match subresource.as_str() {
            "scale" => {
                resource.kind = "Scale".into();
                resource.kind_api_version = "autoscaling/v1".into();
            }
            // A connection is admitted with its options as the object.
            _ if request.operation == Operation::Connect => {
                if let Some(kind) = object.as_ref().and_then(|o| o.get("kind")?.as_str()) {
                    resource.kind = kind.to_string();
                }
            }
            _ => {}
        }
        let equivalent_versions = match request.target.def.custom() {
            Some(custom) => self
                .custom_resources()
                .await?
                .iter()
                .filter(|v| v.crd == custom.crd && v.def.version != def.version)
                .map(|v| gvr_of(&v.def))
                .collect(),
            None => Vec::new(),
        };
        let namespace = match (def.namespaced, def.group, def.resource) {
            (true, ..) => request.target.namespace.clone().unwrap_or_default(),
            (false, "", "namespaces") => request.name.to_string(),
            _ => String::new(),
        };
        Ok(Attributes {
            operation: request.operation,
            resource,
            subresource,
            namespaced: def.namespaced,
            namespace,
            name: request.name.to_string(),
            object,
            old_object,
            dry_run: request.dry_run,
            options: options(request.operation, request.dry_run),
            user: crate::request::caller().unwrap_or_default(),
            equivalent_versions,
        })
    }

    /// The webhooks of `phase` that `request` may call: none for the
    /// exempt kinds.
    async fn webhooks(
        &self,
        request: &Request<'_>,
        phase: Phase,
    ) -> ApiResult<Arc<[Arc<Webhook>]>> {
        let def: &ResourceDef = &request.target.def;
        if def.group == "admissionregistration.k8s.io" && EXEMPT_KINDS.contains(&def.kind) {
            return Ok(Arc::new([]));
        }
        self.webhook_cache.current(&*self.store, phase).await
    }

    /// MutatingAdmissionWebhook for `request`: `object` (a new object or
    /// update; `None` for a delete, whose webhooks may deny but not patch)
    /// goes through every matching mutating webhook and comes back
    /// patched. `old` is the stored object of an update or delete.
    ///
    /// # Errors
    /// A webhook's denial ([`review::denied`]); a failed call under
    /// `failurePolicy: Fail` (`500`); a dry run a webhook with side
    /// effects would see (`400`); a patch that does not apply (`500`).
    pub(crate) async fn admit_mutating_webhooks(
        &self,
        request: &Request<'_>,
        object: Option<&mut Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let hooks = self.webhooks(request, Phase::Mutating).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let mut attrs = self
            .attributes(request, object.as_deref().cloned(), old.cloned())
            .await?;
        let mut namespace_labels = None;
        let mut plan = Reinvocation::new(hooks.iter().map(|h| h.reinvoke));
        for round in 0..2 {
            for (i, hook) in hooks.iter().enumerate() {
                if !plan.runs(round, i) {
                    continue;
                }
                let Some(invocation) = self
                    .should_call(hook, &attrs, &mut namespace_labels)
                    .await?
                else {
                    continue;
                };
                let before = attrs.object.clone();
                self.call(hook, &mut attrs, &invocation, round, i).await?;
                plan.called(round, i, attrs.object != before);
            }
            if !plan.another_round() {
                break;
            }
        }
        if let (Some(object), Some(patched)) = (object, attrs.object) {
            *object = patched;
        }
        Ok(())
    }

    /// ValidatingAdmissionWebhook for `request`: every matching validating
    /// webhook is called at once with `object` (`None` for a delete) and
    /// `old`; the first denial or failure, in configuration order, is the
    /// answer.
    ///
    /// # Errors
    /// As [`Api::admit_mutating_webhooks`], patches aside.
    pub(crate) async fn admit_validating_webhooks(
        &self,
        request: &Request<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let hooks = self.webhooks(request, Phase::Validating).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let attrs = self
            .attributes(request, object.cloned(), old.cloned())
            .await?;
        let mut namespace_labels = None;
        let mut calls = Vec::new();
        for (i, hook) in hooks.iter().enumerate() {
            if let Some(invocation) = self
                .should_call(hook, &attrs, &mut namespace_labels)
                .await?
            {
                let mut attrs = attrs.clone();
                calls.push(async move { self.call(hook, &mut attrs, &invocation, 0, i).await });
            }
        }
        for result in futures::future::join_all(calls).await {
            result?;
        }
        Ok(())
    }

    /// `ShouldCallHook` and the match conditions: the invocation, `None`
    /// to skip the webhook. The stored namespace's labels are read once
    /// per request, when a selector needs them.
    async fn should_call(
        &self,
        hook: &Webhook,
        attrs: &Attributes,
        namespace_labels: &mut Option<Option<Value>>,
    ) -> ApiResult<Option<Invocation>> {
        let namespace_match = match &hook.namespace_selector {
            Err(e) => Err(ApiError::internal(e)),
            Ok(selector) if selector.is_empty() => Ok(true),
            Ok(selector) => match matching::namespace_labels(attrs) {
                NamespaceLabels::NotApplicable => Ok(true),
                NamespaceLabels::Object(labels) => Ok(selector.matches_json(labels)),
                NamespaceLabels::Stored(name) => {
                    if namespace_labels.is_none() {
                        let stored = self.stored_namespace(name).await?;
                        *namespace_labels = Some(stored);
                    }
                    match namespace_labels.as_ref().expect("read above") {
                        Some(ns) => Ok(selector.matches_json(ns.pointer("/metadata/labels"))),
                        None => Err(ApiError::not_found(
                            &crate::error::GroupResource::new("", "namespaces"),
                            name,
                        )),
                    }
                }
            },
        };
        if let Ok(false) = namespace_match {
            return Ok(None);
        }
        let object_match =
            matching::object_selector_matches(hook, attrs).map_err(ApiError::internal);
        if let Ok(false) = object_match {
            return Ok(None);
        }
        let Some(invocation) = matching::match_rules(hook, attrs) else {
            return Ok(None);
        };
        namespace_match?;
        object_match?;
        match matching::evaluate_conditions(&hook.match_conditions, attrs, &invocation) {
            ConditionOutcome::Match => Ok(Some(invocation)),
            ConditionOutcome::NoMatch => Ok(None),
            ConditionOutcome::Error(_) if hook.failure_policy == FailurePolicy::Ignore => Ok(None),
            ConditionOutcome::Error(e) => {
                let gr = crate::error::GroupResource::new(
                    &attrs.resource.group,
                    &attrs.resource.resource,
                );
                Err(ApiError::forbidden(&gr, &attrs.name, &e))
            }
        }
    }

    /// One call: the AdmissionReview out, the verdict applied to `attrs`
    /// (a mutating webhook's patch to `attrs.object`), a failure handled
    /// by the failure policy.
    async fn call(
        &self,
        hook: &Webhook,
        attrs: &mut Attributes,
        invocation: &Invocation,
        round: usize,
        index: usize,
    ) -> ApiResult<()> {
        if attrs.dry_run && !hook.no_side_effects_on_dry_run {
            return Err(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                hook.name
            )));
        }
        let verdict = match self.post_review(hook, attrs, invocation).await {
            Ok(v) => v,
            Err(why) if hook.failure_policy == FailurePolicy::Fail => {
                return Err(review::call_failed(&hook.name, &why));
            }
            Err(why) => {
                let phase = match hook.phase {
                    Phase::Mutating => "mutation",
                    Phase::Validating => "validating",
                };
                tracing::warn!(
                    webhook = %hook.name,
                    configuration = %hook.configuration,
                    error = %why.0,
                    "failed calling webhook, failing open (failed-open.{phase}.webhook.admission.k8s.io/round_{round}_index_{index})"
                );
                return Ok(());
            }
        };
        for w in verdict.warnings {
            crate::warning::add(w);
        }
        if !verdict.allowed {
            return Err(review::denied(&hook.name, verdict.status.as_ref()));
        }
        let Some(patch) = verdict.patch.filter(|p| !p.0.is_empty()) else {
            return Ok(());
        };
        let Some(object) = attrs.object.as_mut() else {
            return Err(ApiError::internal(format!(
                "admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                hook.name
            )));
        };
        // The patch was made against the object at the invocation's
        // version; equivalent versions differ only in `apiVersion`, which
        // is put back.
        let api_version = object.get("apiVersion").cloned();
        let mut patched = object.clone();
        if invocation.resource != attrs.resource
            && let Some(v) = patched.get_mut("apiVersion")
        {
            *v = json!(invocation.resource.api_version());
        }
        let mut patched = review::apply_patch(
            &patched,
            &patch,
            self.config.max_object_bytes,
            crate::rest::MAX_NESTING,
        )
        .map_err(ApiError::internal)?;
        if !patched.is_object() {
            return Err(ApiError::internal(
                "the patched object is not a JSON object",
            ));
        }
        if let Some(v) = api_version {
            patched["apiVersion"] = v;
        }
        *object = patched;
        Ok(())
    }

    /// Resolves the webhook's endpoint and posts the AdmissionReview.
    async fn post_review(
        &self,
        hook: &Webhook,
        attrs: &Attributes,
        invocation: &Invocation,
    ) -> Result<review::Verdict, CallError> {
        if !hook.accepts_v1 {
            return Err(CallError(
                "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"
                    .into(),
            ));
        }
        let dest = match &hook.client_config {
            None => {
                return Err(CallError(
                    "could not get REST client: exactly one of url or service is required".into(),
                ));
            }
            Some(ClientConfig::Url(url)) => {
                client::resolve_url(url, hook.timeout, self.config.webhook_loopback).await?
            }
            Some(ClientConfig::Service {
                namespace,
                name,
                path,
                port,
            }) => {
                self.resolve_service(namespace, name, path, *port, hook.timeout)
                    .await?
            }
        };
        let uid = crate::meta::new_uid();
        let body = serde_json::to_vec(&review::request(attrs, invocation, &uid))
            .map_err(|e| CallError(format!("could not create admission objects: {e}")))?;
        let answer = self
            .webhook_cache
            .clients
            .post(&hook.ca_bundle, &dest, body, hook.timeout)
            .await?;
        review::verify(&answer, &uid, hook.phase == Phase::Mutating)
    }

    /// The destination of a Service reference: a ready endpoint address of
    /// the Service port `port` (`ResolveEndpoint` in k8s.io/apiserver
    /// pkg/util/proxy), shown and verified as `<name>.<namespace>.svc`.
    async fn resolve_service(
        &self,
        namespace: &str,
        name: &str,
        path: &str,
        port: u16,
        timeout: std::time::Duration,
    ) -> Result<Destination, CallError> {
        let server_name = format!("{name}.{namespace}.svc");
        let authority = format!("{server_name}:{port}");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let shown = client::with_timeout(&format!("https://{authority}{path}"), timeout);
        let failed =
            |why: String| CallError(format!("failed to call webhook: Post {shown:?}: {why}"));
        let read = |resource: &'static str| async move {
            let def = crate::registry::lookup("", "v1", resource).expect("core kinds registered");
            match self.store.get(&def.key(Some(namespace), name)).await {
                Ok(Some(kv)) => decode_stored(&kv).map(Some).map_err(|e| e.message),
                Ok(None) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        };
        let service = read("services")
            .await
            .map_err(&failed)?
            .ok_or_else(|| failed(format!("services {name:?} not found")))?;
        let candidates = service_endpoint(
            &service,
            read("endpoints").await.map_err(&failed)?.as_ref(),
            port,
        )
        .map_err(&failed)?;
        let address = candidates[rand::random_range(0..candidates.len())];
        if let Some(why) = client::refused_address(address.ip(), self.config.webhook_loopback) {
            return Err(failed(format!(
                "address {} is {why} and may not be called",
                address.ip()
            )));
        }
        Ok(Destination {
            shown,
            server_name,
            authority,
            address,
            path_and_query: client::with_timeout(&path, timeout),
        })
    }
}

use client::Destination;

/// The endpoints a call to `port` of `service` may go to: the Service port
/// with that number, then the ready addresses of the first Endpoints
/// subset that has a port of the same name (`ResolveEndpoint`, which
/// picks one of them at random). Pure.
///
/// # Errors
/// kube's messages: `unsupported service type "ExternalName"`, `no service
/// port 443 found for service "x"`, `no endpoints available for service
/// "x"`.
pub fn service_endpoint(
    service: &Value,
    endpoints: Option<&Value>,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    let name = service
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = service
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer") {
        return Err(format!("unsupported service type {kind:?}"));
    }
    let service_port = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        })
        .ok_or_else(|| format!("no service port {port} found for service {name:?}"))?;
    let port_name = service_port
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let unavailable = || format!("no endpoints available for service {name:?}");
    let subsets = endpoints
        .and_then(|e| e.get("subsets"))
        .and_then(Value::as_array)
        .ok_or_else(unavailable)?;
    for subset in subsets {
        let addresses: Vec<IpAddr> = subset
            .get("addresses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|a| a.get("ip")?.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if addresses.is_empty() {
            continue;
        }
        let ports = subset.get("ports").and_then(Value::as_array);
        let Some(p) = ports.and_then(|ports| {
            ports
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str).unwrap_or_default() == port_name)
        }) else {
            continue;
        };
        let Some(number) = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
        else {
            continue;
        };
        return Ok(addresses
            .into_iter()
            .map(|ip| SocketAddr::new(ip, number))
            .collect());
    }
    Err(unavailable())
}

impl Api {
    /// The admission request of a write made on behalf of a user's request;
    /// `None` for the server's own background writes (bootstrap, the CRD
    /// cleanup), which kube makes through storage without admission.
    pub(crate) fn admission_request<'a>(
        &self,
        target: &'a Target,
        operation: Operation,
        name: &'a str,
        dry_run: bool,
    ) -> Option<Request<'a>> {
        crate::request::caller()?;
        Some(Request {
            target,
            operation,
            name,
            dry_run,
        })
    }

    /// The mutating webhooks for a create (`old` is `None`) or an update
    /// of `object`. The `scale` subresource is admitted as the `Scale`
    /// its webhooks expect, a changed `spec.replicas` written back; a
    /// patched main resource is defaulted again, as kube decodes it.
    ///
    /// # Errors
    /// As [`Api::admit_mutating_webhooks`].
    pub(crate) async fn mutate_by_webhooks(
        &self,
        request: &Request<'_>,
        object: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let def: &ResourceDef = &request.target.def;
        if request.target.subresource.as_deref() == Some("scale")
            && let Some(old) = old
        {
            let mut scale = crate::rest::to_scale(def, object);
            let before = scale.clone();
            self.admit_mutating_webhooks(
                request,
                Some(&mut scale),
                Some(&crate::rest::to_scale(def, old)),
            )
            .await?;
            if scale != before {
                *object = crate::rest::scale_into(
                    def,
                    &def.group_resource(),
                    request.name,
                    object,
                    &before,
                    &scale,
                )?;
            }
            return Ok(());
        }
        let before = object.clone();
        self.admit_mutating_webhooks(request, Some(object), old)
            .await?;
        if *object == before {
            return Ok(());
        }
        if request.target.subresource.is_none() {
            (def.strategy.default)(object);
        }
        // A webhook may not move an update to another object: name,
        // namespace and uid are immutable (`ValidateObjectMetaUpdate`),
        // where the update would otherwise quietly keep the stored ones or
        // store an object under a key that is not its name.
        if let Some(old) = old {
            let causes: Vec<crate::error::Cause> = ["name", "namespace", "uid"]
                .into_iter()
                .filter_map(|field| {
                    let new = object.pointer(&format!("/metadata/{field}"))?.as_str()?;
                    let was = old
                        .pointer(&format!("/metadata/{field}"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    (!new.is_empty() && new != was).then(|| crate::error::Cause {
                        reason: "FieldValueInvalid".into(),
                        message: format!("Invalid value: {new:?}: field is immutable"),
                        field: format!("metadata.{field}"),
                    })
                })
                .collect();
            if !causes.is_empty() {
                return Err(ApiError::invalid(def.kind, def.group, request.name, causes));
            }
        }
        Ok(())
    }

    /// The ValidatingAdmissionPolicies ([`crate::admission_policy`]), then
    /// the validating webhooks, for a create, update (`object` set) or
    /// delete (`object` is `None`), the `scale` subresource admitted as
    /// `Scale` objects.
    ///
    /// # Errors
    /// A policy's denial, or as [`Api::admit_validating_webhooks`].
    pub(crate) async fn validate_by_webhooks(
        &self,
        request: &Request<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let def: &ResourceDef = &request.target.def;
        if request.target.subresource.as_deref() == Some("scale") {
            let object = object.map(|o| crate::rest::to_scale(def, o));
            let old = old.map(|o| crate::rest::to_scale(def, o));
            self.admit_policies(request, object.as_ref(), old.as_ref())
                .await?;
            return self
                .admit_validating_webhooks(request, object.as_ref(), old.as_ref())
                .await;
        }
        self.admit_policies(request, object, old).await?;
        self.admit_validating_webhooks(request, object, old).await
    }

    /// Admission of a pod connection (`pods/exec`, `attach`,
    /// `portforward`): the mutating webhooks (whose patches a connection
    /// ignores), then the policies and validating webhooks, with the
    /// connection's options as the object and operation `CONNECT`.
    ///
    /// # Errors
    /// As [`Api::admit_mutating_webhooks`] and [`Api::validate_by_webhooks`].
    pub async fn admit_connect(
        &self,
        namespace: &str,
        name: &str,
        subresource: &str,
        options: Value,
    ) -> ApiResult<()> {
        let pods = crate::registry::lookup("", "v1", "pods").expect("pods registered");
        let target = Target {
            def: crate::registry::Def::Builtin(pods),
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            subresource: Some(subresource.to_string()),
            watch_prefix: false,
        };
        let Some(request) = self.admission_request(&target, Operation::Connect, name, false) else {
            return Ok(());
        };
        let mut patched = options.clone();
        Box::pin(self.admit_mutating_webhooks(&request, Some(&mut patched), None)).await?;
        Box::pin(self.validate_by_webhooks(&request, Some(&options), None)).await
    }
}
