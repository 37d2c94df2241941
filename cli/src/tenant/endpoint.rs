//! How a client outside the host namespace reaches a tenant's API server:
//! the Service's external address when exposed (LoadBalancer ingress, or a
//! NodePort on a node address), else a port-forward to the tenant pod
//! (kubectl port-forward's mechanism, through the host API server).

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use std::net::SocketAddr;

/// Where to reach the tenant's API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An address outside the cluster network: host (IP or DNS name) and port.
    External {
        /// IP address or DNS name.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// No external address: forward a local port to `pod`'s `port`.
    PortForward {
        /// The tenant pod, `vkube-NAME-0`.
        pod: String,
        /// The server port inside the pod.
        port: u16,
    },
}

/// Picks the endpoint from the tenant Service and the host's nodes.
///
/// LoadBalancer with an ingress IP or hostname → that and the Service port;
/// NodePort (or a LoadBalancer without ingress yet but with a node port) →
/// a node address (ExternalIP, else InternalIP, else Hostname; the node
/// named `pod_node` first) and the node port; otherwise port-forward to
/// `pod` on `pod_port`.
pub fn choose(
    service: &Service,
    nodes: &[Node],
    pod: &str,
    pod_node: Option<&str>,
    pod_port: u16,
) -> Endpoint {
    let forward = Endpoint::PortForward {
        pod: pod.to_owned(),
        port: pod_port,
    };
    let Some(spec) = service.spec.as_ref() else {
        return forward;
    };
    let Some(port) = spec.ports.as_ref().and_then(|p| p.first()) else {
        return forward;
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "LoadBalancer" {
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .and_then(|i| i.first());
        if let Some(addr) = ingress.and_then(|i| i.ip.clone().or_else(|| i.hostname.clone())) {
            return Endpoint::External {
                host: addr,
                port: port.port as u16,
            };
        }
    }
    if matches!(kind, "NodePort" | "LoadBalancer")
        && let (Some(node_port), Some(host)) = (port.node_port, node_address(nodes, pod_node))
    {
        return Endpoint::External {
            host,
            port: node_port as u16,
        };
    }
    forward
}

/// A node's address by preference ExternalIP, InternalIP, Hostname, trying
/// the node named `preferred` first.
fn node_address(nodes: &[Node], preferred: Option<&str>) -> Option<String> {
    let mut ordered: Vec<&Node> = nodes.iter().collect();
    ordered.sort_by_key(|n| n.metadata.name.as_deref() != preferred);
    for kind in ["ExternalIP", "InternalIP", "Hostname"] {
        for n in &ordered {
            let addrs = n.status.as_ref().and_then(|s| s.addresses.as_ref());
            if let Some(a) = addrs.into_iter().flatten().find(|a| a.type_ == kind) {
                return Some(a.address.clone());
            }
        }
    }
    None
}

/// Listens on `127.0.0.1:0` and forwards every accepted connection to
/// `pod`'s `port` through a fresh kube-rs port-forward (WebSocket to the
/// host API server). Returns the local address; forwarding runs until the
/// process exits. Errors: the local port cannot be bound.
pub async fn port_forward(pods: Api<Pod>, pod: String, port: u16) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a local port for the port-forward")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let (pods, pod) = (pods.clone(), pod.clone());
            tokio::spawn(async move {
                match pods.portforward(&pod, &[port]).await {
                    Ok(mut pf) => {
                        // The error channel: e.g. nothing listens on the
                        // pod's port (kubelet's "error forwarding port").
                        if let Some(error) = pf.take_error(port) {
                            let pod = pod.clone();
                            tokio::spawn(async move {
                                if let Some(msg) = error.await {
                                    tracing::warn!("port-forward to pod {pod} port {port}: {msg}");
                                }
                            });
                        }
                        if let Some(mut stream) = pf.take_stream(port) {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut stream).await;
                        }
                        pf.abort();
                    }
                    Err(e) => tracing::warn!("port-forward to pod {pod} port {port}: {e}"),
                }
            });
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn nodes() -> Vec<Node> {
        vec![
            serde_json::from_value(json!({"metadata": {"name": "a"},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}))
            .unwrap(),
            serde_json::from_value(json!({"metadata": {"name": "b"},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}))
            .unwrap(),
        ]
    }

    #[test]
    fn load_balancer_ingress_wins() {
        let s = svc(
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "nodePort": 31000}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}}),
        );
        assert_eq!(
            choose(&s, &nodes(), "p", None, 8443),
            Endpoint::External {
                host: "lb.example.com".into(),
                port: 443
            }
        );
    }

    #[test]
    fn node_port_on_the_pods_node_and_port_forward_otherwise() {
        let np =
            svc(json!({"spec": {"type": "NodePort", "ports": [{"port": 443, "nodePort": 31000}]}}));
        assert_eq!(
            choose(&np, &nodes(), "p", Some("b"), 8443),
            Endpoint::External {
                host: "10.0.0.2".into(),
                port: 31000
            }
        );
        // A LoadBalancer still pending falls back to its node port.
        let pending = svc(
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "nodePort": 31001}]}}),
        );
        assert_eq!(
            choose(&pending, &nodes(), "p", None, 8443),
            Endpoint::External {
                host: "10.0.0.1".into(),
                port: 31001
            }
        );
        let cip = svc(json!({"spec": {"type": "ClusterIP", "ports": [{"port": 443}]}}));
        assert_eq!(
            choose(&cip, &nodes(), "vkube-t-0", None, 8443),
            Endpoint::PortForward {
                pod: "vkube-t-0".into(),
                port: 8443
            }
        );
        assert_eq!(
            choose(&np, &[], "p", None, 8443),
            Endpoint::PortForward {
                pod: "p".into(),
                port: 8443
            }
        );
    }
}
