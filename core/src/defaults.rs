//! Defaulting of built-in kinds as kube-apiserver applies it when it decodes
//! a request body (and again when it reads from storage): the generated
//! `SetDefaults_*` functions of k8s.io/kubernetes/pkg/apis/*/v1/defaults.go.
//!
//! Each public function takes a whole object (`serde_json::Value` of the
//! versioned kind) and fills the fields a user then sees in
//! `kubectl get -o yaml`. A field counts as unset when it is absent or
//! `null` (Go pointers) or, for string fields, empty (Go zero value). Values
//! of the wrong JSON type are left alone for validation to report; nothing
//! here panics on malformed input.

use serde_json::{Map, Value, json};

/// Sets `key` when absent or `null` (a nil pointer in Go).
fn default_val(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), v);
    }
}

/// Sets a string `key` when absent, `null` or `""` (Go's zero value).
fn default_str(m: &mut Map<String, Value>, key: &str, v: &str) {
    if m.get(key)
        .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
    {
        m.insert(key.to_string(), json!(v));
    }
}

/// The object at `key`, created (as `{}`) when absent or `null`; `None` if
/// `obj` is not an object or `key` holds a non-object.
fn obj_at<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), json!({}));
    }
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The existing object at `key` (not created).
fn existing_obj<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects of the array at `key` (non-object items are skipped).
fn each_obj(m: &mut Map<String, Value>, key: &str, mut f: impl FnMut(&mut Map<String, Value>)) {
    if let Some(items) = m.get_mut(key).and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

fn spec_of(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.as_object_mut().and_then(|o| obj_at(o, "spec"))
}

/// The tag `ParseImageName` finds in an image reference: the part after the
/// last `:` of the last path component, `latest` when there is neither a
/// tag nor a digest, empty when only a digest is given.
pub fn image_tag(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag.to_string(),
        None if digest => String::new(),
        None => "latest".into(),
    }
}

/// `SetDefaults_Container` (with its probes, ports, env): imagePullPolicy
/// `Always` for a `:latest` or untagged image else `IfNotPresent`,
/// terminationMessagePath `/dev/termination-log`, terminationMessagePolicy
/// `File`, port protocol `TCP`, probe timings, httpGet path/scheme, env
/// fieldRef apiVersion `v1`; `resources: {}` as the Go struct always encodes.
pub fn container(c: &mut Map<String, Value>) {
    if c.get("imagePullPolicy")
        .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    default_val(c, "resources", json!({}));
    each_obj(c, "ports", |p| default_str(p, "protocol", "TCP"));
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = existing_obj(c, probe) {
            default_val(p, "timeoutSeconds", json!(1));
            default_val(p, "periodSeconds", json!(10));
            default_val(p, "successThreshold", json!(1));
            default_val(p, "failureThreshold", json!(3));
            handler(p);
        }
    }
    if let Some(lc) = existing_obj(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = existing_obj(lc, hook) {
                handler(h);
            }
        }
    }
    each_obj(c, "env", |e| {
        if let Some(fr) = existing_obj(e, "valueFrom").and_then(|vf| existing_obj(vf, "fieldRef")) {
            default_str(fr, "apiVersion", "v1");
        }
    });
}

/// `SetDefaults_HTTPGetAction`: path `/`, scheme `HTTP`.
fn handler(h: &mut Map<String, Value>) {
    if let Some(g) = existing_obj(h, "httpGet") {
        default_str(g, "path", "/");
        default_str(g, "scheme", "HTTP");
    }
}

const VOLUME_SOURCES_WITH_MODE: &[&str] = &["secret", "configMap", "downwardAPI", "projected"];

/// `SetDefaults_Volume` and its sources: a volume without a source is an
/// `emptyDir: {}`; secret/configMap/downwardAPI/projected get
/// `defaultMode: 420` (0644); downward fieldRefs get apiVersion `v1`.
fn volume(v: &mut Map<String, Value>) {
    let has_source = v.iter().any(|(k, x)| k != "name" && !x.is_null());
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    for src in VOLUME_SOURCES_WITH_MODE {
        if let Some(s) = existing_obj(v, src) {
            default_val(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = existing_obj(v, "downwardAPI") {
        each_obj(d, "items", |i| {
            if let Some(fr) = existing_obj(i, "fieldRef") {
                default_str(fr, "apiVersion", "v1");
            }
        });
    }
    if let Some(hp) = existing_obj(v, "hostPath") {
        default_val(hp, "type", json!(""));
    }
}

/// `SetDefaults_PodSpec` with its containers and volumes: dnsPolicy
/// `ClusterFirst`, restartPolicy `Always`, terminationGracePeriodSeconds 30,
/// `securityContext: {}`, schedulerName `default-scheduler`.
pub fn pod_spec(spec: &mut Map<String, Value>) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_val(spec, "terminationGracePeriodSeconds", json!(30));
    default_val(spec, "securityContext", json!({}));
    default_str(spec, "schedulerName", "default-scheduler");
    each_obj(spec, "containers", container);
    each_obj(spec, "initContainers", container);
    // `SetDefaults_EphemeralContainer` gives them a container's defaults.
    each_obj(spec, "ephemeralContainers", container);
    each_obj(spec, "volumes", volume);
}

/// A `PodTemplateSpec` (`template` of a workload): its pod spec defaults.
pub fn pod_template(template: &mut Map<String, Value>) {
    if let Some(spec) = obj_at(template, "spec") {
        pod_spec(spec);
    }
}

/// A Pod: `SetDefaults_Pod` (requests default to limits, enableServiceLinks
/// `true`, host ports for hostNetwork) plus [`pod_spec`].
pub fn pod(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    pod_spec(spec);
    default_val(spec, "enableServiceLinks", json!(true));
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["containers", "initContainers"] {
        each_obj(spec, list, |c| {
            if let Some(res) = existing_obj(c, "resources")
                && let Some(limits) = res.get("limits").and_then(Value::as_object).cloned()
                && let Some(requests) = obj_at(res, "requests")
            {
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
            if host_network {
                each_obj(c, "ports", |p| {
                    if p.get("hostPort").is_none_or(|h| h.as_i64() == Some(0))
                        && let Some(cp) = p.get("containerPort").cloned()
                    {
                        p.insert("hostPort".into(), cp);
                    }
                });
            }
        });
    }
}

fn template_of(spec: &mut Map<String, Value>) {
    if let Some(t) = obj_at(spec, "template") {
        pod_template(t);
    }
}

/// `SetDefaults_Service`: type `ClusterIP`, sessionAffinity `None` (with the
/// 10800 s ClientIP timeout when `ClientIP`), port protocol `TCP`, targetPort
/// = port, externalTrafficPolicy `Cluster` for NodePort/LoadBalancer,
/// internalTrafficPolicy `Cluster` unless ExternalName,
/// allocateLoadBalancerNodePorts `true` for LoadBalancer. The IP-family
/// fields are the REST storage's ([`service_ip_families`]).
pub fn service(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_str(spec, "type", "ClusterIP");
    default_str(spec, "sessionAffinity", "None");
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP")
        && let Some(cfg) = obj_at(spec, "sessionAffinityConfig")
        && let Some(ip) = obj_at(cfg, "clientIP")
    {
        default_val(ip, "timeoutSeconds", json!(10800));
    }
    each_obj(spec, "ports", |p| {
        default_str(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset && let Some(port) = p.get("port").cloned() {
            p.insert("targetPort".into(), port);
        }
    });
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if ty == "NodePort" || ty == "LoadBalancer" {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if ty != "ExternalName" {
        default_val(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_val(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// The IP-family fields the service REST storage fills
/// (pkg/registry/core/service/storage `initIPFamilyFields`) on a
/// single-stack IPv4 cluster: none for ExternalName; otherwise ipFamilies
/// `[IPv4]` and ipFamilyPolicy `SingleStack`, except a headless Service
/// without selector, which gets `RequireDualStack`. Also mirrors
/// `spec.clusterIP` into `spec.clusterIPs` (`normalizeClusterIPs` on create).
pub fn service_ip_families(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
        return;
    }
    let cluster_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let no_ips = spec
        .get("clusterIPs")
        .is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty));
    if !cluster_ip.is_empty() && no_ips {
        spec.insert("clusterIPs".into(), json!([cluster_ip]));
    }
    let headless = cluster_ip == "None";
    let has_selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_some_and(|s| !s.is_empty());
    let policy = if headless && !has_selector {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    default_str(spec, "ipFamilyPolicy", policy);
    if spec
        .get("ipFamilies")
        .is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty))
    {
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
    }
}

/// apps/v1 `SetDefaults_Deployment`: replicas 1, strategy `RollingUpdate`
/// with maxUnavailable/maxSurge `25%`, revisionHistoryLimit 10,
/// progressDeadlineSeconds 600, and the template's pod spec defaults.
pub fn deployment(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_val(spec, "replicas", json!(1));
    if let Some(strategy) = obj_at(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = obj_at(strategy, "rollingUpdate")
        {
            default_val(ru, "maxUnavailable", json!("25%"));
            default_val(ru, "maxSurge", json!("25%"));
        }
    }
    default_val(spec, "revisionHistoryLimit", json!(10));
    default_val(spec, "progressDeadlineSeconds", json!(600));
    template_of(spec);
}

/// apps/v1 `SetDefaults_ReplicaSet`: replicas 1 and the template's defaults.
pub fn replica_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_val(spec, "replicas", json!(1));
    template_of(spec);
}

/// autoscaling/v2 `SetDefaults_HorizontalPodAutoscaler`: minReplicas 1; no
/// metrics means CPU utilisation 80 %; a behavior given gets each unset
/// field of its scaleUp (window 0, `Max`, 4 pods or 100 % per 15 s) and
/// scaleDown (`Max`, 100 % per 15 s; no window) rules.
pub fn horizontal_pod_autoscaler(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_val(spec, "minReplicas", json!(1));
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if spec.get("behavior").is_none_or(Value::is_null) {
        return;
    }
    let Some(behavior) = obj_at(spec, "behavior") else {
        return;
    };
    let rules = [
        (
            "scaleUp",
            Some(0),
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                   {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
        (
            "scaleDown",
            None,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
    ];
    for (name, window, policies) in rules {
        let Some(r) = obj_at(behavior, name) else {
            continue;
        };
        if let Some(w) = window {
            default_val(r, "stabilizationWindowSeconds", json!(w));
        }
        default_val(r, "selectPolicy", json!("Max"));
        default_val(r, "policies", policies);
    }
}

/// core/v1 `SetDefaults_ReplicationController`: an empty selector and
/// empty labels become the template's labels, replicas 1, and the
/// template's pod defaults.
pub fn replication_controller(obj: &mut Value) {
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = labels {
        let empty = |v: Option<&Value>| v.and_then(Value::as_object).is_none_or(|m| m.is_empty());
        if empty(obj.pointer("/spec/selector")) {
            obj["spec"]["selector"] = labels.clone();
        }
        if obj.is_object() && empty(obj.pointer("/metadata/labels")) {
            let md = obj.as_object_mut().and_then(|o| obj_at(o, "metadata"));
            if let Some(md) = md {
                md.insert("labels".into(), labels);
            }
        }
    }
    let Some(spec) = spec_of(obj) else { return };
    default_val(spec, "replicas", json!(1));
    template_of(spec);
}

/// apps/v1 `SetDefaults_StatefulSet`: podManagementPolicy `OrderedReady`,
/// updateStrategy `RollingUpdate` with partition 0,
/// persistentVolumeClaimRetentionPolicy `Retain`/`Retain`, replicas 1,
/// revisionHistoryLimit 10, and the defaults of the template and of each
/// volumeClaimTemplate ([`persistent_volume_claim`]).
pub fn stateful_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(us) = obj_at(spec, "updateStrategy") {
        default_str(us, "type", "RollingUpdate");
        if us.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = obj_at(us, "rollingUpdate")
        {
            default_val(ru, "partition", json!(0));
        }
    }
    if let Some(p) = obj_at(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(p, "whenDeleted", "Retain");
        default_str(p, "whenScaled", "Retain");
    }
    default_val(spec, "replicas", json!(1));
    default_val(spec, "revisionHistoryLimit", json!(10));
    template_of(spec);
    if let Some(items) = spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for pvc in items.iter_mut().filter(|v| v.is_object()) {
            persistent_volume_claim(pvc);
        }
    }
}

/// apps/v1 `SetDefaults_DaemonSet`: updateStrategy `RollingUpdate` with
/// maxUnavailable 1 and maxSurge 0, revisionHistoryLimit 10, template defaults.
pub fn daemon_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    if let Some(us) = obj_at(spec, "updateStrategy") {
        default_str(us, "type", "RollingUpdate");
        if us.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = obj_at(us, "rollingUpdate")
        {
            default_val(ru, "maxUnavailable", json!(1));
            default_val(ru, "maxSurge", json!(0));
        }
    }
    default_val(spec, "revisionHistoryLimit", json!(10));
    template_of(spec);
}

/// The job-spec part of batch/v1 `SetDefaults_Job`: completions and
/// parallelism 1 when both are unset, parallelism 1, backoffLimit 6 (max
/// int32 with backoffLimitPerIndex), completionMode `NonIndexed`, suspend
/// `false`, podReplacementPolicy `TerminatingOrFailed` (`Failed` with a
/// podFailurePolicy), and the template's pod spec defaults.
fn job_spec(spec: &mut Map<String, Value>) {
    let unset = |m: &Map<String, Value>, k: &str| m.get(k).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    default_val(spec, "parallelism", json!(1));
    let backoff = if unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i32::MAX as i64
    };
    default_val(spec, "backoffLimit", json!(backoff));
    default_str(spec, "completionMode", "NonIndexed");
    default_val(spec, "suspend", json!(false));
    let replacement = if unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    default_str(spec, "podReplacementPolicy", replacement);
    template_of(spec);
}

/// batch/v1 `SetDefaults_Job` (see [`job_spec`]); a Job without labels takes
/// its template's labels.
pub fn job(obj: &mut Value) {
    if let Some(spec) = spec_of(obj) {
        job_spec(spec);
    }
    job_labels_from_template(obj);
}

/// A Job without labels takes its pod template's labels (`SetDefaults_Job`).
pub fn job_labels_from_template(obj: &mut Value) {
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned();
    let Some(labels) = template_labels else {
        return;
    };
    let Some(md) = obj.as_object_mut().and_then(|o| obj_at(o, "metadata")) else {
        return;
    };
    if md
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
        && md
            .get("labels")
            .is_none_or(|l| l.is_object() || l.is_null())
    {
        md.insert("labels".into(), Value::Object(labels));
    }
}

/// The selector a Job gets unless `spec.manualSelector` is true (batch
/// strategy `generateSelector`): template labels `controller-uid`,
/// `batch.kubernetes.io/controller-uid` (= uid), `job-name`,
/// `batch.kubernetes.io/job-name` (= name) where missing, and
/// `selector.matchLabels["batch.kubernetes.io/controller-uid"]`. Then the Job
/// labels default from the template again, as a read from storage would.
pub fn job_generate_selector(obj: &mut Value, name: &str, uid: &str) {
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let Some(spec) = spec_of(obj) else { return };
    if let Some(labels) = obj_at(spec, "template")
        .and_then(|t| obj_at(t, "metadata"))
        .and_then(|m| obj_at(m, "labels"))
    {
        for k in ["job-name", "batch.kubernetes.io/job-name"] {
            labels.entry(k).or_insert_with(|| json!(name));
        }
        for k in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            labels.entry(k).or_insert_with(|| json!(uid));
        }
    }
    if let Some(ml) = obj_at(spec, "selector").and_then(|s| obj_at(s, "matchLabels")) {
        ml.entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| json!(uid));
    }
    job_labels_from_template(obj);
}

/// batch/v1 `SetDefaults_CronJob`: concurrencyPolicy `Allow`, suspend
/// `false`, successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1, and the
/// pod spec defaults of `jobTemplate.spec.template`.
pub fn cron_job(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_val(spec, "suspend", json!(false));
    default_val(spec, "successfulJobsHistoryLimit", json!(3));
    default_val(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(js) = obj_at(spec, "jobTemplate").and_then(|t| obj_at(t, "spec")) {
        template_of(js);
    }
}

/// core/v1 `SetDefaults_PersistentVolumeClaim(Spec)`: volumeMode
/// `Filesystem`, status phase `Pending`.
pub fn persistent_volume_claim(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(spec) = obj_at(o, "spec") {
        default_val(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = obj_at(o, "status") {
        default_str(status, "phase", "Pending");
    }
}

/// core/v1 `SetDefaults_PersistentVolume`: reclaim policy `Retain`,
/// volumeMode `Filesystem`, status phase `Pending`.
pub fn persistent_volume(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(spec) = obj_at(o, "spec") {
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        default_val(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = obj_at(o, "status") {
        default_str(status, "phase", "Pending");
    }
}

/// scheduling/v1 `SetDefaults_PriorityClass`: preemptionPolicy
/// `PreemptLowerPriority`.
pub fn priority_class(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        default_val(o, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// core/v1 `SetDefaults_Secret`: type `Opaque`.
pub fn secret(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        default_str(o, "type", "Opaque");
    }
}

/// core/v1 `SetDefaults_Endpoints`: each subset port's protocol `TCP`.
pub fn endpoints(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    each_obj(o, "subsets", |s| {
        each_obj(s, "ports", |p| default_str(p, "protocol", "TCP"));
    });
}

/// discovery/v1 `SetDefaults_EndpointPort`: protocol `TCP`.
pub fn endpoint_slice(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    each_obj(o, "ports", |p| default_str(p, "protocol", "TCP"));
}

/// core/v1 `SetDefaults_NodeStatus`: allocatable defaults to capacity.
pub fn node(obj: &mut Value) {
    let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if status.get("allocatable").is_none_or(Value::is_null)
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".into(), capacity);
    }
}

/// core/v1 `SetDefaults_LimitRangeItem` for `Container` items: default
/// limits from `max`, default requests from the default limits, then from
/// `min` (empty maps stay absent, as Go omits them).
pub fn limit_range(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    each_obj(spec, "limits", |item| {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            return;
        }
        let map = |item: &Map<String, Value>, k: &str| {
            item.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let mut default = map(item, "default");
        for (k, v) in map(item, "max") {
            default.entry(k).or_insert(v);
        }
        let mut request = map(item, "defaultRequest");
        for (k, v) in default.iter().chain(map(item, "min").iter()) {
            request.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, m) in [("default", default), ("defaultRequest", request)] {
            if !m.is_empty() && item.get(k).is_none_or(|v| v.is_object() || v.is_null()) {
                item.insert(k.into(), Value::Object(m));
            }
        }
    });
}

/// rbac/v1 `SetDefaults_(Cluster)RoleBinding` and `SetDefaults_Subject`:
/// roleRef apiGroup and User/Group subjects' apiGroup
/// `rbac.authorization.k8s.io`.
pub fn role_binding(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(r) = existing_obj(o, "roleRef") {
        default_str(r, "apiGroup", "rbac.authorization.k8s.io");
    }
    each_obj(o, "subjects", |s| {
        if matches!(
            s.get("kind").and_then(Value::as_str),
            Some("User" | "Group")
        ) {
            default_str(s, "apiGroup", "rbac.authorization.k8s.io");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(v: &'a Value, p: &str) -> &'a Value {
        v.pointer(p).unwrap_or(&Value::Null)
    }

    #[test]
    fn image_tags() {
        for (image, tag) in [
            ("nginx", "latest"),
            ("nginx:latest", "latest"),
            ("nginx:1.27", "1.27"),
            ("localhost:5000/app", "latest"),
            ("localhost:5000/app:v1", "v1"),
            ("nginx@sha256:abc", ""),
            ("nginx:1.2@sha256:abc", "1.2"),
            ("", "latest"),
        ] {
            assert_eq!(image_tag(image), tag, "{image}");
        }
    }

    #[test]
    fn bare_pod_gets_kube_apiserver_defaults() {
        let mut p = json!({"spec": {"containers": [
            {"name": "a", "image": "nginx"},
            {"name": "b", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
             "resources": {"limits": {"cpu": "1"}},
             "readinessProbe": {"httpGet": {"port": 80}},
             "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
        ], "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}});
        pod(&mut p);
        let cases: &[(&str, Value)] = &[
            ("/spec/restartPolicy", json!("Always")),
            ("/spec/dnsPolicy", json!("ClusterFirst")),
            ("/spec/terminationGracePeriodSeconds", json!(30)),
            ("/spec/schedulerName", json!("default-scheduler")),
            ("/spec/securityContext", json!({})),
            ("/spec/enableServiceLinks", json!(true)),
            ("/spec/containers/0/imagePullPolicy", json!("Always")),
            ("/spec/containers/1/imagePullPolicy", json!("IfNotPresent")),
            (
                "/spec/containers/0/terminationMessagePath",
                json!("/dev/termination-log"),
            ),
            ("/spec/containers/0/terminationMessagePolicy", json!("File")),
            ("/spec/containers/0/resources", json!({})),
            ("/spec/containers/1/ports/0/protocol", json!("TCP")),
            ("/spec/containers/1/resources/requests/cpu", json!("1")),
            ("/spec/containers/1/readinessProbe/timeoutSeconds", json!(1)),
            ("/spec/containers/1/readinessProbe/periodSeconds", json!(10)),
            (
                "/spec/containers/1/readinessProbe/successThreshold",
                json!(1),
            ),
            (
                "/spec/containers/1/readinessProbe/failureThreshold",
                json!(3),
            ),
            ("/spec/containers/1/readinessProbe/httpGet/path", json!("/")),
            (
                "/spec/containers/1/readinessProbe/httpGet/scheme",
                json!("HTTP"),
            ),
            (
                "/spec/containers/1/env/0/valueFrom/fieldRef/apiVersion",
                json!("v1"),
            ),
            ("/spec/volumes/0/emptyDir", json!({})),
            ("/spec/volumes/1/secret/defaultMode", json!(420)),
        ];
        for (path, want) in cases {
            assert_eq!(at(&p, path), want, "{path}");
        }
        // Set values stay.
        let mut q = json!({"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Never"}]}});
        pod(&mut q);
        assert_eq!(at(&q, "/spec/restartPolicy"), "Never");
        assert_eq!(at(&q, "/spec/terminationGracePeriodSeconds"), 0);
        assert_eq!(at(&q, "/spec/containers/0/imagePullPolicy"), "Never");
    }

    #[test]
    fn service_defaults_by_type() {
        let mut s = json!({"spec": {"ports": [{"port": 80}, {"port": 81, "targetPort": "http"}]}});
        service(&mut s);
        service_ip_families(&mut s);
        for (path, want) in [
            ("/spec/type", json!("ClusterIP")),
            ("/spec/sessionAffinity", json!("None")),
            ("/spec/ports/0/protocol", json!("TCP")),
            ("/spec/ports/0/targetPort", json!(80)),
            ("/spec/ports/1/targetPort", json!("http")),
            ("/spec/internalTrafficPolicy", json!("Cluster")),
            ("/spec/ipFamilies", json!(["IPv4"])),
            ("/spec/ipFamilyPolicy", json!("SingleStack")),
            ("/spec/externalTrafficPolicy", Value::Null),
        ] {
            assert_eq!(at(&s, path), &want, "{path}");
        }
        let mut lb = json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}});
        service(&mut lb);
        assert_eq!(at(&lb, "/spec/externalTrafficPolicy"), "Cluster");
        assert_eq!(at(&lb, "/spec/allocateLoadBalancerNodePorts"), true);
        assert_eq!(
            at(&lb, "/spec/sessionAffinityConfig/clientIP/timeoutSeconds"),
            10800
        );
        let mut ext = json!({"spec": {"type": "ExternalName", "externalName": "x.example"}});
        service(&mut ext);
        service_ip_families(&mut ext);
        assert_eq!(at(&ext, "/spec/internalTrafficPolicy"), &Value::Null);
        assert_eq!(at(&ext, "/spec/ipFamilies"), &Value::Null);
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        service(&mut headless);
        service_ip_families(&mut headless);
        assert_eq!(at(&headless, "/spec/clusterIPs"), &json!(["None"]));
        assert_eq!(at(&headless, "/spec/ipFamilyPolicy"), "RequireDualStack");
    }

    #[test]
    fn workload_defaults() {
        let tpl = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let mut d = json!({"spec": {"template": tpl.clone()}});
        deployment(&mut d);
        for (path, want) in [
            ("/spec/replicas", json!(1)),
            ("/spec/strategy/type", json!("RollingUpdate")),
            ("/spec/strategy/rollingUpdate/maxUnavailable", json!("25%")),
            ("/spec/strategy/rollingUpdate/maxSurge", json!("25%")),
            ("/spec/revisionHistoryLimit", json!(10)),
            ("/spec/progressDeadlineSeconds", json!(600)),
            ("/spec/template/spec/restartPolicy", json!("Always")),
            (
                "/spec/template/spec/containers/0/imagePullPolicy",
                json!("IfNotPresent"),
            ),
            ("/spec/template/spec/enableServiceLinks", Value::Null),
        ] {
            assert_eq!(at(&d, path), &want, "{path}");
        }
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        deployment(&mut recreate);
        assert_eq!(at(&recreate, "/spec/strategy/rollingUpdate"), &Value::Null);

        let mut sts =
            json!({"spec": {"template": tpl.clone(), "volumeClaimTemplates": [{"spec": {}}]}});
        stateful_set(&mut sts);
        assert_eq!(at(&sts, "/spec/podManagementPolicy"), "OrderedReady");
        assert_eq!(at(&sts, "/spec/updateStrategy/rollingUpdate/partition"), 0);
        assert_eq!(
            at(
                &sts,
                "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted"
            ),
            "Retain"
        );
        assert_eq!(
            at(&sts, "/spec/volumeClaimTemplates/0/spec/volumeMode"),
            "Filesystem"
        );
        assert_eq!(
            at(&sts, "/spec/volumeClaimTemplates/0/status/phase"),
            "Pending"
        );

        let mut ds = json!({"spec": {"template": tpl.clone()}});
        daemon_set(&mut ds);
        assert_eq!(
            at(&ds, "/spec/updateStrategy/rollingUpdate/maxUnavailable"),
            1
        );
        assert_eq!(at(&ds, "/spec/updateStrategy/rollingUpdate/maxSurge"), 0);

        let mut rs = json!({"spec": {"template": tpl.clone()}});
        replica_set(&mut rs);
        assert_eq!(at(&rs, "/spec/replicas"), 1);
    }

    #[test]
    fn batch_defaults() {
        let mut j = json!({"metadata": {}, "spec": {"template": {"metadata": {"labels": {"x": "y"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        job(&mut j);
        for (path, want) in [
            ("/spec/completions", json!(1)),
            ("/spec/parallelism", json!(1)),
            ("/spec/backoffLimit", json!(6)),
            ("/spec/completionMode", json!("NonIndexed")),
            ("/spec/suspend", json!(false)),
            ("/spec/podReplacementPolicy", json!("TerminatingOrFailed")),
            ("/metadata/labels", json!({"x": "y"})),
        ] {
            assert_eq!(at(&j, path), &want, "{path}");
        }
        let mut par = json!({"spec": {"parallelism": 3}});
        job(&mut par);
        assert_eq!(at(&par, "/spec/completions"), &Value::Null);

        job_generate_selector(&mut j, "pi", "u-1");
        assert_eq!(
            at(&j, "/spec/selector/matchLabels"),
            &json!({"batch.kubernetes.io/controller-uid": "u-1"})
        );
        assert_eq!(at(&j, "/spec/template/metadata/labels/job-name"), "pi");
        assert_eq!(
            at(&j, "/spec/template/metadata/labels/controller-uid"),
            "u-1"
        );

        let mut cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        cron_job(&mut cj);
        assert_eq!(at(&cj, "/spec/concurrencyPolicy"), "Allow");
        assert_eq!(at(&cj, "/spec/suspend"), false);
        assert_eq!(at(&cj, "/spec/successfulJobsHistoryLimit"), 3);
        assert_eq!(at(&cj, "/spec/failedJobsHistoryLimit"), 1);
        assert_eq!(
            at(&cj, "/spec/jobTemplate/spec/template/spec/dnsPolicy"),
            "ClusterFirst"
        );
    }

    #[test]
    fn small_kinds() {
        let mut s = json!({});
        secret(&mut s);
        assert_eq!(s["type"], "Opaque");
        let mut rb = json!({"roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa"}]});
        role_binding(&mut rb);
        assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(rb["subjects"][1].get("apiGroup").is_none());
        let mut ep = json!({"subsets": [{"ports": [{"port": 1}]}]});
        endpoints(&mut ep);
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn node_and_limit_range() {
        let mut n = json!({"status": {"capacity": {"cpu": "4"}}});
        node(&mut n);
        assert_eq!(n["status"]["allocatable"], json!({"cpu": "4"}));
        let mut lr = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}, "default": {"memory": "64Mi"}},
            {"type": "Pod", "max": {"cpu": "4"}},
        ]}});
        limit_range(&mut lr);
        assert_eq!(
            lr["spec"]["limits"][0]["default"],
            json!({"cpu": "2", "memory": "64Mi"})
        );
        assert_eq!(
            lr["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "2", "memory": "64Mi"})
        );
        assert!(lr["spec"]["limits"][1].get("default").is_none());
    }

    #[test]
    fn malformed_input_is_left_alone() {
        for mut v in [
            json!(null),
            json!({"spec": 5}),
            json!({"spec": {"containers": "x", "template": []}}),
            json!({"spec": {"ports": [1, null]}}),
        ] {
            pod(&mut v);
            service(&mut v);
            deployment(&mut v);
            job(&mut v);
            cron_job(&mut v);
            stateful_set(&mut v);
            daemon_set(&mut v);
            node(&mut v);
            limit_range(&mut v);
            persistent_volume_claim(&mut v);
            role_binding(&mut v);
            endpoints(&mut v);
        }
    }
}
