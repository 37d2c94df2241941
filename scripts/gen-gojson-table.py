#!/usr/bin/env python3
"""Generates core/src/gojson/table.rs: how Go's encoding/json writes each
Kubernetes API type, so the API server answers with kube-apiserver's bytes
(field order of the Go structs, omitempty/omitzero, zero values of fields
without omitempty).

Sources: the Go type definitions of k8s.io/api, k8s.io/apimachinery and
k8s.io/kube-aggregator at the Kubernetes version vkube serves (v1.34: tag
v0.34.0 of each), read from three local checkouts:

    python3 scripts/gen-gojson-table.py API APIMACHINERY KUBE_AGGREGATOR [TAG]
    cargo fmt --all

Each checkout is a git repository of that module; TAG (default v0.34.0) is
read with `git show`, so the checkouts may be at any commit. The output is
committed; nothing reads the checkouts at build or test time.

What is read: every `type X struct {...}` (one field per line: `Name Type
\\`json:"name,opts"\\``, embedded structs with `json:",inline"`), every
`type X <other type>` (named strings, ints, maps, slices, aliases), and each
file's imports (to resolve `metav1.Time`, `v1.PodSpec`, ...). Types with a
custom MarshalJSON in apimachinery are special (Time, MicroTime, Duration,
Quantity, IntOrString, RawExtension, FieldsV1).
"""
import re
import subprocess
import sys

API, MACHINERY, AGGREGATOR = sys.argv[1], sys.argv[2], sys.argv[3]
TAG = sys.argv[4] if len(sys.argv) > 4 else "v0.34.0"
OUT = "core/src/gojson/table.rs"

# (checkout, directory, package id, API group or None for non-API packages)
PACKAGES = [
    (MACHINERY, "pkg/apis/meta/v1", "meta.v1", "meta.k8s.io"),
    (MACHINERY, "pkg/version", "version", None),
    (API, "core/v1", "core.v1", ""),
    (API, "apps/v1", "apps.v1", "apps"),
    (API, "batch/v1", "batch.v1", "batch"),
    (API, "autoscaling/v1", "autoscaling.v1", "autoscaling"),
    (API, "autoscaling/v2", "autoscaling.v2", "autoscaling"),
    (API, "rbac/v1", "rbac.v1", "rbac.authorization.k8s.io"),
    (API, "policy/v1", "policy.v1", "policy"),
    (API, "coordination/v1", "coordination.v1", "coordination.k8s.io"),
    (API, "discovery/v1", "discovery.v1", "discovery.k8s.io"),
    (API, "events/v1", "events.v1", "events.k8s.io"),
    (API, "authentication/v1", "authentication.v1", "authentication.k8s.io"),
    (API, "authorization/v1", "authorization.v1", "authorization.k8s.io"),
    (API, "apidiscovery/v2", "apidiscovery.v2", "apidiscovery.k8s.io"),
    (API, "networking/v1", "networking.v1", "networking.k8s.io"),
    (API, "storage/v1", "storage.v1", "storage.k8s.io"),
    (API, "scheduling/v1", "scheduling.v1", "scheduling.k8s.io"),
    (API, "node/v1", "node.v1", "node.k8s.io"),
    (API, "certificates/v1", "certificates.v1", "certificates.k8s.io"),
    (API, "admissionregistration/v1", "admissionregistration.v1", "admissionregistration.k8s.io"),
    (AGGREGATOR, "pkg/apis/apiregistration/v1", "apiregistration.v1", "apiregistration.k8s.io"),
]

# Import path -> package id, for the packages above and the special ones.
PATHS = {
    "k8s.io/apimachinery/pkg/apis/meta/v1": "meta.v1",
    "k8s.io/apimachinery/pkg/version": "version",
    "k8s.io/apimachinery/pkg/api/resource": "resource",
    "k8s.io/apimachinery/pkg/util/intstr": "intstr",
    "k8s.io/apimachinery/pkg/runtime": "runtime",
    "k8s.io/apimachinery/pkg/types": "types",
}
for repo, d, pid, _ in PACKAGES:
    if repo == API:
        PATHS["k8s.io/api/" + d] = pid
PATHS["k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"] = "apiregistration.v1"

SPECIAL = {
    "meta.v1.Time": "Time",
    "meta.v1.MicroTime": "MicroTime",
    "meta.v1.Duration": "Duration",
    "meta.v1.FieldsV1": "Raw",
    "runtime.RawExtension": "Raw",
    "runtime.Object": "Raw",
    "resource.Quantity": "Quantity",
    "intstr.IntOrString": "IntOrString",
}
BUILTIN = {
    "string": "Str", "bool": "Bool", "byte": "Int",
    "int": "Int", "int8": "Int", "int16": "Int", "int32": "Int", "int64": "Int",
    "uint": "Int", "uint8": "Int", "uint16": "Int", "uint32": "Int", "uint64": "Int",
    "float32": "Float", "float64": "Float",
    "types.UID": "Str", "types.NodeName": "Str", "types.NamespacedName": "Str",
}


def git_ls(repo, d):
    out = subprocess.run(["git", "-C", repo, "ls-tree", "--name-only", f"{TAG}:{d}"],
                         check=True, capture_output=True, text=True).stdout
    return [f for f in out.split() if f.endswith(".go") and not f.endswith("_test.go")
            and not f.startswith("zz_generated") and not f.startswith("generated")
            and "swagger_doc" not in f]


def git_show(repo, path):
    return subprocess.run(["git", "-C", repo, "show", f"{TAG}:{path}"],
                          check=True, capture_output=True, text=True).stdout


structs = {}   # "pkg.Name" -> [(json, gotype, opts, pkg, imports)] in order
named = {}     # "pkg.Name" -> (underlying type expr, pkg, imports)
kinds = []     # (group, version, Kind, "pkg.Name")

FIELD = re.compile(r'^\t(\w+)\s+(\S.*?)\s+`([^`]*)`')
EMBED = re.compile(r'^\t(\*?[\w.]+)\s+`([^`]*)`')
JSON_TAG = re.compile(r'json:"([^"]*)"')

for repo, d, pid, group in PACKAGES:
    for f in git_ls(repo, d):
        src = git_show(repo, f"{d}/{f}")
        imports = {}
        head = src[: src.find(")", src.find("import")) + 1] if "import" in src else ""
        for m in re.finditer(r'^(?:import)?\s*(\w+\s+)?"([^"]+)"\s*$', head, re.M):
            path = m.group(2)
            alias = (m.group(1) or path.rsplit("/", 1)[-1]).strip()
            if path in PATHS:
                imports[alias] = PATHS[path]
        lines = src.split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            m = re.match(r'^type (\w+) struct \{\s*$', line)
            if m:
                name = f"{pid}.{m.group(1)}"
                fields = []
                i += 1
                while not lines[i].startswith("}"):
                    fl = lines[i]
                    fm = FIELD.match(fl)
                    em = EMBED.match(fl) if not fm else None
                    if fm:
                        tag = JSON_TAG.search(fm.group(3))
                        if tag and tag.group(1) != "-":
                            parts = tag.group(1).split(",")
                            fields.append((parts[0], fm.group(2), set(parts[1:]), pid, imports))
                    elif em:
                        # An embedded struct: inlined (`json:",inline"`), or
                        # a field named by its tag (ObjectMeta as "metadata").
                        tag = JSON_TAG.search(em.group(2))
                        if tag and tag.group(1) != "-":
                            parts = tag.group(1).split(",")
                            if parts[0] == "":
                                fields.append(("", em.group(1), {"inline"}, pid, imports))
                            else:
                                fields.append((parts[0], em.group(1), set(parts[1:]), pid, imports))
                    i += 1
                structs[name] = fields
                if any(t == "" and g.endswith("TypeMeta") for t, g, _, _, _ in fields) and group is not None:
                    version = pid.split(".")[-1]
                    kinds.append((group, version, m.group(1), name))
            else:
                m = re.match(r'^type (\w+) =?\s*([^\s{(][^{]*?)\s*$', line)
                if m and not m.group(2).startswith("interface") and not m.group(2).startswith("func"):
                    named[f"{pid}.{m.group(1)}"] = (m.group(2), pid, imports)
            i += 1


def qualify(expr, pid, imports):
    if "." in expr:
        alias, name = expr.split(".", 1)
        return f"{imports.get(alias, alias)}.{name}"
    return f"{pid}.{expr}" if expr not in BUILTIN else expr


shapes = {}  # rust shape expr -> shape const name


def shape(expr, pid, imports, depth=0):
    """A Rust shape expression for Go type expression `expr`."""
    if depth > 20:
        raise SystemExit(f"type too deep: {expr}")
    expr = expr.strip()
    if expr.startswith("*"):
        return f"S::Ptr(&{shape(expr[1:], pid, imports, depth + 1)})"
    if expr == "[]byte":
        return "S::Bytes"
    if expr.startswith("[]"):
        return f"S::Slice(&{shape(expr[2:], pid, imports, depth + 1)})"
    if expr.startswith("map["):
        close = expr.index("]")
        return f"S::Map(&{shape(expr[close + 1:], pid, imports, depth + 1)})"
    if expr in ("interface{}", "any"):
        return "S::Any"
    if expr in BUILTIN:
        return f"S::{BUILTIN[expr]}"
    q = qualify(expr, pid, imports)
    if q in BUILTIN:
        return f"S::{BUILTIN[q]}"
    if q in SPECIAL:
        return f"S::{SPECIAL[q]}"
    if q in structs:
        return f"S::Struct({index[q]})"
    if q in named:
        under, upid, uimports = named[q]
        return shape(under, upid, uimports, depth + 1)
    raise SystemExit(f"unknown type {expr} ({q}) in {pid}")


names = sorted(structs)
index = {n: i for i, n in enumerate(names)}

out = []
out.append("// @generated by scripts/gen-gojson-table.py from the Go types of k8s.io/api,\n")
out.append(f"// k8s.io/apimachinery and k8s.io/kube-aggregator {TAG}. Do not edit.\n")
out.append("use super::schema::{F, GoType, INLINE, OMITEMPTY, OMITZERO, S};\n\n")
out.append("/// Every struct type, by package and name; `S::Struct(i)` points here.\n")
out.append("pub(super) static TYPES: &[GoType] = &[\n")
for i, n in enumerate(names):
    fs = []
    for json, gotype, opts, pid, imports in structs[n]:
        flags = []
        if "inline" in opts:
            flags.append("INLINE")
        if "omitempty" in opts:
            flags.append("OMITEMPTY")
        if "omitzero" in opts:
            flags.append("OMITZERO")
        fl = " | ".join(flags) if flags else "0"
        fs.append(f'F("{json}", {shape(gotype, pid, imports)}, {fl})')
    out.append(f'    /* {i} */ GoType {{ name: "{n}", fields: &[{", ".join(fs)}] }},\n')
out.append("];\n\n")
out.append("/// (group, version, kind) of every API kind (a struct embedding TypeMeta),\n")
out.append("/// sorted, with its index in [`TYPES`].\n")
out.append("pub(super) static KINDS: &[(&str, &str, &str, u16)] = &[\n")
for g, v, k, n in sorted(kinds):
    out.append(f'    ("{g}", "{v}", "{k}", {index[n]}),\n')
out.append("];\n")
open(OUT, "w").write("".join(out))
print(f"{OUT}: {len(names)} types, {len(kinds)} kinds")
