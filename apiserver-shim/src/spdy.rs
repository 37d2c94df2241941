//! The server side of SPDY/3.1 as Kubernetes streams use it (kubelet's
//! `httpstream/spdy` over moby's spdystream), for
//! [`crate::local_node::LocalNode`]: kubectl's port-forward (SPDY, or SPDY
//! tunnelled in WebSocket binary messages, `SPDY/3.1+portforward.k8s.io`)
//! and exec with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`.
//!
//! The client opens every stream (SYN_STREAM, headers `streamtype`, `port`,
//! `requestid`); the server answers each with SYN_REPLY, then both send
//! DATA frames (FIN half-closes). Header blocks are zlib-compressed with
//! the SPDY/3 dictionary, one compression context per direction for the
//! whole connection (SPDY draft 3, §2.6.10). spdystream does no flow
//! control, so neither does this; PINGs are echoed; everything else is
//! ignored.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

/// The `Upgrade` token of a SPDY connection.
pub const UPGRADE: &str = "SPDY/3.1";
/// The subprotocol of port-forward tunnelled over WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The port-forward stream protocol.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const FLAG_FIN: u8 = 0x01;
/// Largest frame accepted (SPDY's 24-bit length).
const MAX_FRAME: usize = (1 << 24) - 1;
/// Largest decompressed header block accepted.
const MAX_HEADERS: usize = 64 * 1024;

/// The SPDY/3 header compression dictionary (SPDY draft 3, §2.6.10.1):
/// the listed words, each with a 4-byte big-endian length, then one string.
pub fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    let mut out = Vec::with_capacity(1423);
    for w in WORDS {
        out.extend_from_slice(&(w.len() as u32).to_be_bytes());
        out.extend_from_slice(w.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
}

/// What the client sent.
#[derive(Debug)]
pub enum Event {
    /// A new stream with its (lower-case) headers.
    Open {
        /// Stream id.
        id: u32,
        /// Header names and values.
        headers: HashMap<String, String>,
    },
    /// Data on a stream; `fin` half-closes it.
    Data {
        /// Stream id.
        id: u32,
        /// Payload.
        data: Bytes,
        /// Last frame from the client on this stream.
        fin: bool,
    },
    /// The client reset a stream.
    Reset(u32),
}

/// Decodes an uncompressed header block.
fn parse_headers(block: &[u8]) -> Option<HashMap<String, String>> {
    let mut at = 0usize;
    let u32_at = |at: &mut usize| -> Option<usize> {
        let b = block.get(*at..*at + 4)?;
        *at += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let n = u32_at(&mut at)?;
    let mut out = HashMap::new();
    for _ in 0..n.min(1024) {
        let len = u32_at(&mut at)?;
        let name = String::from_utf8_lossy(block.get(at..at + len)?).to_ascii_lowercase();
        at += len;
        let len = u32_at(&mut at)?;
        let value = String::from_utf8_lossy(block.get(at..at + len)?).to_string();
        at += len;
        out.insert(name, value);
    }
    Some(out)
}

/// Reads client frames and decompresses their header blocks.
pub struct Reader<R> {
    io: R,
    inflate: Decompress,
    dictionary: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Frames from `io`.
    pub fn new(io: R) -> Self {
        Self {
            io,
            inflate: Decompress::new(true),
            dictionary: dictionary(),
        }
    }

    fn inflate(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(1024);
        let mut at = 0usize;
        loop {
            let before_in = self.inflate.total_in();
            if out.len() == out.capacity() {
                out.reserve(1024);
            }
            match self
                .inflate
                .decompress_vec(&input[at..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(&self.dictionary).ok()?;
                }
                Err(_) => return None,
            }
            at += (self.inflate.total_in() - before_in) as usize;
            if out.len() > MAX_HEADERS {
                return None;
            }
            if at >= input.len() && out.len() < out.capacity() {
                return Some(out);
            }
        }
    }

    /// The next event; `None` at the end of the connection or on a
    /// protocol error. PINGs are answered through `writer`.
    pub async fn next(&mut self, writer: &Writer) -> Option<Event> {
        loop {
            let mut head = [0u8; 8];
            self.io.read_exact(&mut head).await.ok()?;
            let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
            if len > MAX_FRAME {
                return None;
            }
            let mut body = vec![0u8; len];
            self.io.read_exact(&mut body).await.ok()?;
            let flags = head[4];
            if head[0] & 0x80 == 0 {
                let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                return Some(Event::Data {
                    id,
                    data: Bytes::from(body),
                    fin: flags & FLAG_FIN != 0,
                });
            }
            let kind = u16::from_be_bytes([head[2], head[3]]);
            let id = body
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]))
                .unwrap_or(0);
            match kind {
                SYN_STREAM if body.len() >= 10 => {
                    let block = self.inflate(&body[10..])?;
                    let headers = parse_headers(&block)?;
                    return Some(Event::Open { id, headers });
                }
                RST_STREAM => return Some(Event::Reset(id)),
                PING if body.len() == 4 => writer.control(PING, 0, body).await,
                // SETTINGS, WINDOW_UPDATE, GOAWAY, HEADERS: nothing to do.
                _ => {}
            }
        }
    }
}

/// Writes server frames (shared by the session's tasks).
pub struct Writer {
    io: Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
    deflate: Mutex<Compress>,
}

impl Writer {
    /// Frames to `io`.
    pub fn new(io: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        let mut deflate = Compress::new(Compression::best(), true);
        let _ = deflate.set_dictionary(&dictionary());
        Self {
            io: Mutex::new(Box::new(io)),
            deflate: Mutex::new(deflate),
        }
    }

    async fn write(&self, frame: &[u8]) {
        let mut io = self.io.lock().await;
        let _ = io.write_all(frame).await;
        let _ = io.flush().await;
    }

    async fn control(&self, kind: u16, flags: u8, body: Vec<u8>) {
        let mut frame = Vec::with_capacity(8 + body.len());
        frame.extend_from_slice(&(0x8000u16 | 3).to_be_bytes());
        frame.extend_from_slice(&kind.to_be_bytes());
        frame.push(flags);
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&body);
        self.write(&frame).await;
    }

    /// SYN_REPLY with no headers for stream `id`.
    pub async fn reply(&self, id: u32) {
        let block = {
            let mut c = self.deflate.lock().await;
            let mut out = Vec::with_capacity(64);
            let _ = c.compress_vec(&[0, 0, 0, 0], &mut out, FlushCompress::Sync);
            out
        };
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&block);
        self.control(SYN_REPLY, 0, body).await;
    }

    /// DATA on stream `id` (`fin` closes the server's side).
    pub async fn data(&self, id: u32, data: &[u8], fin: bool) {
        for (i, chunk) in data.chunks(MAX_FRAME.min(1 << 16)).enumerate() {
            let last = (i + 1) * (1 << 16) >= data.len();
            self.data_frame(id, chunk, fin && last).await;
        }
        if data.is_empty() {
            self.data_frame(id, &[], fin).await;
        }
    }

    async fn data_frame(&self, id: u32, chunk: &[u8], fin: bool) {
        let mut frame = Vec::with_capacity(8 + chunk.len());
        frame.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
        frame.push(if fin { FLAG_FIN } else { 0 });
        frame.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(chunk);
        self.write(&frame).await;
    }
}

/// Port-forward over a SPDY connection (kubelet's
/// `portforward/httpstream.go`): each `requestid` pairs an `error` and a
/// `data` stream for one `port`; the data stream is piped to
/// `endpoint:port`, a failed dial is told on the error stream.
pub async fn serve_port_forward<S>(io: S, endpoint: crate::portforward::PodEndpoint)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (r, w) = tokio::io::split(io);
    let writer = std::sync::Arc::new(Writer::new(w));
    let mut reader = Reader::new(r);
    // requestid → (error stream, data stream, port)
    let mut pairs: HashMap<String, (Option<u32>, Option<u32>, u16)> = HashMap::new();
    let mut to_pod: HashMap<u32, mpsc::Sender<Option<Bytes>>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(ev) = reader.next(&writer).await {
        match ev {
            Event::Open { id, headers } => {
                writer.reply(id).await;
                let request = headers.get("requestid").cloned().unwrap_or_default();
                let port: u16 = headers
                    .get("port")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let entry = pairs.entry(request.clone()).or_insert((None, None, port));
                match headers.get("streamtype").map(String::as_str) {
                    Some("error") => entry.0 = Some(id),
                    Some("data") => entry.1 = Some(id),
                    _ => continue,
                }
                if let (Some(err), Some(data), port) = *entry {
                    pairs.remove(&request);
                    let (tx, rx) = mpsc::channel(16);
                    to_pod.insert(data, tx);
                    let writer = writer.clone();
                    let addr = std::net::SocketAddr::new(endpoint.ip, port);
                    let name = endpoint.full_name.clone();
                    let uid = endpoint.uid.clone();
                    tasks.spawn(async move {
                        pipe_port(writer, err, data, addr, rx, &name, &uid).await;
                    });
                }
            }
            Event::Data { id, data, fin } => {
                if let Some(tx) = to_pod.get(&id) {
                    if !data.is_empty() && tx.send(Some(data)).await.is_err() {
                        to_pod.remove(&id);
                    } else if fin {
                        let _ = tx.send(None).await;
                        to_pod.remove(&id);
                    }
                }
            }
            Event::Reset(id) => {
                to_pod.remove(&id);
            }
        }
    }
    tasks.abort_all();
}

async fn pipe_port(
    writer: std::sync::Arc<Writer>,
    err: u32,
    data: u32,
    addr: std::net::SocketAddr,
    mut from_client: mpsc::Receiver<Option<Bytes>>,
    pod: &str,
    uid: &str,
) {
    let conn = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let msg = format!(
                "error forwarding port {} to pod {pod}, uid {uid}: dial tcp {addr}: {e}",
                addr.port()
            );
            writer.data(err, msg.as_bytes(), true).await;
            writer.data(data, &[], true).await;
            return;
        }
        Err(_) => {
            writer.data(err, b"i/o timeout", true).await;
            writer.data(data, &[], true).await;
            return;
        }
    };
    let (mut pr, mut pw) = conn.into_split();
    let up = async {
        while let Some(Some(chunk)) = from_client.recv().await {
            if pw.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = pw.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match pr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => writer.data(data, &buf[..n], false).await,
            }
        }
        writer.data(data, &[], true).await;
        writer.data(err, &[], true).await;
    };
    tokio::join!(up, down);
}

/// The remote-command protocols served over SPDY (kubelet's
/// `remotecommand` over httpstream), preferred first.
pub const EXEC_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// Exec over a SPDY connection (test scaffolding, see
/// [`crate::local_node::LocalExec`]): waits for the client's streams
/// (`error`, and `stdin`, `stdout`, `stderr` as the options ask; `resize`
/// is accepted and ignored), runs the command as a local process, pumps its
/// streams, then writes the exit status on the error stream (a `Status`
/// JSON on v4, the message of a failure before) and closes.
pub async fn serve_exec<S>(io: S, opts: vkube_core::connect::StreamOptions, protocol: &'static str)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (r, w) = tokio::io::split(io);
    let writer = std::sync::Arc::new(Writer::new(w));
    let mut reader = Reader::new(r);
    let mut ids: HashMap<String, u32> = HashMap::new();
    let want = |ids: &HashMap<String, u32>| {
        ids.contains_key("error")
            && (!opts.stdin || ids.contains_key("stdin"))
            && (!opts.stdout || ids.contains_key("stdout"))
            && (!opts.stderr || opts.tty || ids.contains_key("stderr"))
    };
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(30));
    tokio::pin!(deadline);
    while !want(&ids) {
        tokio::select! {
            ev = reader.next(&writer) => match ev {
                Some(Event::Open { id, headers }) => {
                    writer.reply(id).await;
                    if let Some(t) = headers.get("streamtype") {
                        ids.insert(t.clone(), id);
                    }
                }
                Some(_) => {}
                None => return,
            },
            _ = &mut deadline => return,
        }
    }
    let error_id = ids["error"];
    let v4 = protocol == "v4.channel.k8s.io";
    let mut child = match crate::channel::spawn_local(&opts, opts.stderr && !opts.tty) {
        Ok(c) => c,
        Err(e) => {
            let body = crate::channel::spawn_failure(v4, &e);
            writer.data(error_id, &body, true).await;
            return;
        }
    };
    let mut pumps = tokio::task::JoinSet::new();
    for (name, out) in [
        (
            "stdout",
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
        ),
        (
            "stderr",
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
        ),
    ] {
        let (Some(mut out), Some(&id)) = (out, ids.get(name)) else {
            continue;
        };
        let writer = writer.clone();
        pumps.spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => writer.data(id, &buf[..n], false).await,
                }
            }
            writer.data(id, &[], true).await;
        });
    }
    let mut stdin = child.stdin.take();
    let stdin_id = ids.get("stdin").copied();
    let exited = async {
        let status = child.wait().await;
        while pumps.join_next().await.is_some() {}
        status
    };
    tokio::pin!(exited);
    let status = loop {
        tokio::select! {
            status = &mut exited => break Some(status),
            ev = reader.next(&writer) => match ev {
                Some(Event::Data { id, data, fin }) if Some(id) == stdin_id => {
                    if let Some(w) = stdin.as_mut()
                        && !data.is_empty()
                        && w.write_all(&data).await.is_err()
                    {
                        stdin = None;
                    }
                    if fin {
                        stdin = None;
                    }
                }
                Some(Event::Open { id, .. }) => writer.reply(id).await,
                Some(_) => {}
                // The client went away: stop the process.
                None => break None,
            },
        }
    };
    // When the client went away, returning drops the child (killed on
    // drop) and its pumps.
    if let Some(status) = status {
        let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
        let label = if v4 { Some(crate::channel::V4) } else { None };
        let msg = crate::channel::exit_status(label, &opts.command, code);
        writer
            .data(error_id, msg.as_deref().unwrap_or_default(), true)
            .await;
    }
}

/// A WebSocket connection carrying a byte stream in binary messages (the
/// port-forward tunnel): the other end of the returned duplex pipe.
pub fn tunnel<S>(ws: tokio_tungstenite::WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut rd, mut wr) = tokio::io::split(ours);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        let inbound = async {
            while let Some(Ok(msg)) = stream.next().await {
                let b = match msg {
                    Message::Binary(b) => b,
                    Message::Close(_) => break,
                    _ => continue,
                };
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        };
        let outbound = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.send(crate::channel::normal_close()).await;
        };
        tokio::select! {
            _ = inbound => {}
            _ = outbound => {}
        }
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_has_the_specified_shape() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_through_both_contexts() {
        let mut block = 2u32.to_be_bytes().to_vec();
        for (k, v) in [("streamtype", "data"), ("port", "8080")] {
            block.extend_from_slice(&(k.len() as u32).to_be_bytes());
            block.extend_from_slice(k.as_bytes());
            block.extend_from_slice(&(v.len() as u32).to_be_bytes());
            block.extend_from_slice(v.as_bytes());
        }
        let mut c = Compress::new(Compression::best(), true);
        c.set_dictionary(&dictionary()).unwrap();
        let mut z = Vec::with_capacity(256);
        c.compress_vec(&block, &mut z, FlushCompress::Sync).unwrap();
        let mut r = Reader::new(tokio::io::empty());
        let plain = r.inflate(&z).unwrap();
        let h = parse_headers(&plain).unwrap();
        assert_eq!(h["streamtype"], "data");
        assert_eq!(h["port"], "8080");
        // The context carries over to the next block.
        let mut z2 = Vec::with_capacity(256);
        c.compress_vec(&block, &mut z2, FlushCompress::Sync)
            .unwrap();
        assert_eq!(
            parse_headers(&r.inflate(&z2).unwrap()).unwrap()["port"],
            "8080"
        );
    }
}
