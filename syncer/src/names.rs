//! Host names and ownership markers: the contract between a virtual cluster
//! and the one host namespace it is synced into (issue 4, "names and markers
//! are a contract").
//!
//! Everything here is pure: the tenant is a value passed in, there is no
//! global state and no I/O.
//!
//! * [`host_name`] maps a namespaced virtual object to its host name
//!   (`NAME-x-NS-x-VC`, shortened with vcluster's `SafeConcatName` scheme).
//!   vcluster's scheme alone is not injective (`a-x-b` in `c` and `a` in
//!   `b-x-c` both join to `a-x-b-x-c-x-VC`), so a joined name with a `-x-`
//!   other than the two separators is always hashed, over an encoding that
//!   cannot collide; every unambiguous name stays vcluster-identical.
//! * [`host_meta`] builds a host object's metadata (name, namespace,
//!   translated labels and annotations, markers).
//! * [`markers`] builds the labels and annotations every host object carries.
//! * [`translate_labels`] copies tenant labels while dropping the reserved
//!   `vkube.dev` domain, so a tenant cannot forge markers.
//! * [`is_managed`] decides whether an existing host object is ours.
//!
//! Names are never parsed back: the reverse mapping (host → virtual) reads
//! the `vkube.dev/object-*` annotations ([`VirtualIdentity::from_host`]).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};
use vkube_core::validation::is_dns1123_label;

/// The label/annotation prefix reserved for vkube on the host, with its `/`.
pub const DOMAIN_PREFIX: &str = "vkube.dev/";

/// The reserved DNS domain; keys whose prefix is this domain or a subdomain
/// of it (e.g. `x.vkube.dev/k`) are never copied from a tenant.
pub const DOMAIN: &str = "vkube.dev";

/// Label: the name of the virtual cluster (`VC`) that created the host object.
pub const LABEL_MANAGED_BY: &str = "vkube.dev/managed-by";

/// Label: the virtual namespace (`NS`) of the object the host object mirrors.
pub const LABEL_NAMESPACE: &str = "vkube.dev/namespace";

/// Annotation: the virtual object's name.
pub const ANNOTATION_OBJECT_NAME: &str = "vkube.dev/object-name";

/// Annotation: the virtual object's namespace.
pub const ANNOTATION_OBJECT_NAMESPACE: &str = "vkube.dev/object-namespace";

/// Annotation: the virtual object's UID (distinguishes incarnations of one name).
pub const ANNOTATION_OBJECT_UID: &str = "vkube.dev/object-uid";

/// Annotation: the virtual object's kind, e.g. `Pod`, `ConfigMap`.
pub const ANNOTATION_OBJECT_KIND: &str = "vkube.dev/object-kind";

/// Annotation on a host pod: the keys of the annotations the tenant's pod
/// put there (as on the host, comma-separated, sorted). The host may add
/// annotations of its own to pods (admission webhooks, kubectl); this
/// record lets the syncer remove an annotation the tenant removed while
/// leaving the host's alone (vcluster records the same in
/// `vcluster.loft.sh/managed-annotations`).
pub const ANNOTATION_MANAGED_ANNOTATIONS: &str = "vkube.dev/managed-annotations";

/// Separator between name, namespace and virtual-cluster name in host names.
pub const NAME_SEPARATOR: &str = "-x-";

/// Host names longer than this are shortened (DNS-1123 label length).
pub const MAX_HOST_NAME_LENGTH: usize = 63;

/// Characters of the full name kept when shortening (vcluster: 52).
pub const TRUNCATED_PREFIX_LENGTH: usize = 52;

/// Hex characters of the SHA-256 of the full name appended when shortening.
pub const HASH_HEX_LENGTH: usize = 10;

/// Errors building names or markers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamesError {
    /// The virtual-cluster name is not a DNS-1123 label (it is used as a
    /// label value and inside host names).
    #[error("invalid virtual cluster name {name:?}: {}", reasons.join("; "))]
    InvalidTenantName {
        /// The rejected name.
        name: String,
        /// Messages from `vkube_core::validation`.
        reasons: Vec<String>,
    },
    /// The host namespace is not a DNS-1123 label.
    #[error("invalid host namespace {namespace:?}: {}", reasons.join("; "))]
    InvalidHostNamespace {
        /// The rejected namespace.
        namespace: String,
        /// Messages from `vkube_core::validation`.
        reasons: Vec<String>,
    },
    /// The virtual object's metadata lacks a field the markers need.
    #[error("virtual object metadata has no {0}")]
    MissingField(&'static str),
}

/// One virtual cluster and the host namespace it syncs into.
///
/// Both are validated DNS-1123 labels, so `name` is also a valid label value
/// for [`LABEL_MANAGED_BY`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    name: String,
    host_namespace: String,
}

impl Tenant {
    /// Builds a tenant; errors if `name` or `host_namespace` is not a
    /// DNS-1123 label ([`NamesError::InvalidTenantName`],
    /// [`NamesError::InvalidHostNamespace`]).
    pub fn new(
        name: impl Into<String>,
        host_namespace: impl Into<String>,
    ) -> Result<Self, NamesError> {
        let name = name.into();
        let host_namespace = host_namespace.into();
        let reasons = is_dns1123_label(&name);
        if !reasons.is_empty() {
            return Err(NamesError::InvalidTenantName { name, reasons });
        }
        let reasons = is_dns1123_label(&host_namespace);
        if !reasons.is_empty() {
            return Err(NamesError::InvalidHostNamespace {
                namespace: host_namespace,
                reasons,
            });
        }
        Ok(Self {
            name,
            host_namespace,
        })
    }

    /// The virtual cluster's name (`VC`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host namespace every synced object lives in.
    pub fn host_namespace(&self) -> &str {
        &self.host_namespace
    }
}

/// The host name of namespaced virtual object `name` in virtual namespace
/// `namespace`, built from the joined string `S = NAME-x-NS-x-VC`.
///
/// * `S` is **unambiguous** when it contains exactly two occurrences of
///   `-x-` (overlapping ones counted), i.e. only the two separators. Then
///   the result is `S` if it has at most 63 characters, else the first 52
///   characters of `S`, `-`, and the first 10 hex characters of the SHA-256
///   of `S`, with every `.-` replaced by `-` (a cut right after a dot would
///   otherwise leave an invalid subdomain). This is vcluster's
///   `SafeConcatName` exactly (loft-sh/vcluster, `translate` package), so
///   tooling written for vcluster carries over for every such input.
/// * `S` is **ambiguous** otherwise (a `-x-` inside a name, or straddling a
///   separator as in name `a-x` + `-x-`): `S` alone does not determine the
///   input, e.g. `(ns "c", name "a-x-b")` and `(ns "b-x-c", name "a")` both
///   join to `a-x-b-x-c-x-VC`. Such inputs always get the hashed form, with
///   the first 52 characters of `S` as the prefix but the hash taken over
///   `NAME/NS/VC`: `/` is invalid in all three parts, so that encoding is
///   injective and never equals any `S`.
///
/// Within one virtual cluster the result is therefore injective up to
/// collisions of the 40-bit truncated SHA-256 between two hashed names
/// (vcluster accepts the same risk); [`is_managed`] checks the annotations,
/// so even such a collision makes the second object unsyncable (`NotOurs`),
/// never lets it overwrite the first.
///
/// Shapes: at most 63 characters; a DNS-1123 label `name` gives a DNS-1123
/// label; a DNS-1123 subdomain `name` (e.g. a ConfigMap `a.b`) gives a
/// subdomain. For valid Kubernetes names (ASCII) the cut is by byte as in
/// Go; a non-ASCII input is cut at the nearest char boundary below 52
/// instead of panicking.
pub fn host_name(tenant: &Tenant, namespace: &str, name: &str) -> String {
    let full = [name, namespace, tenant.name()].join(NAME_SEPARATOR);
    let ambiguous = separator_count(&full) != 2;
    if !ambiguous && full.len() <= MAX_HOST_NAME_LENGTH {
        return full;
    }
    let mut cut = TRUNCATED_PREFIX_LENGTH.min(full.len());
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = if ambiguous {
        Sha256::digest([name, namespace, tenant.name()].join("/").as_bytes())
    } else {
        Sha256::digest(full.as_bytes())
    };
    let hash = hex(&digest);
    format!("{}-{}", &full[..cut], &hash[..HASH_HEX_LENGTH]).replace(".-", "-")
}

/// Occurrences of [`NAME_SEPARATOR`] in `s`, overlapping ones counted
/// (`-x-x-` has two).
fn separator_count(s: &str) -> usize {
    s.as_bytes()
        .windows(NAME_SEPARATOR.len())
        .filter(|w| *w == NAME_SEPARATOR.as_bytes())
        .count()
}

/// Metadata for the host copy of virtual object `meta` of `kind`: name
/// [`host_name`], namespace the tenant's host namespace, labels and
/// annotations = [`translate_labels`] of the virtual ones plus
/// [`identity_markers`]. Nothing else (uid, resourceVersion,
/// ownerReferences, managedFields, finalizers, timestamps, generateName) is
/// carried over. Errors as [`VirtualIdentity::from_meta`].
pub fn host_meta(tenant: &Tenant, kind: &str, meta: &ObjectMeta) -> Result<ObjectMeta, NamesError> {
    let id = VirtualIdentity::from_meta(kind, meta)?;
    let m = identity_markers(tenant, &id);
    let mut labels = translate_labels(tenant, &meta.labels.clone().unwrap_or_default());
    labels.extend(m.labels);
    let mut annotations = translate_labels(tenant, &meta.annotations.clone().unwrap_or_default());
    annotations.extend(m.annotations);
    Ok(ObjectMeta {
        name: Some(host_name(tenant, &id.namespace, &id.name)),
        namespace: Some(tenant.host_namespace().to_string()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..Default::default()
    })
}

/// Lower-case hex of `bytes` (explicit so it works with any sha2 output type).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Who a host object mirrors: read from a virtual object's metadata
/// ([`VirtualIdentity::from_meta`]) or back from a host object's annotations
/// ([`VirtualIdentity::from_host`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualIdentity {
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Virtual namespace.
    pub namespace: String,
    /// Virtual name.
    pub name: String,
    /// Virtual UID.
    pub uid: String,
}

impl VirtualIdentity {
    /// Reads the identity of a virtual object. Errors with
    /// [`NamesError::MissingField`] (`"name"`, `"namespace"`, `"uid"`) when
    /// one is absent or empty: an object read from the virtual API server
    /// always has all three.
    pub fn from_meta(kind: &str, meta: &ObjectMeta) -> Result<Self, NamesError> {
        let field = |v: &Option<String>, what: &'static str| match v.as_deref() {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(NamesError::MissingField(what)),
        };
        Ok(Self {
            kind: kind.to_string(),
            namespace: field(&meta.namespace, "namespace")?,
            name: field(&meta.name, "name")?,
            uid: field(&meta.uid, "uid")?,
        })
    }

    /// The reverse mapping: the identity recorded in a host object's
    /// `vkube.dev/object-*` annotations, or `None` if any is missing. Does
    /// not decide ownership; use [`is_managed`] for that.
    pub fn from_host(host: &ObjectMeta) -> Option<Self> {
        let a = host.annotations.as_ref()?;
        Some(Self {
            kind: a.get(ANNOTATION_OBJECT_KIND)?.clone(),
            namespace: a.get(ANNOTATION_OBJECT_NAMESPACE)?.clone(),
            name: a.get(ANNOTATION_OBJECT_NAME)?.clone(),
            uid: a.get(ANNOTATION_OBJECT_UID)?.clone(),
        })
    }
}

/// The marker labels and annotations of a host object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Markers {
    /// `vkube.dev/managed-by=VC`, `vkube.dev/namespace=NS`.
    pub labels: BTreeMap<String, String>,
    /// `vkube.dev/object-{name,namespace,uid,kind}`.
    pub annotations: BTreeMap<String, String>,
}

/// The markers for the host copy of a virtual object of `kind` with metadata
/// `meta` (issue 4): labels [`LABEL_MANAGED_BY`]`=VC` and
/// [`LABEL_NAMESPACE`]`=NS`; annotations [`ANNOTATION_OBJECT_NAME`],
/// [`ANNOTATION_OBJECT_NAMESPACE`], [`ANNOTATION_OBJECT_UID`],
/// [`ANNOTATION_OBJECT_KIND`]. Errors as [`VirtualIdentity::from_meta`].
pub fn markers(tenant: &Tenant, kind: &str, meta: &ObjectMeta) -> Result<Markers, NamesError> {
    Ok(identity_markers(
        tenant,
        &VirtualIdentity::from_meta(kind, meta)?,
    ))
}

/// [`markers`] for an identity already read.
pub fn identity_markers(tenant: &Tenant, id: &VirtualIdentity) -> Markers {
    let labels = BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), tenant.name().to_string()),
        (LABEL_NAMESPACE.to_string(), id.namespace.clone()),
    ]);
    let annotations = BTreeMap::from([
        (ANNOTATION_OBJECT_NAME.to_string(), id.name.clone()),
        (
            ANNOTATION_OBJECT_NAMESPACE.to_string(),
            id.namespace.clone(),
        ),
        (ANNOTATION_OBJECT_UID.to_string(), id.uid.clone()),
        (ANNOTATION_OBJECT_KIND.to_string(), id.kind.clone()),
    ]);
    Markers {
        labels,
        annotations,
    }
}

/// Whether a label or annotation key is in the reserved `vkube.dev` domain:
/// its prefix (before `/`) is `vkube.dev` or ends with `.vkube.dev`. The
/// comparison ignores ASCII case, although valid prefixes are lower case.
pub fn is_reserved_key(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    let prefix = prefix.to_ascii_lowercase();
    prefix == DOMAIN || prefix.ends_with(&format!(".{DOMAIN}"))
}

/// The host labels for a tenant's labels: every key is copied unchanged
/// except reserved ones ([`is_reserved_key`]), which are **dropped**.
///
/// Decision: drop rather than move to another prefix. Any moved-to prefix is
/// also settable by the tenant directly, so moving is not injective and only
/// adds a second namespace to defend; dropping makes forging another
/// tenant's (or our own) markers impossible by construction. Consequence for
/// later syncers: a tenant selector on a `vkube.dev` key cannot be honoured
/// on the host. The caller adds [`markers`] after this.
///
/// `_tenant` is taken so the signature stays stable if translation becomes
/// tenant-dependent; today it is not.
pub fn translate_labels(
    _tenant: &Tenant,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !is_reserved_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Records the keys of `annotations` (the tenant's, before markers are
/// added) in [`ANNOTATION_MANAGED_ANNOTATIONS`], comma-separated and sorted,
/// so [`keep_host_annotations`] can tell them from the host's later; no
/// record when there are none.
pub fn record_managed_annotations(annotations: &mut BTreeMap<String, String>) {
    if !annotations.is_empty() {
        let keys: Vec<&str> = annotations.keys().map(String::as_str).collect();
        let keys = keys.join(",");
        annotations.insert(ANNOTATION_MANAGED_ANNOTATIONS.into(), keys);
    }
}

/// The annotations to write over host object `host`: `desired` (the
/// tenant's plus the markers) and every annotation the host itself added
/// (admission, the host's controllers, kubectl), so the syncer never fights
/// the host. Host annotations the tenant put there before (recorded in
/// [`ANNOTATION_MANAGED_ANNOTATIONS`] by [`record_managed_annotations`]) are
/// the tenant's to remove; a host object written before that record existed
/// keeps all. Reserved keys come from `desired` only.
pub fn keep_host_annotations(
    mut desired: BTreeMap<String, String>,
    host: &ObjectMeta,
) -> BTreeMap<String, String> {
    let host_ann = host.annotations.as_ref();
    let tenant_before: Option<std::collections::BTreeSet<&str>> = host_ann
        .and_then(|a| a.get(ANNOTATION_MANAGED_ANNOTATIONS))
        .map(|keys| keys.split(',').collect());
    for (k, v) in host_ann.into_iter().flatten() {
        let tenants = tenant_before
            .as_ref()
            .is_some_and(|t| t.contains(k.as_str()));
        if !is_reserved_key(k) && !tenants {
            desired.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    desired
}

/// Why a host object is not ours ([`Ownership::NotOurs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// It is in another namespace than the tenant's host namespace.
    Namespace,
    /// Its name is not `host_name(tenant, ns, name)` for the identity.
    Name,
    /// The `vkube.dev/managed-by` label is absent or names another tenant.
    ManagedBy,
    /// The `vkube.dev/namespace` label is absent or differs.
    NamespaceLabel,
    /// A `vkube.dev/object-*` annotation (the key given) is absent or differs.
    Annotation(&'static str),
}

/// The verdict of [`is_managed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// No host object exists: the syncer may create it.
    Absent,
    /// The host object is ours and mirrors this incarnation (same UID).
    Owned,
    /// The host object is ours and mirrors this virtual name, but an earlier
    /// incarnation (its UID annotation differs): the engine should delete
    /// and recreate it. Without this state a virtual object recreated under
    /// the same name could never be synced again.
    Stale {
        /// The UID recorded on the host.
        host_uid: String,
    },
    /// Not ours: never modify or delete it.
    NotOurs(Mismatch),
}

/// Decides whether `host` (the host object at the expected host name, or
/// `None` if there is none) belongs to `tenant` as the copy of `expected`.
///
/// Ours means (issue 4): in the tenant's host namespace, named
/// `host_name(tenant, expected.namespace, expected.name)`, labelled
/// `vkube.dev/managed-by=VC` and `vkube.dev/namespace=NS`, and annotated
/// with `object-name`, `object-namespace` and `object-kind` equal to
/// `expected`. Checks run in that order and the first failure is reported.
/// All of that holding but `object-uid` differing gives
/// [`Ownership::Stale`]; a missing `object-uid` is `NotOurs`.
pub fn is_managed(
    tenant: &Tenant,
    host: Option<&ObjectMeta>,
    expected: &VirtualIdentity,
) -> Ownership {
    let Some(host) = host else {
        return Ownership::Absent;
    };
    let not_ours = Ownership::NotOurs;
    if host.namespace.as_deref() != Some(tenant.host_namespace()) {
        return not_ours(Mismatch::Namespace);
    }
    if host.name.as_deref() != Some(host_name(tenant, &expected.namespace, &expected.name).as_str())
    {
        return not_ours(Mismatch::Name);
    }
    let label = |k: &str| {
        host.labels
            .as_ref()
            .and_then(|l| l.get(k))
            .map(String::as_str)
    };
    if label(LABEL_MANAGED_BY) != Some(tenant.name()) {
        return not_ours(Mismatch::ManagedBy);
    }
    if label(LABEL_NAMESPACE) != Some(expected.namespace.as_str()) {
        return not_ours(Mismatch::NamespaceLabel);
    }
    let annotation = |k: &str| {
        host.annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .map(String::as_str)
    };
    for (key, want) in [
        (ANNOTATION_OBJECT_NAME, &expected.name),
        (ANNOTATION_OBJECT_NAMESPACE, &expected.namespace),
        (ANNOTATION_OBJECT_KIND, &expected.kind),
    ] {
        if annotation(key) != Some(want.as_str()) {
            return not_ours(Mismatch::Annotation(key));
        }
    }
    match annotation(ANNOTATION_OBJECT_UID) {
        Some(uid) if uid == expected.uid => Ownership::Owned,
        Some(uid) if !uid.is_empty() => Ownership::Stale {
            host_uid: uid.to_string(),
        },
        _ => not_ours(Mismatch::Annotation(ANNOTATION_OBJECT_UID)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use vkube_core::validation::{is_dns1123_subdomain, is_qualified_name, is_valid_label_value};

    fn tenant(name: &str) -> Tenant {
        Tenant::new(name, format!("host-{name}")).unwrap()
    }

    /// Deterministic generator (xorshift) so the "property" loops are
    /// reproducible without a proptest dependency.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// A DNS-1123 label of length 1..=max.
        fn label(&mut self, max: usize) -> String {
            const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            const INNER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
            let len = 1 + self.below(max);
            (0..len)
                .map(|i| {
                    let set = if i == 0 || i == len - 1 { ALNUM } else { INNER };
                    set[self.below(set.len())] as char
                })
                .collect()
        }
        /// A DNS-1123 subdomain made of 1..=4 labels, at most 253 bytes.
        fn subdomain(&mut self) -> String {
            let parts = 1 + self.below(4);
            let s = (0..parts)
                .map(|_| self.label(63))
                .collect::<Vec<_>>()
                .join(".");
            s[..s.len().min(200)]
                .trim_end_matches(['.', '-'])
                .to_string()
        }
    }

    fn meta(ns: &str, name: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    /// A host object exactly as the syncer would create it.
    fn host_meta(t: &Tenant, id: &VirtualIdentity) -> ObjectMeta {
        let m = identity_markers(t, id);
        ObjectMeta {
            namespace: Some(t.host_namespace().into()),
            name: Some(host_name(t, &id.namespace, &id.name)),
            labels: Some(m.labels),
            annotations: Some(m.annotations),
            ..Default::default()
        }
    }

    fn id(ns: &str, name: &str, uid: &str) -> VirtualIdentity {
        VirtualIdentity::from_meta("Pod", &meta(ns, name, uid)).unwrap()
    }

    #[test]
    fn tenant_rejects_invalid_names() {
        assert!(matches!(
            Tenant::new("Bad_Name", "ns"),
            Err(NamesError::InvalidTenantName { .. })
        ));
        assert!(matches!(
            Tenant::new("a.b", "ns"),
            Err(NamesError::InvalidTenantName { .. })
        ));
        assert!(matches!(
            Tenant::new("vc", ""),
            Err(NamesError::InvalidHostNamespace { .. })
        ));
        let t = Tenant::new("vc", "team-a").unwrap();
        assert_eq!((t.name(), t.host_namespace()), ("vc", "team-a"));
    }

    #[test]
    fn short_names_are_plain_concatenation() {
        let t = tenant("vc1");
        assert_eq!(host_name(&t, "default", "web"), "web-x-default-x-vc1");
        assert_eq!(
            host_name(&t, "kube-system", "cfg.v1"),
            "cfg.v1-x-kube-system-x-vc1"
        );
    }

    #[test]
    fn exactly_63_is_kept_64_is_hashed() {
        let t = tenant("vc");
        // "-x-" + "ns" + "-x-" + "vc" = 10 characters of overhead.
        let n53 = "a".repeat(53);
        assert_eq!(host_name(&t, "ns", &n53).len(), 63);
        assert_eq!(host_name(&t, "ns", &n53), format!("{n53}-x-ns-x-vc"));
        let n54 = "a".repeat(54);
        let h = host_name(&t, "ns", &n54);
        assert_eq!(h.len(), 63);
        assert_eq!(&h[..53], format!("{}-", "a".repeat(52)));
    }

    #[test]
    fn long_name_matches_vcluster_safe_concat_name() {
        // Expected values computed independently (Python hashlib):
        // full[:52] + "-" + sha256(full).hexdigest()[:10].
        let t = tenant("vc");
        assert_eq!(
            host_name(&t, "ns", &"b".repeat(60)),
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-20952b55ed"
        );
        let t = tenant("tenant-one");
        assert_eq!(
            host_name(
                &t,
                "production",
                "my-very-long-deployment-name-abcdef-12345"
            ),
            "my-very-long-deployment-name-abcdef-12345-x-producti-52d1d8f646"
        );
        // SHA-256("abc") known-answer test of the hex encoder.
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cut_after_a_dot_drops_the_dot() {
        let t = tenant("vc");
        // The 52nd character is a dot: vcluster replaces ".-" with "-".
        let name = format!("{}.{}", "a".repeat(51), "b".repeat(30));
        let h = host_name(&t, "ns", &name);
        assert!(!h.contains(".-"), "{h}");
        assert_eq!(h.len(), 62);
        assert!(is_dns1123_subdomain(&h).is_empty(), "{h}");
    }

    /// Checks the output shape of one input and records it; panics if a
    /// distinct input already produced the same host name.
    fn record(
        seen: &mut HashMap<String, (String, String, String)>,
        vc: &Tenant,
        ns: &str,
        name: &str,
    ) {
        let h = host_name(vc, ns, name);
        assert!(h.len() <= MAX_HOST_NAME_LENGTH, "{h}");
        if is_dns1123_label(name).is_empty() {
            assert!(is_dns1123_label(&h).is_empty(), "{name} in {ns} -> {h}");
        }
        if is_dns1123_subdomain(name).is_empty() {
            assert!(is_dns1123_subdomain(&h).is_empty(), "{name} in {ns} -> {h}");
        }
        assert_eq!(h, host_name(vc, ns, name), "deterministic");
        let input = (vc.name().to_string(), ns.to_string(), name.to_string());
        if let Some(prev) = seen.insert(h.clone(), input.clone()) {
            assert_eq!(prev, input, "collision on {h}");
        }
    }

    #[test]
    fn generated_host_names_are_valid_short_and_injective() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let tenants: Vec<Tenant> = ["vcluster-a", "x", "a-x", "x-b", "a-x-b", "vc"]
            .iter()
            .map(|n| tenant(n))
            .collect();
        let mut seen = HashMap::new();
        for i in 0..20_000 {
            let t = &tenants[g.below(tenants.len())];
            let ns = g.label(63);
            let name = if i % 2 == 0 {
                g.label(63)
            } else {
                g.subdomain()
            };
            record(&mut seen, t, &ns, &name);
        }
    }

    #[test]
    fn adversarial_host_names_are_injective() {
        // Inputs built from separator-like segments, so that many of them
        // join to the same `S`; lengths reach past 63 and up to 253.
        const SEGMENTS: &[&str] = &["x", "-x", "x-", "-x-", "a-x-b", "a", "b", "c", "-", "xx"];
        let mut g = Gen(42);
        let tenants: Vec<Tenant> = ["vc", "x", "a-x", "x-b", "a-x-b", "c-x-vc"]
            .iter()
            .map(|n| tenant(n))
            .collect();
        let mut seen = HashMap::new();
        let make = |g: &mut Gen, max: usize, dots: bool| -> Option<String> {
            let target = 1 + g.below(max);
            let mut s = String::new();
            while s.len() < target {
                s.push_str(SEGMENTS[g.below(SEGMENTS.len())]);
                if dots && g.below(8) == 0 {
                    s.push('.');
                }
            }
            let s = s.trim_matches(['-', '.']).to_string();
            let ok = if dots {
                is_dns1123_subdomain(&s).is_empty()
            } else {
                is_dns1123_label(&s).is_empty()
            };
            ok.then_some(s)
        };
        let mut checked = 0;
        // Joined strings S seen, to prove the generator really produces the
        // inputs the plain vcluster scheme would merge.
        let mut joined: HashMap<String, (String, String)> = HashMap::new();
        let mut plain_collisions = 0;
        while checked < 30_000 {
            let t = &tenants[g.below(tenants.len())];
            let max = [8, 30, 60, 70, 253][g.below(5)];
            let Some(ns) = make(&mut g, max.min(63), false) else {
                continue;
            };
            let dots = g.below(2) == 0;
            let Some(name) = make(&mut g, max, dots) else {
                continue;
            };
            record(&mut seen, t, &ns, &name);
            let s = [name.as_str(), &ns, t.name()].join(NAME_SEPARATOR);
            if let Some(prev) = joined.insert(s, (ns.clone(), name.clone()))
                && prev != (ns.clone(), name.clone())
            {
                plain_collisions += 1;
            }
            checked += 1;
        }
        assert!(
            plain_collisions > 100,
            "only {plain_collisions} adversarial pairs"
        );
        // The two documented collisions of the plain scheme are now distinct.
        for (ns, name) in [("c", "a-x-b"), ("b-x-c", "a"), ("b", "a-x"), ("x-b", "a")] {
            record(&mut seen, &tenants[0], ns, name);
        }
    }

    #[test]
    fn ambiguous_names_are_hashed_over_an_unambiguous_encoding() {
        let t = tenant("vc");
        // Expected values: S[:52] + "-" + sha256("NAME/NS/VC").hexdigest()[:10]
        // computed independently (Python hashlib).
        let a = host_name(&t, "c", "a-x-b");
        let b = host_name(&t, "b-x-c", "a");
        assert_ne!(a, b);
        assert_eq!(
            a,
            format!(
                "a-x-b-x-c-x-vc-{}",
                &hex(&Sha256::digest(b"a-x-b/c/vc"))[..10]
            )
        );
        assert_eq!(
            b,
            format!(
                "a-x-b-x-c-x-vc-{}",
                &hex(&Sha256::digest(b"a/b-x-c/vc"))[..10]
            )
        );
        assert_eq!(a, "a-x-b-x-c-x-vc-c22d7f10c7");
        assert_eq!(b, "a-x-b-x-c-x-vc-e80e4fb315");
        // Straddling a separator: "a-x" + "-x-" has an overlapping third.
        assert_ne!(host_name(&t, "b", "a-x"), host_name(&t, "x-b", "a"));
        assert_eq!(separator_count("a-x-x-b-x-vc"), 3);
        // A long ambiguous name keeps S's first 52 characters as prefix.
        let long = format!("{}-x-y", "n".repeat(60));
        let h = host_name(&t, "ns", &long);
        assert_eq!(h.len(), 63);
        assert_eq!(&h[..52], &format!("{long}-x-ns-x-vc")[..52]);
        // Unambiguous inputs are unchanged from vcluster.
        assert_eq!(host_name(&t, "default", "x-ray"), "x-ray-x-default-x-vc");
    }

    #[test]
    fn separator_ambiguity_no_longer_collides_and_is_managed_still_guards() {
        let t = tenant("vc");
        let first = id("c", "a-x-b", "uid-1");
        let second = id("b-x-c", "a", "uid-2");
        assert_ne!(host_name(&t, "c", "a-x-b"), host_name(&t, "b-x-c", "a"));
        // Even a host object placed at the second's name by someone else
        // with the first's markers is not the second's.
        let mut existing = host_meta(&t, &first);
        existing.name = Some(host_name(&t, "b-x-c", "a"));
        assert_eq!(
            is_managed(&t, Some(&existing), &second),
            Ownership::NotOurs(Mismatch::NamespaceLabel),
        );
    }

    #[test]
    fn host_meta_builds_name_markers_and_drops_server_fields() {
        let t = tenant("vc");
        let mut m = meta("team", "web", "u-1");
        m.labels = Some(BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            (LABEL_MANAGED_BY.to_string(), "other".to_string()),
        ]));
        m.annotations = Some(BTreeMap::from([("note".to_string(), "x".to_string())]));
        m.resource_version = Some("7".into());
        m.finalizers = Some(vec!["f".into()]);
        let h = super::host_meta(&t, "Service", &m).unwrap();
        assert_eq!(h.name.as_deref(), Some("web-x-team-x-vc"));
        assert_eq!(h.namespace.as_deref(), Some("host-vc"));
        let labels = h.labels.clone().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[LABEL_MANAGED_BY], "vc");
        let ann = h.annotations.clone().unwrap();
        assert_eq!(ann["note"], "x");
        assert_eq!(ann[ANNOTATION_OBJECT_KIND], "Service");
        assert_eq!(
            (h.uid, h.resource_version, h.finalizers),
            (None, None, None)
        );
        assert_eq!(
            super::host_meta(&t, "Service", &ObjectMeta::default()),
            Err(NamesError::MissingField("namespace"))
        );
    }

    #[test]
    fn markers_carry_identity_and_are_valid() {
        let t = tenant("vc");
        let m = markers(&t, "ConfigMap", &meta("team", "settings.v2", "u-1")).unwrap();
        assert_eq!(m.labels[LABEL_MANAGED_BY], "vc");
        assert_eq!(m.labels[LABEL_NAMESPACE], "team");
        assert_eq!(m.annotations[ANNOTATION_OBJECT_NAME], "settings.v2");
        assert_eq!(m.annotations[ANNOTATION_OBJECT_NAMESPACE], "team");
        assert_eq!(m.annotations[ANNOTATION_OBJECT_UID], "u-1");
        assert_eq!(m.annotations[ANNOTATION_OBJECT_KIND], "ConfigMap");
        for (k, v) in &m.labels {
            assert!(is_qualified_name(k).is_empty(), "{k}");
            assert!(is_valid_label_value(v).is_empty(), "{v}");
        }
        for k in m.annotations.keys() {
            assert!(is_qualified_name(k).is_empty(), "{k}");
        }
    }

    #[test]
    fn markers_require_name_namespace_uid() {
        let t = tenant("vc");
        let cases = [
            (
                ObjectMeta {
                    name: None,
                    ..meta("n", "x", "u")
                },
                "name",
            ),
            (
                ObjectMeta {
                    namespace: Some(String::new()),
                    ..meta("n", "x", "u")
                },
                "namespace",
            ),
            (
                ObjectMeta {
                    uid: None,
                    ..meta("n", "x", "u")
                },
                "uid",
            ),
        ];
        for (m, field) in cases {
            assert_eq!(markers(&t, "Pod", &m), Err(NamesError::MissingField(field)));
        }
    }

    #[test]
    fn reverse_mapping_reads_annotations_not_names() {
        let t = tenant("vc");
        let long = id("ns", &"z".repeat(80), "u");
        let host = host_meta(&t, &long);
        assert_eq!(VirtualIdentity::from_host(&host), Some(long));
        assert_eq!(VirtualIdentity::from_host(&ObjectMeta::default()), None);
    }

    #[test]
    fn translate_labels_drops_reserved_keys() {
        let t = tenant("vc");
        let input: BTreeMap<String, String> = [
            ("app", "web"),
            ("example.com/team", "a"),
            (LABEL_MANAGED_BY, "other-vc"),
            (LABEL_NAMESPACE, "victim"),
            ("vkube.dev/anything", "x"),
            ("sub.vkube.dev/k", "x"),
            ("VKUBE.DEV/k", "x"),
            ("notvkube.dev/k", "kept"),
            ("vkube.dev.example.com/k", "kept"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let out = translate_labels(&t, &input);
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "app",
                "example.com/team",
                "notvkube.dev/k",
                "vkube.dev.example.com/k"
            ]
        );
    }

    #[test]
    fn tenant_cannot_forge_another_tenants_markers() {
        // Tenant "evil" labels its object as if it belonged to tenant "good";
        // the host object it gets must still be recognisably evil's only.
        let good = Tenant::new("good", "shared").unwrap();
        let evil = Tenant::new("evil", "shared").unwrap();
        let forged: BTreeMap<String, String> = [
            (LABEL_MANAGED_BY.to_string(), "good".to_string()),
            (LABEL_NAMESPACE.to_string(), "prod".to_string()),
        ]
        .into();
        let vid = id("prod", "db", "u-evil");
        let mut labels = translate_labels(&evil, &forged);
        let m = identity_markers(&evil, &vid);
        labels.extend(m.labels);
        let host = ObjectMeta {
            namespace: Some("shared".into()),
            name: Some(host_name(&good, "prod", "db")),
            labels: Some(labels.clone()),
            annotations: Some(m.annotations),
            ..Default::default()
        };
        assert_eq!(labels[LABEL_MANAGED_BY], "evil");
        assert_eq!(
            is_managed(&good, Some(&host), &id("prod", "db", "u-evil")),
            Ownership::NotOurs(Mismatch::ManagedBy)
        );
        // Property: over many generated label sets, no output key is reserved.
        let mut g = Gen(7);
        for _ in 0..2_000 {
            let prefix = ["vkube.dev", "a.vkube.dev", "example.com", "x"][g.below(4)];
            let key = format!("{prefix}/{}", g.label(20));
            let out = translate_labels(&evil, &BTreeMap::from([(key.clone(), "v".to_string())]));
            assert!(out.keys().all(|k| !is_reserved_key(k)), "{key}");
            assert_eq!(out.is_empty(), prefix.ends_with("vkube.dev"), "{key}");
        }
    }

    #[test]
    fn is_managed_table() {
        let t = tenant("vc");
        let want = id("team", "web", "uid-1");
        let ours = host_meta(&t, &want);
        let with = |f: &dyn Fn(&mut ObjectMeta)| {
            let mut m = ours.clone();
            f(&mut m);
            m
        };
        let set_label = |k: &'static str, v: Option<&'static str>| {
            move |m: &mut ObjectMeta| {
                let l = m.labels.get_or_insert_default();
                match v {
                    Some(v) => l.insert(k.into(), v.into()),
                    None => l.remove(k),
                };
            }
        };
        let set_ann = |k: &'static str, v: Option<&'static str>| {
            move |m: &mut ObjectMeta| {
                let a = m.annotations.get_or_insert_default();
                match v {
                    Some(v) => a.insert(k.into(), v.into()),
                    None => a.remove(k),
                };
            }
        };
        let cases: Vec<(&str, Option<ObjectMeta>, Ownership)> = vec![
            ("absent", None, Ownership::Absent),
            ("as created", Some(ours.clone()), Ownership::Owned),
            (
                "extra tenant labels are fine",
                Some(with(&set_label("app", Some("web")))),
                Ownership::Owned,
            ),
            (
                "other namespace",
                Some(with(&|m| m.namespace = Some("elsewhere".into()))),
                Ownership::NotOurs(Mismatch::Namespace),
            ),
            (
                "other name",
                Some(with(&|m| m.name = Some("web-x-team-x-other".into()))),
                Ownership::NotOurs(Mismatch::Name),
            ),
            (
                "no managed-by",
                Some(with(&set_label(LABEL_MANAGED_BY, None))),
                Ownership::NotOurs(Mismatch::ManagedBy),
            ),
            (
                "managed by another tenant",
                Some(with(&set_label(LABEL_MANAGED_BY, Some("vc2")))),
                Ownership::NotOurs(Mismatch::ManagedBy),
            ),
            (
                "namespace label differs",
                Some(with(&set_label(LABEL_NAMESPACE, Some("other")))),
                Ownership::NotOurs(Mismatch::NamespaceLabel),
            ),
            (
                "name annotation differs",
                Some(with(&set_ann(ANNOTATION_OBJECT_NAME, Some("web2")))),
                Ownership::NotOurs(Mismatch::Annotation(ANNOTATION_OBJECT_NAME)),
            ),
            (
                "namespace annotation missing",
                Some(with(&set_ann(ANNOTATION_OBJECT_NAMESPACE, None))),
                Ownership::NotOurs(Mismatch::Annotation(ANNOTATION_OBJECT_NAMESPACE)),
            ),
            (
                "kind differs",
                Some(with(&set_ann(ANNOTATION_OBJECT_KIND, Some("Secret")))),
                Ownership::NotOurs(Mismatch::Annotation(ANNOTATION_OBJECT_KIND)),
            ),
            (
                "uid missing",
                Some(with(&set_ann(ANNOTATION_OBJECT_UID, None))),
                Ownership::NotOurs(Mismatch::Annotation(ANNOTATION_OBJECT_UID)),
            ),
            (
                "earlier incarnation",
                Some(with(&set_ann(ANNOTATION_OBJECT_UID, Some("uid-0")))),
                Ownership::Stale {
                    host_uid: "uid-0".into(),
                },
            ),
            (
                "no labels at all",
                Some(with(&|m| m.labels = None)),
                Ownership::NotOurs(Mismatch::ManagedBy),
            ),
        ];
        for (what, host, expected) in cases {
            assert_eq!(is_managed(&t, host.as_ref(), &want), expected, "{what}");
        }
    }
}
