//! `meta.k8s.io/v1` Table and PartialObjectMetadata renderings.
//!
//! Every built-in kind renders the columns kube-apiserver v1.34 gives it: the
//! printers of kubernetes `pkg/printers/internalversion/printers.go`, or, for
//! kinds without one there (Role, ClusterRole, LimitRange), apiserver's default
//! Name and Created At. The columns are data: [`PRINTERS`] lists per resource
//! each column's header, type, description and priority together with a small
//! pure function computing the cell from the stored object, and [`table`] is
//! the one renderer. Like kube-apiserver, the server always renders every
//! column; kubectl shows the priority-1 ones only for `-o wide`.
//!
//! Cells read the stored JSON. Where kube-apiserver would have defaulted a
//! field on decode and vkube stores it unset, the cell uses that default
//! (replicas 1, Service type ClusterIP, port protocol TCP, PVC phase Pending,
//! volume mode Filesystem, CronJob suspend false).

mod descriptions;

use crate::registry::ResourceDef;
use descriptions::*;
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Computes one cell from the object and the time of rendering.
pub type Cell = fn(&Value, Timestamp) -> Value;

/// One Table column: its `TableColumnDefinition` and how its cell is computed.
pub struct Column {
    /// Header (kubectl upper-cases it).
    pub name: &'static str,
    /// `string`, `integer`, `boolean` or `date`.
    pub ty: &'static str,
    /// `name` for the column holding the object's name, else empty.
    pub format: &'static str,
    /// What the column shows (the API documentation of its field).
    pub description: &'static str,
    /// 0: always shown; 1: shown by `kubectl get -o wide`.
    pub priority: u8,
    /// Computes the column's cell.
    pub cell: Cell,
}

/// The Table printer of one resource.
pub struct Printer {
    /// API group of the resource; empty for core/v1.
    pub group: &'static str,
    /// Plural resource name.
    pub resource: &'static str,
    /// The Table's columns, in order.
    pub columns: &'static [Column],
    /// Row conditions (a finished pod's `Completed`), for kinds that have them.
    pub conditions: Option<fn(&Value) -> Option<Value>>,
}

const fn col(
    name: &'static str,
    ty: &'static str,
    description: &'static str,
    cell: Cell,
) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 0,
        cell,
    }
}

const fn wide(
    name: &'static str,
    ty: &'static str,
    description: &'static str,
    cell: Cell,
) -> Column {
    Column {
        priority: 1,
        ..col(name, ty, description, cell)
    }
}

const fn printer(
    group: &'static str,
    resource: &'static str,
    columns: &'static [Column],
) -> Printer {
    Printer {
        group,
        resource,
        columns,
        conditions: None,
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// The printers of the built-in resources.
pub static PRINTERS: &[Printer] = &[
    Printer {
        conditions: Some(pod_conditions),
        ..printer("", "pods", POD)
    },
    printer("", "services", SERVICE),
    printer("", "endpoints", ENDPOINTS),
    printer("", "configmaps", CONFIGMAP),
    printer("", "secrets", SECRET),
    printer("", "serviceaccounts", SERVICEACCOUNT),
    printer("", "events", EVENT),
    printer("", "nodes", NODE),
    printer("", "componentstatuses", COMPONENTSTATUS),
    printer("networking.k8s.io", "servicecidrs", SERVICECIDR),
    printer("networking.k8s.io", "ipaddresses", IPADDRESS),
    printer("", "namespaces", NAMESPACE),
    printer("", "persistentvolumeclaims", PVC),
    printer("", "resourcequotas", RESOURCEQUOTA),
    printer("", "limitranges", DEFAULT_COLUMNS),
    printer("apps", "deployments", DEPLOYMENT),
    printer("apps", "replicasets", REPLICASET),
    printer("apps", "statefulsets", STATEFULSET),
    printer("apps", "daemonsets", DAEMONSET),
    printer("apps", "controllerrevisions", CONTROLLERREVISION),
    printer("batch", "jobs", JOB),
    printer("batch", "cronjobs", CRONJOB),
    printer("coordination.k8s.io", "leases", LEASE),
    printer("discovery.k8s.io", "endpointslices", ENDPOINTSLICE),
    printer("events.k8s.io", "events", EVENT),
    printer("policy", "poddisruptionbudgets", PDB),
    printer(RBAC, "roles", DEFAULT_COLUMNS),
    printer(RBAC, "clusterroles", DEFAULT_COLUMNS),
    printer(RBAC, "rolebindings", ROLEBINDING),
    printer(RBAC, "clusterrolebindings", CLUSTERROLEBINDING),
    printer("", "persistentvolumes", PERSISTENTVOLUME),
    printer("", "podtemplates", PODTEMPLATE),
    printer("", "replicationcontrollers", REPLICATIONCONTROLLER),
    printer(NETWORKING, "ingresses", INGRESS),
    printer(NETWORKING, "ingressclasses", INGRESSCLASS),
    printer(NETWORKING, "networkpolicies", NETWORKPOLICY),
    printer("scheduling.k8s.io", "priorityclasses", PRIORITYCLASS),
    printer(STORAGE, "storageclasses", STORAGECLASS),
    printer(STORAGE, "csidrivers", CSIDRIVER),
    printer("node.k8s.io", "runtimeclasses", RUNTIMECLASS),
    printer("autoscaling", "horizontalpodautoscalers", HPA),
    printer(STORAGE, "volumeattachments", VOLUMEATTACHMENT),
    printer(STORAGE, "csinodes", CSINODE),
    printer(STORAGE, "csistoragecapacities", CSISTORAGECAPACITY),
    printer(STORAGE, "volumeattributesclasses", VOLUMEATTRIBUTESCLASS),
    printer("apiregistration.k8s.io", "apiservices", APISERVICE),
    // kube-apiextensions-server prints CRDs with the default table
    // convertor.
    printer(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        DEFAULT_COLUMNS,
    ),
    printer("certificates.k8s.io", "certificatesigningrequests", CSR),
    printer("flowcontrol.apiserver.k8s.io", "flowschemas", FLOWSCHEMA),
    printer(
        "flowcontrol.apiserver.k8s.io",
        "prioritylevelconfigurations",
        PRIORITYLEVEL,
    ),
    printer("resource.k8s.io", "deviceclasses", DEFAULT_COLUMNS),
    printer("resource.k8s.io", "resourceclaims", RESOURCECLAIM),
    printer("resource.k8s.io", "resourceclaimtemplates", DEFAULT_COLUMNS),
    printer("resource.k8s.io", "resourceslices", RESOURCESLICE),
    printer(
        ADMISSION,
        "mutatingwebhookconfigurations",
        WEBHOOKCONFIGURATION,
    ),
    printer(
        ADMISSION,
        "validatingwebhookconfigurations",
        WEBHOOKCONFIGURATION,
    ),
    printer(ADMISSION, "validatingadmissionpolicies", ADMISSIONPOLICY),
    printer(
        ADMISSION,
        "validatingadmissionpolicybindings",
        ADMISSIONPOLICYBINDING,
    ),
];

const ADMISSION: &str = "admissionregistration.k8s.io";

/// kube-aggregator's APIService table.
const APISERVICE: &[Column] = &[
    NAME,
    col(
        "Service",
        "string",
        D_APISERVICE_SERVICE,
        apiservice_service,
    ),
    col(
        "Available",
        "string",
        D_APISERVICE_AVAILABLE,
        apiservice_available,
    ),
    AGE,
];

const WEBHOOKCONFIGURATION: &[Column] = &[
    NAME,
    col("Webhooks", "integer", D_WEBHOOKS, webhook_count),
    AGE,
];

const ADMISSIONPOLICY: &[Column] = &[
    NAME,
    col("Validations", "integer", D_VAP_VALIDATIONS, vap_validations),
    col("ParamKind", "string", D_VAP_PARAMKIND, vap_param_kind),
    AGE,
];

const ADMISSIONPOLICYBINDING: &[Column] = &[
    NAME,
    col("PolicyName", "string", D_VAPB_POLICY, vapb_policy),
    col("ParamRef", "string", D_VAPB_PARAMREF, vapb_param_ref),
    AGE,
];

/// MaxPods and Replicas are declared `string` and hold integers, as upstream.
const HPA: &[Column] = &[
    NAME,
    col("Reference", "string", D_HPA_REFERENCE, hpa_reference),
    col("Targets", "string", D_HPA_TARGETS, hpa_targets),
    col("MinPods", "string", D_HPA_MIN, hpa_min_pods),
    col("MaxPods", "string", D_HPA_MAX, hpa_max_pods),
    col("Replicas", "string", D_HPA_REPLICAS, hpa_replicas),
    AGE,
];

/// The Attacher column carries the `name` format too, as upstream.
const VOLUMEATTACHMENT: &[Column] = &[
    NAME,
    Column {
        format: "name",
        ..col("Attacher", "string", D_VA_ATTACHER, va_attacher)
    },
    col("PV", "string", D_VA_PV, va_pv),
    col("Node", "string", D_VA_NODE, va_node),
    col("Attached", "boolean", D_VA_ATTACHED, va_attached),
    AGE,
];

const FLOWSCHEMA: &[Column] = &[
    NAME,
    col("PriorityLevel", "string", D_FS_LEVEL, fs_level),
    col(
        "MatchingPrecedence",
        "string",
        D_FS_PRECEDENCE,
        fs_precedence,
    ),
    col(
        "DistinguisherMethod",
        "string",
        D_FS_DISTINGUISHER,
        fs_distinguisher,
    ),
    AGE,
    col(
        "MissingPL",
        "string",
        "references a broken or non-existent PriorityLevelConfiguration",
        fs_missing,
    ),
];

const PRIORITYLEVEL: &[Column] = &[
    NAME,
    col("Type", "string", D_PL_TYPE, pl_type),
    col("NominalConcurrencyShares", "string", D_PL_SHARES, pl_shares),
    col("Queues", "string", D_PL_QUEUES, pl_queues),
    col("HandSize", "string", D_PL_HANDSIZE, pl_hand_size),
    col(
        "QueueLengthLimit",
        "string",
        D_PL_QUEUE_LIMIT,
        pl_queue_limit,
    ),
    AGE,
];

const RESOURCECLAIM: &[Column] = &[
    NAME,
    col("State", "string", D_CLAIM_STATE, claim_state),
    AGE,
];

const RESOURCESLICE: &[Column] = &[
    NAME,
    col("Node", "string", D_SLICE_NODE, slice_node),
    col("Driver", "string", D_SLICE_DRIVER, slice_driver),
    col("Pool", "string", D_SLICE_POOL, slice_pool),
    AGE,
];

/// kube's CSR printer: Age second.
const CSR: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", D_CSR_SIGNER, csr_signer),
    col("Requestor", "string", D_CSR_REQUESTOR, csr_requestor),
    col("RequestedDuration", "string", D_CSR_DURATION, csr_duration),
    col("Condition", "string", D_CSR_CONDITION, csr_condition),
];

const CSINODE: &[Column] = &[
    NAME,
    col("Drivers", "integer", D_CSINODE_DRIVERS, csinode_drivers),
    AGE,
];

/// No Age column, as upstream's.
const CSISTORAGECAPACITY: &[Column] = &[
    NAME,
    col(
        "StorageClassName",
        "string",
        D_CSC_STORAGECLASS,
        csc_storage_class,
    ),
    col("Capacity", "string", D_CSC_CAPACITY, csc_capacity),
];

const VOLUMEATTRIBUTESCLASS: &[Column] = &[
    NAME,
    col("DriverName", "string", D_VAC_DRIVER, vac_driver),
    AGE,
];

const NETWORKING: &str = "networking.k8s.io";
const STORAGE: &str = "storage.k8s.io";

const INGRESS: &[Column] = &[
    NAME,
    col("Class", "string", D_INGRESS_CLASS, ingress_class),
    col("Hosts", "string", D_INGRESS_HOSTS, ingress_hosts),
    col("Address", "string", D_INGRESS_ADDRESS, ingress_address),
    col("Ports", "string", D_INGRESS_PORTS, ingress_ports),
    AGE,
];

const INGRESSCLASS: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        D_INGRESSCLASS_CONTROLLER,
        ingressclass_controller,
    ),
    col(
        "Parameters",
        "string",
        D_INGRESSCLASS_PARAMETERS,
        ingressclass_parameters,
    ),
    AGE,
];

const NETWORKPOLICY: &[Column] = &[
    NAME,
    col(
        "Pod-Selector",
        "string",
        D_NETPOL_POD_SELECTOR,
        networkpolicy_pod_selector,
    ),
    AGE,
];

const PRIORITYCLASS: &[Column] = &[
    NAME,
    col("Value", "integer", D_PC_VALUE, priorityclass_value),
    col(
        "Global-Default",
        "boolean",
        D_PC_GLOBAL_DEFAULT,
        priorityclass_global_default,
    ),
    AGE,
    col(
        "PreemptionPolicy",
        "string",
        D_PC_PREEMPTION_POLICY,
        priorityclass_preemption_policy,
    ),
];

const STORAGECLASS: &[Column] = &[
    Column {
        cell: storageclass_name,
        ..NAME
    },
    col(
        "Provisioner",
        "string",
        D_SC_PROVISIONER,
        storageclass_provisioner,
    ),
    col(
        "ReclaimPolicy",
        "string",
        D_SC_RECLAIM_POLICY,
        storageclass_reclaim_policy,
    ),
    col(
        "VolumeBindingMode",
        "string",
        D_SC_BINDING_MODE,
        storageclass_binding_mode,
    ),
    col(
        "AllowVolumeExpansion",
        "string",
        D_SC_EXPANSION,
        storageclass_expansion,
    ),
    AGE,
];

const CSIDRIVER: &[Column] = &[
    NAME,
    col(
        "AttachRequired",
        "boolean",
        D_CSI_ATTACH_REQUIRED,
        csidriver_attach_required,
    ),
    col(
        "PodInfoOnMount",
        "boolean",
        D_CSI_POD_INFO,
        csidriver_pod_info,
    ),
    col(
        "StorageCapacity",
        "boolean",
        D_CSI_STORAGE_CAPACITY,
        csidriver_storage_capacity,
    ),
    col(
        "TokenRequests",
        "string",
        D_CSI_TOKEN_REQUESTS,
        csidriver_token_requests,
    ),
    col(
        "RequiresRepublish",
        "boolean",
        D_CSI_REPUBLISH,
        csidriver_republish,
    ),
    col("Modes", "string", D_CSI_MODES, csidriver_modes),
    AGE,
];

/// The Handler column's description is upstream's lookup of `handler` in
/// ObjectMeta's documentation, which has no such key: empty.
const RUNTIMECLASS: &[Column] = &[
    NAME,
    col("Handler", "string", "", runtimeclass_handler),
    AGE,
];

/// No Age column, as upstream's.
const PODTEMPLATE: &[Column] = &[
    NAME,
    col(
        "Containers",
        "string",
        D_PODTEMPLATE_CONTAINERS,
        podtemplate_containers,
    ),
    col("Images", "string", D_PODTEMPLATE_IMAGES, podtemplate_images),
    col(
        "Pod Labels",
        "string",
        D_PODTEMPLATE_LABELS,
        podtemplate_labels,
    ),
];

const PERSISTENTVOLUME: &[Column] = &[
    NAME,
    col("Capacity", "string", D_PV_CAPACITY, pv_capacity),
    col("Access Modes", "string", D_PV_ACCESS_MODES, pv_access_modes),
    col(
        "Reclaim Policy",
        "string",
        D_PV_RECLAIM_POLICY,
        pv_reclaim_policy,
    ),
    col("Status", "string", D_PV_STATUS, pv_status),
    col("Claim", "string", D_PV_CLAIM, pv_claim),
    col(
        "StorageClass",
        "string",
        D_PV_STORAGE_CLASS,
        pvc_storage_class,
    ),
    col(
        "VolumeAttributesClass",
        "string",
        D_PV_VAC,
        pvc_volume_attributes_class,
    ),
    col("Reason", "string", D_PV_REASON, pv_reason),
    AGE,
    wide("VolumeMode", "string", D_PV_VOLUME_MODE, pv_volume_mode),
];

// ---------------------------------------------------------------------------
// Columns per kind.

const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    description: D_NAME,
    priority: 0,
    cell: name,
};
const AGE: Column = col("Age", "string", D_CREATED, age);
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
    template_containers,
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
    template_images,
);

/// Kinds without a printer of their own: apiserver's default table convertor.
const DEFAULT_COLUMNS: &[Column] = &[NAME, col("Created At", "date", D_CREATED, created_at)];

/// Resources with no printer here (none of the built-ins).
const FALLBACK_COLUMNS: &[Column] = &[NAME, AGE];

const POD: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
        pod_ready,
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
        pod_status,
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        pod_restarts,
    ),
    AGE,
    wide("IP", "string", D_POD_IP, pod_ip),
    wide("Node", "string", D_POD_NODE, pod_node),
    wide(
        "Nominated Node",
        "string",
        D_POD_NOMINATED,
        pod_nominated_node,
    ),
    wide(
        "Readiness Gates",
        "string",
        D_POD_GATES,
        pod_readiness_gates,
    ),
];

const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", D_SVC_TYPE, svc_type),
    col("Cluster-IP", "string", D_SVC_CLUSTER_IP, svc_cluster_ip),
    col("External-IP", "string", D_SVC_EXTERNAL_IPS, svc_external_ip),
    col("Port(s)", "string", D_SVC_PORTS, svc_ports),
    AGE,
    wide("Selector", "string", D_SVC_SELECTOR, svc_selector),
];

const ENDPOINTS: &[Column] = &[
    NAME,
    col("Endpoints", "string", D_EP_SUBSETS, endpoints_endpoints),
    AGE,
];

const CONFIGMAP: &[Column] = &[NAME, col("Data", "string", D_CM_DATA, configmap_data), AGE];

const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", D_SECRET_TYPE, secret_type),
    col("Data", "string", D_SECRET_DATA, secret_data),
    AGE,
];

const SERVICEACCOUNT: &[Column] = &[
    NAME,
    col("Secrets", "string", D_SA_SECRETS, serviceaccount_secrets),
    AGE,
];

const NAMESPACE: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "The status of the namespace",
        namespace_status,
    ),
    AGE,
];

const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node", node_status),
    col("Roles", "string", "The roles of the node", node_roles),
    AGE,
    col("Version", "string", D_NODE_KUBELET, node_version),
    wide("Internal-IP", "string", D_NODE_ADDRESSES, node_internal_ip),
    wide("External-IP", "string", D_NODE_ADDRESSES, node_external_ip),
    wide("OS-Image", "string", D_NODE_OS, node_os_image),
    wide(
        "Kernel-Version",
        "string",
        D_NODE_KERNEL,
        node_kernel_version,
    ),
    wide(
        "Container-Runtime",
        "string",
        D_NODE_RUNTIME,
        node_container_runtime,
    ),
];

/// core/v1 ComponentStatuses (`printComponentStatus`): the `Healthy`
/// condition as `Healthy`/`Unhealthy` (`Unknown` without one), its message
/// and error.
const COMPONENTSTATUS: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "Status of the component conditions",
        component_status,
    ),
    col(
        "Message",
        "string",
        "Message of the component conditions",
        |obj, _| json!(component_healthy(obj).map_or("", |c| str_at(c, "/message"))),
    ),
    col(
        "Error",
        "string",
        "Error of the component conditions",
        |obj, _| json!(component_healthy(obj).map_or("", |c| str_at(c, "/error"))),
    ),
];

/// networking.k8s.io/v1 ServiceCIDRs (`printServiceCIDR`).
const SERVICECIDR: &[Column] = &[
    NAME,
    col(
        "CIDRs",
        "string",
        "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is allowed, one of each IP family. This field is immutable.",
        |obj, _| {
            let cidrs: Vec<&str> = obj
                .pointer("/spec/cidrs")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            json!(cidrs.join(","))
        },
    ),
    AGE,
];

/// networking.k8s.io/v1 IPAddresses (`printIPAddress`: the parent as
/// `resource.group/namespace/name`, `<none>` without one).
const IPADDRESS: &[Column] = &[
    NAME,
    col(
        "ParentRef",
        "string",
        "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object.",
        |obj, _| {
            let Some(p) = obj.pointer("/spec/parentRef").filter(|p| p.is_object()) else {
                return json!("<none>");
            };
            let group = str_at(p, "/group");
            let mut out = str_at(p, "/resource").to_lowercase();
            if !group.is_empty() {
                out = format!("{out}.{}", group.to_lowercase());
            }
            let ns = str_at(p, "/namespace");
            if !ns.is_empty() {
                out = format!("{out}/{ns}");
            }
            json!(format!("{out}/{}", str_at(p, "/name")))
        },
    ),
];

fn component_healthy(obj: &Value) -> Option<&Value> {
    obj.get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Healthy"))
}

fn component_status(obj: &Value, _: Timestamp) -> Value {
    json!(match component_healthy(obj) {
        None => "Unknown",
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => "Healthy",
        Some(_) => "Unhealthy",
    })
}

/// core/v1 and events.k8s.io/v1 Events (one printer upstream; the cells read
/// either shape).
const EVENT: &[Column] = &[
    col("Last Seen", "string", D_EV_LAST, event_last_seen),
    col("Type", "string", D_EV_TYPE, event_type),
    col("Reason", "string", D_EV_REASON, event_reason),
    col("Object", "string", D_EV_OBJECT, event_object),
    wide("Subobject", "string", D_EV_FIELD_PATH, event_subobject),
    wide("Source", "string", D_EV_SOURCE, event_source),
    col("Message", "string", D_EV_MESSAGE, event_message),
    wide("First Seen", "string", D_EV_FIRST, event_first_seen),
    wide("Count", "string", D_EV_COUNT, event_count),
    Column {
        format: "name",
        ..wide("Name", "string", D_NAME, name)
    },
];

const PVC: &[Column] = &[
    NAME,
    col("Status", "string", D_PVC_PHASE, pvc_status),
    col("Volume", "string", D_PVC_VOLUME, pvc_volume),
    col("Capacity", "string", D_PVC_CAPACITY, pvc_capacity),
    col("Access Modes", "string", D_PVC_ACCESS, pvc_access_modes),
    col(
        "StorageClass",
        "string",
        "StorageClass of the pvc",
        pvc_storage_class,
    ),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
        pvc_volume_attributes_class,
    ),
    AGE,
    wide("VolumeMode", "string", D_PVC_MODE, pvc_volume_mode),
];

const RESOURCEQUOTA: &[Column] = &[
    NAME,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
        quota_request,
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        quota_limit,
    ),
    AGE,
];

const DEPLOYMENT: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "Number of the pod with ready state",
        ready_of_replicas,
    ),
    col(
        "Up-to-date",
        "string",
        D_DEPLOY_UPDATED,
        status_updated_replicas,
    ),
    col(
        "Available",
        "string",
        D_DEPLOY_AVAILABLE,
        status_available_replicas,
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_DEPLOY_SELECTOR, deployment_selector),
];

const REPLICASET: &[Column] = &[
    NAME,
    col("Desired", "integer", D_RS_REPLICAS, spec_replicas),
    col("Current", "integer", D_RS_CURRENT, status_replicas),
    col("Ready", "integer", D_RS_READY, status_ready_replicas),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_RS_SELECTOR, spec_selector),
];

const REPLICATIONCONTROLLER: &[Column] = &[
    NAME,
    col("Desired", "integer", D_RC_REPLICAS, spec_replicas),
    col("Current", "integer", D_RC_CURRENT, status_replicas),
    col("Ready", "integer", D_RC_READY, status_ready_replicas),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_RC_SELECTOR, rc_selector),
];

const STATEFULSET: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "Number of the pod with ready state",
        ready_of_replicas,
    ),
    AGE,
    CONTAINERS,
    IMAGES,
];

const DAEMONSET: &[Column] = &[
    NAME,
    col("Desired", "integer", D_DS_DESIRED, ds_desired),
    col("Current", "integer", D_DS_CURRENT, ds_current),
    col("Ready", "integer", D_DS_READY, ds_ready),
    col("Up-to-date", "integer", D_DS_UPDATED, ds_updated),
    col("Available", "integer", D_DS_AVAILABLE, ds_available),
    col(
        "Node Selector",
        "string",
        D_POD_NODE_SELECTOR,
        ds_node_selector,
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_DS_SELECTOR, spec_selector),
];

const CONTROLLERREVISION: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller of the object",
        revision_controller,
    ),
    col("Revision", "string", D_CR_REVISION, revision_revision),
    AGE,
];

const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job.", job_status),
    col("Completions", "string", D_JOB_SUCCEEDED, job_completions),
    col(
        "Duration",
        "string",
        "Time required to complete the job.",
        job_duration,
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_JOB_SELECTOR, spec_selector),
];

const CRONJOB: &[Column] = &[
    NAME,
    col("Schedule", "string", D_CJ_SCHEDULE, cronjob_schedule),
    col("Timezone", "string", D_CJ_TZ, cronjob_timezone),
    col("Suspend", "boolean", D_CJ_SUSPEND, cronjob_suspend),
    col("Active", "integer", D_CJ_ACTIVE, cronjob_active),
    col("Last Schedule", "string", D_CJ_LAST, cronjob_last_schedule),
    AGE,
    Column {
        cell: cronjob_containers,
        ..CONTAINERS
    },
    Column {
        cell: cronjob_images,
        ..IMAGES
    },
    wide("Selector", "string", D_JOB_SELECTOR, cronjob_selector),
];

const LEASE: &[Column] = &[
    NAME,
    col("Holder", "string", D_LEASE_HOLDER, lease_holder),
    AGE,
];

const ENDPOINTSLICE: &[Column] = &[
    NAME,
    col(
        "AddressType",
        "string",
        D_ES_ADDRESS_TYPE,
        slice_address_type,
    ),
    col("Ports", "string", D_ES_PORTS, slice_ports),
    col("Endpoints", "string", D_ES_ENDPOINTS, slice_endpoints),
    AGE,
];

const PDB: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
        pdb_min_available,
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
        pdb_max_unavailable,
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
        pdb_allowed_disruptions,
    ),
    AGE,
];

const ROLEBINDING: &[Column] = &[
    NAME,
    col("Role", "string", D_RB_ROLE, binding_role),
    AGE,
    wide("Users", "string", "Users in the roleBinding", binding_users),
    wide(
        "Groups",
        "string",
        "Groups in the roleBinding",
        binding_groups,
    ),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
        binding_service_accounts,
    ),
];

const CLUSTERROLEBINDING: &[Column] = &[
    NAME,
    col("Role", "string", D_RB_ROLE, binding_role),
    AGE,
    wide(
        "Users",
        "string",
        "Users in the clusterRoleBinding",
        binding_users,
    ),
    wide(
        "Groups",
        "string",
        "Groups in the clusterRoleBinding",
        binding_groups,
    ),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
        binding_service_accounts,
    ),
];

// ---------------------------------------------------------------------------
// The renderer.

/// The printer of `def`, if it has one.
pub fn printer_for(def: &ResourceDef) -> Option<&'static Printer> {
    PRINTERS
        .iter()
        .find(|p| p.group == def.group && p.resource == def.resource)
}

/// The columns `def`'s Tables have.
pub fn columns(def: &ResourceDef) -> &'static [Column] {
    printer_for(def).map_or(FALLBACK_COLUMNS, |p| p.columns)
}

/// A `PartialObjectMetadata` holding `obj`'s metadata.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A Table of `objects`. `include_object` is the query's `includeObject`
/// (`None`, `Metadata`: the default, or `Object`); `list_meta` is the list's
/// metadata (resourceVersion, continue) when rendering a list.
pub fn table(
    def: &crate::registry::Def,
    objects: &[Value],
    include_object: Option<&str>,
    list_meta: Option<Value>,
) -> Value {
    match def.custom() {
        Some(c) => render_custom(c, objects, include_object, list_meta, Timestamp::now()),
        None => render(def, objects, include_object, list_meta, Timestamp::now()),
    }
}

/// A custom resource's Table: `Name` and the version's printer columns
/// (the CRD table convertor, k8s.io/apiextensions-apiserver
/// `tableconvertor`).
fn render_custom(
    c: &crate::crd::CustomVersion,
    objects: &[Value],
    include_object: Option<&str>,
    list_meta: Option<Value>,
    now: Timestamp,
) -> Value {
    let definitions: Vec<Value> = std::iter::once(json!({
        "name": NAME.name,
        "type": NAME.ty,
        "format": NAME.format,
        "description": NAME.description,
        "priority": 0,
    }))
    .chain(c.columns.iter().map(|col| {
        json!({
            "name": col.name,
            "type": col.ty,
            "format": col.format,
            "description": col.description,
            "priority": col.priority,
        })
    }))
    .collect();
    let rows = objects.iter().map(|obj| {
        let cells: Vec<Value> = std::iter::once((NAME.cell)(obj, now))
            .chain(c.columns.iter().map(|col| col.cell(obj, now)))
            .collect();
        (cells, None)
    });
    assemble(definitions, rows, objects, include_object, list_meta)
}

fn render(
    def: &ResourceDef,
    objects: &[Value],
    include_object: Option<&str>,
    list_meta: Option<Value>,
    now: Timestamp,
) -> Value {
    let printer = printer_for(def);
    let columns = columns(def);
    let rows = objects.iter().map(|obj| {
        // kube's printers print the internal form: a converted version
        // is printed as the version it is stored as.
        let stored;
        let printed = match def.conversion {
            Some(_) => {
                stored = def.to_storage(obj.clone());
                &stored
            }
            None => obj,
        };
        let cells: Vec<Value> = columns.iter().map(|c| (c.cell)(printed, now)).collect();
        let conditions = printer.and_then(|p| p.conditions).and_then(|f| f(printed));
        (cells, conditions)
    });
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.ty,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    assemble(definitions, rows, objects, include_object, list_meta)
}

/// The Table of `objects` from its column definitions and each object's
/// cells and row conditions (in `objects`' order), with each row's
/// `object` as `include_object` asks.
fn assemble(
    definitions: Vec<Value>,
    cells: impl Iterator<Item = (Vec<Value>, Option<Value>)>,
    objects: &[Value],
    include_object: Option<&str>,
    list_meta: Option<Value>,
) -> Value {
    let rows: Vec<Value> = cells
        .zip(objects)
        .map(|((cells, conditions), obj)| {
            let mut row = json!({ "cells": cells });
            if let Some(conditions) = conditions {
                row["conditions"] = conditions;
            }
            match include_object.unwrap_or("Metadata") {
                "None" => {}
                "Object" => row["object"] = obj.clone(),
                _ => row["object"] = partial_metadata(obj),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta.unwrap_or_else(|| json!({})),
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

// ---------------------------------------------------------------------------
// Reading the stored JSON.

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn int_at(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn bool_at(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).and_then(Value::as_bool).unwrap_or(false)
}

fn arr_at<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The object at `ptr`, if set (a Go pointer field that is not nil).
fn obj_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a Value> {
    v.pointer(ptr).filter(|o| o.is_object())
}

/// The number of entries of the list or map at `ptr`.
fn len_at(v: &Value, ptr: &str) -> usize {
    match v.pointer(ptr) {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(m)) => m.len(),
        _ => 0,
    }
}

fn is_set(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).is_some_and(|x| !x.is_null())
}

fn ts(v: &Value, ptr: &str) -> Option<Timestamp> {
    v.pointer(ptr)?.as_str()?.parse().ok()
}

fn or_placeholder(s: String, placeholder: &str) -> String {
    if s.is_empty() { placeholder.into() } else { s }
}

/// A resource quantity as written (`0` when unset).
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// The later of two optional times.
fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Time elapsed since `t` as kubectl shows ages; `<unknown>` when unset
/// (printers.go translateTimestampSince).
pub(crate) fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_signed(now.duration_since(t).as_secs()),
        None => "<unknown>".into(),
    }
}

/// HumanDuration including its handling of small clock skew.
fn human_signed(secs: i64) -> String {
    match secs {
        i64::MIN..=-2 => "<invalid>".into(),
        -1 => "0s".into(),
        s => human_duration(s as u64),
    }
}

/// `k=v,...` sorted by key, `<none>` when empty (labels.FormatLabels).
fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    or_placeholder(pairs.join(","), "<none>")
}

/// A LabelSelector as its selector string (`a=b,c in (d,e),!f`), requirements
/// sorted by key; `None` when the selector is invalid.
fn label_selector(sel: Option<&Value>) -> Option<String> {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return Some(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    for e in arr_at(sel, "/matchExpressions") {
        let key = str_at(e, "/key");
        let mut values: Vec<&str> = arr_at(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let req = match (str_at(e, "/operator"), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key.to_string(), req));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// metav1.FormatLabelSelector: `<none>` when empty, `<error>` when invalid.
fn format_label_selector(sel: Option<&Value>) -> String {
    match label_selector(sel) {
        Some(s) => or_placeholder(s, "<none>"),
        None => "<error>".into(),
    }
}

/// The containers' names and images, each comma-separated.
fn container_cells(obj: &Value, containers: &str) -> (String, String) {
    let list = arr_at(obj, containers);
    let names: Vec<&str> = list.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = list.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

// ---------------------------------------------------------------------------
// Cells shared by several kinds.

fn name(obj: &Value, _: Timestamp) -> Value {
    json!(str_at(obj, "/metadata/name"))
}

fn age(obj: &Value, now: Timestamp) -> Value {
    json!(since(ts(obj, "/metadata/creationTimestamp"), now))
}

/// The creation time in RFC 3339, as apiserver's default table convertor.
fn created_at(obj: &Value, _: Timestamp) -> Value {
    json!(ts(obj, "/metadata/creationTimestamp").map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    ))
}

fn template_containers(obj: &Value, _: Timestamp) -> Value {
    json!(container_cells(obj, "/spec/template/spec/containers").0)
}

fn template_images(obj: &Value, _: Timestamp) -> Value {
    json!(container_cells(obj, "/spec/template/spec/containers").1)
}

fn spec_selector(obj: &Value, _: Timestamp) -> Value {
    json!(format_label_selector(obj.pointer("/spec/selector")))
}

/// `spec.replicas`, which defaults to 1.
fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn spec_replicas(obj: &Value, _: Timestamp) -> Value {
    json!(replicas(obj))
}

fn status_replicas(obj: &Value, _: Timestamp) -> Value {
    json!(int_at(obj, "/status/replicas"))
}

fn status_ready_replicas(obj: &Value, _: Timestamp) -> Value {
    json!(int_at(obj, "/status/readyReplicas"))
}

fn status_updated_replicas(obj: &Value, _: Timestamp) -> Value {
    json!(int_at(obj, "/status/updatedReplicas"))
}

fn status_available_replicas(obj: &Value, _: Timestamp) -> Value {
    json!(int_at(obj, "/status/availableReplicas"))
}

/// `ready/desired`, as Deployments and StatefulSets show READY.
fn ready_of_replicas(obj: &Value, _: Timestamp) -> Value {
    json!(format!(
        "{}/{}",
        int_at(obj, "/status/readyReplicas"),
        replicas(obj)
    ))
}

// ---------------------------------------------------------------------------
// Pods (printPod).

/// What printPod derives from a pod's container statuses.
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

fn condition_true(obj: &Value, ty: &str) -> bool {
    arr_at(obj, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == ty && str_at(c, "/status") == "True")
}

/// `Signal:N` or `ExitCode:N` for a terminated state without a reason.
fn exit_reason(prefix: &str, terminated: &Value) -> String {
    match int_at(terminated, "/signal") {
        0 => format!("{prefix}ExitCode:{}", int_at(terminated, "/exitCode")),
        signal => format!("{prefix}Signal:{signal}"),
    }
}

fn pod_summary(pod: &Value) -> PodSummary {
    let phase = str_at(pod, "/status/phase");
    let mut reason = match str_at(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if arr_at(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    // Init containers with restartPolicy Always are sidecars: they count as
    // containers of the pod.
    let init_specs = arr_at(pod, "/spec/initContainers");
    let sidecar = |c: &Value| str_at(c, "/restartPolicy") == "Always";
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, "/name") == name && sidecar(c))
    };
    let total =
        arr_at(pod, "/spec/containers").len() + init_specs.iter().filter(|c| sidecar(c)).count();
    let mut ready = 0;
    let (mut restarts, mut last_restart) = (0, None);
    let (mut sidecar_restarts, mut sidecar_last_restart) = (0, None);

    let mut initializing = false;
    for (i, status) in arr_at(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let count = int_at(status, "/restartCount");
        let finished = ts(status, "/lastState/terminated/finishedAt");
        restarts += count;
        last_restart = later(last_restart, finished);
        let is_sidecar = is_sidecar(str_at(status, "/name"));
        if is_sidecar {
            sidecar_restarts += count;
            sidecar_last_restart = later(sidecar_last_restart, finished);
        }
        let terminated = obj_at(status, "/state/terminated");
        if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
            continue;
        }
        if is_sidecar && bool_at(status, "/started") {
            if bool_at(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        let waiting = str_at(status, "/state/waiting/reason");
        reason = match terminated {
            Some(t) => match str_at(t, "/reason") {
                "" => exit_reason("Init:", t),
                r => format!("Init:{r}"),
            },
            None if !waiting.is_empty() && waiting != "PodInitializing" => {
                format!("Init:{waiting}")
            }
            None => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for status in arr_at(pod, "/status/containerStatuses").iter().rev() {
            restarts += int_at(status, "/restartCount");
            last_restart = later(last_restart, ts(status, "/lastState/terminated/finishedAt"));
            let waiting = str_at(status, "/state/waiting/reason");
            if !waiting.is_empty() {
                reason = waiting.into();
            } else if let Some(t) = obj_at(status, "/state/terminated") {
                reason = match str_at(t, "/reason") {
                    "" => exit_reason("", t),
                    r => r.into(),
                };
            } else if bool_at(status, "/ready") && obj_at(status, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed while another still runs.
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if is_set(pod, "/metadata/deletionTimestamp") {
        if str_at(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if !matches!(phase, "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }
    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

fn pod_ready(pod: &Value, _: Timestamp) -> Value {
    let s = pod_summary(pod);
    json!(format!("{}/{}", s.ready, s.total))
}

fn pod_status(pod: &Value, _: Timestamp) -> Value {
    json!(pod_summary(pod).reason)
}

fn pod_restarts(pod: &Value, now: Timestamp) -> Value {
    let s = pod_summary(pod);
    match s.last_restart {
        Some(t) if s.restarts != 0 => {
            json!(format!("{} ({} ago)", s.restarts, since(Some(t), now)))
        }
        _ => json!(s.restarts.to_string()),
    }
}

fn pod_ip(pod: &Value, _: Timestamp) -> Value {
    let ip = match str_at(pod, "/status/podIPs/0/ip") {
        "" => str_at(pod, "/status/podIP"),
        ip => ip,
    };
    json!(or_placeholder(ip.into(), "<none>"))
}

fn pod_node(pod: &Value, _: Timestamp) -> Value {
    json!(or_placeholder(
        str_at(pod, "/spec/nodeName").into(),
        "<none>"
    ))
}

fn pod_nominated_node(pod: &Value, _: Timestamp) -> Value {
    json!(or_placeholder(
        str_at(pod, "/status/nominatedNodeName").into(),
        "<none>"
    ))
}

fn pod_readiness_gates(pod: &Value, _: Timestamp) -> Value {
    let gates = arr_at(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return json!("<none>");
    }
    let conditions = arr_at(pod, "/status/conditions");
    let passed = gates
        .iter()
        .filter(|g| {
            conditions
                .iter()
                .find(|c| str_at(c, "/type") == str_at(g, "/conditionType"))
                .is_some_and(|c| str_at(c, "/status") == "True")
        })
        .count();
    json!(format!("{passed}/{}", gates.len()))
}

/// A finished pod's row carries a `Completed` condition.
fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match str_at(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

// ---------------------------------------------------------------------------
// Services (printService).

/// `spec.type`, which defaults to ClusterIP.
fn service_type(svc: &Value) -> &str {
    match str_at(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn svc_type(svc: &Value, _: Timestamp) -> Value {
    json!(service_type(svc))
}

fn svc_cluster_ip(svc: &Value, _: Timestamp) -> Value {
    let ip = match str_at(svc, "/spec/clusterIPs/0") {
        "" => str_at(svc, "/spec/clusterIP"),
        ip => ip,
    };
    json!(or_placeholder(ip.into(), "<none>"))
}

fn svc_external_ip(svc: &Value, _: Timestamp) -> Value {
    let external: Vec<&str> = arr_at(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let out = match service_type(svc) {
        "ClusterIP" | "NodePort" => or_placeholder(external.join(","), "<none>"),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = arr_at(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match str_at(i, "/ip") {
                    "" => str_at(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external).collect();
            or_placeholder(all.join(","), "<pending>")
        }
        "ExternalName" => str_at(svc, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    };
    json!(out)
}

fn svc_ports(svc: &Value, _: Timestamp) -> Value {
    let ports: Vec<String> = arr_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let protocol = match str_at(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int_at(p, "/nodePort") {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    json!(or_placeholder(ports.join(","), "<none>"))
}

fn svc_selector(svc: &Value, _: Timestamp) -> Value {
    json!(format_labels(svc.pointer("/spec/selector")))
}

// ---------------------------------------------------------------------------
// Endpoints and EndpointSlices.

/// `ip:port`, bracketing IPv6 addresses (net.JoinHostPort).
fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// At most three `ip:port` of the ready addresses (printers.go formatEndpoints).
fn endpoints_endpoints(ep: &Value, _: Timestamp) -> Value {
    const MAX: usize = 3;
    let subsets = arr_at(ep, "/subsets");
    if subsets.is_empty() {
        return json!("<none>");
    }
    let (mut list, mut more, mut count) = (Vec::new(), false, 0);
    for subset in subsets {
        let addresses = arr_at(subset, "/addresses");
        let ports = arr_at(subset, "/ports");
        // Headless services may have no ports.
        let ports: Vec<Option<i64>> = if ports.is_empty() {
            vec![None]
        } else {
            ports.iter().map(|p| Some(int_at(p, "/port"))).collect()
        };
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                let ip = str_at(address, "/ip");
                list.push(port.map_or_else(|| ip.to_string(), |p| join_host_port(ip, p)));
            }
        }
    }
    let joined = list.join(",");
    if more {
        json!(format!("{joined} + {} more...", count - MAX))
    } else {
        json!(joined)
    }
}

/// Up to three items, then `+ N more...`; `<unset>` when there are none.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    match items.len() {
        0 => "<unset>".into(),
        n if n > MAX => format!("{} + {} more...", items[..MAX].join(","), n - MAX),
        _ => items.join(","),
    }
}

fn slice_address_type(slice: &Value, _: Timestamp) -> Value {
    json!(str_at(slice, "/addressType"))
}

fn slice_ports(slice: &Value, _: Timestamp) -> Value {
    let ports = arr_at(slice, "/ports")
        .iter()
        .map(|p| match (p.get("port"), p.get("name")) {
            (Some(Value::Number(n)), _) => n.to_string(),
            (_, Some(Value::String(name))) => name.clone(),
            _ => "*".into(),
        })
        .collect();
    json!(list_with_more(ports))
}

fn slice_endpoints(slice: &Value, _: Timestamp) -> Value {
    let addresses = arr_at(slice, "/endpoints")
        .iter()
        .flat_map(|e| arr_at(e, "/addresses"))
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect();
    json!(list_with_more(addresses))
}

// ---------------------------------------------------------------------------
// ConfigMaps, Secrets, ServiceAccounts, Namespaces, Leases.

fn configmap_data(cm: &Value, _: Timestamp) -> Value {
    json!(len_at(cm, "/data") + len_at(cm, "/binaryData"))
}

fn secret_type(secret: &Value, _: Timestamp) -> Value {
    json!(str_at(secret, "/type"))
}

fn secret_data(secret: &Value, _: Timestamp) -> Value {
    json!(len_at(secret, "/data"))
}

fn serviceaccount_secrets(sa: &Value, _: Timestamp) -> Value {
    json!(len_at(sa, "/secrets"))
}

fn namespace_status(ns: &Value, _: Timestamp) -> Value {
    json!(str_at(ns, "/status/phase"))
}

fn lease_holder(lease: &Value, _: Timestamp) -> Value {
    json!(str_at(lease, "/spec/holderIdentity"))
}

// ---------------------------------------------------------------------------
// Nodes (printNode).

fn node_status(node: &Value, _: Timestamp) -> Value {
    // The last Ready condition wins, as in printNode's condition map.
    let ready = arr_at(node, "/status/conditions")
        .iter()
        .rfind(|c| str_at(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(node, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }
    json!(status.join(","))
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn node_roles(node: &Value, _: Timestamp) -> Value {
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if k == "kubernetes.io/role" {
                roles.extend(v.as_str().filter(|r| !r.is_empty()));
            }
        }
    }
    json!(or_placeholder(
        roles.into_iter().collect::<Vec<_>>().join(","),
        "<none>"
    ))
}

fn node_version(node: &Value, _: Timestamp) -> Value {
    json!(str_at(node, "/status/nodeInfo/kubeletVersion"))
}

fn node_address(node: &Value, ty: &str) -> Value {
    let address = arr_at(node, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "/type") == ty)
        .map_or("<none>", |a| str_at(a, "/address"));
    json!(address)
}

fn node_internal_ip(node: &Value, _: Timestamp) -> Value {
    node_address(node, "InternalIP")
}

fn node_external_ip(node: &Value, _: Timestamp) -> Value {
    node_address(node, "ExternalIP")
}

fn node_info(node: &Value, field: &str) -> Value {
    json!(or_placeholder(
        str_at(node, &format!("/status/nodeInfo/{field}")).into(),
        "<unknown>"
    ))
}

fn node_os_image(node: &Value, _: Timestamp) -> Value {
    node_info(node, "osImage")
}

fn node_kernel_version(node: &Value, _: Timestamp) -> Value {
    node_info(node, "kernelVersion")
}

fn node_container_runtime(node: &Value, _: Timestamp) -> Value {
    node_info(node, "containerRuntimeVersion")
}

// ---------------------------------------------------------------------------
// Events (printEvent). events.k8s.io/v1 objects name some fields differently
// (regarding, note, deprecated*); kube-apiserver prints both through the
// internal type, so each cell reads the core/v1 name, then the events.k8s.io one.

fn event_field<'a>(ev: &'a Value, core: &str, events: &str) -> Option<&'a Value> {
    ev.pointer(core)
        .filter(|v| !v.is_null())
        .or_else(|| ev.pointer(events))
}

fn event_str<'a>(ev: &'a Value, core: &str, events: &str) -> &'a str {
    event_field(ev, core, events)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn event_time(ev: &Value, core: &str, events: &str) -> Option<Timestamp> {
    event_field(ev, core, events)?.as_str()?.parse().ok()
}

fn event_first_seen_str(ev: &Value, now: Timestamp) -> String {
    match event_time(ev, "/firstTimestamp", "/deprecatedFirstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(ts(ev, "/eventTime"), now),
    }
}

fn event_first_seen(ev: &Value, now: Timestamp) -> Value {
    json!(event_first_seen_str(ev, now))
}

fn event_last_seen(ev: &Value, now: Timestamp) -> Value {
    if obj_at(ev, "/series").is_some() {
        return json!(since(ts(ev, "/series/lastObservedTime"), now));
    }
    match event_time(ev, "/lastTimestamp", "/deprecatedLastTimestamp") {
        Some(t) => json!(since(Some(t), now)),
        None => json!(event_first_seen_str(ev, now)),
    }
}

fn event_count(ev: &Value, _: Timestamp) -> Value {
    if obj_at(ev, "/series").is_some() {
        return json!(int_at(ev, "/series/count"));
    }
    match event_field(ev, "/count", "/deprecatedCount").and_then(Value::as_i64) {
        None | Some(0) => json!(1),
        Some(n) => json!(n),
    }
}

fn event_type(ev: &Value, _: Timestamp) -> Value {
    json!(str_at(ev, "/type"))
}

fn event_reason(ev: &Value, _: Timestamp) -> Value {
    json!(str_at(ev, "/reason"))
}

/// `kind/name` of the object the event is about, the kind lower-cased.
fn event_object(ev: &Value, _: Timestamp) -> Value {
    let kind = event_str(ev, "/involvedObject/kind", "/regarding/kind").to_lowercase();
    match event_str(ev, "/involvedObject/name", "/regarding/name") {
        "" => json!(kind),
        name => json!(format!("{kind}/{name}")),
    }
}

fn event_subobject(ev: &Value, _: Timestamp) -> Value {
    json!(event_str(
        ev,
        "/involvedObject/fieldPath",
        "/regarding/fieldPath"
    ))
}

/// The first of the fields at `ptrs` that is set and not empty.
fn first_str<'a>(v: &'a Value, ptrs: &[&str]) -> &'a str {
    ptrs.iter()
        .map(|p| str_at(v, p))
        .find(|s| !s.is_empty())
        .unwrap_or("")
}

/// `component, host`, falling back to the reporting controller and instance
/// (`reportingComponent` in core/v1, `reportingController` in events.k8s.io).
fn event_source(ev: &Value, _: Timestamp) -> Value {
    let component = first_str(
        ev,
        &[
            "/source/component",
            "/deprecatedSource/component",
            "/reportingComponent",
            "/reportingController",
        ],
    );
    let instance = first_str(
        ev,
        &[
            "/source/host",
            "/deprecatedSource/host",
            "/reportingInstance",
        ],
    );
    if instance.is_empty() {
        json!(component)
    } else {
        json!(format!("{component}, {instance}"))
    }
}

fn event_message(ev: &Value, _: Timestamp) -> Value {
    json!(event_str(ev, "/message", "/note").trim())
}

// ---------------------------------------------------------------------------
// PersistentVolumeClaims (printPersistentVolumeClaim).

fn pvc_status(pvc: &Value, _: Timestamp) -> Value {
    if is_set(pvc, "/metadata/deletionTimestamp") {
        return json!("Terminating");
    }
    json!(match str_at(pvc, "/status/phase") {
        "" => "Pending",
        phase => phase,
    })
}

fn pvc_volume(pvc: &Value, _: Timestamp) -> Value {
    json!(str_at(pvc, "/spec/volumeName"))
}

/// Capacity and access modes show only once the claim is bound to a volume.
fn pvc_bound(pvc: &Value) -> bool {
    !str_at(pvc, "/spec/volumeName").is_empty()
}

fn pvc_capacity(pvc: &Value, _: Timestamp) -> Value {
    if !pvc_bound(pvc) {
        return json!("");
    }
    json!(quantity(pvc.pointer("/status/capacity/storage")))
}

/// RWO, ROX, RWX, RWOP in that order (helper.GetAccessModesAsString).
fn pvc_access_modes(pvc: &Value, _: Timestamp) -> Value {
    if !pvc_bound(pvc) {
        return json!("");
    }
    access_modes(arr_at(pvc, "/status/accessModes"))
}

/// Access modes as their short names in a fixed order.
fn access_modes(modes: &[Value]) -> Value {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let short: Vec<&str> = [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, s)| s)
    .collect();
    json!(short.join(","))
}

fn pvc_storage_class(pvc: &Value, _: Timestamp) -> Value {
    let beta = pvc
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .and_then(Value::as_str);
    json!(beta.unwrap_or_else(|| str_at(pvc, "/spec/storageClassName")))
}

fn pvc_volume_attributes_class(pvc: &Value, _: Timestamp) -> Value {
    json!(
        pvc.pointer("/spec/volumeAttributesClassName")
            .and_then(Value::as_str)
            .unwrap_or("<unset>")
    )
}

fn pvc_volume_mode(pvc: &Value, _: Timestamp) -> Value {
    json!(match str_at(pvc, "/spec/volumeMode") {
        "" => "Filesystem",
        mode => mode,
    })
}

// ---------------------------------------------------------------------------
// ResourceQuotas (printResourceQuota).

/// `name: used/hard, ...` of the quota's resources, split into the request
/// column and the `limits.*` column.
fn quota_usage(quota: &Value) -> (String, String) {
    let Some(hard) = quota.pointer("/status/hard").and_then(Value::as_object) else {
        return (String::new(), String::new());
    };
    let used = quota.pointer("/status/used");
    let mut names: Vec<&String> = hard.keys().collect();
    names.sort();
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for name in names {
        let entry = format!(
            "{name}: {}/{}",
            quantity(used.and_then(|u| u.get(name.as_str()))),
            quantity(hard.get(name.as_str()))
        );
        if name.starts_with("limits.") {
            limit.push(entry);
        } else {
            request.push(entry);
        }
    }
    (request.join(", "), limit.join(", "))
}

fn quota_request(quota: &Value, _: Timestamp) -> Value {
    json!(quota_usage(quota).0)
}

fn quota_limit(quota: &Value, _: Timestamp) -> Value {
    json!(quota_usage(quota).1)
}

// ---------------------------------------------------------------------------
// Deployments, DaemonSets, ControllerRevisions.

/// The selector string; Deployments print it empty when unset.
fn deployment_selector(deploy: &Value, _: Timestamp) -> Value {
    json!(label_selector(deploy.pointer("/spec/selector")).unwrap_or_else(|| "<invalid>".into()))
}

fn ds_desired(ds: &Value, _: Timestamp) -> Value {
    json!(int_at(ds, "/status/desiredNumberScheduled"))
}

fn ds_current(ds: &Value, _: Timestamp) -> Value {
    json!(int_at(ds, "/status/currentNumberScheduled"))
}

fn ds_ready(ds: &Value, _: Timestamp) -> Value {
    json!(int_at(ds, "/status/numberReady"))
}

fn ds_updated(ds: &Value, _: Timestamp) -> Value {
    json!(int_at(ds, "/status/updatedNumberScheduled"))
}

fn ds_available(ds: &Value, _: Timestamp) -> Value {
    json!(int_at(ds, "/status/numberAvailable"))
}

fn ds_node_selector(ds: &Value, _: Timestamp) -> Value {
    json!(format_labels(
        ds.pointer("/spec/template/spec/nodeSelector")
    ))
}

/// `kind.group/name` of the controlling owner, lower-cased; `<none>`.
fn revision_controller(cr: &Value, _: Timestamp) -> Value {
    let Some(owner) = arr_at(cr, "/metadata/ownerReferences")
        .iter()
        .find(|o| bool_at(o, "/controller"))
    else {
        return json!("<none>");
    };
    let api_version = str_at(owner, "/apiVersion");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = str_at(owner, "/kind");
    let name = str_at(owner, "/name");
    let group_kind = match (group, kind) {
        ("", "") => return json!(name),
        ("", kind) => kind.to_string(),
        (group, kind) => format!("{kind}.{group}"),
    };
    json!(format!("{}/{name}", group_kind.to_lowercase()))
}

fn revision_revision(cr: &Value, _: Timestamp) -> Value {
    json!(int_at(cr, "/revision"))
}

// ---------------------------------------------------------------------------
// Jobs and CronJobs (printJob, printCronJob).

/// Whether the first condition of type `ty` is true (hasJobCondition).
fn job_condition(job: &Value, ty: &str) -> bool {
    arr_at(job, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn job_status(job: &Value, _: Timestamp) -> Value {
    let status = if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if is_set(job, "/metadata/deletionTimestamp") {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    json!(status)
}

/// `succeeded/completions`, or `succeeded/1 of parallelism` for work queues.
fn job_completions(job: &Value, _: Timestamp) -> Value {
    let succeeded = int_at(job, "/status/succeeded");
    if let Some(completions) = job.pointer("/spec/completions").and_then(Value::as_i64) {
        return json!(format!("{succeeded}/{completions}"));
    }
    match int_at(job, "/spec/parallelism") {
        p if p > 1 => json!(format!("{succeeded}/1 of {p}")),
        _ => json!(format!("{succeeded}/1")),
    }
}

fn job_duration(job: &Value, now: Timestamp) -> Value {
    let Some(start) = ts(job, "/status/startTime") else {
        return json!("");
    };
    let end = ts(job, "/status/completionTime").unwrap_or(now);
    json!(human_signed(end.duration_since(start).as_secs()))
}

fn cronjob_schedule(cj: &Value, _: Timestamp) -> Value {
    json!(str_at(cj, "/spec/schedule"))
}

fn cronjob_timezone(cj: &Value, _: Timestamp) -> Value {
    json!(
        cj.pointer("/spec/timeZone")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
    )
}

fn cronjob_suspend(cj: &Value, _: Timestamp) -> Value {
    json!(if bool_at(cj, "/spec/suspend") {
        "True"
    } else {
        "False"
    })
}

fn cronjob_active(cj: &Value, _: Timestamp) -> Value {
    json!(len_at(cj, "/status/active"))
}

fn cronjob_last_schedule(cj: &Value, now: Timestamp) -> Value {
    match ts(cj, "/status/lastScheduleTime") {
        Some(t) => json!(since(Some(t), now)),
        None => json!("<none>"),
    }
}

const CRONJOB_CONTAINERS: &str = "/spec/jobTemplate/spec/template/spec/containers";

fn cronjob_containers(cj: &Value, _: Timestamp) -> Value {
    json!(container_cells(cj, CRONJOB_CONTAINERS).0)
}

fn cronjob_images(cj: &Value, _: Timestamp) -> Value {
    json!(container_cells(cj, CRONJOB_CONTAINERS).1)
}

fn cronjob_selector(cj: &Value, _: Timestamp) -> Value {
    json!(format_label_selector(
        cj.pointer("/spec/jobTemplate/spec/selector")
    ))
}

// ---------------------------------------------------------------------------
// PodDisruptionBudgets, RoleBindings.

/// An IntOrString as written; `N/A` when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".into(),
    }
}

fn pdb_min_available(pdb: &Value, _: Timestamp) -> Value {
    json!(int_or_string(pdb.pointer("/spec/minAvailable")))
}

fn pdb_max_unavailable(pdb: &Value, _: Timestamp) -> Value {
    json!(int_or_string(pdb.pointer("/spec/maxUnavailable")))
}

fn pdb_allowed_disruptions(pdb: &Value, _: Timestamp) -> Value {
    json!(int_at(pdb, "/status/disruptionsAllowed"))
}

fn binding_role(rb: &Value, _: Timestamp) -> Value {
    json!(format!(
        "{}/{}",
        str_at(rb, "/roleRef/kind"),
        str_at(rb, "/roleRef/name")
    ))
}

/// The binding's subjects of `kind`, `, `-separated.
fn subjects(rb: &Value, kind: &str) -> Value {
    let names: Vec<String> = arr_at(rb, "/subjects")
        .iter()
        .filter(|s| str_at(s, "/kind") == kind)
        .map(|s| match kind {
            "ServiceAccount" => format!("{}/{}", str_at(s, "/namespace"), str_at(s, "/name")),
            _ => str_at(s, "/name").to_string(),
        })
        .collect();
    json!(names.join(", "))
}

fn binding_users(rb: &Value, _: Timestamp) -> Value {
    subjects(rb, "User")
}

fn binding_groups(rb: &Value, _: Timestamp) -> Value {
    subjects(rb, "Group")
}

fn binding_service_accounts(rb: &Value, _: Timestamp) -> Value {
    subjects(rb, "ServiceAccount")
}

/// A duration in seconds the way kubectl shows ages (`45s`, `3m20s`, `5h`, `2d3h`, `400d`, `3y20d`),
/// following k8s.io/apimachinery/pkg/util/duration.HumanDuration.
pub fn human_duration(secs: u64) -> String {
    let minutes = secs / 60;
    let hours = secs / 3600;
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------
// Ingresses, IngressClasses, NetworkPolicies (networking.k8s.io).

fn ingress_class(ing: &Value, _: Timestamp) -> Value {
    json!(
        ing.pointer("/spec/ingressClassName")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
    )
}

/// Up to three rule hosts, then ` + N more...`; `*` when no rule names one.
fn ingress_hosts(ing: &Value, _: Timestamp) -> Value {
    let rules = arr_at(ing, "/spec/rules");
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == 3 {
            more = true;
        }
        let host = str_at(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return json!("*");
    }
    let mut out = hosts.join(",");
    if more {
        out.push_str(&format!(" + {} more...", rules.len() - 3));
    }
    json!(out)
}

/// Load-balancer IPs (else hostnames), de-duplicated and sorted.
fn ingress_address(ing: &Value, _: Timestamp) -> Value {
    let addresses: BTreeSet<&str> = arr_at(ing, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| match str_at(i, "/ip") {
            "" => str_at(i, "/hostname"),
            ip => ip,
        })
        .filter(|a| !a.is_empty())
        .collect();
    json!(addresses.into_iter().collect::<Vec<_>>().join(","))
}

fn ingress_ports(ing: &Value, _: Timestamp) -> Value {
    json!(if arr_at(ing, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    })
}

fn ingressclass_controller(ic: &Value, _: Timestamp) -> Value {
    json!(str_at(ic, "/spec/controller"))
}

/// `Kind[.apiGroup]/name` of the parameters, `<none>` without.
fn ingressclass_parameters(ic: &Value, _: Timestamp) -> Value {
    let Some(p) = ic.pointer("/spec/parameters").filter(|p| p.is_object()) else {
        return json!("<none>");
    };
    let mut out = str_at(p, "/kind").to_string();
    if let Some(group) = p.get("apiGroup").and_then(Value::as_str) {
        out.push('.');
        out.push_str(group);
    }
    out.push('/');
    out.push_str(str_at(p, "/name"));
    json!(out)
}

fn networkpolicy_pod_selector(np: &Value, _: Timestamp) -> Value {
    json!(format_label_selector(np.pointer("/spec/podSelector")))
}

// ---------------------------------------------------------------------------
// PriorityClasses, RuntimeClasses.

fn priorityclass_value(pc: &Value, _: Timestamp) -> Value {
    json!(int_at(pc, "/value"))
}

fn priorityclass_global_default(pc: &Value, _: Timestamp) -> Value {
    json!(bool_at(pc, "/globalDefault"))
}

fn priorityclass_preemption_policy(pc: &Value, _: Timestamp) -> Value {
    json!(str_at(pc, "/preemptionPolicy"))
}

fn runtimeclass_handler(rc: &Value, _: Timestamp) -> Value {
    json!(str_at(rc, "/handler"))
}

// ---------------------------------------------------------------------------
// StorageClasses, CSIDrivers (storage.k8s.io).

/// The name, with ` (default)` for the default class.
fn storageclass_name(sc: &Value, _: Timestamp) -> Value {
    let ann = |k: &str| {
        sc.pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            == Some("true")
    };
    let name = str_at(sc, "/metadata/name");
    if ann("storageclass.kubernetes.io/is-default-class")
        || ann("storageclass.beta.kubernetes.io/is-default-class")
    {
        json!(format!("{name} (default)"))
    } else {
        json!(name)
    }
}

fn storageclass_provisioner(sc: &Value, _: Timestamp) -> Value {
    json!(str_at(sc, "/provisioner"))
}

fn storageclass_reclaim_policy(sc: &Value, _: Timestamp) -> Value {
    json!(
        sc.get("reclaimPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Delete")
    )
}

fn storageclass_binding_mode(sc: &Value, _: Timestamp) -> Value {
    json!(
        sc.get("volumeBindingMode")
            .and_then(Value::as_str)
            .unwrap_or("Immediate")
    )
}

fn storageclass_expansion(sc: &Value, _: Timestamp) -> Value {
    json!(bool_at(sc, "/allowVolumeExpansion"))
}

fn csidriver_attach_required(d: &Value, _: Timestamp) -> Value {
    json!(
        d.pointer("/spec/attachRequired")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    )
}

fn csidriver_pod_info(d: &Value, _: Timestamp) -> Value {
    json!(bool_at(d, "/spec/podInfoOnMount"))
}

fn csidriver_storage_capacity(d: &Value, _: Timestamp) -> Value {
    json!(bool_at(d, "/spec/storageCapacity"))
}

/// The token audiences, `<unset>` without the field.
fn csidriver_token_requests(d: &Value, _: Timestamp) -> Value {
    match d.pointer("/spec/tokenRequests").and_then(Value::as_array) {
        None => json!("<unset>"),
        Some(reqs) => json!(
            reqs.iter()
                .map(|r| str_at(r, "/audience"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn csidriver_republish(d: &Value, _: Timestamp) -> Value {
    json!(bool_at(d, "/spec/requiresRepublish"))
}

fn csidriver_modes(d: &Value, _: Timestamp) -> Value {
    let modes: Vec<&str> = arr_at(d, "/spec/volumeLifecycleModes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    json!(or_placeholder(modes.join(","), "<none>"))
}

// ---------------------------------------------------------------------------
// PodTemplates, PersistentVolumes (core).

fn podtemplate_containers(t: &Value, _: Timestamp) -> Value {
    json!(container_cells(t, "/template/spec/containers").0)
}

fn podtemplate_images(t: &Value, _: Timestamp) -> Value {
    json!(container_cells(t, "/template/spec/containers").1)
}

fn podtemplate_labels(t: &Value, _: Timestamp) -> Value {
    json!(format_labels(t.pointer("/template/metadata/labels")))
}

fn pv_capacity(pv: &Value, _: Timestamp) -> Value {
    json!(quantity(pv.pointer("/spec/capacity/storage")))
}

fn pv_access_modes(pv: &Value, _: Timestamp) -> Value {
    access_modes(arr_at(pv, "/spec/accessModes"))
}

fn pv_reclaim_policy(pv: &Value, _: Timestamp) -> Value {
    json!(str_at(pv, "/spec/persistentVolumeReclaimPolicy"))
}

fn pv_status(pv: &Value, _: Timestamp) -> Value {
    if is_set(pv, "/metadata/deletionTimestamp") {
        return json!("Terminating");
    }
    json!(str_at(pv, "/status/phase"))
}

/// `namespace/name` of the claim bound to the volume, empty without.
fn pv_claim(pv: &Value, _: Timestamp) -> Value {
    match pv.pointer("/spec/claimRef").filter(|c| c.is_object()) {
        Some(c) => json!(format!(
            "{}/{}",
            str_at(c, "/namespace"),
            str_at(c, "/name")
        )),
        None => json!(""),
    }
}

fn pv_reason(pv: &Value, _: Timestamp) -> Value {
    json!(str_at(pv, "/status/reason"))
}

fn pv_volume_mode(pv: &Value, _: Timestamp) -> Value {
    json!(
        pv.pointer("/spec/volumeMode")
            .and_then(Value::as_str)
            .unwrap_or("<unset>")
    )
}

/// A ReplicationController's selector map as `k=v,...` (labels.FormatLabels).
fn rc_selector(rc: &Value, _: Timestamp) -> Value {
    json!(format_labels(rc.pointer("/spec/selector")))
}

// ---------------------------------------------------------------------------
// HorizontalPodAutoscalers (printHorizontalPodAutoscaler, formatHPAMetrics).

fn hpa_reference(hpa: &Value, _: Timestamp) -> Value {
    json!(format!(
        "{}/{}",
        str_at(hpa, "/spec/scaleTargetRef/kind"),
        str_at(hpa, "/spec/scaleTargetRef/name")
    ))
}

/// One `current/target` per metric (the status entry at the same index
/// gives the current value, else `<unknown>`), two at most then `+ N
/// more...`; `<none>` without metrics.
fn hpa_targets(hpa: &Value, _: Timestamp) -> Value {
    let specs = arr_at(hpa, "/spec/metrics");
    if specs.is_empty() {
        return json!("<none>");
    }
    let statuses = arr_at(hpa, "/status/currentMetrics");
    let q = |v: Option<&Value>| v.map(|v| quantity(Some(v)));
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let ty = str_at(spec, "/type");
            let field = match ty {
                "External" => "external",
                "Pods" => "pods",
                "Object" => "object",
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                _ => return "<unknown type>".to_string(),
            };
            let status = statuses
                .get(i)
                .and_then(|s| s.get(field))
                .filter(|s| !s.is_null());
            let cur = |path: &str| {
                status
                    .and_then(|s| q(s.pointer(path)))
                    .unwrap_or_else(|| "<unknown>".into())
            };
            let target = |path: &str| q(spec.pointer(&format!("/{field}/target/{path}")));
            match ty {
                "External" | "Object" => match target("averageValue") {
                    Some(avg) => format!("{}/{avg} (avg)", cur("/current/averageValue")),
                    None => format!(
                        "{}/{}",
                        cur("/current/value"),
                        target("value").unwrap_or_else(|| "<nil>".into())
                    ),
                },
                "Pods" => format!(
                    "{}/{}",
                    cur("/current/averageValue"),
                    target("averageValue").unwrap_or_else(|| "<nil>".into())
                ),
                _ => {
                    let name = str_at(spec, &format!("/{field}/name"));
                    match target("averageValue") {
                        Some(avg) => format!("{name}: {}/{avg}", cur("/current/averageValue")),
                        None => {
                            let current = status
                                .and_then(|s| s.pointer("/current/averageUtilization"))
                                .and_then(Value::as_i64)
                                .map_or_else(|| "<unknown>".into(), |u| format!("{u}%"));
                            let wanted = spec
                                .pointer(&format!("/{field}/target/averageUtilization"))
                                .and_then(Value::as_i64)
                                .map_or_else(|| "<auto>".into(), |u| format!("{u}%"));
                            format!("{name}: {current}/{wanted}")
                        }
                    }
                }
            }
        })
        .collect();
    if list.len() > 2 {
        return json!(format!(
            "{} + {} more...",
            list[..2].join(", "),
            list.len() - 2
        ));
    }
    json!(list.join(", "))
}

fn hpa_min_pods(hpa: &Value, _: Timestamp) -> Value {
    match hpa.pointer("/spec/minReplicas").and_then(Value::as_i64) {
        Some(n) => json!(n.to_string()),
        None => json!("<unset>"),
    }
}

fn hpa_max_pods(hpa: &Value, _: Timestamp) -> Value {
    json!(int_at(hpa, "/spec/maxReplicas"))
}

fn hpa_replicas(hpa: &Value, _: Timestamp) -> Value {
    json!(int_at(hpa, "/status/currentReplicas"))
}

// ---------------------------------------------------------------------------
// VolumeAttachments, CSINodes, CSIStorageCapacities, VolumeAttributesClasses.

fn va_attacher(va: &Value, _: Timestamp) -> Value {
    json!(str_at(va, "/spec/attacher"))
}

fn va_pv(va: &Value, _: Timestamp) -> Value {
    json!(str_at(va, "/spec/source/persistentVolumeName"))
}

fn va_node(va: &Value, _: Timestamp) -> Value {
    json!(str_at(va, "/spec/nodeName"))
}

fn va_attached(va: &Value, _: Timestamp) -> Value {
    json!(bool_at(va, "/status/attached"))
}

fn fs_level(f: &Value, _: Timestamp) -> Value {
    json!(str_at(f, "/spec/priorityLevelConfiguration/name"))
}

fn fs_precedence(f: &Value, _: Timestamp) -> Value {
    json!(int_at(f, "/spec/matchingPrecedence"))
}

fn fs_distinguisher(f: &Value, _: Timestamp) -> Value {
    json!(none_if_empty(str_at(f, "/spec/distinguisherMethod/type")))
}

fn fs_missing(f: &Value, _: Timestamp) -> Value {
    json!(crate::flowcontrol::missing_level(f))
}

fn pl_type(p: &Value, _: Timestamp) -> Value {
    json!(str_at(p, "/spec/type"))
}

/// A number of a Limited level's spec (`/spec/limited` + `path`),
/// `<none>` for other levels or when unset.
fn pl_limited(p: &Value, path: &str) -> Value {
    match p.pointer(&format!("/spec/limited{path}")) {
        Some(v) if v.is_number() => v.clone(),
        _ => json!("<none>"),
    }
}

fn pl_shares(p: &Value, _: Timestamp) -> Value {
    pl_limited(p, "/nominalConcurrencyShares")
}

fn pl_queues(p: &Value, _: Timestamp) -> Value {
    pl_limited(p, "/limitResponse/queuing/queues")
}

fn pl_hand_size(p: &Value, _: Timestamp) -> Value {
    pl_limited(p, "/limitResponse/queuing/handSize")
}

fn pl_queue_limit(p: &Value, _: Timestamp) -> Value {
    pl_limited(p, "/limitResponse/queuing/queueLengthLimit")
}

fn claim_state(c: &Value, _: Timestamp) -> Value {
    json!(crate::dra::claim_state(c))
}

fn slice_node(s: &Value, _: Timestamp) -> Value {
    json!(str_at(s, "/spec/nodeName"))
}

fn slice_driver(s: &Value, _: Timestamp) -> Value {
    json!(str_at(s, "/spec/driver"))
}

fn slice_pool(s: &Value, _: Timestamp) -> Value {
    json!(str_at(s, "/spec/pool/name"))
}

fn csr_signer(c: &Value, _: Timestamp) -> Value {
    json!(none_if_empty(str_at(c, "/spec/signerName")))
}

fn csr_requestor(c: &Value, _: Timestamp) -> Value {
    json!(str_at(c, "/spec/username"))
}

fn csr_duration(c: &Value, _: Timestamp) -> Value {
    match c.pointer("/spec/expirationSeconds").and_then(Value::as_u64) {
        Some(s) => json!(human_duration(s)),
        None => json!("<none>"),
    }
}

fn csr_condition(c: &Value, _: Timestamp) -> Value {
    json!(crate::certificates::condition_summary(c))
}

fn none_if_empty(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn csinode_drivers(n: &Value, _: Timestamp) -> Value {
    json!(arr_at(n, "/spec/drivers").len())
}

fn csc_storage_class(c: &Value, _: Timestamp) -> Value {
    json!(str_at(c, "/storageClassName"))
}

fn csc_capacity(c: &Value, _: Timestamp) -> Value {
    match c.get("capacity").filter(|v| !v.is_null()) {
        Some(v) => json!(quantity(Some(v))),
        None => json!("<unset>"),
    }
}

fn vac_driver(c: &Value, _: Timestamp) -> Value {
    json!(str_at(c, "/driverName"))
}

// ---------------------------------------------------------------------------
// Admission configuration (admissionregistration.k8s.io).

fn webhook_count(c: &Value, _: Timestamp) -> Value {
    json!(arr_at(c, "/webhooks").len())
}

fn vap_validations(p: &Value, _: Timestamp) -> Value {
    json!(arr_at(p, "/spec/validations").len())
}

/// `apiVersion/kind` of the parameter kind, `<unset>` without.
fn vap_param_kind(p: &Value, _: Timestamp) -> Value {
    match p.pointer("/spec/paramKind").filter(|k| k.is_object()) {
        Some(k) => json!(format!(
            "{}/{}",
            str_at(k, "/apiVersion"),
            str_at(k, "/kind")
        )),
        None => json!("<unset>"),
    }
}

fn vapb_policy(b: &Value, _: Timestamp) -> Value {
    json!(str_at(b, "/spec/policyName"))
}

/// `namespace/name` (`*/name` without a namespace) of the parameter, the
/// selector as its Go value prints otherwise, `<unset>` without.
fn vapb_param_ref(b: &Value, _: Timestamp) -> Value {
    let Some(r) = b.pointer("/spec/paramRef").filter(|r| r.is_object()) else {
        return json!("<unset>");
    };
    let (name, ns) = (str_at(r, "/name"), str_at(r, "/namespace"));
    if !name.is_empty() {
        return json!(if ns.is_empty() {
            format!("*/{name}")
        } else {
            format!("{ns}/{name}")
        });
    }
    let Some(sel) = r.get("selector").filter(|s| s.is_object()) else {
        return json!("<unset>");
    };
    // gogo-protobuf's String() of a *metav1.LabelSelector.
    let labels: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}: {},", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let exprs: Vec<String> = arr_at(sel, "/matchExpressions")
        .iter()
        .map(|e| {
            let values: Vec<&str> = arr_at(e, "/values")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}}",
                str_at(e, "/key"),
                str_at(e, "/operator"),
                values.join(" ")
            )
        })
        .collect();
    json!(format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{}}},MatchExpressions:[]LabelSelectorRequirement{{{}}},}}",
        labels.join(""),
        exprs.join(",")
    ))
}

// ---------------------------------------------------------------------------
// APIServices (kube-aggregator's ConvertToTable).

/// `Local` without a service, else `namespace/name`.
fn apiservice_service(a: &Value, _: Timestamp) -> Value {
    match a.pointer("/spec/service").filter(|s| s.is_object()) {
        Some(s) => json!(format!(
            "{}/{}",
            str_at(s, "/namespace"),
            str_at(s, "/name")
        )),
        None => json!("Local"),
    }
}

/// The Available condition's status, with its reason when not True;
/// `Unknown` without one.
fn apiservice_available(a: &Value, _: Timestamp) -> Value {
    let Some(c) = arr_at(a, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == "Available")
    else {
        return json!("Unknown");
    };
    let (status, reason) = (str_at(c, "/status"), str_at(c, "/reason"));
    if status == "True" || reason.is_empty() {
        json!(status)
    } else {
        json!(format!("{status} ({reason})"))
    }
}
