//! [`HostPods`]: the virtual API server's pod connector in a virtual
//! cluster. The host's API server plays the kubelet: each `log`, `exec`,
//! `attach` and `portforward` request on a virtual pod becomes the same
//! request on its host copy (see [`crate::connect`] for which request and
//! the checks before it).
//!
//! The host needs to grant only `get` on `pods` and `pods/log`, and
//! `create`/`get` on `pods/exec`, `pods/attach` and `pods/portforward` in
//! the host namespace.

use crate::connect::{
    UPGRADE_REQUEST_HEADERS, UPGRADE_RESPONSE_HEADERS, check_host_pod, host_path,
    strip_bearer_protocols, translate_refusal,
};
use crate::engine::SyncerConfig;
use crate::names::{Tenant, VirtualIdentity, host_name, is_managed};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use vkube_core::connect::{
    ConnectBody, PodConnection, PodConnector, PodOperation, empty_body, internal_error,
};
use vkube_core::eviction::{HostEviction, HostEvictor};
use vkube_core::service::{BoxFuture, HostRefusal};

/// The most of a host error body read (a `Status` is a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Connects virtual pods' connect subresources to their host copies
/// through the host API server (module docs).
#[derive(Clone)]
pub struct HostPods {
    client: kube::Client,
    tenant: Tenant,
}

impl std::fmt::Debug for HostPods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPods")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl HostPods {
    /// Connects through `host` into `config`'s host namespace. The client
    /// must have no read timeout: streams may stay idle for hours (kube's
    /// default has none).
    pub fn new(host: kube::Client, config: &SyncerConfig) -> Self {
        Self {
            client: host,
            tenant: config.tenant.clone(),
        }
    }

    async fn connect_host(
        &self,
        mut conn: PodConnection,
    ) -> Result<Response<ConnectBody>, HostRefusal> {
        let meta: ObjectMeta = serde_json::from_value(conn.pod["metadata"].clone())
            .map_err(|e| internal_error(format!("decoding the pod's metadata: {e}")))?;
        let service = matches!(&conn.operation, PodOperation::Proxy(p) if p.resource == "services");
        let kind = if service { "Service" } else { "Pod" };
        let id =
            VirtualIdentity::from_meta(kind, &meta).map_err(|e| internal_error(e.to_string()))?;
        let hname = host_name(&self.tenant, &id.namespace, &id.name);
        let host = if service {
            Api::<Service>::namespaced(self.client.clone(), self.tenant.host_namespace())
                .get_metadata_opt(&hname)
                .await
                .map(|m| m.map(|m| m.metadata))
        } else {
            Api::<Pod>::namespaced(self.client.clone(), self.tenant.host_namespace())
                .get_metadata_opt(&hname)
                .await
                .map(|m| m.map(|m| m.metadata))
        }
        .map_err(|e| internal_error(format!("error dialing backend: {e}")))?;
        check_host_pod(&is_managed(&self.tenant, host.as_ref(), &id), &id)?;

        let path = host_path(&self.tenant, &id.namespace, &id.name, &conn.operation);
        let upgrades = conn.operation.upgrades();
        let mut req = http::Request::builder()
            .method(conn.request.method().clone())
            .uri(path);
        let proxy = matches!(conn.operation, PodOperation::Proxy(_));
        if proxy {
            for name in vkube_core::connect::PROXY_REQUEST_HEADERS {
                for v in conn.request.headers().get_all(*name) {
                    req = req.header(*name, v);
                }
            }
        }
        if upgrades {
            for name in UPGRADE_REQUEST_HEADERS {
                for v in conn.request.headers().get_all(*name) {
                    if *name == "sec-websocket-protocol" {
                        if let Some(kept) = v.to_str().ok().and_then(strip_bearer_protocols) {
                            req = req.header(*name, kept);
                        }
                    } else {
                        req = req.header(*name, v);
                    }
                }
            }
        }
        let body = if conn.body.is_empty() {
            kube::client::Body::empty()
        } else {
            kube::client::Body::from(conn.body.to_vec())
        };
        let req = req.body(body).map_err(|e| internal_error(e.to_string()))?;
        let mut res = self
            .client
            .send(req)
            .await
            .map_err(|e| internal_error(format!("error dialing backend: {e}")))?;
        let status = res.status();
        if proxy {
            return proxied(res, &hname, &id.name).await;
        }
        let wanted = if upgrades {
            status == StatusCode::SWITCHING_PROTOCOLS
        } else {
            status.is_success()
        };
        if !wanted {
            let body = http_body_util::Limited::new(res.into_body(), MAX_ERROR_BODY)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let code = if status.is_success() || status.is_informational() {
                // A host that answers an upgrade without upgrading.
                502
            } else {
                status.as_u16()
            };
            return Err(translate_refusal(code, &body, &hname, &id.name));
        }
        if !upgrades {
            let (parts, body) = res.into_parts();
            let body: ConnectBody = Box::pin(body.map_err(|e| Box::new(e) as _));
            let mut out = Response::new(body);
            *out.status_mut() = parts.status;
            if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
                out.headers_mut()
                    .insert(http::header::CONTENT_TYPE, ct.clone());
            }
            return Ok(out);
        }
        // Both sides upgrade: answer the client with the host's 101 and
        // pump bytes until either side closes.
        let client_upgrade = hyper::upgrade::on(&mut conn.request);
        let host_upgrade = hyper::upgrade::on(&mut res);
        let mut out = Response::new(empty_body());
        *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for name in UPGRADE_RESPONSE_HEADERS {
            for v in res.headers().get_all(*name) {
                out.headers_mut().append(*name, v.clone());
            }
        }
        let pod = format!("{}/{}", id.namespace, id.name);
        tokio::spawn(async move {
            let (client, host) = match tokio::try_join!(client_upgrade, host_upgrade) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(%pod, error = %e, "pod stream upgrade failed");
                    return;
                }
            };
            pump(TokioIo::new(client), TokioIo::new(host), &pod).await;
        });
        Ok(out)
    }
}

/// A proxied response passed back: the backend's status, headers (minus
/// hop-by-hop ones) and body as they come; only the host API server's own
/// `Status` errors (no endpoints, backend unreachable) are rewritten to
/// name the virtual object.
async fn proxied(
    res: Response<kube::client::Body>,
    host_name: &str,
    virtual_name: &str,
) -> Result<Response<ConnectBody>, HostRefusal> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if status.as_u16() >= 500 && is_json {
        let body = http_body_util::Limited::new(res.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let is_status =
            serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v["kind"] == "Status");
        if is_status {
            return Err(translate_refusal(
                status.as_u16(),
                &body,
                host_name,
                virtual_name,
            ));
        }
        let mut out = Response::new(Box::pin(
            http_body_util::Full::new(body)
                .map_err(|never| -> Box<dyn std::error::Error + Send + Sync> { match never {} }),
        ) as ConnectBody);
        *out.status_mut() = status;
        out.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return Ok(out);
    }
    let (mut parts, body) = res.into_parts();
    for h in vkube_core::connect::HOP_BY_HOP {
        parts.headers.remove(*h);
    }
    let body: ConnectBody = Box::pin(body.map_err(|e| Box::new(e) as _));
    Ok(Response::from_parts(parts, body))
}

/// Copies bytes both ways between the client's and the host's upgraded
/// connections. When the host side ends (the process exited, the pod
/// went), the client is told and the stream is over, as kube-apiserver's
/// upgrade-aware proxy tears both down; when the client half-closes, the
/// host is told and its remaining output still flows back.
async fn pump<C, H>(client: C, host: H, pod: &str)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    H: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut host_r, mut host_w) = tokio::io::split(host);
    let down = async {
        let r = tokio::io::copy(&mut host_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
        r
    };
    let up = async {
        let r = tokio::io::copy(&mut client_r, &mut host_w).await;
        let _ = host_w.shutdown().await;
        r
    };
    tokio::pin!(down, up);
    tokio::select! {
        r = &mut down => {
            if let Err(e) = r {
                tracing::debug!(%pod, error = %e, "pod stream from the host ended");
            }
        }
        r = &mut up => {
            if let Err(e) = r {
                tracing::debug!(%pod, error = %e, "pod stream from the client ended");
            }
            // The client is done sending; the host may still answer.
            let _ = down.await;
        }
    }
}

impl HostPods {
    /// Evicts the host copy of virtual pod `namespace/name` (uid `uid`):
    /// only the tenant's own copy of this very pod, guarded by its uid; the
    /// host's refusal names the tenant's budget and pod.
    async fn evict_host(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        eviction: &serde_json::Value,
    ) -> Result<HostEviction, HostRefusal> {
        let hname = host_name(&self.tenant, namespace, name);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.tenant.host_namespace());
        let host = pods
            .get_opt(&hname)
            .await
            .map_err(|e| internal_error(format!("reading the host pod: {e}")))?;
        let id = VirtualIdentity {
            kind: crate::pod::KIND.into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        };
        let Some(host) = host.filter(|h| {
            is_managed(&self.tenant, Some(&h.metadata), &id) == crate::names::Ownership::Owned
        }) else {
            return Ok(HostEviction::NoHostPod);
        };
        let host_uid = host.metadata.uid.clone().unwrap_or_default();
        let body = serde_json::json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": hname, "namespace": self.tenant.host_namespace()},
            "deleteOptions": crate::poddisruptionbudget::host_delete_options(eviction, &host_uid),
        });
        let path = format!(
            "/api/v1/namespaces/{}/pods/{hname}/eviction",
            self.tenant.host_namespace()
        );
        let req = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(kube::client::Body::from(
                serde_json::to_vec(&body).unwrap_or_default(),
            ))
            .map_err(|e| internal_error(e.to_string()))?;
        let resp = self
            .client
            .send(req)
            .await
            .map_err(|e| internal_error(format!("evicting the host pod: {e}")))?;
        let code = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(HostEviction::Evicted);
        }
        if code == 404 {
            return Ok(HostEviction::NoHostPod);
        }
        let bytes = resp
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| internal_error(format!("reading the host's answer: {e}")))?;
        let mut refusal = translate_refusal(code, &bytes, &hname, name);
        self.name_budgets(&mut refusal).await;
        Err(refusal)
    }

    /// Replaces the host budget's name in `refusal`'s causes by the
    /// tenant's, read from the host budget's markers.
    async fn name_budgets(&self, refusal: &mut HostRefusal) {
        let Some(causes) = refusal
            .details
            .as_mut()
            .and_then(|d| d.get_mut("causes"))
            .and_then(serde_json::Value::as_array_mut)
        else {
            return;
        };
        let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
            Api::namespaced(self.client.clone(), self.tenant.host_namespace());
        for c in causes {
            let Some(message) = c.get("message").and_then(serde_json::Value::as_str) else {
                continue;
            };
            let Some(host_budget) = crate::poddisruptionbudget::budget_named(message) else {
                continue;
            };
            let Ok(Some(b)) = budgets.get_opt(host_budget).await else {
                continue;
            };
            if let Some(id) = VirtualIdentity::from_host(&b.metadata)
                && id.kind == crate::poddisruptionbudget::KIND
            {
                c["message"] = message.replace(host_budget, &id.name).into();
            }
        }
    }
}

impl HostEvictor for HostPods {
    fn evict<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        uid: &'a str,
        eviction: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<HostEviction, HostRefusal>> {
        Box::pin(self.evict_host(namespace, name, uid, eviction))
    }
}

impl PodConnector for HostPods {
    fn connect(
        &self,
        conn: PodConnection,
    ) -> BoxFuture<'_, Result<Response<ConnectBody>, HostRefusal>> {
        Box::pin(self.connect_host(conn))
    }
}
