//! Shapes of the generated type table in `table.rs`.

/// One Go struct type of `k8s.io/api` / `k8s.io/apimachinery`.
pub(super) struct GoType {
    /// `<group-pkg>.<version>.<GoName>`, e.g. `apps.v1.DaemonSetStatus`.
    pub name: &'static str,
    /// The JSON fields in the struct's declaration order.
    pub fields: &'static [F],
}

/// A field: (JSON name, shape, flags [`INLINE`] | [`OMITEMPTY`] | [`OMITZERO`]).
/// An inlined embedded struct has an empty name.
pub(super) struct F(pub &'static str, pub S, pub u8);

/// Embedded struct with `json:",inline"`: its fields go into the parent.
pub(super) const INLINE: u8 = 1;
/// `omitempty`: a zero scalar, nil pointer, empty slice or map is left out
/// (a struct value never is).
pub(super) const OMITEMPTY: u8 = 2;
/// `omitzero` (Go 1.24): a zero value of any type is left out.
pub(super) const OMITZERO: u8 = 4;

/// The Go type of a field, as `encoding/json` writes it.
#[derive(Debug)]
pub(super) enum S {
    /// A string (or a named string type).
    Str,
    /// A bool.
    Bool,
    /// Any integer type.
    Int,
    /// A float (no type of the served packages has one yet).
    #[allow(dead_code)]
    Float,
    /// `[]byte`: a base64 string.
    Bytes,
    /// `interface{}`: whatever JSON it holds.
    Any,
    /// `metav1.Time`: RFC 3339 string; the zero time is `null`.
    Time,
    /// `metav1.MicroTime`: like [`S::Time`] with microseconds.
    MicroTime,
    /// `metav1.Duration`: a Go duration string; zero is `"0s"` (no type
    /// of the served packages has one yet).
    #[allow(dead_code)]
    Duration,
    /// `runtime.RawExtension`, `metav1.FieldsV1`: embedded JSON; unset is `null`.
    Raw,
    /// `resource.Quantity`: a string; zero is `"0"`.
    Quantity,
    /// `intstr.IntOrString`: a number or a string; zero is `0`.
    IntOrString,
    /// A struct value, index into `TYPES`.
    Struct(u16),
    /// A pointer: `null` when nil.
    Ptr(&'static S),
    /// A slice: `null` when nil.
    Slice(&'static S),
    /// A map (keys written sorted, as Go does): `null` when nil.
    Map(&'static S),
}
