//! `application/vnd.kubernetes.protobuf` request bodies, as client-go's typed
//! clientsets (kubectl `create <kind>`, `expose`, ...) send them.
//!
//! The pure decoding is [`vkube_core::protobuf`]; this module maps its errors
//! to the `Status` kube-apiserver answers (handlers/create.go
//! `transformDecodeError`), so the decoded `Value` enters the same pipeline
//! as a JSON body. Responses stay JSON, which client-go accepts.

use serde_json::Value;
use vkube_core::protobuf::{self, ProtobufError};

use crate::error::{ApiError, ApiResult};

/// The protobuf media type (`runtime.ContentTypeProtobuf`).
pub const CONTENT_TYPE: &str = protobuf::CONTENT_TYPE;

/// Decodes a protobuf body for an endpoint taking `expected_kind`.
///
/// * not `k8s\0` + `runtime.Unknown`: `400 BadRequest` "the object provided is
///   unrecognized (must be of type Deployment): <why> (<hex of 30 bytes>)";
/// * a kind the decoder has no table for: `415 UnsupportedMediaType`;
/// * a malformed object: `400 BadRequest` "Deployment in version \"v1\"
///   cannot be handled as a Deployment: <why>".
///
/// The result carries `apiVersion`/`kind` from the envelope; checking them
/// against the endpoint is left to the common pipeline, as for JSON.
pub fn decode_body(body: &[u8], expected_kind: &str) -> ApiResult<Value> {
    let env = protobuf::parse_envelope(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {expected_kind}): {e} ({})",
            summarize(body)
        ))
    })?;
    protobuf::decode_object(&env.api_version, &env.kind, env.raw).map_err(|e| match e {
        ProtobufError::UnknownKind { .. } => ApiError::unsupported_media_type(CONTENT_TYPE),
        e => {
            let version = env
                .api_version
                .rsplit_once('/')
                .map_or(env.api_version.as_str(), |(_, v)| v);
            ApiError::bad_request(format!(
                "{} in version {version:?} cannot be handled as a {expected_kind}: {e}",
                env.kind
            ))
        }
    })
}

/// apimachinery `summarizeData(data, 30)` for a binary body: hex of the first
/// 30 bytes, ` ...` when cut, `<empty>` for none.
fn summarize(body: &[u8]) -> String {
    if body.is_empty() {
        return "<empty>".into();
    }
    let hex: String = body.iter().take(30).map(|b| format!("{b:02x}")).collect();
    if body.len() > 30 {
        format!("{hex} ...")
    } else {
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_statuses() {
        let e = decode_body(b"\x01\x02", "Deployment").unwrap_err();
        assert_eq!(e.to_status()["code"], 400);
        assert_eq!(
            e.to_status()["message"],
            "the object provided is unrecognized (must be of type Deployment): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] (0102)"
        );
        assert_eq!(summarize(&[0u8; 31]), format!("{} ...", "00".repeat(30)));
        assert_eq!(summarize(b""), "<empty>");

        // typeMeta{apiVersion "apps/v1", kind "Deployment"}, raw = a truncated field
        let mut body = b"k8s\0\x0a\x15\x0a\x07apps/v1\x12\x0aDeployment\x12\x02\x0a\x05".to_vec();
        let e = decode_body(&body, "Deployment").unwrap_err();
        assert_eq!(e.to_status()["code"], 400);
        assert_eq!(
            e.to_status()["message"],
            "Deployment in version \"v1\" cannot be handled as a Deployment: unexpected EOF"
        );

        // An unknown kind is 415.
        body = b"k8s\0\x0a\x0b\x0a\x02v9\x12\x05Thing\x12\x00".to_vec();
        let e = decode_body(&body, "Thing").unwrap_err();
        assert_eq!(e.to_status()["code"], 415);
    }

    #[test]
    fn a_namespace_decodes() {
        let body = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x07\x0a\x05\x0a\x03ns1";
        let v = decode_body(body, "Namespace").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}})
        );
    }
}
