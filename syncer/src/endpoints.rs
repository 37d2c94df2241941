//! Pure translation of the Endpoints of a selector-less virtual Service into
//! host Endpoints (a Service with a selector gets its host Endpoints from
//! the host's endpoints controller instead).
//!
//! The host copy gets [`host_meta`] metadata, so its name is the host name of
//! the Service and the two stay paired. Subsets are copied with addresses and
//! ports; `targetRef` (a virtual object the host cannot resolve) and
//! `nodeName` (a claim about the host) are dropped.
//!
//! Decision: an object with any forbidden address is **refused** as a whole
//! ([`TranslateError::Forbidden`], listing every bad address), not synced
//! with the address dropped: a partial copy would silently send traffic to
//! fewer backends than the tenant declared. Forbidden: what kube-apiserver's
//! endpoints validation (`validateNonSpecialIP`) rejects — unparsable,
//! unspecified (`0.0.0.0`, `::`), loopback (`127.0.0.0/8`, `::1`),
//! link-local (`169.254.0.0/16` incl. the cloud metadata address
//! `169.254.169.254`, `fe80::/10`), link-local multicast — and, stricter,
//! every multicast address (`224.0.0.0/4`, `ff00::/8`).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset, Endpoints};

pub use crate::error::TranslateError;
use crate::names::{Tenant, host_meta};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "Endpoints";

/// Why `ip` may not be an endpoint address, or `None` if it may.
pub fn forbidden_address_reason(ip: &str) -> Option<&'static str> {
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return Some("not a valid IP address");
    };
    if addr.is_unspecified() {
        return Some("may not be unspecified (0.0.0.0, ::)");
    }
    if addr.is_loopback() {
        return Some("may not be in the loopback range (127.0.0.0/8, ::1/128)");
    }
    if addr.is_multicast() {
        return Some("may not be in the multicast range (224.0.0.0/4, ff00::/8)");
    }
    let link_local = match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        return Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)");
    }
    None
}

fn clean(a: &EndpointAddress) -> EndpointAddress {
    EndpointAddress {
        ip: a.ip.clone(),
        hostname: a.hostname.clone(),
        node_name: None,
        target_ref: None,
    }
}

/// The host Endpoints for virtual Endpoints `ep` of `tenant` (see the module
/// docs).
///
/// Errors: [`TranslateError::Identity`] without name/namespace/uid;
/// [`TranslateError::Forbidden`] listing every forbidden address.
pub fn translate(tenant: &Tenant, ep: &Endpoints) -> Result<Endpoints, TranslateError> {
    let metadata = host_meta(tenant, KIND, &ep.metadata)?;
    let mut bad = Vec::new();
    for s in ep.subsets.iter().flatten() {
        for a in s
            .addresses
            .iter()
            .flatten()
            .chain(s.not_ready_addresses.iter().flatten())
        {
            if let Some(why) = forbidden_address_reason(&a.ip) {
                bad.push(format!("{}: {why}", a.ip));
            }
        }
    }
    if !bad.is_empty() {
        return Err(TranslateError::Forbidden(format!(
            "endpoint addresses not allowed: {}",
            bad.join("; ")
        )));
    }
    let subsets = ep.subsets.as_ref().map(|subsets| {
        subsets
            .iter()
            .map(|s| EndpointSubset {
                addresses: s.addresses.as_ref().map(|v| v.iter().map(clean).collect()),
                not_ready_addresses: s
                    .not_ready_addresses
                    .as_ref()
                    .map(|v| v.iter().map(clean).collect()),
                ports: s.ports.clone(),
            })
            .collect()
    });
    Ok(Endpoints { metadata, subsets })
}

/// Whether the existing `host` Endpoints differ from `desired` (the output
/// of [`translate`]) in subsets, labels or annotations; an absent and an
/// empty list are equal, server-set fields are ignored.
pub fn needs_update(desired: &Endpoints, host: &Endpoints) -> bool {
    desired.subsets.clone().unwrap_or_default() != host.subsets.clone().unwrap_or_default()
        || desired.metadata.labels.clone().unwrap_or_default()
            != host.metadata.labels.clone().unwrap_or_default()
        || desired.metadata.annotations.clone().unwrap_or_default()
            != host.metadata.annotations.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EndpointPort, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ep(ips: &[&str]) -> Endpoints {
        Endpoints {
            metadata: ObjectMeta {
                name: Some("ext-db".into()),
                namespace: Some("team".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(
                    ips.iter()
                        .map(|ip| EndpointAddress {
                            ip: ip.to_string(),
                            node_name: Some("node-1".into()),
                            target_ref: Some(ObjectReference {
                                name: Some("victim".into()),
                                ..Default::default()
                            }),
                            hostname: Some("db".into()),
                        })
                        .collect(),
                ),
                not_ready_addresses: None,
                ports: Some(vec![EndpointPort {
                    port: 5432,
                    ..Default::default()
                }]),
            }]),
        }
    }

    #[test]
    fn addresses_kept_target_ref_and_node_name_dropped() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        let h = translate(&t, &ep(&["10.1.2.3", "2001:db8::1"])).unwrap();
        assert_eq!(h.metadata.name.as_deref(), Some("ext-db-x-team-x-vc"));
        let s = &h.subsets.as_ref().unwrap()[0];
        let addrs = s.addresses.as_ref().unwrap();
        assert_eq!(addrs.len(), 2);
        assert!(
            addrs
                .iter()
                .all(|a| a.target_ref.is_none() && a.node_name.is_none())
        );
        assert_eq!(addrs[0].hostname.as_deref(), Some("db"));
        assert_eq!(s.ports.as_ref().unwrap()[0].port, 5432);
        assert!(!needs_update(&h, &h.clone()));
        assert!(needs_update(
            &h,
            &translate(&t, &ep(&["10.1.2.4"])).unwrap()
        ));
    }

    #[test]
    fn special_addresses_are_refused() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "febf::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "239.1.1.1",
            "ff02::1",
            "not-an-ip",
        ] {
            let err = translate(&t, &ep(&["10.0.0.1", ip])).unwrap_err();
            assert!(
                matches!(&err, TranslateError::Forbidden(m) if m.contains(ip) && !m.contains("10.0.0.1")),
                "{ip}: {err}"
            );
        }
        for ok in ["10.0.0.1", "192.168.1.1", "fec0::1", "8.8.8.8"] {
            assert_eq!(forbidden_address_reason(ok), None, "{ok}");
        }
    }
}
