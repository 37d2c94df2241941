//! Operating tenant pods through the host: `kubectl logs`, `kubectl exec`
//! and port-forward against the virtual cluster reach the host copy of the
//! pod through the host API server (`HostPods`), whose node stand-in
//! (`LocalNode`, test scaffolding) serves a simulated log and runs exec
//! commands as local processes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::synced::eventually;
use vkube_e2e::{SyncedCluster, echo_tcp};

const WAIT: Duration = Duration::from_secs(60);

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: app, image: busybox, command: [sleep, infinity]}
  - {name: sidecar, image: busybox, command: [sleep, infinity]}
  - {name: talk, image: busybox, command: [sh, -c], args: ["echo attached; exec cat"]}
"#;

/// Host and virtual clusters whose host pods get loopback IPs (so a
/// port-forward reaches a listener of the test), with pod `web` Running.
async fn cluster_with_running_pod() -> SyncedCluster {
    let simulator = NodeSimulator {
        pod_cidr_prefix: "127.0".into(),
        ..NodeSimulator::default()
    };
    let c = SyncedCluster::start_with_simulator(simulator, |_| {}).await;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], POD)
        .await
        .expect_ok();
    c.wait_running("web").await;
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_reads_the_host_pods_log_with_its_options() {
    let c = cluster_with_running_pod().await;
    // The stand-in writes a line a second since the container started.
    let all = eventually("log lines", WAIT, || async {
        let out = c.virt.kubectl(&["logs", "web", "-c", "app"]).await;
        if out.success() && out.stdout.lines().count() >= 2 {
            Ok(out.stdout)
        } else {
            Err(format!("{out}"))
        }
    })
    .await;
    assert!(
        all.lines()
            .all(|l| l.starts_with("simulated log line ") && l.contains("container app")),
        "{all}"
    );
    let tail = c
        .virt
        .kubectl(&["logs", "web", "-c", "sidecar", "--tail=1", "--timestamps"])
        .await
        .expect_ok();
    assert_eq!(tail.stdout.lines().count(), 1, "{tail}");
    assert!(tail.stdout.contains("container sidecar"), "{tail}");
    let first = tail.stdout.split(' ').next().unwrap_or_default();
    assert!(
        first.parse::<jiff::Timestamp>().is_ok(),
        "no RFC 3339 timestamp: {tail}"
    );
    let limited = c
        .virt
        .kubectl(&["logs", "web", "-c", "app", "--limit-bytes=9"])
        .await
        .expect_ok();
    assert_eq!(limited.stdout, "simulated", "{limited}");

    // kubectl defaults to the first container, as on any cluster.
    let out = c.virt.kubectl(&["logs", "web"]).await.expect_ok();
    assert!(out.stdout.contains("container app"), "{out}");

    // The API server's own checks, then the kubelet's (on the host), told
    // in the tenant's names: never the host pod's.
    let out = c.virt.kubectl(&["logs", "web", "-c", "nope"]).await;
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("container nope is not valid for pod web"),
        "{out}"
    );
    let out = c
        .virt
        .kubectl(&["logs", "web", "-c", "app", "--previous"])
        .await;
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("previous terminated container \"app\" in pod \"web\" not found"),
        "{out}"
    );
    assert!(!out.stderr.contains("-x-"), "a host name leaked: {out}");
    let out = c
        .virt
        .kubectl(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web/log?container=app&tailLines=-2",
        ])
        .await;
    assert!(
        out.stderr.contains("PodLogOptions \"web\" is invalid"),
        "{out}"
    );
    let out = c.virt.kubectl(&["logs", "ghost"]).await;
    assert!(out.stderr.contains("pods \"ghost\" not found"), "{out}");

    // Follow keeps the stream open and lines keep arriving.
    let mut follow = c
        .virt
        .kubectl_cmd(&["logs", "-f", "web", "-c", "app", "--tail=0"])
        .spawn();
    let first = follow
        .wait_for_stdout("simulated log line", Duration::from_secs(15))
        .await;
    let n: u64 = first
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a numbered line: {first}"));
    follow
        .wait_for_stdout(
            &format!("simulated log line {} ", n + 1),
            Duration::from_secs(15),
        )
        .await;
    follow.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_exec_runs_in_the_host_pod_with_exit_code_and_stdin() {
    let c = cluster_with_running_pod().await;
    let out = c
        .virt
        .kubectl(&[
            "exec",
            "web",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .await;
    assert_eq!(out.status.code(), Some(3), "{out}");
    assert_eq!(out.stdout, "out\n", "{out}");
    assert!(out.stderr.contains("err"), "{out}");

    let out = c
        .virt
        .kubectl_cmd(&["exec", "-i", "web", "-c", "sidecar", "--", "cat"])
        .stdin("hello through the host\n")
        .run()
        .await
        .expect_ok();
    assert_eq!(out.stdout, "hello through the host\n", "{out}");

    // The same over SPDY (what older clients and
    // KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false use).
    let out = c
        .virt
        .kubectl_cmd(&[
            "exec",
            "web",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "echo spdy; exit 4",
        ])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .run()
        .await;
    assert_eq!(out.status.code(), Some(4), "{out}");
    assert_eq!(out.stdout, "spdy\n", "{out}");
    let out = c
        .virt
        .kubectl_cmd(&["exec", "-i", "web", "-c", "sidecar", "--", "cat"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .stdin("over spdy\n")
        .run()
        .await
        .expect_ok();
    assert_eq!(out.stdout, "over spdy\n", "{out}");

    // `-t`: kubectl on a terminal (util-linux `script` gives it one) asks
    // for a TTY and sends resizes; output and the exit code come through.
    let (code, text) = c
        .virt
        .kubectl_on_terminal("exec -it web -c app -- sh -c 'echo on-a-tty; exit 5'")
        .await;
    assert!(text.contains("on-a-tty"), "{text}");
    assert_eq!(code, Some(5), "{text}");

    // Attach: the stand-in starts the container's own command, so what
    // comes back shows the stream works both ways, over both protocols.
    for websockets in ["true", "false"] {
        let out = c
            .virt
            .kubectl_cmd(&["attach", "-i", "web", "-c", "talk"])
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
            .stdin("hello attach\n")
            .run()
            .await;
        assert!(
            out.stdout.contains("attached") && out.stdout.contains("hello attach"),
            "websockets={websockets}: {out}"
        );
    }

    // A command that cannot start is the kubelet's internal error.
    let out = c
        .virt
        .kubectl(&["exec", "web", "-c", "app", "--", "/nonexistent/program"])
        .await;
    assert!(!out.success(), "{out}");

    let out = c
        .virt
        .kubectl(&["exec", "web", "-c", "nope", "--", "true"])
        .await;
    assert!(
        out.stderr
            .contains("container nope is not valid for pod web"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_cp_copies_both_ways_over_exec() {
    let c = cluster_with_running_pod().await;
    // The stand-in runs tar as a local process, so the "container's" files
    // are this machine's: work in a directory of the test.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("up.txt");
    std::fs::write(&local, "copied into the pod\n").unwrap();
    let inside = dir.path().join("in-pod");
    std::fs::create_dir(&inside).unwrap();
    let target = format!("web:{}/up.txt", inside.display());
    // Both stream protocols kubectl speaks.
    for websockets in ["true", "false"] {
        let _ = std::fs::remove_file(inside.join("up.txt"));
        c.virt
            .kubectl_cmd(&["cp", local.to_str().unwrap(), &target, "-c", "app"])
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
            .run()
            .await
            .expect_ok();
        assert_eq!(
            std::fs::read_to_string(inside.join("up.txt")).unwrap(),
            "copied into the pod\n",
            "websockets={websockets}"
        );
    }
    std::fs::write(inside.join("down.txt"), "copied out of the pod\n").unwrap();
    let back = dir.path().join("down.txt");
    let source = format!("web:{}/down.txt", inside.display());
    c.virt
        .kubectl(&["cp", &source, back.to_str().unwrap(), "-c", "app"])
        .await
        .expect_ok();
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "copied out of the pod\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_debug_adds_an_ephemeral_container_to_the_host_pod() {
    let c = cluster_with_running_pod().await;
    c.virt
        .kubectl(&[
            "debug",
            "web",
            "--image=busybox:1.36",
            "--container=debugger",
            "--target=app",
            "--",
            "sleep",
            "3600",
        ])
        .await
        .expect_ok();
    let host_name = c.host_name("default", "web");
    let host = eventually("the ephemeral container on the host", WAIT, || async {
        let h = c.host_get("pod", &host_name).await?;
        if h["spec"]["ephemeralContainers"][0]["name"] == "debugger" {
            Ok(h)
        } else {
            Err(format!("{}", h["spec"]))
        }
    })
    .await;
    let ec = &host["spec"]["ephemeralContainers"][0];
    assert_eq!(ec["image"], "busybox:1.36");
    assert_eq!(ec["targetContainerName"], "app");
    assert_eq!(ec["command"], serde_json::json!(["sleep", "3600"]));
    // The host's status of it comes back to the tenant.
    eventually("the ephemeral container running", WAIT, || async {
        let v = c.virt_get("pod", "web").await?;
        let s = &v["status"]["ephemeralContainerStatuses"][0];
        if s["name"] == "debugger" && s["state"]["running"].is_object() {
            Ok(())
        } else {
            Err(format!("{}", v["status"]))
        }
    })
    .await;
    // `debug -i` adds a container and attaches to it through the host.
    let out = c
        .virt
        .kubectl_cmd(&[
            "debug",
            "-i",
            "web",
            "--image=busybox",
            "--container=shell",
            "--",
            "sh",
            "-c",
            "echo from-debug; exec cat",
        ])
        .stdin("typed into the debugger\n")
        .run()
        .await;
    assert!(
        out.stdout.contains("from-debug") && out.stdout.contains("typed into the debugger"),
        "{out}"
    );

    // `debug -it` on a terminal (util-linux `script` gives kubectl one).
    let (_, text) = c
        .virt
        .kubectl_on_terminal(
            "debug -it web --image=busybox --container=tty -- sh -c 'echo debug-on-a-tty'",
        )
        .await;
    assert!(text.contains("debug-on-a-tty"), "{text}");

    // Existing ephemeral containers cannot change, as on any cluster.
    let out = c
        .virt
        .kubectl(&[
            "patch",
            "pod",
            "web",
            "--subresource=ephemeralcontainers",
            "--type=json",
            "-p",
            r#"[{"op": "replace", "path": "/spec/ephemeralContainers/0/image", "value": "x"}]"#,
        ])
        .await;
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("existing ephemeral containers \"debugger\" may not be changed"),
        "{out}"
    );
    // A privileged debug container breaks the tenant's Pod Security level
    // (baseline): refused when kubectl adds it, as pod-security admission
    // does; the pod keeps running.
    let out = c
        .virt
        .kubectl(&[
            "debug",
            "web",
            "--image=busybox",
            "--container=root",
            "--profile=sysadmin",
        ])
        .await;
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("violates PodSecurity \"baseline:latest\": privileged"),
        "{out}"
    );
    let h = c.host_get("pod", &host_name).await.unwrap();
    // The refused one never reaches the host (debugger and shell do).
    let mut names: Vec<&str> = h["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["debugger", "shell", "tty"], "{}", h["spec"]);
    let v = c.virt_get("pod", "web").await.unwrap();
    assert_eq!(v["status"]["phase"], "Running");
}

/// A tiny HTTP server on `ip`: answers every request with its method,
/// target and body (test scaffolding for the proxy tests).
async fn echo_http(ip: &str) -> u16 {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let line = head.lines().next().unwrap_or_default().to_string();
                let body = format!("{line}\n{}", String::from_utf8_lossy(&buf[head_end..]));
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: echo\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_and_service_proxies_reach_the_backend_through_the_host() {
    let c = cluster_with_running_pod().await;
    let host_pod = c
        .host_get("pod", &c.host_name("default", "web"))
        .await
        .unwrap();
    let ip = host_pod["status"]["podIP"].as_str().unwrap().to_string();
    let port = echo_http(&ip).await;

    let out = c
        .virt
        .kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/web:{port}/proxy/hello/world?x=1&y=a%20b"),
        ])
        .await
        .expect_ok();
    // (kubectl re-encodes the query: `a%20b` may arrive as `a+b`.)
    let line = out.stdout.lines().next().unwrap_or_default();
    assert!(
        line == "GET /hello/world?x=1&y=a%20b HTTP/1.1"
            || line == "GET /hello/world?x=1&y=a+b HTTP/1.1",
        "{out}"
    );
    // A body travels too.
    let out = c
        .virt
        .kubectl_cmd(&[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/web:{port}/proxy/submit"),
            "-f",
            "-",
        ])
        .stdin("{\"k\": \"v\"}")
        .run()
        .await
        .expect_ok();
    assert!(out.stdout.starts_with("POST /submit HTTP/1.1"), "{out}");
    assert!(out.stdout.contains("{\"k\": \"v\"}"), "{out}");

    // A Service: the host picks a ready endpoint of its copy.
    let svc = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: front}}\nspec:\n  selector: {{app: web}}\n  ports: [{{name: http, port: 80, targetPort: {port}}}]\n"
    );
    c.virt
        .kubectl(&["label", "pod", "web", "app=web"])
        .await
        .expect_ok();
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], &svc)
        .await
        .expect_ok();
    let body = eventually("the Service proxy answering", WAIT, || async {
        let out = c
            .virt
            .kubectl(&[
                "get",
                "--raw",
                "/api/v1/namespaces/default/services/front:http/proxy/via-service",
            ])
            .await;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(format!("{out}"))
        }
    })
    .await;
    assert!(body.starts_with("GET /via-service HTTP/1.1"), "{body}");

    // Paths cannot climb out of the proxy, and unknown objects are 404s.
    let out = c
        .virt
        .kubectl(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/ghost/proxy/",
        ])
        .await;
    assert!(out.stderr.contains("not found"), "{out}");
    let out = c
        .virt
        .kubectl(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web:1:2:3/proxy/",
        ])
        .await;
    assert!(out.stderr.contains("invalid pod request"), "{out}");
    // A node's kubelet API is the host's: refused, never forwarded.
    let node = c.virt.get_json(&["pod", "web"]).await.unwrap()["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let out = c
        .virt
        .kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
        ])
        .await;
    assert!(
        out.stderr
            .contains("the node's kubelet API is not served to tenants"),
        "{out}"
    );
}

fn free_local_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_port_forward_carries_bytes_over_websocket_and_spdy() {
    let c = cluster_with_running_pod().await;
    let host_pod = c
        .host_get("pod", &c.host_name("default", "web"))
        .await
        .unwrap();
    let ip = host_pod["status"]["podIP"].as_str().unwrap().to_string();
    let port = echo_tcp(&ip).await;
    let svc = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: echo}}\nspec:\n  selector: {{app: echo}}\n  ports: [{{name: tcp, port: 7000, targetPort: {port}}}]\n"
    );
    c.virt
        .kubectl(&["label", "pod", "web", "app=echo"])
        .await
        .expect_ok();
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], &svc)
        .await
        .expect_ok();
    // kubectl 1.34 tunnels SPDY in WebSocket by default; the environment
    // variable makes it speak SPDY directly.
    for (target, remote, websockets) in [
        ("pod/web", port, "true"),
        ("pod/web", port, "false"),
        ("svc/echo", 7000, "true"),
    ] {
        let local = free_local_port();
        let mut pf = c
            .virt
            .kubectl_cmd(&["port-forward", target, &format!("{local}:{remote}")])
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
            .timeout(WAIT)
            .spawn();
        pf.wait_for_stdout("Forwarding from", WAIT).await;
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .expect("the local port");
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let (mut r, mut w) = conn.split();
        let mut back = vec![0u8; payload.len()];
        let io = async {
            tokio::join!(async { w.write_all(&payload).await.unwrap() }, async {
                r.read_exact(&mut back).await.unwrap()
            })
        };
        tokio::time::timeout(WAIT, io)
            .await
            .unwrap_or_else(|_| panic!("{target} over websockets={websockets}: no echo"));
        assert!(
            back == payload,
            "{target} websockets={websockets}: bytes changed"
        );
        drop(conn);
        pf.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_forward_carries_bytes_through_the_host() {
    let c = cluster_with_running_pod().await;
    let host_pod = eventually("the host pod's IP", WAIT, || async {
        let p = c.host_get("pod", &c.host_name("default", "web")).await?;
        p["status"]["podIP"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no podIP: {p}"))
    })
    .await;
    // The "container": an echo server on the host pod's (loopback) IP.
    let port = echo_tcp(&host_pod).await;
    let pods: kube::Api<Pod> = kube::Api::default_namespaced(c.virt.client().await);
    let mut pf = pods
        .portforward("web", &[port])
        .await
        .expect("port-forward");
    let mut stream = pf.take_stream(port).expect("the port's stream");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = tokio::io::split(&mut stream);
    let send = async {
        w.write_all(&payload).await.unwrap();
    };
    let mut back = vec![0u8; payload.len()];
    let recv = async {
        r.read_exact(&mut back).await.unwrap();
    };
    tokio::time::timeout(WAIT, async { tokio::join!(send, recv) })
        .await
        .expect("echoed within the timeout");
    assert!(back == payload, "the bytes came back changed");
    drop(stream);
    pf.abort();
}
