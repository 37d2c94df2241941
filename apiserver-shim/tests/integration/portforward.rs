//! `pods/{name}/portforward` through kube-rs' `Api::<Pod>::portforward`
//! against a real server: the pod's `status.podIP` is 127.0.0.1 and a TCP
//! echo server on a random loopback port plays the container.

use apiserver_shim::{Server, ServerConfig};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Generous bound for one step; only hit when something hangs.
const STEP: Duration = Duration::from_secs(30);

async fn start() -> (Server, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::new(dir.path());
    config.api.pod_connector = Some(std::sync::Arc::new(
        apiserver_shim::local_node::LocalNode::default(),
    ));
    let server = Server::start(config).await.expect("server starts");
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    let client = Client::try_from(config).expect("client builds");
    (server, client, dir)
}

/// A TCP echo server on 127.0.0.1:random; its port.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// A port on 127.0.0.1 nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Creates pod `name` bound to a node, then writes `status` through the
/// status subresource, as a kubelet would.
async fn pod_with_status(pods: &Api<Pod>, name: &str, status: serde_json::Value) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "echo"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap();
}

fn running_on_loopback() -> serde_json::Value {
    json!({"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]})
}

#[tokio::test]
async fn bytes_round_trip_through_a_port_forward() {
    let (_server, client, _dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let (a, b) = (echo_server().await, echo_server().await);
    pod_with_status(&pods, "echo", running_on_loopback()).await;

    let mut pf = tokio::time::timeout(STEP, pods.portforward("echo", &[a, b]))
        .await
        .unwrap()
        .expect("portforward upgrades");
    for (port, msg) in [
        (a, &b"hello through the API server"[..]),
        (b, b"second port"),
    ] {
        let mut stream = pf.take_stream(port).expect("stream for the port");
        stream.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(STEP, stream.read_exact(&mut got))
            .await
            .expect("echo arrives")
            .unwrap();
        assert_eq!(got, msg);
    }
    // A second, larger exchange on one port crosses several frames.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut pf = pods.portforward("echo", &[a]).await.unwrap();
    let stream = pf.take_stream(a).unwrap();
    let (mut r, mut w) = tokio::io::split(stream);
    let sent = big.clone();
    let writer = tokio::spawn(async move { w.write_all(&sent).await });
    let mut got = vec![0u8; big.len()];
    tokio::time::timeout(STEP, r.read_exact(&mut got))
        .await
        .expect("echo arrives")
        .unwrap();
    writer.await.unwrap().unwrap();
    assert!(got == big, "echoed bytes differ");
}

#[tokio::test]
async fn a_missing_pod_is_not_found() {
    let (_server, client, _dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let err = pods.portforward("nope", &[80]).await.err().expect("fails");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 404, "{s:?}");
            assert_eq!(s.message, "pods \"nope\" not found");
        }
        other => panic!("expected a 404 Status, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pod_without_an_address_is_a_bad_request() {
    let (_server, client, _dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pod_with_status(&pods, "pending", json!({"phase": "Pending"})).await;
    let err = pods
        .portforward("pending", &[80])
        .await
        .err()
        .expect("fails");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400, "{s:?}");
            assert!(s.message.contains("not running"), "{}", s.message);
        }
        other => panic!("expected a 400 Status, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_port_reports_an_error() {
    let (_server, client, _dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let port = closed_port().await;
    pod_with_status(&pods, "echo", running_on_loopback()).await;
    let mut pf = pods.portforward("echo", &[port]).await.expect("upgrades");
    let error = tokio::time::timeout(STEP, pf.take_error(port).unwrap())
        .await
        .expect("error channel answers");
    let error = error.expect("an error message on the error channel");
    assert!(
        error.starts_with(&format!("error forwarding port {port} to pod echo_default")),
        "{error}"
    );
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
}

/// A virtual cluster's server (the default configuration) never dials pod
/// IPs: a tenant who can write pod status could otherwise reach any address
/// the server can.
#[tokio::test]
async fn port_forward_is_off_unless_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(ServerConfig::new(dir.path()))
        .await
        .expect("server starts");
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    let client = Client::try_from(config).expect("client");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // A missing pod is 404 whatever the server's configuration.
    let err = pods.portforward("any", &[80]).await.err().expect("refused");
    assert!(format!("{err:#}").contains("not found"), "{err:#}");
    pod_with_status(
        &pods,
        "web",
        json!({"phase": "Running", "podIP": "127.0.0.1"}),
    )
    .await;
    let err = pods.portforward("web", &[80]).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("not served by this API server"), "{text}");
    server.shutdown().await;
}
