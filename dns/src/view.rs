//! The tenant's DNS records (pure): a compact view of the virtual cluster's
//! Services and EndpointSlices, and the answer to a query, per the
//! Kubernetes DNS-Based Service Discovery specification (kubernetes/dns
//! `docs/specification.md`, schema 1.1.0) with CoreDNS's choices where the
//! specification leaves one (weights, generated hostnames, `pods insecure`).
//!
//! The view keeps only what answers need (addresses, port names and
//! numbers, hostnames, readiness), not whole objects: about 100–200 bytes
//! per Service and per endpoint.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The schema version answered at `dns-version.<zone>` (TXT).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The most records one answer carries (a headless Service with more
/// ready endpoints answers the first ones; a UDP answer is truncated long
/// before).
pub const MAX_ANSWERS: usize = 1000;

/// The label naming an EndpointSlice's Service (`discovery.k8s.io/v1`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A query type the view answers; anything else is [`QueryType::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Service location.
    Srv,
    /// Reverse lookup.
    Ptr,
    /// Alias.
    Cname,
    /// Text (the schema version).
    Txt,
    /// Every record of the name.
    Any,
    /// Any other type: the name's existence is still told (NODATA vs NXDOMAIN).
    Other,
}

/// One record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    /// `A`.
    A(Ipv4Addr),
    /// `AAAA`.
    Aaaa(Ipv6Addr),
    /// `CNAME` to an absolute name (no trailing dot).
    Cname(String),
    /// `SRV`.
    Srv {
        /// Priority (always 0).
        priority: u16,
        /// Weight: 100 split across the records of the name, as CoreDNS.
        weight: u16,
        /// The port number.
        port: u16,
        /// Target name (no trailing dot).
        target: String,
    },
    /// `PTR` to a name (no trailing dot).
    Ptr(String),
    /// `TXT` with one string.
    Txt(String),
}

impl RecordData {
    fn matches(&self, qtype: QueryType) -> bool {
        matches!(
            (qtype, self),
            (QueryType::Any, _)
                | (QueryType::A, RecordData::A(_))
                | (QueryType::Aaaa, RecordData::Aaaa(_))
                | (QueryType::Srv, RecordData::Srv { .. })
                | (QueryType::Ptr, RecordData::Ptr(_))
                | (QueryType::Cname, RecordData::Cname(_))
                | (QueryType::Txt, RecordData::Txt(_))
        ) || matches!(
            // A CNAME answers every address query of its name.
            (qtype, self),
            (QueryType::A | QueryType::Aaaa, RecordData::Cname(_))
        )
    }
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Records of the name (owner name is the query name).
    Found(Vec<RecordData>),
    /// The name exists in the zone but has no record of the type.
    NoData,
    /// The name is in the zone and does not exist.
    NxDomain,
    /// The name is not in the cluster zone nor a reverse zone the view
    /// knows: forward it.
    Outside,
    /// The view has not been filled yet (the first list of Services and
    /// EndpointSlices is not done): answer SERVFAIL so clients retry,
    /// rather than a cacheable NXDOMAIN.
    NotReady,
}

/// One named or unnamed port of a Service or EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Port {
    name: String,
    protocol: String,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ServiceKind {
    /// ClusterIP, NodePort, LoadBalancer: the ClusterIP(s).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the endpoints' addresses.
    Headless,
    /// `type: ExternalName`.
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceEntry {
    kind: ServiceKind,
    ports: Vec<Port>,
    publish_not_ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    addresses: Vec<IpAddr>,
    hostname: Option<String>,
    ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct SliceEntry {
    ports: Vec<Port>,
    endpoints: Vec<Endpoint>,
}

/// The records of one virtual cluster (module docs).
#[derive(Debug, Clone)]
pub struct DnsView {
    zone: String,
    services: HashMap<(String, String), ServiceEntry>,
    /// (namespace, service) → slice name → slice.
    slices: HashMap<(String, String), BTreeMap<String, SliceEntry>>,
    /// (namespace, slice name) → service, to remove a slice by name.
    slice_service: HashMap<(String, String), String>,
    /// The first full list of Services, and of EndpointSlices, arrived.
    listed: (bool, bool),
}

fn lower_trim(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsView {
    /// An empty view for cluster domain `zone` (e.g. `cluster.local`).
    pub fn new(zone: &str) -> Self {
        Self {
            zone: lower_trim(zone),
            services: HashMap::new(),
            slices: HashMap::new(),
            slice_service: HashMap::new(),
            listed: (false, false),
        }
    }

    /// Marks the view filled, as after the first full lists (for a view
    /// built by hand rather than by [`crate::watch`]).
    pub fn mark_listed(&mut self) {
        self.listed = (true, true);
    }

    /// The cluster domain, lower case, without a trailing dot.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, svc: &Service) {
        let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) else {
            return;
        };
        let Some(spec) = &svc.spec else { return };
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            match &spec.external_name {
                Some(e) if !e.is_empty() => ServiceKind::ExternalName(lower_trim(e)),
                _ => return self.delete_service(ns, name),
            }
        } else if spec.cluster_ip.as_deref() == Some("None") {
            ServiceKind::Headless
        } else {
            let mut ips: Vec<IpAddr> = spec
                .cluster_ips
                .iter()
                .flatten()
                .filter_map(|ip| ip.parse().ok())
                .collect();
            if ips.is_empty()
                && let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok())
            {
                ips.push(ip);
            }
            if ips.is_empty() {
                // Not allocated yet: no record until it is.
                return self.delete_service(ns, name);
            }
            ServiceKind::ClusterIp(ips)
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(Port {
                    name: p.name.clone().unwrap_or_default().to_ascii_lowercase(),
                    protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                    port: u16::try_from(p.port).ok()?,
                })
            })
            .collect();
        self.services.insert(
            (ns.to_ascii_lowercase(), name.to_ascii_lowercase()),
            ServiceEntry {
                kind,
                ports,
                publish_not_ready: spec.publish_not_ready_addresses == Some(true),
            },
        );
    }

    /// Removes a Service.
    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        self.services
            .remove(&(namespace.to_ascii_lowercase(), name.to_ascii_lowercase()));
    }

    /// Adds or replaces an EndpointSlice (the Service is its
    /// `kubernetes.io/service-name` label; slices without one are ignored).
    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let (Some(ns), Some(name)) = (&slice.metadata.namespace, &slice.metadata.name) else {
            return;
        };
        let (ns, name) = (ns.to_ascii_lowercase(), name.to_ascii_lowercase());
        self.delete_slice(&ns, &name);
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            return;
        };
        let service = service.to_ascii_lowercase();
        let entry = SliceEntry {
            ports: slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(Port {
                        name: p.name.clone().unwrap_or_default().to_ascii_lowercase(),
                        protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                        port: u16::try_from(p.port?).ok()?,
                    })
                })
                .collect(),
            endpoints: slice
                .endpoints
                .iter()
                .flatten()
                .map(|e| Endpoint {
                    addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                    hostname: e.hostname.as_deref().map(str::to_ascii_lowercase),
                    ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
                })
                .collect(),
        };
        self.slice_service
            .insert((ns.clone(), name.clone()), service.clone());
        self.slices
            .entry((ns, service))
            .or_default()
            .insert(name, entry);
    }

    /// Removes an EndpointSlice.
    pub fn delete_slice(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_ascii_lowercase(), name.to_ascii_lowercase());
        if let Some(service) = self.slice_service.remove(&key) {
            let skey = (key.0, service);
            if let Some(m) = self.slices.get_mut(&skey) {
                m.remove(&key.1);
                if m.is_empty() {
                    self.slices.remove(&skey);
                }
            }
        }
    }

    /// Replaces every Service with `services` (a watch's relist).
    pub fn replace_services<'a>(&mut self, services: impl IntoIterator<Item = &'a Service>) {
        self.services.clear();
        for s in services {
            self.apply_service(s);
        }
        self.listed.0 = true;
    }

    /// Replaces every EndpointSlice with `slices` (a watch's relist).
    pub fn replace_slices<'a>(&mut self, slices: impl IntoIterator<Item = &'a EndpointSlice>) {
        self.slices.clear();
        self.slice_service.clear();
        for s in slices {
            self.apply_slice(s);
        }
        self.listed.1 = true;
    }

    /// How many Services and EndpointSlices the view holds.
    pub fn len(&self) -> (usize, usize) {
        (self.services.len(), self.slice_service.len())
    }

    /// Whether the view holds nothing.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.slice_service.is_empty()
    }

    /// The endpoints of a headless Service that are answered: ready ones,
    /// or all with `publishNotReadyAddresses`, each with its hostname
    /// (its own, or CoreDNS's generated one: the first address with
    /// dashes).
    fn headless_endpoints(
        &self,
        ns: &str,
        name: &str,
        svc: &ServiceEntry,
    ) -> Vec<(String, &Endpoint)> {
        let Some(slices) = self.slices.get(&(ns.to_string(), name.to_string())) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in slices.values().flat_map(|s| &s.endpoints) {
            if !(e.ready || svc.publish_not_ready) || e.addresses.is_empty() {
                continue;
            }
            let host = e
                .hostname
                .clone()
                .unwrap_or_else(|| e.addresses[0].to_string().replace(['.', ':'], "-"));
            out.push((host, e));
        }
        out
    }

    /// The ports of a headless Service's slices (a Service's own ports for
    /// every other kind).
    fn slice_ports(&self, ns: &str, name: &str) -> Vec<Port> {
        let mut seen = HashSet::new();
        let mut out: Vec<Port> = Vec::new();
        for p in self
            .slices
            .get(&(ns.to_string(), name.to_string()))
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|s| &s.ports)
        {
            if seen.insert(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Answers `qname` (any case, with or without the trailing dot) for
    /// `qtype`. Work is bounded by the size of the one Service asked for
    /// (a reverse lookup scans every Service once).
    pub fn lookup(&self, qname: &str, qtype: QueryType) -> Lookup {
        let name = lower_trim(qname);
        let ready = self.listed == (true, true);
        if let Some(ip) = reverse_ip(&name) {
            if !ready {
                return Lookup::Outside;
            }
            return self.reverse(ip, qtype);
        }
        let Some(rel) = name.strip_suffix(self.zone.as_str()).and_then(|r| {
            if r.is_empty() {
                Some("")
            } else {
                r.strip_suffix('.')
            }
        }) else {
            return Lookup::Outside;
        };
        if !ready {
            return Lookup::NotReady;
        }
        let labels: Vec<&str> = if rel.is_empty() {
            Vec::new()
        } else {
            rel.split('.').collect()
        };
        let records = match labels.as_slice() {
            [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => return Lookup::NoData,
            ["dns-version"] => vec![RecordData::Txt(SCHEMA_VERSION.into())],
            [ip, _ns, "pod"] => match dashed_ip(ip) {
                Some(ip) => vec![address(ip)],
                None => return Lookup::NxDomain,
            },
            [svc, ns, "svc"] => match self.services.get(&(ns.to_string(), svc.to_string())) {
                None => return Lookup::NxDomain,
                Some(entry) => match &entry.kind {
                    ServiceKind::ClusterIp(ips) => ips.iter().map(|ip| address(*ip)).collect(),
                    ServiceKind::ExternalName(target) => vec![RecordData::Cname(target.clone())],
                    ServiceKind::Headless => {
                        let eps = self.headless_endpoints(ns, svc, entry);
                        if eps.is_empty() {
                            return Lookup::NxDomain;
                        }
                        let mut seen = HashSet::new();
                        let mut out: Vec<RecordData> = Vec::new();
                        for (_, e) in &eps {
                            for a in &e.addresses {
                                if seen.insert(*a) {
                                    out.push(address(*a));
                                }
                            }
                        }
                        out
                    }
                },
            },
            [host, svc, ns, "svc"] if !host.starts_with('_') => {
                let Some(entry) = self.services.get(&(ns.to_string(), svc.to_string())) else {
                    return Lookup::NxDomain;
                };
                if entry.kind != ServiceKind::Headless {
                    return Lookup::NxDomain;
                }
                let out: Vec<RecordData> = self
                    .headless_endpoints(ns, svc, entry)
                    .iter()
                    .filter(|(h, _)| h == host)
                    .flat_map(|(_, e)| e.addresses.iter().map(|a| address(*a)))
                    .collect();
                if out.is_empty() {
                    return Lookup::NxDomain;
                }
                out
            }
            [port, proto, svc, ns, "svc"] => {
                let (Some(port), Some(proto)) = (port.strip_prefix('_'), proto.strip_prefix('_'))
                else {
                    return Lookup::NxDomain;
                };
                let Some(entry) = self.services.get(&(ns.to_string(), svc.to_string())) else {
                    return Lookup::NxDomain;
                };
                let target = format!("{svc}.{ns}.svc.{}", self.zone);
                let mut out = Vec::new();
                match &entry.kind {
                    ServiceKind::ClusterIp(_) => {
                        for p in &entry.ports {
                            if !p.name.is_empty() && p.name == port && p.protocol == proto {
                                out.push((p.port, target.clone()));
                            }
                        }
                    }
                    ServiceKind::Headless => {
                        let ports = self.slice_ports(ns, svc);
                        for (host, _) in self.headless_endpoints(ns, svc, entry) {
                            for p in &ports {
                                if !p.name.is_empty() && p.name == port && p.protocol == proto {
                                    out.push((p.port, format!("{host}.{target}")));
                                }
                            }
                        }
                    }
                    ServiceKind::ExternalName(_) => {}
                }
                if out.is_empty() {
                    return Lookup::NxDomain;
                }
                let weight = u16::try_from((100 / out.len()).max(1)).unwrap_or(1);
                out.into_iter()
                    .map(|(port, target)| RecordData::Srv {
                        priority: 0,
                        weight,
                        port,
                        target,
                    })
                    .collect()
            }
            _ => return Lookup::NxDomain,
        };
        let matching: Vec<RecordData> = records
            .into_iter()
            .filter(|r| r.matches(qtype))
            .take(MAX_ANSWERS)
            .collect();
        if matching.is_empty() {
            Lookup::NoData
        } else {
            Lookup::Found(matching)
        }
    }

    /// The PTR records of `ip`: the Service names whose ClusterIP it is,
    /// and the endpoint names of headless Services it is an address of.
    fn reverse(&self, ip: IpAddr, qtype: QueryType) -> Lookup {
        let mut names = Vec::new();
        for ((ns, name), entry) in &self.services {
            match &entry.kind {
                ServiceKind::ClusterIp(ips) if ips.contains(&ip) => {
                    names.push(format!("{name}.{ns}.svc.{}", self.zone));
                }
                ServiceKind::Headless => {
                    for (host, e) in self.headless_endpoints(ns, name, entry) {
                        if e.addresses.contains(&ip) {
                            names.push(format!("{host}.{name}.{ns}.svc.{}", self.zone));
                        }
                    }
                }
                _ => {}
            }
        }
        if names.is_empty() {
            // Not ours: another reverse zone (the host's, the internet's).
            return Lookup::Outside;
        }
        names.sort();
        if matches!(qtype, QueryType::Ptr | QueryType::Any) {
            Lookup::Found(names.into_iter().map(RecordData::Ptr).collect())
        } else {
            Lookup::NoData
        }
    }
}

fn address(ip: IpAddr) -> RecordData {
    match ip {
        IpAddr::V4(v4) => RecordData::A(v4),
        IpAddr::V6(v6) => RecordData::Aaaa(v6),
    }
}

/// `1-2-3-4` (or an IPv6 address with dashes for colons) as an address.
fn dashed_ip(label: &str) -> Option<IpAddr> {
    if label.contains(':') {
        return None;
    }
    let dotted = label.replace('-', ".");
    if let Ok(v4) = dotted.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The address of a reverse-lookup name (`d.c.b.a.in-addr.arpa`, the 32
/// nibbles of `ip6.arpa`), if it is one.
pub fn reverse_ip(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<u8> = rest
            .split('.')
            .map(|o| o.parse().ok())
            .collect::<Option<_>>()?;
        if octets.len() != 4 {
            return None;
        }
        octets.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(
            octets[0], octets[1], octets[2], octets[3],
        )));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<&str> = rest.split('.').collect();
    if nibbles.len() != 32 {
        return None;
    }
    let mut bits: u128 = 0;
    for n in nibbles.iter().rev() {
        let v = u8::from_str_radix(n, 16).ok().filter(|_| n.len() == 1)?;
        bits = (bits << 4) | u128::from(v);
    }
    Some(IpAddr::V6(Ipv6Addr::from(bits)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn view() -> DnsView {
        let mut v = DnsView::new("cluster.local.");
        v.mark_listed();
        v.apply_service(&service(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                               {"port": 9090}]},
        })));
        v.apply_service(&service(json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]},
        })));
        v.apply_service(&service(json!({
            "metadata": {"name": "ext", "namespace": "shop"},
            "spec": {"type": "ExternalName", "externalName": "Example.COM."},
        })));
        v.apply_slice(
            &serde_json::from_value(json!({
                "metadata": {"name": "db-abc", "namespace": "shop",
                             "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                    {"addresses": ["10.244.0.6"], "hostname": "db-1", "conditions": {"ready": false}},
                    {"addresses": ["10.244.0.7"]},
                ],
            }))
            .unwrap(),
        );
        v
    }

    fn a(s: &str) -> RecordData {
        RecordData::A(s.parse().unwrap())
    }

    #[test]
    fn cluster_ip_services_answer_their_address_srv_and_ptr() {
        let v = view();
        assert_eq!(
            v.lookup("WEB.shop.svc.cluster.local.", QueryType::A),
            Lookup::Found(vec![a("10.96.0.20")])
        );
        assert_eq!(
            v.lookup("web.shop.svc.cluster.local", QueryType::Aaaa),
            Lookup::NoData
        );
        assert_eq!(
            v.lookup("_http._tcp.web.shop.svc.cluster.local", QueryType::Srv),
            Lookup::Found(vec![RecordData::Srv {
                priority: 0,
                weight: 100,
                port: 80,
                target: "web.shop.svc.cluster.local".into()
            }])
        );
        // Unnamed ports have no SRV record.
        assert_eq!(
            v.lookup("_._tcp.web.shop.svc.cluster.local", QueryType::Srv),
            Lookup::NxDomain
        );
        assert_eq!(
            v.lookup("20.0.96.10.in-addr.arpa.", QueryType::Ptr),
            Lookup::Found(vec![RecordData::Ptr("web.shop.svc.cluster.local".into())])
        );
        assert_eq!(
            v.lookup("21.0.96.10.in-addr.arpa", QueryType::Ptr),
            Lookup::Outside
        );
    }

    #[test]
    fn headless_services_answer_ready_endpoints_by_address_and_hostname() {
        let mut v = view();
        assert_eq!(
            v.lookup("db.shop.svc.cluster.local", QueryType::A),
            Lookup::Found(vec![a("10.244.0.5"), a("10.244.0.7")])
        );
        assert_eq!(
            v.lookup("db-0.db.shop.svc.cluster.local", QueryType::A),
            Lookup::Found(vec![a("10.244.0.5")])
        );
        assert_eq!(
            v.lookup("db-1.db.shop.svc.cluster.local", QueryType::A),
            Lookup::NxDomain
        );
        assert_eq!(
            v.lookup("_pg._tcp.db.shop.svc.cluster.local", QueryType::Srv),
            Lookup::Found(vec![
                RecordData::Srv {
                    priority: 0,
                    weight: 50,
                    port: 5432,
                    target: "db-0.db.shop.svc.cluster.local".into()
                },
                RecordData::Srv {
                    priority: 0,
                    weight: 50,
                    port: 5432,
                    target: "10-244-0-7.db.shop.svc.cluster.local".into()
                },
            ])
        );
        assert_eq!(
            v.lookup("5.0.244.10.in-addr.arpa", QueryType::Ptr),
            Lookup::Found(vec![RecordData::Ptr(
                "db-0.db.shop.svc.cluster.local".into()
            )])
        );
        // publishNotReadyAddresses answers not-ready endpoints too.
        v.apply_service(&service(json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true},
        })));
        assert_eq!(
            v.lookup("db-1.db.shop.svc.cluster.local", QueryType::A),
            Lookup::Found(vec![a("10.244.0.6")])
        );
        v.delete_slice("shop", "db-abc");
        assert_eq!(
            v.lookup("db.shop.svc.cluster.local", QueryType::A),
            Lookup::NxDomain
        );
    }

    #[test]
    fn external_names_unknown_names_and_other_zones() {
        let mut v = view();
        assert_eq!(
            v.lookup("ext.shop.svc.cluster.local", QueryType::A),
            Lookup::Found(vec![RecordData::Cname("example.com".into())])
        );
        assert_eq!(
            v.lookup("nope.shop.svc.cluster.local", QueryType::A),
            Lookup::NxDomain
        );
        assert_eq!(
            v.lookup("a.b.c.d.e.f.cluster.local", QueryType::A),
            Lookup::NxDomain
        );
        assert_eq!(
            v.lookup("shop.svc.cluster.local", QueryType::A),
            Lookup::NoData
        );
        assert_eq!(v.lookup("example.com", QueryType::A), Lookup::Outside);
        assert_eq!(v.lookup("notcluster.local", QueryType::A), Lookup::Outside);
        assert_eq!(
            v.lookup("dns-version.cluster.local", QueryType::Txt),
            Lookup::Found(vec![RecordData::Txt("1.1.0".into())])
        );
        assert_eq!(
            v.lookup("10-244-0-9.shop.pod.cluster.local", QueryType::A),
            Lookup::Found(vec![a("10.244.0.9")])
        );
        v.delete_service("shop", "web");
        assert_eq!(
            v.lookup("web.shop.svc.cluster.local", QueryType::A),
            Lookup::NxDomain
        );
    }

    #[test]
    fn nothing_is_denied_before_the_first_lists() {
        let mut v = DnsView::new("cluster.local");
        assert_eq!(
            v.lookup("web.shop.svc.cluster.local", QueryType::A),
            Lookup::NotReady
        );
        v.replace_services([].iter());
        assert_eq!(
            v.lookup("web.shop.svc.cluster.local", QueryType::A),
            Lookup::NotReady
        );
        v.replace_slices([].iter());
        assert_eq!(
            v.lookup("web.shop.svc.cluster.local", QueryType::A),
            Lookup::NxDomain
        );
    }

    #[test]
    fn reverse_names_parse_both_families() {
        assert_eq!(
            reverse_ip("4.3.2.1.in-addr.arpa"),
            Some("1.2.3.4".parse().unwrap())
        );
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(reverse_ip(v6), Some("fd00::1".parse().unwrap()));
        assert_eq!(reverse_ip("3.2.1.in-addr.arpa"), None);
        assert_eq!(reverse_ip("x.3.2.1.in-addr.arpa"), None);
    }
}
