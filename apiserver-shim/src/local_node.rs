//! [`LocalNode`]: the pod connector of a server standing in for a host
//! cluster (the local host of `vkube up`, tests), whose pods are played by
//! a node simulator and have no container runtime behind them.
//!
//! It answers as kubelet would for a node that runs no containers, and
//! says so rather than faking success:
//! - `portforward` dials `status.podIP` ([`crate::portforward`]);
//! - `log` checks the container's status as kubelet does
//!   (`validateContainerLogStatus`) and serves a *simulated* log: one line
//!   per second since the container started, each saying it is simulated
//!   (kept to the last [`SIMULATED_LOG_LINES`]), with every
//!   `PodLogOptions` applied (`follow` keeps adding a line a second);
//! - `exec` and `attach` are refused (`400`), unless the server is test
//!   scaffolding that runs `exec` commands as local processes
//!   ([`LocalExec::RunLocalProcesses`]; `attach` starts the container's own
//!   command and args), speaking kubelet's WebSocket channel protocols
//!   ([`crate::channel`]) and SPDY ([`crate::spdy`]).

use crate::portforward::{self, PodEndpoint};
use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode};
use serde_json::Value;
use std::time::Duration;
use vkube_core::connect::{
    ConnectBody, LogOptions, PodConnection, PodConnector, PodOperation, bad_request,
};
use vkube_core::service::{BoxFuture, HostRefusal};

/// How many simulated log lines a container keeps (older ones are rotated
/// away, as kubelet's log rotation drops old files).
pub const SIMULATED_LOG_LINES: u64 = 1000;

/// What [`LocalNode`] does with `exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalExec {
    /// Refuse with `400`: the node has no container runtime.
    #[default]
    Refuse,
    /// Run the command as a process of this server, in its working
    /// directory and with its privileges. Test scaffolding only: anyone
    /// allowed `create` on `pods/exec` runs programs on the server's
    /// machine.
    RunLocalProcesses,
}

/// The connector of a server standing in for a host (module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalNode {
    /// What `exec` does.
    pub exec: LocalExec,
}

impl PodConnector for LocalNode {
    fn connect(
        &self,
        mut conn: PodConnection,
    ) -> BoxFuture<'_, Result<Response<ConnectBody>, HostRefusal>> {
        Box::pin(async move {
            let pod_name = conn.pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match &conn.operation {
                PodOperation::Log(opts) => {
                    let now = jiff::Timestamp::now();
                    let log = SimulatedLog::new(&conn.pod, opts, now)?;
                    Ok(log_response(log, opts.clone(), now))
                }
                PodOperation::PortForward(ports) => {
                    let endpoint: PodEndpoint =
                        portforward::pod_endpoint(&conn.pod).map_err(refusal)?;
                    if is_spdy(conn.request.headers()) {
                        // kubectl's SPDY port-forward (the ports travel in
                        // stream headers).
                        let (resp, upgraded) =
                            spdy_accept(&mut conn.request, &[crate::spdy::PORT_FORWARD_PROTOCOL])?;
                        tokio::spawn(async move {
                            if let Ok(io) = upgraded.await {
                                crate::spdy::serve_port_forward(
                                    hyper_util::rt::TokioIo::new(io),
                                    endpoint,
                                )
                                .await;
                            }
                        });
                        return Ok(resp);
                    }
                    let ports = ports.clone();
                    let tunnel = conn
                        .request
                        .headers()
                        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains(crate::spdy::TUNNEL_PROTOCOL));
                    if ports.is_empty() && !tunnel {
                        // kubelet's WebSocket port-forward needs them.
                        return Err(bad_request("query parameter \"ports\" is required"));
                    }
                    let (resp, upgraded) = crate::channel::accept(
                        &mut conn.request,
                        &[
                            crate::spdy::TUNNEL_PROTOCOL,
                            portforward::CHANNEL_PROTOCOL_V4,
                        ],
                    )
                    .map_err(refusal)?;
                    tokio::spawn(async move {
                        if let Some(ws) = upgraded.await {
                            if ws.protocol == Some(crate::spdy::TUNNEL_PROTOCOL) {
                                // kubectl ≥ 1.31: SPDY frames inside
                                // WebSocket binary messages.
                                let io = crate::spdy::tunnel(ws.socket);
                                crate::spdy::serve_port_forward(io, endpoint).await;
                            } else {
                                portforward::forward(ws.socket, endpoint, ports).await;
                            }
                        }
                    });
                    Ok(resp)
                }
                PodOperation::Exec(_) | PodOperation::Attach(_)
                    if self.exec == LocalExec::RunLocalProcesses =>
                {
                    let mut opts = match &conn.operation {
                        PodOperation::Exec(o) | PodOperation::Attach(o) => o.clone(),
                        _ => unreachable!("matched above"),
                    };
                    if matches!(conn.operation, PodOperation::Attach(_)) {
                        // No process runs in a simulated container: attaching
                        // starts the container's own command and args.
                        opts.command = container_command(&conn.pod, &opts.container);
                        if opts.command.is_empty() {
                            return Err(bad_request(format!(
                                "unable to attach to container {:?} in pod {pod_name:?}: it has no command to run on this simulated node",
                                opts.container
                            )));
                        }
                    }
                    let opts = &opts;
                    if opts.command.is_empty() {
                        return Err(bad_request(
                            "you must specify at least one command for the container",
                        ));
                    }
                    if !(opts.stdin || opts.stdout || opts.stderr) {
                        return Err(bad_request(
                            "you must specify at least 1 of stdin, stdout, stderr",
                        ));
                    }
                    running(&conn.pod, &opts.container, &pod_name)?;
                    if is_spdy(conn.request.headers()) {
                        let protocols = crate::spdy::EXEC_PROTOCOLS;
                        let (resp, upgraded) = spdy_accept(&mut conn.request, protocols)?;
                        let chosen = resp
                            .headers()
                            .get("x-stream-protocol-version")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| protocols.iter().find(|p| **p == v).copied())
                            .unwrap_or("channel.k8s.io");
                        let opts = opts.clone();
                        tokio::spawn(async move {
                            if let Ok(io) = upgraded.await {
                                crate::spdy::serve_exec(
                                    hyper_util::rt::TokioIo::new(io),
                                    opts,
                                    chosen,
                                )
                                .await;
                            }
                        });
                        return Ok(resp);
                    }
                    let (resp, upgraded) =
                        crate::channel::accept(&mut conn.request, crate::channel::EXEC_PROTOCOLS)
                            .map_err(refusal)?;
                    let opts = opts.clone();
                    tokio::spawn(async move {
                        if let Some(ws) = upgraded.await {
                            crate::channel::run_local(ws, &opts).await;
                        }
                    });
                    Ok(resp)
                }
                PodOperation::Proxy(p) => proxy(p, &conn).await,
                PodOperation::Exec(o) | PodOperation::Attach(o) => Err(bad_request(format!(
                    "unable to {} container {:?} in pod {pod_name:?}: this node is simulated by \
                     vkube and has no container runtime",
                    conn.operation.subresource(),
                    o.container
                ))),
            }
        })
    }
}

/// Passes a proxied request to the resolved backend over HTTP/1.1, as
/// kube-apiserver's proxy dials a pod or endpoint IP itself (the local
/// host's pod IPs are loopback listeners, so loopback is allowed here).
async fn proxy(
    p: &vkube_core::connect::ProxyOptions,
    conn: &PodConnection,
) -> Result<Response<ConnectBody>, HostRefusal> {
    use vkube_core::connect::{HOP_BY_HOP, PROXY_REQUEST_HEADERS, unavailable};
    let name = conn.pod["metadata"]["name"].as_str().unwrap_or_default();
    let Some(addr) = p.backend else {
        return Err(if p.resource == "services" {
            unavailable(format!("no endpoints available for service {name:?}"))
        } else {
            bad_request("address not allowed")
        });
    };
    if p.scheme.as_deref() == Some("https") {
        return Err(bad_request(
            "https backends are not served by the local node stand-in",
        ));
    }
    let reach = |e: &dyn std::fmt::Display| {
        unavailable(format!(
            "error trying to reach service: dial tcp {addr}: {e}"
        ))
    };
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|e| reach(&e))?
    .map_err(|e| reach(&e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| reach(&e))?;
    tokio::spawn(connection);
    let mut target = if p.path.is_empty() {
        "/".to_string()
    } else {
        p.path.clone()
    };
    if let Some(q) = &p.query {
        target.push('?');
        target.push_str(q);
    }
    let mut req = http::Request::builder()
        .method(conn.request.method().clone())
        .uri(target)
        .header(http::header::HOST, addr.to_string());
    for h in PROXY_REQUEST_HEADERS {
        for v in conn.request.headers().get_all(*h) {
            req = req.header(*h, v);
        }
    }
    let req = req
        .body(http_body_util::Full::new(conn.body.clone()))
        .map_err(|e| bad_request(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(|e| reach(&e))?;
    let (mut parts, body) = resp.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(*h);
    }
    use http_body_util::BodyExt;
    let body: ConnectBody = Box::pin(body.map_err(|e| Box::new(e) as _));
    Ok(Response::from_parts(parts, body))
}

/// A container's `command` followed by its `args` (what its process runs).
fn container_command(pod: &Value, container: &str) -> Vec<String> {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| pod["spec"][list].as_array().into_iter().flatten())
        .find(|c| c["name"].as_str() == Some(container))
        .map(|c| {
            ["command", "args"]
                .iter()
                .flat_map(|k| c[*k].as_array().into_iter().flatten())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the request asks for a SPDY/3.1 upgrade.
fn is_spdy(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.eq_ignore_ascii_case(crate::spdy::UPGRADE))
}

/// Accepts a SPDY upgrade (kubelet's `httpstream.Handshake`): the first of
/// the client's `X-Stream-Protocol-Version` offers that is `supported`
/// is answered; the `101` and the pending connection are returned.
///
/// # Errors
/// `403` with kubelet's text when no offered protocol is supported, `400`
/// when the connection cannot be upgraded.
fn spdy_accept(
    request: &mut http::Request<()>,
    supported: &[&'static str],
) -> Result<(Response<ConnectBody>, hyper::upgrade::OnUpgrade), HostRefusal> {
    let offered: Vec<String> = request
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .collect();
    let Some(chosen) = offered
        .iter()
        .find_map(|o| supported.iter().find(|s| **s == o.as_str()))
    else {
        return Err(HostRefusal {
            code: 403,
            reason: "Forbidden".into(),
            message: format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {supported:?}"
            ),
            details: None,
        });
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return Err(bad_request(
            "Upgrade request required (streams need HTTP/1.1)",
        ));
    };
    let mut resp = Response::new(vkube_core::connect::empty_body());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static(crate::spdy::UPGRADE),
    );
    h.insert(
        "x-stream-protocol-version",
        http::HeaderValue::from_static(chosen),
    );
    Ok((resp, on_upgrade))
}

/// A shim error as a connector's refusal.
fn refusal(e: crate::error::ApiError) -> HostRefusal {
    HostRefusal {
        code: e.code,
        reason: e.reason.to_string(),
        message: e.message,
        details: e.details,
    }
}

/// The status of container `name` among the pod's container statuses.
fn container_status<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .flat_map(|list| pod["status"][list].as_array().into_iter().flatten())
    .find(|s| s["name"].as_str() == Some(name))
}

/// Fails unless the container is running (kubelet's `exec` precondition:
/// `container not found` / not running).
fn running(pod: &Value, container: &str, pod_name: &str) -> Result<(), HostRefusal> {
    match container_status(pod, container) {
        Some(s) if s["state"]["running"].is_object() => Ok(()),
        _ => Err(bad_request(format!(
            "container {container:?} in pod {pod_name:?} is not running"
        ))),
    }
}

/// The simulated log of one container instance: lines `first..=last`,
/// line `k` written `k` seconds after `started` (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedLog {
    /// The container.
    pub container: String,
    /// When the instance started.
    pub started: jiff::Timestamp,
    /// The first line to send (after rotation and `sinceSeconds`/`sinceTime`).
    pub first: u64,
    /// The last line written so far.
    pub last: u64,
    /// The instance has ended: no line is added after `last`.
    pub ended: bool,
}

impl SimulatedLog {
    /// The log `opts` asks for at time `now`, after kubelet's container
    /// status checks (`validateContainerLogStatus`).
    ///
    /// # Errors
    /// `400 BadRequest` with kubelet's texts: `container "c" in pod "p" is
    /// not available` (no status), `previous terminated container "c" in
    /// pod "p" not found`, `container "c" in pod "p" is waiting to start:
    /// REASON`.
    pub fn new(pod: &Value, opts: &LogOptions, now: jiff::Timestamp) -> Result<Self, HostRefusal> {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let c = &opts.container;
        let Some(status) = container_status(pod, c) else {
            return Err(bad_request(format!(
                "container {c:?} in pod {pod_name:?} is not available"
            )));
        };
        let time = |v: &Value| v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
        let (state, ended) = if opts.previous {
            match status["lastState"].get("terminated") {
                Some(t) => (t, true),
                None => {
                    return Err(bad_request(format!(
                        "previous terminated container {c:?} in pod {pod_name:?} not found"
                    )));
                }
            }
        } else if let Some(r) = status["state"].get("running") {
            (r, false)
        } else if let Some(t) = status["state"].get("terminated") {
            (t, true)
        } else {
            let reason = status["state"]["waiting"]["reason"]
                .as_str()
                .unwrap_or("ContainerCreating");
            return Err(bad_request(format!(
                "container {c:?} in pod {pod_name:?} is waiting to start: {reason}"
            )));
        };
        let started = time(&state["startedAt"]).unwrap_or(now);
        let until = if ended {
            time(&state["finishedAt"]).unwrap_or(now).min(now)
        } else {
            now
        };
        let last = u64::try_from(until.duration_since(started).as_secs()).unwrap_or(0);
        let mut first = last.saturating_sub(SIMULATED_LOG_LINES - 1).max(1);
        let since = match (&opts.since_time, opts.since_seconds) {
            (Some(t), _) => t.parse::<jiff::Timestamp>().ok(),
            (None, Some(s)) => now.checked_sub(jiff::SignedDuration::from_secs(s)).ok(),
            (None, None) => None,
        };
        if let Some(since) = since {
            let secs = since.duration_since(started).as_secs();
            first = first.max(u64::try_from(secs).unwrap_or(0));
        }
        if let Some(tail) = opts.tail_lines {
            let tail = u64::try_from(tail).unwrap_or(0);
            first = first.max((last + 1).saturating_sub(tail));
        }
        Ok(Self {
            container: c.clone(),
            started,
            first: first.max(1),
            last,
            ended,
        })
    }

    /// Line `k`, newline-terminated, with its timestamp when asked.
    pub fn line(&self, k: u64, timestamps: bool) -> String {
        let text = format!(
            "simulated log line {k} of container {}: this node is simulated by vkube and runs no containers\n",
            self.container
        );
        if timestamps {
            let at = self
                .started
                .checked_add(jiff::SignedDuration::from_secs(
                    i64::try_from(k).unwrap_or(0),
                ))
                .unwrap_or(self.started);
            format!("{} {text}", at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        } else {
            text
        }
    }
}

/// The `200 text/plain` answer streaming `log`: the lines written so far,
/// then (with `follow`, until the client goes) one more a second; cut at
/// `limitBytes`.
fn log_response(
    log: SimulatedLog,
    opts: LogOptions,
    now: jiff::Timestamp,
) -> Response<ConnectBody> {
    let mut budget = opts
        .limit_bytes
        .map_or(u64::MAX, |n| u64::try_from(n).unwrap_or(0));
    let follow = opts.follow && !log.ended;
    let timestamps = opts.timestamps;
    // The next line is due when the container has run for `last + 1` s
    // (a start time in the future counts as no time run).
    let elapsed = Duration::try_from(now.duration_since(log.started)).unwrap_or_default();
    let first_due = Duration::from_secs(log.last + 1).saturating_sub(elapsed);
    let lines = futures::stream::iter(log.first..=log.last)
        .map(|k| (k, Duration::ZERO))
        .chain(futures::stream::iter(
            (log.last + 1..)
                .take_while(move |_| follow)
                .enumerate()
                .map(move |(i, k)| {
                    let wait = if i == 0 {
                        first_due
                    } else {
                        Duration::from_secs(1)
                    };
                    (k, wait)
                }),
        ));
    let body = lines
        .then(move |(k, wait)| async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            k
        })
        .map(move |k| {
            let mut line = log.line(k, timestamps).into_bytes();
            let take = usize::try_from(budget.min(line.len() as u64)).unwrap_or(0);
            line.truncate(take);
            budget -= take as u64;
            line
        })
        .take_while(|line| std::future::ready(!line.is_empty()))
        .map(|line| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http_body::Frame::data(Bytes::from(
                line,
            )))
        });
    let mut resp = Response::new(Box::pin(http_body_util::StreamBody::new(body)) as ConnectBody);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [status]}})
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn opts() -> LogOptions {
        LogOptions {
            container: "c".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_running_container_has_a_line_per_second() {
        let p =
            pod(json!({"name": "c", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}));
        let now = at("2026-01-01T00:00:10.5Z");
        let log = SimulatedLog::new(&p, &opts(), now).unwrap();
        assert_eq!((log.first, log.last, log.ended), (1, 10, false));
        let tail = SimulatedLog::new(
            &p,
            &LogOptions {
                tail_lines: Some(3),
                ..opts()
            },
            now,
        )
        .unwrap();
        assert_eq!((tail.first, tail.last), (8, 10));
        let since = SimulatedLog::new(
            &p,
            &LogOptions {
                since_seconds: Some(4),
                ..opts()
            },
            now,
        )
        .unwrap();
        assert_eq!(since.first, 6);
        assert!(log.line(2, true).starts_with("2026-01-01T00:00:02"));
        assert!(log.line(2, false).contains("simulated"));
        let none = SimulatedLog::new(
            &p,
            &LogOptions {
                tail_lines: Some(0),
                ..opts()
            },
            now,
        )
        .unwrap();
        assert!(none.first > none.last);
    }

    #[test]
    fn kubelets_status_checks_come_first() {
        let waiting =
            pod(json!({"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}));
        let now = at("2026-01-01T00:00:10Z");
        assert_eq!(
            SimulatedLog::new(&waiting, &opts(), now)
                .unwrap_err()
                .message,
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        let running = pod(json!({"name": "c", "state": {"running": {}}}));
        assert_eq!(
            SimulatedLog::new(
                &running,
                &LogOptions {
                    previous: true,
                    ..opts()
                },
                now
            )
            .unwrap_err()
            .message,
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        assert_eq!(
            SimulatedLog::new(
                &running,
                &LogOptions {
                    container: "x".into(),
                    ..opts()
                },
                now
            )
            .unwrap_err()
            .message,
            "container \"x\" in pod \"p\" is not available"
        );
    }
}
