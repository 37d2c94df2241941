//! The name translator (`names::host_name`): every synced object's host
//! name comes from tenant-chosen namespaces and names. For valid virtual
//! namespaces (DNS-1123 labels) and names (DNS-1123 subdomains): the host
//! name is at most 63 characters, a DNS-1123 label for a label name and a
//! subdomain otherwise, and two different objects never share one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vkube_core::validation::{is_dns1123_label, is_dns1123_subdomain};
use vkube_syncer::names::{Tenant, host_name};

fuzz_target!(|input: (&str, &str, &str, &str, &str)| {
    let (vc, ns_a, name_a, ns_b, name_b) = input;
    let Ok(tenant) = Tenant::new(vc, "vkube-host") else {
        return;
    };
    let valid = |ns: &str, name: &str| {
        is_dns1123_label(ns).is_empty() && is_dns1123_subdomain(name).is_empty()
    };
    let translate = |ns: &str, name: &str| {
        let host = host_name(&tenant, ns, name);
        assert!(host.len() <= 63, "{ns}/{name} → {host:?} is too long");
        if is_dns1123_label(name).is_empty() {
            assert_eq!(
                is_dns1123_label(&host),
                Vec::<String>::new(),
                "{ns}/{name} → {host:?}"
            );
        } else {
            assert_eq!(
                is_dns1123_subdomain(&host),
                Vec::<String>::new(),
                "{ns}/{name} → {host:?}"
            );
        }
        host
    };
    if !valid(ns_a, name_a) {
        return;
    }
    let a = translate(ns_a, name_a);
    if valid(ns_b, name_b) && (ns_a, name_a) != (ns_b, name_b) {
        let b = translate(ns_b, name_b);
        assert_ne!(
            a, b,
            "{ns_a}/{name_a} and {ns_b}/{name_b} share a host name"
        );
    }
});
