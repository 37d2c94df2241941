//! In-process clients: kube-rs clients whose requests go straight to the
//! server's router, with no socket, TLS session or HTTP framing between
//! them, as kube-apiserver gives its own post-start hooks a loopback client.
//!
//! The built-in controllers, the syncer and the DNS watches run in the API
//! server's process. Over TLS each of their watches held a connection with
//! its buffers on both ends; through the router a request costs what its
//! handler costs. Requests still pass the whole request chain (audit, fair
//! limits, authorization) under the client's identity.

use crate::pki::Identity;
use crate::server::PeerAddr;
use axum::Router;
use axum::body::Body;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tokio::sync::watch;
use tower::ServiceExt;

/// The router that in-process clients call, until the server shuts down.
pub(crate) struct Loopback {
    router: RwLock<Option<Router>>,
    stopped: watch::Receiver<bool>,
}

impl Loopback {
    /// A loopback to `router` that ends with `stopped` (the server's
    /// shutdown signal).
    pub(crate) fn new(router: Router, stopped: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(Self {
            router: RwLock::new(Some(router)),
            stopped,
        })
    }

    /// Refuses later requests and lets the router (and the store behind it)
    /// go, as closing the listener does for network clients.
    pub(crate) fn close(&self) {
        *self.router.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A kube-rs client whose requests are served as `identity`'s (as
    /// authenticated by a client certificate), with `default_namespace`
    /// for namespaced calls that name none.
    pub(crate) fn client(self: &Arc<Self>, identity: Identity) -> kube::Client {
        kube::Client::new(
            LoopbackService {
                loopback: self.clone(),
                identity: Arc::new(identity),
            },
            "default",
        )
    }
}

/// The tower service behind a loopback client.
#[derive(Clone)]
struct LoopbackService {
    loopback: Arc<Loopback>,
    identity: Arc<Identity>,
}

/// Audit's `sourceIPs` for in-process requests.
const LOOPBACK_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

impl tower::Service<http::Request<kube::client::Body>> for LoopbackService {
    type Response = http::Response<Body>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let router = self
            .loopback
            .router
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let identity = self.identity.clone();
        let mut stopped = self.loopback.stopped.clone();
        Box::pin(async move {
            let Some(router) = router else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "the API server has shut down",
                ));
            };
            let mut req = req.map(Body::new);
            req.extensions_mut().insert((*identity).clone());
            req.extensions_mut().insert(PeerAddr(LOOPBACK_PEER));
            // A handler that panics fails this request, as it drops one
            // connection for a network client, instead of unwinding into
            // the caller's task (a controller's loop).
            let response = match AssertUnwindSafe(router.oneshot(req)).catch_unwind().await {
                Ok(Ok(r)) => r,
                Ok(Err(never)) => match never {},
                Err(_) => return Err(handler_panicked()),
            };
            // A response still streaming when the server stops (a watch)
            // ends then, as the server's connections close.
            Ok(response.map(|body| {
                let chunks = AssertUnwindSafe(body.into_data_stream())
                    .catch_unwind()
                    .map(|chunk| {
                        chunk.unwrap_or_else(|_| Err(axum::Error::new(handler_panicked())))
                    });
                Body::from_stream(chunks.take_until(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }))
            }))
        })
    }
}

/// The error a request whose handler panicked fails with.
fn handler_panicked() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "the API server's handler panicked",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    /// A handler that panics fails its request (and a body that panics
    /// mid-stream fails its read) without unwinding into the caller.
    #[tokio::test]
    async fn a_panicking_handler_fails_the_request_only() {
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        let router = Router::new()
            .route("/boom", get(boom))
            .route(
                "/stream",
                get(|| async {
                    let chunks = futures::stream::iter([0, 1]).map(|i| {
                        assert!(i == 0, "body bug");
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"ok"))
                    });
                    Body::from_stream(chunks)
                }),
            )
            .route("/fine", get(|| async { "fine" }));
        let (_stop, stopped) = watch::channel(false);
        let client = Loopback::new(router, stopped).client(Identity::default());
        let get = |path: &str| http::Request::get(path).body(Vec::new()).unwrap();
        let err = client.request_text(get("/boom")).await.unwrap_err();
        assert!(err.to_string().contains("handler panicked"), "{err}");
        assert!(client.request_text(get("/stream")).await.is_err());
        assert_eq!(client.request_text(get("/fine")).await.unwrap(), "fine");
    }
}
