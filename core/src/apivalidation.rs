//! Per-kind validation of built-in objects where users notice it, with the
//! field paths and message text of k8s.io/kubernetes pkg/apis/*/validation
//! (`ValidatePod`, `ValidatePodUpdate`, `ValidateService(Update)`,
//! `ValidateDeployment(Update)`, `ValidateJob(Update)`, …).
//!
//! Every function takes defaulted objects (see [`crate::defaults`]) as
//! `serde_json::Value` and returns the [`FieldError`]s found, empty when
//! valid. Values of a wrong JSON type are reported or skipped, never panic.
//! `*_update(new, old)` functions include the create checks of `new`.

use crate::field::FieldError;
use crate::labels::LabelSelector;
use crate::validation as v;
use serde_json::{Value, json};

type Errs = Vec<FieldError>;

fn str_at<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

fn arr_at<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn dns_label(errs: &mut Errs, path: &str, value: &str) {
    for msg in v::is_dns1123_label(value) {
        errs.push(FieldError::invalid(path, &json!(value), &msg));
    }
}

/// `IsValidPortNum`'s message.
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const NON_NEGATIVE: &str = "must be greater than or equal to 0";

fn port_num(errs: &mut Errs, path: &str, value: &Value) {
    match value.as_i64() {
        Some(n) if (1..=65535).contains(&n) => {}
        _ => errs.push(FieldError::invalid(path, value, PORT_RANGE)),
    }
}

fn non_negative(errs: &mut Errs, obj: &Value, key: &str, path: &str) {
    if let Some(n) = obj.get(key).filter(|x| !x.is_null())
        && n.as_i64().is_none_or(|x| x < 0)
    {
        errs.push(FieldError::invalid(path, n, NON_NEGATIVE));
    }
}

fn supported(errs: &mut Errs, obj: &Value, key: &str, path: &str, values: &[&str]) {
    match obj.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => errs.push(FieldError::required(path, "")),
        Some(Value::String(s)) if values.contains(&s.as_str()) => {}
        Some(other) => errs.push(FieldError::not_supported(path, other, values)),
    }
}

fn containers(errs: &mut Errs, spec: &Value, path: &str, list: &str, names: &mut Vec<String>) {
    for (i, c) in arr_at(spec, list).iter().enumerate() {
        let p = format!("{path}.{list}[{i}]");
        let name = str_at(c, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else {
            dns_label(errs, &format!("{p}.name"), name);
            if names.iter().any(|n| n == name) {
                errs.push(FieldError::duplicate(format!("{p}.name"), &json!(name)));
            }
            names.push(name.to_string());
        }
        let image = str_at(c, "image");
        if image.is_empty() {
            errs.push(FieldError::required(format!("{p}.image"), ""));
        } else if image.trim() != image {
            errs.push(FieldError::invalid(
                format!("{p}.image"),
                &json!(image),
                "must not have leading or trailing whitespace",
            ));
        }
        supported(
            errs,
            c,
            "imagePullPolicy",
            &format!("{p}.imagePullPolicy"),
            &["Always", "IfNotPresent", "Never"],
        );
        supported(
            errs,
            c,
            "terminationMessagePolicy",
            &format!("{p}.terminationMessagePolicy"),
            &["File", "FallbackToLogsOnError"],
        );
        for (j, port) in arr_at(c, "ports").iter().enumerate() {
            let pp = format!("{p}.ports[{j}]");
            match port.get("containerPort") {
                None | Some(Value::Null) => {
                    errs.push(FieldError::required(format!("{pp}.containerPort"), ""))
                }
                Some(n) if n.as_i64() == Some(0) => {
                    errs.push(FieldError::required(format!("{pp}.containerPort"), ""))
                }
                Some(n) => port_num(errs, &format!("{pp}.containerPort"), n),
            }
            supported(
                errs,
                port,
                "protocol",
                &format!("{pp}.protocol"),
                &["SCTP", "TCP", "UDP"],
            );
        }
    }
}

/// `ValidatePodSpec` (the parts users meet): at least one container; each
/// container (and init container) with a unique DNS-label name and an
/// image, a supported imagePullPolicy and terminationMessagePolicy, ports
/// in 1..65535 with a supported protocol; volumes with unique DNS-label
/// names; supported restartPolicy and dnsPolicy. `path` is the spec's path,
/// e.g. `spec` or `spec.template.spec`.
pub fn pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !spec.is_object() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    if arr_at(spec, "containers").is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = Vec::new();
    containers(&mut errs, spec, path, "initContainers", &mut names);
    containers(&mut errs, spec, path, "containers", &mut names);
    let mut vols: Vec<&str> = Vec::new();
    for (i, vol) in arr_at(spec, "volumes").iter().enumerate() {
        let p = format!("{path}.volumes[{i}].name");
        let name = str_at(vol, "name");
        if name.is_empty() {
            errs.push(FieldError::required(p, ""));
        } else {
            dns_label(&mut errs, &p, name);
            if vols.contains(&name) {
                errs.push(FieldError::duplicate(p, &json!(name)));
            }
            vols.push(name);
        }
    }
    supported(
        &mut errs,
        spec,
        "restartPolicy",
        &format!("{path}.restartPolicy"),
        &["Always", "OnFailure", "Never"],
    );
    supported(
        &mut errs,
        spec,
        "dnsPolicy",
        &format!("{path}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    errs
}

/// `ValidatePod`: [`pod_spec`] at `spec`, and its ephemeral containers
/// ([`ephemeral_containers`]).
pub fn pod(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = pod_spec(spec, "spec");
    ephemeral_containers(&mut errs, spec, "spec");
    errs
}

/// `ValidatePodCreate`: [`pod`], and no ephemeral containers (they are
/// added through the `ephemeralcontainers` subresource only).
pub fn pod_create(obj: &Value) -> Vec<FieldError> {
    let mut errs = pod(obj);
    if !arr_at(
        obj.get("spec").unwrap_or(&Value::Null),
        "ephemeralContainers",
    )
    .is_empty()
    {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    errs
}

/// The fields of a container an ephemeral container may not set
/// (`allowedEphemeralContainerFields`' disallowed ones, plus the 1.34
/// fields the list does not allow).
const EPHEMERAL_FORBIDDEN: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "restartPolicyRules",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

/// `validateEphemeralContainers`: each one a valid container (name, image,
/// policies) whose name is unique across every container of the pod, whose
/// `targetContainerName` names a container or init container, without the
/// fields that would make it part of the workload (ports, resources,
/// probes, lifecycle: `Forbidden: cannot be set for an Ephemeral
/// Container`) and without volume `subPath`/`subPathExpr`.
fn ephemeral_containers(errs: &mut Errs, spec: &Value, path: &str) {
    let list = arr_at(spec, "ephemeralContainers");
    if list.is_empty() {
        return;
    }
    let others: Vec<&str> = arr_at(spec, "containers")
        .iter()
        .chain(arr_at(spec, "initContainers"))
        .map(|c| str_at(c, "name"))
        .collect();
    let mut all: Vec<String> = others.iter().map(|s| s.to_string()).collect();
    // The common container checks, with their own duplicate detection
    // among the ephemeral containers.
    let mut own = Vec::new();
    containers(errs, spec, path, "ephemeralContainers", &mut own);
    for (i, c) in list.iter().enumerate() {
        let p = format!("{path}.ephemeralContainers[{i}]");
        let name = str_at(c, "name");
        if !name.is_empty() {
            if others.contains(&name) {
                errs.push(FieldError::duplicate(format!("{p}.name"), &json!(name)));
            }
            all.push(name.to_string());
        }
        let target = str_at(c, "targetContainerName");
        if !target.is_empty() && !others.contains(&target) {
            errs.push(FieldError::not_found(
                format!("{p}.targetContainerName"),
                &json!(target),
            ));
        }
        for f in EPHEMERAL_FORBIDDEN {
            let set = match c.get(*f) {
                None | Some(Value::Null) => false,
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Object(o)) => !o.is_empty(),
                Some(_) => true,
            };
            if set {
                errs.push(FieldError::forbidden(
                    format!("{p}.{f}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, m) in arr_at(c, "volumeMounts").iter().enumerate() {
            for f in ["subPath", "subPathExpr"] {
                if !str_at(m, f).is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{p}.volumeMounts[{j}].{f}"),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
}

/// `ValidatePodEphemeralContainersUpdate`: [`pod`] on `new`, and every
/// ephemeral container of `old` still there unchanged (`Forbidden:
/// existing ephemeral containers "x" may not be removed` / `may not be
/// changed`; kube-apiserver appends a Go diff to the latter, not
/// reproduced).
pub fn pod_ephemeral_containers_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = pod(new);
    let new_spec = new.get("spec").unwrap_or(&Value::Null);
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    for o in arr_at(old_spec, "ephemeralContainers") {
        let name = str_at(o, "name");
        match arr_at(new_spec, "ephemeralContainers")
            .iter()
            .find(|n| str_at(n, "name") == name)
        {
            None => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(n) if n != o => errs.push(FieldError::forbidden(
                format!("spec.ephemeralContainers.{name}"),
                &format!("existing ephemeral containers {name:?} may not be changed\n"),
            )),
            Some(_) => {}
        }
    }
    errs
}

/// The `spec: Forbidden` detail of `ValidatePodUpdate` (kube-apiserver
/// appends a Go diff of the specs, which is not reproduced).
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`: [`pod`] on `new`, and the spec may change only in
/// container images, activeDeadlineSeconds, tolerations, schedulingGates
/// removal and terminationGracePeriodSeconds (negative → 1); anything else is
/// `spec: Forbidden: pod updates may not change fields other than …`.
pub fn pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = pod(new);
    let new_spec = new.get("spec").cloned().unwrap_or(Value::Null);
    let mut munged = old.get("spec").cloned().unwrap_or(Value::Null);
    if let (Some(m), Some(n)) = (munged.as_object_mut(), new_spec.as_object()) {
        for list in ["containers", "initContainers"] {
            let new_list = n.get(list).and_then(Value::as_array);
            if let (Some(old_list), Some(new_list)) =
                (m.get_mut(list).and_then(Value::as_array_mut), new_list)
                && old_list.len() == new_list.len()
            {
                for (o, nc) in old_list.iter_mut().zip(new_list) {
                    if let (Some(o), Some(img)) = (o.as_object_mut(), nc.get("image")) {
                        o.insert("image".into(), img.clone());
                    }
                }
            }
        }
        for f in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
            match n.get(f) {
                Some(x) => m.insert(f.into(), x.clone()),
                None => m.remove(f),
            };
        }
        let old_grace = m
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0)
            && n.get("terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                == Some(1)
        {
            m.insert("terminationGracePeriodSeconds".into(), json!(1));
        }
    }
    if munged != new_spec {
        errs.push(FieldError::forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
    errs
}

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// `IsValidIP`'s message (apimachinery 1.34).
pub const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// `ValidateService` (the parts users meet): supported type and
/// sessionAffinity; externalName for ExternalName; ports required unless
/// headless or ExternalName, each with a valid port, protocol and targetPort,
/// names required (DNS labels, unique) when there are several; nodePort
/// forbidden for ClusterIP; clusterIPs valid IPs (or `None`).
pub fn service(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if !spec.is_object() {
        errs.push(FieldError::required("spec", ""));
        return errs;
    }
    supported(&mut errs, spec, "type", "spec.type", SERVICE_TYPES);
    supported(
        &mut errs,
        spec,
        "sessionAffinity",
        "spec.sessionAffinity",
        &["ClientIP", "None"],
    );
    let ty = str_at(spec, "type");
    let headless = str_at(spec, "clusterIP") == "None";
    if ty == "ExternalName" {
        let name = str_at(spec, "externalName");
        if name.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            for msg in v::is_dns1123_subdomain(name.trim_end_matches('.')) {
                errs.push(FieldError::invalid("spec.externalName", &json!(name), &msg));
            }
        }
    }
    let external = matches!(ty, "NodePort" | "LoadBalancer")
        || (ty == "ClusterIP" && !arr_at(spec, "externalIPs").is_empty());
    if external {
        supported(
            &mut errs,
            spec,
            "externalTrafficPolicy",
            "spec.externalTrafficPolicy",
            &["Cluster", "Local"],
        );
    } else if let Some(etp) = spec
        .get("externalTrafficPolicy")
        .filter(|v| !v.is_null() && v.as_str() != Some(""))
    {
        errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            etp,
            "may only be set for externally-accessible services",
        ));
    }
    supported(
        &mut errs,
        spec,
        "internalTrafficPolicy",
        "spec.internalTrafficPolicy",
        &["Cluster", "Local"],
    );
    let ports = arr_at(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = str_at(p, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            }
        } else {
            dns_label(&mut errs, &format!("{pp}.name"), name);
            if names.contains(&name) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), &json!(name)));
            }
            names.push(name);
        }
        port_num(
            &mut errs,
            &format!("{pp}.port"),
            p.get("port").unwrap_or(&Value::Null),
        );
        supported(
            &mut errs,
            p,
            "protocol",
            &format!("{pp}.protocol"),
            &["SCTP", "TCP", "UDP"],
        );
        match p.get("targetPort") {
            Some(t @ Value::Number(_)) => port_num(&mut errs, &format!("{pp}.targetPort"), t),
            Some(Value::String(_)) | None | Some(Value::Null) => {}
            Some(other) => errs.push(FieldError::invalid(
                format!("{pp}.targetPort"),
                other,
                "must be an integer or a string",
            )),
        }
        if ty == "ClusterIP" && p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
            errs.push(FieldError::forbidden(
                format!("{pp}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
    for (i, ip) in arr_at(spec, "clusterIPs").iter().enumerate() {
        let s = ip.as_str().unwrap_or("");
        if i == 0 && s == "None" {
            continue;
        }
        if s.parse::<std::net::IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip,
                INVALID_IP,
            ));
        }
    }
    let cluster_ip = str_at(spec, "clusterIP");
    if let Some(first) = arr_at(spec, "clusterIPs").first()
        && !cluster_ip.is_empty()
        && first.as_str() != Some(cluster_ip)
    {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            spec.get("clusterIPs").unwrap_or(&Value::Null),
            "first value must match `clusterIP`",
        ));
    }
    errs
}

/// `ValidateServiceUpdate`: [`service`] on `new` and
/// `validateUpgradeDowngradeClusterIPs`: unless either side is ExternalName
/// or both are headless, `spec.clusterIPs[i]` may not change
/// (`Invalid value: [<new clusterIPs>]: may not change once set`) and the
/// primary may not be unset.
pub fn service_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = service(new);
    let ty = |s: &Value| {
        s.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if ty(new) == "ExternalName" || ty(old) == "ExternalName" {
        return errs;
    }
    let headless = |s: &Value| s.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    if headless(new) && headless(old) {
        return errs;
    }
    let ips = |s: &Value| -> Vec<Value> {
        s.pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (old_ips, new_ips) = (ips(old), ips(new));
    let shown = Value::Array(new_ips.clone());
    let changed = |i: usize| {
        FieldError::invalid(
            format!("spec.clusterIPs[{i}]"),
            &shown,
            "may not change once set",
        )
    };
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                errs.push(changed(i));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                &shown,
                "primary clusterIP can not be unset",
            ));
        } else if new_ips[0] != old_ips[0] {
            errs.push(changed(0));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(changed(0));
    }
    errs
}

/// How a kind treats a missing (`nil`) selector.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NilSelector {
    /// `Required value`, and (as `LabelSelectorAsSelector(nil)` selects
    /// nothing) the template labels do not match: Deployment, ReplicaSet,
    /// StatefulSet.
    RequiredAndMismatch,
    /// Only the label mismatch: DaemonSet.
    Mismatch,
    /// Only `Required value`: a Job with `manualSelector`.
    Required,
    /// Allowed: a CronJob's job template, a generated Job selector.
    Allowed,
}

/// The workload kinds sharing selector/template rules.
#[derive(Clone, Copy)]
struct Workload {
    /// Message for a selector without requirements.
    empty_selector: &'static str,
    /// Restart policies the pod template may have.
    restart: &'static [&'static str],
    /// What a missing selector means.
    nil: NilSelector,
}

fn selector_and_template(
    errs: &mut Errs,
    spec: &Value,
    path: &str,
    template_path: &str,
    w: Workload,
) {
    let template = spec.get("template").unwrap_or(&Value::Null);
    let labels = template.pointer("/metadata/labels");
    let mismatch = |errs: &mut Errs| {
        errs.push(FieldError::invalid(
            format!("{template_path}.metadata.labels"),
            labels.unwrap_or(&Value::Null),
            "`selector` does not match template `labels`",
        ))
    };
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => match w.nil {
            NilSelector::RequiredAndMismatch => {
                errs.push(FieldError::required(format!("{path}.selector"), ""));
                mismatch(errs);
            }
            NilSelector::Mismatch => mismatch(errs),
            NilSelector::Required => {
                errs.push(FieldError::required(format!("{path}.selector"), ""))
            }
            NilSelector::Allowed => {}
        },
        Some(sel) => {
            let empty = sel
                .get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
                && sel
                    .get("matchExpressions")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
            match LabelSelector::from_label_selector_json(sel) {
                Err(e) => errs.push(FieldError::invalid(
                    format!("{path}.selector"),
                    sel,
                    e.message(),
                )),
                Ok(s) => {
                    if !empty && !s.matches_json(labels) {
                        mismatch(errs);
                    }
                }
            }
            if empty {
                errs.push(FieldError::invalid(
                    format!("{path}.selector"),
                    sel,
                    w.empty_selector,
                ));
            }
        }
    }
    if !template.is_object() {
        errs.push(FieldError::required(template_path, ""));
        return;
    }
    let spec_path = format!("{template_path}.spec");
    let pod = template.get("spec").unwrap_or(&Value::Null);
    errs.extend(pod_spec(pod, &spec_path));
    let policy = str_at(pod, "restartPolicy");
    if !policy.is_empty() && !w.restart.contains(&policy) {
        errs.push(FieldError::not_supported(
            format!("{spec_path}.restartPolicy"),
            &json!(policy),
            w.restart,
        ));
    }
}

fn workload(obj: &Value, w: Workload) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if !spec.is_object() {
        errs.push(FieldError::required("spec", ""));
        return errs;
    }
    non_negative(&mut errs, spec, "replicas", "spec.replicas");
    non_negative(
        &mut errs,
        spec,
        "revisionHistoryLimit",
        "spec.revisionHistoryLimit",
    );
    non_negative(&mut errs, spec, "minReadySeconds", "spec.minReadySeconds");
    selector_and_template(&mut errs, spec, "spec", "spec.template", w);
    errs
}

fn selector_immutable(errs: &mut Errs, new: &Value, old: &Value) {
    let (n, o) = (new.pointer("/spec/selector"), old.pointer("/spec/selector"));
    if n != o {
        errs.push(FieldError::immutable(
            "spec.selector",
            n.unwrap_or(&Value::Null),
        ));
    }
}

const DEPLOYMENT: Workload = Workload {
    empty_selector: "empty selector is invalid for deployment",
    restart: &["Always"],
    nil: NilSelector::RequiredAndMismatch,
};
const STATEFUL_SET: Workload = Workload {
    empty_selector: "empty selector is invalid for statefulset",
    restart: &["Always"],
    nil: NilSelector::RequiredAndMismatch,
};
const DAEMON_SET: Workload = Workload {
    empty_selector: "empty selector is invalid for daemonset",
    restart: &["Always"],
    nil: NilSelector::Mismatch,
};
const JOB: Workload = Workload {
    empty_selector: "empty selector is invalid for job",
    restart: &["OnFailure", "Never"],
    nil: NilSelector::Required,
};

/// `ValidateDeployment`: replicas ≥ 0, a non-empty selector matching the
/// template labels, a valid pod template with restartPolicy `Always`.
pub fn deployment(obj: &Value) -> Vec<FieldError> {
    workload(obj, DEPLOYMENT)
}

/// `ValidateDeploymentUpdate`: [`deployment`] and an immutable `spec.selector` (apps/v1).
pub fn deployment_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = deployment(new);
    selector_immutable(&mut errs, new, old);
    errs
}

/// `ValidateReplicaSet` (same rules and messages as a Deployment's).
pub fn replica_set(obj: &Value) -> Vec<FieldError> {
    workload(obj, DEPLOYMENT)
}

/// `ValidateReplicaSetUpdate`: [`replica_set`] and an immutable selector.
pub fn replica_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = replica_set(new);
    selector_immutable(&mut errs, new, old);
    errs
}

/// `ValidateReplicationController`: non-negative replicas and
/// minReadySeconds, a non-empty `spec.selector` (a label map), a template
/// whose labels the selector matches and whose restartPolicy is `Always`.
pub fn replication_controller(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    non_negative(&mut errs, spec, "minReadySeconds", "spec.minReadySeconds");
    let selector = spec.get("selector").and_then(Value::as_object);
    if selector.is_none_or(|s| s.is_empty()) {
        errs.push(FieldError::required("spec.selector", ""));
    }
    non_negative(&mut errs, spec, "replicas", "spec.replicas");
    match spec.get("template").filter(|t| t.is_object()) {
        None => errs.push(FieldError::required("spec.template", "")),
        Some(t) => {
            let labels = t.pointer("/metadata/labels");
            let matches = selector.is_none_or(|sel| {
                sel.iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            });
            if !matches {
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    labels.unwrap_or(&Value::Null),
                    "selector does not match template labels",
                ));
            }
            let restart = t.pointer("/spec/restartPolicy").and_then(Value::as_str);
            if let Some(r) = restart.filter(|r| *r != "Always") {
                errs.push(FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    &json!(r),
                    &["Always"],
                ));
            }
        }
    }
    errs
}

/// `ValidateHorizontalPodAutoscaler` (autoscaling/v2), the main rules:
/// `minReplicas` at least 1, `maxReplicas` above 0 and not below
/// `minReplicas`, a scale target kind and name, and each Resource metric
/// with a name and a target.
pub fn horizontal_pod_autoscaler(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let min = spec.get("minReplicas").and_then(Value::as_i64);
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            &json!(m),
            "must be greater than or equal to 1",
        ));
    }
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    } else if min.is_some_and(|m| max < m) {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    for f in ["kind", "name"] {
        if str_at(spec.get("scaleTargetRef").unwrap_or(&Value::Null), f).is_empty() {
            errs.push(FieldError::required(format!("spec.scaleTargetRef.{f}"), ""));
        }
    }
    for (i, m) in arr_at(spec, "metrics").iter().enumerate() {
        if str_at(m, "type") != "Resource" {
            continue;
        }
        let path = format!("spec.metrics[{i}].resource");
        let Some(r) = m.get("resource").filter(|r| r.is_object()) else {
            errs.push(FieldError::required(
                path,
                "must populate information for the given metric source",
            ));
            continue;
        };
        if str_at(r, "name").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.name"),
                "must specify a resource name",
            ));
        }
        let target = r.get("target").unwrap_or(&Value::Null);
        let utilization = target.get("averageUtilization").filter(|v| !v.is_null());
        let average = target.get("averageValue").filter(|v| !v.is_null());
        match (utilization, average) {
            (None, None) => errs.push(FieldError::required(
                format!("{path}.target.averageUtilization"),
                "must set either a target raw value or a target utilization",
            )),
            (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                format!("{path}.target.averageValue"),
                "may not set both a target raw value and a target utilization",
            )),
            _ => {}
        }
        if let Some(u) = utilization.and_then(Value::as_i64).filter(|u| *u < 1) {
            errs.push(FieldError::invalid(
                format!("{path}.target.averageUtilization"),
                &json!(u),
                "must be greater than 0",
            ));
        }
    }
    errs
}

/// `ValidateDaemonSet`.
pub fn daemon_set(obj: &Value) -> Vec<FieldError> {
    workload(obj, DAEMON_SET)
}

/// `ValidateDaemonSetUpdate`: [`daemon_set`] and an immutable selector.
pub fn daemon_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = daemon_set(new);
    selector_immutable(&mut errs, new, old);
    errs
}

/// `ValidateStatefulSet`.
pub fn stateful_set(obj: &Value) -> Vec<FieldError> {
    workload(obj, STATEFUL_SET)
}

/// The `spec: Forbidden` detail of `ValidateStatefulSetUpdate`.
pub const STATEFUL_SET_UPDATE_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

/// `ValidateStatefulSetUpdate`: [`stateful_set`], and only replicas,
/// ordinals, template, updateStrategy, persistentVolumeClaimRetentionPolicy
/// and minReadySeconds may change.
pub fn stateful_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = stateful_set(new);
    let strip = |v: &Value| {
        let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = s.as_object_mut() {
            for f in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                m.remove(f);
            }
        }
        s
    };
    if strip(new) != strip(old) {
        errs.push(FieldError::forbidden("spec", STATEFUL_SET_UPDATE_FORBIDDEN));
    }
    errs
}

fn job_spec(errs: &mut Errs, spec: &Value, path: &str, template_path: &str) {
    for f in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
    ] {
        non_negative(errs, spec, f, &format!("{path}.{f}"));
    }
    supported(
        errs,
        spec,
        "completionMode",
        &format!("{path}.completionMode"),
        &["NonIndexed", "Indexed"],
    );
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    // A generated selector is always present on a stored Job; a job
    // template's may be absent.
    let nil = if manual {
        NilSelector::Required
    } else {
        NilSelector::Allowed
    };
    selector_and_template(errs, spec, path, template_path, Workload { nil, ..JOB });
}

/// `ValidateJob`: non-negative counts, a selector matching the template
/// (generated unless `manualSelector`), a valid pod template with
/// restartPolicy `OnFailure` or `Never`.
pub fn job(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if !spec.is_object() {
        errs.push(FieldError::required("spec", ""));
        return errs;
    }
    job_spec(&mut errs, spec, "spec", "spec.template");
    errs
}

/// `ValidateJobUpdate`: [`job`], and `spec.selector`, `spec.template`,
/// `spec.completionMode` are immutable (`field is immutable`), as is
/// `spec.completions` of a NonIndexed Job.
pub fn job_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = job(new);
    selector_immutable(&mut errs, new, old);
    for f in ["template", "completionMode"] {
        let (n, o) = (
            new.pointer(&format!("/spec/{f}")),
            old.pointer(&format!("/spec/{f}")),
        );
        if n != o {
            errs.push(FieldError::immutable(
                format!("spec.{f}"),
                n.unwrap_or(&Value::Null),
            ));
        }
    }
    let indexed = new.pointer("/spec/completionMode").and_then(Value::as_str) == Some("Indexed");
    let (n, o) = (
        new.pointer("/spec/completions"),
        old.pointer("/spec/completions"),
    );
    if !indexed && n != o {
        errs.push(FieldError::immutable(
            "spec.completions",
            n.unwrap_or(&Value::Null),
        ));
    }
    errs
}

/// `ValidateCronJob`: a schedule, a supported concurrencyPolicy, and a valid
/// job template (`spec.jobTemplate.spec…`).
pub fn cron_job(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if !spec.is_object() {
        errs.push(FieldError::required("spec", ""));
        return errs;
    }
    if str_at(spec, "schedule").is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    }
    supported(
        &mut errs,
        spec,
        "concurrencyPolicy",
        "spec.concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
    );
    for f in [
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "startingDeadlineSeconds",
    ] {
        non_negative(&mut errs, spec, f, &format!("spec.{f}"));
    }
    let js = spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null);
    job_spec(
        &mut errs,
        js,
        "spec.jobTemplate.spec",
        "spec.jobTemplate.spec.template",
    );
    errs
}

/// `ValidateCronJobUpdate`: [`cron_job`] on `new`.
pub fn cron_job_update(new: &Value, _old: &Value) -> Vec<FieldError> {
    cron_job(new)
}

const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

fn immutable_data(errs: &mut Errs, new: &Value, old: &Value, fields: &[&str]) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden("immutable", IMMUTABLE_SET));
    }
    for f in fields {
        let empty = |v: Option<&Value>| {
            v.is_none_or(|x| x.is_null() || x.as_object().is_some_and(|m| m.is_empty()))
        };
        let (n, o) = (new.get(*f), old.get(*f));
        if n != o && !(empty(n) && empty(o)) {
            errs.push(FieldError::forbidden(*f, IMMUTABLE_SET));
        }
    }
}

/// `core.MaxSecretSize`: the most data (bytes, summed over all keys) a
/// ConfigMap or Secret may hold, 1 MiB.
pub const MAX_SECRET_SIZE: usize = 1 << 20;

/// The decoded length of a base64 string (`[]byte` fields travel as
/// standard base64 with padding); malformed input counts by its length.
fn base64_decoded_len(s: &str) -> usize {
    let s = s.trim_end_matches('=');
    s.len() * 3 / 4
}

/// `ValidateConfigMap`'s size rule: the lengths of every `data` value and
/// every decoded `binaryData` value together may not exceed
/// [`MAX_SECRET_SIZE`]; the error is on the whole object (`[]: Too long:
/// may not be more than 1048576 bytes`, field path `[]` as upstream's
/// `field.NewPath("")` prints).
pub fn config_map(obj: &Value) -> Vec<FieldError> {
    let strings = |key: &str| -> Vec<&str> {
        obj.get(key)
            .and_then(Value::as_object)
            .map(|m| m.values().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let total: usize = strings("data").iter().map(|v| v.len()).sum::<usize>()
        + strings("binaryData")
            .iter()
            .map(|v| base64_decoded_len(v))
            .sum::<usize>();
    if total > MAX_SECRET_SIZE {
        vec![FieldError::too_long("[]", MAX_SECRET_SIZE)]
    } else {
        Vec::new()
    }
}

/// `ValidateConfigMapUpdate`: once `immutable: true`, neither `immutable`,
/// `data` nor `binaryData` may change (`Forbidden: field is immutable when
/// `immutable` is set`).
pub fn config_map_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = config_map(new);
    immutable_data(&mut errs, new, old, &["data", "binaryData"]);
    errs
}

/// `ValidateSecret`: at most [`MAX_SECRET_SIZE`] bytes of decoded `data`
/// (`data: Too long: may not be more than 1048576 bytes`; `stringData` is
/// folded into `data` before), and the keys a typed Secret needs
/// (`data[tls.crt]: Required value` for `kubernetes.io/tls`, …).
pub fn secret(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let total: usize = obj
        .get("data")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(Value::as_str)
                .map(base64_decoded_len)
                .sum()
        })
        .unwrap_or(0);
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| obj.pointer("/data").and_then(|d| d.get(k)).is_some();
    let required: &[&str] = match str_at(obj, "type") {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        _ => &[],
    };
    for k in required {
        if !has(k) {
            errs.push(FieldError::required(format!("data[{k}]"), ""));
        }
    }
    errs
}

/// `ValidateSecretUpdate`: [`secret`], an immutable `type`, and once
/// `immutable: true` neither `immutable` nor `data` may change.
pub fn secret_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = secret(new);
    let (n, o) = (new.get("type"), old.get("type"));
    if n != o {
        errs.push(FieldError::immutable("type", n.unwrap_or(&Value::Null)));
    }
    immutable_data(&mut errs, new, old, &["data"]);
    errs
}

/// `HighestUserDefinablePriority`: the most a PriorityClass not reserved for
/// the system may be worth.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

/// The system PriorityClasses kube-apiserver creates (`SystemPriorityClasses`):
/// (name, value, description).
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// `ValidatePriorityClass`: a name with the reserved `system-` prefix must
/// be one of [`SYSTEM_PRIORITY_CLASSES`] with its value and
/// `globalDefault: false`; any other class may be worth at most
/// [`HIGHEST_USER_DEFINABLE_PRIORITY`]; `preemptionPolicy` is `Never` or
/// `PreemptLowerPriority`.
pub fn priority_class(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = obj.get("value").and_then(Value::as_i64).unwrap_or(0);
    let global_default = obj
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if name.starts_with("system-") {
        let why = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v, _)) if *v != value => {
                Some(format!("value of {name} PriorityClass must be {v}"))
            }
            Some(_) if global_default => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(why) = why {
            errs.push(FieldError::forbidden(
                "metadata.name",
                &format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {why}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
        ));
    }
    match obj.get("preemptionPolicy").filter(|p| !p.is_null()) {
        Some(p) if p.as_str() == Some("") => {
            errs.push(FieldError::required("preemptionPolicy", ""));
        }
        Some(p) if !matches!(p.as_str(), Some("Never" | "PreemptLowerPriority")) => {
            errs.push(FieldError::not_supported(
                "preemptionPolicy",
                p,
                &["PreemptLowerPriority", "Never"],
            ));
        }
        _ => {}
    }
    errs
}

/// `ValidatePriorityClassUpdate` (the only validation of an update): neither
/// `value` (`Forbidden: may not be changed in an update.`) nor
/// `preemptionPolicy` (immutable) may change.
pub fn priority_class_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.get("value") != old.get("value") {
        errs.push(FieldError::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    if new.get("preemptionPolicy") != old.get("preemptionPolicy") {
        errs.push(FieldError::immutable(
            "preemptionPolicy",
            new.get("preemptionPolicy").unwrap_or(&Value::Null),
        ));
    }
    errs
}

/// `ValidatePersistentVolumeClaim` (create): at least one access mode and a
/// storage request.
pub fn persistent_volume_claim(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if arr_at(spec, "accessModes").is_empty() {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    if spec.pointer("/resources/requests/storage").is_none() {
        errs.push(FieldError::required("spec.resources[storage]", ""));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::to_message).collect()
    }

    fn pod_with(containers: Value) -> Value {
        let mut p = json!({"spec": {"containers": containers}});
        defaults::pod(&mut p);
        p
    }

    #[test]
    fn ephemeral_containers_follow_validate_ephemeral_containers() {
        let pod = |ephemeral: Value| {
            json!({"spec": {"containers": [{"name": "app", "image": "x"}],
                            "ephemeralContainers": ephemeral}})
        };
        let ok =
            pod(json!([{"name": "debugger", "image": "busybox", "targetContainerName": "app"}]));
        assert!(super::pod(&ok).is_empty());
        assert_eq!(
            msgs(&pod_create(&ok)),
            ["spec.ephemeralContainers: Forbidden: cannot be set on create"]
        );
        let bad = pod(
            json!([{"name": "app", "image": "busybox", "targetContainerName": "nope",
                              "ports": [{"containerPort": 80}], "resources": {"limits": {"cpu": "1"}},
                              "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "y"}]}]),
        );
        assert_eq!(
            msgs(&super::pod(&bad)),
            [
                "spec.ephemeralContainers[0].name: Duplicate value: \"app\"",
                "spec.ephemeralContainers[0].targetContainerName: Not found: \"nope\"",
                "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[0].resources: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[0].volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container",
            ]
        );
        let changed =
            pod(json!([{"name": "debugger", "image": "other", "targetContainerName": "app"}]));
        assert_eq!(
            msgs(&pod_ephemeral_containers_update(&changed, &ok)),
            [
                "spec.ephemeralContainers.debugger: Forbidden: existing ephemeral containers \"debugger\" may not be changed\n"
            ]
        );
        let removed = pod(json!([]));
        assert_eq!(
            msgs(&pod_ephemeral_containers_update(&removed, &ok)),
            [
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger\" may not be removed\n"
            ]
        );
        let added = pod(
            json!([{"name": "debugger", "image": "busybox", "targetContainerName": "app"},
                               {"name": "second", "image": "busybox"}]),
        );
        assert!(pod_ephemeral_containers_update(&added, &ok).is_empty());
    }

    #[test]
    fn pod_messages() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (pod_with(json!([{"name": "a", "image": "x"}])), vec![]),
            (pod_with(json!([])), vec!["spec.containers: Required value"]),
            (
                pod_with(json!([{"name": "a"}])),
                vec!["spec.containers[0].image: Required value"],
            ),
            (
                pod_with(json!([{"image": "x"}])),
                vec!["spec.containers[0].name: Required value"],
            ),
            (
                pod_with(json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}])),
                vec!["spec.containers[1].name: Duplicate value: \"a\""],
            ),
            (
                pod_with(json!([{"name": "a", "image": "x", "ports": [{"containerPort": 70000}]}])),
                vec![
                    "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                ],
            ),
            (
                pod_with(json!([{"name": "a", "image": "x", "imagePullPolicy": "Sometimes"}])),
                vec![
                    "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                ],
            ),
        ];
        for (p, want) in cases {
            assert_eq!(msgs(&pod(&p)), want, "{p}");
        }
        let mut bad = pod_with(json!([{"name": "A_b", "image": "x"}]));
        bad["spec"]["restartPolicy"] = json!("Sometimes");
        let m = msgs(&pod(&bad));
        assert!(m[0].starts_with(
            "spec.containers[0].name: Invalid value: \"A_b\": a lowercase RFC 1123 label"
        ));
        assert_eq!(
            m[1],
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn pod_update_allows_images_only() {
        let old = pod_with(json!([{"name": "a", "image": "x:1"}]));
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        new["spec"]["activeDeadlineSeconds"] = json!(5);
        assert!(pod_update(&new, &old).is_empty());
        new["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            msgs(&pod_update(&new, &old)),
            vec![format!("spec: Forbidden: {POD_UPDATE_FORBIDDEN}")]
        );
    }

    fn svc(spec: Value) -> Value {
        let mut s = json!({"spec": spec});
        defaults::service(&mut s);
        defaults::service_ip_families(&mut s);
        s
    }

    #[test]
    fn service_messages() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (svc(json!({"ports": [{"port": 80}]})), vec![]),
            (svc(json!({})), vec!["spec.ports: Required value"]),
            (svc(json!({"clusterIP": "None"})), vec![]),
            (
                svc(json!({"type": "ExternalName"})),
                vec!["spec.externalName: Required value"],
            ),
            (
                svc(json!({"type": "Magic", "ports": [{"port": 1}]})),
                vec![
                    "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                ],
            ),
            (
                svc(json!({"ports": [{"port": 0}]})),
                // targetPort defaults to the port and is checked too.
                vec![
                    "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                    "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                ],
            ),
            (
                svc(json!({"ports": [{"port": 80}, {"name": "b", "port": 81}]})),
                vec!["spec.ports[0].name: Required value"],
            ),
            (
                svc(json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]})),
                vec!["spec.ports[1].name: Duplicate value: \"a\""],
            ),
            (
                svc(json!({"clusterIP": "banana", "ports": [{"port": 80}]})),
                vec![
                    "spec.clusterIPs[0]: Invalid value: \"banana\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ],
            ),
            (
                svc(json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]})),
                vec![
                    "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
                ],
            ),
            (
                svc(
                    json!({"type": "NodePort", "externalTrafficPolicy": "Nearby", "ports": [{"port": 80}]}),
                ),
                vec![
                    "spec.externalTrafficPolicy: Unsupported value: \"Nearby\": supported values: \"Cluster\", \"Local\"",
                ],
            ),
            (
                svc(json!({"ports": [{"port": 80, "nodePort": 30001}]})),
                vec![
                    "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                ],
            ),
        ];
        for (s, want) in cases {
            assert_eq!(msgs(&service(&s)), want, "{s}");
        }
    }

    #[test]
    fn cluster_ip_may_not_change() {
        let old = svc(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.3.4");
        crate::service::prepare_update(&mut new, &old);
        assert_eq!(
            msgs(&service_update(&new, &old)),
            vec!["spec.clusterIPs[0]: Invalid value: [\"10.96.3.4\"]: may not change once set"]
        );
        assert!(service_update(&old, &old).is_empty());
    }

    fn deploy(spec: Value) -> Value {
        let mut d = json!({"spec": spec});
        defaults::deployment(&mut d);
        d
    }

    #[test]
    fn workload_messages() {
        let tpl = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert!(
            deployment(&deploy(
                json!({"selector": {"matchLabels": {"app": "a"}}, "template": tpl})
            ))
            .is_empty()
        );
        assert_eq!(
            msgs(&deployment(&deploy(json!({"template": tpl})))),
            vec![
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"a\"}: `selector` does not match template `labels`",
            ]
        );
        let mut ds = json!({"spec": {"template": tpl}});
        defaults::daemon_set(&mut ds);
        assert_eq!(
            msgs(&daemon_set(&ds)),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"a\"}: `selector` does not match template `labels`"
            ]
        );
        ds["spec"]["selector"] = json!({});
        assert_eq!(
            msgs(&daemon_set(&ds)),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for daemonset"]
        );
        assert_eq!(
            msgs(&deployment(&deploy(
                json!({"selector": {"matchLabels": {"app": "b"}}, "template": tpl})
            ))),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"a\"}: `selector` does not match template `labels`"
            ]
        );
        assert_eq!(
            msgs(&deployment(&deploy(
                json!({"selector": {}, "template": tpl})
            ))),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
        );
        let mut never = tpl.clone();
        never["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            msgs(&deployment(&deploy(
                json!({"selector": {"matchLabels": {"app": "a"}}, "template": never, "replicas": -1})
            ))),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
        let old = deploy(json!({"selector": {"matchLabels": {"app": "a"}}, "template": tpl}));
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "a", "x": "y"}});
        new["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        assert_eq!(
            msgs(&deployment_update(&new, &old)),
            vec![
                "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"a\",\"x\":\"y\"}}: field is immutable"
            ]
        );
    }

    #[test]
    fn job_messages() {
        let mut j = json!({"metadata": {}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        defaults::job(&mut j);
        defaults::job_generate_selector(&mut j, "j", "uid-1");
        assert_eq!(
            msgs(&job(&j)),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ]
        );
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert!(job(&j).is_empty());
        let mut changed = j.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        let m = msgs(&job_update(&changed, &j));
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with("spec.template: Invalid value: {"));
        assert!(m[0].ends_with("}: field is immutable"));
        let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}});
        assert_eq!(msgs(&cron_job(&cj)), vec!["spec.schedule: Required value"]);
    }

    #[test]
    fn immutable_config_map_and_secret() {
        let old = json!({"immutable": true, "data": {"a": "1"}});
        assert!(config_map_update(&old, &old).is_empty());
        let new = json!({"immutable": false, "data": {"a": "2"}});
        assert_eq!(
            msgs(&config_map_update(&new, &old)),
            vec![
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let s_old = json!({"type": "Opaque", "immutable": true, "data": {"a": "MQ=="}});
        let mut s_new = s_old.clone();
        s_new["type"] = json!("kubernetes.io/tls");
        assert_eq!(
            msgs(&secret_update(&s_new, &s_old)),
            vec![
                "data[tls.crt]: Required value",
                "data[tls.key]: Required value",
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
            ]
        );
    }

    #[test]
    fn malformed_objects_never_panic() {
        for bad in [
            json!(null),
            json!(5),
            json!({"spec": []}),
            json!({"spec": {"containers": [1, "x", null]}, "data": 3}),
        ] {
            let _ = pod(&bad);
            let _ = pod_update(&bad, &bad);
            let _ = service_update(&bad, &bad);
            let _ = deployment_update(&bad, &bad);
            let _ = stateful_set_update(&bad, &bad);
            let _ = job_update(&bad, &bad);
            let _ = cron_job(&bad);
            let _ = config_map_update(&bad, &bad);
            let _ = secret_update(&bad, &bad);
            let _ = persistent_volume_claim(&bad);
        }
    }
}
