//! Pod connections through the host (pure part): which host request a
//! virtual pod's `log`, `exec`, `attach` or `portforward` becomes, and how
//! the host's answer is told back in the tenant's names.
//!
//! In a virtual cluster the host's API server plays the kubelet: the
//! virtual API server validates the request against the virtual pod
//! (`vkube_core::connect`), then [`crate::controller::connect::HostPods`]
//! sends the same subresource request for the translated host pod, built
//! from the virtual pod's identity and the parsed options only (never from
//! a name or query the client supplied), and only once the host pod is
//! this tenant's copy of this very pod ([`names::is_managed`] says
//! `Owned`). Upgrades are passed through unchanged, so every protocol the
//! client and the host agree on works (WebSocket `v5`/`v4` channels, SPDY,
//! port-forward tunnelled over WebSocket), as kube-apiserver's
//! upgrade-aware proxy passes them to a kubelet.

use crate::names::{self, Ownership, Tenant, VirtualIdentity};
use serde_json::Value;
use vkube_core::connect::{PodOperation, internal_error};
use vkube_core::service::HostRefusal;

/// Request headers of an upgrade passed to the host: the WebSocket
/// handshake (RFC 6455) and SPDY's protocol offer (`X-Stream-Protocol-Version`).
pub const UPGRADE_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Headers of the host's `101` answer passed back to the client.
pub const UPGRADE_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// The prefix of a `Sec-WebSocket-Protocol` entry that carries a bearer
/// token (browsers cannot set `Authorization` on a WebSocket): such entries
/// are the client's credentials for this server and never go to the host,
/// as kube-apiserver strips them.
pub const BEARER_PROTOCOL_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// A client's `Sec-WebSocket-Protocol` value without bearer-token entries
/// ([`BEARER_PROTOCOL_PREFIX`]); `None` when nothing is left.
pub fn strip_bearer_protocols(value: &str) -> Option<String> {
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with(BEARER_PROTOCOL_PREFIX))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// The host request path and query for `operation` on the virtual pod
/// `(namespace, name)`: `/api/v1/namespaces/HOSTNS/pods/HOSTNAME/SUB?QUERY`.
pub fn host_path(tenant: &Tenant, namespace: &str, name: &str, operation: &PodOperation) -> String {
    let query = operation.query();
    if let PodOperation::Proxy(p) = operation {
        // `…/{pods|services}/[SCHEME:]HOSTNAME[:PORT]/proxy/PATH?QUERY`: the
        // path was rebuilt segment by segment by the virtual API server.
        let mut path = format!(
            "/api/v1/namespaces/{}/{}/{}/proxy{}",
            tenant.host_namespace(),
            p.resource,
            p.name_spec(&names::host_name(tenant, namespace, name)),
            p.path
        );
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        return path;
    }
    let mut path = format!(
        "/api/v1/namespaces/{}/pods/{}/{}",
        tenant.host_namespace(),
        names::host_name(tenant, namespace, name),
        operation.subresource()
    );
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query);
    }
    path
}

/// Whether the host pod may be connected to for the virtual pod `id`: only
/// this tenant's copy of this incarnation ([`Ownership::Owned`]).
///
/// # Errors
/// `500 InternalError` (kube-apiserver's answer when the kubelet cannot be
/// reached, `error dialing backend: …`) when the host has no copy yet, one
/// of an earlier pod of the same name, or an object it does not manage.
pub fn check_host_pod(ownership: &Ownership, id: &VirtualIdentity) -> Result<(), HostRefusal> {
    let what = id.kind.to_ascii_lowercase();
    let object = format!("{what} {}/{}", id.namespace, id.name);
    let why = match ownership {
        Ownership::Owned => return Ok(()),
        Ownership::Absent => format!("the host has no copy of {object} yet"),
        Ownership::Stale { .. } => {
            format!("the host's copy of {object} belongs to an earlier {what} of that name")
        }
        Ownership::NotOurs(_) => {
            format!("the host object for {object} is not managed by this virtual cluster")
        }
    };
    Err(internal_error(format!("error dialing backend: {why}")))
}

/// The host's error answer (`body`, normally a `metav1.Status`, with HTTP
/// `code`) as the tenant must see it: the host pod's name replaced by the
/// virtual pod's in the message and details, so nothing of the host's
/// naming leaks (kubelet's and kube-apiserver's texts name the pod).
pub fn translate_refusal(
    code: u16,
    body: &[u8],
    host_name: &str,
    virtual_name: &str,
) -> HostRefusal {
    let rename = |s: &str| s.replace(host_name, virtual_name);
    match serde_json::from_slice::<Value>(body) {
        Ok(status) if status.get("kind").and_then(Value::as_str) == Some("Status") => {
            let mut details = status.get("details").cloned();
            if let Some(d) = details.as_mut().and_then(Value::as_object_mut)
                && let Some(n) = d.get("name").and_then(Value::as_str)
            {
                let n = rename(n);
                d.insert("name".into(), Value::String(n));
            }
            HostRefusal {
                code: status
                    .get("code")
                    .and_then(Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(code),
                reason: status
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                message: rename(status.get("message").and_then(Value::as_str).unwrap_or("")),
                details,
            }
        }
        _ => HostRefusal {
            code,
            reason: String::new(),
            message: rename(String::from_utf8_lossy(body).trim()),
            details: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vkube_core::connect::{LogOptions, StreamOptions};

    fn tenant() -> Tenant {
        Tenant::new("vc1", "team-a").unwrap()
    }

    #[test]
    fn the_host_path_is_built_from_the_virtual_identity() {
        let op = PodOperation::Log(LogOptions {
            container: "app".into(),
            tail_lines: Some(2),
            ..Default::default()
        });
        assert_eq!(
            host_path(&tenant(), "default", "web", &op),
            "/api/v1/namespaces/team-a/pods/web-x-default-x-vc1/log?container=app&tailLines=2"
        );
        let op = PodOperation::Exec(StreamOptions {
            container: "c".into(),
            command: vec!["cat".into(), "/etc/../x y".into()],
            stdin: true,
            ..Default::default()
        });
        assert_eq!(
            host_path(&tenant(), "ns", "p", &op),
            "/api/v1/namespaces/team-a/pods/p-x-ns-x-vc1/exec?container=c&command=cat&command=%2Fetc%2F..%2Fx+y&stdin=true"
        );
    }

    #[test]
    fn bearer_tokens_in_the_protocol_offer_stay_here() {
        assert_eq!(
            strip_bearer_protocols(
                "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.c2VjcmV0, v4.channel.k8s.io"
            )
            .as_deref(),
            Some("v5.channel.k8s.io, v4.channel.k8s.io")
        );
        assert_eq!(
            strip_bearer_protocols("base64url.bearer.authorization.k8s.io.x"),
            None
        );
    }

    #[test]
    fn proxies_go_to_the_host_objects_proxy() {
        let op = PodOperation::Proxy(vkube_core::connect::ProxyOptions {
            resource: "services".into(),
            scheme: Some("https".into()),
            port: Some("web".into()),
            path: "/a%20b/".into(),
            query: Some("x=1&y=%2F".into()),
            backend: None,
        });
        assert_eq!(
            host_path(&tenant(), "shop", "front", &op),
            "/api/v1/namespaces/team-a/services/https:front-x-shop-x-vc1:web/proxy/a%20b/?x=1&y=%2F"
        );
    }

    #[test]
    fn only_an_owned_copy_is_connected_to() {
        let id = VirtualIdentity {
            kind: "Pod".into(),
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u1".into(),
        };
        assert!(check_host_pod(&Ownership::Owned, &id).is_ok());
        for o in [
            Ownership::Absent,
            Ownership::Stale {
                host_uid: "u0".into(),
            },
            Ownership::NotOurs(names::Mismatch::ManagedBy),
        ] {
            let e = check_host_pod(&o, &id).unwrap_err();
            assert_eq!(e.code, 500, "{o:?}");
            assert!(e.message.starts_with("error dialing backend: "), "{o:?}");
            assert!(e.message.contains("ns/p"), "{o:?}");
        }
    }

    #[test]
    fn host_errors_name_the_virtual_pod() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"container \"c\" in pod \"p-x-ns-x-vc1\" is waiting to start: ContainerCreating","reason":"BadRequest","code":400}"#;
        let r = translate_refusal(400, body, "p-x-ns-x-vc1", "p");
        assert_eq!(
            (r.code, r.reason.as_str(), r.message.as_str()),
            (
                400,
                "BadRequest",
                "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
            )
        );
        let body = br#"{"kind":"Status","message":"pods \"p-x-ns-x-vc1\" not found","reason":"NotFound","details":{"name":"p-x-ns-x-vc1","kind":"pods"},"code":404}"#;
        let r = translate_refusal(404, body, "p-x-ns-x-vc1", "p");
        assert_eq!(r.message, "pods \"p\" not found");
        assert_eq!(r.details.unwrap()["name"], "p");
        let r = translate_refusal(502, b"bad gateway for p-x-ns-x-vc1\n", "p-x-ns-x-vc1", "p");
        assert_eq!((r.code, r.message.as_str()), (502, "bad gateway for p"));
    }
}
