//! Watch: newline-delimited `{"type":...,"object":...}` events over one
//! chunked HTTP 200 response (API concepts, "Efficient detection of changes").
//!
//! * `resourceVersion` unset or `"0"` (legacy mode): synthetic ADDED events for
//!   the current state, then changes. `sendInitialEvents=true` does the same
//!   and closes the initial state with a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"` (KEP-3157).
//! * `resourceVersion=N`: changes after N; N older than the store's window
//!   gets one ERROR event with a 410 Expired `Status`, then the stream ends,
//!   as the watch cache answers, so clients relist.
//! * Selectors apply to the old and the new object: an object leaving the
//!   selection arrives as DELETED, one entering it as ADDED.
//! * BOOKMARK events (when allowed) about every `bookmark_interval`, and two
//!   seconds before a `timeoutSeconds` deadline, carry the revision up to
//!   which everything matching has been delivered.

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::request::{Query, Representation, Target};
use crate::rest::{Api, Filter, decode_stored, json_response};
use crate::store::{Event, KeyValue, StorageError, WatchStream};
use crate::table;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use rand::Rng;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One encoded event line.
fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

struct Renderer {
    def: &'static ResourceDef,
    repr: Representation,
    include_object: Option<String>,
}

impl Renderer {
    fn object(&self, obj: &Value) -> Value {
        match self.repr {
            Representation::Object => obj.clone(),
            Representation::Table => table::table(
                self.def,
                std::slice::from_ref(obj),
                self.include_object.as_deref(),
                None,
            ),
            Representation::PartialMetadata => table::partial_metadata(obj),
        }
    }

    fn bookmark(&self, revision: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({ "resourceVersion": revision.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        line(
            "BOOKMARK",
            &json!({ "kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": metadata }),
        )
    }
}

/// Turns one storage event into the watch event this client sees, if any.
fn translate(ev: &Event, filter: &Filter, r: &Renderer) -> Option<Bytes> {
    let decode = |bytes: &Bytes, rev: u64| {
        decode_stored(&KeyValue {
            key: ev.key.clone(),
            mod_revision: rev,
            value: bytes.clone(),
        })
        .ok()
    };
    let everything = filter.is_everything();
    match (&ev.value, &ev.prev) {
        (Some(cur), prev) => {
            let cur = decode(cur, ev.revision)?;
            let now = filter.matches(&cur);
            let before = match prev {
                None => false,
                Some(_) if everything => true,
                Some(p) => decode(p, ev.prev_revision).is_some_and(|p| filter.matches(&p)),
            };
            let kind = match (before, now) {
                (false, true) => "ADDED",
                (true, true) => "MODIFIED",
                (true, false) => "DELETED",
                (false, false) => return None,
            };
            Some(line(kind, &r.object(&cur)))
        }
        (None, Some(prev)) => {
            // A deleted object is reported with the revision of its deletion.
            let old = decode(prev, ev.revision)?;
            filter
                .matches(&old)
                .then(|| line("DELETED", &r.object(&old)))
        }
        (None, None) => None,
    }
}

/// Serves a watch request.
pub async fn serve(
    api: Arc<Api>,
    target: Target,
    query: Query,
    repr: Representation,
) -> ApiResult<Response> {
    let def = target.def;
    let filter = Filter::from_query(def, &query, target.name.as_deref())?;
    let send_initial = query.send_initial_events;
    match (send_initial, query.resource_version_match.as_deref()) {
        (Some(true), m) if m != Some("NotOlderThan") => {
            return Err(ApiError::list_options_forbidden(
                "sendInitialEvents",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::list_options_forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        _ => {}
    }
    let rv = match query.resource_version.as_deref() {
        None | Some("0") => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {s:?}: must be an integer"
            ))
        })?),
    };
    let legacy_initial = send_initial.is_none() && rv.is_none();
    let with_initial = legacy_initial || send_initial == Some(true);
    let renderer = Renderer {
        def,
        repr,
        include_object: query.include_object.clone(),
    };
    let prefix = def.collection_prefix(target.namespace.as_deref());
    let (tx, rx) = mpsc::channel::<Bytes>(64);

    let mut initial = Vec::new();
    let stream: Result<WatchStream, StorageError> = if with_initial {
        if let Some(rv) = rv {
            api.wait_not_older(rv).await?;
        }
        // Subscribe first, then read the state at exactly that revision.
        let at = api.store.current_revision();
        match api.store.watch(&prefix, at) {
            Ok(s) => {
                let at_revision = Query {
                    resource_version: Some(at.to_string()),
                    resource_version_match: Some("Exact".into()),
                    ..Query::default()
                };
                let (items, _, _) = api.list_objects(&target, &at_revision, &filter).await?;
                initial.extend(items.iter().map(|o| line("ADDED", &renderer.object(o))));
                if send_initial == Some(true) && query.allow_watch_bookmarks {
                    initial.push(renderer.bookmark(at, true));
                }
                Ok(s)
            }
            Err(e) => Err(e),
        }
    } else {
        api.store.watch(&prefix, rv.unwrap_or(0))
    };

    let timeout = query
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or_else(|| Duration::from_secs(rand::rng().random_range(1800..3600)));
    let bookmarks = query.allow_watch_bookmarks;
    let interval = api.config.bookmark_interval;

    match stream {
        Err(StorageError::Compacted {
            requested,
            compacted,
        }) => {
            let status = ApiError::too_old_resource_version(requested, compacted).to_status();
            let _ = tx.try_send(line("ERROR", &status));
        }
        Err(e) => return Err(crate::rest::storage_error(def, "", e)),
        Ok(mut stream) => {
            let store = api.store.clone();
            tokio::spawn(async move {
                for l in initial {
                    if tx.send(l).await.is_err() {
                        return;
                    }
                }
                let deadline = Instant::now() + timeout;
                let before_deadline = deadline
                    .checked_sub(Duration::from_secs(2))
                    .unwrap_or(deadline);
                let next_bookmark = |now: Instant| (now + interval).min(before_deadline);
                let mut bookmark_at = next_bookmark(Instant::now());
                let mut final_bookmark_sent = false;
                loop {
                    tokio::select! {
                        ev = stream.next() => {
                            let Some(ev) = ev else { break };
                            if let Some(l) = translate(&ev, &filter, &renderer)
                                && tx.send(l).await.is_err()
                            {
                                return;
                            }
                        }
                        _ = tokio::time::sleep_until(bookmark_at), if bookmarks && !final_bookmark_sent => {
                            // Everything up to `current` was already handed to this
                            // watcher's queue: drain it, then vouch for `current`.
                            let current = store.current_revision();
                            while let Some(ev) = stream.try_next() {
                                if let Some(l) = translate(&ev, &filter, &renderer)
                                    && tx.send(l).await.is_err()
                                {
                                    return;
                                }
                            }
                            if stream.is_closed() {
                                // The store dropped this watcher after a buffer
                                // overflow: events up to `current` may be lost, so
                                // vouch for nothing; the client resumes from its
                                // last event.
                                break;
                            }
                            let rev = current.max(stream.last_revision());
                            if tx.send(renderer.bookmark(rev, false)).await.is_err() {
                                return;
                            }
                            final_bookmark_sent = bookmark_at >= before_deadline;
                            bookmark_at = next_bookmark(Instant::now());
                        }
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = tx.closed() => break,
                    }
                }
            });
        }
    }

    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    let mut resp = json_response(StatusCode::OK, &Value::Null);
    *resp.body_mut() = body;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
