//! Pure translation of a virtual Pod into its host Pod (STYLE.md item 9).
//!
//! [`translate`] takes plain data (tenant, virtual pod, options) and returns
//! the host pod plus the ConfigMaps and Secrets it references, which is what
//! lets the engine sync those only when used. No client, no async, no I/O.
//!
//! What changes on the way to the host:
//! * metadata is rebuilt from scratch: host name ([`host_name`]) and host
//!   namespace, tenant labels and annotations minus the reserved `vkube.dev`
//!   domain ([`translate_labels`]), plus [`markers`]. uid, resourceVersion,
//!   generateName, ownerReferences, managedFields, finalizers and timestamps
//!   are not carried over;
//! * every ConfigMap/Secret name (configMap, secret and projected volumes,
//!   env `valueFrom`, `envFrom`, `imagePullSecrets`) is rewritten to the host
//!   name of that object **in the pod's own virtual namespace**: pod
//!   references carry no namespace, so a reference into another virtual
//!   namespace cannot be expressed;
//! * `persistentVolumeClaim` volumes name the claim's host name, and generic
//!   `ephemeral` volumes become `persistentVolumeClaim` volumes of the host
//!   copy of their `POD-VOLUME` claim ([`claim_volume`]);
//! * downward-API `fieldRef`s to `metadata.name`, `metadata.namespace` and
//!   `metadata.uid` read the `vkube.dev/object-*` annotations instead, so the
//!   workload still sees its virtual identity;
//! * `serviceAccountName` becomes the configured host service account,
//!   `automountServiceAccountToken: false`, `enableServiceLinks: false`;
//! * `hostname` defaults to the virtual name (when it is a DNS-1123 label) so
//!   the container's hostname does not become the host name;
//! * `priority` and `preemptionPolicy` are dropped (the host's Priority
//!   admission computes them from `priorityClassName`), which names the
//!   host copy of the tenant's class, or no class when classes are not
//!   synced ([`crate::priorityclass`]);
//! * `nodeName` is dropped (the host scheduler decides); a pod already
//!   bound in the virtual cluster is pinned to that node with required node
//!   affinity (`metadata.name In [node]`, as DaemonSet pods are);
//!   ephemeral containers (only addable through their subresource) and
//!   `status` are dropped.
//!
//! Hostile input is refused, not translated silently: see [`Violation`].
//! The volume types are an allowlist; anything else is
//! [`Violation::UnsupportedVolume`] until a syncer for it exists.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, EphemeralContainer, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, ObjectFieldSelector, Pod, PodCondition, PodDNSConfig, PodDNSConfigOption,
    PodSpec, PodStatus, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use vkube_core::validation::is_dns1123_label;

use crate::names::{
    ANNOTATION_OBJECT_NAME, ANNOTATION_OBJECT_NAMESPACE, ANNOTATION_OBJECT_UID, NamesError, Tenant,
    VirtualIdentity, host_name, identity_markers, translate_labels,
};

/// The kind recorded in the pod's `vkube.dev/object-kind` annotation.
pub const KIND: &str = "Pod";

/// Options for [`translate`]. `Default` is the safe configuration: the
/// host service account `vkube-workload-VC` and every `allow_*` off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranslateOptions {
    /// The host service account every host pod runs as; `None` means
    /// [`default_service_account`] (`vkube-workload-VC`).
    pub host_service_account: Option<String>,
    /// Allow `hostPath` volumes.
    pub allow_host_path: bool,
    /// Allow `hostNetwork`, `hostPID` and `hostIPC`.
    pub allow_host_namespaces: bool,
    /// Allow `securityContext.privileged: true` on containers.
    pub allow_privileged: bool,
    /// Allow `hostPort` on container ports.
    pub allow_host_ports: bool,
    /// The tenant's DNS server, which host pods resolve through
    /// ([`apply_tenant_dns`]); `None` leaves their DNS settings as the
    /// tenant wrote them.
    pub dns: Option<TenantDns>,
    /// Whether the tenant's PriorityClasses are synced: host pods then name
    /// their class's host copy, else no class
    /// ([`crate::priorityclass::host_priority_class_name`]).
    pub priority_classes: bool,
}

/// Where a tenant's pods resolve names: the tenant's own DNS server
/// (answering for its Services), reached at an address of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDns {
    /// The DNS server's address (the vkube server's host Service ClusterIP).
    pub nameserver: String,
    /// The tenant's cluster domain, e.g. `cluster.local`.
    pub cluster_domain: String,
}

/// How many nameservers and search domains a resolv.conf may hold
/// (kubelet's `validation.MaxDNSNameservers` and `MaxDNSSearchPaths`).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
/// The longest search list, in characters (kubelet's
/// `MaxDNSSearchListChars`, Kubernetes 1.28 and later).
const MAX_SEARCH_CHARS: usize = 2048;

/// Points a host pod's DNS at the tenant's server: what kubelet does for
/// `dnsPolicy: ClusterFirst` (`pkg/kubelet/network/dns`), written out as
/// `dnsPolicy: None` with the resolv.conf kubelet would build from the
/// tenant's cluster DNS: nameserver `dns.nameserver`, searches
/// `NS.svc.DOMAIN svc.DOMAIN DOMAIN`, `ndots:5`, with the pod's own
/// `dnsConfig` merged in as kubelet merges it (nameservers and searches
/// appended without duplicates, up to 3 and 32; options replaced by name).
/// `ClusterFirstWithHostNet` is the same; `ClusterFirst` with
/// `hostNetwork` falls back to the node's resolv.conf as kubelet does, and
/// `Default` and `None` are the tenant's choice: all three are left alone.
pub fn apply_tenant_dns(spec: &mut PodSpec, namespace: &str, dns: &TenantDns) {
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network == Some(true);
    let cluster = match policy {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    if !cluster {
        return;
    }
    let d = &dns.cluster_domain;
    let mut nameservers = vec![dns.nameserver.clone()];
    let mut searches = vec![
        format!("{namespace}.svc.{d}"),
        format!("svc.{d}"),
        d.clone(),
    ];
    let mut options = vec![PodDNSConfigOption {
        name: Some("ndots".into()),
        value: Some("5".into()),
    }];
    if let Some(own) = spec.dns_config.take() {
        for n in own.nameservers.into_iter().flatten() {
            if !nameservers.contains(&n) {
                nameservers.push(n);
            }
        }
        for s in own.searches.into_iter().flatten() {
            if !searches.contains(&s) {
                searches.push(s);
            }
        }
        for o in own.options.into_iter().flatten() {
            match options.iter_mut().find(|x| x.name == o.name) {
                Some(x) => *x = o,
                None => options.push(o),
            }
        }
    }
    nameservers.truncate(MAX_NAMESERVERS);
    searches.truncate(MAX_SEARCHES);
    // Drop trailing entries (the pod's own, the tenant's come first) until
    // the list fits, rather than have the host refuse the pod.
    while searches.len() > 1
        && searches.iter().map(|s| s.len() + 1).sum::<usize>() > MAX_SEARCH_CHARS
    {
        searches.pop();
    }
    spec.dns_policy = Some("None".into());
    spec.dns_config = Some(PodDNSConfig {
        nameservers: Some(nameservers),
        searches: Some(searches),
        options: Some(options),
    });
}

/// The default host service account of a tenant: `vkube-workload-VC`.
pub fn default_service_account(tenant: &Tenant) -> String {
    format!("vkube-workload-{}", tenant.name())
}

/// The kind of an object a pod references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReferenceKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

/// A virtual object the pod uses, which the engine must sync to the host
/// (under [`Reference::host_name`]) for the pod to start.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// ConfigMap or Secret.
    pub kind: ReferenceKind,
    /// Virtual namespace: always the pod's own.
    pub namespace: String,
    /// Virtual name.
    pub name: String,
}

impl Reference {
    /// The host name the translated pod uses for this object.
    pub fn host_name(&self, tenant: &Tenant) -> String {
        host_name(tenant, &self.namespace, &self.name)
    }
}

/// The output of [`translate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The pod to create in the tenant's host namespace.
    pub pod: Pod,
    /// Referenced ConfigMaps and Secrets, deduplicated and sorted (those
    /// of the ephemeral containers included).
    pub references: Vec<Reference>,
    /// The pod's ephemeral containers, translated: a pod is created
    /// without them, and they are added through the host pod's
    /// `ephemeralcontainers` subresource ([`ephemeral_to_add`]).
    pub ephemeral: Vec<EphemeralContainer>,
}

/// The translated ephemeral containers the host pod lacks (by name), in
/// the virtual pod's order: what to add through its `ephemeralcontainers`
/// subresource. Existing ones are never changed (the API forbids it).
pub fn ephemeral_to_add(translated: &[EphemeralContainer], host: &Pod) -> Vec<EphemeralContainer> {
    let present: BTreeSet<&str> = host
        .spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    translated
        .iter()
        .filter(|c| !present.contains(c.name.as_str()))
        .cloned()
        .collect()
}

/// One reason a pod may not run on the host as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A `hostPath` volume (unless [`TranslateOptions::allow_host_path`]).
    HostPath {
        /// Volume name.
        volume: String,
    },
    /// `hostNetwork: true`.
    HostNetwork,
    /// `hostPID: true`.
    HostPid,
    /// `hostIPC: true`.
    HostIpc,
    /// A privileged container (containers and init containers).
    Privileged {
        /// Container name.
        container: String,
    },
    /// A container port with `hostPort`.
    HostPort {
        /// Container name.
        container: String,
        /// The requested host port.
        port: i32,
    },
    /// A projected `serviceAccountToken`: it would mint a token for the
    /// *host* service account. Never allowed; virtual tokens are a later
    /// task.
    ServiceAccountTokenProjection {
        /// Volume name.
        volume: String,
    },
    /// A volume source the syncer does not translate (e.g.
    /// `nfs`, `csi`, projected `clusterTrustBundle`).
    UnsupportedVolume {
        /// Volume name.
        volume: String,
        /// The source field, as in the API (`nfs`, ...).
        source: &'static str,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::HostPath { volume } => write!(f, "volume {volume:?} uses hostPath"),
            Violation::HostNetwork => f.write_str("hostNetwork is not allowed"),
            Violation::HostPid => f.write_str("hostPID is not allowed"),
            Violation::HostIpc => f.write_str("hostIPC is not allowed"),
            Violation::Privileged { container } => {
                write!(f, "container {container:?} is privileged")
            }
            Violation::HostPort { container, port } => {
                write!(f, "container {container:?} asks for hostPort {port}")
            }
            Violation::ServiceAccountTokenProjection { volume } => write!(
                f,
                "volume {volume:?} projects a service account token (would be a host token)"
            ),
            Violation::UnsupportedVolume { volume, source } => {
                write!(f, "volume {volume:?} uses unsupported source {source}")
            }
        }
    }
}

/// Why a pod was not translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The virtual pod lacks name, namespace or uid.
    #[error("reading the virtual pod's identity: {0}")]
    Identity(#[from] NamesError),
    /// The virtual pod has no `spec`.
    #[error("the virtual pod has no spec")]
    MissingSpec,
    /// The pod asks for something the host must not grant. Every violation
    /// found is listed, so the tenant can fix them in one go.
    #[error("pod refused: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Forbidden(Vec<Violation>),
}

/// Translates virtual pod `virtual_pod` of `tenant` into its host pod and
/// the objects it references (see the module docs for every rewrite).
///
/// Errors: [`TranslateError::Identity`] without name/namespace/uid,
/// [`TranslateError::MissingSpec`] without a spec,
/// [`TranslateError::Forbidden`] listing every [`Violation`].
pub fn translate(
    tenant: &Tenant,
    virtual_pod: &Pod,
    opts: &TranslateOptions,
) -> Result<Translated, TranslateError> {
    let id = VirtualIdentity::from_meta(KIND, &virtual_pod.metadata)?;
    let spec = virtual_pod
        .spec
        .as_ref()
        .ok_or(TranslateError::MissingSpec)?;

    let violations = check(spec, opts);
    if !violations.is_empty() {
        return Err(TranslateError::Forbidden(violations));
    }

    let mut refs = Refs {
        tenant,
        namespace: &id.namespace,
        found: BTreeSet::new(),
    };
    let mut spec = spec.clone();

    for v in spec.volumes.iter_mut().flatten() {
        refs.volume(v);
        claim_volume(tenant, &id, v);
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        refs.container(c);
    }
    for s in spec.image_pull_secrets.iter_mut().flatten() {
        s.name = refs.rename(ReferenceKind::Secret, &s.name);
    }
    // Ephemeral containers get the same reference translation as the
    // others, but travel separately (they cannot be set on create). They
    // share a container's fields, so they are translated as one.
    let mut ephemeral = Vec::new();
    for ec in spec.ephemeral_containers.take().into_iter().flatten() {
        let target = ec.target_container_name.clone();
        let as_container: Result<Container, _> =
            serde_json::to_value(&ec).and_then(serde_json::from_value);
        let Ok(mut c) = as_container else { continue };
        refs.container(&mut c);
        let back: Result<EphemeralContainer, _> =
            serde_json::to_value(&c).and_then(serde_json::from_value);
        if let Ok(mut ec) = back {
            ec.target_container_name = target;
            ephemeral.push(ec);
        }
    }
    // Computed by the host's Priority admission from the class the pod
    // names; a value computed by the virtual cluster's would be refused
    // wherever the host's classes differ.
    spec.priority = None;
    spec.preemption_policy = None;
    spec.priority_class_name = crate::priorityclass::host_priority_class_name(
        tenant,
        spec.priority_class_name.as_deref(),
        opts.priority_classes,
    );
    // A pod bound in the virtual cluster already (a resumed pod, or one the
    // tenant created with a nodeName) runs on that node: the host scheduler
    // places it there through node affinity, as the DaemonSet controller
    // pins its pods, rather than by bypassing the scheduler.
    if let Some(node) = spec.node_name.take().filter(|n| !n.is_empty()) {
        pin_to_node(&mut spec, &node);
    }
    spec.service_account = None;
    spec.service_account_name = Some(
        opts.host_service_account
            .clone()
            .unwrap_or_else(|| default_service_account(tenant)),
    );
    spec.automount_service_account_token = Some(false);
    spec.enable_service_links = Some(false);
    if spec.hostname.is_none() && is_dns1123_label(&id.name).is_empty() {
        spec.hostname = Some(id.name.clone());
    }
    if let Some(dns) = &opts.dns {
        apply_tenant_dns(&mut spec, &id.namespace, dns);
    }

    let markers = identity_markers(tenant, &id);
    let mut labels = translate_labels(
        tenant,
        &virtual_pod.metadata.labels.clone().unwrap_or_default(),
    );
    labels.extend(markers.labels);
    // Annotations follow the same rule as labels: the reserved domain is
    // dropped, then the markers are added.
    let mut annotations = translate_labels(
        tenant,
        &virtual_pod.metadata.annotations.clone().unwrap_or_default(),
    );
    crate::names::record_managed_annotations(&mut annotations);
    annotations.extend(markers.annotations);

    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(host_name(tenant, &id.namespace, &id.name)),
            namespace: Some(tenant.host_namespace().to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    Ok(Translated {
        pod,
        references: refs.found.into_iter().collect(),
        ephemeral,
    })
}

/// Every violation in `spec` not allowed by `opts`, in spec order.
fn check(spec: &PodSpec, opts: &TranslateOptions) -> Vec<Violation> {
    let mut out = Vec::new();
    if !opts.allow_host_namespaces {
        for (set, v) in [
            (spec.host_network, Violation::HostNetwork),
            (spec.host_pid, Violation::HostPid),
            (spec.host_ipc, Violation::HostIpc),
        ] {
            if set == Some(true) {
                out.push(v);
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        match unsupported_source(v) {
            Some("hostPath") if opts.allow_host_path => {}
            Some("hostPath") => out.push(Violation::HostPath {
                volume: v.name.clone(),
            }),
            Some(source) => out.push(Violation::UnsupportedVolume {
                volume: v.name.clone(),
                source,
            }),
            None => {}
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if p.service_account_token.is_some() {
                out.push(Violation::ServiceAccountTokenProjection {
                    volume: v.name.clone(),
                });
            }
            for (set, source) in [
                (
                    p.cluster_trust_bundle.is_some(),
                    "projected.clusterTrustBundle",
                ),
                (p.pod_certificate.is_some(), "projected.podCertificate"),
            ] {
                if set {
                    out.push(Violation::UnsupportedVolume {
                        volume: v.name.clone(),
                        source,
                    });
                }
            }
        }
    }
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        let sc = c.security_context.as_ref();
        if !opts.allow_privileged && sc.and_then(|s| s.privileged) == Some(true) {
            out.push(Violation::Privileged {
                container: c.name.clone(),
            });
        }
        if !opts.allow_host_ports {
            for p in c.ports.iter().flatten() {
                if let Some(port) = p.host_port.filter(|&p| p != 0) {
                    out.push(Violation::HostPort {
                        container: c.name.clone(),
                        port,
                    });
                }
            }
        }
    }
    out
}

/// The API name of `v`'s source if it is not one the syncer translates
/// (`emptyDir`, `configMap`, `secret`, `projected`, `downwardAPI`, `image`,
/// `persistentVolumeClaim`, `ephemeral`).
/// `hostPath` is reported here too and decided by the caller.
fn unsupported_source(v: &Volume) -> Option<&'static str> {
    let others: [(bool, &'static str); 22] = [
        (v.host_path.is_some(), "hostPath"),
        (v.csi.is_some(), "csi"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.rbd.is_some(), "rbd"),
        (v.cephfs.is_some(), "cephfs"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.fc.is_some(), "fc"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.azure_file.is_some(), "azureFile"),
        (v.cinder.is_some(), "cinder"),
        (v.flocker.is_some(), "flocker"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
    ];
    others
        .into_iter()
        .find(|(set, _)| *set)
        .map(|(_, name)| name)
}

/// Rewrites a claim-backed volume of virtual pod `id` to the host claim:
/// a `persistentVolumeClaim` volume names the claim's host name (the claim
/// is synced by [`crate::persistentvolumeclaim`]); a generic `ephemeral`
/// volume becomes a `persistentVolumeClaim` volume of the host copy of the
/// claim the tenant's ephemeral-volume controller creates for it
/// (`POD-VOLUME`, as kube-controller-manager names it), so the host makes
/// no claim of its own that the tenant would not see.
fn claim_volume(tenant: &Tenant, id: &VirtualIdentity, v: &mut Volume) {
    if let Some(c) = v.persistent_volume_claim.as_mut() {
        c.claim_name = host_name(tenant, &id.namespace, &c.claim_name);
    } else if v.ephemeral.take().is_some() {
        let claim = format!("{}-{}", id.name, v.name);
        v.persistent_volume_claim = Some(
            k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                claim_name: host_name(tenant, &id.namespace, &claim),
                read_only: None,
            },
        );
    }
}

/// The virtual claims pod `pod` mounts through generic ephemeral volumes:
/// `POD-VOLUME` each, as the ephemeral-volume controller names them. The
/// host pod must wait until each exists and is controlled by this pod (a
/// kubelet refuses to start a pod on a claim it does not own; the syncer
/// must not mount a leftover claim of an earlier pod of the same name).
pub fn ephemeral_claims(pod: &Pod) -> Vec<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| v.ephemeral.is_some())
        .map(|v| format!("{name}-{}", v.name))
        .collect()
}

/// Collects references while rewriting names to host names.
struct Refs<'a> {
    tenant: &'a Tenant,
    namespace: &'a str,
    found: BTreeSet<Reference>,
}

impl Refs<'_> {
    /// Records `name` (in the pod's namespace) and returns its host name.
    fn rename(&mut self, kind: ReferenceKind, name: &str) -> String {
        self.found.insert(Reference {
            kind,
            namespace: self.namespace.to_string(),
            name: name.to_string(),
        });
        host_name(self.tenant, self.namespace, name)
    }

    fn volume(&mut self, v: &mut Volume) {
        if let Some(cm) = v.config_map.as_mut() {
            cm.name = self.rename(ReferenceKind::ConfigMap, &cm.name);
        }
        if let Some(name) = v.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            *name = self.rename(ReferenceKind::Secret, name);
        }
        for f in v
            .downward_api
            .iter_mut()
            .flat_map(|d| d.items.iter_mut().flatten())
        {
            if let Some(r) = f.field_ref.as_mut() {
                field_ref(r);
            }
        }
        for p in v
            .projected
            .iter_mut()
            .flat_map(|p| p.sources.iter_mut().flatten())
        {
            if let Some(cm) = p.config_map.as_mut() {
                cm.name = self.rename(ReferenceKind::ConfigMap, &cm.name);
            }
            if let Some(s) = p.secret.as_mut() {
                s.name = self.rename(ReferenceKind::Secret, &s.name);
            }
            for f in p
                .downward_api
                .iter_mut()
                .flat_map(|d| d.items.iter_mut().flatten())
            {
                if let Some(r) = f.field_ref.as_mut() {
                    field_ref(r);
                }
            }
        }
    }

    fn container(&mut self, c: &mut Container) {
        for e in c.env.iter_mut().flatten() {
            self.env(e);
        }
        for e in c.env_from.iter_mut().flatten() {
            self.env_from(e);
        }
    }

    fn env(&mut self, e: &mut EnvVar) {
        let Some(from) = e.value_from.as_mut() else {
            return;
        };
        if let Some(k) = from.config_map_key_ref.as_mut() {
            k.name = self.rename(ReferenceKind::ConfigMap, &k.name);
        }
        if let Some(k) = from.secret_key_ref.as_mut() {
            k.name = self.rename(ReferenceKind::Secret, &k.name);
        }
        if let Some(r) = from.field_ref.as_mut() {
            field_ref(r);
        }
    }

    fn env_from(&mut self, e: &mut EnvFromSource) {
        if let Some(r) = e.config_map_ref.as_mut() {
            r.name = self.rename(ReferenceKind::ConfigMap, &r.name);
        }
        if let Some(r) = e.secret_ref.as_mut() {
            r.name = self.rename(ReferenceKind::Secret, &r.name);
        }
    }
}

/// Points downward-API reads of the pod's own identity at the marker
/// annotations, which hold the virtual values (the host name, namespace and
/// uid would leak host details and confuse the workload).
fn field_ref(f: &mut ObjectFieldSelector) {
    let annotation = match f.field_path.as_str() {
        "metadata.name" => ANNOTATION_OBJECT_NAME,
        "metadata.namespace" => ANNOTATION_OBJECT_NAMESPACE,
        "metadata.uid" => ANNOTATION_OBJECT_UID,
        _ => return,
    };
    f.field_path = format!("metadata.annotations['{annotation}']");
}

/// Mount path of the service account token in every container, as the
/// ServiceAccount admission plugin mounts it (kubernetes.io "Configure
/// Service Accounts for Pods").
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Name of the volume [`inject_token`] adds (suffixed with `-N` if the
/// tenant already uses it).
pub const TOKEN_VOLUME: &str = "vkube-sa-token";

/// Host pod condition reason / virtual status reason of a pod the syncer
/// refused to run (pod security, hostile input); the Event reason too.
pub const REASON_SYNC_REFUSED: &str = crate::event::REASON_SYNC_REFUSED;

/// Whether the virtual pod should get a service account token: neither
/// the pod's `automountServiceAccountToken` nor (when the pod leaves it
/// unset) its service account's is `false` — the ServiceAccount admission
/// plugin's rule (the pod's setting wins).
pub fn wants_token(pod: &Pod, service_account_automount: Option<bool>) -> bool {
    crate::summary::wants_token(
        pod.spec
            .as_ref()
            .and_then(|s| s.automount_service_account_token),
        service_account_automount,
    )
}

/// The virtual service account a pod runs as: `serviceAccountName`, else
/// the deprecated `serviceAccount`, else `default`.
pub fn service_account_of(pod: &Pod) -> &str {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.service_account_name.as_deref())
        .or_else(|| spec.and_then(|s| s.service_account.as_deref()))
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// Adds to host pod `pod` a secret volume of host Secret `secret` (keys
/// `token`, `ca.crt`, `namespace`) mounted read-only at
/// [`TOKEN_MOUNT_PATH`] in every container and init container that does not
/// mount something there already (the token-Secret delivery,
/// `SyncerConfig::token_secrets`).
pub fn inject_token(pod: &mut Pod, secret: &str) {
    mount_token_volume(pod, |name| Volume {
        name,
        secret: Some(k8s_openapi::api::core::v1::SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    });
}

/// Adds to host pod `pod` a downwardAPI volume with the files `token`,
/// `ca.crt` and `namespace` of a service-account token mount, read from
/// the pod's own annotations [`crate::summary::ANNOTATION_SA_TOKEN`],
/// [`crate::summary::ANNOTATION_SA_CA`] and the namespace marker, mounted
/// read-only at [`TOKEN_MOUNT_PATH`] as [`inject_token`] mounts it. The
/// kubelet rewrites the files when the annotations change, so a refresh is
/// one patch of the pod (vcluster delivers tokens the same way); no host
/// Secret is written per pod.
pub fn inject_token_projection(pod: &mut Pod) {
    use k8s_openapi::api::core::v1::{
        DownwardAPIVolumeFile, DownwardAPIVolumeSource, ObjectFieldSelector,
    };
    let item = |path: &str, annotation: &str| DownwardAPIVolumeFile {
        path: path.to_string(),
        field_ref: Some(ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: format!("metadata.annotations['{annotation}']"),
        }),
        ..Default::default()
    };
    mount_token_volume(pod, |name| Volume {
        name,
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![
                item("token", crate::summary::ANNOTATION_SA_TOKEN),
                item("ca.crt", crate::summary::ANNOTATION_SA_CA),
                item("namespace", ANNOTATION_OBJECT_NAMESPACE),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    });
}

/// The annotations that carry a token to a host pod with
/// [`inject_token_projection`]'s volume: the token, the CA and when to
/// refresh them.
pub fn token_annotations(
    token: &str,
    ca: &str,
    refresh_at: jiff::Timestamp,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            crate::summary::ANNOTATION_SA_TOKEN.to_string(),
            token.to_string(),
        ),
        (crate::summary::ANNOTATION_SA_CA.to_string(), ca.to_string()),
        (
            crate::summary::ANNOTATION_SA_REFRESH_AT.to_string(),
            refresh_at.to_string(),
        ),
    ])
}

/// Whether annotation `key` is one of [`token_annotations`]'.
pub fn is_token_annotation(key: &str) -> bool {
    [
        crate::summary::ANNOTATION_SA_TOKEN,
        crate::summary::ANNOTATION_SA_CA,
        crate::summary::ANNOTATION_SA_REFRESH_AT,
    ]
    .contains(&key)
}

/// Adds the volume `volume(name)` (name [`TOKEN_VOLUME`], suffixed `-N`
/// if the tenant uses it) and mounts it at [`TOKEN_MOUNT_PATH`].
fn mount_token_volume(pod: &mut Pod, volume: impl FnOnce(String) -> Volume) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    let mut name = TOKEN_VOLUME.to_string();
    let mut n = 1;
    while volumes.iter().any(|v| v.name == name) {
        name = format!("{TOKEN_VOLUME}-{n}");
        n += 1;
    }
    volumes.push(volume(name.clone()));
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        if mounts
            .iter()
            .any(|m| m.mount_path.trim_end_matches('/') == TOKEN_MOUNT_PATH)
        {
            continue;
        }
        mounts.push(k8s_openapi::api::core::v1::VolumeMount {
            name: name.clone(),
            mount_path: TOKEN_MOUNT_PATH.to_string(),
            read_only: Some(true),
            ..Default::default()
        });
    }
}

/// Adds `vars` to every container and init container of host pod `pod`
/// that does not define a variable of the same name itself, ahead of the
/// container's own `env`: kubelet's rule for service variables
/// (`enableServiceLinks`) and the `kubernetes` Service's
/// `KUBERNETES_SERVICE_*`, which a container's explicit `env` overrides.
/// The engine passes [`crate::service::service_env`] of the pod's virtual
/// namespace and [`crate::service::kubernetes_service_env`] of the virtual
/// API server, since the host pod has `enableServiceLinks: false`.
pub fn inject_env_defaults(pod: &mut Pod, vars: &[EnvVar]) {
    if vars.is_empty() {
        return;
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        let own = c.env.take().unwrap_or_default();
        let mut env: Vec<EnvVar> = vars
            .iter()
            .filter(|v| !own.iter().any(|o| o.name == v.name))
            .cloned()
            .collect();
        env.extend(own);
        c.env = Some(env);
    }
}

/// The virtual pod status that mirrors host status `host`, given the
/// virtual pod's current status `current`; `None` if nothing changes.
///
/// Copied from the host: phase, conditions, podIP/podIPs, hostIP/hostIPs,
/// startTime, container/init-container/ephemeral-container statuses,
/// reason, message. Kept from the virtual pod: qosClass (the virtual API
/// server computed it from the same resources) and nominatedNodeName.
pub fn reflect_status(host: &PodStatus, current: Option<&PodStatus>) -> Option<PodStatus> {
    let current = current.cloned().unwrap_or_default();
    let want = PodStatus {
        phase: host.phase.clone(),
        conditions: host.conditions.clone(),
        pod_ip: host.pod_ip.clone(),
        pod_ips: host.pod_ips.clone(),
        host_ip: host.host_ip.clone(),
        host_ips: host.host_ips.clone(),
        start_time: host.start_time.clone(),
        container_statuses: host.container_statuses.clone(),
        init_container_statuses: host.init_container_statuses.clone(),
        ephemeral_container_statuses: host.ephemeral_container_statuses.clone(),
        reason: host.reason.clone(),
        message: host.message.clone(),
        resize: host.resize.clone(),
        resource_claim_statuses: None,
        ..current.clone()
    };
    (without_condition_times(&want) != without_condition_times(&current)).then_some(want)
}

/// `status` with the `lastProbeTime`/`lastTransitionTime` of its
/// conditions cleared, for comparisons: a condition whose type, status,
/// reason and message are unchanged is the same condition (the Pod
/// conditions docs: the transition time moves only when `status` does),
/// so a timestamp the virtual API server set itself (e.g. `PodScheduled`
/// written by the binding subresource) is no reason to write again.
fn without_condition_times(status: &PodStatus) -> PodStatus {
    let mut out = status.clone();
    for c in out.conditions.iter_mut().flatten() {
        c.last_probe_time = None;
        c.last_transition_time = None;
    }
    out
}

/// `current` as it will be once the pod is bound with the `binding`
/// subresource, which sets condition `PodScheduled=True` (as
/// kube-apiserver's binding storage does); for deciding whether a status
/// write is still needed after a binding. `None` means an empty status.
pub fn bound_status(current: Option<&PodStatus>) -> PodStatus {
    let mut out = current.cloned().unwrap_or_default();
    let conditions = out.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == "PodScheduled") {
        Some(c) => {
            c.status = "True".into();
            c.reason = None;
            c.message = None;
        }
        None => conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            ..Default::default()
        }),
    }
    out
}

/// The status of a virtual pod the syncer refuses to run: `Pending` (not
/// `Failed`, which would make a ReplicaSet replace it in a loop) with
/// reason [`REASON_SYNC_REFUSED`], `message`, and a `PodScheduled=False`
/// condition carrying both. `None` if `current` already says exactly that.
pub fn refused_status(current: Option<&PodStatus>, message: &str) -> Option<PodStatus> {
    let current = current.cloned().unwrap_or_default();
    let condition = PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some(REASON_SYNC_REFUSED.into()),
        message: Some(message.to_string()),
        ..Default::default()
    };
    let already = current.phase.as_deref() == Some("Pending")
        && current.reason.as_deref() == Some(REASON_SYNC_REFUSED)
        && current.message.as_deref() == Some(message)
        && current.conditions.iter().flatten().any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some(REASON_SYNC_REFUSED)
                && c.message.as_deref() == Some(message)
        });
    if already {
        return None;
    }
    let mut conditions: Vec<PodCondition> = current
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "PodScheduled")
        .collect();
    conditions.push(condition);
    Some(PodStatus {
        phase: Some("Pending".into()),
        reason: Some(REASON_SYNC_REFUSED.into()),
        message: Some(message.to_string()),
        conditions: Some(conditions),
        ..current
    })
}

/// Makes `spec` schedulable only onto node `node`: its required node
/// affinity becomes the single term `metadata.name In [node]` (the terms it
/// had are replaced; the node already satisfied them when the pod was bound),
/// as kube's `ReplaceDaemonSetPodNodeNameNodeAffinity` does.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_default();
    let node_affinity = affinity.node_affinity.get_or_insert_default();
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// Whether a pod has finished for good (`Succeeded` or `Failed`).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The status a paused pod shows while its host pod is created again:
/// `Pending`, keeping only the `PodScheduled` condition (it stays bound)
/// and the QoS class; IPs, start time and container states are the old host
/// pod's and are dropped until the new one reports.
pub fn resumed_status(current: Option<&PodStatus>) -> PodStatus {
    let current = current.cloned().unwrap_or_default();
    PodStatus {
        phase: Some("Pending".into()),
        conditions: Some(
            current
                .conditions
                .into_iter()
                .flatten()
                .filter(|c| c.type_ == "PodScheduled")
                .collect(),
        ),
        qos_class: current.qos_class,
        ..Default::default()
    }
}

/// Whether a virtual pod already ran on the host: the syncer bound it
/// (`spec.nodeName`) and reflected a host status (`hostIP`, or a phase past
/// `Pending`). Such a pod whose host pod is gone was deleted or evicted on
/// the host, and must not be created again.
pub fn was_synced_running(virtual_pod: &Pod) -> bool {
    let bound = virtual_pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let status = virtual_pod.status.as_ref();
    let ran = status.and_then(|s| s.host_ip.as_deref()).is_some()
        || matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Running" | "Succeeded" | "Failed")
        );
    bound && ran
}

/// Trims a host pod to what the engine reads from its cache: metadata
/// (the token and CA annotations emptied, their refresh time kept),
/// status, and of the spec only `nodeName`, `tolerations`,
/// `activeDeadlineSeconds` and container/init-container names and images
/// (what [`update_mutable`] compares). Saves most of a cached pod's memory;
/// an update then starts from a fresh GET of the full pod.
pub fn slim_host_pod(pod: &mut Pod) {
    // The token and CA (about 2.5 KiB) are not needed to compare or decide;
    // their refresh time is.
    for (k, v) in pod.metadata.annotations.iter_mut().flatten() {
        if is_token_annotation(k) && k != crate::summary::ANNOTATION_SA_REFRESH_AT {
            v.clear();
        }
    }
    let Some(spec) = pod.spec.take() else {
        return;
    };
    let slim = |c: &Container| Container {
        name: c.name.clone(),
        image: c.image.clone(),
        ..Default::default()
    };
    pod.spec = Some(PodSpec {
        containers: spec.containers.iter().map(slim).collect(),
        init_containers: spec
            .init_containers
            .as_ref()
            .map(|cs| cs.iter().map(slim).collect()),
        // Names only: enough to know which ephemeral containers exist.
        ephemeral_containers: spec.ephemeral_containers.map(|cs| {
            cs.into_iter()
                .map(|c| EphemeralContainer {
                    name: c.name,
                    ..Default::default()
                })
                .collect()
        }),
        node_name: spec.node_name,
        tolerations: spec.tolerations,
        active_deadline_seconds: spec.active_deadline_seconds,
        ..Default::default()
    });
}

/// Splits Pod Security violations into the pod's own and the names of the
/// ephemeral containers that violate (those are refused one by one; the
/// pod keeps running, as pod-security admission refuses only the
/// `ephemeralcontainers` update that adds them).
pub fn split_ephemeral_violations(
    spec: &PodSpec,
    violations: Vec<crate::security::PodSecurityViolation>,
) -> (
    Vec<crate::security::PodSecurityViolation>,
    Vec<(String, String)>,
) {
    let mut pod = Vec::new();
    let mut ephemeral: Vec<(String, String)> = Vec::new();
    for v in violations {
        let index = v
            .field
            .strip_prefix("spec.ephemeralContainers[")
            .and_then(|r| r.split(']').next())
            .and_then(|i| i.parse::<usize>().ok());
        let name = index.and_then(|i| {
            spec.ephemeral_containers
                .as_ref()
                .and_then(|cs| cs.get(i))
                .map(|c| c.name.clone())
        });
        match name {
            Some(n) => ephemeral.push((n, v.to_string())),
            None => pod.push(v),
        }
    }
    (pod, ephemeral)
}

/// The host pod after pushing the fields a tenant may change on a running
/// pod from `desired` (a fresh [`translate`] plus injections) onto `host`
/// (the live host pod): container and init-container images (by name),
/// `activeDeadlineSeconds`, tolerations (only additions are allowed by the
/// API, so `desired`'s list is taken when it extends `host`'s), labels and
/// annotations. `None` when nothing differs. The result keeps `host`'s
/// resourceVersion, so a PUT of it is an optimistic-concurrency update.
pub fn update_mutable(desired: &Pod, host: &Pod) -> Option<Pod> {
    let mut out = host.clone();
    let (Some(d), Some(h)) = (desired.spec.as_ref(), out.spec.as_mut()) else {
        return None;
    };
    for (want, have) in [
        (&d.containers, &mut h.containers),
        (
            d.init_containers.as_ref().unwrap_or(&Vec::new()),
            h.init_containers.get_or_insert_with(Vec::new),
        ),
    ] {
        for c in have.iter_mut() {
            if let Some(w) = want.iter().find(|w| w.name == c.name)
                && w.image != c.image
            {
                c.image.clone_from(&w.image);
            }
        }
    }
    if h.init_containers.as_ref().is_some_and(Vec::is_empty)
        && host
            .spec
            .as_ref()
            .is_some_and(|s| s.init_containers.is_none())
    {
        h.init_containers = None;
    }
    if d.active_deadline_seconds.is_some() {
        h.active_deadline_seconds = d.active_deadline_seconds;
    }
    let have = h.tolerations.clone().unwrap_or_default();
    let want = d.tolerations.clone().unwrap_or_default();
    if want.len() > have.len() && have.iter().all(|t| want.contains(t)) {
        h.tolerations = Some(want);
    }
    out.metadata.labels.clone_from(&desired.metadata.labels);
    // Labels are exactly the desired; annotations the host added are kept,
    // and so is the token the syncer put there (refreshed on its own).
    let mut annotations = crate::names::keep_host_annotations(
        desired.metadata.annotations.clone().unwrap_or_default(),
        &host.metadata,
    );
    for (k, v) in host.metadata.annotations.iter().flatten() {
        if is_token_annotation(k) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    out.metadata.annotations = Some(annotations);
    (out != *host).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{
        ANNOTATION_MANAGED_ANNOTATIONS, ANNOTATION_OBJECT_KIND, LABEL_MANAGED_BY, LABEL_NAMESPACE,
        Ownership, is_managed,
    };
    use serde_json::{Value, json};

    fn tenant() -> Tenant {
        Tenant::new("vc", "host-ns").unwrap()
    }

    /// A virtual pod `web` in namespace `team` with the given spec.
    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "uid-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn ok(p: &Pod) -> (Value, Vec<Reference>) {
        let t = translate(&tenant(), p, &TranslateOptions::default()).unwrap();
        (serde_json::to_value(&t.pod).unwrap(), t.references)
    }

    fn h(name: &str) -> String {
        host_name(&tenant(), "team", name)
    }

    fn r(kind: ReferenceKind, name: &str) -> Reference {
        Reference {
            kind,
            namespace: "team".into(),
            name: name.into(),
        }
    }

    #[test]
    fn ephemeral_containers_travel_separately_with_references_renamed() {
        let p = pod(json!({
            "containers": [{"name": "app", "image": "x"}],
            "ephemeralContainers": [{
                "name": "debugger", "image": "busybox", "targetContainerName": "app",
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}],
            }],
        }));
        let t = translate(&tenant(), &p, &TranslateOptions::default()).unwrap();
        assert!(t.pod.spec.as_ref().unwrap().ephemeral_containers.is_none());
        assert_eq!(t.ephemeral.len(), 1);
        let ec = &t.ephemeral[0];
        assert_eq!(ec.target_container_name.as_deref(), Some("app"));
        let env = &ec.env.as_ref().unwrap()[0];
        let name = &env
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name;
        assert_eq!(name, &h("creds"));
        assert!(t.references.contains(&r(ReferenceKind::Secret, "creds")));
        // Only those the host pod lacks are added.
        let mut host = t.pod.clone();
        assert_eq!(ephemeral_to_add(&t.ephemeral, &host).len(), 1);
        host.spec.as_mut().unwrap().ephemeral_containers = Some(t.ephemeral.clone());
        slim_host_pod(&mut host);
        assert!(ephemeral_to_add(&t.ephemeral, &host).is_empty());
    }

    #[test]
    fn ephemeral_violations_are_told_apart_from_the_pods() {
        let p = pod(json!({
            "containers": [{"name": "app", "image": "x"}],
            "ephemeralContainers": [
                {"name": "ok", "image": "busybox"},
                {"name": "root", "image": "busybox", "securityContext": {"privileged": true}},
            ],
        }));
        let spec = p.spec.as_ref().unwrap();
        let all = crate::security::check(crate::security::PodSecurityLevel::Baseline, spec);
        let (own, ephemeral) = split_ephemeral_violations(spec, all);
        assert!(own.is_empty(), "{own:?}");
        assert_eq!(ephemeral.len(), 1);
        assert_eq!(ephemeral[0].0, "root");
    }

    #[test]
    fn metadata_is_rebuilt_with_markers() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "team", "uid": "uid-1",
                "generateName": "we", "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": ["example.com/f"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": "rs", "uid": "u-rs"}],
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
                "labels": {"app": "web", "vkube.dev/managed-by": "other",
                           "vkube.dev/namespace": "victim"},
                "annotations": {"note": "x", "vkube.dev/object-uid": "forged"},
            },
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        }))
        .unwrap();
        let (v, _) = ok(&p);
        assert_eq!(
            v["metadata"],
            json!({
                "name": "web-x-team-x-vc",
                "namespace": "host-ns",
                "labels": {"app": "web", LABEL_MANAGED_BY: "vc", LABEL_NAMESPACE: "team"},
                "annotations": {
                    "note": "x",
                    ANNOTATION_MANAGED_ANNOTATIONS: "note",
                    ANNOTATION_OBJECT_NAME: "web",
                    ANNOTATION_OBJECT_NAMESPACE: "team",
                    ANNOTATION_OBJECT_UID: "uid-1",
                    ANNOTATION_OBJECT_KIND: "Pod",
                },
            })
        );
        assert_eq!(v.get("status"), None);
    }

    #[test]
    fn translated_pod_is_owned_by_the_tenant() {
        let t = translate(
            &tenant(),
            &pod(json!({"containers": []})),
            &Default::default(),
        )
        .unwrap();
        let id = VirtualIdentity::from_meta(KIND, &pod(json!({})).metadata).unwrap();
        assert_eq!(
            is_managed(&tenant(), Some(&t.pod.metadata), &id),
            Ownership::Owned
        );
    }

    #[test]
    fn spec_rewrites_table() {
        let sa = |o: &TranslateOptions| {
            let t = translate(&tenant(), &pod(json!({"containers": []})), o).unwrap();
            t.pod.spec.unwrap().service_account_name
        };
        assert_eq!(
            sa(&TranslateOptions::default()).as_deref(),
            Some("vkube-workload-vc")
        );
        let custom = TranslateOptions {
            host_service_account: Some("runner".into()),
            ..Default::default()
        };
        assert_eq!(sa(&custom).as_deref(), Some("runner"));

        // (case, virtual spec, JSON pointer into the host pod, expected value)
        let cases: Vec<(&str, Value, &str, Value)> = vec![
            (
                "tenant SA replaced",
                json!({"serviceAccountName": "admin"}),
                "/spec/serviceAccountName",
                json!("vkube-workload-vc"),
            ),
            (
                "deprecated serviceAccount dropped",
                json!({"serviceAccount": "admin"}),
                "/spec/serviceAccount",
                Value::Null,
            ),
            (
                "automount forced off",
                json!({"automountServiceAccountToken": true}),
                "/spec/automountServiceAccountToken",
                json!(false),
            ),
            (
                "service links forced off",
                json!({"enableServiceLinks": true}),
                "/spec/enableServiceLinks",
                json!(false),
            ),
            (
                "nodeName dropped",
                json!({"nodeName": "node-1"}),
                "/spec/nodeName",
                Value::Null,
            ),
            (
                "a bound pod is pinned to its node by affinity",
                json!({"nodeName": "node-1", "affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "preference": {"matchExpressions": [{"key": "z", "operator": "Exists"}]}}]}}}),
                "/spec/affinity/nodeAffinity",
                json!({
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "preference": {"matchExpressions": [{"key": "z", "operator": "Exists"}]}}]}),
            ),
            (
                "an unbound pod gets no affinity",
                json!({}),
                "/spec/affinity",
                Value::Null,
            ),
            (
                "hostname defaults to virtual name",
                json!({}),
                "/spec/hostname",
                json!("web"),
            ),
            (
                "explicit hostname kept",
                json!({"hostname": "db"}),
                "/spec/hostname",
                json!("db"),
            ),
            (
                "ephemeral containers dropped",
                json!({"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}),
                "/spec/ephemeralContainers",
                Value::Null,
            ),
            (
                "other fields kept",
                json!({"nodeSelector": {"disk": "ssd"}}),
                "/spec/nodeSelector",
                json!({"disk": "ssd"}),
            ),
        ];
        for (what, mut spec, ptr, want) in cases {
            spec["containers"] = json!([{"name": "c", "image": "nginx"}]);
            let (v, _) = ok(&pod(spec));
            assert_eq!(
                v.pointer(ptr).cloned().unwrap_or(Value::Null),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn a_resumed_pod_is_pending_and_keeps_only_its_binding() {
        let running: Pod = serde_json::from_value(json!({
            "spec": {"containers": [], "nodeName": "n1"},
            "status": {"phase": "Running", "hostIP": "10.0.0.5", "podIP": "10.1.0.9",
                       "qosClass": "BestEffort", "startTime": "2026-01-01T00:00:00Z",
                       "conditions": [
                           {"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        assert!(!is_terminal(&running));
        let s = serde_json::to_value(resumed_status(running.status.as_ref())).unwrap();
        assert_eq!(
            s,
            json!({"phase": "Pending", "qosClass": "BestEffort",
                   "conditions": [{"type": "PodScheduled", "status": "True"}]})
        );
        let resumed = Pod {
            status: Some(resumed_status(running.status.as_ref())),
            ..running
        };
        assert!(
            !was_synced_running(&resumed),
            "a resumed pod is created again, not taken for deleted on the host"
        );
        for phase in ["Succeeded", "Failed"] {
            let done: Pod = serde_json::from_value(json!({"status": {"phase": phase}})).unwrap();
            assert!(is_terminal(&done), "{phase}");
        }
    }

    #[test]
    fn hostname_not_defaulted_for_dotted_names() {
        let mut p = pod(json!({"containers": []}));
        p.metadata.name = Some("web.v1".into());
        let (v, _) = ok(&p);
        assert_eq!(v.pointer("/spec/hostname"), None);
    }

    #[test]
    fn references_rewritten_table() {
        use ReferenceKind::{ConfigMap, Secret};
        // (site, virtual spec, pointer to the rewritten name, reference)
        let cases: Vec<(&str, Value, &str, Reference)> = vec![
            (
                "configMap volume",
                json!({"volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}),
                "/spec/volumes/0/configMap/name",
                r(ConfigMap, "cfg"),
            ),
            (
                "secret volume",
                json!({"volumes": [{"name": "v", "secret": {"secretName": "tls"}}]}),
                "/spec/volumes/0/secret/secretName",
                r(Secret, "tls"),
            ),
            (
                "projected configMap",
                json!({"volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "cfg"}}]}}]}),
                "/spec/volumes/0/projected/sources/0/configMap/name",
                r(ConfigMap, "cfg"),
            ),
            (
                "projected secret",
                json!({"volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "tls"}}]}}]}),
                "/spec/volumes/0/projected/sources/0/secret/name",
                r(Secret, "tls"),
            ),
            (
                "env configMapKeyRef",
                json!({"containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}]}),
                "/spec/containers/0/env/0/valueFrom/configMapKeyRef/name",
                r(ConfigMap, "cfg"),
            ),
            (
                "env secretKeyRef",
                json!({"containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "k"}}}]}]}),
                "/spec/containers/0/env/0/valueFrom/secretKeyRef/name",
                r(Secret, "pw"),
            ),
            (
                "envFrom configMapRef",
                json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}),
                "/spec/containers/0/envFrom/0/configMapRef/name",
                r(ConfigMap, "cfg"),
            ),
            (
                "envFrom secretRef",
                json!({"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "pw"}}]}]}),
                "/spec/containers/0/envFrom/0/secretRef/name",
                r(Secret, "pw"),
            ),
            (
                "init container env",
                json!({"containers": [], "initContainers": [{"name": "i", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "k"}}}]}]}),
                "/spec/initContainers/0/env/0/valueFrom/secretKeyRef/name",
                r(Secret, "pw"),
            ),
            (
                "imagePullSecrets",
                json!({"imagePullSecrets": [{"name": "regcred"}]}),
                "/spec/imagePullSecrets/0/name",
                r(Secret, "regcred"),
            ),
            (
                "long name is shortened like every host name",
                json!({"volumes": [{"name": "v", "configMap": {"name": "c".repeat(70)}}]}),
                "/spec/volumes/0/configMap/name",
                r(ConfigMap, &"c".repeat(70)),
            ),
        ];
        for (site, mut spec, ptr, want) in cases {
            if spec.get("containers").is_none() {
                spec["containers"] = json!([]);
            }
            let (v, refs) = ok(&pod(spec));
            assert_eq!(v.pointer(ptr), Some(&json!(h(&want.name))), "{site}");
            assert_eq!(refs, vec![want.clone()], "{site}");
            assert_eq!(want.host_name(&tenant()), h(&want.name), "{site}");
        }
    }

    #[test]
    fn references_are_deduplicated_sorted_and_in_the_pods_namespace() {
        let (_, refs) = ok(&pod(json!({
            "imagePullSecrets": [{"name": "b"}],
            "volumes": [{"name": "v", "secret": {"secretName": "b"}},
                        {"name": "w", "configMap": {"name": "z"}}],
            "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "a"}},
                                                     {"secretRef": {"name": "b"}}]}],
        })));
        assert_eq!(
            refs,
            vec![
                r(ReferenceKind::ConfigMap, "a"),
                r(ReferenceKind::ConfigMap, "z"),
                r(ReferenceKind::Secret, "b")
            ]
        );
        assert!(refs.iter().all(|r| r.namespace == "team"));
    }

    #[test]
    fn downward_api_reads_virtual_identity() {
        let (v, _) = ok(&pod(json!({
            "containers": [{"name": "c", "env": [
                {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "U", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ]}],
            "volumes": [{"name": "d", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}],
        })));
        let env = |i: usize| {
            v.pointer(&format!(
                "/spec/containers/0/env/{i}/valueFrom/fieldRef/fieldPath"
            ))
            .cloned()
        };
        assert_eq!(
            env(0),
            Some(json!("metadata.annotations['vkube.dev/object-name']"))
        );
        assert_eq!(
            env(1),
            Some(json!("metadata.annotations['vkube.dev/object-namespace']"))
        );
        assert_eq!(
            env(2),
            Some(json!("metadata.annotations['vkube.dev/object-uid']"))
        );
        assert_eq!(env(3), Some(json!("status.podIP")));
        assert_eq!(
            v.pointer("/spec/volumes/0/downwardAPI/items/0/fieldRef/fieldPath"),
            Some(&json!("metadata.annotations['vkube.dev/object-name']"))
        );
    }

    #[test]
    fn hostile_input_table() {
        let priv_c = json!([{"name": "c", "securityContext": {"privileged": true}}]);
        // (case, spec, violations with default options, options that allow it)
        let cases: Vec<(&str, Value, Vec<Violation>, Option<TranslateOptions>)> = vec![
            (
                "hostPath",
                json!({"containers": [], "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
                vec![Violation::HostPath {
                    volume: "root".into(),
                }],
                Some(TranslateOptions {
                    allow_host_path: true,
                    ..Default::default()
                }),
            ),
            (
                "hostNetwork",
                json!({"containers": [], "hostNetwork": true}),
                vec![Violation::HostNetwork],
                Some(TranslateOptions {
                    allow_host_namespaces: true,
                    ..Default::default()
                }),
            ),
            (
                "hostPID",
                json!({"containers": [], "hostPID": true}),
                vec![Violation::HostPid],
                None,
            ),
            (
                "hostIPC",
                json!({"containers": [], "hostIPC": true}),
                vec![Violation::HostIpc],
                None,
            ),
            (
                "privileged container",
                json!({"containers": priv_c}),
                vec![Violation::Privileged {
                    container: "c".into(),
                }],
                Some(TranslateOptions {
                    allow_privileged: true,
                    ..Default::default()
                }),
            ),
            (
                "privileged init container",
                json!({"containers": [], "initContainers": [{"name": "i", "securityContext": {"privileged": true}}]}),
                vec![Violation::Privileged {
                    container: "i".into(),
                }],
                None,
            ),
            (
                "hostPort",
                json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
                vec![Violation::HostPort {
                    container: "c".into(),
                    port: 80,
                }],
                Some(TranslateOptions {
                    allow_host_ports: true,
                    ..Default::default()
                }),
            ),
            (
                "serviceAccountToken projection",
                json!({"containers": [], "volumes": [{"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}),
                vec![Violation::ServiceAccountTokenProjection {
                    volume: "tok".into(),
                }],
                None,
            ),
            (
                "nfs",
                json!({"containers": [], "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}),
                vec![Violation::UnsupportedVolume {
                    volume: "n".into(),
                    source: "nfs",
                }],
                None,
            ),
            (
                "clusterTrustBundle",
                json!({"containers": [], "volumes": [{"name": "b", "projected": {"sources": [{"clusterTrustBundle": {"name": "x", "path": "p"}}]}}]}),
                vec![Violation::UnsupportedVolume {
                    volume: "b".into(),
                    source: "projected.clusterTrustBundle",
                }],
                None,
            ),
            (
                "everything at once is listed in spec order",
                json!({"hostNetwork": true, "hostPID": true,
                    "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                    "containers": priv_c}),
                vec![
                    Violation::HostNetwork,
                    Violation::HostPid,
                    Violation::HostPath {
                        volume: "root".into(),
                    },
                    Violation::Privileged {
                        container: "c".into(),
                    },
                ],
                None,
            ),
        ];
        for (what, spec, want, allow) in cases {
            let p = pod(spec);
            match translate(&tenant(), &p, &TranslateOptions::default()) {
                Err(TranslateError::Forbidden(got)) => assert_eq!(got, want, "{what}"),
                other => panic!("{what}: expected Forbidden, got {other:?}"),
            }
            if let Some(opts) = allow {
                assert!(
                    translate(&tenant(), &p, &opts).is_ok(),
                    "{what} allowed by option"
                );
            }
        }
    }

    #[test]
    fn false_flags_are_not_violations() {
        let p = pod(json!({
            "hostNetwork": false, "hostPID": false, "hostIPC": false,
            "containers": [{"name": "c", "securityContext": {"privileged": false},
                            "ports": [{"containerPort": 80, "hostPort": 0}]}],
            "volumes": [{"name": "e", "emptyDir": {}}, {"name": "i", "image": {"reference": "x"}}],
        }));
        assert!(translate(&tenant(), &p, &TranslateOptions::default()).is_ok());
    }

    #[test]
    fn error_message_names_every_violation() {
        let p = pod(
            json!({"hostIPC": true, "containers": [{"name": "c", "securityContext": {"privileged": true}}]}),
        );
        let err = translate(&tenant(), &p, &TranslateOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod refused: hostIPC is not allowed; container \"c\" is privileged"
        );
    }

    #[test]
    fn missing_identity_or_spec() {
        let mut p = pod(json!({"containers": []}));
        p.metadata.uid = None;
        assert_eq!(
            translate(&tenant(), &p, &TranslateOptions::default()),
            Err(TranslateError::Identity(NamesError::MissingField("uid")))
        );
        let mut p = pod(json!({}));
        p.spec = None;
        assert_eq!(
            translate(&tenant(), &p, &TranslateOptions::default()),
            Err(TranslateError::MissingSpec)
        );
    }
    #[test]
    fn claims_and_ephemeral_volumes_name_the_host_claims() {
        let p = pod(json!({"containers": [], "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "db", "readOnly": true}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}}},
        ]}));
        let t = translate(&tenant(), &p, &TranslateOptions::default()).unwrap();
        let vols = serde_json::to_value(&t.pod.spec.unwrap().volumes).unwrap();
        assert_eq!(
            vols,
            json!([
                {"name": "data", "persistentVolumeClaim": {"claimName": "db-x-team-x-vc", "readOnly": true}},
                {"name": "scratch", "persistentVolumeClaim": {"claimName": "web-scratch-x-team-x-vc"}},
            ])
        );
        assert!(t.references.is_empty(), "claims are synced on their own");
        assert_eq!(ephemeral_claims(&p), ["web-scratch"]);
    }
}

#[cfg(test)]
mod engine_helper_tests {
    use super::*;
    use crate::names::ANNOTATION_MANAGED_ANNOTATIONS;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn host_status() -> PodStatus {
        serde_json::from_value(json!({
            "phase": "Running",
            "podIP": "10.244.0.7",
            "podIPs": [{"ip": "10.244.0.7"}],
            "hostIP": "192.168.0.2",
            "startTime": "2025-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0}],
            "qosClass": "Guaranteed",
        }))
        .unwrap()
    }

    #[test]
    fn status_reflection_copies_host_fields_and_keeps_virtual_qos() {
        let current: PodStatus =
            serde_json::from_value(json!({"phase": "Pending", "qosClass": "BestEffort"})).unwrap();
        let new = reflect_status(&host_status(), Some(&current)).expect("differs");
        assert_eq!(new.phase.as_deref(), Some("Running"));
        assert_eq!(new.pod_ip.as_deref(), Some("10.244.0.7"));
        assert_eq!(new.host_ip.as_deref(), Some("192.168.0.2"));
        assert_eq!(new.container_statuses.as_ref().unwrap()[0].name, "c");
        assert_eq!(
            new.qos_class.as_deref(),
            Some("BestEffort"),
            "the virtual server's"
        );
        assert_eq!(
            reflect_status(&host_status(), Some(&new)),
            None,
            "idempotent"
        );
        // A refused status is cleared by the host's (no stale reason).
        let refused = refused_status(None, "nope").unwrap();
        let new = reflect_status(&host_status(), Some(&refused)).unwrap();
        assert_eq!(new.reason, None);
    }

    #[test]
    fn a_binding_makes_a_bound_only_host_status_need_no_write() {
        // The host pod is bound but not started: its status only says
        // PodScheduled=True, which the virtual binding sets as well (with
        // the virtual server's own timestamp).
        let host: PodStatus = serde_json::from_value(json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True",
                            "lastTransitionTime": "2025-01-01T00:00:00Z"}],
        }))
        .unwrap();
        let unbound: PodStatus =
            serde_json::from_value(json!({"phase": "Pending", "qosClass": "BestEffort"})).unwrap();
        assert!(reflect_status(&host, Some(&unbound)).is_some());
        assert_eq!(
            reflect_status(&host, Some(&bound_status(Some(&unbound)))),
            None
        );
        let bound_later: PodStatus = serde_json::from_value(json!({
            "phase": "Pending", "qosClass": "BestEffort",
            "conditions": [{"type": "PodScheduled", "status": "True",
                            "lastTransitionTime": "2025-01-01T00:00:07Z"}],
        }))
        .unwrap();
        assert_eq!(
            reflect_status(&host, Some(&bound_later)),
            None,
            "only a time differs"
        );
        // A condition whose status changes is written.
        let refused = refused_status(Some(&unbound), "nope").unwrap();
        assert!(reflect_status(&host, Some(&refused)).is_some());
        // Running is still written after the binding.
        assert!(reflect_status(&host_status(), Some(&bound_status(Some(&unbound)))).is_some());
    }

    #[test]
    fn refused_status_is_pending_with_a_pod_scheduled_false_condition() {
        let s = refused_status(None, "volume \"root\" uses hostPath").unwrap();
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(s.reason.as_deref(), Some(REASON_SYNC_REFUSED));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str()),
            ("PodScheduled", "False")
        );
        assert_eq!(c.reason.as_deref(), Some(REASON_SYNC_REFUSED));
        assert_eq!(
            refused_status(Some(&s), "volume \"root\" uses hostPath"),
            None
        );
        assert!(refused_status(Some(&s), "another reason").is_some());
    }

    #[test]
    fn token_volume_is_mounted_in_every_container_without_clashing() {
        let mut p = pod(json!({"spec": {
            "volumes": [{"name": "vkube-sa-token", "emptyDir": {}}],
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/"}]},
            ],
        }}));
        inject_token(&mut p, "web-x-ns-x-vc.sa-token");
        let spec = p.spec.unwrap();
        let v = spec.volumes.unwrap();
        assert_eq!(v[1].name, "vkube-sa-token-1", "the tenant's name is kept");
        assert_eq!(
            v[1].secret.as_ref().unwrap().secret_name.as_deref(),
            Some("web-x-ns-x-vc.sa-token")
        );
        let mount = |c: &Container| c.volume_mounts.clone().unwrap_or_default();
        assert_eq!(mount(&spec.containers[0])[0].mount_path, TOKEN_MOUNT_PATH);
        assert_eq!(mount(&spec.containers[0])[0].read_only, Some(true));
        assert_eq!(
            mount(&spec.containers[1]).len(),
            1,
            "own mount kept, none added"
        );
        assert_eq!(
            mount(&spec.init_containers.unwrap()[0])[0].name,
            "vkube-sa-token-1"
        );
    }

    #[test]
    fn service_env_goes_first_and_the_containers_own_env_wins() {
        let mut p = pod(json!({"spec": {"containers": [{"name": "a", "env": [
            {"name": "KUBERNETES_SERVICE_PORT", "value": "8443"},
            {"name": "KEEP", "value": "1"},
        ]}]}}));
        inject_env_defaults(
            &mut p,
            &crate::service::kubernetes_service_env("10.96.0.1", 443),
        );
        let env = p.spec.unwrap().containers[0].env.clone().unwrap();
        let get = |k: &str| {
            env.iter()
                .filter(|e| e.name == k)
                .map(|e| e.value.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), ["10.96.0.1"]);
        assert_eq!(
            get("KUBERNETES_SERVICE_PORT"),
            ["8443"],
            "explicit env wins"
        );
        assert_eq!(env[0].name, "KUBERNETES_SERVICE_HOST", "service env first");
        assert_eq!(get("KUBERNETES_PORT_443_TCP"), ["tcp://10.96.0.1:443"]);
        assert_eq!(get("KEEP"), ["1"]);
    }

    #[test]
    fn token_wanted_unless_pod_or_service_account_opts_out() {
        let plain = pod(json!({"spec": {"containers": []}}));
        let off = pod(json!({"spec": {"containers": [], "automountServiceAccountToken": false}}));
        let on = pod(json!({"spec": {"containers": [], "automountServiceAccountToken": true}}));
        assert!(wants_token(&plain, None));
        assert!(!wants_token(&plain, Some(false)));
        assert!(!wants_token(&off, None));
        assert!(wants_token(&on, Some(false)), "the pod's setting wins");
        assert_eq!(service_account_of(&plain), "default");
        let named = pod(json!({"spec": {"containers": [], "serviceAccountName": "robot"}}));
        assert_eq!(service_account_of(&named), "robot");
    }

    #[test]
    fn only_a_bound_pod_with_host_status_counts_as_having_run() {
        assert!(!was_synced_running(&pod(
            json!({"spec": {"containers": [], "nodeName": "n1"}})
        )));
        assert!(!was_synced_running(&pod(
            json!({"spec": {"containers": []}, "status": {"phase": "Running"}})
        )));
        assert!(was_synced_running(&pod(json!({
            "spec": {"containers": [], "nodeName": "n1"}, "status": {"hostIP": "1.2.3.4"}
        }))));
    }

    #[test]
    fn mutable_fields_are_pushed_and_nothing_else() {
        let host = pod(json!({
            "metadata": {"name": "h", "resourceVersion": "7", "labels": {"a": "1"},
                         "annotations": {"host.example/added": "x", "vkube.dev/object-uid": "u"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.26"}],
                     "tolerations": [{"key": "k", "operator": "Exists"}],
                     "nodeName": "n1"},
        }));
        let desired = pod(json!({
            "metadata": {"labels": {"a": "2"}, "annotations": {"vkube.dev/object-uid": "u", "t": "y"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "args": ["ignored"]}],
                     "tolerations": [{"key": "k", "operator": "Exists"}, {"key": "k2", "operator": "Exists"}],
                     "activeDeadlineSeconds": 30},
        }));
        let out = update_mutable(&desired, &host).expect("differs");
        let spec = out.spec.as_ref().unwrap();
        assert_eq!(spec.containers[0].image.as_deref(), Some("nginx:1.27"));
        assert_eq!(spec.containers[0].args, None, "immutable fields untouched");
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.tolerations.as_ref().unwrap().len(), 2);
        assert_eq!(spec.active_deadline_seconds, Some(30));
        assert_eq!(out.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(out.metadata.labels.as_ref().unwrap()["a"], "2");
        let ann = out.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            ann["host.example/added"], "x",
            "host-added annotations kept"
        );
        assert_eq!(ann["t"], "y");
        assert_eq!(update_mutable(&desired, &out), None, "idempotent");
        // Removing a toleration is not an addition: left as is.
        let fewer = pod(
            json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}], "tolerations": []}}),
        );
        let out2 = update_mutable(&fewer, &out).unwrap();
        assert_eq!(out2.spec.unwrap().tolerations.unwrap().len(), 2);
    }

    #[test]
    fn an_annotation_the_tenant_removes_goes_and_the_hosts_own_stay() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        let v = |ann: serde_json::Value| {
            let p = pod(json!({
                "metadata": {"name": "web", "namespace": "team", "uid": "uid-1", "annotations": ann},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            }));
            translate(&t, &p, &TranslateOptions::default()).unwrap().pod
        };
        let created = v(json!({"keep": "1", "drop": "2"}));
        let ann = created.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[ANNOTATION_MANAGED_ANNOTATIONS], "drop,keep");
        // The host adds one of its own; the tenant then removes `drop`.
        let mut host = created.clone();
        host.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("host.example/added".into(), "x".into());
        let out = update_mutable(&v(json!({"keep": "1"})), &host).expect("differs");
        let ann = out.metadata.annotations.as_ref().unwrap();
        assert!(!ann.contains_key("drop"), "{ann:?}");
        assert_eq!(ann["keep"], "1");
        assert_eq!(ann["host.example/added"], "x");
        assert_eq!(ann[ANNOTATION_MANAGED_ANNOTATIONS], "keep");
        assert_eq!(update_mutable(&v(json!({"keep": "1"})), &out), None);
        // All gone: the record goes too, the host's annotation stays.
        let out = update_mutable(&v(json!({})), &out).expect("differs");
        let ann = out.metadata.annotations.as_ref().unwrap();
        assert!(!ann.contains_key("keep") && !ann.contains_key(ANNOTATION_MANAGED_ANNOTATIONS));
        assert_eq!(ann["host.example/added"], "x");
        // A tenant cannot forge the record to strip the host's annotations.
        let forged = v(json!({"vkube.dev/managed-annotations": "host.example/added"}));
        let out = update_mutable(&forged, &host).expect("differs");
        assert_eq!(
            out.metadata.annotations.as_ref().unwrap()["host.example/added"],
            "x"
        );
    }

    fn tenant_dns() -> TenantDns {
        TenantDns {
            nameserver: "10.96.12.34".into(),
            cluster_domain: "cluster.local".into(),
        }
    }

    #[test]
    fn cluster_first_pods_resolve_through_the_tenant_dns() {
        let mut spec = PodSpec {
            dns_policy: Some("ClusterFirst".into()),
            dns_config: Some(PodDNSConfig {
                nameservers: Some(vec!["1.1.1.1".into(), "10.96.12.34".into()]),
                searches: Some(vec!["corp.example".into(), "svc.cluster.local".into()]),
                options: Some(vec![
                    PodDNSConfigOption {
                        name: Some("ndots".into()),
                        value: Some("2".into()),
                    },
                    PodDNSConfigOption {
                        name: Some("edns0".into()),
                        value: None,
                    },
                ]),
            }),
            ..Default::default()
        };
        apply_tenant_dns(&mut spec, "shop", &tenant_dns());
        assert_eq!(spec.dns_policy.as_deref(), Some("None"));
        let c = spec.dns_config.unwrap();
        assert_eq!(c.nameservers.unwrap(), ["10.96.12.34", "1.1.1.1"]);
        assert_eq!(
            c.searches.unwrap(),
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        let options: Vec<_> = c
            .options
            .unwrap()
            .into_iter()
            .map(|o| (o.name.unwrap(), o.value))
            .collect();
        assert_eq!(
            options,
            [
                ("ndots".to_string(), Some("2".to_string())),
                ("edns0".into(), None)
            ]
        );
    }

    #[test]
    fn the_tenants_own_dns_choices_are_kept() {
        for (policy, host_network) in [("None", false), ("Default", false), ("ClusterFirst", true)]
        {
            let mut spec = PodSpec {
                dns_policy: Some(policy.into()),
                host_network: Some(host_network),
                ..Default::default()
            };
            let before = spec.clone();
            apply_tenant_dns(&mut spec, "ns", &tenant_dns());
            assert_eq!(spec, before, "{policy}");
        }
        let mut spec = PodSpec {
            dns_policy: Some("ClusterFirstWithHostNet".into()),
            host_network: Some(true),
            ..Default::default()
        };
        apply_tenant_dns(&mut spec, "ns", &tenant_dns());
        assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    }
}
