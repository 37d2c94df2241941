//! Kubernetes protobuf request bodies to the JSON a JSON client would send.
//!
//! client-go's typed clientsets (and so kubectl's `create <kind>`, `expose`,
//! ...) encode bodies as `application/vnd.kubernetes.protobuf`
//! (k8s.io/apimachinery `runtime/serializer/protobuf`): the 4-byte magic
//! `k8s\0`, then a `runtime.Unknown` message
//! `{typeMeta{apiVersion=1, kind=2}=1, raw=2, contentEncoding=3, contentType=4}`
//! whose `raw` is the object's message from k8s.io/api `generated.proto`.
//!
//! [`decode`] turns such a body into the `serde_json::Value` that Go would
//! print for the same object with `json.Marshal`:
//!
//! - field names, numbers and wire kinds come from the generated table
//!   `table.rs` (`scripts/gen-protobuf-table.py`), limited to the kinds the
//!   shim serves plus `meta/v1` `DeleteOptions`;
//! - gogo's `Marshal` writes every non-pointer field, so a zero scalar
//!   (`""`, `0`, `false`) is dropped as Go's `omitempty` would, except Go
//!   pointer fields (`replicas`, `suspend`, ...) whose explicit zero is kept;
//!   nested messages on the wire are always kept (`resources: {}`), empty
//!   lists and maps are absent, a zero `Time` is absent (k8s 1.34 `omitzero`
//!   on `creationTimestamp`; `null` and absent decode alike in Go);
//! - `Quantity`, `IntOrString`, `Time`, `MicroTime`, `Duration`,
//!   `RawExtension`/`FieldsV1`, `bytes` (base64) take their apimachinery JSON
//!   forms; unknown field numbers are skipped, as gogo does.
//!
//! Hostile input never panics: every length is checked against the bytes
//! left, message nesting is capped at [`MAX_DEPTH`], and output grows at most
//! linearly with the input.

mod schema;
#[rustfmt::skip]
mod table;
mod wire;

use schema::{F, I, Kind, Message, R, Special, Z};
use serde_json::{Map, Value};
use wire::Reader;

/// The magic prefix of every Kubernetes protobuf body (`protoEncodingPrefix`).
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type (`runtime.ContentTypeProtobuf`).
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Deepest message nesting accepted (a CronJob's pod template is ~15).
pub const MAX_DEPTH: usize = 64;

/// Why a body could not be decoded. Texts follow gogo-protobuf's generated
/// `Unmarshal` and apimachinery's protobuf serializer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// No `k8s\0` prefix.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    MissingPrefix,
    /// A length or varint runs past the end of its message.
    #[error("unexpected EOF")]
    UnexpectedEof,
    /// A varint longer than 64 bits.
    #[error("proto: integer overflow")]
    IntegerOverflow,
    /// A length that is negative as Go's `int`.
    #[error("proto: negative length found during unmarshaling")]
    NegativeLength,
    /// Field number 0 (or beyond the protobuf range).
    #[error("proto: illegal tag {0}")]
    IllegalTag(u64),
    /// Wire types 3, 4, 6, 7.
    #[error("proto: illegal wireType {0}")]
    IllegalWireType(u8),
    /// A known field with the wrong wire type.
    #[error("proto: wrong wireType = {wire} for field {field}")]
    WrongWireType {
        /// JSON name of the field.
        field: &'static str,
        /// The wire type found.
        wire: u8,
    },
    /// Nesting beyond [`MAX_DEPTH`].
    #[error("proto: message nesting exceeds {MAX_DEPTH} levels")]
    TooDeep,
    /// A `Time`/`MicroTime` whose year is outside 0..=9999.
    #[error("Time: year outside of range [0,9999]")]
    TimeOutOfRange,
    /// `RawExtension`/`FieldsV1` bytes that are not JSON.
    #[error("{field}: raw bytes are not JSON: {why}")]
    RawNotJson {
        /// JSON name of the field.
        field: &'static str,
        /// serde_json's message.
        why: String,
    },
    /// `runtime.Unknown.contentEncoding` set (no encoding is supported).
    #[error("unsupported content encoding {0:?}")]
    ContentEncoding(String),
    /// A type the table does not know (the shim answers 415).
    #[error("no kind {kind:?} is registered for version {api_version:?}")]
    UnknownKind {
        /// `typeMeta.apiVersion`.
        api_version: String,
        /// `typeMeta.kind`.
        kind: String,
    },
}

/// The `runtime.Unknown` envelope of a protobuf body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `typeMeta.apiVersion`, e.g. `apps/v1` or `v1`.
    pub api_version: String,
    /// `typeMeta.kind`, e.g. `Deployment`.
    pub kind: String,
    /// The object's own message bytes.
    pub raw: &'a [u8],
    /// `contentType`, normally empty.
    pub content_type: String,
}

/// Parses the magic prefix and the `runtime.Unknown` envelope
/// (apimachinery `protobuf.Serializer.Decode`). Errors: [`ProtobufError::MissingPrefix`],
/// wire errors, [`ProtobufError::ContentEncoding`].
pub fn parse_envelope(body: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::MissingPrefix)?;
    let mut env = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_type: String::new(),
    };
    let mut encoding = String::new();
    let mut r = Reader::new(rest);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        let name = match field {
            1 => "typeMeta",
            2 => "raw",
            3 => "contentEncoding",
            4 => "contentType",
            _ => {
                r.skip(wt)?;
                continue;
            }
        };
        if wt != wire::LEN {
            return Err(ProtobufError::WrongWireType {
                field: name,
                wire: wt,
            });
        }
        let b = r.bytes()?;
        match field {
            1 => {
                let mut tm = Reader::new(b);
                while !tm.is_empty() {
                    let (f, w) = tm.key()?;
                    if matches!(f, 1 | 2) && w != wire::LEN {
                        let field = if f == 1 { "apiVersion" } else { "kind" };
                        return Err(ProtobufError::WrongWireType { field, wire: w });
                    }
                    match f {
                        1 => env.api_version = lossy(tm.bytes()?),
                        2 => env.kind = lossy(tm.bytes()?),
                        _ => tm.skip(w)?,
                    }
                }
            }
            2 => env.raw = b,
            3 => encoding = lossy(b),
            _ => env.content_type = lossy(b),
        }
    }
    if !encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    Ok(env)
}

/// True when [`decode_object`] knows `kind` in `api_version`.
pub fn is_known_kind(api_version: &str, kind: &str) -> bool {
    lookup(api_version, kind).is_some()
}

/// Decodes an object's message bytes (an envelope's `raw`) to JSON, with
/// `apiVersion` and `kind` set from the arguments. Errors:
/// [`ProtobufError::UnknownKind`], wire errors, out-of-range times, bad raw JSON.
pub fn decode_object(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ProtobufError> {
    let idx = lookup(api_version, kind).ok_or_else(|| ProtobufError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version.into()));
    obj.insert("kind".into(), Value::String(kind.into()));
    merge_fields(&table::MESSAGES[usize::from(idx)], raw, 0, &mut obj)?;
    Ok(Value::Object(obj))
}

/// [`parse_envelope`] then [`decode_object`]: a whole request body to JSON.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let env = parse_envelope(body)?;
    decode_object(&env.api_version, &env.kind, env.raw)
}

/// Table index of a top-level kind. `DeleteOptions` is registered in every
/// group version (`metav1.AddToGroupVersion`), so any apiVersion finds it.
fn lookup(api_version: &str, kind: &str) -> Option<u16> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    table::KINDS
        .iter()
        .find(|(g, v, k, _)| {
            *k == kind && ((*g == group && *v == version) || *k == "DeleteOptions")
        })
        .map(|e| e.3)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wrong(f: &F, wire: u8) -> ProtobufError {
    ProtobufError::WrongWireType { field: f.1, wire }
}

/// Decodes `bytes` as `msg` and merges its fields into `obj` (a repeated
/// occurrence of a message field merges, as protobuf does).
fn merge_fields(
    msg: &Message,
    bytes: &[u8],
    depth: usize,
    obj: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep);
    }
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let (num, wt) = r.key()?;
        let Some(f) = msg.fields.iter().find(|f| f.0 == num) else {
            r.skip(wt)?;
            continue;
        };
        let repeated = f.3 & R != 0;
        match f.2 {
            Kind::I32 | Kind::I64 | Kind::Bool => {
                if wt == wire::VARINT {
                    let v = scalar(f.2, r.varint()?);
                    put_scalar(obj, f, v);
                } else if wt == wire::LEN && repeated {
                    // packed encoding
                    let mut p = Reader::new(r.bytes()?);
                    while !p.is_empty() {
                        let v = scalar(f.2, p.varint()?);
                        put_scalar(obj, f, v);
                    }
                } else {
                    return Err(wrong(f, wt));
                }
            }
            _ if wt != wire::LEN => return Err(wrong(f, wt)),
            Kind::Str => put_scalar(obj, f, Value::String(lossy(r.bytes()?))),
            Kind::Bytes => put_scalar(obj, f, Value::String(base64(r.bytes()?))),
            Kind::M(i) => {
                let m = &table::MESSAGES[usize::from(i)];
                let b = r.bytes()?;
                if f.3 & I != 0 {
                    merge_fields(m, b, depth + 1, obj)?;
                } else if repeated {
                    let v = decode_message(m, b, depth + 1)?;
                    push(obj, f.1, v);
                } else if m.special == Special::None {
                    let entry = obj.entry(f.1).or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    if let Value::Object(child) = entry {
                        merge_fields(m, b, depth + 1, child)?;
                    }
                } else {
                    // A zero Time / nil RawExtension is `null` in Go's JSON;
                    // k8s 1.34 omits it (`omitzero`), and either way it
                    // decodes as absent.
                    match decode_message(m, b, depth + 1)? {
                        Value::Null => obj.remove(f.1),
                        v => obj.insert(f.1.into(), v),
                    };
                }
            }
            Kind::MapStr | Kind::MapBytes | Kind::MapM(_) => {
                let (k, v) = map_entry(f, r.bytes()?, depth + 1)?;
                let entry = obj.entry(f.1).or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(m) = entry {
                    m.insert(k, v);
                }
            }
        }
    }
    Ok(())
}

/// A varint as the JSON value of its declared kind (int32 truncates like Go).
fn scalar(kind: Kind, v: u64) -> Value {
    match kind {
        Kind::I32 => Value::from(i64::from(v as u32 as i32)),
        Kind::Bool => Value::Bool(v != 0),
        _ => Value::from(v as i64),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

fn push(obj: &mut Map<String, Value>, name: &str, v: Value) {
    let entry = obj.entry(name).or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    if let Value::Array(a) = entry {
        a.push(v);
    }
}

/// Sets a scalar field: repeated appends; a zero value of a non-pointer
/// field is `omitempty`-dropped (and clears an earlier occurrence: last wins).
fn put_scalar(obj: &mut Map<String, Value>, f: &F, v: Value) {
    if f.3 & R != 0 {
        push(obj, f.1, v);
    } else if f.3 & Z == 0 && is_zero(&v) {
        obj.remove(f.1);
    } else {
        obj.insert(f.1.into(), v);
    }
}

/// One `map<string, X>` entry {key=1, value=2}; missing parts are zero
/// values, as in Go.
fn map_entry(f: &F, bytes: &[u8], depth: usize) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut val: Option<Value> = None;
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let (num, wt) = r.key()?;
        if !matches!(num, 1 | 2) {
            r.skip(wt)?;
            continue;
        }
        if wt != wire::LEN {
            return Err(wrong(f, wt));
        }
        let b = r.bytes()?;
        if num == 1 {
            key = lossy(b);
            continue;
        }
        val = Some(match f.2 {
            Kind::MapBytes => Value::String(base64(b)),
            Kind::MapM(i) => decode_message(&table::MESSAGES[usize::from(i)], b, depth)?,
            _ => Value::String(lossy(b)),
        });
    }
    let val = match (val, f.2) {
        (Some(v), _) => v,
        (None, Kind::MapM(i)) => decode_message(&table::MESSAGES[usize::from(i)], &[], depth)?,
        (None, _) => Value::String(String::new()),
    };
    Ok((key, val))
}

/// A whole message to its JSON value (object, or a special type's form).
fn decode_message(m: &Message, bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep);
    }
    if m.special == Special::None {
        let mut obj = Map::new();
        merge_fields(m, bytes, depth, &mut obj)?;
        return Ok(Value::Object(obj));
    }
    let fields = special_fields(bytes)?;
    let int = |n: u32| match fields.iter().rev().find(|(f, _)| *f == n) {
        Some((_, SpecialVal::Int(v))) => *v,
        _ => 0,
    };
    let bytes_of = |n: u32| match fields.iter().rev().find(|(f, _)| *f == n) {
        Some((_, SpecialVal::Bytes(b))) => Some(*b),
        _ => None,
    };
    Ok(match m.special {
        Special::Quantity => {
            let s = lossy(bytes_of(1).unwrap_or_default());
            Value::String(if s.is_empty() { "0".into() } else { s })
        }
        Special::IntOrString => {
            if int(1) == 1 {
                Value::String(lossy(bytes_of(3).unwrap_or_default()))
            } else {
                Value::from(i64::from(int(2) as u32 as i32))
            }
        }
        Special::Time | Special::MicroTime => {
            if bytes.is_empty() {
                Value::Null
            } else {
                let micro = m.special == Special::MicroTime;
                format_time(int(1) as i64, i64::from(int(2) as u32 as i32), micro)?
            }
        }
        Special::Duration => Value::String(go_duration(int(1) as i64)),
        Special::RawJson => match bytes_of(1) {
            None => Value::Null,
            Some(raw) => serde_json::from_slice(raw).map_err(|e| ProtobufError::RawNotJson {
                field: m.name,
                why: e.to_string(),
            })?,
        },
        Special::None => unreachable!("handled above"),
    })
}

enum SpecialVal<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

/// The flat fields of a special type's message (no nesting).
fn special_fields(bytes: &[u8]) -> Result<Vec<(u32, SpecialVal<'_>)>, ProtobufError> {
    let mut out = Vec::new();
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let (num, wt) = r.key()?;
        match wt {
            wire::VARINT => out.push((num, SpecialVal::Int(r.varint()?))),
            wire::LEN => out.push((num, SpecialVal::Bytes(r.bytes()?))),
            w => r.skip(w)?,
        }
    }
    Ok(out)
}

/// `metav1.Time`/`MicroTime` `MarshalJSON`: UTC RFC 3339, seconds
/// (`2006-01-02T15:04:05Z`) or microseconds (`...05.000000Z`); the zero
/// time (year 1) is `null`, as in Go.
fn format_time(secs: i64, nanos: i64, micro: bool) -> Result<Value, ProtobufError> {
    // time.Unix normalises nanoseconds outside [0, 1e9).
    let secs = secs
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or(ProtobufError::TimeOutOfRange)?;
    let nanos = nanos.rem_euclid(1_000_000_000);
    const ZERO_TIME: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    if secs == ZERO_TIME && nanos == 0 {
        return Ok(Value::Null);
    }
    if !(-62_167_219_200..=253_402_300_799).contains(&secs) {
        return Err(ProtobufError::TimeOutOfRange);
    }
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let frac = if micro {
        format!(".{:06}", nanos / 1000)
    } else {
        String::new()
    };
    Ok(Value::String(format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{mi:02}:{s:02}{frac}Z"
    )))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(d: i64) -> String {
    let neg = d < 0;
    let u = d.unsigned_abs();
    fn frac(v: u64, prec: u32) -> (String, u64) {
        let p = 10u64.pow(prec);
        let digits = format!("{:0width$}", v % p, width = prec as usize);
        let digits = digits.trim_end_matches('0');
        let f = if digits.is_empty() {
            String::new()
        } else {
            format!(".{digits}")
        };
        (f, v / p)
    }
    let body = if u == 0 {
        "0s".to_string()
    } else if u < 1_000_000_000 {
        let (unit, prec) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("\u{b5}s", 3)
        } else {
            ("ms", 6)
        };
        let (f, whole) = frac(u, prec);
        format!("{whole}{f}{unit}")
    } else {
        let (f, secs) = frac(u, 9);
        let (s, mins) = (secs % 60, secs / 60);
        let mut out = format!("{s}{f}s");
        if mins > 0 {
            out = format!("{}m{out}", mins % 60);
            let hours = mins / 60;
            if hours > 0 {
                out = format!("{hours}h{out}");
            }
        }
        out
    };
    if neg { format!("-{body}") } else { body }
}

/// Standard base64 with padding (Go's `encoding/json` for `[]byte`).
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
