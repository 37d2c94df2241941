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
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// One encoded event line, `{"type":KIND,"object":OBJECT}` and a newline
/// (the field order kube-apiserver writes), encoding `object` in place as
/// kube-apiserver does ([`vkube_core::gojson`]).
fn line(kind: &str, object: &Value) -> Bytes {
    // Writing a `Value` into a `Vec` cannot fail.
    framed(kind, 256, |v| vkube_core::gojson::write(v, object))
}

/// The same line around an object already encoded as JSON.
fn line_encoded(kind: &str, object: &[u8]) -> Bytes {
    framed(kind, object.len() + 32, |v| v.extend_from_slice(object))
}

/// `{"type":KIND,"object":` + what `object` writes + `}` and a newline.
fn framed(kind: &str, capacity: usize, object: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut v = Vec::with_capacity(capacity);
    v.extend_from_slice(b"{\"type\":\"");
    v.extend_from_slice(kind.as_bytes());
    v.extend_from_slice(b"\",\"object\":");
    object(&mut v);
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

/// The decoded and encoded forms of one storage event, each computed at most
/// once and shared by every watcher that sees the event (as kube-apiserver's
/// watch cache serialises an event once per format, `cachingObject`). Every
/// part is filled lazily: a watcher that needs only the JSON never makes the
/// others pay for a filter's old object.
#[derive(Default)]
pub(crate) struct Rendered {
    /// The object a watcher reports: the new value at the event's revision, or
    /// for a deletion the last value stamped with the deletion's revision.
    /// `None`: the stored bytes do not decode (the event is skipped).
    object: OnceLock<Option<Value>>,
    /// For an update, the previous value at its own revision (selectors
    /// apply to it to tell ADDED/MODIFIED/DELETED apart).
    before: OnceLock<Option<Value>>,
    /// `object` encoded as JSON (the plain-object representation).
    object_json: OnceLock<Bytes>,
}

impl Rendered {
    fn decode(ev: &Event, bytes: &Bytes, rev: u64) -> Option<Value> {
        decode_stored(&KeyValue {
            key: ev.key.clone(),
            mod_revision: rev,
            value: bytes.clone(),
        })
        .ok()
    }

    fn object(&self, ev: &Event) -> Option<&Value> {
        self.object
            .get_or_init(|| match (&ev.value, &ev.prev) {
                (Some(cur), _) => Self::decode(ev, cur, ev.revision),
                // A deleted object is reported with the revision of its deletion.
                (None, Some(prev)) => Self::decode(ev, prev, ev.revision),
                (None, None) => None,
            })
            .as_ref()
    }

    fn before(&self, ev: &Event) -> Option<&Value> {
        self.before
            .get_or_init(|| match (&ev.value, &ev.prev) {
                (Some(_), Some(prev)) => Self::decode(ev, prev, ev.prev_revision),
                _ => None,
            })
            .as_ref()
    }

    fn object_json(&self, object: &Value) -> &[u8] {
        self.object_json.get_or_init(|| {
            let mut v = Vec::with_capacity(256);
            vkube_core::gojson::write(&mut v, object);
            Bytes::from(v)
        })
    }
}

/// Slots of an [`EventCache`]: how many recent revisions keep their rendering.
/// A watcher further behind renders for itself; the bound keeps the decoded
/// objects held for sharing to a few hundred.
const EVENT_CACHE_SLOTS: usize = 128;

/// Recently rendered events by revision, shared by all watches of one
/// [`Api`]: the first watcher to see an event decodes and encodes it, the
/// others reuse that. Revision `r` lives in slot `r % EVENT_CACHE_SLOTS`
/// until a later revision takes the slot. Events are immutable once
/// committed, so a cached rendering never goes stale.
pub struct EventCache {
    slots: Box<[Slot]>,
}

/// One [`EventCache`] slot: a revision and its rendering.
type Slot = Mutex<Option<(u64, Arc<Rendered>)>>;

impl Default for EventCache {
    fn default() -> Self {
        Self {
            slots: (0..EVENT_CACHE_SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl EventCache {
    /// The shared rendering of the event at `revision` (a new, empty one if
    /// the slot holds another revision).
    fn get(&self, revision: u64) -> Arc<Rendered> {
        let slot = &self.slots[(revision % self.slots.len() as u64) as usize];
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some((r, rendered)) if *r == revision => rendered.clone(),
            _ => {
                let rendered = Arc::new(Rendered::default());
                *slot = Some((revision, rendered.clone()));
                rendered
            }
        }
    }
}

struct Renderer {
    def: crate::registry::Def,
    repr: Representation,
    include_object: Option<String>,
}

impl Renderer {
    fn object(&self, obj: &Value) -> Value {
        match self.repr {
            Representation::Object => obj.clone(),
            Representation::Table => table::table(
                &self.def,
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

/// The watch event type of a storage event for a client selecting with
/// `filter`: `obj` is the object it reports, `matched_before` tells whether
/// the previous value of an update was selected.
fn event_type(
    ev: &Event,
    filter: &Filter,
    obj: &Value,
    matched_before: impl FnOnce() -> bool,
) -> Option<&'static str> {
    if ev.value.is_none() {
        return filter.matches(obj).then_some("DELETED");
    }
    let now = filter.matches(obj);
    let before = match &ev.prev {
        None => false,
        Some(_) if filter.is_everything() => true,
        Some(_) => matched_before(),
    };
    match (before, now) {
        (false, true) => Some("ADDED"),
        (true, true) => Some("MODIFIED"),
        (true, false) => Some("DELETED"),
        (false, false) => None,
    }
}

/// Turns one storage event into the watch event this client sees, if any.
fn translate(ev: &Event, filter: &Filter, r: &Renderer, cache: &EventCache) -> Option<Bytes> {
    let rendered = cache.get(ev.revision);
    let stored = rendered.object(ev)?;
    if r.def.converts() {
        // A converted version renders for itself: the shared rendering is
        // the stored version's.
        let obj = r.def.from_storage(stored.clone());
        let kind = event_type(ev, filter, &obj, || {
            rendered
                .before(ev)
                .is_some_and(|p| filter.matches(&r.def.from_storage(p.clone())))
        })?;
        return Some(line(kind, &r.object(&obj)));
    }
    let kind = event_type(ev, filter, stored, || {
        rendered.before(ev).is_some_and(|p| filter.matches(p))
    })?;
    Some(match r.repr {
        Representation::Object => line_encoded(kind, rendered.object_json(stored)),
        _ => line(kind, &r.object(stored)),
    })
}

/// One open watch between the lines it sends: its subscription, what it
/// selects, and its BOOKMARK and timeout timers.
struct Watcher {
    api: Arc<Api>,
    stream: WatchStream,
    filter: Filter,
    renderer: Renderer,
    /// Lines ready to go out, in order (first the initial state).
    pending: VecDeque<Bytes>,
    bookmarks: bool,
    interval: Duration,
    timeout: Duration,
    /// `(deadline, two seconds before it, next bookmark)`, set once the
    /// initial state has gone out (the timeout counts from then).
    timers: Option<(Instant, Instant, Instant)>,
    final_bookmark_sent: bool,
    /// The watch ends once `pending` is empty.
    done: bool,
}

impl Watcher {
    fn translate(&self, ev: &Event) -> Option<Bytes> {
        translate(ev, &self.filter, &self.renderer, &self.api.watch_cache)
    }

    /// The next line to send; `None` ends the watch (timeout reached, or the
    /// store closed the subscription).
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if let Some(l) = self.pending.pop_front() {
                return Some(l);
            }
            if self.done {
                return None;
            }
            let (deadline, before_deadline, bookmark_at) = *self.timers.get_or_insert_with(|| {
                let now = Instant::now();
                let deadline = now + self.timeout;
                let before = deadline
                    .checked_sub(Duration::from_secs(2))
                    .unwrap_or(deadline);
                (deadline, before, (now + self.interval).min(before))
            });
            tokio::select! {
                ev = self.stream.next() => {
                    let Some(ev) = ev else {
                        self.done = true;
                        continue;
                    };
                    if let Some(l) = self.translate(&ev) {
                        return Some(l);
                    }
                }
                _ = tokio::time::sleep_until(bookmark_at), if self.bookmarks && !self.final_bookmark_sent => {
                    // Everything up to `current` was already handed to this
                    // watcher's queue: drain it, then vouch for `current`.
                    let current = self.api.store.current_revision();
                    while let Some(ev) = self.stream.try_next() {
                        if let Some(l) = self.translate(&ev) {
                            self.pending.push_back(l);
                        }
                    }
                    if self.stream.is_closed() {
                        // The store dropped this watcher after a buffer
                        // overflow: events up to `current` may be lost, so
                        // vouch for nothing; the client resumes from its
                        // last event.
                        self.done = true;
                        continue;
                    }
                    let rev = current.max(self.stream.last_revision());
                    self.pending.push_back(self.renderer.bookmark(rev, false));
                    self.final_bookmark_sent = bookmark_at >= before_deadline;
                    let next = (Instant::now() + self.interval).min(before_deadline);
                    self.timers = Some((deadline, before_deadline, next));
                }
                _ = tokio::time::sleep_until(deadline) => self.done = true,
            }
        }
    }
}

/// Serves a watch request.
pub async fn serve(
    api: Arc<Api>,
    target: Target,
    query: Query,
    repr: Representation,
) -> ApiResult<Response> {
    let def = target.def.clone();
    let filter = Filter::from_query(&def, &query, target.name.as_deref())?;
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
        def: def.clone(),
        repr,
        include_object: query.include_object.clone(),
    };
    let prefix = def.collection_prefix(target.namespace.as_deref());

    let mut initial = VecDeque::new();
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
                    initial.push_back(renderer.bookmark(at, true));
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

    let body = match stream {
        Err(StorageError::Compacted {
            requested,
            compacted,
        }) => {
            let status = ApiError::too_old_resource_version(requested, compacted).to_status();
            Body::from(line("ERROR", &status))
        }
        Err(e) => return Err(crate::rest::storage_error(&def, "", e)),
        Ok(stream) => {
            let events = api.metrics.watch_events(&def);
            let watcher = Watcher {
                bookmarks: query.allow_watch_bookmarks,
                interval: api.config.bookmark_interval,
                api,
                stream,
                filter,
                renderer,
                pending: initial,
                timeout,
                timers: None,
                final_bookmark_sent: false,
                done: false,
            };
            // The response body pulls lines straight from the store's
            // subscription: no task and no second queue between the two.
            Body::from_stream(futures::stream::unfold(
                (watcher, events),
                |(mut w, events)| async move {
                    w.next_line().await.map(|l| {
                        events.inc();
                        (Ok::<_, std::convert::Infallible>(l), (w, events))
                    })
                },
            ))
        }
    };
    let mut resp = json_response(StatusCode::OK, &Value::Null);
    *resp.body_mut() = body;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
