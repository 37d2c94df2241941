//! Shapes of the generated field table in `table.rs`.

/// One protobuf message type of `k8s.io/api` / `k8s.io/apimachinery`.
pub(super) struct Message {
    /// `<group-pkg>.<version>.<GoName>`, e.g. `apps.v1.DeploymentSpec`.
    pub name: &'static str,
    /// Types whose JSON form differs from their message structure.
    pub special: Special,
    /// Known fields; anything else on the wire is skipped, as gogo's
    /// generated `Unmarshal` does.
    pub fields: &'static [F],
}

/// A field: (number, JSON name, kind, flags [`R`] | [`Z`] | [`I`]).
pub(super) struct F(pub u32, pub &'static str, pub Kind, pub u8);

/// `repeated`: every occurrence appends to a JSON array.
pub(super) const R: u8 = 1;
/// Go pointer scalar: an explicit zero value is kept (no `omitempty` drop).
pub(super) const Z: u8 = 2;
/// Embedded Go struct (`json:",inline"`): its fields go into the parent.
pub(super) const I: u8 = 4;

/// Wire kind of a field and its JSON form.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// `string`: JSON string.
    Str,
    /// `bytes`: JSON base64 string (Go `[]byte`).
    Bytes,
    /// `int32` varint: JSON number.
    I32,
    /// `int64` varint: JSON number.
    I64,
    /// `bool` varint.
    Bool,
    /// Message, index into `MESSAGES`.
    M(u16),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`: values base64 (Secret `data`).
    MapBytes,
    /// `map<string, message>`, value index into `MESSAGES`.
    MapM(u16),
}

/// Messages with a custom JSON form (apimachinery's `MarshalJSON`s).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    /// A plain message: a JSON object.
    None,
    /// `resource.Quantity` {string=1}: the string.
    Quantity,
    /// `intstr.IntOrString` {type=1, intVal=2, strVal=3}: number or string.
    IntOrString,
    /// `metav1.Time` {seconds=1, nanos=2}: RFC 3339 seconds, or null.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds, or null.
    MicroTime,
    /// `metav1.Duration` {duration=1 nanoseconds}: Go duration string.
    /// No served kind uses it yet; the generator emits it when one does.
    #[allow(dead_code)]
    Duration,
    /// `runtime.RawExtension` / `metav1.FieldsV1` {raw=1}: embedded JSON.
    RawJson,
}
