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

/// The revision and last key a continue token carries. As kube-apiserver's
/// `DecodeContinue` checks them: the version is `meta.k8s.io/v1`, the
/// revision is not 0 and the key is a clean absolute path (no empty, `.`
/// or `..` segments); and the key lies under `prefix` (the listed
/// resource's, and namespace's, storage prefix: a token cannot page
/// through another resource).
///
/// # Errors
/// `400 continue key is not valid: invalid continue token` for any other
/// token.
pub fn decode_continue(token: &str, prefix: &str) -> ApiResult<(u64, String)> {
    let bad = || ApiError::bad_request("continue key is not valid: invalid continue token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(bad());
    }
    let rv = v
        .get("rv")
        .and_then(Value::as_u64)
        .filter(|rv| *rv != 0)
        .ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if !is_clean_key(start) || !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((rv, start.to_string()))
}

/// Whether `key` is what Go's `path.Clean` leaves unchanged, for the
/// absolute keys of the store: `/` then non-empty segments, none `.` or
/// `..`.
pub fn is_clean_key(key: &str) -> bool {
    key.strip_prefix('/').is_some_and(|rest| {
        rest.split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
    })
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
        let token =
            |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        for forged in [
            json!({"rv": 42, "start": "/core/pods/default/web"}),
            json!({"v": "meta.k8s.io/v1", "rv": 0, "start": "/core/pods/default/web"}),
            json!({"v": "meta.k8s.io/v1", "rv": 4, "start": "/core/pods/../secrets/db"}),
            json!({"v": "meta.k8s.io/v1", "rv": 4, "start": "/core/pods//web"}),
        ] {
            assert_eq!(
                decode_continue(&token(forged.clone()), "/core/pods/")
                    .unwrap_err()
                    .code,
                400,
                "{forged}"
            );
        }
    }
}
