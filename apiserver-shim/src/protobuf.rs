//! A deliberately small decoder for `application/vnd.kubernetes.protobuf`
//! request bodies: only the messages client-go's typed clients send for
//! helm's release storage (`Secret`, `ConfigMap`) and for deletes
//! (`DeleteOptions`), turned into the JSON the REST layer works on.
//!
//! Wire format per k8s.io/apimachinery/pkg/runtime/serializer/protobuf: the
//! magic `k8s\0`, then a `runtime.Unknown` (1: typeMeta {1: apiVersion,
//! 2: kind}, 2: raw, 3: contentEncoding, 4: contentType) whose `raw` is the
//! object's message, field numbers from k8s.io/api `generated.proto`.
//! Unknown fields are skipped; `metadata.ownerReferences` and
//! `metadata.managedFields` are not decoded (absent managedFields keep the
//! stored ones). A general protobuf codec would replace this module.

use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value, json};

/// The protobuf media type.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One field of a message: number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {what}"))
}

fn varint(buf: &[u8], pos: &mut usize) -> ApiResult<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(bad("varint too long"))
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> ApiResult<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos = pos
                    .checked_add(8)
                    .filter(|p| *p <= buf.len())
                    .ok_or_else(|| bad("truncated"))?;
                continue;
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| bad("length"))?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(|| bad("truncated field"))?;
                let b = &buf[pos..end];
                pos = end;
                Field::Bytes(b)
            }
            5 => {
                pos = pos
                    .checked_add(4)
                    .filter(|p| *p <= buf.len())
                    .ok_or_else(|| bad("truncated"))?;
                continue;
            }
            _ => return Err(bad("unsupported wire type")),
        };
        out.push((num, f));
    }
    Ok(out)
}

fn string(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8 string"))
}

/// A `map<string, V>` entry (1: key, 2: value).
fn map_entry(b: &[u8]) -> ApiResult<(String, &[u8])> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(k)) => key = string(k)?,
            (2, Field::Bytes(v)) => value = v,
            _ => {}
        }
    }
    Ok((key, value))
}

fn time(b: &[u8]) -> ApiResult<Value> {
    let mut secs = 0i64;
    for (n, f) in fields(b)? {
        if let (1, Field::Varint(v)) = (n, f) {
            secs = v as i64;
        }
    }
    let t = jiff::Timestamp::from_second(secs).map_err(|_| bad("time out of range"))?;
    Ok(json!(crate::meta::rfc3339(t)))
}

fn object_meta(b: &[u8]) -> ApiResult<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => _ = m.insert("name".into(), json!(string(v)?)),
            (2, Field::Bytes(v)) => _ = m.insert("generateName".into(), json!(string(v)?)),
            (3, Field::Bytes(v)) => _ = m.insert("namespace".into(), json!(string(v)?)),
            (5, Field::Bytes(v)) => _ = m.insert("uid".into(), json!(string(v)?)),
            (6, Field::Bytes(v)) => _ = m.insert("resourceVersion".into(), json!(string(v)?)),
            (7, Field::Varint(v)) => _ = m.insert("generation".into(), json!(v as i64)),
            (8, Field::Bytes(v)) => _ = m.insert("creationTimestamp".into(), time(v)?),
            (11, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                labels.insert(k, json!(string(val)?));
            }
            (12, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                annotations.insert(k, json!(string(val)?));
            }
            (14, Field::Bytes(v)) => finalizers.push(json!(string(v)?)),
            _ => {}
        }
    }
    // Empty strings are Go's zero values: leave them out as JSON would.
    m.retain(|_, v| v.as_str() != Some(""));
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

fn base64(b: &[u8]) -> Value {
    use base64::Engine;
    json!(base64::engine::general_purpose::STANDARD.encode(b))
}

/// `v1.Secret`: 1 metadata, 2 data (bytes), 3 type, 4 stringData, 5 immutable.
fn secret(b: &[u8], obj: &mut Map<String, Value>) -> ApiResult<()> {
    let (mut data, mut string_data) = (Map::new(), Map::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => _ = obj.insert("metadata".into(), object_meta(v)?),
            (2, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                data.insert(k, base64(val));
            }
            (3, Field::Bytes(v)) => _ = obj.insert("type".into(), json!(string(v)?)),
            (4, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                string_data.insert(k, json!(string(val)?));
            }
            (5, Field::Varint(v)) => _ = obj.insert("immutable".into(), json!(v != 0)),
            _ => {}
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !string_data.is_empty() {
        obj.insert("stringData".into(), Value::Object(string_data));
    }
    Ok(())
}

/// `v1.ConfigMap`: 1 metadata, 2 data, 3 binaryData, 4 immutable.
fn config_map(b: &[u8], obj: &mut Map<String, Value>) -> ApiResult<()> {
    let (mut data, mut binary) = (Map::new(), Map::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => _ = obj.insert("metadata".into(), object_meta(v)?),
            (2, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                data.insert(k, json!(string(val)?));
            }
            (3, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                binary.insert(k, base64(val));
            }
            (4, Field::Varint(v)) => _ = obj.insert("immutable".into(), json!(v != 0)),
            _ => {}
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    Ok(())
}

/// `meta.v1.DeleteOptions`: 1 gracePeriodSeconds, 2 preconditions {1 uid,
/// 2 resourceVersion}, 3 orphanDependents, 4 propagationPolicy, 5 dryRun.
fn delete_options(b: &[u8], obj: &mut Map<String, Value>) -> ApiResult<()> {
    let mut dry_run = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Varint(v)) => _ = obj.insert("gracePeriodSeconds".into(), json!(v as i64)),
            (2, Field::Bytes(v)) => {
                let mut p = Map::new();
                for (n, f) in fields(v)? {
                    match (n, f) {
                        (1, Field::Bytes(u)) => _ = p.insert("uid".into(), json!(string(u)?)),
                        (2, Field::Bytes(r)) => {
                            _ = p.insert("resourceVersion".into(), json!(string(r)?))
                        }
                        _ => {}
                    }
                }
                obj.insert("preconditions".into(), Value::Object(p));
            }
            (3, Field::Varint(v)) => _ = obj.insert("orphanDependents".into(), json!(v != 0)),
            (4, Field::Bytes(v)) => _ = obj.insert("propagationPolicy".into(), json!(string(v)?)),
            (5, Field::Bytes(v)) => dry_run.push(json!(string(v)?)),
            _ => {}
        }
    }
    if !dry_run.is_empty() {
        obj.insert("dryRun".into(), Value::Array(dry_run));
    }
    Ok(())
}

/// Decodes a protobuf body for `kind` into JSON with `apiVersion`/`kind`
/// from the envelope. `None` when this module does not know `kind` (the
/// caller answers `415`); `400` for a malformed body or an envelope naming
/// another kind.
pub fn decode(body: &[u8], kind: &str) -> Option<ApiResult<Value>> {
    let decoder: fn(&[u8], &mut Map<String, Value>) -> ApiResult<()> = match kind {
        "Secret" => secret,
        "ConfigMap" => config_map,
        "DeleteOptions" => delete_options,
        _ => return None,
    };
    Some((|| {
        let rest = body
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("missing k8s magic"))?;
        let mut obj = Map::new();
        let mut raw: &[u8] = &[];
        for (n, f) in fields(rest)? {
            match (n, f) {
                (1, Field::Bytes(tm)) => {
                    for (n, f) in fields(tm)? {
                        match (n, f) {
                            (1, Field::Bytes(v)) => {
                                _ = obj.insert("apiVersion".into(), json!(string(v)?))
                            }
                            (2, Field::Bytes(v)) => {
                                _ = obj.insert("kind".into(), json!(string(v)?))
                            }
                            _ => {}
                        }
                    }
                }
                (2, Field::Bytes(r)) => raw = r,
                _ => {}
            }
        }
        if let Some(k) = obj.get("kind").and_then(Value::as_str)
            && k != kind
        {
            return Err(bad(&format!("expected {kind}, got {k}")));
        }
        decoder(raw, &mut obj)?;
        Ok(Value::Object(obj))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(n: u64, wire: u64) -> Vec<u8> {
        uvarint((n << 3) | wire)
    }

    fn uvarint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes(n: u64, b: &[u8]) -> Vec<u8> {
        let mut out = tag(n, 2);
        out.extend(uvarint(b.len() as u64));
        out.extend_from_slice(b);
        out
    }

    fn entry(n: u64, k: &str, v: &[u8]) -> Vec<u8> {
        bytes(n, &[bytes(1, k.as_bytes()), bytes(2, v)].concat())
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [bytes(1, api_version.as_bytes()), bytes(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), bytes(1, &tm), bytes(2, raw)].concat()
    }

    #[test]
    fn decodes_a_helm_release_secret() {
        let meta = [
            bytes(1, b"sh.helm.release.v1.rel.v1"),
            bytes(3, b"default"),
            bytes(6, b"42"),
            bytes(8, &[tag(1, 0), vec![0x80, 0xa3, 0x05]].concat()),
            entry(11, "owner", b"helm"),
            entry(11, "status", b"deployed"),
        ]
        .concat();
        let secret = [
            bytes(1, &meta),
            entry(2, "release", b"\x00\x01payload"),
            bytes(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let v = decode(&envelope("v1", "Secret", &secret), "Secret")
            .unwrap()
            .unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": "sh.helm.release.v1.rel.v1", "namespace": "default",
                    "resourceVersion": "42", "creationTimestamp": "1970-01-02T00:00:00Z",
                    "labels": {"owner": "helm", "status": "deployed"}},
                "data": {"release": "AAFwYXlsb2Fk"}
            })
        );
    }

    #[test]
    fn decodes_config_maps_and_delete_options() {
        let cm = [bytes(1, &bytes(1, b"c")), entry(2, "k", b"v")].concat();
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &cm), "ConfigMap")
                .unwrap()
                .unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}})
        );
        let opts = [
            tag(1, 0),
            vec![5],
            bytes(4, b"Background"),
            bytes(5, b"All"),
        ]
        .concat();
        assert_eq!(
            decode(&envelope("v1", "DeleteOptions", &opts), "DeleteOptions")
                .unwrap()
                .unwrap(),
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 5,
                "propagationPolicy": "Background", "dryRun": ["All"]})
        );
    }

    #[test]
    fn rejects_garbage_and_unknown_kinds() {
        assert!(decode(b"k8s\0", "Pod").is_none());
        for body in [&b"nope"[..], b"k8s\0\x0a\xff", b"k8s\0\x0a\x05ab"] {
            assert_eq!(decode(body, "Secret").unwrap().unwrap_err().code, 400);
        }
        let wrong = envelope("v1", "ConfigMap", &[]);
        assert_eq!(decode(&wrong, "Secret").unwrap().unwrap_err().code, 400);
    }
}
