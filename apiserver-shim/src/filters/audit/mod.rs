//! Auditing: who did what, as kube-apiserver's audit filter
//! (k8s.io/apiserver pkg/endpoints/filters/audit.go) records it. An
//! `audit.k8s.io/v1` [`Policy`](policy::Policy) gives each request a level
//! from the authenticated (not impersonated) user and the request's
//! attributes; each recorded stage becomes one JSON line of an
//! [`Event`](event::Event) in the log (`--audit-log-path`, `-` for
//! stdout), rotated by size (`--audit-log-maxsize` megabytes,
//! `--audit-log-maxbackup` files kept).
//!
//! Stages: `RequestReceived` when the request arrives, `ResponseStarted`
//! when a long-running request's response begins (a watch, exec, logs),
//! `ResponseComplete` when the response is done. Levels: `Metadata`
//! records the user, verb, object reference and status; `Request` adds the
//! request body; `RequestResponse` adds the response body. Writing an
//! event never fails a request: a log that cannot be written is reported
//! in the server's own log.

pub mod event;
pub mod policy;

use crate::filters::authorization::rbac::Request as Attributes;
use crate::pki::Identity;
use anyhow::{Context, Result};
use axum::body::Body;
use axum::response::Response;
use event::{Event, UserInfo};
use http::HeaderMap;
use http_body_util::BodyExt;
use policy::{Evaluation, Level, Policy, Stage};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Where and how audit events are written (kube-apiserver's
/// `--audit-policy-file`, `--audit-log-path`, `--audit-log-maxsize`,
/// `--audit-log-maxbackup`).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The policy.
    pub policy: Policy,
    /// The log file; `-` writes to stdout.
    pub log_path: PathBuf,
    /// Size in megabytes a log file reaches before it is rotated; 0: never
    /// rotated.
    pub max_size_megabytes: usize,
    /// Rotated files kept (`PATH.1` is the newest); 0: every one.
    pub max_backups: usize,
}

/// The audit log of one server.
pub struct Auditor {
    policy: Policy,
    /// Encoded events, to the writer thread.
    lines: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// The writer thread, until the server takes it to wait on it.
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Events buffered for the writer; a full buffer makes requests wait
/// (kube-apiserver's default `blocking` audit log mode, with its buffer
/// size).
const BUFFER: usize = 10_000;

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    /// Opens the log `config` names (creating its directory).
    ///
    /// # Errors
    /// A log file that cannot be created or opened for appending.
    pub fn open(config: &AuditConfig) -> Result<Auditor> {
        let sink: Box<dyn Write + Send> = if config.log_path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            let path = &config.log_path;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            // Fail now, with the path, rather than losing events later.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the audit log {}", path.display()))?;
            let limit = match config.max_size_megabytes {
                0 => file_rotate::ContentLimit::None,
                mb => file_rotate::ContentLimit::BytesSurpassed(mb << 20),
            };
            Box::new(file_rotate::FileRotate::new(
                path,
                file_rotate::suffix::AppendCount::new(match config.max_backups {
                    0 => usize::MAX,
                    n => n,
                }),
                limit,
                file_rotate::compression::Compression::None,
                None,
            ))
        };
        // Writes happen on a thread of their own: a slow disk or a full
        // stdout pipe must not stall the workers serving requests.
        let (lines, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(BUFFER);
        let writer = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                let mut sink = sink;
                while let Ok(line) = received.recv() {
                    let mut result = sink.write_all(&line);
                    // Write what queued meanwhile, then flush once.
                    while result.is_ok()
                        && let Ok(more) = received.try_recv()
                    {
                        result = sink.write_all(&more);
                    }
                    if let Err(e) = result.and_then(|()| sink.flush()) {
                        tracing::error!(error = %e, "writing the audit log");
                    }
                }
            })
            .context("starting the audit log writer")?;
        Ok(Auditor {
            policy: config.policy.clone(),
            lines,
            writer: std::sync::Mutex::new(Some(writer)),
        })
    }

    /// The writer thread, for the server to wait on when it stops: it ends
    /// once every event is written and the last [`Auditor`] (and
    /// [`Recorder`]) is dropped. `None` after the first call.
    pub fn take_writer(&self) -> Option<std::thread::JoinHandle<()>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Starts recording a request by `user` with `attributes`: `None` when
    /// the policy's level for it is `None`. Writes `RequestReceived` unless
    /// omitted.
    pub fn begin(self: &Arc<Self>, request: RequestFacts<'_>) -> Option<Recorder> {
        let evaluation =
            self.policy
                .evaluate(&request.user.user, &request.user.groups, request.attributes);
        if evaluation.level == Level::None {
            return None;
        }
        let now = event::micro_time(jiff::Timestamp::now());
        let verb = match request.attributes {
            Attributes::Resource { verb, .. } | Attributes::NonResource { verb, .. } => {
                verb.clone()
            }
        };
        let recorder = Recorder {
            auditor: self.clone(),
            event: Event {
                kind: "Event",
                api_version: "audit.k8s.io/v1",
                level: evaluation.level,
                audit_id: request.audit_id.to_string(),
                stage: Stage::RequestReceived,
                request_uri: request.uri.to_string(),
                verb,
                user: UserInfo::from(request.user),
                impersonated_user: None,
                source_ips: source_ips(request.headers, request.peer),
                user_agent: request
                    .headers
                    .get(http::header::USER_AGENT)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default(),
                object_ref: event::object_ref(request.attributes, request.segments),
                response_status: None,
                request_object: None,
                response_object: None,
                request_received_timestamp: now.clone(),
                stage_timestamp: now,
                annotations: Default::default(),
            },
            evaluation,
        };
        recorder.write(Stage::RequestReceived);
        Some(recorder)
    }

    fn write(&self, event: &Event) {
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "encoding an audit event");
                return;
            }
        };
        line.push(b'\n');
        if self.lines.send(line).is_err() {
            tracing::error!("the audit log writer has stopped");
        }
    }
}

/// What [`Auditor::begin`] reads from a request.
pub struct RequestFacts<'a> {
    /// The id sent back as `Audit-Id`.
    pub audit_id: &'a str,
    /// The authenticated user (the policy decides on this one).
    pub user: &'a Identity,
    /// The request's authorization attributes.
    pub attributes: &'a Attributes,
    /// Path and query.
    pub uri: &'a str,
    /// Path segments (percent-decoded).
    pub segments: &'a [String],
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The peer's address, if known.
    pub peer: Option<std::net::IpAddr>,
}

/// `X-Forwarded-For`'s addresses, then `X-Real-Ip`, then the peer, without
/// repeats (kube's `utilnet.SourceIPs`).
fn source_ips(headers: &HeaderMap, peer: Option<std::net::IpAddr>) -> Vec<String> {
    let mut ips: Vec<std::net::IpAddr> = Vec::new();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(forwarded) = text("x-forwarded-for") {
        ips.extend(
            forwarded
                .split(',')
                .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok()),
        );
    }
    if let Some(ip) = text("x-real-ip").and_then(|ip| ip.trim().parse().ok()) {
        ips.push(ip);
    }
    ips.extend(peer);
    let mut seen = Vec::new();
    for ip in ips {
        if !seen.contains(&ip) {
            seen.push(ip);
        }
    }
    seen.iter().map(ToString::to_string).collect()
}

/// One request being recorded.
pub struct Recorder {
    auditor: Arc<Auditor>,
    event: Event,
    evaluation: Evaluation,
}

impl Recorder {
    fn write(&self, stage: Stage) {
        if !self.evaluation.records(stage) {
            return;
        }
        let mut event = self.event.clone();
        event.stage = stage;
        event.stage_timestamp = event::micro_time(jiff::Timestamp::now());
        self.auditor.write(&event);
    }

    /// Records the user the request acts as.
    pub fn impersonating(&mut self, acting: &Identity) {
        self.event.impersonated_user = Some(UserInfo::from(acting));
    }

    /// Records an annotation (e.g. `authorization.k8s.io/decision`).
    pub fn annotate(&mut self, key: &str, value: &str) {
        self.event
            .annotations
            .insert(key.to_string(), value.to_string());
    }

    /// Records the request body: the object reference takes its name, uid
    /// and resourceVersion where the path gave none, and from level
    /// `Request` on the body itself is kept (as kube's
    /// `LogRequestObject` / `LogRequestPatch`). JSON, Kubernetes protobuf
    /// and (for apply patches) YAML bodies are read; a body that does not
    /// decode is not recorded (serving it gives the client its error).
    pub fn request_body(&mut self, content_type: &str, body: &[u8]) {
        let object = if body.starts_with(b"k8s\0") {
            crate::protobuf::decode_body(body, "").ok()
        } else if content_type.contains("yaml") {
            serde_saphyr::from_slice_with_options::<serde_json::Value>(
                body,
                crate::fieldmanager::kube_yaml_options(),
            )
            .ok()
        } else {
            serde_json::from_slice::<serde_json::Value>(body).ok()
        };
        let Some(mut object) = object else { return };
        if let Some(r) = &mut self.event.object_ref {
            let meta = |field: &str| {
                object
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            for (have, field) in [
                (&mut r.namespace, "namespace"),
                (&mut r.name, "name"),
                (&mut r.uid, "uid"),
                (&mut r.resource_version, "resourceVersion"),
            ] {
                if have.is_empty() {
                    *have = meta(field);
                }
            }
        }
        if self.evaluation.level >= Level::Request {
            if self.evaluation.omit_managed_fields {
                event::remove_managed_fields(&mut object);
            }
            self.event.request_object = Some(object);
        }
    }

    /// Writes the event of a request whose credentials did not
    /// authenticate: `ResponseComplete` with `401` and which credentials
    /// were tried (kube's `Authentication failed, attempted: bearer`).
    pub fn failed_authentication(mut self, attempted: &str) {
        self.event.response_status =
            Some(serde_json::json!({"metadata": {}, "message": attempted, "code": 401}));
        self.write(Stage::ResponseComplete);
    }

    /// Records the response and writes the remaining stages: for a
    /// long-running request `ResponseStarted` now and `ResponseComplete`
    /// when its body ends; for others `ResponseComplete` once the body
    /// (read here when it must be recorded) is known.
    pub async fn complete(mut self, response: Response, long_running: bool) -> Response {
        let code = response.status().as_u16();
        if long_running {
            self.event.response_status = Some(event::response_status(code, None));
            self.write(Stage::ResponseStarted);
            let (parts, body) = response.into_parts();
            let body = Body::new(CompleteOnEnd {
                inner: body,
                recorder: Some(self),
            });
            return Response::from_parts(parts, body);
        }
        let needs_body = self.evaluation.level == Level::RequestResponse || code >= 300;
        if !needs_body || !self.evaluation.records(Stage::ResponseComplete) {
            self.event.response_status = Some(event::response_status(code, None));
            self.write(Stage::ResponseComplete);
            return response;
        }
        let (parts, body) = response.into_parts();
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                tracing::warn!(error = %e, "reading a response to audit it");
                bytes::Bytes::new()
            }
        };
        let mut object = if bytes.starts_with(b"k8s\0") {
            crate::protobuf::decode_body(&bytes, "").ok()
        } else {
            serde_json::from_slice::<serde_json::Value>(&bytes).ok()
        };
        self.event.response_status = Some(event::response_status(code, object.as_ref()));
        if self.evaluation.level == Level::RequestResponse
            && let Some(mut object) = object.take()
        {
            if self.evaluation.omit_managed_fields {
                event::remove_managed_fields(&mut object);
            }
            self.event.response_object = Some(object);
        }
        self.write(Stage::ResponseComplete);
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// A long-running response's body that writes `ResponseComplete` when it
/// ends (or the client goes away).
struct CompleteOnEnd {
    inner: Body,
    recorder: Option<Recorder>,
}

impl Drop for CompleteOnEnd {
    fn drop(&mut self) {
        if let Some(r) = self.recorder.take() {
            r.write(Stage::ResponseComplete);
        }
    }
}

impl http_body::Body for CompleteOnEnd {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ips_list_forwarded_then_real_then_peer_once() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "10.0.0.1, 10.0.0.2".parse().unwrap());
        headers.insert("x-real-ip", "10.0.0.2".parse().unwrap());
        let peer = Some("127.0.0.1".parse().unwrap());
        assert_eq!(
            source_ips(&headers, peer),
            vec!["10.0.0.1", "10.0.0.2", "127.0.0.1"]
        );
        assert_eq!(source_ips(&HeaderMap::new(), peer), vec!["127.0.0.1"]);
    }
}
