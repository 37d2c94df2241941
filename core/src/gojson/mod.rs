//! JSON as kube-apiserver writes it: Go's `encoding/json` applied to the
//! Kubernetes Go types.
//!
//! kube-apiserver encodes a response by marshalling its Go struct with a
//! `json.Encoder`, so clients see:
//! - the fields in the struct's declaration order (`kind`, `apiVersion`,
//!   `metadata`, `spec`, `status`; inside them likewise), map keys sorted;
//! - a field without `omitempty` always, its zero value when unset (`0`,
//!   `""`, `false`, `null` for a nil slice, map or pointer, the zero struct);
//!   with `omitempty` a zero scalar, nil pointer or empty slice/map left out,
//!   a struct value never; with `omitzero` any zero value left out;
//! - `<`, `>`, `&`, U+2028 and U+2029 in strings escaped as `\u003c` …;
//! - a newline after the body.
//!
//! [`to_vec`] does that for a JSON value naming a kind of the generated table
//! (`table.rs`, from the Go types of k8s.io/api and k8s.io/apimachinery
//! v0.34.0 by `scripts/gen-gojson-table.py`), including lists, `Status`,
//! `Table` and objects embedded in `RawExtension`s (a watch event's object,
//! a table row's object). Members the Go type does not have are written
//! after the known ones, in key order, so nothing stored is lost; a value
//! naming no known kind is written with the same string escaping, keys
//! sorted.

mod schema;
#[allow(clippy::all)]
mod table;

use schema::{F, INLINE, OMITEMPTY, OMITZERO, S};
use serde_json::{Map, Value};

/// The JSON body kube-apiserver would send for `value`, newline included.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value);
    out.push(b'\n');
    out
}

/// Writes `value` as [`to_vec`] does, without the newline (for a value
/// embedded in a larger document, such as a watch event line).
pub fn write(out: &mut Vec<u8>, value: &Value) {
    match value.as_object().and_then(kind_of) {
        Some(i) => write_struct(out, i, value.as_object().expect("an object")),
        None => write_plain(out, value),
    }
}

/// [`to_vec`] for a value of Go type `go_type` (`<pkg>.<version>.<Name>` as
/// in the table, e.g. `version.Info`) that names no kind of its own, such
/// as the `/version` document; an unknown type is written plainly.
pub fn to_vec_as(go_type: &str, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    match (
        table::TYPES.iter().position(|t| t.name == go_type),
        value.as_object(),
    ) {
        (Some(i), Some(obj)) => write_struct(&mut out, i as u16, obj),
        _ => write_plain(&mut out, value),
    }
    out.push(b'\n');
    out
}

/// The table index of the Go type an object names by `apiVersion` and
/// `kind`. Core `v1` also holds apimachinery's unversioned kinds (`Status`,
/// `APIResourceList`, `APIGroupList`, `APIVersions`) as kube-apiserver
/// writes them.
fn kind_of(obj: &Map<String, Value>) -> Option<u16> {
    let kind = obj.get("kind")?.as_str()?;
    let api_version = obj.get("apiVersion")?.as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let find = |g: &str| {
        table::KINDS
            .binary_search_by(|(kg, kv, kk, _)| (*kg, *kv, *kk).cmp(&(g, version, kind)))
            .ok()
            .map(|i| table::KINDS[i].3)
    };
    find(group).or_else(|| (group.is_empty()).then(|| find("meta.k8s.io")).flatten())
}

/// Whether struct `i` has a field named `name` (inlined ones included).
fn has_field(i: u16, name: &str) -> bool {
    table::TYPES[i as usize]
        .fields
        .iter()
        .any(|F(n, s, flags)| {
            if flags & INLINE != 0 {
                matches!(s, S::Struct(j) if has_field(*j, name))
            } else {
                *n == name
            }
        })
}

fn write_struct(out: &mut Vec<u8>, i: u16, obj: &Map<String, Value>) {
    out.push(b'{');
    let mut first = true;
    let known = write_fields(out, i, obj, &mut first);
    // Members the Go type lacks (looked for only when some key was not a
    // field: the common case costs nothing).
    if known < obj.len() {
        for (k, v) in obj {
            if !has_field(i, k) {
                sep(out, &mut first);
                write_str(out, k);
                out.push(b':');
                write_plain(out, v);
            }
        }
    }
    out.push(b'}');
}

fn sep(out: &mut Vec<u8>, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
}

/// Writes struct `i`'s fields from `obj`; returns how many of `obj`'s keys
/// were fields.
fn write_fields(out: &mut Vec<u8>, i: u16, obj: &Map<String, Value>, first: &mut bool) -> usize {
    let mut known = 0;
    for F(name, shape, flags) in table::TYPES[i as usize].fields {
        if flags & INLINE != 0 {
            if let S::Struct(j) = shape {
                known += write_fields(out, *j, obj, first);
            }
            continue;
        }
        let v = obj.get(*name);
        known += usize::from(v.is_some());
        let v = v.filter(|v| !v.is_null());
        if omitted(shape, *flags, v) {
            continue;
        }
        sep(out, first);
        write_str(out, name);
        out.push(b':');
        match v {
            Some(v) => write_value(out, shape, v),
            None => write_zero(out, shape),
        }
    }
    known
}

/// Whether a field of `shape` with `flags` whose value is `v` (`None`:
/// unset or null) is left out.
fn omitted(shape: &S, flags: u8, v: Option<&Value>) -> bool {
    if flags & OMITZERO != 0 && is_zero(shape, v) {
        return true;
    }
    if flags & OMITEMPTY == 0 {
        return false;
    }
    match shape {
        // A struct value is never empty to encoding/json.
        S::Struct(_)
        | S::Time
        | S::MicroTime
        | S::Duration
        | S::Raw
        | S::Quantity
        | S::IntOrString => false,
        S::Ptr(_) | S::Any => v.is_none(),
        S::Slice(_) | S::Map(_) | S::Bytes | S::Str | S::Bool | S::Int | S::Float => {
            v.is_none_or(is_empty_value)
        }
    }
}

/// `""`, `0`, `false`, `[]`, `{}`: what omitempty leaves out.
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Go's zero value test (`omitzero`): unset; or a zero scalar; or, for a
/// struct, every field zero. A present slice or map, even empty, is not.
fn is_zero(shape: &S, v: Option<&Value>) -> bool {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return true;
    };
    match shape {
        S::Str | S::Bool | S::Int | S::Float | S::Time | S::MicroTime => is_empty_value(v),
        S::Struct(i) => v.as_object().is_some_and(|o| {
            table::TYPES[*i as usize]
                .fields
                .iter()
                .all(|F(name, s, flags)| {
                    if flags & INLINE != 0 {
                        matches!(s, S::Struct(_)) && is_zero(s, Some(v))
                    } else {
                        is_zero(s, o.get(*name))
                    }
                })
        }),
        _ => false,
    }
}

/// The zero value of `shape`, for a field without omitempty that is unset.
fn write_zero(out: &mut Vec<u8>, shape: &S) {
    match shape {
        S::Str => out.extend_from_slice(b"\"\""),
        S::Bool => out.extend_from_slice(b"false"),
        S::Int | S::Float | S::IntOrString => out.push(b'0'),
        S::Duration => out.extend_from_slice(b"\"0s\""),
        S::Quantity => out.extend_from_slice(b"\"0\""),
        S::Struct(i) => write_struct(out, *i, &Map::new()),
        S::Bytes
        | S::Any
        | S::Time
        | S::MicroTime
        | S::Raw
        | S::Ptr(_)
        | S::Slice(_)
        | S::Map(_) => out.extend_from_slice(b"null"),
    }
}

fn write_value(out: &mut Vec<u8>, shape: &S, v: &Value) {
    match (shape, v) {
        (S::Struct(i), Value::Object(o)) => write_struct(out, *i, o),
        (S::Ptr(inner), v) => write_value(out, inner, v),
        (S::Slice(inner), Value::Array(items)) => {
            write_array(out, items, |out, item| write_element(out, inner, item))
        }
        (S::Map(inner), Value::Object(o)) => {
            write_map(out, o, |out, item| write_element(out, inner, item))
        }
        (S::Raw, v) => write(out, v),
        _ => write_plain(out, v),
    }
}

/// A slice element or map value of type `shape`; `null` is the element
/// type's zero value (a nil pointer, slice or map stays `null`).
fn write_element(out: &mut Vec<u8>, shape: &S, item: &Value) {
    if item.is_null() {
        write_zero(out, shape);
    } else {
        write_value(out, shape, item);
    }
}

/// Any JSON, keys in map order, strings escaped as Go does.
fn write_plain(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Writing into a Vec cannot fail.
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => write_array(out, items, write),
        Value::Object(o) => write_map(out, o, write),
    }
}

/// `[a,b,…]`, each item written by `item`.
fn write_array(out: &mut Vec<u8>, items: &[Value], item: impl Fn(&mut Vec<u8>, &Value)) {
    out.push(b'[');
    for (n, v) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        item(out, v);
    }
    out.push(b']');
}

/// `{"k":v,…}` in key order (Go sorts map keys), each value written by
/// `value`.
fn write_map(out: &mut Vec<u8>, map: &Map<String, Value>, value: impl Fn(&mut Vec<u8>, &Value)) {
    out.push(b'{');
    for (n, (k, v)) in map.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        value(out, v);
    }
    out.push(b'}');
}

/// Bytes a JSON string needs escaped as Go's encoder writes it with HTML
/// escaping on: 0 none, b'u' as `\u00XX`, else the short escape's letter.
/// The UTF-8 lead byte 0xE2 marks a possible U+2028/U+2029.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'<' as usize] = b'u';
    t[b'>' as usize] = b'u';
    t[b'&' as usize] = b'u';
    t[0xe2] = 0xe2;
    t
};

/// A JSON string as Go's encoder writes it with HTML escaping on (the
/// default of `json.Encoder`): `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`,
/// other control characters, `<`, `>`, `&`, U+2028 and U+2029 as `\u00XX`.
fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let e = ESCAPE[b as usize];
        if e == 0 {
            i += 1;
            continue;
        }
        // U+2028 and U+2029 are E2 80 A8 / E2 80 A9.
        let line_sep = e == 0xe2
            && bytes.get(i + 1) == Some(&0x80)
            && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9));
        if e == 0xe2 && !line_sep {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if line_sep {
            out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
        } else {
            if e == b'u' {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            } else {
                out.push(b'\\');
                out.push(e);
            }
            i += 1;
        }
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests;
