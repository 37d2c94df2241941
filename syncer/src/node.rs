//! Pure construction of the virtual Nodes a tenant sees: which host nodes
//! ([`NodeVisibility`]: those running its pods, all, or those matching a
//! label selector), each mirrored by [`virtual_node`], or a placeholder when
//! the host forbids reading nodes ([`placeholder_node`]).
//!
//! Kept from the host node: name, labels (minus the reserved `vkube.dev`
//! domain), `spec.taints` and `spec.unschedulable`, and status capacity,
//! allocatable, conditions, addresses, nodeInfo and daemonEndpoints.
//! Decision on taints: **kept**, so a toleration in a tenant's pod means on
//! the virtual node what it means on the host node where the pod runs, and
//! a tenant inspecting the node sees why a pod would not schedule there.
//! Dropped: annotations (host controllers put host details there),
//! providerID, podCIDR/podCIDRs, configSource, images, volumes, and uid,
//! resourceVersion and the rest of the server-set metadata.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::names::is_reserved_key;

/// Which host nodes a tenant sees as virtual Nodes (`--sync-nodes`). A node
/// that runs one of the tenant's pods is always shown; a cluster without
/// nodes would make tools that wait for a Ready node, count nodes or run
/// DaemonSets behave as on a broken cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodeVisibility {
    /// `all` when the host lets the syncer list nodes, else `used`
    /// (decided once at start).
    #[default]
    Auto,
    /// Only nodes that run the tenant's pods.
    Used,
    /// Every host node.
    All,
    /// Host nodes matching this label selector (kubectl's syntax, e.g.
    /// `pool=tenants,!gpu`), plus those running the tenant's pods.
    Selector(String),
}

impl NodeVisibility {
    /// The label selector of the host node watch, or `None` when nodes are
    /// not watched (`Used`, and `Auto` before it is decided).
    pub fn watch_selector(&self) -> Option<&str> {
        match self {
            Self::All => Some(""),
            Self::Selector(s) => Some(s),
            Self::Auto | Self::Used => None,
        }
    }
}

impl std::fmt::Display for NodeVisibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Used => f.write_str("used"),
            Self::All => f.write_str("all"),
            Self::Selector(s) => f.write_str(s),
        }
    }
}

impl std::str::FromStr for NodeVisibility {
    type Err = String;
    /// `auto`, `used`, `all`, or a label selector (`labels.Parse` syntax;
    /// an unparsable one is refused with the parser's message).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "used" => Ok(Self::Used),
            "all" => Ok(Self::All),
            "" => Err("empty: use auto, used, all or a label selector".into()),
            sel => vkube_core::labels::LabelSelector::parse(sel)
                .map(|_| Self::Selector(sel.to_string()))
                .map_err(|e| format!("not auto, used, all or a label selector: {e}")),
        }
    }
}

/// The virtual Node mirroring host node `host` (see the module docs).
pub fn virtual_node(host: &Node) -> Node {
    let labels: BTreeMap<String, String> = host
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !is_reserved_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let spec = host.spec.as_ref();
    let status = host.status.clone().unwrap_or_default();
    Node {
        metadata: ObjectMeta {
            name: host.metadata.name.clone(),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: spec.and_then(|s| s.taints.clone()),
            unschedulable: spec.and_then(|s| s.unschedulable),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            capacity: status.capacity,
            allocatable: status.allocatable,
            conditions: status.conditions,
            addresses: status.addresses,
            node_info: status.node_info,
            daemon_endpoints: status.daemon_endpoints,
            ..Default::default()
        }),
    }
}

/// A virtual Node named `name` for when the host forbids reading nodes: the
/// label `kubernetes.io/hostname=NAME`, one condition `Ready=True` (reason
/// `VkubePlaceholder`), no addresses, no capacity.
pub fn placeholder_node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("VkubePlaceholder".into()),
                message: Some(
                    "the host does not let the syncer read nodes; this node stands in for it"
                        .into(),
                ),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// Whether the virtual node `current` must be updated to `desired` (the
/// output of [`virtual_node`]): labels, taints, unschedulable, capacity,
/// allocatable, addresses, nodeInfo, daemonEndpoints, or a condition's
/// type/status/reason/message differ. Condition heartbeat and transition
/// times are ignored, so a host kubelet's heartbeat alone does not cause a
/// write.
pub fn node_needs_update(desired: &Node, current: &Node) -> bool {
    let spec = |n: &Node| n.spec.clone().unwrap_or_default();
    let status = |n: &Node| n.status.clone().unwrap_or_default();
    let conds = |s: &NodeStatus| -> Vec<(String, String, Option<String>, Option<String>)> {
        s.conditions
            .iter()
            .flatten()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                )
            })
            .collect()
    };
    let (ds, cs) = (spec(desired), spec(current));
    let (dst, cst) = (status(desired), status(current));
    desired.metadata.labels.clone().unwrap_or_default()
        != current.metadata.labels.clone().unwrap_or_default()
        || ds.taints.unwrap_or_default() != cs.taints.unwrap_or_default()
        || ds.unschedulable.unwrap_or(false) != cs.unschedulable.unwrap_or(false)
        || dst.capacity != cst.capacity
        || dst.allocatable != cst.allocatable
        || dst.addresses != cst.addresses
        || dst.node_info != cst.node_info
        || dst.daemon_endpoints != cst.daemon_endpoints
        || conds(&dst) != conds(&cst)
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_visibility_parses_modes_and_selectors() {
        let p = |s: &str| s.parse::<NodeVisibility>();
        assert_eq!(p("auto"), Ok(NodeVisibility::Auto));
        assert_eq!(p("used"), Ok(NodeVisibility::Used));
        assert_eq!(p("all"), Ok(NodeVisibility::All));
        assert_eq!(
            p("pool=tenants,!gpu"),
            Ok(NodeVisibility::Selector("pool=tenants,!gpu".into()))
        );
        assert!(p("pool in (a").is_err());
        assert!(p("").is_err());
        assert_eq!(NodeVisibility::All.watch_selector(), Some(""));
        assert_eq!(NodeVisibility::Used.watch_selector(), None);
        assert_eq!(NodeVisibility::Selector("a=b".into()).to_string(), "a=b");
    }

    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, Taint};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn host() -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("worker-1".into()),
                uid: Some("host-uid".into()),
                resource_version: Some("9".into()),
                labels: Some(BTreeMap::from([
                    ("kubernetes.io/hostname".into(), "worker-1".into()),
                    ("vkube.dev/managed-by".into(), "x".into()),
                ])),
                annotations: Some(BTreeMap::from([(
                    "node.alpha.kubernetes.io/ttl".into(),
                    "0".into(),
                )])),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                provider_id: Some("aws:///i-123".into()),
                pod_cidr: Some("10.244.1.0/24".into()),
                taints: Some(vec![Taint {
                    key: "gpu".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                capacity: Some(BTreeMap::from([("cpu".into(), Quantity("4".into()))])),
                allocatable: Some(BTreeMap::from([("cpu".into(), Quantity("3".into()))])),
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: "10.0.0.5".into(),
                }]),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn virtual_node_keeps_public_facts_and_drops_host_details() {
        let v = virtual_node(&host());
        assert_eq!(v.metadata.name.as_deref(), Some("worker-1"));
        assert_eq!(
            v.metadata.labels.clone().unwrap(),
            BTreeMap::from([("kubernetes.io/hostname".into(), "worker-1".into())])
        );
        assert_eq!(
            (v.metadata.uid.clone(), v.metadata.resource_version.clone()),
            (None, None)
        );
        assert_eq!(v.metadata.annotations, None);
        let spec = v.spec.clone().unwrap();
        assert_eq!((spec.provider_id, spec.pod_cidr), (None, None));
        assert_eq!(spec.taints.unwrap()[0].key, "gpu");
        let st = v.status.clone().unwrap();
        assert_eq!(st.capacity.unwrap()["cpu"], Quantity("4".into()));
        assert_eq!(st.addresses.unwrap()[0].address, "10.0.0.5");
        assert_eq!(st.conditions.unwrap()[0].status, "True");
        assert!(!node_needs_update(&v, &v.clone()));
    }

    #[test]
    fn needs_update_ignores_heartbeats_only() {
        let v = virtual_node(&host());
        let mut beat = host();
        beat.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_heartbeat_time =
            Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(!node_needs_update(&virtual_node(&beat), &v));
        let mut not_ready = host();
        not_ready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".into();
        assert!(node_needs_update(&virtual_node(&not_ready), &v));
        let mut relabeled = host();
        relabeled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("zone".into(), "a".into());
        assert!(node_needs_update(&virtual_node(&relabeled), &v));
    }

    #[test]
    fn placeholder_is_ready_without_addresses() {
        let p = placeholder_node("n1");
        let st = p.status.unwrap();
        assert_eq!(st.addresses, None);
        let c = &st.conditions.unwrap()[0];
        assert_eq!((c.type_.as_str(), c.status.as_str()), ("Ready", "True"));
        assert_eq!(p.metadata.name.as_deref(), Some("n1"));
    }
}
