//! Pure parts of the Service registry (k8s.io/kubernetes
//! pkg/registry/core/service): the service CIDR, which allocations a
//! Service needs, and how an update inherits allocated values.

use serde_json::{Value, json};
use std::net::Ipv4Addr;

/// An IPv4 service CIDR such as `10.96.0.0/12` (`--service-cluster-ip-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCidr {
    base: u32,
    prefix: u8,
}

impl ServiceCidr {
    /// Parses `a.b.c.d/n` with `n` in 1..=30 (at least two usable
    /// addresses); host bits must be zero. Errors are human-readable.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {s:?}: missing prefix length"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR {s:?}: not an IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .map_err(|_| format!("invalid CIDR {s:?}: bad prefix length"))?;
        if !(1..=30).contains(&prefix) {
            return Err(format!(
                "invalid CIDR {s:?}: prefix length must be between 1 and 30"
            ));
        }
        let base = u32::from(ip);
        let mask = u32::MAX << (32 - prefix);
        if base & !mask != 0 {
            return Err(format!("invalid CIDR {s:?}: host bits must be zero"));
        }
        Ok(Self { base, prefix })
    }

    /// Number of allocatable addresses: all but the network and broadcast
    /// addresses (upstream also reserves those).
    pub fn size(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The `n`-th allocatable address (0 is the first after the network address).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + (n % self.size()))
    }

    /// Whether `ip` is an allocatable address of this range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + (1u32 << (32 - self.prefix)) - 1
    }
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn spec_str<'a>(svc: &'a Value, field: &str) -> &'a str {
    svc.get("spec")
        .and_then(|s| s.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The Service's type, `ClusterIP` when unset.
pub fn service_type(svc: &Value) -> &str {
    match spec_str(svc, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

/// Whether the Service gets a ClusterIP allocated or kept (`needsClusterIP`):
/// not ExternalName and not headless.
pub fn needs_cluster_ip(svc: &Value) -> bool {
    service_type(svc) != "ExternalName" && spec_str(svc, "clusterIP") != "None"
}

/// Whether the Service's ports get node ports (`needsNodePort`): NodePort,
/// and LoadBalancer unless `allocateLoadBalancerNodePorts` is false.
pub fn needs_node_ports(svc: &Value) -> bool {
    match service_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => {
            svc.pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

/// Whether the Service gets a `healthCheckNodePort` (`needsHCNodePort`): a
/// LoadBalancer with externalTrafficPolicy `Local`.
pub fn needs_health_check_node_port(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer" && spec_str(svc, "externalTrafficPolicy") == "Local"
}

/// The Service's non-zero `healthCheckNodePort`, if it needs one.
pub fn health_check_node_port(svc: &Value) -> Option<i64> {
    if !needs_health_check_node_port(svc) {
        return None;
    }
    svc.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .filter(|p| *p != 0)
}

/// The ClusterIP the Service holds, if it holds a real one (not `None`).
pub fn cluster_ip(svc: &Value) -> Option<String> {
    let ip = spec_str(svc, "clusterIP");
    (!ip.is_empty() && ip != "None").then(|| ip.to_string())
}

/// The non-zero `nodePort`s of the Service's ports.
pub fn node_ports(svc: &Value) -> Vec<i64> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .filter(|n| *n != 0)
                .collect()
        })
        .unwrap_or_default()
}

fn same(a: &Value, b: &Value, field: &str) -> bool {
    a.pointer(&format!("/spec/{field}")) == b.pointer(&format!("/spec/{field}"))
}

/// What an update of `new` over `old` inherits before validation, as the
/// service REST storage's `beginUpdate` does:
///
/// - `dropTypeDependentFields`: leaving a type that needs a ClusterIP drops
///   clusterIP(s) and the IP-family fields the user did not change; leaving
///   node ports drops unchanged nodePorts; leaving LoadBalancer drops
///   `allocateLoadBalancerNodePorts`, leaving NodePort/LoadBalancer drops
///   `externalTrafficPolicy`; ExternalName drops `internalTrafficPolicy`.
/// - `patchAllocatedValues`: a body without clusterIP(s) or nodePorts keeps
///   the allocated ones (matched by port name) when the type still needs
///   them; likewise `healthCheckNodePort` (dropped, unchanged, when a
///   LoadBalancer stops being externalTrafficPolicy `Local`).
/// - `normalizeClusterIPs`: a changed singular `clusterIP` with unchanged
///   `clusterIPs` rewrites `clusterIPs`.
pub fn prepare_update(new: &mut Value, old: &Value) {
    if !new.get("spec").is_some_and(Value::is_object) {
        return;
    }
    // dropTypeDependentFields
    if needs_cluster_ip(old) && service_type(new) == "ExternalName" {
        let unchanged: Vec<&str> = ["clusterIPs", "ipFamilies", "ipFamilyPolicy"]
            .into_iter()
            .filter(|f| same(new, old, f))
            .collect();
        let spec = new["spec"].as_object_mut().expect("checked object");
        for f in unchanged {
            spec.remove(f);
            if f == "clusterIPs" {
                spec.remove("clusterIP");
            }
        }
    }
    if needs_node_ports(old) && !needs_node_ports(new) {
        let old_ports = old.pointer("/spec/ports").cloned();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                let name = p.get("name").cloned();
                let old_np = old_ports
                    .as_ref()
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|o| o.get("name") == name.as_ref()))
                    .and_then(|o| o.get("nodePort").cloned());
                if p.get("nodePort").is_some() && p.get("nodePort") == old_np.as_ref() {
                    p.remove("nodePort");
                }
            }
        }
    }
    if needs_health_check_node_port(old)
        && !needs_health_check_node_port(new)
        && same(new, old, "healthCheckNodePort")
    {
        new["spec"]
            .as_object_mut()
            .expect("checked object")
            .remove("healthCheckNodePort");
    }
    if needs_health_check_node_port(old)
        && needs_health_check_node_port(new)
        && new
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && let Some(hc) = old.pointer("/spec/healthCheckNodePort").cloned()
    {
        new["spec"]["healthCheckNodePort"] = hc;
    }
    let new_ty = service_type(new).to_string();
    let spec = new["spec"].as_object_mut().expect("checked object");
    if service_type(old) == "LoadBalancer" && new_ty != "LoadBalancer" {
        spec.remove("allocateLoadBalancerNodePorts");
    }
    if !matches!(new_ty.as_str(), "NodePort" | "LoadBalancer") {
        spec.remove("externalTrafficPolicy");
    }
    if new_ty == "ExternalName" {
        spec.remove("internalTrafficPolicy");
    }

    // patchAllocatedValues
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        let spec = new["spec"].as_object_mut().expect("checked object");
        if spec_str_map(spec, "clusterIP").is_empty()
            && let Some(ip) = old.pointer("/spec/clusterIP")
        {
            spec.insert("clusterIP".into(), ip.clone());
        }
        if spec
            .get("clusterIPs")
            .is_none_or(|v| v.as_array().is_none_or(Vec::is_empty))
            && let Some(ips) = old.pointer("/spec/clusterIPs")
        {
            spec.insert("clusterIPs".into(), ips.clone());
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let used: Vec<i64> = node_ports(new);
        let old_ports = old.pointer("/spec/ports").cloned().unwrap_or(json!([]));
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let name = p.get("name").cloned().unwrap_or(json!(""));
                let old_np = old_ports
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|o| o.get("name").cloned().unwrap_or(json!("")) == name)
                    .and_then(|o| o.get("nodePort").and_then(Value::as_i64));
                if let Some(np) = old_np.filter(|n| *n != 0 && !used.contains(n)) {
                    p.insert("nodePort".into(), json!(np));
                }
            }
        }
    }

    // normalizeClusterIPs
    let old_ip = spec_str(old, "clusterIP").to_string();
    let new_ip = spec_str(new, "clusterIP").to_string();
    if old_ip != new_ip && same(new, old, "clusterIPs") {
        let spec = new["spec"].as_object_mut().expect("checked object");
        if new_ip.is_empty() {
            spec.remove("clusterIPs");
        } else {
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

fn spec_str_map<'a>(spec: &'a serde_json::Map<String, Value>, f: &str) -> &'a str {
    spec.get(f).and_then(Value::as_str).unwrap_or("")
}

/// What a [`HostAllocator`] answers when the host refuses a Service: the
/// host API server's `Status` (code, reason, message, details), to be
/// returned to the client as the virtual API server's own answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRefusal {
    /// HTTP status code, e.g. `422` for a taken ClusterIP.
    pub code: u16,
    /// `Status.reason`, e.g. `Invalid`, `Conflict`, `InternalError`.
    pub reason: String,
    /// `Status.message`, already naming the virtual object.
    pub message: String,
    /// `Status.details`, already naming the virtual object, if any.
    pub details: Option<Value>,
}

/// A boxed future, as [`HostAllocator`]'s methods return (the trait is
/// object-safe so a server can hold any implementation).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where a virtual cluster's Services get their addresses: the host
/// cluster, at the time the tenant writes the Service. The virtual API
/// server calls it inside the create or update request, so the Service is
/// stored once, already carrying the host's ClusterIP(s) and nodePorts, and
/// never changes identity afterwards (vcluster intercepts Service creation
/// the same way). The REST layer calls it only for real writes (never under
/// `dryRun`) and only after checking that a create's name is free.
pub trait HostAllocator: Send + Sync + std::fmt::Debug {
    /// Makes the host hold what Service `new` needs (`old` is the stored
    /// object on update, `None` on create; both are complete objects with
    /// `metadata.uid` set) and returns the host's Service, from which
    /// [`copy_allocations`] takes the addresses. `Ok(None)`: nothing for
    /// the host to do (the server's own `default/kubernetes` Service, an
    /// update that changes no allocation); the server then allocates as a
    /// stand-alone server would. Must not change the virtual store.
    fn allocate<'a>(
        &'a self,
        old: Option<&'a Value>,
        new: &'a Value,
    ) -> BoxFuture<'a, Result<Option<Value>, HostRefusal>>;

    /// A create whose [`HostAllocator::allocate`] returned `host` did not
    /// land in the virtual store: removes what that call created on the
    /// host (best effort; the syncer removes a leftover later).
    fn release<'a>(&'a self, host: &'a Value) -> BoxFuture<'a, ()>;
}

/// Copies the addresses the host allocated (`from`, the host's Service)
/// into the virtual Service `to`: `clusterIP`, `clusterIPs`, `ipFamilies`
/// and `ipFamilyPolicy` when `to` needs a ClusterIP, each port's `nodePort`
/// (ports are matched by index: the host Service is a translation of `to`
/// with its ports in the same order) when it needs node ports, and
/// `healthCheckNodePort` when it needs one. Fields the host left unset are
/// left as they are.
pub fn copy_allocations(from: &Value, to: &mut Value) {
    let Some(host) = from.get("spec").and_then(Value::as_object) else {
        return;
    };
    let cluster_ip = needs_cluster_ip(to);
    let node_port = needs_node_ports(to);
    let health = needs_health_check_node_port(to);
    let Some(spec) = to.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if cluster_ip {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if let Some(v) = host.get(f).filter(|v| !v.is_null()) {
                spec.insert(f.into(), v.clone());
            }
        }
    }
    if node_port {
        let host_ports = host.get("ports").and_then(Value::as_array);
        if let (Some(ports), Some(host_ports)) = (
            spec.get_mut("ports").and_then(Value::as_array_mut),
            host_ports,
        ) {
            for (p, h) in ports.iter_mut().zip(host_ports) {
                if let (Some(p), Some(np)) = (
                    p.as_object_mut(),
                    h.get("nodePort").filter(|n| n.as_i64().unwrap_or(0) != 0),
                ) {
                    p.insert("nodePort".into(), np.clone());
                }
            }
        }
    }
    if health
        && let Some(hc) = host
            .get("healthCheckNodePort")
            .filter(|n| n.as_i64().unwrap_or(0) != 0)
    {
        spec.insert("healthCheckNodePort".into(), hc.clone());
    }
}

/// The part of a Service that decides what the host must allocate: type,
/// requested ClusterIP(s) and IP families, each port's nodePort (for types
/// with node ports), `healthCheckNodePort` and the fields deciding whether
/// one is needed. Two Services with equal views need the same allocations.
fn allocation_view(svc: &Value) -> Value {
    let spec = |f: &str| {
        svc.pointer(&format!("/spec/{f}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let node_ports: Vec<Value> = if needs_node_ports(svc) {
        svc.pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| p.get("nodePort").cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    json!({
        "type": service_type(svc),
        "clusterIP": spec("clusterIP"),
        "clusterIPs": spec("clusterIPs"),
        "ipFamilies": spec("ipFamilies"),
        "ipFamilyPolicy": spec("ipFamilyPolicy"),
        "nodePorts": node_ports,
        "healthCheckNodePort": if needs_health_check_node_port(svc) { spec("healthCheckNodePort") } else { Value::Null },
    })
}

/// Whether updating Service `old` to `new` changes what the host must
/// allocate (see [`allocation_view`]): a type change, a new or changed
/// nodePort, a port added to a NodePort Service, a changed IP family
/// request. Label, selector or targetPort changes do not.
pub fn allocation_changed(old: &Value, new: &Value) -> bool {
    allocation_view(old) != allocation_view(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_membership() {
        let c = ServiceCidr::parse("10.96.0.0/12").unwrap();
        assert_eq!(c.to_string(), "10.96.0.0/12");
        assert_eq!(c.nth(0), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(c.size(), (1 << 20) - 2);
        assert!(c.contains(Ipv4Addr::new(10, 111, 255, 254)));
        assert!(!c.contains(Ipv4Addr::new(10, 111, 255, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 96, 0, 0)));
        assert!(!c.contains(Ipv4Addr::new(10, 112, 0, 1)));
        for bad in [
            "10.96.0.0",
            "10.96.0.1/12",
            "x/12",
            "10.0.0.0/31",
            "10.0.0.0/0",
        ] {
            assert!(ServiceCidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_allocations_are_copied_by_port_index_and_only_where_needed() {
        let host = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.100.0.7",
            "clusterIPs": ["10.100.0.7"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 31999,
            "ports": [{"name": "http", "port": 80, "nodePort": 31001},
                      {"name": "https", "port": 443, "nodePort": 31002}]}});
        let mut v = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30443}]}});
        copy_allocations(&host, &mut v);
        assert_eq!(v["spec"]["clusterIP"], "10.100.0.7");
        assert_eq!(v["spec"]["clusterIPs"], json!(["10.100.0.7"]));
        assert_eq!(v["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(v["spec"]["ports"][0]["nodePort"], 31001);
        assert_eq!(
            v["spec"]["ports"][1]["nodePort"], 31002,
            "the host's answer wins"
        );
        assert_eq!(v["spec"]["healthCheckNodePort"], 31999);

        // A ClusterIP Service takes no nodePorts, an ExternalName nothing.
        let mut c = json!({"spec": {"ports": [{"port": 80}]}});
        copy_allocations(&host, &mut c);
        assert_eq!(c["spec"]["clusterIP"], "10.100.0.7");
        assert!(c["spec"]["ports"][0].get("nodePort").is_none());
        assert!(c["spec"].get("healthCheckNodePort").is_none());
        let mut e = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        copy_allocations(&host, &mut e);
        assert!(e["spec"].get("clusterIP").is_none(), "{e}");
        // Headless keeps None.
        let mut h = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        copy_allocations(&json!({"spec": {"clusterIP": "None"}}), &mut h);
        assert_eq!(h["spec"]["clusterIP"], "None");
    }

    #[test]
    fn allocation_changes_are_told_apart_from_other_changes() {
        let np = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
            "selector": {"app": "a"}, "ports": [{"name": "a", "port": 80, "nodePort": 30001, "targetPort": 80}]}});
        let mut relabelled = np.clone();
        relabelled["spec"]["selector"] = json!({"app": "b"});
        relabelled["spec"]["ports"][0]["targetPort"] = json!(8080);
        relabelled["metadata"] = json!({"labels": {"x": "y"}});
        assert!(!allocation_changed(&np, &relabelled));
        let mut moved = np.clone();
        moved["spec"]["ports"][0]["nodePort"] = json!(30002);
        assert!(allocation_changed(&np, &moved));
        let mut added = np.clone();
        added["spec"]["ports"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "b", "port": 81}));
        assert!(allocation_changed(&np, &added));
        let mut retyped = np.clone();
        retyped["spec"]["type"] = json!("ClusterIP");
        assert!(allocation_changed(&np, &retyped));
        // A port added to a ClusterIP Service needs nothing new.
        let cip = json!({"spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}});
        let mut more = cip.clone();
        more["spec"]["ports"]
            .as_array_mut()
            .unwrap()
            .push(json!({"port": 81}));
        assert!(!allocation_changed(&cip, &more));
    }

    #[test]
    fn update_keeps_allocated_values() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
            "ports": [{"name": "a", "port": 80, "nodePort": 30001}]}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80}]}});
        prepare_update(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.9");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.9"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30001);

        // Changing the singular field rewrites the plural one.
        let mut changed = old.clone();
        changed["spec"]["clusterIP"] = json!("10.96.3.4");
        prepare_update(&mut changed, &old);
        assert_eq!(changed["spec"]["clusterIPs"], json!(["10.96.3.4"]));

        // To ClusterIP: node ports go, the IP stays.
        let mut cip = old.clone();
        cip["spec"]["type"] = json!("ClusterIP");
        prepare_update(&mut cip, &old);
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(cip["spec"]["clusterIP"], "10.96.0.9");

        // To ExternalName: the IP goes.
        let mut ext = old.clone();
        ext["spec"]["type"] = json!("ExternalName");
        ext["spec"]["externalName"] = json!("x.example");
        prepare_update(&mut ext, &old);
        assert!(ext["spec"].get("clusterIP").is_none());
        assert!(ext["spec"].get("clusterIPs").is_none());
    }

    #[test]
    fn needs() {
        assert!(needs_cluster_ip(&json!({"spec": {}})));
        assert!(!needs_cluster_ip(&json!({"spec": {"clusterIP": "None"}})));
        assert!(!needs_cluster_ip(
            &json!({"spec": {"type": "ExternalName"}})
        ));
        assert!(needs_node_ports(&json!({"spec": {"type": "LoadBalancer"}})));
        assert!(needs_health_check_node_port(
            &json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}})
        ));
        assert!(!needs_health_check_node_port(
            &json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Local"}})
        ));
        assert!(!needs_node_ports(
            &json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false}})
        ));
        assert_eq!(
            node_ports(&json!({"spec": {"ports": [{"nodePort": 30000}, {"port": 1}]}})),
            vec![30000]
        );
    }
}
