//! The connect subresources of a pod (`pods/log`, `pods/exec`,
//! `pods/attach`, `pods/portforward`) and the seam through which an API
//! server reaches the pod behind them.
//!
//! kube-apiserver serves these by validating the request against the stored
//! pod (`pkg/registry/core/pod/strategy.go`: `LogLocation`,
//! `ExecLocation`, `AttachLocation`, `PortForwardLocation`) and then
//! proxying it to the kubelet of the pod's node, with a query it rebuilds
//! from the parsed options (`streamParams`), never the client's raw one.
//! vkube's API server does the validation itself and hands the parsed
//! [`PodOperation`] to a [`PodConnector`]: in a virtual cluster the host's
//! API server plays the kubelet (the syncer's host-pod connector), on the
//! local host of `vkube up` a node stand-in does.

use crate::service::{BoxFuture, HostRefusal};
use serde_json::Value;
use std::fmt::Write as _;

/// `PodLogOptions` after validation (`ValidatePodLogOptions`), with the
/// container resolved as `LogLocation` resolves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// The container whose log is read; never empty.
    pub container: String,
    /// Keep the stream open and send lines as they are written.
    pub follow: bool,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
    /// Prefix every line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only lines younger than this many seconds (≥ 1).
    pub since_seconds: Option<i64>,
    /// Only lines written at or after this time (RFC 3339, UTC, seconds).
    pub since_time: Option<String>,
    /// Only the last this many lines (≥ 0).
    pub tail_lines: Option<i64>,
    /// Stop after this many bytes (≥ 1).
    pub limit_bytes: Option<i64>,
    /// Skip verifying the serving certificate of the log's backend.
    pub insecure_skip_tls_verify_backend: bool,
}

/// `PodExecOptions` / `PodAttachOptions` with the container resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// The container to run in or attach to; never empty.
    pub container: String,
    /// The command to run (exec only; empty for attach).
    pub command: Vec<String>,
    /// Pass the client's stdin.
    pub stdin: bool,
    /// Return the container's stdout.
    pub stdout: bool,
    /// Return the container's stderr.
    pub stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
}

/// `pods/NAME/proxy` or `services/NAME/proxy`: an HTTP request passed to
/// the pod's or Service's port (kube-apiserver's `ResourceLocation` plus
/// its upgrade-aware proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// `pods` or `services`.
    pub resource: String,
    /// `http` or `https` when the request named one (`https:NAME:PORT`).
    pub scheme: Option<String>,
    /// The port (number or name) the request named (`NAME:PORT`).
    pub port: Option<String>,
    /// The path after `/proxy`, each segment percent-encoded, starting with
    /// `/` (or empty).
    pub path: String,
    /// The request's raw query, passed to the backend unchanged.
    pub query: Option<String>,
    /// Where the server resolved the backend to (the pod IP and port, or a
    /// ready endpoint of the Service), for a connector that dials it
    /// directly; a connector that forwards to another API server ignores it.
    pub backend: Option<std::net::SocketAddr>,
}

impl ProxyOptions {
    /// The object part of the URL for `name`: `[SCHEME:]NAME[:PORT]`.
    pub fn name_spec(&self, name: &str) -> String {
        let mut s = String::new();
        if let Some(scheme) = &self.scheme {
            s.push_str(scheme);
            s.push(':');
        }
        s.push_str(name);
        if let Some(port) = &self.port {
            s.push(':');
            s.push_str(port);
        }
        s
    }
}

/// One validated connect request on a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodOperation {
    /// `GET pods/NAME/log`: a (possibly endless) `text/plain` body.
    Log(LogOptions),
    /// `GET|POST pods/NAME/exec`: an upgraded stream (WebSocket or SPDY).
    Exec(StreamOptions),
    /// `GET|POST pods/NAME/attach`: an upgraded stream.
    Attach(StreamOptions),
    /// `GET|POST pods/NAME/portforward`: an upgraded stream carrying these
    /// ports (each 1–65535), in request order.
    PortForward(Vec<u16>),
    /// Any method on `pods/NAME/proxy/…` or `services/NAME/proxy/…`.
    Proxy(ProxyOptions),
}

impl PodOperation {
    /// The subresource name (`log`, `exec`, `attach`, `portforward`).
    pub fn subresource(&self) -> &'static str {
        match self {
            Self::Log(_) => "log",
            Self::Exec(_) => "exec",
            Self::Attach(_) => "attach",
            Self::PortForward(_) => "portforward",
            Self::Proxy(_) => "proxy",
        }
    }

    /// Whether the request is answered by upgrading the connection (every
    /// operation but the log).
    pub fn upgrades(&self) -> bool {
        !matches!(self, Self::Log(_) | Self::Proxy(_))
    }

    /// The query of the same request to another Kubernetes API server,
    /// rebuilt from the options (as `streamParams` and `LogLocation` do):
    /// parameter names of `PodLogOptions`, `PodExecOptions`,
    /// `PodAttachOptions` and `PodPortForwardOptions`, `false`, empty and
    /// unset values omitted, values percent-encoded.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let flag = |q: &mut form_urlencoded::Serializer<String>, name: &str, on: bool| {
            if on {
                q.append_pair(name, "true");
            }
        };
        match self {
            Self::Log(o) => {
                q.append_pair("container", &o.container);
                flag(&mut q, "follow", o.follow);
                flag(&mut q, "previous", o.previous);
                flag(&mut q, "timestamps", o.timestamps);
                if let Some(s) = o.since_seconds {
                    q.append_pair("sinceSeconds", &s.to_string());
                }
                if let Some(t) = &o.since_time {
                    q.append_pair("sinceTime", t);
                }
                if let Some(n) = o.tail_lines {
                    q.append_pair("tailLines", &n.to_string());
                }
                if let Some(n) = o.limit_bytes {
                    q.append_pair("limitBytes", &n.to_string());
                }
                flag(
                    &mut q,
                    "insecureSkipTLSVerifyBackend",
                    o.insecure_skip_tls_verify_backend,
                );
            }
            Self::Exec(o) | Self::Attach(o) => {
                q.append_pair("container", &o.container);
                for c in &o.command {
                    q.append_pair("command", c);
                }
                flag(&mut q, "stdin", o.stdin);
                flag(&mut q, "stdout", o.stdout);
                flag(&mut q, "stderr", o.stderr);
                flag(&mut q, "tty", o.tty);
            }
            Self::Proxy(p) => return p.query.clone().unwrap_or_default(),
            Self::PortForward(ports) => {
                let mut list = String::new();
                for (i, p) in ports.iter().enumerate() {
                    if i > 0 {
                        list.push(',');
                    }
                    let _ = write!(list, "{p}");
                }
                if !list.is_empty() {
                    q.append_pair("ports", &list);
                }
            }
        }
        q.finish()
    }
}

/// The body of a connect response: a stream of bytes (a log, or nothing
/// for a `101` answer).
pub type ConnectBody = std::pin::Pin<
    Box<
        dyn http_body::Body<Data = bytes::Bytes, Error = Box<dyn std::error::Error + Send + Sync>>
            + Send,
    >,
>;

/// An empty [`ConnectBody`] (the body of a `101` answer).
pub fn empty_body() -> ConnectBody {
    struct Empty;
    impl http_body::Body for Empty {
        type Data = bytes::Bytes;
        type Error = Box<dyn std::error::Error + Send + Sync>;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            std::task::Poll::Ready(None)
        }
        fn is_end_stream(&self) -> bool {
            true
        }
    }
    Box::pin(Empty)
}

/// A validated connect request, handed to a [`PodConnector`].
#[derive(Debug)]
pub struct PodConnection {
    /// The stored pod, complete (`metadata.uid`, `spec.nodeName` set for
    /// every operation but a log); the stored Service for a Service proxy.
    pub pod: Value,
    /// What to do.
    pub operation: PodOperation,
    /// The client's request without its body: method, headers (`Upgrade`,
    /// `Connection`, `Sec-WebSocket-*`, `X-Stream-Protocol-Version`) and
    /// extensions, which hold the connection's pending upgrade
    /// (`hyper::upgrade::on`) for an operation that [`upgrades`].
    ///
    /// [`upgrades`]: PodOperation::upgrades
    pub request: http::Request<()>,
    /// The request body (a proxied request's; empty otherwise).
    pub body: bytes::Bytes,
}

/// Reaches the pod behind a connect request, as kube-apiserver's kubelet
/// client does. The API server has already checked everything it can
/// check from the stored pod (the pod exists, the container is one of its
/// containers, the pod is bound to a node for streams); the connector
/// answers what the kubelet would (container not running, no such previous
/// instance) as a [`HostRefusal`] whose message names the pod as the
/// client knows it.
pub trait PodConnector: Send + Sync + std::fmt::Debug {
    /// The response to send the client: the log stream, or the `101
    /// Switching Protocols` answer after which the connector pumps the
    /// upgraded connection on its own task.
    fn connect(
        &self,
        conn: PodConnection,
    ) -> BoxFuture<'_, Result<http::Response<ConnectBody>, HostRefusal>>;
}

/// Request headers a proxy passes to the backend (kube-apiserver's proxy
/// passes the client's request minus its credentials, which authentication
/// removed; this list keeps what HTTP clients and apps rely on).
pub const PROXY_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "content-type",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "range",
    "user-agent",
];

/// Hop-by-hop response headers a proxy does not pass back (RFC 9110 §7.6.1).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A [`HostRefusal`] with kube-apiserver's `400 BadRequest` shape.
pub fn bad_request(message: impl Into<String>) -> HostRefusal {
    HostRefusal {
        code: 400,
        reason: "BadRequest".into(),
        message: message.into(),
        details: None,
    }
}

/// A [`HostRefusal`] with kube-apiserver's `503 ServiceUnavailable` shape
/// (a proxy whose backend cannot be reached: `error trying to reach
/// service: …`, `no endpoints available for service "x"`).
pub fn unavailable(message: impl Into<String>) -> HostRefusal {
    HostRefusal {
        code: 503,
        reason: "ServiceUnavailable".into(),
        message: message.into(),
        details: None,
    }
}

/// A [`HostRefusal`] with kube-apiserver's `500 InternalError` shape (the
/// answer to a kubelet that cannot be reached: `error dialing backend`).
pub fn internal_error(message: impl Into<String>) -> HostRefusal {
    HostRefusal {
        code: 500,
        reason: "InternalError".into(),
        message: message.into(),
        details: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_query_lists_set_options_in_kube_order() {
        let op = PodOperation::Log(LogOptions {
            container: "c 1".into(),
            follow: true,
            tail_lines: Some(0),
            since_time: Some("2026-01-02T03:04:05Z".into()),
            ..Default::default()
        });
        assert_eq!(
            op.query(),
            "container=c+1&follow=true&sinceTime=2026-01-02T03%3A04%3A05Z&tailLines=0"
        );
        assert!(!op.upgrades());
    }

    #[test]
    fn exec_query_repeats_command_and_omits_false_flags() {
        let op = PodOperation::Exec(StreamOptions {
            container: "app".into(),
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            stdout: true,
            stderr: true,
            ..Default::default()
        });
        assert_eq!(
            op.query(),
            "container=app&command=sh&command=-c&command=exit+3&stdout=true&stderr=true"
        );
        assert_eq!(op.subresource(), "exec");
    }

    #[test]
    fn portforward_query_joins_ports() {
        assert_eq!(
            PodOperation::PortForward(vec![80, 8443]).query(),
            "ports=80%2C8443"
        );
        assert_eq!(PodOperation::PortForward(vec![]).query(), "");
    }
}
