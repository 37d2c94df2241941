//! `Warning` response headers, collected per request.
//!
//! Like k8s.io/apiserver's `warning.AddWarning(ctx, …)`, any code running on
//! behalf of a request calls [`add`]; [`collect`] wraps the request handler
//! and writes one RFC 7234 `Warning: 299 - "<text>"` header per distinct
//! message (k8s.io/apiserver/pkg/endpoints/filters/warning.go), which kubectl
//! prints as `Warning: <text>` and kube-rs/client-go surface to callers.

use axum::response::Response;
use http::{HeaderValue, header};
use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static SINK: RefCell<Vec<String>>;
}

/// Most warnings one response carries.
const MAX_WARNINGS: usize = 100;
/// Characters of warnings past which each new one is cut to
/// [`TRUNCATED_WARNING_CHARS`] (kube-apiserver's recorder: 4096 and 256).
const WARNING_CHARS_BUDGET: usize = 4096;
const TRUNCATED_WARNING_CHARS: usize = 256;

/// Records a warning for the current request. Identical messages are kept
/// once (a write retried on conflict may add the same warning again);
/// past 4096 characters in all, new ones are cut to 256, and past 100 they
/// are dropped (webhooks and admission policies are tenant input); outside
/// [`collect`] (e.g. in a background task) it does nothing.
pub fn add(mut message: String) {
    let _ = SINK.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= MAX_WARNINGS || s.contains(&message) {
            return;
        }
        let used: usize = s.iter().map(|w| w.chars().count()).sum();
        if used + message.chars().count() > WARNING_CHARS_BUDGET
            && let Some((i, _)) = message.char_indices().nth(TRUNCATED_WARNING_CHARS)
        {
            message.truncate(i);
        }
        s.push(message);
    });
}

/// The header value for one warning: code 299, agent `-`, the text quoted
/// with `"` and `\` escaped. `None` if the text cannot be a header value
/// (control characters).
pub fn header_value(message: &str) -> Option<HeaderValue> {
    let escaped = message.replace('\\', "\\\\").replace('"', "\\\"");
    HeaderValue::from_str(&format!("299 - \"{escaped}\"")).ok()
}

/// Runs a request handler, then appends the warnings it recorded to its
/// response (success or error alike, as kube-apiserver does).
pub async fn collect(handler: impl Future<Output = Response>) -> Response {
    let (mut resp, warnings) = SINK
        .scope(RefCell::new(Vec::new()), async {
            let resp = handler.await;
            (resp, SINK.with(|s| s.take()))
        })
        .await;
    for w in warnings {
        if let Some(v) = header_value(&w) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn header_values_escape_quotes() {
        assert_eq!(
            header_value("unknown field \"spec.foo\"").unwrap(),
            "299 - \"unknown field \\\"spec.foo\\\"\""
        );
        assert!(header_value("bad\nline").is_none());
    }

    #[tokio::test]
    async fn collected_warnings_become_headers_once() {
        let resp = collect(async {
            add("a".into());
            add("b".into());
            add("a".into());
            "ok".into_response()
        })
        .await;
        let got: Vec<_> = resp.headers().get_all(header::WARNING).iter().collect();
        assert_eq!(got, vec!["299 - \"a\"", "299 - \"b\""]);
        add("outside a request is ignored".into());
    }
}
