//! Field errors as `k8s.io/apimachinery/pkg/util/validation/field` builds
//! them (errors.go): one [`FieldError`] per problem, with the `Status` cause
//! reason (`FieldValueRequired`, `FieldValueInvalid`, …), the field path
//! (`spec.containers[0].image`) and the message body kube-apiserver prints
//! after the path (`Required value`, `Invalid value: "x": detail`).
//!
//! Bad values are rendered as apimachinery 1.34 `ErrorBody` does: integers
//! and booleans plainly, strings Go-quoted (`%q`), anything else as compact
//! JSON (kubernetes/kubernetes#132314), e.g. `Invalid value: ["10.96.3.4"]`.

use serde_json::Value;

/// One field-level validation error, ready to become a `Status` cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The cause type, e.g. `FieldValueInvalid` (`field.ErrorType`).
    pub reason: &'static str,
    /// Dotted field path with indices and keys, e.g. `spec.ports[0].port`.
    pub field: String,
    /// The message without the field path (`field.Error.ErrorBody()`).
    pub message: String,
}

/// Renders a bad value as `ErrorBody` does: numbers and booleans with `%v`,
/// strings with `%q`, composite values as JSON, `null` for none.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Null => "null".into(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => other.to_string(),
    }
}

/// Go's `strconv.Quote` for the characters that occur in API values: JSON
/// string escaping is the same for printable text, quotes and backslashes.
pub fn go_quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

impl FieldError {
    /// `field.Required`: `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: with_detail("Required value".into(), detail),
        }
    }

    /// `field.Invalid` of a value that is given already rendered as Go
    /// prints it (e.g. a byte slice's `[]byte{0x68, 0x69}`).
    pub fn invalid_rendered(field: impl Into<String>, rendered: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: with_detail(format!("Invalid value: {rendered}"), detail),
        }
    }

    /// `field.Invalid`: `Invalid value: <value>: detail`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", render_value(value)), detail),
        }
    }

    /// `field.NotSupported`: `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: with_detail(
                format!("Unsupported value: {}", render_value(value)),
                &detail,
            ),
        }
    }

    /// `field.Forbidden`: `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: with_detail("Forbidden".into(), detail),
        }
    }

    /// `field.Duplicate`: `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", render_value(value)),
        }
    }

    /// `field.NotFound`: `Not found: <value>`.
    pub fn not_found(field: impl Into<String>, value: &Value) -> Self {
        Self {
            reason: "FieldValueNotFound",
            field: field.into(),
            message: format!("Not found: {}", render_value(value)),
        }
    }

    /// `field.TooLong` with a byte limit: `Too long: may not be more than N
    /// bytes` (the value itself is never printed).
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        let unit = if max_bytes == 1 { "byte" } else { "bytes" };
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max_bytes} {unit}"),
        }
    }

    /// `ValidateImmutableField`: `Invalid value: <new>: field is immutable`.
    pub fn immutable(field: impl Into<String>, new: &Value) -> Self {
        Self::invalid(field, new, "field is immutable")
    }

    /// The error as kube-apiserver prints it: `<field>: <message>`.
    pub fn to_message(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_match_error_body() {
        let cases = [
            (
                FieldError::required("spec.containers[0].image", ""),
                "spec.containers[0].image: Required value",
            ),
            (
                FieldError::invalid(
                    "spec.clusterIPs[0]",
                    &json!(["10.96.3.4"]),
                    "may not change once set",
                ),
                "spec.clusterIPs[0]: Invalid value: [\"10.96.3.4\"]: may not change once set",
            ),
            (
                FieldError::invalid(
                    "spec.ports[0].port",
                    &json!(0),
                    "must be between 1 and 65535, inclusive",
                ),
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (
                FieldError::not_supported("spec.type", &json!("Foo"), &["ClusterIP", "NodePort"]),
                "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"NodePort\"",
            ),
            (
                FieldError::forbidden("data", "field is immutable when `immutable` is set"),
                "data: Forbidden: field is immutable when `immutable` is set",
            ),
            (
                FieldError::duplicate("spec.containers[1].name", &json!("a")),
                "spec.containers[1].name: Duplicate value: \"a\"",
            ),
            (
                FieldError::immutable("spec.selector", &json!({"matchLabels": {"a": "b"}})),
                "spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"}}: field is immutable",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_message(), want);
        }
    }
}
