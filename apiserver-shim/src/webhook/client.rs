//! Posting an AdmissionReview to a webhook over verified HTTPS, as
//! kube-apiserver's webhook client does (k8s.io/apiserver
//! pkg/util/webhook/client.go): HTTP/1.1, the CA bundle of the
//! configuration (the system roots when it has none), the request's
//! `?timeout=<n>s`, and for a Service reference the server name
//! `<name>.<namespace>.svc` while the connection goes to the address the
//! resolver found. One pooled client per CA bundle and server name.
//!
//! Every destination is an IP address checked here before the connection:
//! link-local and unspecified addresses are refused, so that a tenant's
//! webhook cannot make the server (which runs in a host pod) post to the
//! node's or the cloud's metadata endpoints.

use super::review::CallError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest webhook response read, in bytes (twice the largest object, so
/// a full patch of one fits).
const MAX_RESPONSE_BYTES: usize = 6 << 20;
/// Clients kept; the pool is dropped and rebuilt past this (configurations
/// changed many times).
const MAX_CLIENTS: usize = 64;

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A resolved destination: what errors show, and where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The URL as kube shows it in errors, `?timeout=` included
    /// (`https://svc.ns.svc:443/path?timeout=10s`).
    pub shown: String,
    /// The TLS server name the certificate must carry.
    pub server_name: String,
    /// The `Host` header (`svc.ns.svc:443`).
    pub authority: String,
    /// The address connected to.
    pub address: SocketAddr,
    /// Path and query sent.
    pub path_and_query: String,
}

/// Why an address may not be called, or `None`; loopback addresses are
/// refused unless `loopback` allows them ([`crate::rest::ApiConfig::webhook_loopback`]).
pub fn refused_address(ip: IpAddr, loopback: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("link-local"),
        ip if ip.is_unspecified() => Some("unspecified"),
        ip if ip.is_loopback() && !loopback => Some("loopback"),
        _ => None,
    }
}

/// The pooled HTTPS clients.
#[derive(Default)]
pub struct Clients {
    /// Keyed by the CA bundle's SHA-256 and the server name.
    pool: Mutex<HashMap<([u8; 32], String), HttpsClient>>,
}

fn client_for(ca_bundle: &[u8], server_name: &str) -> Result<HttpsClient, String> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if ca_bundle.is_empty() {
        builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("no system root certificates: {e}"))?
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_bundle) {
            let cert = cert.map_err(|e| format!("unable to load root certificates: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
        }
        if roots.is_empty() {
            return Err("unable to load root certificates: no certificate in caBundle".into());
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        builder.with_tls_config(tls)
    };
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let connector = builder
        .https_only()
        .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector),
    )
}

impl Clients {
    /// Posts `body` to `dest` and returns the response body, all within
    /// `timeout`.
    ///
    /// # Errors
    /// `failed to call webhook: Post "<url>": <why>` for a client that
    /// cannot be built, a transport error, a timeout (`context deadline
    /// exceeded`, as Go words it) or a non-2xx answer.
    pub async fn post(
        &self,
        ca_bundle: &[u8],
        dest: &Destination,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let failed = |why: &dyn std::fmt::Display| {
            CallError(format!(
                "failed to call webhook: Post {:?}: {why}",
                dest.shown
            ))
        };
        use sha2::Digest as _;
        let key: ([u8; 32], String) = (
            sha2::Sha256::digest(ca_bundle).into(),
            dest.server_name.clone(),
        );
        let pooled = self
            .pool
            .lock()
            .expect("webhook client pool")
            .get(&key)
            .cloned();
        let client = match pooled {
            Some(c) => c,
            None => {
                // Built outside the lock: it may read the system roots.
                let c = client_for(ca_bundle, &dest.server_name)
                    .map_err(|e| CallError(format!("could not get REST client: {e}")))?;
                let mut pool = self.pool.lock().expect("webhook client pool");
                if pool.len() >= MAX_CLIENTS {
                    pool.clear();
                }
                pool.insert(key, c.clone());
                c
            }
        };
        let uri = format!("https://{}{}", dest.address, dest.path_and_query);
        let request = http::Request::post(uri)
            .header(http::header::HOST, &dest.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, */*")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| failed(&e))?;
        let call = async {
            let response = client.request(request).await.map_err(|e| {
                // The connector's own error is the useful part.
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why = format!("{why}: {s}");
                    source = s.source();
                }
                failed(&why)
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| failed(&e))?
                .to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
                return Err(failed(&format!(
                    "the server responded with status code {} ({})",
                    status.as_u16(),
                    text.trim()
                )));
            }
            Ok(bytes)
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(failed(&"context deadline exceeded")),
        }
    }
}

/// The destination of a `url` webhook: the URL (which must be `https`),
/// its host resolved, with `?timeout=<n>s` added.
///
/// # Errors
/// An unparsable URL, a host that does not resolve or resolves only to
/// refused addresses ([`refused_address`]).
pub async fn resolve_url(
    url: &str,
    timeout: Duration,
    loopback: bool,
) -> Result<Destination, CallError> {
    let shown = with_timeout(url, timeout);
    let failed = |why: String| CallError(format!("failed to call webhook: Post {shown:?}: {why}"));
    let uri: http::Uri = url.parse().map_err(|e| failed(format!("{e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(failed("unsupported protocol scheme".into()));
    }
    let host = uri
        .host()
        .ok_or_else(|| failed("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let candidates: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        // The lookup counts against the webhook's timeout, as a dial does.
        Err(_) => {
            match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
                .await
            {
                Ok(found) => found
                    .map_err(|e| failed(format!("dial tcp: lookup {host}: {e}")))?
                    .collect(),
                Err(_) => return Err(failed("context deadline exceeded".into())),
            }
        }
    };
    let mut refusal = "no address".to_string();
    for address in candidates {
        match refused_address(address.ip(), loopback) {
            None => {
                let path = match uri.path() {
                    "" => "/",
                    p => p,
                };
                return Ok(Destination {
                    path_and_query: with_timeout(path, timeout),
                    shown,
                    server_name: host.clone(),
                    authority: uri.authority().map(ToString::to_string).unwrap_or(host),
                    address,
                });
            }
            Some(why) => {
                refusal = format!("address {} is {why} and may not be called", address.ip());
            }
        }
    }
    Err(failed(refusal))
}

/// `url` with client-go's `timeout` query parameter, whole seconds.
pub fn with_timeout(url: &str, timeout: Duration) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timeout={}s", timeout.as_secs().max(1))
}
