//! Pure translation of a virtual Service into its host Service, the
//! reflection of what the host allocated back into the virtual Service, and
//! the service environment variables kubelet would inject.
//!
//! Virtual → host ([`translate`]):
//! * metadata from [`host_meta`];
//! * `spec.selector` rewritten by [`host_selector`] so it can only match
//!   this tenant's pods of the same virtual namespace;
//! * clusterIP/clusterIPs cleared (the host allocates them) except headless
//!   `None`; `ports[].nodePort` and `healthCheckNodePort` cleared (the host
//!   allocates them); `loadBalancerIP` (deprecated, and a claim on a host
//!   address) dropped;
//! * **`externalIPs` refused** ([`TranslateError::Forbidden`]): with them a
//!   tenant could intercept host traffic to any IP (CVE-2020-8554).
//!
//! Host → virtual ([`reflect`]): the ClusterIP the tenant sees is the host's.
//! Decision: the host Service is created first and the virtual one is
//! **recreated** with the host's clusterIP when they differ (clusterIP is
//! immutable), because the virtual API server cannot know which IP the host
//! will allocate and asking the host for a specific IP could fail or clash
//! with another tenant's.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EnvVar, Service, ServicePort, ServiceSpec};

pub use crate::error::TranslateError;
use crate::names::{LABEL_MANAGED_BY, LABEL_NAMESPACE, Tenant, host_meta, translate_labels};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "Service";

/// `spec.clusterIP` of a headless Service.
pub const HEADLESS: &str = "None";

/// The host Service for virtual Service `svc` of `tenant` (see the module
/// docs for what is kept, cleared and refused).
///
/// Errors: [`TranslateError::Identity`] without name/namespace/uid;
/// [`TranslateError::Forbidden`] when `spec.externalIPs` is non-empty.
pub fn translate(tenant: &Tenant, svc: &Service) -> Result<Service, TranslateError> {
    let metadata = host_meta(tenant, KIND, &svc.metadata)?;
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    if let Some(ips) = spec.external_ips.as_ref().filter(|ips| !ips.is_empty()) {
        return Err(TranslateError::Forbidden(format!(
            "spec.externalIPs ({}) is not allowed: external IPs let a Service \
             intercept traffic to those addresses cluster-wide on the host \
             (CVE-2020-8554); use type LoadBalancer or NodePort instead",
            ips.join(", ")
        )));
    }
    let headless = spec.cluster_ip.as_deref() == Some(HEADLESS);
    let selector = spec
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| host_selector(tenant, &namespace, s));
    let ports = spec.ports.map(|ports| {
        ports
            .into_iter()
            .map(|p| ServicePort {
                node_port: None,
                ..p
            })
            .collect()
    });
    let host_spec = ServiceSpec {
        selector,
        ports,
        cluster_ip: headless.then(|| HEADLESS.to_string()),
        cluster_ips: headless.then(|| vec![HEADLESS.to_string()]),
        external_ips: None,
        health_check_node_port: None,
        load_balancer_ip: None,
        type_: spec.type_,
        session_affinity: spec.session_affinity,
        session_affinity_config: spec.session_affinity_config,
        external_traffic_policy: spec.external_traffic_policy,
        internal_traffic_policy: spec.internal_traffic_policy,
        publish_not_ready_addresses: spec.publish_not_ready_addresses,
        ip_family_policy: spec.ip_family_policy,
        ip_families: spec.ip_families,
        load_balancer_class: spec.load_balancer_class,
        load_balancer_source_ranges: spec.load_balancer_source_ranges,
        external_name: spec.external_name,
        allocate_load_balancer_node_ports: spec.allocate_load_balancer_node_ports,
        traffic_distribution: spec.traffic_distribution,
    };
    Ok(Service {
        metadata,
        spec: Some(host_spec),
        status: None,
    })
}

/// The host selector for a tenant Service selector in virtual namespace
/// `namespace`: the tenant's pairs through [`translate_labels`] (reserved
/// `vkube.dev` keys dropped, as on pods) plus `vkube.dev/managed-by=VC` and
/// `vkube.dev/namespace=NS`, so it matches only pods this tenant synced from
/// that virtual namespace. The markers win over any tenant pair.
///
/// An empty `selector` gives an empty map; [`translate`] keeps selector-less
/// Services selector-less (their Endpoints are synced instead) and never
/// calls this for them.
pub fn host_selector(
    tenant: &Tenant,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if selector.is_empty() {
        return BTreeMap::new();
    }
    let mut out = translate_labels(tenant, selector);
    out.insert(LABEL_MANAGED_BY.to_string(), tenant.name().to_string());
    out.insert(LABEL_NAMESPACE.to_string(), namespace.to_string());
    out
}

/// Whether the existing `host` Service differs from `desired` (the output of
/// [`translate`]) in what the syncer owns: labels, annotations, type,
/// selector, and ports compared without the host-allocated `nodePort`.
/// Fields the host defaults or allocates (clusterIP, ipFamilies,
/// sessionAffinity default, ...) are ignored.
pub fn needs_update(desired: &Service, host: &Service) -> bool {
    let d = desired.spec.clone().unwrap_or_default();
    let h = host.spec.clone().unwrap_or_default();
    let ports = |s: &ServiceSpec| -> Vec<_> {
        s.ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.target_port.clone(),
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                )
            })
            .collect()
    };
    let ty = |s: &ServiceSpec| s.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    desired.metadata.labels.clone().unwrap_or_default()
        != host.metadata.labels.clone().unwrap_or_default()
        || desired.metadata.annotations.clone().unwrap_or_default()
            != host.metadata.annotations.clone().unwrap_or_default()
        || ty(&d) != ty(&h)
        || d.selector.clone().unwrap_or_default() != h.selector.clone().unwrap_or_default()
        || ports(&d) != ports(&h)
}

/// What [`reflect`] computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reflection {
    /// The virtual Service's clusterIP/clusterIPs differ from the host's.
    /// The virtual ones are the identity the tenant holds (the virtual API
    /// server stored the host's allocation at create time), so the engine
    /// replaces such a host copy rather than the virtual Service.
    pub cluster_ip_differs: bool,
    /// The virtual Service with the host's nodePorts, healthCheckNodePort
    /// and load-balancer status.
    pub virtual_service: Service,
}

/// The host's value for each virtual port: matched by (name, protocol) when
/// the virtual port is named, else by index. `None` when the host has no
/// such port.
fn matching_host_port<'a>(
    virtual_ports: &[ServicePort],
    host_ports: &'a [ServicePort],
    i: usize,
) -> Option<&'a ServicePort> {
    let proto = |p: &ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
    let v = &virtual_ports[i];
    match v.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => host_ports
            .iter()
            .find(|h| h.name.as_deref() == Some(name) && proto(h) == proto(v)),
        None => host_ports.get(i),
    }
}

/// The virtual Service the tenant should see given the `host` Service:
/// `virtual_svc` with `ports[].nodePort`, `healthCheckNodePort` and
/// `status.loadBalancer` taken from the host (ports matched by name and
/// protocol, or by index when unnamed). clusterIP/clusterIPs are only
/// compared ([`Reflection::cluster_ip_differs`]): they are immutable and
/// the virtual ones win. Metadata is kept.
pub fn reflect(virtual_svc: &Service, host: &Service) -> Reflection {
    let mut out = virtual_svc.clone();
    let hspec = host.spec.clone().unwrap_or_default();
    let spec = out.spec.get_or_insert_default();
    let cluster_ip_differs =
        spec.cluster_ip != hspec.cluster_ip || spec.cluster_ips != hspec.cluster_ips;
    spec.health_check_node_port = hspec.health_check_node_port;
    let host_ports = hspec.ports.clone().unwrap_or_default();
    if let Some(ports) = spec.ports.as_mut() {
        let snapshot = ports.clone();
        for (i, p) in ports.iter_mut().enumerate() {
            p.node_port = matching_host_port(&snapshot, &host_ports, i).and_then(|h| h.node_port);
        }
    }
    let lb = host.status.as_ref().and_then(|s| s.load_balancer.clone());
    out.status.get_or_insert_default().load_balancer = lb;
    Reflection {
        cluster_ip_differs,
        virtual_service: out,
    }
}

/// `desired` (a [`translate`] output) asking the host for the addresses
/// virtual Service `v` already holds: its clusterIP/clusterIPs (unless
/// headless or ExternalName), and for NodePort/LoadBalancer Services each
/// port's non-zero nodePort (by index: [`translate`] keeps the port order)
/// and a non-zero `healthCheckNodePort` (externalTrafficPolicy `Local`).
/// A host copy created from it keeps the tenant's Service identity; the
/// host answers `422` when one of them is taken or out of its range.
pub fn with_virtual_allocations(mut desired: Service, v: &Service) -> Service {
    let vs = v.spec.clone().unwrap_or_default();
    let d = desired.spec.get_or_insert_default();
    let ty = d.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let real_ip = vs
        .cluster_ip
        .as_deref()
        .is_some_and(|ip| !ip.is_empty() && ip != HEADLESS);
    if ty != "ExternalName" && real_ip {
        d.cluster_ip = vs.cluster_ip.clone();
        d.cluster_ips = vs.cluster_ips.clone();
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        for (p, vp) in d.ports.iter_mut().flatten().zip(vs.ports.iter().flatten()) {
            if vp.node_port.is_some_and(|n| n != 0) {
                p.node_port = vp.node_port;
            }
        }
        let local = d.external_traffic_policy.as_deref() == Some("Local");
        if ty == "LoadBalancer" && local && vs.health_check_node_port.is_some_and(|n| n != 0) {
            d.health_check_node_port = vs.health_check_node_port;
        }
    }
    desired
}

/// Whether the host's nodePorts, healthCheckNodePort or
/// `status.loadBalancer` differ from `virtual_svc`'s: changes that can be
/// written to the virtual Service in place (spec update and status
/// subresource) without recreating it.
pub fn status_differs(virtual_svc: &Service, host: &Service) -> bool {
    let r = reflect(virtual_svc, host).virtual_service;
    let spec = |s: &Service| s.spec.clone().unwrap_or_default();
    let (want, have) = (spec(&r), spec(virtual_svc));
    let node_ports = |s: &ServiceSpec| -> Vec<Option<i32>> {
        s.ports.iter().flatten().map(|p| p.node_port).collect()
    };
    let lb = |s: &Service| {
        s.status
            .as_ref()
            .and_then(|s| s.load_balancer.clone())
            .unwrap_or_default()
    };
    node_ports(&want) != node_ports(&have)
        || want.health_check_node_port != have.health_check_node_port
        || lb(&r) != lb(virtual_svc)
}

/// `makeEnvVariableName`: upper case, `-` → `_`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

fn env(name: String, value: String) -> EnvVar {
    EnvVar {
        name,
        value: Some(value),
        value_from: None,
    }
}

/// Virtual Service `virtual_svc` with the addresses of its host copy `host`
/// (`spec.clusterIP` and `spec.clusterIPs`), for computing the service links
/// of host pods before the virtual Service has been recreated with them
/// ([`reflect`]): the virtual addresses do not exist on the host.
pub fn with_host_addresses(virtual_svc: &Service, host: &Service) -> Service {
    let mut out = virtual_svc.clone();
    let host_spec = host.spec.as_ref();
    let spec = out.spec.get_or_insert_with(Default::default);
    spec.cluster_ip = host_spec.and_then(|s| s.cluster_ip.clone());
    spec.cluster_ips = host_spec.and_then(|s| s.cluster_ips.clone());
    out
}

/// The environment variables kubelet injects for `services` (those of the
/// pod's namespace) when `enableServiceLinks` is true, exactly as kubelet's
/// `envvars.FromServices` (kubernetes `pkg/kubelet/envvars/envvars.go`):
/// for each Service with a clusterIP (not empty, not `None`; ExternalName
/// Services have none) and at least one port, with `N` = the name upper
/// cased with `-` → `_`:
/// `N_SERVICE_HOST`, `N_SERVICE_PORT` (first port), `N_SERVICE_PORT_PNAME`
/// per named port, `N_PORT` (`proto://ip:port` of the first port), and per
/// port `N_PORT_<port>_<PROTO>` plus `_PROTO`, `_PORT`, `_ADDR` (Docker
/// links). IPv6 addresses are bracketed in URLs (`net.JoinHostPort`).
/// Services are taken in name order so the output is deterministic.
pub fn service_env(services: &[Service]) -> Vec<EnvVar> {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = Vec::new();
    for svc in sorted {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let ip = match spec.cluster_ip.as_deref() {
            Some(ip) if !ip.is_empty() && ip != HEADLESS => ip,
            _ => continue,
        };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else {
            continue;
        };
        let prefix = env_name(svc.metadata.name.as_deref().unwrap_or_default());
        out.push(env(format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        let port_var = format!("{prefix}_SERVICE_PORT");
        out.push(env(port_var.clone(), first.port.to_string()));
        for p in ports {
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push(env(
                    format!("{port_var}_{}", env_name(n)),
                    p.port.to_string(),
                ));
            }
        }
        let host = match ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{ip}]"),
            _ => ip.to_string(),
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let url = format!("{}://{host}:{}", proto.to_lowercase(), p.port);
            if i == 0 {
                out.push(env(format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push(env(pp.clone(), url));
            out.push(env(format!("{pp}_PROTO"), proto.to_lowercase()));
            out.push(env(format!("{pp}_PORT"), p.port.to_string()));
            out.push(env(format!("{pp}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// The variables kubelet sets for the `kubernetes` Service (one TCP port
/// named `https`) pointing at `host:port`: `KUBERNETES_SERVICE_HOST`,
/// `KUBERNETES_SERVICE_PORT`, `KUBERNETES_SERVICE_PORT_HTTPS`,
/// `KUBERNETES_PORT`, `KUBERNETES_PORT_<port>_TCP` and its `_PROTO`,
/// `_PORT`, `_ADDR`. In vkube `host:port` is the virtual API server as seen
/// from host pods, so in-pod clients talk to the virtual cluster.
pub fn kubernetes_service_env(host: &str, port: u16) -> Vec<EnvVar> {
    let svc = Service {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("kubernetes".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(host.to_string()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: i32::from(port),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    service_env(&[svc])
}

#[cfg(test)]
mod tests {
    #[test]
    fn service_links_use_the_host_addresses() {
        let v: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "app"},
            "spec": {"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                     "ports": [{"port": 5432}]}
        }))
        .unwrap();
        let h: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-x-app-x-vc", "namespace": "host"},
            "spec": {"clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"],
                     "ports": [{"port": 5432}]}
        }))
        .unwrap();
        let env = service_env(&[with_host_addresses(&v, &h)]);
        let host = env.iter().find(|e| e.name == "DB_SERVICE_HOST").unwrap();
        assert_eq!(host.value.as_deref(), Some("10.43.1.2"));
        assert!(
            env.iter()
                .all(|e| !e.value.as_deref().unwrap_or("").contains("10.96.0.9"))
        );
    }

    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn tenant() -> Tenant {
        Tenant::new("vc", "host-ns").unwrap()
    }

    fn port(name: &str, port: i32, node_port: Option<i32>) -> ServicePort {
        ServicePort {
            name: (!name.is_empty()).then(|| name.to_string()),
            port,
            node_port,
            target_port: Some(IntOrString::Int(8080)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    fn svc(name: &str, spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team".into()),
                uid: Some("u-1".into()),
                resource_version: Some("5".into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn translate_rewrites_selector_and_clears_allocations() {
        let v = svc(
            "web",
            ServiceSpec {
                type_: Some("LoadBalancer".into()),
                selector: Some(labels(&[("app", "web"), ("vkube.dev/namespace", "victim")])),
                cluster_ip: Some("10.0.0.7".into()),
                cluster_ips: Some(vec!["10.0.0.7".into()]),
                ports: Some(vec![port("http", 80, Some(30080))]),
                health_check_node_port: Some(31000),
                load_balancer_ip: Some("1.2.3.4".into()),
                external_traffic_policy: Some("Local".into()),
                session_affinity: Some("ClientIP".into()),
                ..Default::default()
            },
        );
        let h = translate(&tenant(), &v).unwrap();
        assert_eq!(h.metadata.name.as_deref(), Some("web-x-team-x-vc"));
        let s = h.spec.unwrap();
        assert_eq!(
            s.selector.unwrap(),
            labels(&[
                ("app", "web"),
                (LABEL_MANAGED_BY, "vc"),
                (LABEL_NAMESPACE, "team")
            ])
        );
        assert_eq!((s.cluster_ip, s.cluster_ips), (None, None));
        assert_eq!(s.ports.unwrap(), vec![port("http", 80, None)]);
        assert_eq!((s.health_check_node_port, s.load_balancer_ip), (None, None));
        assert_eq!(s.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(s.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(s.session_affinity.as_deref(), Some("ClientIP"));
        assert_eq!(h.metadata.uid, None);
    }

    #[test]
    fn headless_and_selectorless_are_kept_as_such() {
        let v = svc(
            "db",
            ServiceSpec {
                cluster_ip: Some(HEADLESS.into()),
                ports: Some(vec![port("", 5432, None)]),
                ..Default::default()
            },
        );
        let s = translate(&tenant(), &v).unwrap().spec.unwrap();
        assert_eq!(s.cluster_ip.as_deref(), Some(HEADLESS));
        assert_eq!(s.selector, None);
        let mut empty = v.clone();
        empty.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert_eq!(
            translate(&tenant(), &empty).unwrap().spec.unwrap().selector,
            None
        );
        assert!(host_selector(&tenant(), "team", &BTreeMap::new()).is_empty());
    }

    #[test]
    fn external_ips_are_refused() {
        let v = svc(
            "evil",
            ServiceSpec {
                external_ips: Some(vec!["8.8.8.8".into()]),
                ..Default::default()
            },
        );
        let err = translate(&tenant(), &v).unwrap_err();
        assert!(
            matches!(&err, TranslateError::Forbidden(m) if m.contains("externalIPs") && m.contains("8.8.8.8") && m.contains("CVE-2020-8554")),
            "{err}"
        );
    }

    #[test]
    fn host_selector_cannot_reach_other_tenants_or_namespaces() {
        let forged = labels(&[
            (LABEL_MANAGED_BY, "other"),
            (LABEL_NAMESPACE, "other-ns"),
            ("sub.vkube.dev/x", "y"),
            ("app", "a"),
        ]);
        let s = host_selector(&tenant(), "team", &forged);
        assert_eq!(
            s,
            labels(&[
                ("app", "a"),
                (LABEL_MANAGED_BY, "vc"),
                (LABEL_NAMESPACE, "team")
            ])
        );
    }

    #[test]
    fn host_selector_property_markers_always_win() {
        // Every generated selector, whatever reserved keys it forges, maps to
        // one that requires this tenant's markers for this namespace.
        let t = tenant();
        let keys = [
            LABEL_MANAGED_BY,
            LABEL_NAMESPACE,
            "vkube.dev/object-uid",
            "a.vkube.dev/k",
            "VKUBE.DEV/k",
            "app",
            "example.com/tier",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            let mut sel = BTreeMap::new();
            for k in keys {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(2) {
                    sel.insert(k.to_string(), format!("v{}", x % 5));
                }
            }
            let ns = ["team", "other"][(x % 2) as usize];
            let out = host_selector(&t, ns, &sel);
            if sel.is_empty() {
                assert!(out.is_empty());
                continue;
            }
            assert_eq!(out[LABEL_MANAGED_BY], "vc", "{sel:?}");
            assert_eq!(out[LABEL_NAMESPACE], ns, "{sel:?}");
            assert!(
                out.keys().all(|k| k == LABEL_MANAGED_BY
                    || k == LABEL_NAMESPACE
                    || !crate::names::is_reserved_key(k)),
                "{out:?}"
            );
        }
    }

    #[test]
    fn forged_metadata_still_yields_an_owned_host_object() {
        use crate::names::{Ownership, VirtualIdentity, is_managed};
        let mut v = svc("web", ServiceSpec::default());
        v.metadata.labels = Some(labels(&[(LABEL_MANAGED_BY, "victim")]));
        v.metadata.annotations = Some(labels(&[
            ("vkube.dev/object-name", "db"),
            ("vkube.dev/object-namespace", "prod"),
            ("vkube.dev/object-uid", "victim-uid"),
        ]));
        let h = translate(&tenant(), &v).unwrap();
        let id = VirtualIdentity::from_meta(KIND, &v.metadata).unwrap();
        assert_eq!(
            is_managed(&tenant(), Some(&h.metadata), &id),
            Ownership::Owned
        );
        assert_eq!(VirtualIdentity::from_host(&h.metadata), Some(id));
    }

    #[test]
    fn reflect_takes_host_allocations() {
        let v = svc(
            "web",
            ServiceSpec {
                type_: Some("LoadBalancer".into()),
                cluster_ip: Some("10.96.0.5".into()),
                cluster_ips: Some(vec!["10.96.0.5".into()]),
                ports: Some(vec![port("http", 80, None), port("metrics", 9090, None)]),
                ..Default::default()
            },
        );
        let mut host = v.clone();
        let hs = host.spec.as_mut().unwrap();
        hs.cluster_ip = Some("172.20.0.9".into());
        hs.cluster_ips = Some(vec!["172.20.0.9".into()]);
        // Host lists the ports in another order: matched by name.
        hs.ports = Some(vec![
            port("metrics", 9090, Some(31090)),
            port("http", 80, Some(30080)),
        ]);
        hs.health_check_node_port = Some(32000);
        let lb = LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some("203.0.113.4".into()),
                ..Default::default()
            }]),
        };
        host.status = Some(ServiceStatus {
            load_balancer: Some(lb.clone()),
            ..Default::default()
        });
        let r = reflect(&v, &host);
        assert!(r.cluster_ip_differs);
        let s = r.virtual_service.spec.clone().unwrap();
        assert_eq!(
            s.cluster_ip,
            v.spec.as_ref().unwrap().cluster_ip,
            "the virtual clusterIP is the identity: never taken from the host"
        );
        let nps: Vec<_> = s.ports.unwrap().iter().map(|p| p.node_port).collect();
        assert_eq!(nps, vec![Some(30080), Some(31090)]);
        assert_eq!(s.health_check_node_port, Some(32000));
        assert_eq!(
            r.virtual_service.status.clone().unwrap().load_balancer,
            Some(lb)
        );
        assert_eq!(r.virtual_service.metadata, v.metadata);
        assert!(status_differs(&v, &host));

        // Same clusterIP: nothing to replace.
        let settled = {
            let mut s = r.virtual_service.clone();
            let spec = s.spec.as_mut().unwrap();
            spec.cluster_ip = Some("172.20.0.9".into());
            spec.cluster_ips = Some(vec!["172.20.0.9".into()]);
            s
        };
        let r2 = reflect(&settled, &host);
        assert!(!r2.cluster_ip_differs);
        assert!(!status_differs(&settled, &host));
        // Only a nodePort changed on the host: in-place.
        host.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].node_port = Some(30081);
        assert!(status_differs(&settled, &host));
        assert!(!reflect(&settled, &host).cluster_ip_differs);
    }

    #[test]
    fn a_host_copy_asks_for_the_virtual_allocations() {
        let v = svc(
            "web",
            ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: Some("Local".into()),
                cluster_ip: Some("10.96.7.7".into()),
                cluster_ips: Some(vec!["10.96.7.7".into()]),
                health_check_node_port: Some(32100),
                ports: Some(vec![port("http", 80, Some(30080)), port("m", 9090, None)]),
                ..Default::default()
            },
        );
        let desired = translate(&tenant(), &v).unwrap();
        let ds = desired.spec.as_ref().unwrap();
        assert_eq!(
            (ds.cluster_ip.clone(), ds.health_check_node_port),
            (None, None)
        );
        let asked = with_virtual_allocations(desired, &v).spec.unwrap();
        assert_eq!(asked.cluster_ip.as_deref(), Some("10.96.7.7"));
        assert_eq!(asked.cluster_ips, Some(vec!["10.96.7.7".to_string()]));
        let nps: Vec<_> = asked.ports.unwrap().iter().map(|p| p.node_port).collect();
        assert_eq!(nps, vec![Some(30080), None], "the host allocates the rest");
        assert_eq!(asked.health_check_node_port, Some(32100));

        // Headless stays headless; ExternalName asks for nothing.
        let headless = svc(
            "h",
            ServiceSpec {
                cluster_ip: Some(HEADLESS.into()),
                ..Default::default()
            },
        );
        let d = with_virtual_allocations(translate(&tenant(), &headless).unwrap(), &headless);
        assert_eq!(d.spec.unwrap().cluster_ip.as_deref(), Some(HEADLESS));
        let ext = svc(
            "e",
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("db.example.com".into()),
                cluster_ip: Some("10.96.0.3".into()),
                ..Default::default()
            },
        );
        let d = with_virtual_allocations(translate(&tenant(), &ext).unwrap(), &ext);
        assert_eq!(d.spec.unwrap().cluster_ip, None);
    }

    #[test]
    fn unnamed_ports_match_by_index() {
        let v = svc(
            "one",
            ServiceSpec {
                ports: Some(vec![port("", 80, None)]),
                ..Default::default()
            },
        );
        let mut host = v.clone();
        host.spec.as_mut().unwrap().ports = Some(vec![port("", 80, Some(30001))]);
        let s = reflect(&v, &host).virtual_service.spec.unwrap();
        assert_eq!(s.ports.unwrap()[0].node_port, Some(30001));
    }

    #[test]
    fn needs_update_ignores_host_allocations() {
        let v = svc(
            "web",
            ServiceSpec {
                selector: Some(labels(&[("app", "web")])),
                ports: Some(vec![port("http", 80, None)]),
                ..Default::default()
            },
        );
        let desired = translate(&tenant(), &v).unwrap();
        let mut host = desired.clone();
        let hs = host.spec.as_mut().unwrap();
        hs.cluster_ip = Some("10.0.0.1".into());
        hs.session_affinity = Some("None".into());
        hs.ports.as_mut().unwrap()[0].node_port = Some(30000);
        assert!(!needs_update(&desired, &host));
        host.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 81;
        assert!(needs_update(&desired, &host));
    }

    fn names(env: &[EnvVar]) -> Vec<(String, String)> {
        env.iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn service_env_matches_kubelet() {
        let mut udp = port("dns", 53, None);
        udp.protocol = Some("UDP".into());
        let services = [
            svc(
                "redis-primary",
                ServiceSpec {
                    cluster_ip: Some("10.0.0.11".into()),
                    ports: Some(vec![port("", 6379, None), udp]),
                    ..Default::default()
                },
            ),
            svc(
                "headless",
                ServiceSpec {
                    cluster_ip: Some(HEADLESS.into()),
                    ports: Some(vec![port("", 1, None)]),
                    ..Default::default()
                },
            ),
            svc(
                "ext",
                ServiceSpec {
                    type_: Some("ExternalName".into()),
                    external_name: Some("example.com".into()),
                    ..Default::default()
                },
            ),
        ];
        let got = names(&service_env(&services));
        let want: Vec<(String, String)> = [
            ("REDIS_PRIMARY_SERVICE_HOST", "10.0.0.11"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_DNS", "53"),
            ("REDIS_PRIMARY_PORT", "tcp://10.0.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.0.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.0.0.11"),
            ("REDIS_PRIMARY_PORT_53_UDP", "udp://10.0.0.11:53"),
            ("REDIS_PRIMARY_PORT_53_UDP_PROTO", "udp"),
            ("REDIS_PRIMARY_PORT_53_UDP_PORT", "53"),
            ("REDIS_PRIMARY_PORT_53_UDP_ADDR", "10.0.0.11"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn service_env_brackets_ipv6_and_sorts() {
        let a = svc(
            "b-svc",
            ServiceSpec {
                cluster_ip: Some("fd00::1".into()),
                ports: Some(vec![port("", 80, None)]),
                ..Default::default()
            },
        );
        let b = svc(
            "a-svc",
            ServiceSpec {
                cluster_ip: Some("10.0.0.1".into()),
                ports: Some(vec![port("", 80, None)]),
                ..Default::default()
            },
        );
        let got = names(&service_env(&[a, b]));
        assert_eq!(got[0].0, "A_SVC_SERVICE_HOST");
        assert!(got.contains(&("B_SVC_PORT".into(), "tcp://[fd00::1]:80".into())));
        assert!(got.contains(&("B_SVC_PORT_80_TCP_ADDR".into(), "fd00::1".into())));
    }

    #[test]
    fn kubernetes_service_env_has_the_kubelet_set() {
        let got = names(&kubernetes_service_env("10.0.0.1", 443));
        let want: Vec<(String, String)> = [
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.0.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.0.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.0.0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
