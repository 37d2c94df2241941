//! The resource registry: every served kind as one row of data.
//!
//! A [`ResourceDef`] says what kube-apiserver's per-kind strategy files say
//! (k8s.io/kubernetes/pkg/registry/*/strategy.go): scope, subresources, whether
//! `metadata.generation` tracks spec changes, the selectable fields, and the
//! small per-kind hooks of a [`Strategy`]. The REST layer ([`crate::rest`]) is
//! written once against this table (STYLE 4, 12).

use crate::meta;
use serde_json::{Value, json};
use vkube_core::field::FieldError;
use vkube_core::{apivalidation as validate, defaults};

/// Per-kind behaviour hooks, applied by the generic REST layer.
#[derive(Clone, Copy)]
pub struct Strategy {
    /// The kind's `SetDefaults_*` (k8s.io/kubernetes pkg/apis/*/v1/defaults.go),
    /// which kube-apiserver applies when it decodes a body: runs on every
    /// create (after system metadata and the status reset, before
    /// `prepare_create`) and on every write of the main resource (before
    /// `prepare_update`). Must tolerate malformed input.
    pub default: fn(&mut Value),
    /// Fills server-side fields of a new object (after system metadata, before
    /// validation), e.g. a Pod's `status.phase: Pending`.
    pub prepare_create: fn(&mut Value),
    /// Adjusts an object on every update of the main resource.
    pub prepare_update: fn(&mut Value, &Value),
    /// Grace period, in seconds, for a delete of this object given the
    /// requested `gracePeriodSeconds`; `0` deletes at once. `None` means the
    /// kind has no graceful deletion.
    pub grace_period: Option<fn(&Value, Option<i64>) -> i64>,
    /// Whether something besides `metadata.finalizers` still holds a deleted
    /// object (a Namespace's `spec.finalizers`).
    pub holds_deletion: fn(&Value) -> bool,
    /// Applied to the object when its deletion starts (a Namespace turns
    /// `Terminating`).
    pub begin_deletion: fn(&mut Value),
    /// The kind's `Validate` (pkg/apis/*/validation) of a new object, after
    /// `prepare_create`; its errors join the ObjectMeta ones in one `422 Invalid`.
    pub validate_create: fn(&Value) -> Vec<FieldError>,
    /// The kind's `ValidateUpdate(new, old)` for writes of the main resource
    /// (immutable fields; includes the create checks of `new`); errors as
    /// for `validate_create`.
    pub validate_update: fn(&Value, &Value) -> Vec<FieldError>,
    /// Adjusts the object a write to `status` stores (new, old), after only
    /// its status was taken from the request.
    pub prepare_status_update: fn(&mut Value, &Value),
    /// The kind's update validation of a write to subresource `status` or
    /// `approval` (`new`, `old`); none by default.
    pub validate_subresource_update: fn(&str, &Value, &Value) -> Vec<FieldError>,
}

pub(crate) const PLAIN: Strategy = Strategy {
    default: |_| {},
    prepare_create: |_| {},
    prepare_update: |_, _| {},
    grace_period: None,
    holds_deletion: |_| false,
    begin_deletion: |_| {},
    validate_create: |_| Vec::new(),
    validate_update: |_, _| Vec::new(),
    validate_subresource_update: |_, _, _| Vec::new(),
    prepare_status_update: |_, _| {},
};

/// ResourceClaims ([`crate::dra`]): the spec is set once.
const RESOURCE_CLAIM: Strategy = Strategy {
    default: crate::dra::default_claim,
    validate_create: crate::dra::validate_claim,
    validate_update: |new, old| crate::dra::spec_immutable(new, old, crate::dra::validate_claim),
    ..PLAIN
};

/// ResourceClaimTemplates ([`crate::dra`]): the spec is set once.
const RESOURCE_CLAIM_TEMPLATE: Strategy = Strategy {
    default: crate::dra::default_claim_template,
    validate_create: crate::dra::validate_claim_template,
    validate_update: |new, old| {
        crate::dra::spec_immutable(new, old, crate::dra::validate_claim_template)
    },
    ..PLAIN
};

/// DeviceClasses ([`crate::dra`]): selectors that compile.
const DEVICE_CLASS: Strategy = Strategy {
    validate_create: crate::dra::validate_device_class,
    validate_update: crate::dra::validate_device_class_update,
    ..PLAIN
};

/// ResourceSlices ([`crate::dra`]).
const RESOURCE_SLICE: Strategy = Strategy {
    validate_create: |obj| crate::dra::validate_slice(obj, None),
    validate_update: |new, old| crate::dra::validate_slice(new, Some(old)),
    ..PLAIN
};

/// CertificateSigningRequests ([`crate::certificates`]).
const CSR: Strategy = Strategy {
    prepare_create: crate::certificates::prepare_create,
    prepare_update: crate::certificates::prepare_update,
    validate_create: crate::certificates::validate_create,
    validate_update: |new, old| crate::certificates::validate_update(None, new, old),
    validate_subresource_update: |sub, new, old| {
        crate::certificates::validate_update(Some(sub), new, old)
    },
    prepare_status_update: crate::certificates::status_update,
    ..PLAIN
};

/// MutatingWebhookConfigurations ([`crate::webhook::config`]): the v1
/// defaults and kube's validation.
const MUTATING_WEBHOOKS: Strategy = Strategy {
    default: |c| crate::webhook::config::set_defaults(c, crate::webhook::config::Phase::Mutating),
    validate_create: |c| {
        crate::webhook::config::validate(c, crate::webhook::config::Phase::Mutating)
    },
    validate_update: |c, _| {
        crate::webhook::config::validate(c, crate::webhook::config::Phase::Mutating)
    },
    ..PLAIN
};

/// ValidatingWebhookConfigurations ([`crate::webhook::config`]): the v1
/// defaults and kube's validation.
const VALIDATING_WEBHOOKS: Strategy = Strategy {
    default: |c| crate::webhook::config::set_defaults(c, crate::webhook::config::Phase::Validating),
    validate_create: |c| {
        crate::webhook::config::validate(c, crate::webhook::config::Phase::Validating)
    },
    validate_update: |c, _| {
        crate::webhook::config::validate(c, crate::webhook::config::Phase::Validating)
    },
    ..PLAIN
};

/// ValidatingAdmissionPolicies ([`crate::admission_policy`]): the v1
/// defaults and kube's validation.
const ADMISSION_POLICY: Strategy = Strategy {
    default: crate::admission_policy::set_policy_defaults,
    validate_create: crate::admission_policy::validate_policy,
    validate_update: |p, _| crate::admission_policy::validate_policy(p),
    ..PLAIN
};

/// ValidatingAdmissionPolicyBindings ([`crate::admission_policy`]).
const ADMISSION_POLICY_BINDING: Strategy = Strategy {
    default: crate::admission_policy::set_binding_defaults,
    validate_create: crate::admission_policy::validate_binding,
    validate_update: |b, _| crate::admission_policy::validate_binding(b),
    ..PLAIN
};

/// CustomResourceDefinitions ([`crate::crd`]): names and versions
/// validated, the accepted names and conditions kept in status, and a
/// deletion held until the definition's objects are gone.
const CRD: Strategy = Strategy {
    default: crate::crd::default_crd,
    prepare_create: crate::crd::prepare_create,
    prepare_update: crate::crd::prepare_update,
    validate_create: crate::crd::validate_create,
    validate_update: crate::crd::validate_update,
    holds_deletion: crate::crd::holds_deletion,
    begin_deletion: crate::crd::begin_deletion,
    prepare_status_update: crate::crd::prepare_status_update,
    ..PLAIN
};

/// A built-in admission plugin that acts on one kind (ResourceQuota, which
/// acts on every namespaced kind, is not listed). Run in this order, each
/// in its phase ([`Admission::runs_in`]; [`crate::rest`]'s admission
/// module).
#[derive(Clone, Copy, Debug)]
pub enum Admission {
    /// LimitRanger: container defaults from the namespace's LimitRanges
    /// (create).
    LimitRanger,
    /// Priority on a pod: priority and preemptionPolicy from its class
    /// (create).
    PodPriority,
    /// Priority on a PriorityClass: at most one `globalDefault` (create
    /// and update).
    SingleGlobalDefault,
    /// DefaultStorageClass / DefaultIngressClass: the default class's name
    /// into a field left unset (create).
    DefaultClass(DefaultClass),
    /// PodSecurity: the server's enforced Pod Security level
    /// ([`crate::rest::ApiConfig::pod_security`]) on pod creates and
    /// `ephemeralcontainers` updates.
    PodSecurity,
    /// StorageObjectInUseProtection: a new PersistentVolumeClaim gets the
    /// `kubernetes.io/pvc-protection` finalizer, a new PersistentVolume
    /// `kubernetes.io/pv-protection`, which the pvc-protection and
    /// pv-protection controllers remove once nothing uses the object
    /// (create).
    StorageObjectInUseProtection,
    /// DRA admin access (the ResourceClaim and ResourceClaimTemplate
    /// strategies' `AuthorizedForAdmin`): a request asking for
    /// `adminAccess` needs the namespace labelled
    /// `resource.kubernetes.io/admin-access: "true"` (create). Holds the
    /// JSON pointer of the kind's device requests.
    DraAdminAccess(&'static str),
    /// CertificateSubjectRestriction, CertificateApproval: no
    /// `kube-apiserver-client` request for the `system:masters` group
    /// (create), and approving needs the `approve` verb on the request's
    /// signer ([`crate::certificates`]).
    Certificates,
    /// RBAC escalation prevention on Roles, ClusterRoles and their
    /// bindings ([`crate::filters::authorization::escalation`]; kube applies it in
    /// the RBAC kinds' storage) (create and update).
    RbacEscalation,
    /// ValidatingAdmissionPolicy and binding param access (kube's
    /// `authz.go` of both kinds): whoever points a policy at a `paramKind`
    /// must be able to `get` all of its objects, and whoever points a
    /// binding at params must be able to `get` (by name) or `list` them,
    /// since messages and warnings can reveal them (create and update).
    PolicyParamAccess,
}

impl Admission {
    /// Whether the plugin also acts on updates.
    pub fn on_update(self) -> bool {
        matches!(
            self,
            Admission::SingleGlobalDefault
                | Admission::PodSecurity
                | Admission::Certificates
                | Admission::RbacEscalation
                | Admission::PolicyParamAccess
        )
    }

    /// Whether the plugin runs in the validating phase (after the mutating
    /// webhooks and the kind's validation), else in the mutating phase
    /// (before the mutating webhooks). LimitRanger only defaults here (its
    /// min/max checks are not done), so it is a mutating plugin.
    pub fn runs_in(self, validating: bool) -> bool {
        match self {
            Admission::PodSecurity
            | Admission::SingleGlobalDefault
            | Admission::DraAdminAccess(_)
            | Admission::Certificates
            | Admission::RbacEscalation
            | Admission::PolicyParamAccess => validating,
            Admission::LimitRanger
            | Admission::PodPriority
            | Admission::DefaultClass(_)
            | Admission::StorageObjectInUseProtection => !validating,
        }
    }
}

/// Where a kind names its class and how the default class is marked.
#[derive(Clone, Copy, Debug)]
pub struct DefaultClass {
    /// Group of the class kind.
    pub class_group: &'static str,
    /// Plural of the class kind (version `v1`).
    pub class_resource: &'static str,
    /// The `spec` field holding the class name.
    pub field: &'static str,
    /// An annotation that names a class the legacy way (then nothing is set).
    pub legacy_annotation: &'static str,
    /// Annotations marking a default class with `"true"`.
    pub default_annotations: &'static [&'static str],
}

/// A claim's default StorageClass (DefaultStorageClass admission).
const DEFAULT_STORAGE_CLASS: DefaultClass = DefaultClass {
    class_group: "storage.k8s.io",
    class_resource: "storageclasses",
    field: "storageClassName",
    legacy_annotation: "volume.beta.kubernetes.io/storage-class",
    default_annotations: &[
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ],
};

/// An Ingress's default IngressClass (DefaultIngressClass admission).
const DEFAULT_INGRESS_CLASS: DefaultClass = DefaultClass {
    class_group: "networking.k8s.io",
    class_resource: "ingressclasses",
    field: "ingressClassName",
    legacy_annotation: "kubernetes.io/ingress.class",
    default_annotations: &["ingressclass.kubernetes.io/is-default-class"],
};

/// Which names a kind accepts (k8s.io/apimachinery/pkg/api/validation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (`NameIsDNSSubdomain`), the default.
    Subdomain,
    /// DNS-1123 label (`NameIsDNSLabel`): namespaces, services.
    Label,
    /// Any single URL path segment (`ValidatePathSegmentName`): RBAC
    /// objects, nodes, events.
    PathSegment,
}

/// The `scale` subresource (autoscaling/v1 Scale) of a workload kind.
#[derive(Clone, Copy, Debug)]
pub struct ScaleDef {
    /// JSON path segments of the desired replica count.
    pub spec_replicas: &'static [&'static str],
    /// JSON path segments of the observed replica count.
    pub status_replicas: &'static [&'static str],
    /// JSON path segments of the metav1.LabelSelector the Scale's
    /// `status.selector` string is rendered from (a custom resource's
    /// `labelSelectorPath` names the string itself).
    pub selector: &'static [&'static str],
    /// The Scale's `spec.replicas` when the object sets none: a workload's
    /// default (1); 0 for a custom resource, as the CRD scale subresource
    /// reads an unset field.
    pub unset_replicas: i64,
}

const WORKLOAD_SCALE: ScaleDef = ScaleDef {
    spec_replicas: &["spec", "replicas"],
    status_replicas: &["status", "replicas"],
    selector: &["spec", "selector"],
    unset_replicas: 1,
};

/// Storage key prefix of a custom resource's objects (every version of a
/// CRD shares it), apart from all built-in and internal keys.
pub fn custom_prefix(group: &str, plural: &str) -> String {
    format!("/customresources/{group}/{plural}/")
}

/// One served resource.
#[derive(Clone, Copy)]
pub struct ResourceDef {
    /// API group; empty for core/v1.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural lower-case resource name (URL segment).
    pub resource: &'static str,
    /// Kind of the objects.
    pub kind: &'static str,
    /// Singular name (discovery).
    pub singular: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// kubectl short names (discovery).
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all` (discovery).
    pub categories: &'static [&'static str],
    /// Has a `status` subresource: main-resource writes keep the stored status
    /// and status writes change only `status`.
    pub status: bool,
    /// Has a `scale` subresource.
    pub scale: Option<ScaleDef>,
    /// Has the pod `binding` subresource.
    pub binding: bool,
    /// Has the pod `eviction` subresource ([`crate::rest`]'s eviction
    /// module: a delete PodDisruptionBudgets may refuse).
    pub eviction: bool,
    /// Has the pod connect subresources `attach`, `exec`, `log` and
    /// `portforward` (served by [`crate::connect`] through the server's
    /// [`vkube_core::connect::PodConnector`]).
    pub connect: bool,
    /// Has the pod `ephemeralcontainers` subresource: writes change only
    /// `spec.ephemeralContainers`, validated by
    /// `ValidatePodEphemeralContainersUpdate`.
    pub ephemeral_containers: bool,
    /// Has the `proxy` subresource (pods and Services: any request passed
    /// to the object's port, served by [`crate::connect::serve_proxy`];
    /// nodes: refused, see [`crate::connect::refuse_node_proxy`]).
    pub proxy: bool,
    /// Has the namespace `finalize` subresource (writes only `spec.finalizers`).
    pub finalize: bool,
    /// Has the service account `token` subresource (TokenRequest, served by
    /// [`crate::serviceaccount`]).
    pub token_request: bool,
    /// Has the CertificateSigningRequest `approval` subresource (writes
    /// change only `status.conditions`).
    pub approval: bool,
    /// `metadata.generation` starts at 1 and is bumped when anything outside
    /// `metadata` and `status` changes.
    pub generation: bool,
    /// Field selector keys beyond `metadata.name` and `metadata.namespace`,
    /// with where each value is read and what an unset field compares as.
    pub field_selectors: &'static [SelectableField],
    /// PUT of a missing object creates it.
    pub allow_create_on_update: bool,
    /// An immediate delete answers with the deleted object instead of a
    /// `Status` (kube-apiserver's `ReturnDeletedObject`).
    pub return_deleted_object: bool,
    /// Per-kind hooks.
    pub strategy: Strategy,
    /// Which names are valid.
    pub name_rule: NameRule,
    /// Whether a create keeps the `status` the client sent (only Node: a
    /// kubelet registers its node with status); other kinds with a status
    /// subresource start with an empty status, as their PrepareForCreate does.
    pub status_on_create: bool,
    /// Objects of this kind that may never be deleted (`403 Forbidden`).
    pub undeletable: &'static [&'static str],
    /// The built-in admission plugins acting on this kind, in order.
    pub admission: &'static [Admission],
    /// Why an [`ResourceDef::undeletable`] object may not be deleted (the
    /// `403` message); empty: `this <singular> may not be deleted`.
    pub undeletable_why: &'static str,
    /// Objects hold ClusterIPs and NodePorts reserved through
    /// [`crate::alloc`] (Services): allocated on create/update, released on
    /// delete, as the service REST storage does.
    pub allocates: bool,
    /// Objects are stored as another version's
    /// ([`crate::conversion::Conversion`]): autoscaling/v1 over autoscaling/v2,
    /// events.k8s.io/v1 over core/v1 Events. `None`: stored as served.
    pub conversion: Option<&'static crate::conversion::Conversion>,
    /// Objects are computed on every read, never stored: only `get` and
    /// `list` are served.
    pub computed: Option<Computed>,
    /// `DELETE` of the collection is served (all kinds but namespaces,
    /// whose storage has no collection delete upstream).
    pub delete_collection: bool,
    /// Set on custom resource versions only ([`crate::crd`]): the
    /// CustomResourceDefinition's storage version. Objects are stored with
    /// its `apiVersion` under their own key space (`/customresources/…`,
    /// apart from every built-in and internal key) and every read rewrites
    /// `apiVersion` to the version asked for (conversion strategy `None`,
    /// the apiextensions-apiserver's `nopConverter`), whatever version was
    /// the storage one when the object was written.
    pub stored_version: Option<&'static str>,
}

/// A served resource: a row of [`RESOURCES`], or one served version of a
/// CustomResourceDefinition ([`crate::crd`]), which lives as long as the
/// table it came from. Dereferences to the [`ResourceDef`] the REST layer
/// reads either way.
#[derive(Clone)]
pub enum Def {
    /// A built-in kind.
    Builtin(&'static ResourceDef),
    /// A custom resource version.
    Custom(std::sync::Arc<crate::crd::CustomVersion>),
}

impl std::ops::Deref for Def {
    type Target = ResourceDef;

    fn deref(&self) -> &ResourceDef {
        match self {
            Def::Builtin(d) => d,
            Def::Custom(c) => &c.def,
        }
    }
}

impl Def {
    /// The CustomResourceDefinition version behind a custom resource.
    pub fn custom(&self) -> Option<&crate::crd::CustomVersion> {
        match self {
            Def::Builtin(_) => None,
            Def::Custom(c) => Some(c),
        }
    }
}

/// What a [`ResourceDef::computed`] kind reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Computed {
    /// core/v1 ComponentStatuses: the health of this server's own parts
    /// (kube-apiserver's componentstatus REST probes etcd, the scheduler
    /// and the controller manager; see [`crate::rest`]).
    ComponentStatuses,
    /// networking.k8s.io/v1 IPAddresses: the ClusterIPs the allocator
    /// holds ([`crate::alloc::ip_addresses`]).
    IpAddresses,
    /// networking.k8s.io/v1 ServiceCIDRs: the allocator's one range as
    /// `kubernetes` ([`crate::alloc::service_cidr_object`]).
    ServiceCidrs,
}

/// The verbs of a stored kind (discovery).
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceDef {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The qualified resource for error messages.
    pub fn group_resource(&self) -> crate::error::GroupResource {
        crate::error::GroupResource::new(self.group, self.resource)
    }

    /// Storage key prefix of all objects: `/{group or core}/{resource}/`
    /// of the stored resource (the [`ResourceDef::conversion`]'s storage for
    /// a converted version); `/customresources/{group}/{resource}/` for a
    /// custom resource.
    pub fn prefix(&self) -> String {
        if self.stored_version.is_some() {
            return custom_prefix(self.group, self.resource);
        }
        let (group, resource) = match self.conversion {
            Some(c) => (c.storage_group, c.storage_resource),
            None => (self.group, self.resource),
        };
        let g = if group.is_empty() { "core" } else { group };
        format!("/{g}/{resource}/")
    }

    /// The verbs served (discovery): get and list for a computed kind.
    pub fn verbs(&self) -> &'static [&'static str] {
        match (self.computed, self.delete_collection) {
            (Some(_), _) => &["get", "list"],
            (None, false) => &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ],
            (None, true) => VERBS,
        }
    }

    /// Whether stored objects differ from this version's
    /// ([`ResourceDef::conversion`], [`ResourceDef::stored_version`]).
    pub fn converts(&self) -> bool {
        self.conversion.is_some() || self.stored_version.is_some()
    }

    /// A stored object in this version's form.
    pub fn from_storage(&self, mut obj: Value) -> Value {
        match (self.conversion, self.stored_version) {
            (Some(c), _) => (c.from_storage)(obj),
            (None, Some(_)) => {
                obj["apiVersion"] = json!(self.api_version());
                obj
            }
            (None, None) => obj,
        }
    }

    /// An object of this version in its stored form.
    pub fn to_storage(&self, mut obj: Value) -> Value {
        match (self.conversion, self.stored_version) {
            (Some(c), _) => (c.to_storage)(obj),
            (None, Some(stored)) => {
                obj["apiVersion"] = json!(format!("{}/{stored}", self.group));
                obj
            }
            (None, None) => obj,
        }
    }

    /// Storage key prefix of one namespace's objects, or of all objects.
    pub fn collection_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.collection_prefix(namespace))
    }

    /// Whether `field` may be used in a field selector for this kind.
    pub fn selectable(&self, field: &str) -> bool {
        field == "metadata.name"
            || (self.namespaced && field == "metadata.namespace")
            || self.field_selectors.iter().any(|f| f.name == field)
    }

    /// Names of the subresources served (discovery).
    pub fn subresources(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.status {
            out.push("status");
        }
        if self.scale.is_some() {
            out.push("scale");
        }
        if self.binding {
            out.push("binding");
        }
        if self.eviction {
            out.push("eviction");
        }
        if self.connect {
            out.extend(["attach", "exec", "log", "portforward"]);
        }
        if self.ephemeral_containers {
            out.push("ephemeralcontainers");
        }
        if self.proxy {
            out.push("proxy");
        }
        if self.finalize {
            out.push("finalize");
        }
        if self.token_request {
            out.push("token");
        }
        if self.approval {
            out.push("approval");
        }
        out
    }
}

pub(crate) const fn def(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceDef {
    ResourceDef {
        group,
        version,
        resource,
        kind,
        singular,
        namespaced,
        short_names: &[],
        categories: &[],
        status: false,
        scale: None,
        binding: false,
        eviction: false,
        connect: false,
        ephemeral_containers: false,
        proxy: false,
        finalize: false,
        token_request: false,
        approval: false,
        generation: false,
        field_selectors: &[],
        allow_create_on_update: false,
        return_deleted_object: false,
        strategy: PLAIN,
        name_rule: NameRule::Subdomain,
        status_on_create: false,
        undeletable: &[],
        undeletable_why: "",
        admission: &[],
        allocates: false,
        conversion: None,
        computed: None,
        delete_collection: true,
        stored_version: None,
    }
}

/// Pods: `status.phase` starts Pending; graceful deletion as
/// pkg/registry/core/pod/strategy.go `CheckGracefulDelete`: a pod not bound to
/// a node, or already Succeeded/Failed, is deleted at once; otherwise the
/// requested grace period, else `spec.terminationGracePeriodSeconds`, else 30.
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() || matches!(phase, Some("Succeeded" | "Failed")) {
        return 0;
    }
    let period = requested
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30);
    // A negative period means "as soon as possible", which is one second.
    if period < 0 { 1 } else { period }
}

/// The pod's QoS class as `qos.GetPodQOS` computes it from the containers'
/// cpu/memory requests and limits: `BestEffort` with none, `Guaranteed` when
/// every container limits both and requests equal limits, else `Burstable`.
fn pod_qos_class(pod: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"].into_iter().flat_map(|l| {
        pod.pointer(&format!("/spec/{l}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    });
    for c in containers {
        let req = c.pointer("/resources/requests");
        let lim = c.pointer("/resources/limits");
        for r in ["cpu", "memory"] {
            let rq = req.and_then(|m| m.get(r));
            let lm = lim.and_then(|m| m.get(r));
            any |= rq.is_some() || lm.is_some();
            if lm.is_none() || rq.is_some_and(|q| Some(q) != lm) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

const POD: Strategy = Strategy {
    default: defaults::pod,
    prepare_create: |pod| {
        let qos = pod_qos_class(pod);
        let status = meta::ensure_object(pod, "status");
        status.insert("phase".into(), json!("Pending"));
        status.insert("qosClass".into(), json!(qos));
    },
    // Priority admission on update: a body without the priority or the
    // preemption policy the pod was admitted with keeps them.
    prepare_update: |new, old| {
        for field in ["priority", "preemptionPolicy"] {
            if new
                .pointer(&format!("/spec/{field}"))
                .is_none_or(Value::is_null)
                && let Some(v) = old.pointer(&format!("/spec/{field}")).cloned()
                && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.insert(field.into(), v);
            }
        }
    },
    grace_period: Some(pod_grace_period),
    validate_create: validate::pod_create,
    validate_update: validate::pod_update,
    ..PLAIN
};

/// Services: defaults, the IP-family fields of the REST storage, an empty
/// `status.loadBalancer` as kube-apiserver returns it, and the update rules
/// of `vkube_core::service::prepare_update`. Addresses come from
/// [`crate::alloc`] (see [`ResourceDef::allocates`]).
const SERVICE: Strategy = Strategy {
    default: defaults::service,
    prepare_create: |s| {
        defaults::service_ip_families(s);
        s["status"] = json!({"loadBalancer": {}});
    },
    prepare_update: |s, old| {
        vkube_core::service::prepare_update(s, old);
        defaults::service_ip_families(s);
    },
    validate_create: validate::service,
    validate_update: validate::service_update,
    ..PLAIN
};

const DEPLOYMENT: Strategy = Strategy {
    default: defaults::deployment,
    validate_create: validate::deployment,
    validate_update: validate::deployment_update,
    ..PLAIN
};

const REPLICA_SET: Strategy = Strategy {
    default: defaults::replica_set,
    validate_create: validate::replica_set,
    validate_update: validate::replica_set_update,
    ..PLAIN
};

const REPLICATION_CONTROLLER: Strategy = Strategy {
    default: defaults::replication_controller,
    validate_create: validate::replication_controller,
    validate_update: |new, _| validate::replication_controller(new),
    ..PLAIN
};

const STATEFUL_SET: Strategy = Strategy {
    default: defaults::stateful_set,
    validate_create: validate::stateful_set,
    validate_update: validate::stateful_set_update,
    ..PLAIN
};

const DAEMON_SET: Strategy = Strategy {
    default: defaults::daemon_set,
    validate_create: validate::daemon_set,
    validate_update: validate::daemon_set_update,
    ..PLAIN
};

/// Jobs: defaults, and the selector batch's `PrepareForCreate` generates
/// from the uid unless `spec.manualSelector`.
const JOB: Strategy = Strategy {
    default: defaults::job,
    prepare_create: |j| {
        let (name, uid) = (meta::name(j).to_string(), meta::uid(j).to_string());
        defaults::job_generate_selector(j, &name, &uid);
    },
    validate_create: validate::job,
    validate_update: validate::job_update,
    ..PLAIN
};

const CRON_JOB: Strategy = Strategy {
    default: defaults::cron_job,
    validate_create: validate::cron_job,
    validate_update: validate::cron_job_update,
    ..PLAIN
};

const CONFIG_MAP: Strategy = Strategy {
    validate_create: validate::config_map,
    validate_update: validate::config_map_update,
    ..PLAIN
};

const PERSISTENT_VOLUME: Strategy = Strategy {
    default: defaults::persistent_volume,
    prepare_create: |pv| {
        pv["status"] = json!({"phase": "Pending"});
    },
    ..PLAIN
};

const PRIORITY_CLASS: Strategy = Strategy {
    default: defaults::priority_class,
    validate_create: validate::priority_class,
    validate_update: validate::priority_class_update,
    ..PLAIN
};

const HPA: Strategy = Strategy {
    default: defaults::horizontal_pod_autoscaler,
    validate_create: validate::horizontal_pod_autoscaler,
    validate_update: |new, _| validate::horizontal_pod_autoscaler(new),
    ..PLAIN
};

/// autoscaling/v1 HorizontalPodAutoscalers: v1's own default (minReplicas
/// 1), then the autoscaling/v2 validation of the converted object, as
/// kube-apiserver validates the internal form whatever the version.
const HPA_V1: Strategy = Strategy {
    default: |obj| {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.entry("minReplicas").or_insert(json!(1));
        }
    },
    validate_create: |obj| {
        validate::horizontal_pod_autoscaler(&crate::conversion::hpa_v1_to_v2(obj.clone()))
    },
    validate_update: |new, _| {
        validate::horizontal_pod_autoscaler(&crate::conversion::hpa_v1_to_v2(new.clone()))
    },
    ..PLAIN
};

const PVC: Strategy = Strategy {
    default: defaults::persistent_volume_claim,
    validate_create: validate::persistent_volume_claim,
    ..PLAIN
};

const ENDPOINTS: Strategy = Strategy {
    default: defaults::endpoints,
    ..PLAIN
};

const ENDPOINT_SLICE: Strategy = Strategy {
    default: defaults::endpoint_slice,
    ..PLAIN
};

const NODE: Strategy = Strategy {
    default: defaults::node,
    ..PLAIN
};

const LIMIT_RANGE: Strategy = Strategy {
    default: defaults::limit_range,
    ..PLAIN
};

const ROLE_BINDING: Strategy = Strategy {
    default: defaults::role_binding,
    ..PLAIN
};

/// Namespaces carry the `kubernetes` finalizer, phase Active, and the
/// immutable `kubernetes.io/metadata.name` label (pkg/registry/core/namespace).
fn namespace_label(ns: &mut Value) {
    let name = meta::name(ns).to_string();
    let labels = meta::ensure_object(meta::ensure_object_value(ns, "metadata"), "labels");
    labels.insert("kubernetes.io/metadata.name".into(), json!(name));
}

const NAMESPACE: Strategy = Strategy {
    prepare_create: |ns| {
        namespace_label(ns);
        ns["spec"] = json!({ "finalizers": ["kubernetes"] });
        ns["status"] = json!({ "phase": "Active" });
    },
    prepare_update: |ns, old| {
        namespace_label(ns);
        // spec.finalizers change only through the finalize subresource.
        ns["spec"] = old.get("spec").cloned().unwrap_or_else(|| json!({}));
    },
    holds_deletion: |ns| {
        ns.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    },
    begin_deletion: |ns| {
        meta::ensure_object(ns, "status").insert("phase".into(), json!("Terminating"));
    },
    ..PLAIN
};

/// `stringData` is write-only: its entries overwrite `data` (base64-encoded)
/// and it is never stored, as core/v1 `Convert_v1_Secret_To_core_Secret` does.
fn fold_string_data(s: &mut Value) {
    use base64::Engine;
    let Some(string_data) = s.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(entries) = string_data.as_object().filter(|m| !m.is_empty()) else {
        return;
    };
    if !s.get("data").is_some_and(Value::is_object) {
        s["data"] = json!({});
    }
    for (k, v) in entries {
        let raw = v.as_str().unwrap_or_default();
        s["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
    }
}

const SECRET: Strategy = Strategy {
    default: defaults::secret,
    prepare_create: fold_string_data,
    prepare_update: |s, _| fold_string_data(s),
    validate_create: validate::secret,
    validate_update: validate::secret_update,
    ..PLAIN
};

/// A field a kind's field selectors may name, as its `*ToSelectableFields`
/// function in kube-apiserver builds the field set: the selector's name, the
/// dotted path its value is read from, and the value an unset field has
/// there (the Go zero value of the field's type, so `spec.unschedulable=false`
/// matches a Node without the field, as upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SelectableField {
    /// The name in `fieldSelector`, e.g. `spec.nodeName`.
    pub name: &'static str,
    /// The dotted JSON path of the value (usually the name).
    pub path: &'static str,
    /// What an absent value compares as: `""`, `"0"` or `"false"`.
    pub zero: &'static str,
}

impl SelectableField {
    /// The value field selector `field` compares against in `obj`, given
    /// the kind's selectable `fields`, as its `*ToSelectableFields` function
    /// renders it: a string as is, a number or bool as its text, and an
    /// unset field as its Go zero value (`""`, `0`, `false`). Other fields
    /// (`metadata.name`, `metadata.namespace`) are read by their path;
    /// absent they compare as `""`.
    pub fn value_in(fields: &[SelectableField], obj: &Value, field: &str) -> Option<String> {
        match fields.iter().find(|f| f.name == field) {
            Some(f) => Some(
                vkube_core::fields::json_field(obj, f.path).unwrap_or_else(|| f.zero.to_string()),
            ),
            None => vkube_core::fields::json_field(obj, field),
        }
    }
}

/// A string field (unset = `""`).
const fn text(name: &'static str) -> SelectableField {
    SelectableField {
        name,
        path: name,
        zero: "",
    }
}

/// A bool field (unset = `false`).
const fn flag(name: &'static str) -> SelectableField {
    SelectableField {
        name,
        path: name,
        zero: "false",
    }
}

/// An integer field (unset = `0`).
const fn count(name: &'static str) -> SelectableField {
    SelectableField {
        name,
        path: name,
        zero: "0",
    }
}

/// The admission configuration group.
const ADMISSION: &str = "admissionregistration.k8s.io";

/// `EventToSelectableFields`; `source` is `source.component`.
const EVENT_FIELDS: &[SelectableField] = &[
    text("involvedObject.kind"),
    text("involvedObject.namespace"),
    text("involvedObject.name"),
    text("involvedObject.uid"),
    text("involvedObject.apiVersion"),
    text("involvedObject.resourceVersion"),
    text("involvedObject.fieldPath"),
    text("reason"),
    text("reportingComponent"),
    SelectableField {
        name: "source",
        path: "source.component",
        zero: "",
    },
    text("type"),
];

/// events.k8s.io/v1 Events: the core/v1 Event fields under their
/// events.k8s.io names (`AddFieldLabelConversionsForEvent`).
const EVENT_V1_FIELDS: &[SelectableField] = &[
    text("regarding.kind"),
    text("regarding.namespace"),
    text("regarding.name"),
    text("regarding.uid"),
    text("regarding.apiVersion"),
    text("regarding.resourceVersion"),
    text("regarding.fieldPath"),
    text("reason"),
    text("reportingController"),
    text("type"),
];

/// The category of the kinds that extend the API (kube-apiserver's
/// `api-extensions`: webhook configurations, admission policies and their
/// bindings, APIServices).
const API_EXTENSIONS: &[&str] = &["api-extensions"];

/// All built-in resources, in discovery order.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        short_names: &["ns"],
        status: true,
        field_selectors: &[text("status.phase")],
        strategy: NAMESPACE,
        finalize: true,
        return_deleted_object: true,
        name_rule: NameRule::Label,
        undeletable: &["default", "kube-system", "kube-public"],
        delete_collection: false,
        ..def("", "v1", "namespaces", "Namespace", "namespace", false)
    },
    ResourceDef {
        short_names: &["po"],
        categories: &["all"],
        status: true,
        binding: true,
        eviction: true,
        connect: true,
        ephemeral_containers: true,
        proxy: true,
        generation: true,
        field_selectors: &[
            text("spec.nodeName"),
            text("spec.restartPolicy"),
            text("spec.schedulerName"),
            text("spec.serviceAccountName"),
            flag("spec.hostNetwork"),
            text("status.phase"),
            text("status.podIP"),
            text("status.nominatedNodeName"),
        ],
        return_deleted_object: true,
        strategy: POD,
        admission: &[
            Admission::LimitRanger,
            Admission::PodPriority,
            Admission::PodSecurity,
        ],
        ..def("", "v1", "pods", "Pod", "pod", true)
    },
    ResourceDef {
        short_names: &["svc"],
        categories: &["all"],
        status: true,
        field_selectors: &[text("spec.clusterIP"), text("spec.type")],
        return_deleted_object: true,
        name_rule: NameRule::Label,
        strategy: SERVICE,
        allocates: true,
        proxy: true,
        ..def("", "v1", "services", "Service", "service", true)
    },
    ResourceDef {
        short_names: &["ep"],
        allow_create_on_update: true,
        strategy: ENDPOINTS,
        ..def("", "v1", "endpoints", "Endpoints", "endpoints", true)
    },
    ResourceDef {
        short_names: &["cm"],
        strategy: CONFIG_MAP,
        ..def("", "v1", "configmaps", "ConfigMap", "configmap", true)
    },
    ResourceDef {
        field_selectors: &[text("type")],
        strategy: SECRET,
        ..def("", "v1", "secrets", "Secret", "secret", true)
    },
    ResourceDef {
        short_names: &["sa"],
        token_request: true,
        ..def(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            "serviceaccount",
            true,
        )
    },
    ResourceDef {
        short_names: &["ev"],
        field_selectors: EVENT_FIELDS,
        allow_create_on_update: true,
        name_rule: NameRule::PathSegment,
        ..def("", "v1", "events", "Event", "event", true)
    },
    ResourceDef {
        short_names: &["cs"],
        computed: Some(Computed::ComponentStatuses),
        ..def(
            "",
            "v1",
            "componentstatuses",
            "ComponentStatus",
            "componentstatus",
            false,
        )
    },
    ResourceDef {
        short_names: &["no"],
        status: true,
        strategy: NODE,
        field_selectors: &[flag("spec.unschedulable")],
        name_rule: NameRule::PathSegment,
        status_on_create: true,
        proxy: true,
        ..def("", "v1", "nodes", "Node", "node", false)
    },
    ResourceDef {
        short_names: &["pvc"],
        status: true,
        strategy: PVC,
        admission: &[
            Admission::DefaultClass(DEFAULT_STORAGE_CLASS),
            Admission::StorageObjectInUseProtection,
        ],
        ..def(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            "persistentvolumeclaim",
            true,
        )
    },
    ResourceDef {
        short_names: &["pv"],
        status: true,
        strategy: PERSISTENT_VOLUME,
        admission: &[Admission::StorageObjectInUseProtection],
        ..def(
            "",
            "v1",
            "persistentvolumes",
            "PersistentVolume",
            "persistentvolume",
            false,
        )
    },
    def("", "v1", "podtemplates", "PodTemplate", "podtemplate", true),
    ResourceDef {
        strategy: REPLICATION_CONTROLLER,
        short_names: &["rc"],
        categories: &["all"],
        status: true,
        scale: Some(WORKLOAD_SCALE),
        generation: true,
        field_selectors: &[count("status.replicas")],
        ..def(
            "",
            "v1",
            "replicationcontrollers",
            "ReplicationController",
            "replicationcontroller",
            true,
        )
    },
    ResourceDef {
        short_names: &["quota"],
        status: true,
        ..def(
            "",
            "v1",
            "resourcequotas",
            "ResourceQuota",
            "resourcequota",
            true,
        )
    },
    ResourceDef {
        short_names: &["limits"],
        strategy: LIMIT_RANGE,
        ..def("", "v1", "limitranges", "LimitRange", "limitrange", true)
    },
    ResourceDef {
        strategy: DEPLOYMENT,
        short_names: &["deploy"],
        categories: &["all"],
        status: true,
        scale: Some(WORKLOAD_SCALE),
        generation: true,
        ..def(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            "deployment",
            true,
        )
    },
    ResourceDef {
        strategy: REPLICA_SET,
        short_names: &["rs"],
        categories: &["all"],
        status: true,
        scale: Some(WORKLOAD_SCALE),
        generation: true,
        field_selectors: &[count("status.replicas")],
        ..def(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            "replicaset",
            true,
        )
    },
    ResourceDef {
        strategy: STATEFUL_SET,
        short_names: &["sts"],
        categories: &["all"],
        status: true,
        scale: Some(WORKLOAD_SCALE),
        generation: true,
        ..def(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            "statefulset",
            true,
        )
    },
    ResourceDef {
        short_names: &["ds"],
        categories: &["all"],
        status: true,
        generation: true,
        strategy: DAEMON_SET,
        ..def("apps", "v1", "daemonsets", "DaemonSet", "daemonset", true)
    },
    def(
        "apps",
        "v1",
        "controllerrevisions",
        "ControllerRevision",
        "controllerrevision",
        true,
    ),
    ResourceDef {
        categories: &["all"],
        status: true,
        generation: true,
        field_selectors: &[count("status.successful")],
        strategy: JOB,
        ..def("batch", "v1", "jobs", "Job", "job", true)
    },
    ResourceDef {
        short_names: &["cj"],
        categories: &["all"],
        status: true,
        generation: true,
        strategy: CRON_JOB,
        ..def("batch", "v1", "cronjobs", "CronJob", "cronjob", true)
    },
    ResourceDef {
        allow_create_on_update: true,
        ..def(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            "lease",
            true,
        )
    },
    ResourceDef {
        strategy: ENDPOINT_SLICE,
        ..def(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            "endpointslice",
            true,
        )
    },
    ResourceDef {
        short_names: &["ev"],
        allow_create_on_update: true,
        name_rule: NameRule::PathSegment,
        field_selectors: EVENT_V1_FIELDS,
        conversion: Some(&crate::conversion::EVENTS_V1),
        ..def("events.k8s.io", "v1", "events", "Event", "event", true)
    },
    ResourceDef {
        short_names: &["pdb"],
        status: true,
        generation: true,
        ..def(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            "poddisruptionbudget",
            true,
        )
    },
    ResourceDef {
        allow_create_on_update: true,
        name_rule: NameRule::PathSegment,
        admission: &[Admission::RbacEscalation],
        ..def(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            "role",
            true,
        )
    },
    ResourceDef {
        strategy: ROLE_BINDING,
        allow_create_on_update: true,
        name_rule: NameRule::PathSegment,
        admission: &[Admission::RbacEscalation],
        ..def(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            "rolebinding",
            true,
        )
    },
    ResourceDef {
        allow_create_on_update: true,
        name_rule: NameRule::PathSegment,
        admission: &[Admission::RbacEscalation],
        ..def(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            "clusterrole",
            false,
        )
    },
    ResourceDef {
        strategy: ROLE_BINDING,
        allow_create_on_update: true,
        name_rule: NameRule::PathSegment,
        admission: &[Admission::RbacEscalation],
        ..def(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            "clusterrolebinding",
            false,
        )
    },
    ResourceDef {
        short_names: &["ing"],
        status: true,
        generation: true,
        admission: &[Admission::DefaultClass(DEFAULT_INGRESS_CLASS)],
        ..def(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            "ingress",
            true,
        )
    },
    ResourceDef {
        generation: true,
        ..def(
            "networking.k8s.io",
            "v1",
            "ingressclasses",
            "IngressClass",
            "ingressclass",
            false,
        )
    },
    ResourceDef {
        short_names: &["netpol"],
        generation: true,
        ..def(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            "networkpolicy",
            true,
        )
    },
    ResourceDef {
        short_names: &["ip"],
        computed: Some(Computed::IpAddresses),
        ..def(
            "networking.k8s.io",
            "v1",
            "ipaddresses",
            "IPAddress",
            "ipaddress",
            false,
        )
    },
    ResourceDef {
        computed: Some(Computed::ServiceCidrs),
        ..def(
            "networking.k8s.io",
            "v1",
            "servicecidrs",
            "ServiceCIDR",
            "servicecidr",
            false,
        )
    },
    ResourceDef {
        short_names: &["pc"],
        strategy: PRIORITY_CLASS,
        admission: &[Admission::SingleGlobalDefault],
        undeletable: &["system-node-critical", "system-cluster-critical"],
        undeletable_why: "this is a system priority class and cannot be deleted",
        ..def(
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "PriorityClass",
            "priorityclass",
            false,
        )
    },
    ResourceDef {
        short_names: &["sc"],
        ..def(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "StorageClass",
            "storageclass",
            false,
        )
    },
    def(
        "storage.k8s.io",
        "v1",
        "csidrivers",
        "CSIDriver",
        "csidriver",
        false,
    ),
    def(
        "node.k8s.io",
        "v1",
        "runtimeclasses",
        "RuntimeClass",
        "runtimeclass",
        false,
    ),
    ResourceDef {
        short_names: &["hpa"],
        categories: &["all"],
        status: true,
        generation: true,
        strategy: HPA,
        ..def(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscaler",
            true,
        )
    },
    ResourceDef {
        short_names: &["hpa"],
        categories: &["all"],
        status: true,
        generation: true,
        strategy: HPA_V1,
        conversion: Some(&crate::conversion::AUTOSCALING_V1),
        ..def(
            "autoscaling",
            "v1",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscaler",
            true,
        )
    },
    ResourceDef {
        status: true,
        ..def(
            "storage.k8s.io",
            "v1",
            "volumeattachments",
            "VolumeAttachment",
            "volumeattachment",
            false,
        )
    },
    ResourceDef {
        short_names: &["csr"],
        status: true,
        approval: true,
        admission: &[Admission::Certificates],
        field_selectors: &[text("spec.signerName")],
        strategy: CSR,
        name_rule: NameRule::PathSegment,
        ..def(
            "certificates.k8s.io",
            "v1",
            "certificatesigningrequests",
            "CertificateSigningRequest",
            "certificatesigningrequest",
            false,
        )
    },
    ResourceDef {
        status: true,
        generation: true,
        ..def(
            "flowcontrol.apiserver.k8s.io",
            "v1",
            "flowschemas",
            "FlowSchema",
            "flowschema",
            false,
        )
    },
    ResourceDef {
        status: true,
        generation: true,
        ..def(
            "flowcontrol.apiserver.k8s.io",
            "v1",
            "prioritylevelconfigurations",
            "PriorityLevelConfiguration",
            "prioritylevelconfiguration",
            false,
        )
    },
    ResourceDef {
        generation: true,
        strategy: DEVICE_CLASS,
        ..def(
            "resource.k8s.io",
            "v1",
            "deviceclasses",
            "DeviceClass",
            "deviceclass",
            false,
        )
    },
    ResourceDef {
        status: true,
        strategy: RESOURCE_CLAIM,
        admission: &[Admission::DraAdminAccess("/spec/devices/requests")],
        ..def(
            "resource.k8s.io",
            "v1",
            "resourceclaims",
            "ResourceClaim",
            "resourceclaim",
            true,
        )
    },
    ResourceDef {
        strategy: RESOURCE_CLAIM_TEMPLATE,
        admission: &[Admission::DraAdminAccess("/spec/spec/devices/requests")],
        ..def(
            "resource.k8s.io",
            "v1",
            "resourceclaimtemplates",
            "ResourceClaimTemplate",
            "resourceclaimtemplate",
            true,
        )
    },
    ResourceDef {
        generation: true,
        strategy: RESOURCE_SLICE,
        field_selectors: &[text("spec.nodeName"), text("spec.driver")],
        ..def(
            "resource.k8s.io",
            "v1",
            "resourceslices",
            "ResourceSlice",
            "resourceslice",
            false,
        )
    },
    def(
        "storage.k8s.io",
        "v1",
        "csinodes",
        "CSINode",
        "csinode",
        false,
    ),
    def(
        "storage.k8s.io",
        "v1",
        "csistoragecapacities",
        "CSIStorageCapacity",
        "csistoragecapacity",
        true,
    ),
    ResourceDef {
        categories: API_EXTENSIONS,
        strategy: MUTATING_WEBHOOKS,
        ..def(
            ADMISSION,
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfiguration",
            false,
        )
    },
    ResourceDef {
        categories: API_EXTENSIONS,
        strategy: VALIDATING_WEBHOOKS,
        ..def(
            ADMISSION,
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfiguration",
            false,
        )
    },
    ResourceDef {
        status: true,
        generation: true,
        categories: API_EXTENSIONS,
        strategy: ADMISSION_POLICY,
        admission: &[Admission::PolicyParamAccess],
        ..def(
            ADMISSION,
            "v1",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicy",
            false,
        )
    },
    ResourceDef {
        generation: true,
        categories: API_EXTENSIONS,
        strategy: ADMISSION_POLICY_BINDING,
        admission: &[Admission::PolicyParamAccess],
        ..def(
            ADMISSION,
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybinding",
            false,
        )
    },
    ResourceDef {
        status: true,
        // The local APIServices are created with their Available condition.
        status_on_create: true,
        // `<version>.<group>`: the core one is `v1.`.
        name_rule: NameRule::PathSegment,
        categories: API_EXTENSIONS,
        ..def(
            "apiregistration.k8s.io",
            "v1",
            "apiservices",
            "APIService",
            "apiservice",
            false,
        )
    },
    ResourceDef {
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        status: true,
        generation: true,
        strategy: CRD,
        ..def(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            "customresourcedefinition",
            false,
        )
    },
    ResourceDef {
        short_names: &["vac"],
        ..def(
            "storage.k8s.io",
            "v1",
            "volumeattributesclasses",
            "VolumeAttributesClass",
            "volumeattributesclass",
            false,
        )
    },
];

/// A kind that is created, answered and never stored (kube-apiserver's
/// review REST endpoints: only `create`, the answer is the request with its
/// `status` filled in); served by [`crate::review`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// `authentication.k8s.io` SelfSubjectReview: the caller's user info.
    SelfSubject,
    /// `authentication.k8s.io` TokenReview: whom a bearer token authenticates.
    Token,
    /// `authorization.k8s.io` SubjectAccessReview: may a user do something.
    SubjectAccess,
    /// `authorization.k8s.io` SelfSubjectAccessReview: may the caller.
    SelfSubjectAccess,
    /// `authorization.k8s.io` LocalSubjectAccessReview: a namespaced
    /// SubjectAccessReview.
    LocalSubjectAccess,
    /// `authorization.k8s.io` SelfSubjectRulesReview: what the caller may
    /// do in a namespace.
    SelfSubjectRules,
    /// core/v1 `bindings`: a Binding naming its pod in `metadata.name`,
    /// the legacy form of the pod `binding` subresource (create only,
    /// nothing stored besides the pod's `spec.nodeName`).
    Binding,
}

/// One review kind's discovery row: (group, version, resource, kind,
/// namespaced, what answers it).
pub type ReviewDef = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    Review,
);

/// The review kinds served, in kube-apiserver's discovery order.
pub static REVIEWS: &[ReviewDef] = &[
    ("", "v1", "bindings", "Binding", true, Review::Binding),
    (
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
        Review::SelfSubject,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "TokenReview",
        false,
        Review::Token,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
        Review::LocalSubjectAccess,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        Review::SelfSubjectAccess,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        false,
        Review::SelfSubjectRules,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
        Review::SubjectAccess,
    ),
];

/// The review kind served at `group`/`version`/`resource`, if any.
pub fn lookup_review(group: &str, version: &str, resource: &str) -> Option<&'static ReviewDef> {
    REVIEWS
        .iter()
        .find(|(g, v, r, ..)| *g == group && *v == version && *r == resource)
}

/// The resource served at `group`/`version`/`resource`, if any.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|d| d.group == group && d.version == version && d.resource == resource)
}

/// The served API groups with their versions, in discovery order (core first).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    let stored = RESOURCES.iter().map(|d| (d.group, d.version));
    for (group, version) in stored.chain(REVIEWS.iter().map(|r| (r.0, r.1))) {
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, vs)) if !vs.contains(&version) => vs.push(version),
            Some(_) => {}
            None => out.push((group, vec![version])),
        }
    }
    out
}

/// Whether this server serves anything at `group`/`version`.
pub fn is_served(group: &str, version: &str) -> bool {
    groups()
        .iter()
        .any(|(g, vs)| *g == group && vs.contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_selectable_fields_compare_as_their_go_zero_value() {
        let empty = serde_json::json!({"metadata": {"name": "x"}});
        for def in RESOURCES {
            for f in def.field_selectors {
                assert!(def.selectable(f.name), "{} {}", def.resource, f.name);
                let got = SelectableField::value_in(def.field_selectors, &empty, f.name);
                assert_eq!(got.as_deref(), Some(f.zero), "{} {}", def.resource, f.name);
            }
        }
        let node = lookup("", "v1", "nodes").unwrap();
        let v = |obj: serde_json::Value, field: &str| {
            SelectableField::value_in(node.field_selectors, &obj, field)
        };
        assert_eq!(
            v(empty.clone(), "spec.unschedulable").as_deref(),
            Some("false")
        );
        let cordoned = serde_json::json!({"spec": {"unschedulable": true}});
        assert_eq!(v(cordoned, "spec.unschedulable").as_deref(), Some("true"));
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(
            SelectableField::value_in(pods.field_selectors, &empty, "spec.hostNetwork").as_deref(),
            Some("false")
        );
        let rs = lookup("apps", "v1", "replicasets").unwrap();
        assert_eq!(
            SelectableField::value_in(rs.field_selectors, &empty, "status.replicas").as_deref(),
            Some("0")
        );
        let events = lookup("", "v1", "events").unwrap();
        let ev = serde_json::json!({"source": {"component": "kubelet", "host": "n1"}});
        assert_eq!(
            SelectableField::value_in(events.field_selectors, &ev, "source").as_deref(),
            Some("kubelet"),
            "source is source.component"
        );
    }

    #[test]
    fn keys_and_prefixes() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "web"), "/core/pods/default/web");
        assert_eq!(pods.collection_prefix(None), "/core/pods/");
        let nodes = lookup("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/core/nodes/n1");
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.group_resource().to_string(), "deployments.apps");
        assert_eq!(deploy.subresources(), vec!["status", "scale"]);
    }

    #[test]
    fn secret_string_data_folds_into_data() {
        let mut s = json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "hi"}});
        (SECRET.default)(&mut s);
        (SECRET.prepare_create)(&mut s);
        assert_eq!(s["data"], json!({"a": "eA==", "b": "aGk="}));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn every_listed_kind_is_served_once() {
        let mut seen = std::collections::HashSet::new();
        for d in RESOURCES {
            assert!(
                seen.insert((d.group, d.version, d.resource)),
                "{}",
                d.resource
            );
        }
        assert_eq!(RESOURCES.len(), 59);
        assert!(
            groups()
                .iter()
                .any(|(g, _)| *g == "rbac.authorization.k8s.io")
        );
    }

    #[test]
    fn pod_grace_period_follows_pod_strategy() {
        let unbound = json!({"spec": {}});
        assert_eq!(pod_grace_period(&unbound, Some(30)), 0);
        let bound = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}});
        assert_eq!(pod_grace_period(&bound, None), 5);
        assert_eq!(pod_grace_period(&bound, Some(0)), 0);
        let done = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(pod_grace_period(&done, None), 0);
        let default = json!({"spec": {"nodeName": "n1"}});
        assert_eq!(pod_grace_period(&default, None), 30);
    }
}
