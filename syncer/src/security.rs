//! Pod Security Standards (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>)
//! as a pure check of a PodSpec, so the syncer can refuse pods before they
//! reach the host (issue 4: a configurable level, default `baseline`).
//!
//! [`check`] implements the `baseline` controls (HostProcess, host
//! namespaces, privileged, capabilities beyond the baseline list, hostPath,
//! host ports, AppArmor, SELinux, `/proc` mount type, seccomp, sysctls) and,
//! for `restricted`, additionally volume types, privilege escalation,
//! running as non-root, `runAsUser` ≠ 0, seccomp RuntimeDefault/Localhost
//! and capabilities (drop `ALL`, add only `NET_BIND_SERVICE`). Messages
//! follow the pod-security admission plugin's wording
//! (`k8s.io/pod-security-admission/policy`). Containers means containers,
//! initContainers and ephemeralContainers. As in pod-security admission, a
//! pod with `spec.os.name: windows` skips the restricted privilege
//! escalation, seccomp and capabilities controls. Annotation-based AppArmor
//! (a pod annotation, not in the PodSpec) is not checked here.

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSpec, SELinuxOptions, SeccompProfile, SecurityContext,
};

/// A Pod Security Standards level. `Default` is [`PodSecurityLevel::Baseline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum PodSecurityLevel {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations.
    #[default]
    Baseline,
    /// Current pod hardening best practices.
    Restricted,
}

impl fmt::Display for PodSecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        })
    }
}

/// Error parsing a [`PodSecurityLevel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pod security level {0:?} (want privileged, baseline or restricted)")]
pub struct UnknownLevel(pub String);

impl FromStr for PodSecurityLevel {
    type Err = UnknownLevel;
    /// Parses `privileged`, `baseline` or `restricted` (exact, lower case,
    /// as the `pod-security.kubernetes.io/enforce` label values).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "privileged" => Ok(Self::Privileged),
            "baseline" => Ok(Self::Baseline),
            "restricted" => Ok(Self::Restricted),
            _ => Err(UnknownLevel(s.to_string())),
        }
    }
}

/// One failed control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSecurityViolation {
    /// The control's short name as pod-security admission reports it, e.g.
    /// `host namespaces`, `privileged`, `runAsNonRoot != true`.
    pub check: &'static str,
    /// The offending field path, e.g. `spec.containers[0].securityContext.privileged`.
    pub field: String,
    /// What is wrong, e.g. `container "app" must not set securityContext.privileged=true`.
    pub message: String,
}

impl fmt::Display for PodSecurityViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) at {}", self.check, self.message, self.field)
    }
}

/// Capabilities baseline allows adding.
pub const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls baseline allows (the "safe" set).
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// SELinux types baseline allows (besides empty).
pub const ALLOWED_SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Volume types restricted allows.
pub const RESTRICTED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// A container of any of the three lists, with its field path prefix.
struct Ctr<'a> {
    path: String,
    name: &'a str,
    sc: Option<&'a SecurityContext>,
    host_ports: Vec<(usize, i32)>,
}

fn containers(spec: &PodSpec) -> Vec<Ctr<'_>> {
    let mut out = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        out.push(Ctr {
            path: format!("spec.containers[{i}]"),
            name: &c.name,
            sc: c.security_context.as_ref(),
            host_ports: host_ports(c.ports.as_deref()),
        });
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        out.push(Ctr {
            path: format!("spec.initContainers[{i}]"),
            name: &c.name,
            sc: c.security_context.as_ref(),
            host_ports: host_ports(c.ports.as_deref()),
        });
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        out.push(Ctr {
            path: format!("spec.ephemeralContainers[{i}]"),
            name: &c.name,
            sc: c.security_context.as_ref(),
            host_ports: host_ports(c.ports.as_deref()),
        });
    }
    out
}

fn host_ports(ports: Option<&[k8s_openapi::api::core::v1::ContainerPort]>) -> Vec<(usize, i32)> {
    ports
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.host_port.filter(|&h| h != 0).map(|h| (i, h)))
        .collect()
}

/// The name of the volume source set on `v` (its JSON field name).
fn volume_type(v: &k8s_openapi::api::core::v1::Volume) -> &'static str {
    macro_rules! first {
        ($($field:ident => $name:literal),* $(,)?) => {
            $( if v.$field.is_some() { return $name; } )*
        };
    }
    first!(
        config_map => "configMap", csi => "csi", downward_api => "downwardAPI",
        empty_dir => "emptyDir", ephemeral => "ephemeral",
        persistent_volume_claim => "persistentVolumeClaim", projected => "projected",
        secret => "secret", host_path => "hostPath", aws_elastic_block_store => "awsElasticBlockStore",
        azure_disk => "azureDisk", azure_file => "azureFile", cephfs => "cephfs", cinder => "cinder",
        fc => "fc", flex_volume => "flexVolume", flocker => "flocker",
        gce_persistent_disk => "gcePersistentDisk", git_repo => "gitRepo", glusterfs => "glusterfs",
        image => "image", iscsi => "iscsi", nfs => "nfs", photon_persistent_disk => "photonPersistentDisk",
        portworx_volume => "portworxVolume", quobyte => "quobyte", rbd => "rbd",
        scale_io => "scaleIO", storageos => "storageos", vsphere_volume => "vsphereVolume",
    );
    "unknown"
}

/// Every violation of `level` in `spec`, in control order (baseline controls
/// first, then restricted ones), each with its field path. `Privileged`
/// never yields any.
pub fn check(level: PodSecurityLevel, spec: &PodSpec) -> Vec<PodSecurityViolation> {
    let mut out = Vec::new();
    if level == PodSecurityLevel::Privileged {
        return out;
    }
    let mut push = |check: &'static str, field: String, message: String| {
        out.push(PodSecurityViolation {
            check,
            field,
            message,
        })
    };
    let psc = spec.security_context.as_ref();
    let ctrs = containers(spec);

    // hostProcess
    if psc
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        push(
            "hostProcess",
            "spec.securityContext.windowsOptions.hostProcess".into(),
            "pod must not set securityContext.windowsOptions.hostProcess=true".into(),
        );
    }
    for c in &ctrs {
        if c.sc
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process)
            == Some(true)
        {
            push(
                "hostProcess",
                format!("{}.securityContext.windowsOptions.hostProcess", c.path),
                format!(
                    "container {:?} must not set securityContext.windowsOptions.hostProcess=true",
                    c.name
                ),
            );
        }
    }
    // host namespaces
    for (set, field) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if set == Some(true) {
            push(
                "host namespaces",
                format!("spec.{field}"),
                format!("{field}=true"),
            );
        }
    }
    // privileged
    for c in &ctrs {
        if c.sc.and_then(|s| s.privileged) == Some(true) {
            push(
                "privileged",
                format!("{}.securityContext.privileged", c.path),
                format!(
                    "container {:?} must not set securityContext.privileged=true",
                    c.name
                ),
            );
        }
    }
    // capabilities (baseline)
    let added = |c: &Ctr<'_>| -> Vec<String> {
        c.sc.and_then(|s| s.capabilities.as_ref())
            .and_then(|k: &Capabilities| k.add.clone())
            .unwrap_or_default()
    };
    for c in &ctrs {
        let bad: Vec<String> = added(c)
            .into_iter()
            .filter(|a| !BASELINE_CAPABILITIES.contains(&a.as_str()))
            .collect();
        if !bad.is_empty() {
            push(
                "non-default capabilities",
                format!("{}.securityContext.capabilities.add", c.path),
                format!(
                    "container {:?} must not include {:?} in securityContext.capabilities.add",
                    c.name, bad
                ),
            );
        }
    }
    // hostPath volumes
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if v.host_path.is_some() {
            push(
                "hostPath volumes",
                format!("spec.volumes[{i}].hostPath"),
                format!("volume {:?} must not use hostPath", v.name),
            );
        }
    }
    // host ports
    for c in &ctrs {
        for (i, p) in &c.host_ports {
            push(
                "hostPort",
                format!("{}.ports[{i}].hostPort", c.path),
                format!("container {:?} uses hostPort {p}", c.name),
            );
        }
    }
    // AppArmor
    let apparmor_bad = |t: &str| t != "RuntimeDefault" && t != "Localhost";
    if let Some(t) = psc
        .and_then(|s| s.app_armor_profile.as_ref())
        .map(|p| p.type_.as_str())
        && apparmor_bad(t)
    {
        push(
            "appArmorProfile",
            "spec.securityContext.appArmorProfile.type".into(),
            format!("pod must not set securityContext.appArmorProfile.type={t:?}"),
        );
    }
    for c in &ctrs {
        if let Some(t) =
            c.sc.and_then(|s| s.app_armor_profile.as_ref())
                .map(|p| p.type_.as_str())
            && apparmor_bad(t)
        {
            push(
                "appArmorProfile",
                format!("{}.securityContext.appArmorProfile.type", c.path),
                format!(
                    "container {:?} must not set securityContext.appArmorProfile.type={t:?}",
                    c.name
                ),
            );
        }
    }
    // SELinux
    let selinux = |o: &SELinuxOptions| -> Option<String> {
        if let Some(t) = o.type_.as_deref().filter(|t| !t.is_empty())
            && !ALLOWED_SELINUX_TYPES.contains(&t)
        {
            return Some(format!("seLinuxOptions.type={t:?}"));
        }
        if o.user.as_deref().is_some_and(|u| !u.is_empty()) {
            return Some("seLinuxOptions.user must not be set".into());
        }
        if o.role.as_deref().is_some_and(|r| !r.is_empty()) {
            return Some("seLinuxOptions.role must not be set".into());
        }
        None
    };
    if let Some(m) = psc
        .and_then(|s| s.se_linux_options.as_ref())
        .and_then(selinux)
    {
        push(
            "seLinuxOptions",
            "spec.securityContext.seLinuxOptions".into(),
            format!("pod sets {m}"),
        );
    }
    for c in &ctrs {
        if let Some(m) =
            c.sc.and_then(|s| s.se_linux_options.as_ref())
                .and_then(selinux)
        {
            push(
                "seLinuxOptions",
                format!("{}.securityContext.seLinuxOptions", c.path),
                format!("container {:?} sets {m}", c.name),
            );
        }
    }
    // /proc mount
    for c in &ctrs {
        if let Some(pm) =
            c.sc.and_then(|s| s.proc_mount.as_deref())
                .filter(|p| *p != "Default")
        {
            push(
                "procMount",
                format!("{}.securityContext.procMount", c.path),
                format!(
                    "container {:?} must not set securityContext.procMount={pm:?}",
                    c.name
                ),
            );
        }
    }
    // seccomp (baseline: not Unconfined)
    let seccomp = |p: Option<&SeccompProfile>| p.map(|p| p.type_.clone());
    let pod_seccomp = seccomp(psc.and_then(|s| s.seccomp_profile.as_ref()));
    if pod_seccomp.as_deref() == Some("Unconfined") {
        push(
            "seccompProfile",
            "spec.securityContext.seccompProfile.type".into(),
            "pod must not set securityContext.seccompProfile.type to \"Unconfined\"".into(),
        );
    }
    for c in &ctrs {
        if seccomp(c.sc.and_then(|s| s.seccomp_profile.as_ref())).as_deref() == Some("Unconfined") {
            push(
                "seccompProfile",
                format!("{}.securityContext.seccompProfile.type", c.path),
                format!(
                    "container {:?} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                    c.name
                ),
            );
        }
    }
    // sysctls
    for (i, s) in psc
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            push(
                "forbidden sysctls",
                format!("spec.securityContext.sysctls[{i}]"),
                s.name.clone(),
            );
        }
    }

    if level < PodSecurityLevel::Restricted {
        return out;
    }
    // Pod-security admission skips these three controls for Windows pods.
    let windows = spec.os.as_ref().is_some_and(|o| o.name == "windows");
    // restricted volume types
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let t = volume_type(v);
        if !RESTRICTED_VOLUME_TYPES.contains(&t) {
            push(
                "restricted volume types",
                format!("spec.volumes[{i}]"),
                format!("volume {:?} uses restricted volume type {t:?}", v.name),
            );
        }
    }
    // allowPrivilegeEscalation
    for c in ctrs.iter().filter(|_| !windows) {
        if c.sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            push(
                "allowPrivilegeEscalation != false",
                format!("{}.securityContext.allowPrivilegeEscalation", c.path),
                format!(
                    "container {:?} must set securityContext.allowPrivilegeEscalation=false",
                    c.name
                ),
            );
        }
    }
    // runAsNonRoot
    let pod_non_root = psc.and_then(|s| s.run_as_non_root);
    if pod_non_root == Some(false) {
        push(
            "runAsNonRoot != true",
            "spec.securityContext.runAsNonRoot".into(),
            "pod must not set securityContext.runAsNonRoot=false".into(),
        );
    }
    for c in &ctrs {
        match c.sc.and_then(|s| s.run_as_non_root) {
            Some(true) => {}
            Some(false) => push(
                "runAsNonRoot != true",
                format!("{}.securityContext.runAsNonRoot", c.path),
                format!(
                    "container {:?} must not set securityContext.runAsNonRoot=false",
                    c.name
                ),
            ),
            None if pod_non_root != Some(true) => push(
                "runAsNonRoot != true",
                format!("{}.securityContext.runAsNonRoot", c.path),
                format!(
                    "pod or container {:?} must set securityContext.runAsNonRoot=true",
                    c.name
                ),
            ),
            None => {}
        }
    }
    // runAsUser
    if psc.and_then(|s| s.run_as_user) == Some(0) {
        push(
            "runAsUser=0",
            "spec.securityContext.runAsUser".into(),
            "pod must not set runAsUser=0".into(),
        );
    }
    for c in &ctrs {
        if c.sc.and_then(|s| s.run_as_user) == Some(0) {
            push(
                "runAsUser=0",
                format!("{}.securityContext.runAsUser", c.path),
                format!("container {:?} must not set runAsUser=0", c.name),
            );
        }
    }
    // seccomp (restricted: RuntimeDefault or Localhost, pod or every container)
    let good = |t: &Option<String>| matches!(t.as_deref(), Some("RuntimeDefault" | "Localhost"));
    for c in ctrs.iter().filter(|_| !windows) {
        let ct = seccomp(c.sc.and_then(|s| s.seccomp_profile.as_ref()));
        let effective = if ct.is_some() {
            ct
        } else {
            pod_seccomp.clone()
        };
        if !good(&effective) && effective.as_deref() != Some("Unconfined") {
            push(
                "seccompProfile",
                format!("{}.securityContext.seccompProfile.type", c.path),
                format!(
                    "pod or container {:?} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                    c.name
                ),
            );
        }
    }
    // capabilities (restricted)
    for c in ctrs.iter().filter(|_| !windows) {
        let caps = c.sc.and_then(|s| s.capabilities.as_ref());
        let drops_all = caps
            .and_then(|k| k.drop.as_ref())
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            push(
                "unrestricted capabilities",
                format!("{}.securityContext.capabilities.drop", c.path),
                format!(
                    "container {:?} must set securityContext.capabilities.drop=[\"ALL\"]",
                    c.name
                ),
            );
        }
        let bad: Vec<String> = added(c)
            .into_iter()
            .filter(|a| a != "NET_BIND_SERVICE")
            .collect();
        if !bad.is_empty() {
            push(
                "unrestricted capabilities",
                format!("{}.securityContext.capabilities.add", c.path),
                format!(
                    "container {:?} must not include {:?} in securityContext.capabilities.add",
                    c.name, bad
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        AppArmorProfile, Container, ContainerPort, HostPathVolumeSource, PodSecurityContext,
        Sysctl, Volume, WindowsSecurityContextOptions,
    };

    /// A pod that passes `restricted` (and so `baseline`).
    fn restricted_pod() -> PodSpec {
        PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![Container {
                name: "app".into(),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        add: Some(vec!["NET_BIND_SERVICE".into()]),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "cache".into(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    /// A plain pod: passes `baseline`, fails `restricted`.
    fn plain_pod() -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn csc(p: &mut PodSpec) -> &mut SecurityContext {
        p.containers[0].security_context.get_or_insert_default()
    }
    fn psc(p: &mut PodSpec) -> &mut PodSecurityContext {
        p.security_context.get_or_insert_default()
    }

    #[test]
    fn level_parse_display_default() {
        for l in [
            PodSecurityLevel::Privileged,
            PodSecurityLevel::Baseline,
            PodSecurityLevel::Restricted,
        ] {
            assert_eq!(l.to_string().parse::<PodSecurityLevel>(), Ok(l));
        }
        assert_eq!(PodSecurityLevel::default(), PodSecurityLevel::Baseline);
        assert!("Baseline".parse::<PodSecurityLevel>().is_err());
    }

    #[test]
    fn compliant_pods_pass() {
        assert_eq!(
            check(PodSecurityLevel::Restricted, &restricted_pod()),
            vec![]
        );
        assert_eq!(check(PodSecurityLevel::Baseline, &restricted_pod()), vec![]);
        assert_eq!(check(PodSecurityLevel::Baseline, &plain_pod()), vec![]);
        let mut p = plain_pod();
        p.host_network = Some(true);
        assert_eq!(check(PodSecurityLevel::Privileged, &p), vec![]);
    }

    type Mutation = Box<dyn Fn(&mut PodSpec)>;

    #[test]
    fn baseline_table() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "hostNetwork",
                Box::new(|p| p.host_network = Some(true)),
                "spec.hostNetwork",
            ),
            (
                "hostPID",
                Box::new(|p| p.host_pid = Some(true)),
                "spec.hostPID",
            ),
            (
                "hostIPC",
                Box::new(|p| p.host_ipc = Some(true)),
                "spec.hostIPC",
            ),
            (
                "privileged",
                Box::new(|p| csc(p).privileged = Some(true)),
                "spec.containers[0].securityContext.privileged",
            ),
            (
                "init privileged",
                Box::new(|p| {
                    p.init_containers = Some(vec![Container {
                        name: "init".into(),
                        security_context: Some(SecurityContext {
                            privileged: Some(true),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }])
                }),
                "spec.initContainers[0].securityContext.privileged",
            ),
            (
                "SYS_ADMIN",
                Box::new(|p| {
                    csc(p).capabilities = Some(Capabilities {
                        add: Some(vec!["SYS_ADMIN".into()]),
                        drop: None,
                    })
                }),
                "spec.containers[0].securityContext.capabilities.add",
            ),
            (
                "hostPath",
                Box::new(|p| {
                    p.volumes = Some(vec![Volume {
                        name: "root".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/".into(),
                            type_: None,
                        }),
                        ..Default::default()
                    }])
                }),
                "spec.volumes[0].hostPath",
            ),
            (
                "hostPort",
                Box::new(|p| {
                    p.containers[0].ports = Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(80),
                        ..Default::default()
                    }])
                }),
                "spec.containers[0].ports[0].hostPort",
            ),
            (
                "hostProcess",
                Box::new(|p| {
                    psc(p).windows_options = Some(WindowsSecurityContextOptions {
                        host_process: Some(true),
                        ..Default::default()
                    })
                }),
                "spec.securityContext.windowsOptions.hostProcess",
            ),
            (
                "AppArmor Unconfined",
                Box::new(|p| {
                    csc(p).app_armor_profile = Some(AppArmorProfile {
                        type_: "Unconfined".into(),
                        localhost_profile: None,
                    })
                }),
                "spec.containers[0].securityContext.appArmorProfile.type",
            ),
            (
                "SELinux type",
                Box::new(|p| {
                    psc(p).se_linux_options = Some(SELinuxOptions {
                        type_: Some("spc_t".into()),
                        ..Default::default()
                    })
                }),
                "spec.securityContext.seLinuxOptions",
            ),
            (
                "SELinux user",
                Box::new(|p| {
                    csc(p).se_linux_options = Some(SELinuxOptions {
                        user: Some("system_u".into()),
                        ..Default::default()
                    })
                }),
                "spec.containers[0].securityContext.seLinuxOptions",
            ),
            (
                "procMount",
                Box::new(|p| csc(p).proc_mount = Some("Unmasked".into())),
                "spec.containers[0].securityContext.procMount",
            ),
            (
                "seccomp Unconfined",
                Box::new(|p| {
                    psc(p).seccomp_profile = Some(SeccompProfile {
                        type_: "Unconfined".into(),
                        localhost_profile: None,
                    })
                }),
                "spec.securityContext.seccompProfile.type",
            ),
            (
                "unsafe sysctl",
                Box::new(|p| {
                    psc(p).sysctls = Some(vec![
                        Sysctl {
                            name: "net.ipv4.tcp_syncookies".into(),
                            value: "1".into(),
                        },
                        Sysctl {
                            name: "kernel.msgmax".into(),
                            value: "1".into(),
                        },
                    ])
                }),
                "spec.securityContext.sysctls[1]",
            ),
        ];
        for (what, mutate, field) in cases {
            let mut p = plain_pod();
            mutate(&mut p);
            let v = check(PodSecurityLevel::Baseline, &p);
            assert_eq!(v.len(), 1, "{what}: {v:?}");
            assert_eq!(v[0].field, field, "{what}");
            assert!(!v[0].message.is_empty());
            assert_eq!(check(PodSecurityLevel::Privileged, &p), vec![], "{what}");
        }
        // Baseline-allowed values are not violations.
        let mut p = plain_pod();
        csc(&mut p).capabilities = Some(Capabilities {
            add: Some(vec!["CHOWN".into(), "NET_BIND_SERVICE".into()]),
            drop: None,
        });
        csc(&mut p).proc_mount = Some("Default".into());
        csc(&mut p).se_linux_options = Some(SELinuxOptions {
            type_: Some("container_init_t".into()),
            level: Some("s0:c1".into()),
            ..Default::default()
        });
        p.containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(0),
            ..Default::default()
        }]);
        assert_eq!(check(PodSecurityLevel::Baseline, &p), vec![]);
    }

    #[test]
    fn restricted_table() {
        let cases: Vec<(&str, Mutation, &str, &str)> = vec![
            (
                "nfs volume",
                Box::new(|p| {
                    p.volumes = Some(vec![Volume {
                        name: "n".into(),
                        nfs: Some(Default::default()),
                        ..Default::default()
                    }])
                }),
                "restricted volume types",
                "spec.volumes[0]",
            ),
            (
                "privilege escalation unset",
                Box::new(|p| csc(p).allow_privilege_escalation = None),
                "allowPrivilegeEscalation != false",
                "spec.containers[0].securityContext.allowPrivilegeEscalation",
            ),
            (
                "runAsNonRoot unset",
                Box::new(|p| psc(p).run_as_non_root = None),
                "runAsNonRoot != true",
                "spec.containers[0].securityContext.runAsNonRoot",
            ),
            (
                "container runAsNonRoot false",
                Box::new(|p| csc(p).run_as_non_root = Some(false)),
                "runAsNonRoot != true",
                "spec.containers[0].securityContext.runAsNonRoot",
            ),
            (
                "runAsUser 0",
                Box::new(|p| csc(p).run_as_user = Some(0)),
                "runAsUser=0",
                "spec.containers[0].securityContext.runAsUser",
            ),
            (
                "pod runAsUser 0",
                Box::new(|p| psc(p).run_as_user = Some(0)),
                "runAsUser=0",
                "spec.securityContext.runAsUser",
            ),
            (
                "no seccomp",
                Box::new(|p| psc(p).seccomp_profile = None),
                "seccompProfile",
                "spec.containers[0].securityContext.seccompProfile.type",
            ),
            (
                "no drop ALL",
                Box::new(|p| csc(p).capabilities.as_mut().unwrap().drop = None),
                "unrestricted capabilities",
                "spec.containers[0].securityContext.capabilities.drop",
            ),
            (
                "add CHOWN",
                Box::new(|p| {
                    csc(p).capabilities.as_mut().unwrap().add = Some(vec!["CHOWN".into()])
                }),
                "unrestricted capabilities",
                "spec.containers[0].securityContext.capabilities.add",
            ),
        ];
        for (what, mutate, check_name, field) in cases {
            let mut p = restricted_pod();
            mutate(&mut p);
            let v = check(PodSecurityLevel::Restricted, &p);
            assert_eq!(v.len(), 1, "{what}: {v:?}");
            assert_eq!(
                (v[0].check, v[0].field.as_str()),
                (check_name, field),
                "{what}"
            );
            assert_eq!(
                check(PodSecurityLevel::Baseline, &p),
                vec![],
                "{what} is baseline-ok"
            );
        }
        // Container-level seccomp satisfies restricted without a pod-level one.
        let mut p = restricted_pod();
        psc(&mut p).seccomp_profile = None;
        csc(&mut p).seccomp_profile = Some(SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some("p.json".into()),
        });
        assert_eq!(check(PodSecurityLevel::Restricted, &p), vec![]);
        // A plain pod fails restricted on several controls at once.
        let v = check(PodSecurityLevel::Restricted, &plain_pod());
        let checks: Vec<&str> = v.iter().map(|v| v.check).collect();
        assert_eq!(
            checks,
            [
                "allowPrivilegeEscalation != false",
                "runAsNonRoot != true",
                "seccompProfile",
                "unrestricted capabilities"
            ]
        );
        assert!(v[0].to_string().contains("container \"app\""));
        // Windows pods skip privilege escalation, seccomp and capabilities.
        let mut win = plain_pod();
        win.os = Some(k8s_openapi::api::core::v1::PodOS {
            name: "windows".into(),
        });
        let checks: Vec<&str> = check(PodSecurityLevel::Restricted, &win)
            .iter()
            .map(|v| v.check)
            .collect();
        assert_eq!(checks, ["runAsNonRoot != true"]);
    }
}

/// PodSecurity admission at `level` for the virtual API server
/// ([`vkube_core::podsecurity::PodSecurityAdmission`]): the same checks as
/// [`check`], reported as pod-security admission words them, one
/// `check (details, …)` per failed control.
#[derive(Debug, Clone, Copy)]
pub struct Enforce(pub PodSecurityLevel);

/// The reason pod-security admission gives for `violations` at `level`:
/// `violates PodSecurity "LEVEL:latest": CHECK (DETAIL, DETAIL), CHECK (…)`,
/// controls in order of first failure.
pub fn admission_message(level: PodSecurityLevel, violations: &[PodSecurityViolation]) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for v in violations {
        match groups.iter_mut().find(|(c, _)| *c == v.check) {
            Some((_, details)) => details.push(&v.message),
            None => groups.push((v.check, vec![&v.message])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(c, d)| format!("{c} ({})", d.join(", ")))
        .collect();
    format!(
        "violates PodSecurity \"{level}:latest\": {}",
        parts.join(", ")
    )
}

impl vkube_core::podsecurity::PodSecurityAdmission for Enforce {
    fn forbidden(&self, pod: &serde_json::Value) -> Option<String> {
        let spec: PodSpec = serde_json::from_value(pod.get("spec")?.clone()).ok()?;
        let violations = check(self.0, &spec);
        (!violations.is_empty()).then(|| admission_message(self.0, &violations))
    }
}
