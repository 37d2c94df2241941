//! Continue tokens of paginated lists (`limit`/`continue`, API
//! conventions "Retrieving large results sets in chunks"): a token names
//! the store revision the first page was read at and the key the page
//! ended with, so every page is read at that one revision.

use base64::Engine;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// The continue token of a list page that ended at store key `last_key`,
/// read at store revision `revision`: unpadded URL-safe base64 of
/// `{"v":"meta.k8s.io/v1","rv":R,"start":"<last key>"}`, opaque to
/// clients (the shape kube-apiserver's etcd3 store gives its tokens).
pub fn encode_continue(revision: u64, last_key: &str) -> String {
    let raw = json!({ "v": "meta.k8s.io/v1", "rv": revision, "start": last_key });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

/// The revision and last key a continue token carries, when the key lies
/// under `prefix` (the listed resource's, and namespace's, storage prefix:
/// a token cannot page through another resource).
///
/// # Errors
/// `400 continue key is not valid: invalid continue token` for anything
/// [`encode_continue`] did not make for `prefix` (kube-apiserver's text).
pub fn decode_continue(token: &str, prefix: &str) -> ApiResult<(u64, String)> {
    let bad = || ApiError::bad_request("continue key is not valid: invalid continue token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((rv, start.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_foreign_prefixes() {
        let t = encode_continue(42, "/core/pods/default/web");
        assert_eq!(
            decode_continue(&t, "/core/pods/").unwrap(),
            (42, "/core/pods/default/web".to_string())
        );
        assert_eq!(decode_continue(&t, "/core/secrets/").unwrap_err().code, 400);
        assert_eq!(decode_continue("!!", "/").unwrap_err().code, 400);
    }
}
