//! The default RBAC objects every cluster starts with: kube-apiserver's
//! bootstrap policy (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/
//! bootstrappolicy, rendered in its `testdata/cluster-roles.yaml` and
//! `cluster-role-bindings.yaml`), as the documented "Default roles and role
//! bindings" of the RBAC guide on kubernetes.io.
//!
//! Every object carries the label `kubernetes.io/bootstrapping: rbac-defaults`
//! and the annotation `rbac.authorization.kubernetes.io/autoupdate: "true"`.
//! The user-facing roles `admin`, `edit` and `view` are aggregated roles:
//! they carry an `aggregationRule` and their `rules` are the union of every
//! bootstrap ClusterRole whose labels match it, computed here the way
//! kube-controller-manager's clusterrole-aggregation controller would
//! (`view` ⊂ `edit` ⊂ `admin`).
//!
//! The tables are data; [`cluster_roles`] and [`cluster_role_bindings`] are
//! pure and unit-tested, and [`ensure`] creates whatever is missing at start
//! and adds to existing `autoupdate` objects what they lack ([`reconciled`]).

use crate::error::ApiResult;
use crate::registry;
use crate::request::Target;
use crate::rest::Api;
use serde_json::{Value, json};
use std::sync::Arc;

/// One PolicyRule: resource rules when `urls` is empty, otherwise a
/// non-resource-URL rule.
struct Rule {
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
    names: &'static [&'static str],
    urls: &'static [&'static str],
}

const fn res(
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
) -> Rule {
    Rule {
        groups,
        resources,
        verbs,
        names: &[],
        urls: &[],
    }
}

const fn named(
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    names: &'static [&'static str],
    verbs: &'static [&'static str],
) -> Rule {
    Rule {
        groups,
        resources,
        verbs,
        names,
        urls: &[],
    }
}

const fn urls(urls: &'static [&'static str], verbs: &'static [&'static str]) -> Rule {
    Rule {
        groups: &[],
        resources: &[],
        verbs,
        names: &[],
        urls,
    }
}

/// One bootstrap ClusterRole.
struct Role {
    name: &'static str,
    /// Extra labels (the `aggregate-to-*` ones).
    labels: &'static [(&'static str, &'static str)],
    /// `aggregationRule.clusterRoleSelectors[].matchLabels` (one label each).
    aggregate_from: &'static [(&'static str, &'static str)],
    rules: &'static [Rule],
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
/// Every verb of a stored kind.
const READ_WRITE: &[&str] = crate::registry::VERBS;
const EVENTS_WRITE: &[&str] = &["create", "patch", "update"];

const TO_ADMIN: (&str, &str) = ("rbac.authorization.k8s.io/aggregate-to-admin", "true");
const TO_EDIT: (&str, &str) = ("rbac.authorization.k8s.io/aggregate-to-edit", "true");
const TO_VIEW: (&str, &str) = ("rbac.authorization.k8s.io/aggregate-to-view", "true");

const fn role(name: &'static str, rules: &'static [Rule]) -> Role {
    Role {
        name,
        labels: &[],
        aggregate_from: &[],
        rules,
    }
}

static ROLES: &[Role] = &[
    role(
        SYNCER_USER,
        &[
            res(&[""], &["pods"], &["delete", "get", "list", "watch"]),
            res(
                &[""],
                &[
                    "persistentvolumeclaims/status",
                    "persistentvolumes/status",
                    "pods/status",
                    "services/status",
                ],
                &["patch"],
            ),
            res(
                &[""],
                &["pods/binding", "serviceaccounts/token"],
                &["create"],
            ),
            res(
                &[""],
                &["endpoints", "namespaces", "serviceaccounts"],
                LIST_WATCH,
            ),
            res(&[""], &["configmaps", "secrets"], READ),
            res(&[""], &["services"], &["get", "list", "update", "watch"]),
            res(
                &[""],
                &["persistentvolumeclaims"],
                &["get", "list", "patch", "watch"],
            ),
            res(
                &[""],
                &["persistentvolumes"],
                &[
                    "create", "delete", "get", "list", "patch", "update", "watch",
                ],
            ),
            res(
                &[""],
                &["nodes"],
                &["create", "delete", "get", "list", "update", "watch"],
            ),
            res(&[""], &["nodes/status"], &["update"]),
            res(&[""], &["events"], &["create", "get", "update"]),
            res(&["policy"], &["poddisruptionbudgets"], LIST_WATCH),
            res(
                &["networking.k8s.io"],
                &["ingresses", "networkpolicies"],
                LIST_WATCH,
            ),
            res(&["networking.k8s.io"], &["ingresses/status"], &["patch"]),
            res(
                &["networking.k8s.io"],
                &["ingressclasses"],
                &["create", "delete", "list", "update", "watch"],
            ),
            res(
                &["storage.k8s.io"],
                &["csidrivers", "csinodes", "storageclasses"],
                &["create", "delete", "list", "update", "watch"],
            ),
            res(&["scheduling.k8s.io"], &["priorityclasses"], READ),
        ],
    ),
    role(
        "system:coredns",
        &[
            res(
                &[""],
                &["endpoints", "namespaces", "pods", "services"],
                LIST_WATCH,
            ),
            res(&["discovery.k8s.io"], &["endpointslices"], LIST_WATCH),
        ],
    ),
    Role {
        name: "admin",
        labels: &[],
        aggregate_from: &[TO_ADMIN],
        rules: &[],
    },
    role(
        "cluster-admin",
        &[res(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
    ),
    Role {
        name: "edit",
        labels: &[TO_ADMIN],
        aggregate_from: &[TO_EDIT],
        rules: &[],
    },
    Role {
        name: "view",
        labels: &[TO_EDIT],
        aggregate_from: &[TO_VIEW],
        rules: &[],
    },
    Role {
        name: "system:aggregate-to-admin",
        labels: &[TO_ADMIN],
        aggregate_from: &[],
        rules: &[
            res(
                &["authorization.k8s.io"],
                &["localsubjectaccessreviews"],
                &["create"],
            ),
            res(
                &["rbac.authorization.k8s.io"],
                &["rolebindings", "roles"],
                READ_WRITE,
            ),
        ],
    },
    Role {
        name: "system:aggregate-to-edit",
        labels: &[TO_EDIT],
        aggregate_from: &[],
        rules: &[
            res(
                &[""],
                &[
                    "pods/attach",
                    "pods/exec",
                    "pods/portforward",
                    "pods/proxy",
                    "secrets",
                    "services/proxy",
                ],
                READ,
            ),
            res(&[""], &["serviceaccounts"], &["impersonate"]),
            res(
                &[""],
                &[
                    "pods",
                    "pods/attach",
                    "pods/exec",
                    "pods/portforward",
                    "pods/proxy",
                ],
                WRITE,
            ),
            res(&[""], &["pods/eviction"], &["create"]),
            res(
                &[""],
                &[
                    "configmaps",
                    "events",
                    "persistentvolumeclaims",
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "secrets",
                    "serviceaccounts",
                    "services",
                    "services/proxy",
                ],
                WRITE,
            ),
            res(&[""], &["serviceaccounts/token"], &["create"]),
            res(
                &["apps"],
                &[
                    "daemonsets",
                    "deployments",
                    "deployments/rollback",
                    "deployments/scale",
                    "replicasets",
                    "replicasets/scale",
                    "statefulsets",
                    "statefulsets/scale",
                ],
                WRITE,
            ),
            res(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
            res(&["batch"], &["cronjobs", "jobs"], WRITE),
            res(&["policy"], &["poddisruptionbudgets"], WRITE),
            res(
                &["networking.k8s.io"],
                &["ingresses", "networkpolicies"],
                WRITE,
            ),
            res(&["coordination.k8s.io"], &["leases"], READ_WRITE),
            // kube's roles still name the retired extensions group.
            res(
                &["extensions"],
                &[
                    "daemonsets",
                    "deployments",
                    "deployments/rollback",
                    "deployments/scale",
                    "ingresses",
                    "networkpolicies",
                    "replicasets",
                    "replicasets/scale",
                    "replicationcontrollers/scale",
                ],
                WRITE,
            ),
            res(
                &["resource.k8s.io"],
                &["resourceclaims", "resourceclaimtemplates"],
                WRITE,
            ),
        ],
    },
    Role {
        name: "system:aggregate-to-view",
        labels: &[TO_VIEW],
        aggregate_from: &[],
        rules: &[
            res(
                &[""],
                &[
                    "configmaps",
                    "endpoints",
                    "persistentvolumeclaims",
                    "persistentvolumeclaims/status",
                    "pods",
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "serviceaccounts",
                    "services",
                    "services/status",
                ],
                READ,
            ),
            res(
                &[""],
                &[
                    "bindings",
                    "events",
                    "limitranges",
                    "namespaces/status",
                    "pods/log",
                    "pods/status",
                    "replicationcontrollers/status",
                    "resourcequotas",
                    "resourcequotas/status",
                ],
                READ,
            ),
            res(&[""], &["namespaces"], READ),
            res(&["discovery.k8s.io"], &["endpointslices"], READ),
            res(
                &["apps"],
                &[
                    "controllerrevisions",
                    "daemonsets",
                    "daemonsets/status",
                    "deployments",
                    "deployments/scale",
                    "deployments/status",
                    "replicasets",
                    "replicasets/scale",
                    "replicasets/status",
                    "statefulsets",
                    "statefulsets/scale",
                    "statefulsets/status",
                ],
                READ,
            ),
            res(
                &["autoscaling"],
                &[
                    "horizontalpodautoscalers",
                    "horizontalpodautoscalers/status",
                ],
                READ,
            ),
            res(
                &["batch"],
                &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                READ,
            ),
            res(
                &["policy"],
                &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                READ,
            ),
            res(
                &["networking.k8s.io"],
                &["ingresses", "ingresses/status", "networkpolicies"],
                READ,
            ),
            res(
                &["extensions"],
                &[
                    "daemonsets",
                    "daemonsets/status",
                    "deployments",
                    "deployments/scale",
                    "deployments/status",
                    "ingresses",
                    "ingresses/status",
                    "networkpolicies",
                    "replicasets",
                    "replicasets/scale",
                    "replicasets/status",
                    "replicationcontrollers/scale",
                ],
                READ,
            ),
            res(
                &["resource.k8s.io"],
                &[
                    "resourceclaims",
                    "resourceclaims/status",
                    "resourceclaimtemplates",
                ],
                READ,
            ),
        ],
    },
    role(
        "system:auth-delegator",
        &[
            res(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            res(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
            ),
        ],
    ),
    role(
        "system:basic-user",
        &[
            res(
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                &["create"],
            ),
            res(
                &["authentication.k8s.io"],
                &["selfsubjectreviews"],
                &["create"],
            ),
        ],
    ),
    role(
        "system:discovery",
        &[urls(
            &[
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ],
            &["get"],
        )],
    ),
    role(
        "system:public-info-viewer",
        &[urls(
            &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            &["get"],
        )],
    ),
    role(
        "system:monitoring",
        &[urls(
            &[
                "/healthz",
                "/healthz/*",
                "/livez",
                "/livez/*",
                "/metrics",
                "/metrics/slis",
                "/readyz",
                "/readyz/*",
            ],
            &["get"],
        )],
    ),
    role(
        "system:service-account-issuer-discovery",
        &[urls(
            &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            &["get"],
        )],
    ),
    role(
        "system:kube-controller-manager",
        &[
            res(&["", "events.k8s.io"], &["events"], EVENTS_WRITE),
            res(&["coordination.k8s.io"], &["leases"], &["create"]),
            named(
                &["coordination.k8s.io"],
                &["leases"],
                &["kube-controller-manager"],
                &["get", "update"],
            ),
            res(&[""], &["secrets", "serviceaccounts"], &["create"]),
            res(&[""], &["secrets"], &["delete"]),
            res(
                &[""],
                &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                &["get"],
            ),
            res(&[""], &["secrets", "serviceaccounts"], &["update"]),
            res(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            res(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
            ),
            res(&["*"], &["*"], &["list", "watch"]),
            res(&[""], &["serviceaccounts/token"], &["create"]),
        ],
    ),
    role(
        "system:kube-scheduler",
        &[
            res(&["", "events.k8s.io"], &["events"], EVENTS_WRITE),
            res(&["coordination.k8s.io"], &["leases"], &["create"]),
            named(
                &["coordination.k8s.io"],
                &["leases"],
                &["kube-scheduler"],
                &["get", "update"],
            ),
            res(&[""], &["nodes"], READ),
            res(&[""], &["pods"], &["delete", "get", "list", "watch"]),
            res(&[""], &["bindings", "pods/binding"], &["create"]),
            res(&[""], &["pods/status"], &["patch", "update"]),
            res(&[""], &["replicationcontrollers", "services"], READ),
            res(&["apps", "extensions"], &["replicasets"], READ),
            res(&["apps"], &["statefulsets"], READ),
            res(&["policy"], &["poddisruptionbudgets"], READ),
            res(
                &[""],
                &["persistentvolumeclaims", "persistentvolumes"],
                READ,
            ),
            res(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            res(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
            ),
            res(&[""], &["namespaces"], READ),
        ],
    ),
    role(
        "system:kube-dns",
        &[res(&[""], &["endpoints", "services"], &["list", "watch"])],
    ),
    role(
        "system:node-proxier",
        &[
            res(&[""], &["endpoints", "services"], &["list", "watch"]),
            res(&[""], &["nodes"], READ),
            res(&["", "events.k8s.io"], &["events"], EVENTS_WRITE),
            res(
                &["discovery.k8s.io"],
                &["endpointslices"],
                &["list", "watch"],
            ),
        ],
    ),
    role(
        "system:node",
        &[
            res(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            res(
                &["authorization.k8s.io"],
                &["localsubjectaccessreviews", "subjectaccessreviews"],
                &["create"],
            ),
            res(&[""], &["services"], READ),
            res(&[""], &["nodes"], &["create", "get", "list", "watch"]),
            res(&[""], &["nodes/status"], &["patch", "update"]),
            res(&[""], &["nodes"], &["patch", "update"]),
            res(&[""], &["events"], EVENTS_WRITE),
            res(&[""], &["pods"], READ),
            res(&[""], &["pods"], &["create", "delete"]),
            res(&[""], &["pods/status"], &["patch", "update"]),
            res(&[""], &["pods/eviction"], &["create"]),
            res(&[""], &["configmaps", "secrets"], READ),
            res(
                &[""],
                &["persistentvolumeclaims", "persistentvolumes"],
                &["get"],
            ),
            res(&[""], &["endpoints"], &["get"]),
            res(
                &["coordination.k8s.io"],
                &["leases"],
                &["create", "delete", "get", "patch", "update"],
            ),
            res(&[""], &["serviceaccounts/token"], &["create"]),
            res(
                &[""],
                &["persistentvolumeclaims/status"],
                &["get", "patch", "update"],
            ),
        ],
    ),
];

/// The roles of the built-in controllers, each `system:controller:NAME`
/// bound to the service account `kube-system/NAME` the controller acts as.
/// The names and rules are kube-controller-manager's (bootstrappolicy's
/// controller_policy.go), with what vkube's controllers do beyond them:
/// they watch through their own identity (kube-controller-manager's shared
/// informers list and watch as `system:kube-controller-manager`), write
/// most status subresources with `patch` where kube's role grants
/// `update`, and the job controller also deletes finished Jobs (kube's
/// separate ttl-after-finished controller).
const EVENTS: Rule = res(&["", "events.k8s.io"], &["events"], EVENTS_WRITE);
const LIST_WATCH: &[&str] = &["list", "watch"];
const UPDATE_PATCH: &[&str] = &["patch", "update"];

static CONTROLLER_ROLES: &[(&str, &[Rule])] = &[
    (
        "deployment-controller",
        &[
            res(
                &["apps", "extensions"],
                &["deployments"],
                &["get", "list", "patch", "update", "watch"],
            ),
            res(
                &["apps", "extensions"],
                &["deployments/finalizers", "deployments/status"],
                UPDATE_PATCH,
            ),
            res(
                &["apps", "extensions"],
                &["replicasets"],
                &[
                    "create", "delete", "get", "list", "patch", "update", "watch",
                ],
            ),
            res(&[""], &["pods"], &["get", "list", "update", "watch"]),
            EVENTS,
        ],
    ),
    (
        "replicaset-controller",
        &[
            res(
                &["apps", "extensions"],
                &["replicasets"],
                &["get", "list", "update", "watch"],
            ),
            res(
                &["apps", "extensions"],
                &["replicasets/finalizers", "replicasets/status"],
                UPDATE_PATCH,
            ),
            res(
                &[""],
                &["pods"],
                &["create", "delete", "list", "patch", "watch"],
            ),
            EVENTS,
        ],
    ),
    (
        "generic-garbage-collector",
        &[
            res(
                &["*"],
                &["*"],
                &["delete", "get", "list", "patch", "update", "watch"],
            ),
            EVENTS,
        ],
    ),
    (
        "replication-controller",
        &[
            res(
                &[""],
                &["replicationcontrollers"],
                &["get", "list", "update", "watch"],
            ),
            res(
                &[""],
                &[
                    "replicationcontrollers/finalizers",
                    "replicationcontrollers/status",
                ],
                UPDATE_PATCH,
            ),
            res(
                &[""],
                &["pods"],
                &["create", "delete", "list", "patch", "watch"],
            ),
            EVENTS,
        ],
    ),
    (
        "namespace-controller",
        &[
            res(&[""], &["namespaces"], &["delete", "get", "list", "watch"]),
            res(
                &[""],
                &["namespaces/finalize", "namespaces/status"],
                UPDATE_PATCH,
            ),
            res(
                &["*"],
                &["*"],
                &["delete", "deletecollection", "get", "list", "watch"],
            ),
        ],
    ),
    (
        "service-account-controller",
        &[
            res(&[""], &["serviceaccounts"], &["create", "list", "watch"]),
            res(&[""], &["namespaces"], LIST_WATCH),
            EVENTS,
        ],
    ),
    (
        "root-ca-cert-publisher",
        &[
            res(
                &[""],
                &["configmaps"],
                &["create", "list", "patch", "update", "watch"],
            ),
            res(&[""], &["namespaces"], LIST_WATCH),
            EVENTS,
        ],
    ),
    (
        "endpoint-controller",
        &[
            res(&[""], &["pods", "services"], READ),
            res(
                &[""],
                &["endpoints"],
                &["create", "delete", "get", "list", "update", "watch"],
            ),
            res(&[""], &["endpoints/restricted"], &["create"]),
            EVENTS,
        ],
    ),
    (
        "disruption-controller",
        &[
            res(
                &["apps", "extensions"],
                &["deployments", "replicasets"],
                READ,
            ),
            res(&[""], &["replicationcontrollers"], READ),
            res(&["apps"], &["statefulsets"], READ),
            res(&["policy"], &["poddisruptionbudgets"], READ),
            res(&["policy"], &["poddisruptionbudgets/status"], &["update"]),
            res(&[""], &["pods"], LIST_WATCH),
            res(&[""], &["pods/status"], UPDATE_PATCH),
            res(&["*"], &["*/scale"], &["get"]),
            EVENTS,
        ],
    ),
    (
        "pvc-protection-controller",
        &[
            res(
                &[""],
                &["persistentvolumeclaims"],
                &["get", "list", "patch", "update", "watch"],
            ),
            res(&[""], &["persistentvolumeclaims/status"], &["update"]),
            res(&[""], &["pods"], READ),
            EVENTS,
        ],
    ),
    (
        "pod-garbage-collector",
        &[
            res(&[""], &["pods"], &["list", "watch", "delete"]),
            res(&[""], &["nodes"], READ),
            res(&[""], &["pods/status"], &["patch"]),
        ],
    ),
    (
        "pv-protection-controller",
        &[
            res(
                &[""],
                &["persistentvolumes"],
                &["get", "list", "patch", "update", "watch"],
            ),
            res(&[""], &["persistentvolumeclaims"], READ),
            EVENTS,
        ],
    ),
    (
        "horizontal-pod-autoscaler",
        &[
            res(&["autoscaling"], &["horizontalpodautoscalers"], READ),
            res(
                &["autoscaling"],
                &["horizontalpodautoscalers/status"],
                &["update"],
            ),
            res(&["*"], &["*/scale"], &["get", "patch", "update"]),
            res(&[""], &["pods"], LIST_WATCH),
            res(&["metrics.k8s.io"], &["pods"], LIST_WATCH),
            res(&["custom.metrics.k8s.io"], &["*"], READ),
            res(&["external.metrics.k8s.io"], &["*"], READ),
            EVENTS,
        ],
    ),
    (
        "ephemeral-volume-controller",
        &[
            res(&[""], &["pods"], READ),
            res(&[""], &["pods/finalizers"], &["update"]),
            res(
                &[""],
                &["persistentvolumeclaims"],
                &["create", "get", "list", "watch"],
            ),
            EVENTS,
        ],
    ),
    (
        "endpointslice-controller",
        &[
            res(&[""], &["nodes", "pods", "services"], READ),
            res(&[""], &["services/finalizers"], &["update"]),
            res(
                &["discovery.k8s.io"],
                &["endpointslices"],
                &["create", "delete", "get", "list", "update", "watch"],
            ),
            res(
                &["discovery.k8s.io"],
                &["endpointslices/restricted"],
                &["create"],
            ),
            EVENTS,
        ],
    ),
    (
        "job-controller",
        &[
            res(
                &["batch"],
                &["jobs"],
                &["delete", "get", "list", "patch", "update", "watch"],
            ),
            res(
                &["batch"],
                &["jobs/finalizers", "jobs/status"],
                UPDATE_PATCH,
            ),
            res(
                &[""],
                &["pods"],
                &["create", "delete", "list", "patch", "watch"],
            ),
            EVENTS,
        ],
    ),
    (
        "cronjob-controller",
        &[
            res(
                &["batch"],
                &["cronjobs"],
                &["get", "list", "update", "watch"],
            ),
            res(
                &["batch"],
                &["jobs"],
                &[
                    "create", "delete", "get", "list", "patch", "update", "watch",
                ],
            ),
            res(
                &["batch"],
                &["cronjobs/finalizers", "cronjobs/status"],
                UPDATE_PATCH,
            ),
            res(&[""], &["pods"], &["delete", "list", "watch"]),
            EVENTS,
        ],
    ),
    (
        "statefulset-controller",
        &[
            res(
                &[""],
                &["pods"],
                &[
                    "create", "delete", "get", "list", "patch", "update", "watch",
                ],
            ),
            res(&["apps"], &["statefulsets"], READ),
            res(
                &["apps"],
                &["statefulsets/finalizers", "statefulsets/status"],
                UPDATE_PATCH,
            ),
            res(
                &["apps"],
                &["controllerrevisions"],
                &[
                    "create", "delete", "get", "list", "patch", "update", "watch",
                ],
            ),
            res(
                &[""],
                &["persistentvolumeclaims"],
                &["create", "delete", "get", "list", "update", "watch"],
            ),
            res(&[""], &["pods/finalizers"], &["update"]),
            EVENTS,
        ],
    ),
    (
        "daemon-set-controller",
        &[
            res(&["apps", "extensions"], &["daemonsets"], READ),
            res(
                &["apps", "extensions"],
                &["daemonsets/finalizers", "daemonsets/status"],
                UPDATE_PATCH,
            ),
            res(&[""], &["nodes"], LIST_WATCH),
            res(
                &[""],
                &["pods"],
                &["create", "delete", "list", "patch", "watch"],
            ),
            res(&[""], &["pods/binding"], &["create"]),
            res(
                &["apps"],
                &["controllerrevisions"],
                &[
                    "create", "delete", "get", "list", "patch", "update", "watch",
                ],
            ),
            EVENTS,
        ],
    ),
    (
        "clusterrole-aggregation-controller",
        &[res(
            &["rbac.authorization.k8s.io"],
            &["clusterroles"],
            &["escalate", "get", "list", "patch", "update", "watch"],
        )],
    ),
    (
        "certificate-controller",
        &[
            res(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["delete", "get", "list", "watch"],
            ),
            res(
                &["certificates.k8s.io"],
                &[
                    "certificatesigningrequests/approval",
                    "certificatesigningrequests/status",
                ],
                &["update"],
            ),
            named(
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/kube-apiserver-client-kubelet"],
                &["approve"],
            ),
            named(
                &["certificates.k8s.io"],
                &["signers"],
                &[
                    "kubernetes.io/kube-apiserver-client",
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    "kubernetes.io/kubelet-serving",
                    "kubernetes.io/legacy-unknown",
                ],
                &["sign"],
            ),
            res(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
            ),
            EVENTS,
        ],
    ),
    (
        "resourcequota-controller",
        &[
            res(&["*"], &["*"], LIST_WATCH),
            res(&[""], &["resourcequotas"], &["get"]),
            res(&[""], &["resourcequotas/status"], &["update"]),
            EVENTS,
        ],
    ),
];

/// The user the syncer acts as on the virtual API; the ClusterRole and
/// ClusterRoleBinding `system:vkube-syncer` grant what it reads and writes
/// there (it does the scheduler's binding, the kubelet's pod, node and
/// status work and the volume binder's for the host, and mints the pods'
/// service account tokens).
pub const SYNCER_USER: &str = "system:vkube-syncer";

/// The service account the tenant DNS server acts as, bound to kubeadm's
/// `system:coredns` ClusterRole (CoreDNS's own).
pub const DNS_USER: &str = "system:serviceaccount:kube-system:coredns";

/// One bootstrap ClusterRoleBinding: role name = binding name.
struct Binding {
    name: &'static str,
    /// `(kind, name, namespace)` of each subject.
    subjects: &'static [(&'static str, &'static str, &'static str)],
}

static BINDINGS: &[Binding] = &[
    Binding {
        name: SYNCER_USER,
        subjects: &[("User", SYNCER_USER, "")],
    },
    Binding {
        name: "system:coredns",
        subjects: &[("ServiceAccount", "coredns", "kube-system")],
    },
    Binding {
        name: "cluster-admin",
        subjects: &[("Group", "system:masters", "")],
    },
    Binding {
        name: "system:basic-user",
        subjects: &[("Group", "system:authenticated", "")],
    },
    Binding {
        name: "system:discovery",
        subjects: &[("Group", "system:authenticated", "")],
    },
    Binding {
        name: "system:public-info-viewer",
        subjects: &[
            ("Group", "system:authenticated", ""),
            ("Group", "system:unauthenticated", ""),
        ],
    },
    Binding {
        name: "system:monitoring",
        subjects: &[("Group", "system:monitoring", "")],
    },
    Binding {
        name: "system:service-account-issuer-discovery",
        subjects: &[("Group", "system:serviceaccounts", "")],
    },
    Binding {
        name: "system:kube-controller-manager",
        subjects: &[("User", "system:kube-controller-manager", "")],
    },
    Binding {
        name: "system:kube-scheduler",
        subjects: &[("User", "system:kube-scheduler", "")],
    },
    Binding {
        name: "system:kube-dns",
        subjects: &[("ServiceAccount", "kube-dns", "kube-system")],
    },
    Binding {
        name: "system:node-proxier",
        subjects: &[("User", "system:kube-proxy", "")],
    },
];

fn bootstrap_metadata(name: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in extra_labels {
        labels.insert((*k).into(), json!(v));
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn rule_json(rule: &Rule) -> Value {
    let mut r = serde_json::Map::new();
    r.insert("verbs".into(), json!(rule.verbs));
    if rule.urls.is_empty() {
        r.insert("apiGroups".into(), json!(rule.groups));
        r.insert("resources".into(), json!(rule.resources));
        if !rule.names.is_empty() {
            r.insert("resourceNames".into(), json!(rule.names));
        }
    } else {
        r.insert("nonResourceURLs".into(), json!(rule.urls));
    }
    Value::Object(r)
}

/// The rules of `role` including, for an aggregated role, every rule of the
/// bootstrap roles its selectors match (transitively), deduplicated in first
/// appearance order as the aggregation controller does.
fn effective_rules(role: &Role) -> Vec<Value> {
    let mut out: Vec<Value> = role.rules.iter().map(rule_json).collect();
    for selector in role.aggregate_from {
        for member in ROLES.iter().filter(|r| r.labels.contains(selector)) {
            for rule in effective_rules(member) {
                if !out.contains(&rule) {
                    out.push(rule);
                }
            }
        }
    }
    out
}

/// The bootstrap ClusterRoles as rbac.authorization.k8s.io/v1 objects,
/// the built-in controllers' `system:controller:*` roles last.
pub fn cluster_roles() -> Vec<Value> {
    let controllers = CONTROLLER_ROLES.iter().map(|(name, rules)| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": bootstrap_metadata(&format!("system:controller:{name}"), &[]),
            "rules": rules.iter().map(rule_json).collect::<Vec<_>>(),
        })
    });
    ROLES
        .iter()
        .map(|role| {
            let mut obj = json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": bootstrap_metadata(role.name, role.labels),
                "rules": effective_rules(role),
            });
            if !role.aggregate_from.is_empty() {
                let selectors: Vec<Value> = role
                    .aggregate_from
                    .iter()
                    .map(|(k, v)| json!({"matchLabels": {*k: v}}))
                    .collect();
                obj["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
            }
            obj
        })
        .chain(controllers)
        .collect()
}

/// The bootstrap ClusterRoleBindings as rbac.authorization.k8s.io/v1
/// objects, the built-in controllers' bindings last.
pub fn cluster_role_bindings() -> Vec<Value> {
    let controllers = CONTROLLER_ROLES.iter().map(|(name, _)| {
        let role = format!("system:controller:{name}");
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": bootstrap_metadata(&role, &[]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
        })
    });
    BINDINGS
        .iter()
        .map(|b| {
            let subjects: Vec<Value> = b
                .subjects
                .iter()
                .map(|(kind, name, ns)| {
                    if *kind == "ServiceAccount" {
                        json!({"kind": kind, "name": name, "namespace": ns})
                    } else {
                        json!({"kind": kind, "name": name, "apiGroup": "rbac.authorization.k8s.io"})
                    }
                })
                .collect();
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": bootstrap_metadata(b.name, &[]),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": b.name},
                "subjects": subjects,
            })
        })
        .chain(controllers)
        .collect()
}

/// Creates every bootstrap ClusterRole and ClusterRoleBinding that does not
/// exist yet, and reconciles those that do ([`reconciled`]: additions only,
/// and none to objects an admin marked `autoupdate: "false"`), as
/// kube-apiserver does at every start. The objects are handled
/// concurrently so that a first start pays for one group commit rather
/// than one fsync per object.
///
/// # Errors
/// The first create or update that fails for a reason other than `409
/// AlreadyExists`.
pub async fn ensure(api: &Arc<Api>) -> ApiResult<()> {
    let roles = registry::lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
        .expect("clusterroles registered");
    let bindings = registry::lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
        .expect("clusterrolebindings registered");
    let objects = cluster_roles()
        .into_iter()
        .map(|o| (roles, o))
        .chain(cluster_role_bindings().into_iter().map(|o| (bindings, o)));
    let creates = objects.map(|(def, obj)| async move {
        let target = Target {
            def: registry::Def::Builtin(def),
            namespace: None,
            name: None,
            subresource: None,
            watch_prefix: false,
        };
        // One read: create when absent, else reconcile (no write when
        // nothing is missing).
        let name = crate::meta::name(&obj).to_string();
        api.guaranteed_update(&target, &name, true, false, |current| {
            Ok(match current {
                None => obj.clone(),
                Some(current) => reconciled(current, &obj).unwrap_or_else(|| current.clone()),
            })
        })
        .await
        .map(|_| ())
    });
    for result in futures::future::join_all(creates).await {
        result?;
    }
    Ok(())
}

/// kube-apiserver's reconciliation of a bootstrap ClusterRole or
/// ClusterRoleBinding that exists (pkg/registry/rbac/reconciliation, as run
/// at every start): when `existing` is marked
/// `rbac.authorization.kubernetes.io/autoupdate: "true"`, what `expected`
/// has and it lacks is added (labels, annotations, aggregation selectors,
/// rules not covered, subjects); nothing is removed. `None`: nothing to
/// change.
pub fn reconciled(existing: &Value, expected: &Value) -> Option<Value> {
    let autoupdate = existing
        .pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate")
        .and_then(Value::as_str);
    if autoupdate != Some("true") {
        return None;
    }
    let mut out = existing.clone();
    for field in ["labels", "annotations"] {
        if let Some(want) = expected["metadata"][field].as_object() {
            let have = crate::meta::metadata_mut(&mut out)
                .entry(field)
                .or_insert_with(|| json!({}));
            if let Some(have) = have.as_object_mut() {
                for (k, v) in want {
                    have.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    if let Some(want) = expected
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
    {
        let selectors = out
            .as_object_mut()
            .expect("an object")
            .entry("aggregationRule")
            .or_insert_with(|| json!({}));
        if !selectors.is_object() {
            *selectors = json!({});
        }
        let list = selectors
            .as_object_mut()
            .expect("an object")
            .entry("clusterRoleSelectors")
            .or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut() {
            for s in want {
                if !list.contains(s) {
                    list.push(s.clone());
                }
            }
        }
    }
    if expected.get("rules").is_some() {
        let decode = |v: &Value| -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
            serde_json::from_value(v.clone()).unwrap_or_default()
        };
        let missing = crate::filters::authorization::escalation::uncovered(
            &decode(&existing["rules"]),
            &decode(&expected["rules"]),
        );
        if !missing.is_empty() {
            let rules = out
                .as_object_mut()
                .expect("an object")
                .entry("rules")
                .or_insert_with(|| json!([]));
            if !rules.is_array() {
                *rules = json!([]);
            }
            let list = rules.as_array_mut().expect("an array");
            list.extend(missing.iter().filter_map(|r| serde_json::to_value(r).ok()));
        }
    }
    if let Some(want) = expected["subjects"].as_array() {
        let subjects = out
            .as_object_mut()
            .expect("an object")
            .entry("subjects")
            .or_insert_with(|| json!([]));
        if !subjects.is_array() {
            *subjects = json!([]);
        }
        let list = subjects.as_array_mut().expect("an array");
        for s in want {
            if !list.contains(s) {
                list.push(s.clone());
            }
        }
    }
    (out != *existing).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(objs: &'a [Value], name: &str) -> &'a Value {
        objs.iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    fn grants(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
        role["rules"].as_array().unwrap().iter().any(|r| {
            let has = |field: &str, want: &str| {
                r[field]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == want || v == "*"))
            };
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    }

    #[test]
    fn reconciling_adds_what_an_autoupdate_object_lacks() {
        let expected = cluster_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == "system:basic-user")
            .unwrap();
        assert_eq!(reconciled(&expected, &expected), None);
        // An older copy: one rule fewer and a label missing.
        let mut old = expected.clone();
        old["rules"].as_array_mut().unwrap().pop();
        old["metadata"]["labels"] = json!({"team": "x"});
        let new = reconciled(&old, &expected).unwrap();
        assert_eq!(new["metadata"]["labels"]["team"], "x");
        assert_eq!(
            new["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        let covered = |role: &Value| {
            let decode = |v: &Value| -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
                serde_json::from_value(v.clone()).unwrap()
            };
            crate::filters::authorization::escalation::uncovered(
                &decode(&role["rules"]),
                &decode(&expected["rules"]),
            )
            .is_empty()
        };
        assert!(!covered(&old) && covered(&new));
        // An admin's opt-out is kept.
        old["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
            json!("false");
        assert_eq!(reconciled(&old, &expected), None);
        // Bindings gain missing subjects, keeping extra ones.
        let binding = cluster_role_bindings()
            .into_iter()
            .find(|b| b["metadata"]["name"] == "system:discovery")
            .unwrap();
        let mut edited = binding.clone();
        edited["subjects"] =
            json!([{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]);
        let merged = reconciled(&edited, &binding).unwrap();
        assert_eq!(merged["subjects"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn aggregated_roles_nest_view_in_edit_in_admin() {
        let roles = cluster_roles();
        let (admin, edit, view) = (
            find(&roles, "admin"),
            find(&roles, "edit"),
            find(&roles, "view"),
        );
        assert!(grants(view, "apps", "deployments", "list"));
        assert!(!grants(view, "apps", "deployments", "create"));
        assert!(
            !grants(view, "", "secrets", "get"),
            "view must not read secrets"
        );
        assert!(grants(edit, "apps", "deployments", "create"));
        assert!(grants(edit, "", "secrets", "get"));
        assert!(
            grants(edit, "apps", "deployments", "list"),
            "edit includes view"
        );
        assert!(!grants(
            edit,
            "rbac.authorization.k8s.io",
            "roles",
            "create"
        ));
        assert!(grants(
            admin,
            "rbac.authorization.k8s.io",
            "roles",
            "create"
        ));
        assert!(
            grants(admin, "apps", "deployments", "create"),
            "admin includes edit"
        );
        assert!(
            grants(admin, "batch", "jobs", "watch"),
            "admin includes view"
        );
        assert_eq!(
            admin["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]["rbac.authorization.k8s.io/aggregate-to-admin"],
            "true"
        );
        let admin_rules = admin["rules"].as_array().unwrap();
        for (i, r) in admin_rules.iter().enumerate() {
            assert!(!admin_rules[..i].contains(r), "duplicate rule {r}");
        }
    }

    #[test]
    fn cluster_admin_is_bound_to_system_masters() {
        let roles = cluster_roles();
        let ca = find(&roles, "cluster-admin");
        assert_eq!(
            ca["rules"],
            json!([
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
            ])
        );
        let bindings = cluster_role_bindings();
        let b = find(&bindings, "cluster-admin");
        assert_eq!(b["roleRef"]["name"], "cluster-admin");
        assert_eq!(b["subjects"][0]["name"], "system:masters");
        assert_eq!(b["subjects"][0]["kind"], "Group");
        for b in &bindings {
            let role = b["roleRef"]["name"].as_str().unwrap();
            find(&roles, role);
        }
    }

    #[test]
    fn every_object_is_marked_as_bootstrap_policy() {
        for obj in cluster_roles().iter().chain(cluster_role_bindings().iter()) {
            assert_eq!(
                obj["metadata"]["labels"]["kubernetes.io/bootstrapping"],
                "rbac-defaults"
            );
            assert_eq!(
                obj["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
                "true"
            );
        }
    }
}
