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
pointer. Those pointer scalars come from core/src/gojson/table.rs (generated
from k8s.io/api types.go by scripts/gen-gojson-table.py), KEEP_ZERO below.

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
GOJSON = "core/src/gojson/table.rs"

# API group of each served package (apiserver-shim/src/registry.rs), plus
# autoscaling/v1 for the Scale subresource and authentication/v1 for
# TokenRequest (serviceaccounts/token) and SelfSubjectReview; the review
# kinds of authorization/v1.
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
    "api.authorization.v1": "authorization.k8s.io",
    "api.certificates.v1": "certificates.k8s.io",
    "api.resource.v1": "resource.k8s.io",
    "api.flowcontrol.v1": "flowcontrol.apiserver.k8s.io",
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
# in Go, keep their zero too; that needs no list.) Read from the Go type
# table scripts/gen-gojson-table.py generates (`S::Ptr(&S::Str|Int|Bool)`
# fields), keyed "<pkg>.<Message>.<jsonName>" as the messages below are.
def pointer_scalars():
    text = open(GOJSON).read()
    keys = set()
    for m in re.finditer(r'name: "([\w.]+)",\s*fields: &\[(.*?)\],?\s*\}', text, re.S):
        for f in re.finditer(r'F\(\s*"(\w+)",\s*S::Ptr\(&S::(?:Str|Int|Bool)\)', m.group(2)):
            keys.add(f"{m.group(1)}.{f.group(1)}")
    if not keys:
        sys.exit(f"no pointer scalars found in {GOJSON}")
    return keys


KEEP_ZERO = pointer_scalars()

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
            # rustfmt leaves a trailing comma in a generic split over lines.
            ty = ty[len(w):-1].rstrip(",")
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
    keep = KEEP_ZERO
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
            elif norm(fname) in required and "R" not in flags and sp == "None" and "map" not in attr:
                # Required in the OpenAPI schema = no `omitempty` in Go: a
                # zero value is printed too.
                flags.append("Z")
            fl.append(f'F({tag}, "{json}", {kind}, {"|".join(flags) or "0"})')
        out.append(f'    /* {len(out)} */ Message {{ name: "{short}", special: Special::{sp}, fields: &[{", ".join(fl)}] }},')
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
