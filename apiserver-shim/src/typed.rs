//! Typed decoding of request objects and server-side field validation.
//!
//! kube-apiserver decodes every written object into its Go type; fields the
//! type does not know are dropped (or, under `fieldValidation`, reported), a
//! value of the wrong JSON type fails the request with the field path. This
//! module does the same against k8s-openapi's Rust types: each served kind is
//! one [`Typed`] row (a struct of fn pointers made by [`typed`]), looked up by
//! [`of`]. The JSON objects the REST layer stores are *not* re-serialised from
//! the typed value (that would invent defaults such as `name: ""`): unknown
//! fields are pruned from the JSON itself.
//!
//! Upstream: k8s.io/apiserver/pkg/endpoints/handlers (create.go, update.go,
//! patch.go: `fieldValidation`, `transformDecodeError`), and the strict JSON
//! decoder of sigs.k8s.io/json (`unknown field "spec.foo"`,
//! `duplicate field "metadata.name"`).

use crate::error::{ApiError, ApiResult, Cause};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object member.
    Key(String),
    /// A list item.
    Index(usize),
}

/// A field path from the object root, rendered as kube-apiserver prints
/// paths in strict decoding errors: `spec.containers[0].foo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A value of the wrong JSON type (or out of range) for its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    /// Where: `spec.replicas`; empty for the root.
    pub path: String,
    /// serde's description, e.g. `invalid type: string "x", expected i32`.
    pub detail: String,
}

impl TypeError {
    /// The message in the shape of Go's `encoding/json` `UnmarshalTypeError`
    /// (`json: cannot unmarshal string into Go struct field
    /// Deployment.spec.replicas of type int32`, with Go's names for the
    /// common types) when serde's text allows, else `json: <path>: <detail>`.
    pub fn go_message(&self, kind: &str) -> String {
        let parsed = self
            .detail
            .strip_prefix("invalid type: ")
            .and_then(|rest| rest.split_once(", expected "))
            .map(|(unexpected, expected)| {
                let word = unexpected.split([' ', ',']).next().unwrap_or(unexpected);
                let go = match word {
                    "integer" | "floating" => "number",
                    "boolean" => "bool",
                    "map" => "object",
                    "sequence" => "array",
                    other => other,
                };
                let expected = match expected {
                    "i32" | "a 32-bit integer" => "int32",
                    "i64" => "int64",
                    "f64" => "float64",
                    "a string" => "string",
                    "a boolean" => "bool",
                    "a sequence" => "array",
                    "a map" => "object",
                    other => other,
                };
                (go.to_string(), expected.to_string())
            });
        match parsed {
            Some((go, expected)) => format!(
                "json: cannot unmarshal {go} into Go struct field {kind}.{} of type {expected}",
                self.path
            ),
            None if self.path.is_empty() => format!("json: {}", self.detail),
            None => format!("json: {}: {}", self.path, self.detail),
        }
    }
}

/// A kind's k8s-openapi type, as data: decoding and schema generation through
/// fn pointers, so the registry stays a table (make one with [`typed`]).
#[derive(Clone, Copy)]
pub struct Typed {
    /// Decodes an object into the type; `Ok` carries every ignored (unknown)
    /// field path, `Err` the first type error.
    pub decode: fn(&Value) -> Result<Vec<FieldPath>, TypeError>,
    /// Registers the type's schema (and its dependencies) with a generator and
    /// returns a `$ref` to it.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// The type's definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub schema_name: fn() -> Cow<'static, str>,
}

/// The [`Typed`] row of `T`.
pub const fn typed<T: DeserializeOwned + JsonSchema>() -> Typed {
    Typed {
        decode: decode::<T>,
        schema: |g| g.subschema_for::<T>(),
        schema_name: T::schema_name,
    }
}

fn decode<T: DeserializeOwned>(obj: &Value) -> Result<Vec<FieldPath>, TypeError> {
    let mut unknown = Vec::new();
    let mut record = |p: serde_ignored::Path<'_>| unknown.push(ignored_path(&p));
    // A `dyn` callback keeps the wrapped deserializer one type for every `T`,
    // so the nested k8s-openapi types (PodSpec, ObjectMeta, …) are
    // instantiated once, not once per kind (a closure type is unique per `T`).
    let mut callback: &mut dyn FnMut(serde_ignored::Path<'_>) = &mut record;
    let de = serde_ignored::Deserializer::new(obj, &mut callback);
    let res: Result<T, _> = serde_path_to_error::deserialize(de);
    match res {
        Ok(_) => Ok(unknown),
        Err(e) => {
            let path = e.path().to_string();
            Err(TypeError {
                path: if path == "." { String::new() } else { path },
                detail: e.into_inner().to_string(),
            })
        }
    }
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> FieldPath {
    fn walk(p: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
        match p {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(Segment::Index(*index));
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, out);
                out.push(Segment::Key(key.clone()));
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut out = Vec::new();
    walk(p, &mut out);
    FieldPath(out)
}

/// The k8s-openapi type of a served kind (`None` for a kind without one).
pub fn of(group: &str, version: &str, kind: &str) -> Option<Typed> {
    use k8s_openapi::api::{
        admissionregistration, apps, autoscaling, batch, coordination, core, discovery, events,
        networking, node, policy, rbac, scheduling, storage,
    };
    Some(match (group, version, kind) {
        ("", "v1", "Namespace") => typed::<core::v1::Namespace>(),
        ("", "v1", "Pod") => typed::<core::v1::Pod>(),
        ("", "v1", "Service") => typed::<core::v1::Service>(),
        ("", "v1", "Endpoints") => typed::<core::v1::Endpoints>(),
        ("", "v1", "ConfigMap") => typed::<core::v1::ConfigMap>(),
        ("", "v1", "Secret") => typed::<core::v1::Secret>(),
        ("", "v1", "ServiceAccount") => typed::<core::v1::ServiceAccount>(),
        ("", "v1", "Event") => typed::<core::v1::Event>(),
        ("", "v1", "Node") => typed::<core::v1::Node>(),
        ("", "v1", "ComponentStatus") => typed::<core::v1::ComponentStatus>(),
        ("", "v1", "PersistentVolumeClaim") => typed::<core::v1::PersistentVolumeClaim>(),
        ("", "v1", "ResourceQuota") => typed::<core::v1::ResourceQuota>(),
        ("", "v1", "LimitRange") => typed::<core::v1::LimitRange>(),
        ("", "v1", "PersistentVolume") => typed::<core::v1::PersistentVolume>(),
        ("", "v1", "PodTemplate") => typed::<core::v1::PodTemplate>(),
        ("", "v1", "ReplicationController") => typed::<core::v1::ReplicationController>(),
        ("networking.k8s.io", "v1", "Ingress") => typed::<networking::v1::Ingress>(),
        ("networking.k8s.io", "v1", "IngressClass") => typed::<networking::v1::IngressClass>(),
        ("networking.k8s.io", "v1", "NetworkPolicy") => typed::<networking::v1::NetworkPolicy>(),
        ("networking.k8s.io", "v1", "IPAddress") => typed::<networking::v1::IPAddress>(),
        ("networking.k8s.io", "v1", "ServiceCIDR") => typed::<networking::v1::ServiceCIDR>(),
        ("scheduling.k8s.io", "v1", "PriorityClass") => typed::<scheduling::v1::PriorityClass>(),
        ("storage.k8s.io", "v1", "StorageClass") => typed::<storage::v1::StorageClass>(),
        ("storage.k8s.io", "v1", "CSIDriver") => typed::<storage::v1::CSIDriver>(),
        ("node.k8s.io", "v1", "RuntimeClass") => typed::<node::v1::RuntimeClass>(),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            typed::<autoscaling::v2::HorizontalPodAutoscaler>()
        }
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            typed::<autoscaling::v1::HorizontalPodAutoscaler>()
        }
        ("storage.k8s.io", "v1", "VolumeAttachment") => typed::<storage::v1::VolumeAttachment>(),
        ("storage.k8s.io", "v1", "CSINode") => typed::<storage::v1::CSINode>(),
        ("storage.k8s.io", "v1", "CSIStorageCapacity") => {
            typed::<storage::v1::CSIStorageCapacity>()
        }
        ("storage.k8s.io", "v1", "VolumeAttributesClass") => {
            typed::<storage::v1::VolumeAttributesClass>()
        }
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => typed::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(),
        ("apiregistration.k8s.io", "v1", "APIService") => {
            typed::<k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService>()
        }
        ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration") => {
            typed::<admissionregistration::v1::MutatingWebhookConfiguration>()
        }
        ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration") => {
            typed::<admissionregistration::v1::ValidatingWebhookConfiguration>()
        }
        ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy") => {
            typed::<admissionregistration::v1::ValidatingAdmissionPolicy>()
        }
        ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding") => {
            typed::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>()
        }
        ("", "v1", "Binding") => typed::<core::v1::Binding>(),
        ("apps", "v1", "Deployment") => typed::<apps::v1::Deployment>(),
        ("apps", "v1", "ReplicaSet") => typed::<apps::v1::ReplicaSet>(),
        ("apps", "v1", "StatefulSet") => typed::<apps::v1::StatefulSet>(),
        ("apps", "v1", "DaemonSet") => typed::<apps::v1::DaemonSet>(),
        ("apps", "v1", "ControllerRevision") => typed::<apps::v1::ControllerRevision>(),
        ("batch", "v1", "Job") => typed::<batch::v1::Job>(),
        ("batch", "v1", "CronJob") => typed::<batch::v1::CronJob>(),
        ("coordination.k8s.io", "v1", "Lease") => typed::<coordination::v1::Lease>(),
        ("discovery.k8s.io", "v1", "EndpointSlice") => typed::<discovery::v1::EndpointSlice>(),
        ("events.k8s.io", "v1", "Event") => typed::<events::v1::Event>(),
        ("policy", "v1", "PodDisruptionBudget") => typed::<policy::v1::PodDisruptionBudget>(),
        ("rbac.authorization.k8s.io", "v1", "Role") => typed::<rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => typed::<rbac::v1::RoleBinding>(),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => typed::<rbac::v1::ClusterRole>(),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            typed::<rbac::v1::ClusterRoleBinding>()
        }
        ("autoscaling", "v1", "Scale") => typed::<k8s_openapi::api::autoscaling::v1::Scale>(),
        ("authentication.k8s.io", "v1", "TokenReview") => {
            typed::<k8s_openapi::api::authentication::v1::TokenReview>()
        }
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => {
            typed::<k8s_openapi::api::authentication::v1::SelfSubjectReview>()
        }
        ("authorization.k8s.io", "v1", kind) => review_type(kind)?,
        ("resource.k8s.io", "v1", kind) => resource_type(kind)?,
        ("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema") => {
            typed::<k8s_openapi::api::flowcontrol::v1::FlowSchema>()
        }
        ("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration") => {
            typed::<k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration>()
        }
        ("certificates.k8s.io", "v1", "CertificateSigningRequest") => {
            typed::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>()
        }
        _ => return None,
    })
}

/// The k8s-openapi type of a `resource.k8s.io/v1` kind.
fn resource_type(kind: &str) -> Option<Typed> {
    use k8s_openapi::api::resource::v1 as dra;
    Some(match kind {
        "DeviceClass" => typed::<dra::DeviceClass>(),
        "ResourceClaim" => typed::<dra::ResourceClaim>(),
        "ResourceClaimTemplate" => typed::<dra::ResourceClaimTemplate>(),
        "ResourceSlice" => typed::<dra::ResourceSlice>(),
        _ => return None,
    })
}

/// The k8s-openapi type of an `authorization.k8s.io/v1` review kind.
fn review_type(kind: &str) -> Option<Typed> {
    use k8s_openapi::api::authorization::v1 as authz;
    Some(match kind {
        "SubjectAccessReview" => typed::<authz::SubjectAccessReview>(),
        "SelfSubjectAccessReview" => typed::<authz::SelfSubjectAccessReview>(),
        "LocalSubjectAccessReview" => typed::<authz::LocalSubjectAccessReview>(),
        "SelfSubjectRulesReview" => typed::<authz::SelfSubjectRulesReview>(),
        _ => return None,
    })
}

/// The `fieldValidation` directive of a write (metav1.CreateOptions,
/// UpdateOptions, PatchOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently; duplicates are not looked for.
    Ignore,
    /// Drop unknown fields and answer with one `Warning` header per unknown
    /// or duplicate field. kube-apiserver's default when the parameter is
    /// absent (handlers/rest.go `fieldValidation`).
    #[default]
    Warn,
    /// Fail the request with `400 BadRequest` listing every unknown and
    /// duplicate field.
    Strict,
}

impl FieldValidation {
    /// Parses the query value; absent or empty is [`FieldValidation::Warn`].
    /// Anything else is `422 Invalid` on `{options_kind}.meta.k8s.io`, as
    /// `ValidateFieldValidation` answers (apimachinery/pkg/apis/meta/v1/validation):
    /// `fieldValidation: Unsupported value: "x": supported values: "", "Ignore", "Strict", "Warn"`.
    pub fn parse(raw: Option<&str>, options_kind: &str) -> ApiResult<FieldValidation> {
        match raw.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::invalid(
                options_kind,
                "meta.k8s.io",
                "",
                vec![Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!(
                        "Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                    ),
                    field: "fieldValidation".into(),
                }],
            )),
        }
    }
}

/// Every key that occurs twice in one JSON object of `raw`, as full paths
/// (`metadata.name`), in document order. serde_json keeps the last of
/// duplicate keys, so this has to look at the bytes. Malformed JSON yields
/// what was found before the error.
pub fn duplicate_fields(raw: &[u8]) -> Vec<FieldPath> {
    let mut path = Vec::new();
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(raw);
    let _ = DupSeed {
        path: &mut path,
        out: &mut out,
    }
    .deserialize(&mut de);
    out
}

struct DupSeed<'a> {
    path: &'a mut Vec<Segment>,
    out: &'a mut Vec<FieldPath>,
}

impl<'de> DeserializeSeed<'de> for DupSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.push(Segment::Index(i));
            let more = seq.next_element_seed(DupSeed {
                path: &mut *self.path,
                out: &mut *self.out,
            })?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            self.path.push(Segment::Key(key.clone()));
            if !seen.insert(key) {
                self.out.push(FieldPath(self.path.clone()));
            }
            map.next_value_seed(DupSeed {
                path: &mut *self.path,
                out: &mut *self.out,
            })?;
            self.path.pop();
        }
        Ok(())
    }
}

/// Removes the member at `path` (an object key) from `obj`, if present.
pub fn prune(obj: &mut Value, path: &FieldPath) {
    let Some((Segment::Key(last), parents)) = path.0.split_last() else {
        return;
    };
    let mut cur = obj;
    for s in parents {
        let next = match (s, cur) {
            (Segment::Key(k), Value::Object(m)) => m.get_mut(k),
            (Segment::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

/// The copy of `obj` that is decoded: `apiVersion`/`kind` (checked by the
/// REST layer with its own messages) removed, and `null` object members
/// dropped, since Go's decoder leaves the zero value for a JSON `null`
/// whatever the field's type.
fn decodable(obj: &Value) -> Value {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    let mut copy = strip(obj);
    if let Some(m) = copy.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    copy
}

/// Where the checked object came from, which decides the error's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A create or update body: errors read
    /// `Pod in version "v1" cannot be handled as a Pod: …`
    /// (handlers/create.go `transformDecodeError`).
    Body,
    /// The result of applying a patch: errors are `422 Invalid` on the field
    /// `patch` carrying the patched object, as handlers/patch.go answers:
    /// ` "" is invalid: patch: Invalid value: "{…}": strict decoding error: …`.
    Patch,
}

/// Decodes `obj` into the kind's type under `mode`: a type error fails the
/// request naming the field path; unknown fields (and, given the raw body,
/// duplicate fields) fail it under `Strict` with
/// `strict decoding error: unknown field "spec.foo", …` (`400 BadRequest`
/// for a [`Source::Body`], `422 Invalid` for a [`Source::Patch`]), become
/// `Warning` headers (via [`crate::warning::add`]) under `Warn`, and are
/// pruned from `obj` in every mode that lets the write proceed. Kinds
/// without a type ([`of`] is `None`) pass unchecked.
pub fn check(
    def: &crate::registry::Def,
    mode: FieldValidation,
    raw: Option<&[u8]>,
    obj: &mut Value,
    source: Source,
) -> ApiResult<()> {
    // A custom resource's unknown fields are the ones its schema does not
    // specify (pruned below, as the apiextensions pruning does).
    let custom = def.custom().and_then(|c| c.schema.as_ref());
    let t = of(def.group, def.version, def.kind);
    if custom.is_none() && t.is_none() {
        return Ok(());
    }
    let fail = |detail: String| match source {
        Source::Body => ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {detail}",
            def.kind, def.version, def.kind
        )),
        Source::Patch => ApiError::invalid(
            "",
            "",
            "",
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {:?}: {detail}", obj.to_string()),
                field: "patch".into(),
            }],
        ),
    };
    let unknown = match (custom, t) {
        (Some(schema), _) => crate::crd::schema::prune(&mut obj.clone(), schema),
        (None, Some(t)) => (t.decode)(&decodable(obj)).map_err(|e| fail(e.go_message(def.kind)))?,
        (None, None) => Vec::new(),
    };
    let duplicates = match (mode, raw) {
        (FieldValidation::Ignore, _) | (_, None) => Vec::new(),
        (_, Some(raw)) => duplicate_fields(raw),
    };
    let messages: Vec<String> = duplicates
        .iter()
        .map(|p| format!("duplicate field {:?}", p.to_string()))
        .chain(
            unknown
                .iter()
                .map(|p| format!("unknown field {:?}", p.to_string())),
        )
        .collect();
    match mode {
        FieldValidation::Strict if !messages.is_empty() => {
            return Err(fail(format!(
                "strict decoding error: {}",
                messages.join(", ")
            )));
        }
        FieldValidation::Warn => messages.into_iter().for_each(crate::warning::add),
        _ => {}
    }
    for p in &unknown {
        prune(obj, p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(v: Vec<FieldPath>) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn unknown_fields_are_found_with_their_paths() {
        let pod = of("", "v1", "Pod").unwrap();
        let obj = json!({
            "metadata": {"name": "p", "bogus": 1},
            "spec": {"foo": true, "containers": [{"name": "c", "image": "i", "imagePullPolcy": "x"}]},
        });
        let unknown = (pod.decode)(&decodable(&obj)).unwrap();
        assert_eq!(
            paths(unknown),
            vec![
                "metadata.bogus",
                "spec.containers[0].imagePullPolcy",
                "spec.foo",
            ]
        );
    }

    #[test]
    fn type_errors_carry_the_field_path() {
        let deploy = of("apps", "v1", "Deployment").unwrap();
        let obj = json!({"metadata": {"name": "d"}, "spec": {"replicas": "three"}});
        let e = (deploy.decode)(&decodable(&obj)).unwrap_err();
        assert_eq!(e.path, "spec.replicas");
        assert!(
            e.go_message("Deployment")
                == "json: cannot unmarshal string into Go struct field Deployment.spec.replicas of type int32",
            "{}",
            e.go_message("Deployment")
        );
        let pod = of("", "v1", "Pod").unwrap();
        let obj = json!({"spec": {"containers": [{"name": 5}]}});
        assert_eq!(
            (pod.decode)(&decodable(&obj)).unwrap_err().path,
            "spec.containers[0].name"
        );
    }

    #[test]
    fn nulls_missing_required_fields_and_quantities_decode() {
        let pod = of("", "v1", "Pod").unwrap();
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "creationTimestamp": null},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}], "volumes": null},
        });
        assert_eq!((pod.decode)(&decodable(&obj)).unwrap(), vec![]);
        assert_eq!((pod.decode)(&decodable(&json!({}))).unwrap(), vec![]);
    }

    #[test]
    fn duplicates_are_found_on_raw_bytes() {
        let raw = br#"{"metadata":{"name":"a","name":"b"},"spec":{"containers":[{"name":"c","image":"x","image":"y"}]},"spec":{}}"#;
        assert_eq!(
            paths(duplicate_fields(raw)),
            vec!["metadata.name", "spec.containers[0].image", "spec"]
        );
        assert!(duplicate_fields(b"{\"a\":1}").is_empty());
    }

    #[test]
    fn prune_removes_only_the_named_member() {
        let mut obj = json!({"spec": {"containers": [{"name": "c", "x": 1}], "y": 2}});
        prune(
            &mut obj,
            &FieldPath(vec![
                Segment::Key("spec".into()),
                Segment::Key("containers".into()),
                Segment::Index(0),
                Segment::Key("x".into()),
            ]),
        );
        prune(&mut obj, &FieldPath(vec![Segment::Key("nope".into())]));
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"name": "c"}], "y": 2}})
        );
    }

    #[test]
    fn field_validation_values() {
        assert_eq!(
            FieldValidation::parse(None, "CreateOptions").unwrap(),
            FieldValidation::Warn
        );
        assert_eq!(
            FieldValidation::parse(Some("Strict"), "CreateOptions").unwrap(),
            FieldValidation::Strict
        );
        let e = FieldValidation::parse(Some("strict"), "PatchOptions").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
    }

    #[test]
    fn every_registry_kind_has_a_type() {
        for d in crate::registry::RESOURCES {
            assert!(of(d.group, d.version, d.kind).is_some(), "{}", d.kind);
        }
    }
}
