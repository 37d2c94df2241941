//! Server side of kubelet's WebSocket channel protocols
//! (`k8s.io/apimachinery/pkg/util/httpstream/wsstream` and the
//! remote-command protocols of `k8s.io/cri-streaming`), for
//! [`crate::local_node::LocalNode`].
//!
//! Every binary message is `[channel][payload]`. For exec: stdin 0, stdout
//! 1, stderr 2, error 3 (the final `metav1.Status` as JSON on `v4`/`v5`),
//! resize 4 (`{"Width":W,"Height":H}`); `v5.channel.k8s.io` adds channel
//! 255, on which the client sends `[255, c]` to close its stream `c`
//! (stdin EOF). `channel.k8s.io` (v1) writes only a failure's message on
//! the error channel. The base64 text variants are not served.

use crate::error::{ApiError, ApiResult};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use vkube_core::connect::{ConnectBody, StreamOptions};

/// The remote-command protocol with stream close signals (kubectl ≥ 1.30).
pub const V5: &str = "v5.channel.k8s.io";
/// The remote-command protocol with a JSON `Status` on the error channel.
pub const V4: &str = "v4.channel.k8s.io";
/// The original binary channel protocol.
pub const V1: &str = "channel.k8s.io";

/// The protocols `exec` speaks, preferred first.
pub const EXEC_PROTOCOLS: &[&str] = &[V5, V4, V1];

/// The channel on which a v5 client closes one of its streams.
const CLOSE_CHANNEL: u8 = 255;

/// Bytes read from a process per message.
const READ_CHUNK: usize = 32 * 1024;

/// An accepted WebSocket connection.
pub struct Channel {
    /// The socket, after the upgrade.
    pub socket: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    /// The negotiated subprotocol (`None` when the client offered none,
    /// which gets the binary framing, as `wsstream`'s `""` protocol).
    pub protocol: Option<&'static str>,
}

/// The subprotocol to answer with: the first of the client's
/// comma-separated `Sec-WebSocket-Protocol` offers that is `supported`
/// (wsstream's choice), `None` when the client offered none.
///
/// # Errors
/// `400 BadRequest` when protocols are offered but none is supported.
pub fn negotiate(
    offered: Option<&str>,
    supported: &[&'static str],
) -> ApiResult<Option<&'static str>> {
    let offered: Vec<&str> = offered
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(None);
    }
    for p in &offered {
        if let Some(s) = supported.iter().find(|s| *s == p) {
            return Ok(Some(*s));
        }
    }
    Err(ApiError::bad_request(format!(
        "requested protocol(s) are not supported: {offered:?}; supports {supported:?}"
    )))
}

/// Whether the headers ask for a WebSocket upgrade.
fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, want: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(want))
    };
    has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// Accepts a WebSocket upgrade of `request`: the `101` answer to send, and
/// a future giving the connection once the client has it (`None` if the
/// upgrade failed).
///
/// # Errors
/// `400 Upgrade request required` when the request is not a WebSocket
/// upgrade (kube-apiserver's answer; an SPDY client falls back to nothing
/// here) or arrived over HTTP/2, and the errors of [`negotiate`].
pub fn accept(
    request: &mut http::Request<()>,
    supported: &[&'static str],
) -> ApiResult<(
    Response<ConnectBody>,
    impl Future<Output = Option<Channel>> + Send + 'static,
)> {
    let headers = request.headers();
    if !is_websocket(headers) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let protocol = negotiate(
        headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
        supported,
    )?;
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return Err(ApiError::bad_request(
            "Upgrade request required (streams need HTTP/1.1)",
        ));
    };
    let mut resp = Response::new(vkube_core::connect::empty_body());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&key).map_err(ApiError::internal)?,
    );
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    let upgraded = async move {
        match on_upgrade.await {
            Ok(io) => Some(Channel {
                socket: WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None)
                    .await,
                protocol,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "stream upgrade failed");
                None
            }
        }
    };
    Ok((resp, upgraded))
}

/// The close frame that ends a stream: code 1000 (normal closure), which
/// client-go's WebSocket reader takes as the end; a close without a code
/// (1005) it reports as an error.
pub fn normal_close() -> Message {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// One binary channel message: `[channel][payload]`.
pub fn frame(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(channel);
    out.extend_from_slice(payload);
    out
}

/// The error channel's final message for a process that exited with
/// `code` running `command` (cri-streaming's `ServeExec`): `None` for v1
/// on success, the `Status` JSON on v4/v5, the bare message on v1.
pub fn exit_status(protocol: Option<&str>, command: &[String], code: i32) -> Option<Vec<u8>> {
    let v4 = matches!(protocol, Some(V4 | V5));
    if code == 0 {
        return v4.then(|| {
            json!({"metadata": {}, "status": "Success"})
                .to_string()
                .into_bytes()
        });
    }
    let message = format!(
        "command terminated with non-zero exit code: command '{}' exited with {code}",
        command.join(" ")
    );
    if !v4 {
        return Some(message.into_bytes());
    }
    let status = json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    });
    Some(status.to_string().into_bytes())
}

/// Starts `opts.command` as a local process (test scaffolding), its stdin,
/// stdout and (when `stderr`) stderr piped as the options ask, killed when
/// dropped.
///
/// # Errors
/// The program cannot be started.
pub fn spawn_local(opts: &StreamOptions, stderr: bool) -> std::io::Result<tokio::process::Child> {
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    tokio::process::Command::new(&opts.command[0])
        .args(&opts.command[1..])
        .stdin(piped(opts.stdin))
        .stdout(piped(opts.stdout))
        .stderr(piped(stderr))
        .kill_on_drop(true)
        .spawn()
}

/// The error stream's message for a command that could not start
/// (cri-streaming's `newInternalError`): a `Status` JSON when `status_json`
/// (v4 and later), else the bare message.
pub fn spawn_failure(status_json: bool, e: &std::io::Error) -> Vec<u8> {
    let message = format!("Internal error occurred: error executing command in container: {e}");
    if status_json {
        json!({"metadata": {}, "status": "Failure", "message": message,
               "reason": "InternalError", "code": 500})
        .to_string()
        .into_bytes()
    } else {
        message.into_bytes()
    }
}

/// Runs `opts.command` as a local process and pumps its standard streams
/// over `channel` until it exits, then writes its exit status and closes
/// (test scaffolding, see [`crate::local_node::LocalExec`]). A client that
/// goes away kills the process.
pub async fn run_local(channel: Channel, opts: &StreamOptions) {
    let Channel { socket, protocol } = channel;
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if sink.send(Message::binary(msg)).await.is_err() {
                return;
            }
        }
        let _ = sink.send(crate::channel::normal_close()).await;
        let _ = sink.flush().await;
    });
    // kubelet announces the connection on the lowest writable channel.
    let first = if opts.stdout {
        1
    } else if opts.stderr {
        2
    } else {
        3
    };
    let _ = tx.send(vec![first]).await;
    let mut child = match spawn_local(opts, opts.stderr) {
        Ok(c) => c,
        Err(e) => {
            let body = spawn_failure(matches!(protocol, Some(V4 | V5)), &e);
            let _ = tx.send(frame(3, &body)).await;
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    let mut pumps = tokio::task::JoinSet::new();
    for (channel, out) in [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            2u8,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(mut out) = out else { continue };
        let tx = tx.clone();
        pumps.spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send(frame(channel, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    let mut stdin = child.stdin.take();
    let v5 = protocol == Some(V5);
    let from_client = async {
        while let Some(Ok(msg)) = incoming.next().await {
            let bytes = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => return false,
                _ => continue,
            };
            match bytes.split_first() {
                Some((0, data)) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(data).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some((&CLOSE_CHANNEL, [0, ..])) if v5 => stdin = None,
                // Resize (4) has no terminal to act on here.
                _ => {}
            }
        }
        false
    };
    let exited = async {
        let status = child.wait().await;
        while pumps.join_next().await.is_some() {}
        status
    };
    let client_left = tokio::select! {
        status = exited => {
            let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
            if let Some(msg) = exit_status(protocol, &opts.command, code) {
                let _ = tx.send(frame(3, &msg)).await;
            }
            false
        }
        _ = from_client => true,
    };
    if client_left {
        // Nobody reads the output any more: stop the process and its pumps
        // (which hold senders) so the writer can end.
        let _ = child.start_kill();
        pumps.abort_all();
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_first_supported_offer_wins() {
        assert_eq!(
            negotiate(Some("v5.channel.k8s.io, v4.channel.k8s.io"), EXEC_PROTOCOLS).unwrap(),
            Some(V5)
        );
        assert_eq!(
            negotiate(Some("v5.channel.k8s.io,v4.channel.k8s.io"), &[V4]).unwrap(),
            Some(V4)
        );
        assert_eq!(negotiate(None, &[V4]).unwrap(), None);
        assert_eq!(
            negotiate(Some("v4.base64.channel.k8s.io"), EXEC_PROTOCOLS)
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn exit_codes_travel_as_kubelet_writes_them() {
        let cmd = ["sh".to_string(), "-c".into(), "exit 3".into()];
        let v4: serde_json::Value =
            serde_json::from_slice(&exit_status(Some(V5), &cmd, 3).unwrap()).unwrap();
        assert_eq!(v4["reason"], "NonZeroExitCode");
        assert_eq!(
            v4["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        let ok: serde_json::Value =
            serde_json::from_slice(&exit_status(Some(V4), &cmd, 0).unwrap()).unwrap();
        assert_eq!(ok["status"], "Success");
        assert_eq!(exit_status(Some(V1), &cmd, 0), None);
        assert!(
            String::from_utf8(exit_status(None, &cmd, 3).unwrap())
                .unwrap()
                .contains("exited with 3")
        );
    }
}
