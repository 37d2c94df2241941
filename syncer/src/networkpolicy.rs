//! Pure translation of a virtual NetworkPolicy into its host
//! NetworkPolicy, enforced by the host's CNI.
//!
//! All of a tenant's pods live in its one host namespace, labelled
//! `vkube.dev/managed-by=VC` and `vkube.dev/namespace=NS`. So every pod
//! selection becomes a host `podSelector` in that namespace, and a host
//! policy never carries a `namespaceSelector`: nothing outside the host
//! namespace is ever selected by label.
//! * `spec.podSelector`: the tenant's terms plus `managed-by=VC` and
//!   `namespace=NS` (the policy's virtual namespace).
//! * A peer with only `podSelector`: the same, in the policy's namespace.
//! * A peer with `namespaceSelector` (and maybe `podSelector`): the
//!   namespaces are resolved here, against the virtual namespaces' labels
//!   (the caller passes them), into `vkube.dev/namespace In [...]` with the
//!   tenant's pod terms and `managed-by=VC`; an empty `namespaceSelector`
//!   means all of this tenant's namespaces (never the whole host); one
//!   that matches no namespace matches no pod
//!   ([`match_nothing`]).
//! * `ipBlock` peers are kept: the tenant names those addresses itself.
//! * A rule without peers (all sources, or all destinations) becomes every
//!   pod of this tenant plus `ipBlock` `0.0.0.0/0` and `::/0` (traffic from
//!   or to addresses); no host pod outside the tenant is selected by label.
//!   Whether a CNI lets an `ipBlock` match in-cluster pod addresses is the
//!   CNI's (Calico does, Cilium does not); a host that must keep other
//!   namespaces out adds its own policies, which stay in force (policies
//!   are additive only for the pods they select).
//!
//! Refused ([`TranslateError::Forbidden`]): selector terms on reserved
//! `vkube.dev` keys (host pods carry the syncer's markers there; tenant
//! labels under that domain never reach the host) and selectors that do
//! not parse.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

pub use crate::error::TranslateError;
use crate::names::{
    LABEL_MANAGED_BY, LABEL_NAMESPACE, Tenant, VirtualIdentity, host_meta, is_reserved_key,
};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "NetworkPolicy";

/// A virtual namespace and its labels, as [`translate`] resolves
/// `namespaceSelector`s against them.
pub type NamespaceLabels = (String, BTreeMap<String, String>);

/// A selector no pod matches: this tenant's marker with an empty
/// namespace, which no synced pod carries (namespace names are never
/// empty).
pub fn match_nothing(tenant: &Tenant) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([
            (LABEL_MANAGED_BY.to_string(), tenant.name().to_string()),
            (LABEL_NAMESPACE.to_string(), String::new()),
        ])),
        match_expressions: None,
    }
}

/// Refuses selector `sel` (named `what` in the message) when it has a
/// term on a reserved `vkube.dev` key.
pub fn check_keys(sel: &LabelSelector, what: &str) -> Result<(), TranslateError> {
    let keys = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .chain(sel.match_expressions.iter().flatten().map(|e| &e.key));
    for k in keys {
        if is_reserved_key(k) {
            return Err(TranslateError::Forbidden(format!(
                "{what} selects on {k:?}, a key reserved for the host's markers"
            )));
        }
    }
    Ok(())
}

/// The tenant's pod selector `sel` (absent = every pod) restricted to this
/// tenant's pods in the virtual namespaces `namespaces` (`None` = all of
/// them): the host selector of a synced pod selection.
pub fn pod_selector(
    tenant: &Tenant,
    sel: Option<&LabelSelector>,
    namespaces: Option<&BTreeSet<String>>,
) -> LabelSelector {
    let mut out = sel.cloned().unwrap_or_default();
    let labels = out.match_labels.get_or_insert_with(BTreeMap::new);
    labels.insert(LABEL_MANAGED_BY.to_string(), tenant.name().to_string());
    match namespaces {
        Some(ns) if ns.len() == 1 => {
            labels.insert(
                LABEL_NAMESPACE.to_string(),
                ns.iter().next().cloned().unwrap_or_default(),
            );
        }
        Some(ns) => {
            out.match_expressions
                .get_or_insert_with(Vec::new)
                .push(LabelSelectorRequirement {
                    key: LABEL_NAMESPACE.to_string(),
                    operator: "In".into(),
                    values: Some(ns.iter().cloned().collect()),
                })
        }
        None => {}
    }
    out
}

fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, TranslateError> {
    let json = serde_json::to_value(sel).map_err(|e| TranslateError::Forbidden(e.to_string()))?;
    let parsed = vkube_core::labels::LabelSelector::from_label_selector_json(&json)
        .map_err(|e| TranslateError::Forbidden(format!("invalid selector: {e}")))?;
    Ok(parsed.matches(labels))
}

/// The host peers for the tenant's peers `peers` of a policy in virtual
/// namespace `ns`.
fn peers(
    tenant: &Tenant,
    ns: &str,
    peers: Option<&Vec<NetworkPolicyPeer>>,
    namespaces: &[NamespaceLabels],
) -> Result<Vec<NetworkPolicyPeer>, TranslateError> {
    let Some(peers) = peers.filter(|p| !p.is_empty()) else {
        // All sources (or destinations): every pod of this tenant, and
        // addresses by CIDR.
        return Ok(vec![
            NetworkPolicyPeer {
                pod_selector: Some(pod_selector(tenant, None, None)),
                ..Default::default()
            },
            NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "0.0.0.0/0".into(),
                    except: None,
                }),
                ..Default::default()
            },
            NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "::/0".into(),
                    except: None,
                }),
                ..Default::default()
            },
        ]);
    };
    let mut out = Vec::with_capacity(peers.len());
    for p in peers {
        if let Some(block) = &p.ip_block {
            out.push(NetworkPolicyPeer {
                ip_block: Some(block.clone()),
                ..Default::default()
            });
            continue;
        }
        if let Some(sel) = &p.pod_selector {
            check_keys(sel, "a peer's podSelector")?;
        }
        let selector = match &p.namespace_selector {
            None => pod_selector(
                tenant,
                p.pod_selector.as_ref(),
                Some(&BTreeSet::from([ns.to_string()])),
            ),
            Some(nsel) => {
                check_keys(nsel, "a peer's namespaceSelector")?;
                let empty = nsel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                    && nsel.match_expressions.as_ref().is_none_or(Vec::is_empty);
                if empty {
                    pod_selector(tenant, p.pod_selector.as_ref(), None)
                } else {
                    let mut matched = BTreeSet::new();
                    for (name, labels) in namespaces {
                        if selects(nsel, labels)? {
                            matched.insert(name.clone());
                        }
                    }
                    if matched.is_empty() {
                        match_nothing(tenant)
                    } else {
                        pod_selector(tenant, p.pod_selector.as_ref(), Some(&matched))
                    }
                }
            }
        };
        out.push(NetworkPolicyPeer {
            pod_selector: Some(selector),
            ..Default::default()
        });
    }
    Ok(out)
}

/// The host NetworkPolicy for virtual policy `np` of `tenant`, resolving
/// namespace selectors against `namespaces` (every virtual namespace with
/// its labels).
///
/// Errors: [`TranslateError::Identity`] without name, namespace or uid;
/// [`TranslateError::Forbidden`] as listed in the module docs.
pub fn translate(
    tenant: &Tenant,
    np: &NetworkPolicy,
    namespaces: &[NamespaceLabels],
) -> Result<NetworkPolicy, TranslateError> {
    let id = VirtualIdentity::from_meta(KIND, &np.metadata)?;
    let metadata = host_meta(tenant, KIND, &np.metadata)?;
    let spec = np.spec.clone().unwrap_or_default();
    if let Some(sel) = &spec.pod_selector {
        check_keys(sel, "spec.podSelector")?;
    }
    let own = BTreeSet::from([id.namespace.clone()]);
    let mut ingress = spec.ingress.clone();
    for rule in ingress.iter_mut().flatten() {
        rule.from = Some(peers(
            tenant,
            &id.namespace,
            rule.from.as_ref(),
            namespaces,
        )?);
    }
    let mut egress = spec.egress.clone();
    for rule in egress.iter_mut().flatten() {
        rule.to = Some(peers(tenant, &id.namespace, rule.to.as_ref(), namespaces)?);
    }
    Ok(NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pod_selector(tenant, spec.pod_selector.as_ref(), Some(&own))),
            policy_types: spec.policy_types,
            ingress,
            egress,
        }),
    })
}

/// Whether host policy `host` differs from `desired` in what the syncer
/// owns: spec, labels, annotations.
pub fn needs_update(desired: &NetworkPolicy, host: &NetworkPolicy) -> bool {
    fn or_empty(m: &Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
        m.clone().unwrap_or_default()
    }
    desired.spec != host.spec
        || or_empty(&desired.metadata.labels) != or_empty(&host.metadata.labels)
        || or_empty(&desired.metadata.annotations) != or_empty(&host.metadata.annotations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn tenant() -> Tenant {
        Tenant::new("vc", "host-ns").unwrap()
    }

    fn namespaces() -> Vec<NamespaceLabels> {
        let ns = |name: &str, labels: &[(&str, &str)]| {
            let mut l: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            l.insert("kubernetes.io/metadata.name".into(), name.into());
            (name.to_string(), l)
        };
        vec![
            ns("team", &[("env", "prod")]),
            ns("web", &[("env", "prod"), ("tier", "front")]),
            ns("dev", &[("env", "dev")]),
        ]
    }

    fn policy(spec: Value) -> NetworkPolicy {
        serde_json::from_value(json!({
            "metadata": {"name": "np", "namespace": "team", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn spec_of(spec: Value) -> Value {
        let h = translate(&tenant(), &policy(spec), &namespaces()).unwrap();
        serde_json::to_value(h.spec.unwrap()).unwrap()
    }

    #[test]
    fn every_selector_shape_becomes_a_selector_of_this_tenants_pods() {
        let got = spec_of(json!({
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [
                    {"podSelector": {"matchLabels": {"app": "web"}}},
                    {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
                    {"namespaceSelector": {"matchLabels": {"tier": "front"}},
                     "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
                    {"namespaceSelector": {}},
                    {"namespaceSelector": {"matchLabels": {"env": "nowhere"}}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                ],
                "ports": [{"port": 5432, "protocol": "TCP"}],
            }],
            "egress": [{"to": [{"podSelector": {}}]}],
        }));
        let mine = |extra: Value| {
            let mut m = json!({LABEL_MANAGED_BY: "vc"});
            m.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            m
        };
        assert_eq!(
            got["podSelector"],
            json!({"matchLabels": mine(json!({"app": "db", LABEL_NAMESPACE: "team"}))})
        );
        let from = &got["ingress"][0]["from"];
        assert_eq!(
            from[0],
            json!({"podSelector": {"matchLabels": mine(json!({"app": "web", LABEL_NAMESPACE: "team"}))}})
        );
        assert_eq!(
            from[1],
            json!({"podSelector": {"matchLabels": mine(json!({})),
                "matchExpressions": [{"key": LABEL_NAMESPACE, "operator": "In", "values": ["team", "web"]}]}})
        );
        assert_eq!(
            from[2],
            json!({"podSelector": {"matchLabels": mine(json!({LABEL_NAMESPACE: "web"})),
                "matchExpressions": [{"key": "app", "operator": "Exists"}]}})
        );
        assert_eq!(
            from[3],
            json!({"podSelector": {"matchLabels": mine(json!({}))}})
        );
        assert_eq!(
            from[4],
            json!({"podSelector": {"matchLabels": mine(json!({LABEL_NAMESPACE: ""}))}}),
            "no namespace matched: no pod"
        );
        assert_eq!(
            from[5],
            json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}})
        );
        assert_eq!(
            got["ingress"][0]["ports"],
            json!([{"port": 5432, "protocol": "TCP"}])
        );
        assert_eq!(
            got["egress"][0]["to"],
            json!([{"podSelector": {"matchLabels": mine(json!({LABEL_NAMESPACE: "team"}))}}])
        );
        assert!(!got.to_string().contains("namespaceSelector"));
    }

    #[test]
    fn rules_without_peers_admit_this_tenants_pods_and_addresses_only() {
        let got = spec_of(json!({"podSelector": {}, "ingress": [{}], "egress": [{"to": []}]}));
        for rule in [&got["ingress"][0]["from"], &got["egress"][0]["to"]] {
            assert_eq!(
                *rule,
                json!([
                    {"podSelector": {"matchLabels": {LABEL_MANAGED_BY: "vc"}}},
                    {"ipBlock": {"cidr": "0.0.0.0/0"}},
                    {"ipBlock": {"cidr": "::/0"}},
                ])
            );
        }
        let deny_all = spec_of(json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
        assert!(deny_all["ingress"].is_null(), "no rules stays no rules");
    }

    #[test]
    fn selectors_on_reserved_keys_are_refused() {
        for spec in [
            json!({"podSelector": {"matchLabels": {"vkube.dev/managed-by": "other"}}}),
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {
                "matchExpressions": [{"key": "vkube.dev/namespace", "operator": "Exists"}]}}]}]}),
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
                "matchLabels": {"sub.vkube.dev/x": "y"}}}]}]}),
        ] {
            assert!(
                matches!(
                    translate(&tenant(), &policy(spec.clone()), &namespaces()),
                    Err(TranslateError::Forbidden(_))
                ),
                "{spec}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("app".to_string()),
                Just("tier".to_string()),
                Just("env".to_string()),
                Just(LABEL_MANAGED_BY.to_string()),
                Just(LABEL_NAMESPACE.to_string()),
                Just("kubernetes.io/metadata.name".to_string()),
            ]
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                Just("vc".to_string()),
                Just("other".to_string()),
                Just("team".to_string()),
                Just("web".to_string()),
                Just("prod".to_string()),
            ]
        }

        fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
            proptest::collection::btree_map(key(), value(), 0..5)
        }

        fn selector() -> impl Strategy<Value = LabelSelector> {
            let expr = (
                key(),
                prop_oneof![
                    Just("In"),
                    Just("NotIn"),
                    Just("Exists"),
                    Just("DoesNotExist")
                ],
                proptest::collection::vec(value(), 1..3),
            )
                .prop_map(|(key, op, values)| LabelSelectorRequirement {
                    values: matches!(op, "In" | "NotIn").then_some(values),
                    key,
                    operator: op.to_string(),
                });
            (labels(), proptest::collection::vec(expr, 0..3)).prop_map(|(l, e)| LabelSelector {
                match_labels: (!l.is_empty()).then_some(l),
                match_expressions: (!e.is_empty()).then_some(e),
            })
        }

        fn peer() -> impl Strategy<Value = NetworkPolicyPeer> {
            (
                proptest::option::of(selector()),
                proptest::option::of(selector()),
                any::<bool>(),
            )
                .prop_map(|(pod, ns, block)| NetworkPolicyPeer {
                    pod_selector: pod,
                    namespace_selector: ns,
                    ip_block: block.then(|| IPBlock {
                        cidr: "192.0.2.0/24".into(),
                        except: None,
                    }),
                })
        }

        fn policy() -> impl Strategy<Value = NetworkPolicy> {
            (
                proptest::option::of(selector()),
                proptest::option::of(proptest::collection::vec(peer(), 0..4)),
                proptest::option::of(proptest::collection::vec(peer(), 0..4)),
            )
                .prop_map(|(pod, from, to)| {
                    let mut np = super::policy(json!({}));
                    np.spec = Some(NetworkPolicySpec {
                        pod_selector: pod,
                        ingress: Some(vec![
                            k8s_openapi::api::networking::v1::NetworkPolicyIngressRule {
                                from,
                                ports: None,
                            },
                        ]),
                        egress: Some(vec![
                            k8s_openapi::api::networking::v1::NetworkPolicyEgressRule {
                                to,
                                ports: None,
                            },
                        ]),
                        policy_types: None,
                    });
                    np
                })
        }

        fn host_selectors(np: &NetworkPolicy) -> Vec<LabelSelector> {
            let spec = np.spec.as_ref().unwrap();
            let peers = spec
                .ingress
                .iter()
                .flatten()
                .flat_map(|r| r.from.iter().flatten())
                .chain(
                    spec.egress
                        .iter()
                        .flatten()
                        .flat_map(|r| r.to.iter().flatten()),
                );
            let mut out: Vec<LabelSelector> = spec.pod_selector.iter().cloned().collect();
            for p in peers {
                assert!(
                    p.namespace_selector.is_none(),
                    "a host namespaceSelector: {p:?}"
                );
                out.extend(p.pod_selector.iter().cloned());
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            /// No translated selector matches a host pod that is not this
            /// tenant's, whatever the tenant wrote; and the policy's own pod
            /// selector only matches this tenant's pods of its namespace.
            #[test]
            fn no_translated_selector_reaches_outside_the_tenant(
                np in policy(),
                outsider in labels(),
                insider in labels(),
            ) {
                let Ok(host) = translate(&tenant(), &np, &namespaces()) else {
                    return Ok(());
                };
                let foreign = outsider.get(LABEL_MANAGED_BY).is_none_or(|m| m != "vc");
                for sel in host_selectors(&host) {
                    if foreign {
                        prop_assert!(!selects(&sel, &outsider).unwrap(), "{sel:?} matches {outsider:?}");
                    }
                }
                let own = host.spec.as_ref().unwrap().pod_selector.clone().unwrap();
                if insider.get(LABEL_NAMESPACE).is_none_or(|n| n != "team") {
                    prop_assert!(!selects(&own, &insider).unwrap(), "{own:?} matches {insider:?}");
                }
            }
        }
    }
}
