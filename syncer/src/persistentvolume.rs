//! Pure translation of a PersistentVolume the tenant created into its host
//! volume (PersistentVolume sync to the host, off by default: a volume is
//! cluster-scoped on the host and names storage outside any namespace).
//!
//! The host volume ([`translate`]) has [`host_cluster_meta`] metadata and
//! keeps capacity, accessModes, volumeMode, mountOptions, nodeAffinity and
//! the volume source; its `storageClassName` is the claim side's
//! ([`crate::persistentvolumeclaim`]): the same name, or the per-tenant host
//! name when the tenant's StorageClasses are synced to the host. Three
//! rules keep a tenant inside its own storage:
//! * the source must be one the options allow
//!   ([`PersistentVolumeOptions::sources`], none by default: `nfs`, `csi`,
//!   `csi:DRIVER`, `nfs:SERVER[:/PATH]`, …); [`NEVER_SOURCES`] (node paths
//!   and node key files) never are, and no source may name a Secret
//!   (`*SecretRef`, `secretRef`, `secretName`, `secretNamespace`: the
//!   host's driver would read it with its own rights);
//! * the volume must be pre-bound (`spec.claimRef`) to a claim of the
//!   tenant: the host volume's claimRef names that claim's host copy, so
//!   the host's binder never gives it to another namespace's claim;
//! * the reclaim policy on the host is always `Retain`: a tenant naming a
//!   storage backend (a CSI `volumeHandle`) must not make the host's driver
//!   delete it (`Delete`) or scrub it (`Recycle`).
//!
//! The host volume's status (phase, reason, message) becomes the virtual
//! volume's ([`reflect_status`]).

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeSpec};

use crate::cluster_scoped::{host_cluster_meta, host_cluster_name, with_markers};
pub use crate::error::TranslateError;
use crate::names::{Tenant, host_name};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "PersistentVolume";

/// The volume source kinds never synced, whatever the options say:
/// `hostPath` and `local` mount a path of a host node; `cephfs` and `rbd`
/// read key files of the node (`secretFile`, `keyring`); `flexVolume`
/// passes arbitrary options to a driver on the node.
pub const NEVER_SOURCES: [&str; 5] = ["hostPath", "local", "cephfs", "rbd", "flexVolume"];

/// The volume source fields of a PersistentVolumeSpec (core/v1), in the
/// JSON spelling the options use.
pub const SOURCE_FIELDS: [&str; 22] = [
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

/// How the tenant's PersistentVolumes are synced to the host.
///
/// A synced volume names storage the host's nodes mount for the tenant, so
/// what it may name is the administrator's choice, entry by entry, and
/// nothing by default. `Retain` keeps the host's driver from deleting what
/// a volume names, not from mounting it: list only storage the tenant may
/// read and write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersistentVolumeOptions {
    /// The volume sources accepted, each one of: a source field name
    /// (`nfs`, `csi`, `iscsi`, … any server, handle or target);
    /// `csi:DRIVER` (the CSI volumes of one driver); `nfs:SERVER` (one NFS
    /// server); `nfs:SERVER:/PATH` (exports at or under one path of it).
    pub sources: Vec<String>,
}

impl PersistentVolumeOptions {
    /// Checks the allow-list (pure). Errors: an entry that is not a
    /// volume source of a PersistentVolume, or one of [`NEVER_SOURCES`].
    pub fn validate(&self) -> Result<(), String> {
        for s in &self.sources {
            let kind = s.split_once(':').map_or(s.as_str(), |(k, _)| k);
            if NEVER_SOURCES.contains(&kind) {
                return Err(format!(
                    "{s}: {kind} volumes mount a path of a host node and are never synced"
                ));
            }
            if !SOURCE_FIELDS.contains(&kind) || (s.contains(':') && !matches!(kind, "csi" | "nfs"))
            {
                return Err(format!(
                    "{s}: not a PersistentVolume source (one of {}, or csi:DRIVER, nfs:SERVER[:/PATH])",
                    SOURCE_FIELDS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether a source of `kind` is allowed; `source` is its JSON (the
    /// CSI driver, the NFS server and path are read from it).
    fn allows(&self, kind: &str, source: &serde_json::Value) -> bool {
        let field = |k: &str| source.get(k).and_then(serde_json::Value::as_str);
        !NEVER_SOURCES.contains(&kind)
            && self.sources.iter().any(|s| match s.split_once(':') {
                Some(("csi", driver)) => kind == "csi" && field("driver") == Some(driver),
                Some(("nfs", rest)) => {
                    let (server, prefix) = rest.split_once(':').unwrap_or((rest, ""));
                    let path = field("path").unwrap_or_default();
                    kind == "nfs"
                        && field("server") == Some(server)
                        && (prefix.is_empty() || under(path, prefix))
                }
                Some(_) => false,
                None => s == kind,
            })
    }
}

/// Whether `path` is `prefix` or below it (a path component boundary, and
/// no `..` component).
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    !path.split('/').any(|c| c == "..")
        && (path == prefix
            || path.trim_end_matches('/') == prefix
            || path.starts_with(&format!("{prefix}/")))
}

/// Whether JSON value `v` names a Secret anywhere (a key ending in
/// `SecretRef`/`secretRef`, or `secretNamespace`, `secretName`).
fn names_secret(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m.iter().find_map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            if lower.ends_with("secretref") || lower == "secretnamespace" || lower == "secretname" {
                Some(k.clone())
            } else {
                names_secret(v)
            }
        }),
        serde_json::Value::Array(a) => a.iter().find_map(names_secret),
        _ => None,
    }
}

/// The host volume for the tenant's volume `pv` (module docs), its class
/// named as the host claim names it (`host_class`).
///
/// Errors: [`TranslateError::Identity`] without name or uid;
/// [`TranslateError::Forbidden`] for a source that is missing, not
/// allowed or names a Secret, and for a volume without a claimRef to a
/// claim (namespace and name).
pub fn translate(
    tenant: &Tenant,
    pv: &PersistentVolume,
    opts: &PersistentVolumeOptions,
    host_class: impl Fn(&str) -> String,
) -> Result<PersistentVolume, TranslateError> {
    let metadata = host_cluster_meta(tenant, KIND, &pv.metadata)?;
    let refuse = |why: String| Err(TranslateError::Forbidden(why));
    let spec = pv.spec.clone().unwrap_or_default();
    let json = serde_json::to_value(&spec).unwrap_or_default();
    let sources: Vec<&str> = SOURCE_FIELDS
        .iter()
        .copied()
        .filter(|f| json.get(f).is_some_and(|v| !v.is_null()))
        .collect();
    let [source] = sources.as_slice() else {
        return refuse("a PersistentVolume needs exactly one volume source".into());
    };
    if !opts.allows(source, &json[*source]) {
        return refuse(format!(
            "this {source} volume is not one this virtual cluster may use on the host (allowed: {})",
            if opts.sources.is_empty() {
                "none".to_string()
            } else {
                opts.sources.join(", ")
            }
        ));
    }
    if let Some(key) = json.get(*source).and_then(names_secret) {
        return refuse(format!(
            "{source}.{key} names a Secret the host's driver would read; volumes naming Secrets are not synced to the host"
        ));
    }
    let Some((claim_ns, claim_name)) = spec.claim_ref.as_ref().and_then(|r| {
        Some((
            r.namespace.clone().filter(|n| !n.is_empty())?,
            r.name.clone().filter(|n| !n.is_empty())?,
        ))
    }) else {
        return refuse(
            "a PersistentVolume synced to the host must be pre-bound: set spec.claimRef to the namespace and name of the claim that uses it".into(),
        );
    };
    let mut host_spec = PersistentVolumeSpec {
        capacity: spec.capacity,
        access_modes: spec.access_modes,
        volume_mode: spec.volume_mode,
        mount_options: spec.mount_options,
        node_affinity: spec.node_affinity,
        storage_class_name: spec
            .storage_class_name
            .filter(|c| !c.is_empty())
            .map(|c| host_class(&c)),
        persistent_volume_reclaim_policy: Some("Retain".into()),
        claim_ref: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: Some(tenant.host_namespace().to_string()),
            name: Some(host_name(tenant, &claim_ns, &claim_name)),
            ..Default::default()
        }),
        ..Default::default()
    };
    // The one allowed source, as the tenant wrote it.
    let mut with_source = serde_json::to_value(&host_spec).unwrap_or_default();
    with_source[*source] = json[*source].clone();
    host_spec = serde_json::from_value(with_source)
        .map_err(|e| TranslateError::Forbidden(format!("reading the volume source: {e}")))?;
    Ok(PersistentVolume {
        metadata,
        spec: Some(host_spec),
        status: None,
    })
}

/// The host name of the tenant's volume `name` (what a claim's
/// `spec.volumeName` becomes on the host).
pub fn host_volume_name(tenant: &Tenant, name: &str) -> String {
    host_cluster_name(tenant, name)
}

/// The host volume to write over `host` (ours) so that it matches
/// `desired`: labels, annotations and a grown capacity (a volume's source,
/// modes and class are immutable on a real API server); the host's
/// binding (`claimRef` with the claim's uid), finalizers and status are
/// kept. `None` when nothing differs.
pub fn update(desired: &PersistentVolume, host: &PersistentVolume) -> Option<PersistentVolume> {
    let mut out = host.clone();
    out.metadata = with_markers(&desired.metadata, &host.metadata);
    if let (Some(o), Some(d)) = (out.spec.as_mut(), desired.spec.as_ref()) {
        o.capacity.clone_from(&d.capacity);
        o.mount_options.clone_from(&d.mount_options);
    }
    (out != *host).then_some(out)
}

/// Whether only a delete and create brings `host` to `desired`: never (a
/// host volume holding data is not recreated for a change the API server
/// refuses anyway; the tenant deletes and recreates its volume instead).
pub fn needs_replace(_desired: &PersistentVolume, _host: &PersistentVolume) -> bool {
    false
}

/// The virtual volume's status for host volume `host` (phase, reason,
/// message; the host's as is), or `None` when `virt` has it already.
pub fn reflect_status(
    host: &PersistentVolume,
    virt: &PersistentVolume,
) -> Option<serde_json::Value> {
    let h = host.status.clone().unwrap_or_default();
    let v = virt.status.clone().unwrap_or_default();
    (h.phase.is_some() && (h.phase != v.phase || h.reason != v.reason || h.message != v.message))
        .then(|| serde_json::json!({"phase": h.phase, "reason": h.reason, "message": h.message}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> Tenant {
        Tenant::new("vc", "host-ns").unwrap()
    }

    fn pv(spec: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "share", "uid": "u1", "labels": {"a": "b"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn nfs() -> serde_json::Value {
        json!({"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "manual",
            "nfs": {"server": "10.0.0.5", "path": "/exports/a"},
            "claimRef": {"namespace": "team", "name": "data", "uid": "virtual-uid"}})
    }

    fn nfs_opts() -> PersistentVolumeOptions {
        PersistentVolumeOptions {
            sources: vec!["nfs:10.0.0.5:/exports".into()],
        }
    }

    fn same(c: &str) -> String {
        c.to_string()
    }

    #[test]
    fn an_nfs_volume_is_renamed_pre_bound_to_the_host_claim_and_retained() {
        let h = translate(&tenant(), &pv(nfs()), &nfs_opts(), same).unwrap();
        let got = serde_json::to_value(&h).unwrap();
        assert_eq!(got["metadata"]["name"], "vkube-share-x-host-ns-x-vc");
        assert_eq!(
            got["spec"],
            json!({"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                "nfs": {"server": "10.0.0.5", "path": "/exports/a"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "namespace": "host-ns", "name": "data-x-team-x-vc"}})
        );
        let per_tenant = translate(&tenant(), &pv(nfs()), &nfs_opts(), |c| {
            host_cluster_name(&tenant(), c)
        })
        .unwrap();
        assert_eq!(
            per_tenant.spec.unwrap().storage_class_name.as_deref(),
            Some("vkube-manual-x-host-ns-x-vc")
        );
        assert_eq!(
            host_volume_name(&tenant(), "share"),
            "vkube-share-x-host-ns-x-vc"
        );
    }

    #[test]
    fn host_paths_secrets_unlisted_sources_and_unbound_volumes_are_refused() {
        let opts = PersistentVolumeOptions {
            sources: vec!["nfs".into(), "csi:nfs.csi.k8s.io".into()],
        };
        let refused = |spec: serde_json::Value| {
            matches!(
                translate(&tenant(), &pv(spec), &opts, same),
                Err(TranslateError::Forbidden(_))
            )
        };
        let with = |source: &str, value: serde_json::Value| {
            let mut s = nfs();
            s.as_object_mut().unwrap().remove("nfs");
            s[source] = value;
            s
        };
        assert!(refused(with("hostPath", json!({"path": "/etc"}))));
        assert!(refused(with("local", json!({"path": "/mnt/disk"}))));
        assert!(refused(with(
            "iscsi",
            json!({"targetPortal": "1.2.3.4", "iqn": "x", "lun": 0})
        )));
        assert!(refused(with(
            "csi",
            json!({"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"})
        )));
        let csi = with(
            "csi",
            json!({"driver": "nfs.csi.k8s.io", "volumeHandle": "h"}),
        );
        assert!(!refused(csi.clone()));
        let mut secret = csi.clone();
        secret["csi"]["nodePublishSecretRef"] =
            json!({"name": "creds", "namespace": "kube-system"});
        assert!(refused(secret));
        let mut two = nfs();
        two["hostPath"] = json!({"path": "/"});
        assert!(refused(two), "a second source is not slipped past the list");
        let mut unbound = nfs();
        unbound.as_object_mut().unwrap().remove("claimRef");
        assert!(refused(unbound));
        assert!(
            PersistentVolumeOptions {
                sources: vec!["hostPath".into()]
            }
            .validate()
            .is_err()
        );
        assert!(
            PersistentVolumeOptions {
                sources: vec!["iscsi:x".into()]
            }
            .validate()
            .is_err()
        );
        assert!(opts.validate().is_ok());
        for never in ["cephfs", "rbd", "flexVolume"] {
            let o = PersistentVolumeOptions {
                sources: vec![never.into()],
            };
            assert!(o.validate().is_err(), "{never}");
        }
        // NFS entries pin the server and a path.
        let nfs_at = |server: &str, path: &str| {
            let mut s = nfs();
            s["nfs"] = json!({"server": server, "path": path});
            translate(&tenant(), &pv(s), &nfs_opts(), same).is_ok()
        };
        assert!(nfs_at("10.0.0.5", "/exports"));
        assert!(nfs_at("10.0.0.5", "/exports/team/a"));
        assert!(!nfs_at("10.0.0.5", "/exports-other"));
        assert!(!nfs_at("10.0.0.5", "/exports/../etc"));
        assert!(!nfs_at("10.0.0.6", "/exports/team"));
        assert!(
            matches!(
                translate(
                    &tenant(),
                    &pv(nfs()),
                    &PersistentVolumeOptions::default(),
                    same
                ),
                Err(TranslateError::Forbidden(_))
            ),
            "nothing by default"
        );
    }

    #[test]
    fn updates_keep_the_hosts_binding_and_status_comes_back() {
        let desired = translate(&tenant(), &pv(nfs()), &nfs_opts(), same).unwrap();
        let mut host = desired.clone();
        host.spec.as_mut().unwrap().claim_ref.as_mut().unwrap().uid = Some("host-uid".into());
        host.metadata.finalizers = Some(vec!["kubernetes.io/pv-protection".into()]);
        host.status = Some(serde_json::from_value(json!({"phase": "Bound"})).unwrap());
        assert_eq!(update(&desired, &host), None);
        let mut grown = desired.clone();
        grown.spec.as_mut().unwrap().capacity =
            Some(serde_json::from_value(json!({"storage": "10Gi"})).unwrap());
        let out = update(&grown, &host).unwrap();
        assert_eq!(out.metadata.finalizers, host.metadata.finalizers);
        assert_eq!(
            out.spec
                .as_ref()
                .unwrap()
                .claim_ref
                .as_ref()
                .unwrap()
                .uid
                .as_deref(),
            Some("host-uid")
        );
        let virt = pv(nfs());
        assert_eq!(
            reflect_status(&host, &virt),
            Some(json!({"phase": "Bound", "reason": null, "message": null}))
        );
        assert_eq!(reflect_status(&host, &host), None);
    }
}
