//! `pods/{name}/portforward` on a server standing in for a host
//! ([`crate::local_node::LocalNode`]): the stand-in for kubelet's port
//! forwarding.
//!
//! A real kube-apiserver proxies `GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=P`
//! to the kubelet of the pod's node, which connects to `localhost:P` inside the
//! pod's network namespace. This server has no kubelet and no pod network, so
//! it dials `status.podIP:P` itself, which is what a pod's port amounts to on a
//! single local host (the `NodeSimulator` or a test writes `status.podIP`).
//!
//! The stream is kubelet's WebSocket port-forward protocol
//! (`k8s.io/kubelet/pkg/cri/streaming/portforward/websocket.go` over
//! `k8s.io/apiserver/pkg/util/wsstream`), the one kube-rs'
//! `Api::<Pod>::portforward` speaks: subprotocol `v4.channel.k8s.io` (binary
//! channels; a request without `Sec-WebSocket-Protocol` gets the same
//! framing), two channels per requested port `i` (data `2i`, error `2i+1`),
//! every binary message `[channel byte][payload]`, and the first message on
//! each channel the port as 2 bytes little-endian. A failed dial is reported
//! as text on the port's error channel, as kubelet does; the socket closes
//! once every port's pod side has ended, or when the client closes it.
//!
//! Authentication and authorization are the same as for every other request
//! (the bootstrap roles grant verb `create` on `pods/portforward`; RBAC is
//! not enforced yet, see docs/apiserver.md). Since the address dialled is whatever `status.podIP` says, the
//! right to write pod status on this server amounts to reach from the
//! server's host to that address, as it does for a kubelet's node: only pods
//! bound to a node (`spec.nodeName`) and `Running` are forwarded.

use crate::error::{ApiError, ApiResult};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The binary channel subprotocol kubelet's `wsstream` offers for port
/// forwarding (besides `v4.base64.channel.k8s.io`, which is not served).
pub const CHANNEL_PROTOCOL_V4: &str = "v4.channel.k8s.io";

/// How long dialling one pod port may take (kubelet's stream creation
/// timeout is 30 s; a local dial either succeeds or fails at once).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read from a pod connection per WebSocket message.
const READ_CHUNK: usize = 32 * 1024;

/// The ports of a port-forward request: every `ports` query parameter, each
/// a comma-separated list (kube-rs sends `ports=80%2C1234`, kubectl repeats
/// the parameter), in request order.
///
/// # Errors
/// `400 BadRequest` with kubelet's messages when there is no `ports`
/// parameter, one is empty, or a value is not a port in `1..=65535`.
pub fn parse_ports(query: Option<&str>) -> ApiResult<Vec<u16>> {
    let values: Vec<String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "ports")
        .map(|(_, v)| v.into_owned())
        .collect();
    if values.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter \"ports\" is required",
        ));
    }
    let mut ports = Vec::new();
    for value in &values {
        if value.is_empty() {
            return Err(ApiError::bad_request(
                "query parameter \"ports\" cannot be empty",
            ));
        }
        for p in value.split(',') {
            let port: u16 = p.trim().parse().map_err(|e| {
                ApiError::bad_request(format!("unable to parse {value:?} as a port: {e}"))
            })?;
            if port == 0 {
                return Err(ApiError::bad_request(format!("port {value:?} must be > 0")));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Where a pod's ports are reached, read from the stored Pod (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEndpoint {
    /// `status.podIP`.
    pub ip: IpAddr,
    /// kubelet's "pod full name", `NAME_NAMESPACE`, used in error messages.
    pub full_name: String,
    /// `metadata.uid`.
    pub uid: String,
}

/// The pod's endpoint when it can be forwarded to.
///
/// # Errors
/// `400 BadRequest` when the pod is not bound to a node (kube-apiserver's
/// `pod NAME does not have a host assigned`), is not `Running`, or has no
/// valid `status.podIP`.
pub fn pod_endpoint(pod: &Value) -> ApiResult<PodEndpoint> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    if pod["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to forward ports: pod {name} is not running (phase {phase:?})"
        )));
    }
    let ip = pod["status"]["podIP"]
        .as_str()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to forward ports: pod {name} has no IP address (status.podIP)"
            ))
        })?;
    Ok(PodEndpoint {
        ip,
        full_name: format!("{name}_{namespace}"),
        uid: pod["metadata"]["uid"].as_str().unwrap_or_default().into(),
    })
}

/// A channel's first message: the port, 2 bytes little-endian.
pub fn port_frame(channel: u8, port: u16) -> Vec<u8> {
    crate::channel::frame(channel, &port.to_le_bytes())
}

/// Dials every port, then pumps bytes both ways until every pod connection
/// has ended or the client has gone.
pub(crate) async fn forward<S>(ws: WebSocketStream<S>, endpoint: PodEndpoint, ports: Vec<u16>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    // Messages to the client; the writer sends a close frame once every
    // sender (one per live pod connection) is gone.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let mut writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if sink.send(Message::binary(msg)).await.is_err() {
                return;
            }
        }
        let _ = sink.send(crate::channel::normal_close()).await;
        let _ = sink.flush().await;
    });
    let mut to_pod: Vec<Option<OwnedWriteHalf>> = Vec::with_capacity(ports.len());
    let mut readers = tokio::task::JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let data = (2 * i) as u8;
        let error = data + 1;
        if tx.send(port_frame(data, port)).await.is_err()
            || tx.send(port_frame(error, port)).await.is_err()
        {
            return;
        }
        let addr = SocketAddr::new(endpoint.ip, port);
        let dialled = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "i/o timeout",
            )),
        };
        match dialled {
            Ok(conn) => {
                let _ = conn.set_nodelay(true);
                let (mut read, write) = conn.into_split();
                to_pod.push(Some(write));
                let tx = tx.clone();
                readers.spawn(async move {
                    let mut buf = vec![0u8; READ_CHUNK];
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if tx
                                    .send(crate::channel::frame(data, &buf[..n]))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                to_pod.push(None);
                let msg = format!(
                    "error forwarding port {port} to pod {}, uid {}: dial tcp {addr}: {e}",
                    endpoint.full_name, endpoint.uid
                );
                tracing::debug!(%msg, "port-forward dial failed");
                if tx
                    .send(crate::channel::frame(error, msg.as_bytes()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    drop(tx);
    let from_client = async {
        while let Some(Ok(msg)) = incoming.next().await {
            let bytes = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, payload)) = bytes.split_first() else {
                continue;
            };
            // Only data channels carry bytes to the pod; kubelet ignores the
            // rest.
            let slot = (channel % 2 == 0)
                .then(|| to_pod.get_mut(usize::from(channel / 2)))
                .flatten();
            if let Some(slot) = slot
                && let Some(w) = slot
                && !payload.is_empty()
                && w.write_all(payload).await.is_err()
            {
                *slot = None;
            }
        }
    };
    tokio::select! {
        _ = from_client => {}
        _ = &mut writer => {}
    }
    for w in to_pod.iter_mut().flatten() {
        let _ = w.shutdown().await;
    }
    readers.abort_all();
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_come_from_repeated_and_comma_separated_parameters() {
        assert_eq!(
            parse_ports(Some("&ports=80%2C1234&ports=8443")).unwrap(),
            vec![80, 1234, 8443]
        );
        for bad in [
            None,
            Some(""),
            Some("ports="),
            Some("ports=0"),
            Some("ports=x"),
            Some("ports=70000"),
        ] {
            assert_eq!(parse_ports(bad).unwrap_err().code, 400, "{bad:?}");
        }
    }

    #[test]
    fn a_pod_is_forwarded_to_when_bound_running_and_addressed() {
        let mut pod = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.7"},
        });
        assert_eq!(
            pod_endpoint(&pod).unwrap(),
            PodEndpoint {
                ip: "10.0.0.7".parse().unwrap(),
                full_name: "web_ns".into(),
                uid: "u1".into()
            }
        );
        pod["status"]["podIP"] = json!("not-an-ip");
        assert!(pod_endpoint(&pod).unwrap_err().message.contains("no IP"));
        pod["status"] = json!({"phase": "Pending", "podIP": "10.0.0.7"});
        assert!(
            pod_endpoint(&pod)
                .unwrap_err()
                .message
                .contains("not running")
        );
        pod["spec"] = json!({});
        assert!(
            pod_endpoint(&pod)
                .unwrap_err()
                .message
                .contains("host assigned")
        );
    }

    #[test]
    fn frames_carry_the_channel_then_the_payload() {
        assert_eq!(port_frame(3, 8443), vec![3, 0xfb, 0x20]);
        assert_eq!(crate::channel::frame(0, b"hi"), vec![0, b'h', b'i']);
    }
}
