//! The HTTPS server: TLS accept loop, authentication, routing, bootstrap.
//!
//! [`router`] builds the axum application (usable in-process); [`Server::start`]
//! opens the store, prepares the PKI, binds, bootstraps the built-in objects,
//! writes `DATA_DIR/admin.kubeconfig` and serves until [`Server::shutdown`].

use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::filters::authorization::AuthorizationMode;
use crate::pki::{self, Identity, Pki};
use crate::request::{Query, parse_target};
use crate::rest::{Api, ApiConfig, json_response};
use crate::serviceaccount::TokenAuthority;
use crate::store::{LogStore, LogStoreConfig, SledBackend, Storage};
use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Largest request body accepted, in bytes (kube-apiserver's
/// `--max-request-bytes` default, 3 MiB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// How a server is started.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory for the store, PKI and admin kubeconfig.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Extra subject alternative names for the serving certificate.
    pub tls_sans: Vec<String>,
    /// REST-layer limits and timings, and the service CIDR / NodePort range
    /// Services are allocated from (`api.allocation`).
    pub api: ApiConfig,
    /// Storage window and watcher buffers.
    pub store: LogStoreConfig,
    /// sled page cache size in bytes.
    pub cache_bytes: u64,
    /// Name of the cluster/context in the written kubeconfig.
    pub context_name: String,
    /// Service account token issuer, audiences and lifetimes.
    pub service_account: crate::serviceaccount::ServiceAccountConfig,
    /// Bearer tokens accepted besides the admin token and service account
    /// tokens, with the identities they carry (kube-apiserver's
    /// `--token-auth-file`); e.g. the in-memory tokens of a previous
    /// [`Server`] whose in-process clients outlive it.
    pub static_tokens: HashMap<String, Identity>,
    /// Requests served at once and the fair queue before them
    /// (`--max-requests-inflight`, `--max-mutating-requests-inflight`).
    pub limits: crate::filters::limits::LimitsConfig,
    /// The audit policy and log (`--audit-policy-file`,
    /// `--audit-log-path`); none: no auditing.
    pub audit: Option<crate::filters::audit::AuditConfig>,
    /// JWT (OIDC) issuers whose tokens authenticate users
    /// (`--authentication-config`); none: no OIDC.
    pub authentication: Option<crate::filters::authentication::config::AuthenticationConfiguration>,
    /// Whether requests without credentials are served as
    /// `system:anonymous` (kube-apiserver's `--anonymous-auth`) rather than
    /// answered `401`; off by default here.
    pub anonymous_auth: bool,
    /// Issuer URL → JWKS file, for OIDC issuers the server cannot reach
    /// (`--authentication-jwks-file`).
    pub authentication_key_files: std::collections::BTreeMap<String, PathBuf>,
}

impl ServerConfig {
    /// Defaults for a data directory: loopback, a free port.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_sans: Vec::new(),
            api: ApiConfig::default(),
            store: LogStoreConfig::default(),
            cache_bytes: 4 << 20,
            context_name: "vkube".into(),
            service_account: Default::default(),
            static_tokens: HashMap::new(),
            limits: Default::default(),
            audit: None,
            authentication: None,
            anonymous_auth: false,
            authentication_key_files: Default::default(),
        }
    }
}

/// Bearer tokens known to the server and the identities they carry (kube's
/// static token authenticator, plus the loopback tokens of in-process
/// clients, which kube-apiserver also mints in memory at start).
pub type StaticTokens = Arc<std::sync::RwLock<HashMap<String, Identity>>>;

/// Shared state of the HTTP layer.
pub struct AppState {
    /// The REST layer.
    pub api: Arc<Api>,
    /// Bearer tokens and their identities: the admin token, and the
    /// in-memory tokens of in-process clients ([`Server::kubeconfig_for`]).
    pub tokens: StaticTokens,
    /// `host:port` clients reach the server at (for `/api`).
    pub server_address: String,
    /// Service account tokens: issuing (TokenRequest) and authentication.
    pub service_accounts: Arc<TokenAuthority>,
    /// Requests served at once, fairly between users.
    pub limits: crate::filters::limits::Limits,
    /// The audit log, when one is configured.
    pub audit: Option<Arc<crate::filters::audit::Auditor>>,
    /// The OIDC issuers' authenticators, when configured.
    pub jwt: Option<crate::filters::authentication::jwks::JwtAuthenticators>,
    /// Whether requests without credentials are `system:anonymous`.
    pub anonymous_auth: bool,
}

/// The address a request's connection comes from (a request extension set
/// by the accept loop; audit's `sourceIPs`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl AppState {
    /// The identity of a static or in-memory bearer `token`, if known.
    pub(crate) fn static_identity(&self, token: &str) -> Option<Identity> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }
}

fn text(code: StatusCode, body: &'static str) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The HTTP application. Requests must carry an [`Identity`] extension (set
/// by the TLS layer from a verified client certificate) or a known bearer
/// token; health and version endpoints are public, as kube-apiserver's
/// `system:public-info-viewer` role makes them.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// Serves one request and records it in the API server's metrics
/// ([`crate::metrics`]).
async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    let attributes = {
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        crate::filters::authorization::attributes::of(
            req.method().as_str(),
            &segs,
            &decode_segment(&path),
            req.uri().query(),
        )
    };
    let apply = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch+yaml"));
    let (info, custom) = request_info(&state, apply, &segments, &attributes).await;
    let dry_run = crate::metrics::dry_run_label(req.uri().query());
    let long_running = crate::filters::limits::is_long_running(&attributes);
    // Boxed: the whole request's future is large, and a worker thread's
    // stack holds every future it polls inline.
    let mut response = Box::pin(authenticate_and_serve(
        &state,
        req,
        path,
        segments,
        attributes,
        long_running,
    ))
    .await;
    let size = http_body::Body::size_hint(response.body()).exact();
    let status = response.status();
    if let Some(guard) = state.api.metrics.observe(
        &info,
        dry_run,
        status.as_u16(),
        started.elapsed(),
        size,
        long_running,
        custom,
    ) && status != StatusCode::SWITCHING_PROTOCOLS
    {
        // A stream (a watch, a followed log) stays counted as
        // long-running while its body is being sent.
        let body = std::mem::take(response.body_mut());
        *response.body_mut() = crate::metrics::hold_with_body(body, guard);
    }
    response
}

/// What the metrics report of a request, and whether it names a custom
/// resource: the resource labels only when the path names a served
/// resource, so paths a client makes up never become series.
async fn request_info(
    state: &AppState,
    apply: bool,
    segments: &[String],
    attributes: &crate::filters::authorization::rbac::Request,
) -> (crate::metrics::RequestInfo, bool) {
    let version = match segments {
        [api, v, ..] if api == "api" => v.as_str(),
        [apis, _, v, ..] if apis == "apis" => v.as_str(),
        _ => "",
    };
    // The custom resources are read only for a path no built-in serves.
    let custom = match attributes {
        crate::filters::authorization::rbac::Request::Resource {
            group,
            resource,
            subresource,
            ..
        } if crate::metrics::served(None, group, version, resource, subresource).is_none() => {
            state.api.custom_resources().await.ok()
        }
        _ => None,
    };
    let mut is_custom = false;
    let info = crate::metrics::RequestInfo::of(attributes, version, apply, |g, v, r, s| {
        let served = crate::metrics::served(custom.as_deref(), g, v, r, s);
        is_custom = served == Some(crate::metrics::Served::Custom);
        served.is_some()
    });
    (info, is_custom)
}

/// Authentication, audit and the stages after them, for a request whose
/// path is split into `segments` with authorization `attributes`.
async fn authenticate_and_serve(
    state: &Arc<AppState>,
    req: Request,
    path: String,
    segments: Vec<String>,
    attributes: crate::filters::authorization::rbac::Request,
    long_running: bool,
) -> Response {
    if let Some(health) = crate::health::serve(
        &path,
        req.uri().query(),
        &*state.api.store,
        &state.api.health_checks,
    )
    .await
    {
        return health;
    }
    if path == "/version" {
        let body = vkube_core::gojson::to_vec_as("version.Info", &discovery::version());
        return crate::rest::json_bytes_response(StatusCode::OK, body);
    }
    // Every response names its request, as kube-apiserver's `Audit-Id`: the
    // caller's own id when it sent one, else a new one.
    // An id longer than a uuid's few times over, or not printable ASCII, is
    // replaced: it is written to the log before the caller is known.
    let audit_id = req
        .headers()
        .get("audit-id")
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a uuid is a header value")
        });
    // Owned values only across the await: a request body is not `Sync`.
    let from_cert = req.extensions().get::<Identity>().cloned();
    let bearer = crate::filters::authentication::bearer_token(req.headers());
    let attempted = match (&from_cert, &bearer) {
        (_, Some(_)) => "Authentication failed, attempted: bearer",
        (Some(_), None) => "Authentication failed, attempted: x509",
        (None, None) => "Authentication failed, no credentials provided",
    };
    let identity = crate::filters::authentication::authenticate(state, from_cert, bearer).await;
    // Failed authentications are recorded too, with no user, as kube's
    // failed-authentication audit does.
    let no_user = Identity::default();
    let recorder = state.audit.as_ref().and_then(|auditor| {
        auditor.begin(crate::filters::audit::RequestFacts {
            audit_id: audit_id.to_str().unwrap_or_default(),
            user: identity.as_ref().unwrap_or(&no_user),
            attributes: &attributes,
            uri: &req
                .uri()
                .path_and_query()
                .map_or_else(|| path.clone(), ToString::to_string),
            segments: &segments,
            headers: req.headers(),
            peer: req.extensions().get::<PeerAddr>().map(|p| p.0.ip()),
        })
    });
    let mut response = match (identity, recorder) {
        (None, recorder) => {
            let response = ApiError::unauthorized().into_response();
            if let Some(r) = recorder {
                r.failed_authentication(attempted);
            }
            response
        }
        (Some(identity), mut recorder) => {
            let response = authorize_and_serve(
                state,
                req,
                identity,
                segments,
                attributes,
                long_running,
                recorder.as_mut(),
            )
            .await;
            match recorder {
                Some(r) => r.complete(response, long_running).await,
                None => response,
            }
        }
    };
    response.headers_mut().insert("audit-id", audit_id);
    response
}

/// The stages after authentication and audit, in kube-apiserver's order:
/// impersonation, fair limits, authorization, then the REST layer (which
/// reads the body; a recorded request's body is read here, once admitted
/// and allowed, as kube's handlers log it).
async fn authorize_and_serve(
    state: &AppState,
    req: Request,
    mut identity: Identity,
    segments: Vec<String>,
    attributes: crate::filters::authorization::rbac::Request,
    long_running: bool,
    mut recorder: Option<&mut crate::filters::audit::Recorder>,
) -> Response {
    match crate::filters::impersonation::requested(req.headers()) {
        Ok(None) => {}
        Ok(Some(imp)) => {
            match crate::filters::impersonation::apply(&state.api, &identity, imp).await {
                Ok(acting) => {
                    if let Some(r) = recorder.as_deref_mut() {
                        r.impersonating(&acting);
                    }
                    identity = acting;
                }
                Err(e) => return e.into_response(),
            }
        }
        Err(e) => return e.into_response(),
    }
    // Held until the response is ready: a seat counts a request served.
    let _seat = match state
        .limits
        .admit(&identity.user, &identity.groups, &attributes)
        .await
    {
        Ok(seat) => seat,
        Err(crate::filters::limits::TooManyRequests) => return too_many_requests(),
    };
    let decision = match state.api.config.authorization_mode {
        AuthorizationMode::Rbac => match state.api.policy().await {
            Ok(policy) => crate::filters::authorization::check(&policy, &identity, &attributes),
            Err(e) => Err(e),
        },
        AuthorizationMode::AlwaysAllow => Ok(String::new()),
    };
    if let Some(r) = recorder.as_deref_mut() {
        // kube's authorization filter annotates the audit event so.
        let (verdict, reason) = match &decision {
            Ok(reason) => ("allow", reason.as_str()),
            Err(_) => ("forbid", ""),
        };
        r.annotate("authorization.k8s.io/decision", verdict);
        r.annotate("authorization.k8s.io/reason", reason);
    }
    if let Err(e) = decision {
        return e.into_response();
    }
    let mut req = req;
    if let Some(r) = recorder
        && !long_running
        && matches!(
            *req.method(),
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
    {
        let (parts, body) = req.into_parts();
        let bytes = match read_body(body).await {
            Ok(bytes) => bytes,
            Err(e) => return e.into_response(),
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        r.request_body(content_type, &bytes);
        req = Request::from_parts(parts, Body::from(bytes));
    }
    let caller = identity.clone();
    crate::warning::collect(crate::request::with_caller(caller, async {
        match serve(state, req, segments, &identity).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }))
    .await
}

/// kube-apiserver's answer to a request beyond its limits: plain text, and
/// the `Retry-After` clients wait before trying again (client-go retries
/// on it).
fn too_many_requests() -> Response {
    let mut r = text(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests, please try again later.\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Serves an authorized request; `segments` are its path's, split on `/`
/// and percent-decoded (the ones authorization read).
async fn serve(
    state: &AppState,
    req: Request,
    segments: Vec<String>,
    identity: &Identity,
) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The custom resources as of this request (routing and discovery).
    let custom = state.api.custom_resources().await?;
    let discovery_get = |doc: Option<serde_json::Value>| -> ApiResult<Response> {
        if parts.method != Method::GET {
            return Err(ApiError::no_route());
        }
        doc.map(|d| json_response(StatusCode::OK, &d))
            .ok_or_else(ApiError::no_route)
    };
    // Aggregated discovery carries an ETag, the hash of the document, and
    // answers `304` to a client that already holds it (client-go's disk
    // cache revalidates with If-None-Match), as kube-apiserver does.
    let if_none_match = parts
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let aggregated = |doc: serde_json::Value| {
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let etag = format!("\"{}\"", crate::openapi::hash(&body));
        let cached = if_none_match
            .as_deref()
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        let mut r = if cached {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            crate::rest::json_bytes_response(StatusCode::OK, body)
        };
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
        );
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    };
    if let [
        "api",
        "v1",
        "namespaces",
        ns,
        res @ ("pods" | "services"),
        name,
        "proxy",
        rest @ ..,
    ] = segs.as_slice()
    {
        // A proxy: any method, any path after `proxy`, passed on.
        let trailing = parts.uri.path().ends_with('/');
        let (ns, res, name) = (ns.to_string(), res.to_string(), name.to_string());
        let rest: Vec<&str> = rest.to_vec();
        let body = read_body(body).await?;
        return crate::connect::serve_proxy(
            &state.api, &ns, &res, &name, &rest, trailing, parts, body,
        )
        .await;
    }
    if let ["api", "v1", "nodes", name, "proxy", ..] = segs.as_slice() {
        return crate::connect::refuse_node_proxy(&state.api, name).await;
    }
    // metrics.k8s.io is served only while the metrics provider has figures
    // (crate::metrics_api): its discovery entries follow.
    let metrics_on = || crate::metrics_api::available(&state.api);
    let (group, version, rest) = match segs.as_slice() {
        ["api"] if discovery::wants_aggregated(accept.as_deref()) => {
            return Ok(aggregated(discovery::aggregated(true, &custom)));
        }
        ["api"] => return discovery_get(Some(discovery::api_versions(&state.server_address))),
        ["apis"] if discovery::wants_aggregated(accept.as_deref()) => {
            let mut doc = discovery::aggregated(false, &custom);
            if metrics_on().await
                && let Some(items) = doc["items"].as_array_mut()
            {
                items.push(crate::metrics_api::aggregated_group());
            }
            return Ok(aggregated(doc));
        }
        ["apis"] => {
            let mut doc = discovery::api_group_list(&custom);
            if metrics_on().await
                && let Some(groups) = doc["groups"].as_array_mut()
            {
                groups.push(crate::metrics_api::api_group());
            }
            return discovery_get(Some(doc));
        }
        ["apis", vkube_core::metrics::GROUP, rest @ ..] => {
            if !metrics_on().await {
                return Err(ApiError::no_route());
            }
            return match rest {
                [] => {
                    let mut doc = crate::metrics_api::api_group();
                    doc["kind"] = serde_json::json!("APIGroup");
                    doc["apiVersion"] = serde_json::json!("v1");
                    discovery_get(Some(doc))
                }
                [vkube_core::metrics::VERSION, rest @ ..] => {
                    crate::metrics_api::serve(&state.api, &parts.method, rest, parts.uri.query())
                        .await
                }
                _ => Err(ApiError::no_route()),
            };
        }
        ["api", "v1"] => return discovery_get(discovery::resource_list("", "v1", &custom)),
        ["apis", g] => return discovery_get(discovery::api_group_doc(g, &custom)),
        ["apis", g, v] => return discovery_get(discovery::resource_list(g, v, &custom)),
        [".well-known", "openid-configuration"] => {
            let doc = state
                .service_accounts
                .openid_configuration(&state.server_address);
            return discovery_get(Some(doc));
        }
        ["openid", "v1", "jwks"] => {
            let mut r = discovery_get(Some(state.service_accounts.jwks()))?;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            return Ok(r);
        }
        ["metrics"] => {
            if parts.method != Method::GET {
                return Err(ApiError::no_route());
            }
            let body = state
                .api
                .metrics
                .scrape(&state.api, state.limits.executing())
                .await;
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(vkube_core::monitoring::CONTENT_TYPE),
            );
            return Ok(r);
        }
        ["openapi", "v3", rest @ ..] => {
            return crate::openapi::serve(
                &parts.method,
                &parts.headers,
                parts.uri.query(),
                rest,
                &custom,
            )
            .await;
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    // The review kinds are answered, not stored (crate::review).
    let review = match rest {
        [resource] => crate::registry::lookup_review(group, version, resource)
            .filter(|r| !r.4)
            .map(|r| (r, None)),
        ["namespaces", ns, resource] => crate::registry::lookup_review(group, version, resource)
            .filter(|r| r.4)
            .map(|r| (r, Some(*ns))),
        _ => None,
    };
    if let Some(((group, _, resource, _, _, review), namespace)) = review {
        if parts.method != Method::POST {
            return Err(ApiError::method_not_supported(
                &crate::error::GroupResource::new(group, resource),
                &parts.method.as_str().to_ascii_lowercase(),
            ));
        }
        let body = read_body(body).await?;
        let dry_run = match review {
            crate::registry::Review::Binding => Query::parse(parts.uri.query())?.dry_run,
            _ => false,
        };
        return serve_review(
            state,
            identity,
            *review,
            namespace,
            &parts.headers,
            &body,
            dry_run,
        )
        .await;
    }
    let target = parse_target(group, version, rest, &custom)?;
    if target.watch_prefix {
        // kube serves the legacy `/watch/` paths for GET on a collection or
        // an object only; anything else under it would run with only
        // `watch` authorized.
        if target.subresource.is_some() {
            return Err(ApiError::no_route());
        }
        if parts.method != Method::GET {
            return Err(ApiError::method_not_supported(
                &target.def.group_resource(),
                &parts.method.as_str().to_ascii_lowercase(),
            ));
        }
    }
    if let (Some(ns), Some(name), Some(sub)) =
        (&target.namespace, &target.name, &target.subresource)
        && target.def.connect
        && crate::connect::SUBRESOURCES.contains(&sub.as_str())
    {
        // A connect subresource: a log stream or an upgraded connection to
        // the pod, not a stored object.
        return crate::connect::serve(&state.api, ns, name, sub, parts).await;
    }
    let query = Query::parse(parts.uri.query())?;
    let body = read_body(body).await?;
    if target.subresource.as_deref() == Some("token") {
        let (Some(ns), Some(name)) = (&target.namespace, &target.name) else {
            return Err(ApiError::no_route());
        };
        if parts.method != Method::POST {
            return Err(ApiError::method_not_supported(
                &crate::error::GroupResource::new("", "serviceaccounts/token"),
                &parts.method.as_str().to_ascii_lowercase(),
            ));
        }
        return state
            .service_accounts
            .token_request(&state.api, ns, name, &parts.headers, &body)
            .await;
    }
    state
        .api
        .handle(&parts.method, target, query, &parts.headers, body)
        .await
}

/// Answers a review kind ([`crate::review`]); a TokenReview's token is
/// authenticated as a request's bearer token would be, for its audiences.
async fn serve_review(
    state: &AppState,
    identity: &Identity,
    review: crate::registry::Review,
    namespace: Option<&str>,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    dry_run: bool,
) -> ApiResult<Response> {
    use crate::registry::Review;
    match review {
        Review::SelfSubject => crate::serviceaccount::self_subject_review(identity, headers, body),
        Review::Binding => {
            state
                .api
                .create_binding(namespace.unwrap_or_default(), headers, body, dry_run)
                .await
        }
        Review::Token => {
            let (token, mut audiences, obj) =
                crate::review::token_review_request(namespace, headers, body)?;
            if audiences.is_empty() {
                audiences = state.service_accounts.api_audiences().to_vec();
            }
            let mut known = state.static_identity(&token).map(Ok);
            if known.is_none()
                && let Some(jwt) = &state.jwt
            {
                known = jwt
                    .authenticate(&token)
                    .await
                    .map(|r| r.map_err(|_| crate::review::INVALID_TOKEN.to_string()));
            }
            let result = match known {
                Some(Err(e)) => Err(e),
                // Static and OIDC tokens know no API audience: they are
                // valid for the API audiences among those asked about
                // (kube's audience-agnostic wrapper).
                Some(Ok(id)) => {
                    let api = state.service_accounts.api_audiences();
                    let both: Vec<String> = audiences
                        .iter()
                        .filter(|a| api.contains(a))
                        .cloned()
                        .collect();
                    if both.is_empty() {
                        Err(crate::review::INVALID_TOKEN.to_string())
                    } else {
                        Ok((id, both))
                    }
                }
                None => state
                    .service_accounts
                    .authenticate_for(&state.api, &token, &audiences)
                    .await
                    .map_err(|e| match e {
                        // Not one of ours: no authenticator took it.
                        crate::sa_token::TokenError::Malformed
                        | crate::sa_token::TokenError::Issuer(_) => {
                            crate::review::INVALID_TOKEN.to_string()
                        }
                        e => e.to_string(),
                    }),
            };
            let result = result.map(|(mut id, auds)| {
                if !id.groups.iter().any(|g| g == "system:authenticated") {
                    id.groups.push("system:authenticated".into());
                }
                (id, auds)
            });
            Ok(crate::review::token_review_answer(obj, result))
        }
        _ => {
            crate::review::access_review(&state.api, identity, review, namespace, headers, body)
                .await
        }
    }
}

/// Reads a request body of at most [`MAX_REQUEST_BYTES`]; more is `413`.
async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(format!(
            "Request entity too large: limit is {MAX_REQUEST_BYTES}"
        ))),
        Err(e) => Err(ApiError::bad_request(format!(
            "error reading the request body: {e}"
        ))),
    }
}

/// A running API server.
pub struct Server {
    /// The bound address.
    pub addr: SocketAddr,
    /// Path of the admin kubeconfig written on start.
    pub kubeconfig_path: PathBuf,
    /// The admin kubeconfig's contents.
    pub kubeconfig: String,
    /// The PKI in use (CA, admin credentials).
    pub pki: Arc<Pki>,
    /// The REST layer (for in-process use, e.g. controllers and tests).
    pub api: Arc<Api>,
    /// Time from `start` being called to the listener accepting.
    pub startup: Duration,
    tokens: StaticTokens,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    audit_writer: Option<std::thread::JoinHandle<()>>,
    loopback: Arc<crate::loopback::Loopback>,
}

impl Server {
    /// Starts a server: opens the store in `data_dir`, prepares the PKI, binds,
    /// creates the built-in namespaces and the `default/kubernetes` Service,
    /// and writes `data_dir/admin.kubeconfig`.
    pub async fn start(config: ServerConfig) -> Result<Server> {
        let began = Instant::now();
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let backend = SledBackend::open(&config.data_dir.join("store"), config.cache_bytes)
            .context("opening the store (is another server using this data dir?)")?;
        let store: Arc<dyn Storage> =
            Arc::new(LogStore::open(Box::new(backend), config.store.clone())?);
        let pki = Arc::new(Pki::load_or_create(&config.data_dir, &config.tls_sans)?);
        let service_accounts = Arc::new(
            TokenAuthority::load_or_create(&config.data_dir.join("pki"), &config.service_account)
                .context("loading the service account signing key")?,
        );
        let tls = pki.server_config()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        let server_url = format!("https://{host}:{}", addr.port());
        let api = Arc::new(Api::new(store, config.api.clone()));
        let mut tokens = config.static_tokens.clone();
        tokens.insert(
            pki.admin_token.clone(),
            Identity {
                user: "vkube-admin".into(),
                groups: vec!["system:masters".into()],
                ..Identity::default()
            },
        );
        let tokens: StaticTokens = Arc::new(std::sync::RwLock::new(tokens));
        let state = Arc::new(AppState {
            api: api.clone(),
            tokens: tokens.clone(),
            server_address: format!("{host}:{}", addr.port()),
            service_accounts,
            limits: crate::filters::limits::Limits::new(&config.limits),
            audit: match &config.audit {
                Some(audit) => Some(Arc::new(crate::filters::audit::Auditor::open(audit)?)),
                None => None,
            },
            anonymous_auth: config.anonymous_auth,
            jwt: match &config.authentication {
                None if !config.authentication_key_files.is_empty() => {
                    anyhow::bail!(
                        "--authentication-jwks-file names issuers, but no --authentication-config does"
                    )
                }
                Some(authentication) => Some(
                    crate::filters::authentication::jwks::JwtAuthenticators::new(
                        authentication,
                        std::slice::from_ref(&config.service_account.issuer),
                        &config.authentication_key_files,
                    )
                    .context("--authentication-config")?,
                ),
                None => None,
            },
        });
        let services = crate::registry::lookup("", "v1", "services").expect("services registered");
        crate::alloc::repair(&*api.store, &services.prefix())
            .await
            .context("reconciling service address allocations")?;
        crate::bootstrap::ensure_builtin_objects(&api, addr.port())
            .await
            .context("creating the built-in objects")?;
        crate::bootstrap::ensure_default_service_accounts(&api)
            .await
            .context("creating the default service accounts")?;
        crate::bootstrap_policy::ensure(&api)
            .await
            .context("creating the bootstrap RBAC policy")?;

        let kubeconfig = pki.admin_kubeconfig(&server_url, &config.context_name);
        let kubeconfig_path = config.data_dir.join("admin.kubeconfig");
        std::fs::write(&kubeconfig_path, &kubeconfig)
            .with_context(|| format!("writing {}", kubeconfig_path.display()))?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let audit_writer = state.audit.as_ref().and_then(|a| a.take_writer());
        let app = router(state);
        let loopback = crate::loopback::Loopback::new(app.clone(), shutdown_rx.clone());
        tokio::spawn(crate::crd::cleanup::run(api.clone(), shutdown_rx.clone()));
        let task = tokio::spawn(accept_loop(listener, tls, app, shutdown_rx));
        let startup = began.elapsed();
        tracing::info!(%addr, kubeconfig = %kubeconfig_path.display(), ?startup, "vkube apiserver listening");
        Ok(Server {
            addr,
            kubeconfig_path,
            kubeconfig,
            pki,
            api,
            startup,
            tokens,
            shutdown,
            task,
            audit_writer,
            loopback,
        })
    }

    /// The `https://host:port` URL of the server.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A kubeconfig for this server authenticating as `user` in `groups`
    /// with a bearer token minted in memory for this process's life, for
    /// clients that connect over the network yet live in this process (the
    /// local host's simulated node, tests): they need no certificate, and
    /// carry every group (a client certificate holds one organization
    /// here). An unspecified listen address is reached over loopback.
    /// In-process clients that need no connection use
    /// [`Server::client_for`].
    ///
    /// # Errors
    /// None today; kept fallible for credentials that can fail to issue.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<String> {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                token.clone(),
                Identity {
                    user: user.into(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                    ..Identity::default()
                },
            );
        let url = if self.addr.ip().is_unspecified() {
            format!("https://127.0.0.1:{}", self.addr.port())
        } else {
            self.url()
        };
        Ok(pki::token_kubeconfig(
            &url,
            "vkube",
            &self.pki.ca_cert,
            &token,
        ))
    }

    /// An in-process client acting as `user` in `groups` (e.g. a built-in
    /// controller's service account): its requests go to the request chain
    /// directly, with no socket or TLS, and are authenticated as if by a
    /// client certificate. It fails with a connection error once the server
    /// has shut down; clients that must outlive a restart use
    /// [`Server::kubeconfig_for`].
    pub fn client_for(&self, user: &str, groups: &[&str]) -> kube::Client {
        self.loopback.client(Identity {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Identity::default()
        })
    }

    /// Every bearer token this server accepts besides service account
    /// tokens (admin, static and in-memory tokens), with its identity.
    pub fn static_tokens(&self) -> HashMap<String, Identity> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops accepting, closes connections and waits for the accept loop.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.loopback.close();
        let _ = self.task.await;
        // With the connections gone, the audit log's writer drains what is
        // buffered and ends; a stop does not lose recorded events.
        if let Some(writer) = self.audit_writer {
            let joined = tokio::task::spawn_blocking(move || writer.join());
            if tokio::time::timeout(Duration::from_secs(5), joined)
                .await
                .is_err()
            {
                tracing::warn!("the audit log writer did not finish within 5 s");
            }
        }
    }

    /// Runs until the process receives SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) -> Result<()> {
        wait_for_signal().await?;
        self.shutdown().await;
        Ok(())
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM, so a caller can stop what talks to
/// the server (controllers) before [`Server::shutdown`].
///
/// # Errors
/// When the signal handlers cannot be installed.
pub async fn wait_for_signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    Ok(())
}

/// Serves `app` over TLS on `listener` until `shutdown` changes: HTTP/1.1
/// and HTTP/2 (by ALPN) with upgrades, each request carrying the verified
/// client certificate's [`Identity`] (when one was presented) and the
/// [`PeerAddr`] as extensions. A handshake that takes over 10 s is dropped;
/// at shutdown open connections get 1 s to finish.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = tokio_rustls::TlsAcceptor::from(tls);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        let mut stop = shutdown.clone();
        connections.spawn(async move {
            let stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await
            {
                Ok(Ok(s)) => s,
                _ => return,
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|c| pki::identity_from_cert(c));
            let service =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    if let Some(id) = &identity {
                        req.extensions_mut().insert(id.clone());
                    }
                    req.extensions_mut().insert(PeerAddr(peer));
                    app.clone().oneshot(req.map(Body::new))
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// A JSON body helper for bootstrap and tests.
pub(crate) fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}
