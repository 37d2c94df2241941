//! Built-in admission, in kube-apiserver's plugin order: the mutating
//! plugins (LimitRanger's container defaults from the namespace's
//! LimitRanges, Priority's pod priority from its PriorityClass,
//! DefaultStorageClass, DefaultIngressClass, StorageObjectInUseProtection)
//! before the mutating webhooks; the validating ones (PodSecurity, RBAC
//! escalation, the certificate and DRA checks) after the kind's
//! validation, before the admission policies and validating webhooks; and
//! ResourceQuota last ([`crate::webhook`]).
//!
//! ResourceQuota follows k8s.io/apiserver/pkg/admission/plugin/resourcequota
//! (`CheckRequest`): the created object's usage, masked to each quota's hard
//! names, is added to the quota's `status.used`; a create that would exceed
//! `hard` is answered `403 Forbidden` with the plugin's message
//! (`pods "x" is forbidden: exceeded quota: q, requested: pods=1, used:
//! pods=2, limited: pods=2`); otherwise the new usage is written to the
//! quota's status first, with a compare-and-swap on its revision, so that
//! concurrent creates serialise on the quota and cannot overshoot it (the
//! resourcequota controller later recomputes exact usage). Differences: the
//! limits come from `spec.hard` rather than `status.hard`, and a quota
//! whose `status.used` lacks a name (the controller has not run yet) gets
//! that usage counted from storage instead of the request being refused with
//! "status unknown for quota".

use super::{Api, decode_stored, storage_error};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::{self, Admission, DefaultClass, RESOURCES, ResourceDef};
use crate::request::Target;
use crate::store::{KeyValue, ListOptions, StorageError};
use serde_json::{Value, json};
use vkube_core::quota::{self, ResourceList};

/// Attempts of the quota read-check-write loop before giving up.
const QUOTA_ATTEMPTS: usize = 64;

/// The finalizer StorageObjectInUseProtection puts on a new object of
/// `resource`.
pub fn protection_finalizer(resource: &str) -> Option<&'static str> {
    match resource {
        "persistentvolumeclaims" => Some("kubernetes.io/pvc-protection"),
        "persistentvolumes" => Some("kubernetes.io/pv-protection"),
        _ => None,
    }
}

/// StorageObjectInUseProtection ([`Admission::StorageObjectInUseProtection`]):
/// the kind's protection finalizer on a new claim or volume, once.
fn storage_object_in_use_protection(target: &Target, obj: &mut Value) {
    let Some(finalizer) = protection_finalizer(target.def.resource) else {
        return;
    };
    let md = meta::metadata_mut(obj);
    let list = md.entry("finalizers").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let items = list.as_array_mut().expect("an array");
    if !items.iter().any(|f| f == finalizer) {
        items.push(json!(finalizer));
    }
}

impl Api {
    /// Every stored value under `prefix`.
    pub(crate) async fn list_prefix(
        &self,
        def: &ResourceDef,
        prefix: &str,
    ) -> ApiResult<Vec<KeyValue>> {
        let page = self
            .store
            .list(
                prefix,
                ListOptions {
                    revision: None,
                    start_after: None,
                    limit: None,
                },
            )
            .await
            .map_err(|e| storage_error(def, "", e))?;
        Ok(page.items)
    }

    /// Runs the kind's admission plugins ([`ResourceDef::admission`]) of
    /// one phase ([`Admission::runs_in`]) on `obj`: all of them on a
    /// create (`old` is `None`), those that [`Admission::on_update`] on an
    /// update of `old`.
    pub(super) async fn admit(
        &self,
        target: &Target,
        obj: &mut Value,
        old: Option<&Value>,
        validating: bool,
    ) -> ApiResult<()> {
        let update = old.is_some();
        for plugin in target.def.admission {
            if (update && !plugin.on_update()) || !plugin.runs_in(validating) {
                continue;
            }
            match plugin {
                Admission::LimitRanger => self.limit_ranger(target, obj).await?,
                Admission::PodPriority => self.admit_priority(target, obj).await?,
                Admission::SingleGlobalDefault => {
                    self.admit_single_global_default(target, obj).await?
                }
                Admission::DefaultClass(rule) => self.admit_default_class(rule, obj).await?,
                Admission::PodSecurity => self.admit_pod_security(target, obj, update)?,
                Admission::Certificates => self.admit_certificates(target, obj, old).await?,
                Admission::DraAdminAccess(requests) => {
                    self.admit_dra_admin_access(target, obj, requests).await?
                }
                Admission::StorageObjectInUseProtection => {
                    storage_object_in_use_protection(target, obj)
                }
                Admission::RbacEscalation => self.admit_rbac_escalation(target, obj, old).await?,
                Admission::PolicyParamAccess => self.admit_param_access(target, obj, old).await?,
            }
        }
        Ok(())
    }

    /// CertificateSubjectRestriction, CertificateApproval and
    /// CertificateSigning ([`Admission::Certificates`]): `403` as kube's
    /// plugins answer. Approving (the `approval` subresource) takes
    /// `approve` on the signer, and writing a different `status.certificate`
    /// (the `status` subresource) takes `sign`.
    async fn admit_certificates(
        &self,
        target: &Target,
        obj: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let gr = target.def.group_resource();
        let name = meta::name(obj).to_string();
        let signer = obj
            .pointer("/spec/signerName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let Some(old) = old else {
            return match crate::certificates::subject_restriction(obj) {
                Some(why) => Err(ApiError::forbidden(&gr, &name, &why)),
                None => Ok(()),
            };
        };
        let verb = match target.subresource.as_deref() {
            Some("approval") => "approve",
            // A signer's write: the certificate or the conditions (a
            // `Failed` condition is the signer's answer too) changed.
            Some("status")
                if obj.pointer("/status/certificate") != old.pointer("/status/certificate")
                    || !same_list(
                        obj.pointer("/status/conditions"),
                        old.pointer("/status/conditions"),
                    ) =>
            {
                "sign"
            }
            _ => return Ok(()),
        };
        let Some(caller) = crate::request::caller() else {
            return Ok(());
        };
        let policy = self.policy().await?;
        if crate::certificates::may_act_on_signer(&policy, &caller, verb, &signer) {
            return Ok(());
        }
        Err(ApiError::forbidden(
            &gr,
            &name,
            &format!("user not permitted to {verb} requests with signerName {signer:?}"),
        ))
    }

    /// DRA admin access ([`Admission::DraAdminAccess`]): `422` with kube's
    /// `Forbidden` cause when a request asks for `adminAccess` in a
    /// namespace without the admin-access label; `requests` points at the
    /// kind's device requests.
    async fn admit_dra_admin_access(
        &self,
        target: &Target,
        obj: &Value,
        requests: &str,
    ) -> ApiResult<()> {
        let def: &ResourceDef = &target.def;
        let (Some(path), Some(ns)) = (
            crate::dra::admin_access_requested(obj, requests),
            target.namespace.as_deref(),
        ) else {
            return Ok(());
        };
        let labelled = match self.stored_namespace(ns).await? {
            Some(nsobj) => {
                nsobj
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(crate::dra::ADMIN_ACCESS_NAMESPACE_LABEL))
                    == Some(&Value::String("true".into()))
            }
            // A missing namespace is the namespace lifecycle's 404.
            None => return Ok(()),
        };
        if labelled {
            return Ok(());
        }
        Err(ApiError::invalid(
            def.kind,
            def.group,
            meta::name(obj),
            vec![
                vkube_core::field::FieldError::forbidden(
                    path,
                    &format!(
                        "admin access to devices requires the `{}: true` label on the containing namespace",
                        crate::dra::ADMIN_ACCESS_NAMESPACE_LABEL
                    ),
                )
                .into(),
            ],
        ))
    }

    /// RBAC escalation prevention ([`Admission::RbacEscalation`]): a Role,
    /// ClusterRole or binding written by a caller outside `system:masters`
    /// must grant nothing the caller does not hold, unless it is allowed
    /// `escalate` (roles) or `bind` (the bound role); `403`, or `404` for a
    /// binding to a role that does not exist. Writes made in-process with no
    /// caller (the bootstrap policy) are the server's own.
    async fn admit_rbac_escalation(
        &self,
        target: &Target,
        obj: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        use crate::filters::authorization::escalation::{self, Refusal, Write};
        use crate::filters::authorization::rbac::User;
        let Some(caller) = self.checked_caller() else {
            return Ok(());
        };
        if let Some(old) = old
            && only_gc_fields_differ(obj, old)
        {
            return Ok(());
        }
        let gr = target.def.group_resource();
        let name = meta::name(obj).to_string();
        let invalid = |e: serde_json::Error| {
            ApiError::bad_request(format!("decoding {}: {e}", target.def.kind))
        };
        let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> = match obj.get("rules") {
            Some(r) if !r.is_null() => serde_json::from_value(r.clone()).map_err(invalid)?,
            _ => Vec::new(),
        };
        let role_kind = obj
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role_name = obj
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // An aggregationRule with selectors can gather anything; setting or
        // removing one needs every permission (kube checks old and new).
        let aggregates = |o: &Value| {
            o.pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty())
        };
        let role_group = obj
            .pointer("/roleRef/apiGroup")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let write = match target.def.resource {
            "roles" | "clusterroles" => Write::Role {
                cluster: target.def.resource == "clusterroles",
                rules: &rules,
                aggregates: aggregates(obj) || old.is_some_and(aggregates),
            },
            _ => Write::Binding {
                role_group,
                role_kind,
                role_name,
            },
        };
        // The request's namespace and name, as kube reads them (the body's
        // are checked against the URL later, and a create has no name yet).
        let namespace = target.namespace.clone().unwrap_or_default();
        let request_name = target.name.as_deref().unwrap_or_default();
        let policy = self.policy().await?;
        let user = User {
            name: &caller.user,
            groups: &caller.groups,
        };
        match escalation::check(&policy, user, &namespace, request_name, &write) {
            Ok(()) => Ok(()),
            Err(Refusal::Forbidden(why)) => Err(ApiError::forbidden(&gr, &name, &why)),
            Err(Refusal::RoleNotFound { resource }) => Err(ApiError::not_found(
                &crate::error::GroupResource::new("rbac.authorization.k8s.io", resource),
                role_name,
            )),
        }
    }

    /// The caller whose permissions a write's admission checks; `None`
    /// when nothing is checked: a write the server makes itself (no
    /// caller), a `system:masters` user, or AlwaysAllow (kube asks its
    /// whole authorizer chain, which then allows everything).
    fn checked_caller(&self) -> Option<crate::pki::Identity> {
        let caller = crate::request::caller()?;
        let unchecked = caller
            .groups
            .iter()
            .any(|g| g == crate::filters::authorization::rbac::PRIVILEGED_GROUP)
            || self.config.authorization_mode
                == crate::filters::authorization::AuthorizationMode::AlwaysAllow;
        (!unchecked).then_some(caller)
    }

    /// [`Admission::PolicyParamAccess`]: `422` with kube's
    /// `spec.paramKind: Forbidden: user … must have "get" permission on all
    /// objects of the referenced paramKind (kind=…, apiVersion=…)` or
    /// `spec.paramRef: Forbidden: user … does not have "get" permission on
    /// the object referenced by paramRef`. Skipped for `system:masters`,
    /// under AlwaysAllow, and when the update leaves the reference as it
    /// was; a kind that does not resolve is checked as `*`.
    async fn admit_param_access(
        &self,
        target: &Target,
        obj: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        use crate::filters::authorization::rbac::{self, User};
        let Some(caller) = self.checked_caller() else {
            return Ok(());
        };
        let binding = target.def.resource == "validatingadmissionpolicybindings";
        let (field, reference) = if binding {
            ("paramRef", obj.pointer("/spec/paramRef"))
        } else {
            ("paramKind", obj.pointer("/spec/paramKind"))
        };
        let Some(reference) = reference.filter(|r| r.is_object()) else {
            return Ok(());
        };
        let unchanged = old.is_some_and(|old| {
            old.pointer(&format!("/spec/{field}")) == Some(reference)
                && (!binding || old.pointer("/spec/policyName") == obj.pointer("/spec/policyName"))
        });
        if unchanged {
            return Ok(());
        }
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let param_kind = if binding {
            let name = text(obj.pointer("/spec/policyName"));
            let def = crate::registry::lookup(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicies",
            )
            .expect("admission policies registered");
            match self.store.get(&def.key(None, &name)).await {
                Ok(Some(kv)) => decode_stored(&kv)
                    .ok()
                    .and_then(|p| p.pointer("/spec/paramKind").cloned()),
                _ => None,
            }
        } else {
            Some(reference.clone())
        };
        let (api_version, kind) = param_kind
            .as_ref()
            .map(|p| (text(p.get("apiVersion")), text(p.get("kind"))))
            .unwrap_or_default();
        let (group, resource) = match self.resolve_kind(&api_version, &kind).await {
            Some(def) => (def.group.to_string(), def.resource.to_string()),
            None => ("*".to_string(), "*".to_string()),
        };
        let (verb, namespace, name) = if binding {
            let name = text(reference.get("name"));
            let verb = if name.is_empty() { "list" } else { "get" };
            (verb, text(reference.get("namespace")), name)
        } else {
            ("get", String::new(), "*".to_string())
        };
        let policy = self.policy().await?;
        let user = User {
            name: &caller.user,
            groups: &caller.groups,
        };
        let request = rbac::Request::Resource {
            verb: verb.into(),
            namespace,
            group,
            resource,
            subresource: String::new(),
            name,
        };
        if rbac::authorize(&policy, user, &request).allowed {
            return Ok(());
        }
        // Go's `%v` of the user.
        let who = format!(
            "&{{{} {} [{}] map[]}}",
            caller.user,
            caller.uid,
            caller.groups.join(" ")
        );
        let why = if binding {
            format!(
                "user {who} does not have {verb:?} permission on the object referenced by paramRef"
            )
        } else {
            format!(
                "user {who} must have \"get\" permission on all objects of the referenced paramKind (kind={kind}, apiVersion={api_version})"
            )
        };
        Err(ApiError::invalid(
            target.def.kind,
            target.def.group,
            crate::meta::name(obj),
            vec![crate::error::Cause {
                reason: "FieldValueForbidden".into(),
                message: format!("Forbidden: {why}"),
                field: format!("spec.{field}"),
            }],
        ))
    }

    /// PodSecurity: a new pod, or a pod's new ephemeral containers, must
    /// meet the enforced level (`403 pods "x" is forbidden: violates
    /// PodSecurity "baseline:latest": …`). Other updates are not checked, as
    /// pod-security admission leaves them alone. ([`Admission::PodSecurity`]).
    fn admit_pod_security(&self, target: &Target, obj: &Value, update: bool) -> ApiResult<()> {
        let Some(check) = &self.config.pod_security else {
            return Ok(());
        };
        if update && target.subresource.as_deref() != Some("ephemeralcontainers") {
            return Ok(());
        }
        match check.forbidden(obj) {
            Some(why) => Err(ApiError::forbidden(
                &target.def.group_resource(),
                crate::meta::name(obj),
                &why,
            )),
            None => Ok(()),
        }
    }

    /// LimitRanger: applies the container defaults of the LimitRanges in
    /// the pod's namespace to a new pod ([`Admission::LimitRanger`]).
    async fn limit_ranger(&self, target: &Target, obj: &mut Value) -> ApiResult<()> {
        let Some(ns) = target.namespace.as_deref() else {
            return Ok(());
        };
        let lrdef = registry::lookup("", "v1", "limitranges").expect("limitranges registered");
        let items = self
            .list_prefix(lrdef, &lrdef.collection_prefix(Some(ns)))
            .await?;
        if items.is_empty() {
            return Ok(());
        }
        let ranges = items
            .iter()
            .map(decode_stored)
            .collect::<ApiResult<Vec<_>>>()?;
        vkube_core::limitrange::apply_defaults(obj, &ranges);
        Ok(())
    }

    /// Priority admission (plugin/pkg/admission/priority) on a new pod:
    /// `spec.priority` and `spec.preemptionPolicy` from the PriorityClass
    /// the pod names, else from the class marked `globalDefault` (whose name
    /// the pod then gets), else `0` and `PreemptLowerPriority`. A missing
    /// class, or a priority or policy the pod set that differs from the
    /// computed one, is `403 Forbidden` with the plugin's message
    /// ([`Admission::PodPriority`]).
    async fn admit_priority(&self, target: &Target, obj: &mut Value) -> ApiResult<()> {
        let def: &ResourceDef = &target.def;
        let pcdef = registry::lookup("scheduling.k8s.io", "v1", "priorityclasses")
            .expect("priorityclasses registered");
        let name = meta::name(obj).to_string();
        let forbidden = |why: String| ApiError::forbidden(&def.group_resource(), &name, &why);
        let wanted = obj
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let class = match &wanted {
            Some(class) => {
                let key = pcdef.key(None, class);
                match self
                    .store
                    .get(&key)
                    .await
                    .map_err(|e| storage_error(pcdef, class, e))?
                {
                    Some(kv) => Some(decode_stored(&kv)?),
                    None => {
                        return Err(forbidden(format!(
                            "no PriorityClass with name {class} was found"
                        )));
                    }
                }
            }
            None => self
                .list_prefix(pcdef, &pcdef.collection_prefix(None))
                .await?
                .iter()
                .filter_map(|kv| decode_stored(kv).ok())
                .find(|pc| pc.get("globalDefault").and_then(Value::as_bool) == Some(true)),
        };
        let priority = class
            .as_ref()
            .and_then(|pc| pc.get("value").and_then(Value::as_i64))
            .unwrap_or(0);
        let policy = class
            .as_ref()
            .and_then(|pc| pc.get("preemptionPolicy").and_then(Value::as_str))
            .unwrap_or("PreemptLowerPriority")
            .to_string();
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        if let Some(given) = spec.get("priority").and_then(Value::as_i64)
            && given != priority
        {
            return Err(forbidden(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
            && given != policy
        {
            return Err(forbidden(format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            )));
        }
        if wanted.is_none()
            && let Some(default_name) = class.as_ref().map(|pc| meta::name(pc).to_string())
        {
            spec.insert("priorityClassName".into(), json!(default_name));
        }
        spec.insert("priority".into(), json!(priority));
        spec.insert("preemptionPolicy".into(), json!(policy));
        Ok(())
    }

    /// DefaultStorageClass and DefaultIngressClass admission on create: a
    /// PersistentVolumeClaim without `spec.storageClassName` (and without the
    /// beta `volume.beta.kubernetes.io/storage-class` annotation) gets the
    /// default StorageClass's name; an Ingress without
    /// `spec.ingressClassName` (and without the `kubernetes.io/ingress.class`
    /// annotation) the default IngressClass's. The default is the class
    /// annotated `storageclass.kubernetes.io/is-default-class` (or its beta
    /// form) / `ingressclass.kubernetes.io/is-default-class` `"true"`; of
    /// several, the newest (then the name), as upstream. ([`Admission::DefaultClass`]).
    async fn admit_default_class(&self, rule: &DefaultClass, obj: &mut Value) -> ApiResult<()> {
        let field = rule.field;
        let set = obj
            .pointer(&format!("/spec/{field}"))
            .is_some_and(|v| !v.is_null());
        let annotated = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(rule.legacy_annotation))
            .is_some();
        if set || annotated {
            return Ok(());
        }
        let cdef = registry::lookup(rule.class_group, "v1", rule.class_resource)
            .expect("class kind registered");
        let newest = self
            .list_prefix(cdef, &cdef.collection_prefix(None))
            .await?
            .iter()
            .filter_map(|kv| decode_stored(kv).ok())
            .filter(|c| {
                let ann = c.pointer("/metadata/annotations");
                rule.default_annotations
                    .iter()
                    .any(|k| ann.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"))
            })
            .max_by(|a, b| {
                let created = |c: &Value| {
                    c.pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                created(a)
                    .cmp(&created(b))
                    .then_with(|| meta::name(b).cmp(meta::name(a)))
            });
        if let Some(class) = newest
            && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert(field.into(), json!(meta::name(&class)));
        }
        Ok(())
    }

    /// Priority admission on PriorityClasses (create and update): a class
    /// marked `globalDefault` while another one is (the one of lowest value
    /// if several) is `403 Forbidden` (`PriorityClass D is already marked as
    /// default. Only one default can exist`). ([`Admission::SingleGlobalDefault`]).
    async fn admit_single_global_default(&self, target: &Target, pc: &Value) -> ApiResult<()> {
        let def: &ResourceDef = &target.def;
        if pc.get("globalDefault").and_then(Value::as_bool) != Some(true) {
            return Ok(());
        }
        let name = meta::name(pc);
        let other = self
            .list_prefix(def, &def.collection_prefix(None))
            .await?
            .iter()
            .filter_map(|kv| decode_stored(kv).ok())
            .filter(|d| {
                d.get("globalDefault").and_then(Value::as_bool) == Some(true)
                    && meta::name(d) != name
            })
            .min_by_key(|d| d.get("value").and_then(Value::as_i64).unwrap_or(0));
        match other {
            Some(d) => Err(ApiError::forbidden(
                &def.group_resource(),
                name,
                &format!(
                    "PriorityClass {} is already marked as default. Only one default can exist",
                    meta::name(&d)
                ),
            )),
            None => Ok(()),
        }
    }

    /// What the objects of collection `(group, resource)` in `ns` use of
    /// the quota resource `name` (zero for names no collection backs).
    async fn stored_usage(
        &self,
        ns: &str,
        name: &str,
    ) -> ApiResult<vkube_core::quantity::Quantity> {
        let zero = vkube_core::quantity::Quantity::ZERO;
        let Some((group, resource)) = quota::source_of(name) else {
            return Ok(zero);
        };
        let Some(def) = RESOURCES
            .iter()
            .find(|d| d.group == group && d.resource == resource && d.namespaced)
        else {
            return Ok(zero);
        };
        // Summed like upstream's quota.Add: the first term's format wins.
        let mut total = None;
        for kv in self
            .list_prefix(def, &def.collection_prefix(Some(ns)))
            .await?
        {
            let obj = decode_stored(&kv)?;
            if let Some(q) = quota::usage(&group, &resource, &obj).get(name) {
                total = Some(total.map_or(*q, |t| t + *q));
            }
        }
        Ok(total.unwrap_or(zero))
    }

    /// ResourceQuota: checks `obj` (named, about to be stored) against every
    /// quota in its namespace and charges them; see the module docs.
    /// Errors: 403 Forbidden (exceeded, or a compute quota's required
    /// requests/limits missing), 409 when the quotas keep changing.
    pub(super) async fn admit_quota(
        &self,
        target: &Target,
        obj: &Value,
        dry_run: bool,
    ) -> ApiResult<()> {
        let def: &ResourceDef = &target.def;
        let Some(ns) = target.namespace.as_deref() else {
            return Ok(());
        };
        let rqdef =
            registry::lookup("", "v1", "resourcequotas").expect("resourcequotas registered");
        let prefix = rqdef.collection_prefix(Some(ns));
        let requested = quota::usage(def.group, def.resource, obj);
        let forbidden =
            |why: String| ApiError::forbidden(&def.group_resource(), meta::name(obj), &why);
        for _ in 0..QUOTA_ATTEMPTS {
            let quotas = self.list_prefix(rqdef, &prefix).await?;
            let mut writes = Vec::new();
            for kv in quotas {
                let q = decode_stored(&kv)?;
                let qname = meta::name(&q).to_string();
                let hard = quota::parse_list(q.pointer("/spec/hard"));
                // evaluator.Matches: the quota tracks something of this kind
                // (even if this object uses none of it: constraints apply).
                let kind = Some((def.group.to_string(), def.resource.to_string()));
                if !hard.keys().any(|k| quota::source_of(k) == kind) {
                    continue;
                }
                if def.group.is_empty() && def.resource == "pods" {
                    let missing = quota::pod_missing(obj, &hard);
                    if !missing.is_empty() {
                        return Err(forbidden(
                            quota::QuotaError::MustSpecify {
                                quota: qname,
                                missing: missing.join(","),
                            }
                            .to_string(),
                        ));
                    }
                }
                let mut used: ResourceList = quota::parse_list(q.pointer("/status/used"));
                for name in requested.keys().filter(|k| hard.contains_key(*k)) {
                    if !used.contains_key(name) {
                        used.insert(name.clone(), self.stored_usage(ns, name).await?);
                    }
                }
                match quota::check(&qname, &hard, &used, &requested) {
                    Err(e) => return Err(forbidden(e.to_string())),
                    Ok(Some(new_used)) => writes.push((kv, q, new_used)),
                    Ok(None) => {}
                }
            }
            if dry_run || writes.is_empty() {
                return Ok(());
            }
            let mut conflict = false;
            for (kv, mut q, new_used) in writes {
                let hard = q.pointer("/spec/hard").cloned().unwrap_or(json!({}));
                if !q.get("status").is_some_and(Value::is_object) {
                    q["status"] = json!({});
                }
                q["status"]["hard"] = hard;
                q["status"]["used"] = quota::render_list(&new_used);
                let bytes = self.encode(rqdef, &q)?;
                match self.store.update(&kv.key, kv.mod_revision, bytes).await {
                    Ok(_) => {}
                    Err(StorageError::Conflict { actual, .. }) => {
                        // Read again once the winning write is visible.
                        self.await_write(actual).await;
                        conflict = true;
                        break;
                    }
                    Err(StorageError::NotFound(_)) => {
                        conflict = true;
                        break;
                    }
                    Err(e) => return Err(storage_error(rqdef, meta::name(&q), e)),
                }
            }
            if !conflict {
                return Ok(());
            }
        }
        Err(ApiError::modified(&rqdef.group_resource(), ""))
    }
}

/// Whether `new` differs from `old` only in the fields the garbage
/// collector writes (kube's `IsOnlyMutatingGCFields`: ownerReferences,
/// finalizers, managedFields and selfLink).
fn only_gc_fields_differ(new: &Value, old: &Value) -> bool {
    let mut copied = new.clone();
    let md = meta::metadata_mut(&mut copied);
    for f in ["ownerReferences", "finalizers", "managedFields", "selfLink"] {
        match old.pointer(&format!("/metadata/{f}")) {
            Some(v) => md.insert(f.into(), v.clone()),
            None => md.remove(f),
        };
    }
    copied == *old
}

/// Whether two optional JSON lists are equal as kube's semantic equality
/// sees them: a missing list, `null` and `[]` are the same.
fn same_list(a: Option<&Value>, b: Option<&Value>) -> bool {
    items(a) == items(b)
}

/// The items of an optional JSON list (none when missing or not a list).
fn items(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}
