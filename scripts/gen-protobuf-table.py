#!/usr/bin/env python3
"""Generates core/src/protobuf/table.rs: the field table that turns the
Kubernetes protobuf encoding of the kinds vkube serves into JSON.

Sources (both from the local cargo registry, nothing is downloaded):
  * k8s-pb 0.9.0   - prost structs generated from k8s.io/api generated.proto:
                     `#[prost(<kind>, <label>, tag = "N")] pub snake_name: T`
                     gives field numbers and wire kinds;
  * k8s-openapi 0.29.0 (v1_34) - serde impls `"jsonName" => Field::Key_x`
                     give the exact JSON field names.
The two are joined per type on the normalised field name (lower case, no
underscores).

Go-side presence cannot be read from the .proto (every field is proto2
`optional`): gogo's generated Marshal writes non-pointer scalars always, so a
zero scalar on the wire is dropped (JSON `omitempty`) unless the Go field is a
pointer. Those pointer scalars are listed by hand in KEEP_ZERO below (from
k8s.io/api types.go); the script fails if one of them does not exist.

Run by hand from the repository root and commit the output:
    python3 scripts/gen-protobuf-table.py
"""
import glob
import os
import re
import sys

REG = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))
PB = next(p for r in REG for p in glob.glob(r + "k8s-pb-0.9.0/src"))
OA = next(p for r in REG for p in glob.glob(r + "k8s-openapi-0.29.0/src/v1_34"))
OUT = "core/src/protobuf/table.rs"

# API group of each served package (apiserver-shim/src/registry.rs), plus
# autoscaling/v1 for the Scale subresource and authentication/v1 for
# TokenRequest (serviceaccounts/token) and SelfSubjectReview.
GROUPS = {
    "api.core.v1": "",
    "api.apps.v1": "apps",
    "api.batch.v1": "batch",
    "api.autoscaling.v1": "autoscaling",
    "api.rbac.v1": "rbac.authorization.k8s.io",
    "api.policy.v1": "policy",
    "api.coordination.v1": "coordination.k8s.io",
    "api.discovery.v1": "discovery.k8s.io",
    "api.events.v1": "events.k8s.io",
    "api.authentication.v1": "authentication.k8s.io",
    "api.autoscaling.v2": "autoscaling",
    "api.admissionregistration.v1": "admissionregistration.k8s.io",
    "api.networking.v1": "networking.k8s.io",
    "api.scheduling.v1": "scheduling.k8s.io",
    "api.storage.v1": "storage.k8s.io",
    "api.node.v1": "node.k8s.io",
}
EXTRA_ROOTS = ["apimachinery.pkg.apis.meta.v1.DeleteOptions"]

# Types whose JSON form is not their protobuf message structure.
SPECIAL = {
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
}

# Go pointer scalars (`*int32`, `*bool`, `*string`, ...): an explicit zero
# value is kept. (Fields required in k8s-openapi, i.e. without `omitempty`
# in Go, keep their zero too; that needs no list.) Keyed "<pkg>.<Message>.<jsonName>", pkg = last two module
# segments.
KEEP_ZERO = """
meta.v1.ObjectMeta.deletionGracePeriodSeconds
meta.v1.OwnerReference.controller meta.v1.OwnerReference.blockOwnerDeletion
meta.v1.DeleteOptions.gracePeriodSeconds meta.v1.DeleteOptions.orphanDependents
meta.v1.DeleteOptions.propagationPolicy
meta.v1.DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential
meta.v1.Preconditions.uid meta.v1.Preconditions.resourceVersion
apps.v1.DeploymentSpec.replicas apps.v1.DeploymentSpec.revisionHistoryLimit
apps.v1.DeploymentSpec.progressDeadlineSeconds apps.v1.DeploymentStatus.collisionCount
apps.v1.ReplicaSetSpec.replicas
apps.v1.StatefulSetSpec.replicas apps.v1.StatefulSetSpec.revisionHistoryLimit
apps.v1.StatefulSetStatus.collisionCount apps.v1.RollingUpdateStatefulSetStrategy.partition
apps.v1.DaemonSetSpec.revisionHistoryLimit apps.v1.DaemonSetStatus.collisionCount
batch.v1.JobSpec.parallelism batch.v1.JobSpec.completions batch.v1.JobSpec.activeDeadlineSeconds
batch.v1.JobSpec.backoffLimit batch.v1.JobSpec.backoffLimitPerIndex batch.v1.JobSpec.maxFailedIndexes
batch.v1.JobSpec.ttlSecondsAfterFinished batch.v1.JobSpec.completionMode batch.v1.JobSpec.suspend
batch.v1.JobSpec.podReplacementPolicy batch.v1.JobSpec.managedBy batch.v1.JobSpec.manualSelector
batch.v1.JobStatus.ready batch.v1.JobStatus.terminating batch.v1.JobStatus.failedIndexes
batch.v1.CronJobSpec.timeZone batch.v1.CronJobSpec.startingDeadlineSeconds batch.v1.CronJobSpec.suspend
batch.v1.CronJobSpec.successfulJobsHistoryLimit batch.v1.CronJobSpec.failedJobsHistoryLimit
batch.v1.PodFailurePolicyOnExitCodesRequirement.containerName
batch.v1.SuccessPolicyRule.succeededIndexes batch.v1.SuccessPolicyRule.succeededCount
core.v1.PodSpec.terminationGracePeriodSeconds core.v1.PodSpec.activeDeadlineSeconds
core.v1.PodSpec.automountServiceAccountToken core.v1.PodSpec.shareProcessNamespace
core.v1.PodSpec.priority core.v1.PodSpec.enableServiceLinks core.v1.PodSpec.preemptionPolicy
core.v1.PodSpec.setHostnameAsFQDN core.v1.PodSpec.hostUsers core.v1.PodSpec.runtimeClassName
core.v1.PodSecurityContext.runAsUser core.v1.PodSecurityContext.runAsGroup
core.v1.PodSecurityContext.runAsNonRoot core.v1.PodSecurityContext.fsGroup
core.v1.PodSecurityContext.fsGroupChangePolicy core.v1.PodSecurityContext.supplementalGroupsPolicy
core.v1.PodSecurityContext.seLinuxChangePolicy
core.v1.SecurityContext.privileged core.v1.SecurityContext.runAsUser core.v1.SecurityContext.runAsGroup
core.v1.SecurityContext.runAsNonRoot core.v1.SecurityContext.readOnlyRootFilesystem
core.v1.SecurityContext.allowPrivilegeEscalation core.v1.SecurityContext.procMount
core.v1.Container.restartPolicy core.v1.EphemeralContainerCommon.restartPolicy
core.v1.Probe.terminationGracePeriodSeconds core.v1.GRPCAction.service
core.v1.SecretVolumeSource.defaultMode core.v1.SecretVolumeSource.optional
core.v1.ConfigMapVolumeSource.defaultMode core.v1.ConfigMapVolumeSource.optional
core.v1.KeyToPath.mode core.v1.DownwardAPIVolumeFile.mode core.v1.DownwardAPIVolumeSource.defaultMode
core.v1.ProjectedVolumeSource.defaultMode core.v1.ServiceAccountTokenProjection.expirationSeconds
core.v1.SecretProjection.optional core.v1.ConfigMapProjection.optional
core.v1.ConfigMapKeySelector.optional core.v1.SecretKeySelector.optional
core.v1.ConfigMapEnvSource.optional core.v1.SecretEnvSource.optional
core.v1.HostPathVolumeSource.type core.v1.CSIVolumeSource.readOnly core.v1.CSIVolumeSource.fsType
core.v1.PersistentVolumeClaimSpec.storageClassName core.v1.PersistentVolumeClaimSpec.volumeMode
core.v1.PersistentVolumeClaimSpec.volumeAttributesClassName
core.v1.ServiceSpec.allocateLoadBalancerNodePorts core.v1.ServiceSpec.ipFamilyPolicy
core.v1.ServiceSpec.loadBalancerClass core.v1.ServiceSpec.internalTrafficPolicy
core.v1.ServiceSpec.trafficDistribution core.v1.ClientIPConfig.timeoutSeconds
core.v1.ServicePort.appProtocol core.v1.EndpointPort.appProtocol
core.v1.ServiceAccount.automountServiceAccountToken
core.v1.ConfigMap.immutable core.v1.Secret.immutable
core.v1.Toleration.tolerationSeconds core.v1.TopologySpreadConstraint.minDomains
core.v1.TopologySpreadConstraint.nodeAffinityPolicy core.v1.TopologySpreadConstraint.nodeTaintsPolicy
core.v1.PodDNSConfigOption.value core.v1.Lifecycle.stopSignal core.v1.ContainerStatus.started
core.v1.PodResourceClaim.resourceClaimName core.v1.PodResourceClaim.resourceClaimTemplateName
core.v1.WindowsSecurityContextOptions.gmsaCredentialSpecName
core.v1.WindowsSecurityContextOptions.gmsaCredentialSpec
core.v1.WindowsSecurityContextOptions.runAsUserName core.v1.WindowsSecurityContextOptions.hostProcess
core.v1.SeccompProfile.localhostProfile core.v1.AppArmorProfile.localhostProfile
policy.v1.PodDisruptionBudgetSpec.unhealthyPodEvictionPolicy
coordination.v1.LeaseSpec.holderIdentity coordination.v1.LeaseSpec.leaseDurationSeconds
coordination.v1.LeaseSpec.leaseTransitions coordination.v1.LeaseSpec.strategy
coordination.v1.LeaseSpec.preferredHolder
discovery.v1.Endpoint.hostname discovery.v1.Endpoint.nodeName discovery.v1.Endpoint.zone
discovery.v1.EndpointConditions.ready discovery.v1.EndpointConditions.serving
discovery.v1.EndpointConditions.terminating
discovery.v1.EndpointPort.name discovery.v1.EndpointPort.protocol discovery.v1.EndpointPort.port
discovery.v1.EndpointPort.appProtocol
authentication.v1.TokenRequestSpec.expirationSeconds
networking.v1.HTTPIngressPath.pathType networking.v1.IngressClassParametersReference.apiGroup
networking.v1.IngressClassParametersReference.scope networking.v1.IngressClassParametersReference.namespace
networking.v1.IngressPortStatus.error networking.v1.IngressSpec.ingressClassName
networking.v1.NetworkPolicyPort.protocol networking.v1.NetworkPolicyPort.endPort
scheduling.v1.PriorityClass.preemptionPolicy
storage.v1.CSIDriverSpec.attachRequired storage.v1.CSIDriverSpec.podInfoOnMount
storage.v1.CSIDriverSpec.storageCapacity storage.v1.CSIDriverSpec.fsGroupPolicy
storage.v1.CSIDriverSpec.requiresRepublish storage.v1.CSIDriverSpec.seLinuxMount
storage.v1.StorageClass.reclaimPolicy storage.v1.StorageClass.allowVolumeExpansion
storage.v1.StorageClass.volumeBindingMode storage.v1.TokenRequest.expirationSeconds
storage.v1.VolumeAttachmentSource.persistentVolumeName storage.v1.VolumeError.errorCode
storage.v1.VolumeNodeResources.count
autoscaling.v2.HPAScalingRules.stabilizationWindowSeconds autoscaling.v2.HPAScalingRules.selectPolicy
autoscaling.v2.HorizontalPodAutoscalerSpec.minReplicas
autoscaling.v2.HorizontalPodAutoscalerStatus.observedGeneration
autoscaling.v2.MetricTarget.averageUtilization autoscaling.v2.MetricValueStatus.averageUtilization
admissionregistration.v1.MatchResources.matchPolicy admissionregistration.v1.MutatingWebhook.failurePolicy
admissionregistration.v1.MutatingWebhook.matchPolicy admissionregistration.v1.MutatingWebhook.sideEffects
admissionregistration.v1.MutatingWebhook.timeoutSeconds admissionregistration.v1.MutatingWebhook.reinvocationPolicy
admissionregistration.v1.ParamRef.parameterNotFoundAction admissionregistration.v1.Rule.scope
admissionregistration.v1.ServiceReference.path admissionregistration.v1.ServiceReference.port
admissionregistration.v1.ValidatingAdmissionPolicySpec.failurePolicy
admissionregistration.v1.ValidatingWebhook.failurePolicy admissionregistration.v1.ValidatingWebhook.matchPolicy
admissionregistration.v1.ValidatingWebhook.sideEffects admissionregistration.v1.ValidatingWebhook.timeoutSeconds
admissionregistration.v1.Validation.reason admissionregistration.v1.WebhookClientConfig.url
""".split()

SCALARS = {"string": "Str", "bytes": "Bytes", "int32": "I32", "int64": "I64", "bool": "Bool"}


def norm(s):
    return s.replace("r#", "").replace("_", "").lower()


def camel(s):
    s = s.replace("r#", "")
    parts = s.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def modpath(root, path):
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep)
    parts[-1] = parts[-1][:-3]
    if parts[-1] == "mod":
        parts.pop()
    return parts


def resolve(mod, ty):
    """Full dotted name of a Rust type path written inside module `mod`."""
    ty = ty.replace(" ", "")
    segs = ty.split("::")
    cur = list(mod)
    while segs and segs[0] == "super":
        cur.pop()
        segs.pop(0)
    return ".".join(cur + segs)


def inner_type(ty):
    ty = ty.replace(" ", "").replace("\n", "")
    for w in ("::core::option::Option<", "::prost::alloc::vec::Vec<"):
        if ty.startswith(w):
            ty = ty[len(w):-1]
    return ty


def value_type(ty):
    """The message type of a field: the Option/Vec element or map value."""
    ty = inner_type(ty)
    m = "::prost::alloc::collections::BTreeMap<"
    if ty.startswith(m):
        ty = ty[len(m):-1].split(",", 1)[1].rstrip(",")
    return ty


def parse_pb():
    msgs = {}
    for path in glob.glob(PB + "/**/*.rs", recursive=True):
        mod = modpath(PB, path)
        if mod == ["lib"]:
            continue
        text = open(path).read()
        for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
            name, body = m.group(1), m.group(2)
            fields = []
            for chunk in body.split("#[prost(")[1:]:
                attr, rest = chunk.split(")]", 1)
                rest = "\n".join(l for l in rest.splitlines() if not l.strip().startswith("///"))
                f = re.match(r"\s*pub (r#\w+|\w+):\s*(.*)$", rest, re.S)
                fname, ty = f.group(1), re.sub(r"\s+", "", f.group(2)).rstrip(",")
                fields.append((attr, fname, ty))
            msgs[".".join(mod + [name])] = (mod, fields)
    return msgs


def parse_openapi():
    names = {}
    for path in glob.glob(OA + "/**/*.rs", recursive=True):
        text = open(path).read()
        sm = re.search(r"pub struct (\w+) \{", text)
        if not sm:
            continue
        mod = modpath(OA, path)[:-1]
        keys = re.findall(r'"([A-Za-z0-9$_\-]+)" => Field::Key_', text)
        body = text[sm.end():text.index("\n}", sm.end())]
        required = {
            norm(f) for f, ty in re.findall(r"\n    pub (r#\w+|\w+): ([^\n]*),", body)
            if not ty.startswith("Option<")
        }
        names[".".join(mod + [norm(sm.group(1))])] = (sm.group(1), {norm(k): k for k in keys}, required)
    return names


def main():
    pb = parse_pb()
    oa = parse_openapi()
    # Roots: every object kind (ObjectMeta at tag 1) of a served package.
    roots, kinds = [], []
    for full, (mod, fields) in sorted(pb.items()):
        pkg = ".".join(mod)
        if pkg not in GROUPS or full.endswith("List"):
            continue
        if fields and fields[0][1] == "metadata" and "ObjectMeta" in fields[0][2] and 'tag = "1"' in fields[0][0]:
            roots.append(full)
            kinds.append((GROUPS[pkg], mod[-1], full.split(".")[-1], full))
    roots += EXTRA_ROOTS
    # Closure over message references.
    order, seen, todo = [], set(), list(roots)
    while todo:
        t = todo.pop(0)
        if t in seen:
            continue
        seen.add(t)
        order.append(t)
        if t in SPECIAL:
            continue
        mod, fields = pb[t]
        for attr, fname, ty in fields:
            if attr.startswith("message") or 'map = "string, message"' in attr:
                todo.append(resolve(mod, value_type(ty)))
    index = {t: i for i, t in enumerate(order)}
    keep = set(KEEP_ZERO)
    used_keep = set()
    out = []
    for t in order:
        sp = SPECIAL.get(t, "None")
        mod, fields = pb[t]
        oakey = ".".join(mod + [norm(t.split(".")[-1])])
        goname, jn, required = oa.get(oakey, (t.split(".")[-1], {}, set()))
        short = ".".join(mod[-2:] + [goname])
        fl = []
        for attr, fname, ty in fields:
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            json = jn.get(norm(fname))
            flags = []
            if json is None:
                if oakey in oa and sp == "None" and attr.startswith("message"):
                    # An embedded Go struct (`json:",inline"`): its fields
                    # belong to the parent object.
                    flags.append("I")
                elif oakey in oa and sp == "None":
                    print(f"note: {t}.{fname} is newer than k8s-openapi v1_34; camelCased", file=sys.stderr)
                json = camel(fname) if "I" not in flags else ""
            if "map" in attr:
                vt = re.search(r'map = "string, (\w+)"', attr).group(1)
                if vt == "message":
                    kind = f"MapM({index[resolve(mod, value_type(ty))]})"
                else:
                    kind = {"string": "MapStr", "bytes": "MapBytes"}[vt]
            else:
                base = attr.split(",")[0].split("=")[0].strip()
                if base == "message":
                    kind = f"M({index[resolve(mod, value_type(ty))]})"
                else:
                    kind = SCALARS[base]
                if "repeated" in attr:
                    flags.append("R")
            key = f"{short}.{json}"
            if key in keep:
                flags.append("Z")
                used_keep.add(key)
            elif norm(fname) in required and "R" not in flags and sp == "None" and "map" not in attr:
                # Required in the OpenAPI schema = no `omitempty` in Go: a
                # zero value is printed too.
                flags.append("Z")
            fl.append(f'F({tag}, "{json}", {kind}, {"|".join(flags) or "0"})')
        out.append(f'    /* {len(out)} */ Message {{ name: "{short}", special: Special::{sp}, fields: &[{", ".join(fl)}] }},')
    missing = keep - used_keep
    if missing:
        sys.exit(f"KEEP_ZERO entries not found: {sorted(missing)}")
    ks = [f'    ("{g}", "{v}", "{k}", {index[full]}),' for g, v, k, full in kinds]
    ks.append(f'    ("meta.k8s.io", "v1", "DeleteOptions", {index["apimachinery.pkg.apis.meta.v1.DeleteOptions"]}),')
    with open(OUT, "w") as f:
        f.write("// @generated by scripts/gen-protobuf-table.py from k8s-pb 0.9.0 (field\n")
        f.write("// numbers, wire kinds) and k8s-openapi 0.29.0 v1_34 (JSON names). Do not edit.\n")
        f.write("use super::schema::{F, I, Kind::*, Message, R, Special, Z};\n\n")
        f.write("/// Every message reachable from a served kind; `M(i)` points into this table.\n")
        f.write("pub(super) static MESSAGES: &[Message] = &[\n" + "\n".join(out) + "\n];\n\n")
        f.write("/// Top-level kinds: (group, version, kind, index into `MESSAGES`).\n")
        f.write("pub(super) static KINDS: &[(&str, &str, &str, u16)] = &[\n" + "\n".join(ks) + "\n];\n")
    print(f"{len(order)} messages, {len(kinds) + 1} kinds -> {OUT}")


main()
