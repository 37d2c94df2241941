//! `vkube up` as a user runs it (README: `vkube up --apply examples/guestbook`):
//! the built binary as a child process with `VKUBE_HOME` in a tempdir and
//! free ports, checked with real kubectl against both kubeconfigs it writes.
//!
//! The tests live in the cli crate so that `CARGO_BIN_EXE_vkube` is always
//! the freshly built binary.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Generous bound for `vkube up` to start, apply and print its table.
const STARTUP: Duration = Duration::from_secs(300);

pub(crate) fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().unwrap().to_string()
}

/// A running `vkube up`; killed when dropped (a failing test leaks nothing).
pub(crate) struct Up {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    seen: String,
}

impl Up {
    pub(crate) fn spawn(home: &Path, listen: &str, host_listen: &str, extra: &[&str]) -> Up {
        Self::spawn_with(home, listen, host_listen, extra, Stdio::inherit())
    }

    /// As [`Up::spawn`], with its stderr (its log) going to `stderr`.
    pub(crate) fn spawn_with(
        home: &Path,
        listen: &str,
        host_listen: &str,
        extra: &[&str],
        stderr: Stdio,
    ) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vkube"))
            .arg("up")
            .args(extra)
            .args(["--listen", listen, "--host-listen", host_listen])
            .env("VKUBE_HOME", home)
            .env_remove("VKUBE_LOG")
            .current_dir(vkube_e2e::workspace_root())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("starting vkube up");
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Up {
            child,
            stdout,
            seen: String::new(),
        }
    }

    /// Reads stdout until a line containing `needle`; returns everything
    /// read so far. Panics with the output on timeout or exit.
    pub(crate) async fn wait_for(&mut self, needle: &str) -> String {
        let read = async {
            while let Some(line) = self.stdout.next_line().await.expect("reading stdout") {
                self.seen.push_str(&line);
                self.seen.push('\n');
                if line.contains(needle) {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(STARTUP, read).await {
            Ok(true) => self.seen.clone(),
            Ok(false) => panic!("vkube up exited before printing {needle:?}:\n{}", self.seen),
            Err(_) => panic!("no {needle:?} within {STARTUP:?}:\n{}", self.seen),
        }
    }

    /// Sends SIGINT (as Ctrl-C does) and waits for the exit; returns the
    /// status and the rest of stdout.
    pub(crate) async fn interrupt(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().expect("vkube up still running").to_string();
        let kill = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("running kill");
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .expect("vkube up did not stop within 120s of SIGINT")
            .unwrap();
        let mut rest = String::new();
        while let Ok(Some(line)) = self.stdout.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        (status, rest)
    }
}

/// Runs real kubectl with `kubeconfig` (private HOME and cache); returns
/// stdout, panicking with stderr on failure.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = super::metrics::kubectl_output(kubeconfig, args, "").await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub(crate) fn guestbook() -> String {
    vkube_e2e::workspace_root()
        .join("examples/guestbook")
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_applies_the_guestbook_stops_on_sigint_and_resumes() {
    let home = tempfile::tempdir().unwrap();
    let (listen, host_listen) = (free_addr(), free_addr());
    let vc_kubeconfig: PathBuf = home.path().join("dev/kubeconfig");
    let host_kubeconfig: PathBuf = home.path().join("host/kubeconfig");

    // Without the syncer the pods stay Pending: a short wait keeps the test quick.
    let mut up = Up::spawn(
        home.path(),
        &listen,
        &host_listen,
        &["--apply", &guestbook(), "--wait-timeout", "3s"],
    );
    let out = up.wait_for("press Ctrl-C").await;
    for needle in [
        &format!("export KUBECONFIG={}", vc_kubeconfig.display()),
        &format!(
            "kubectl --kubeconfig {} get pods -n vkube-dev",
            host_kubeconfig.display()
        ),
        "applied deployments.apps/frontend -n default",
        "VIRTUAL (ns/name)",
        "pod default/frontend-",
        "svc default/redis-leader",
        "svc default/frontend",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // The API server's own Service is not a row of the table.
    assert!(!out.contains("svc default/kubernetes"), "{out}");

    let got = kubectl(&vc_kubeconfig, &["get", "deploy,svc", "-o", "name"]).await;
    for name in [
        "deployment.apps/frontend",
        "deployment.apps/redis-leader",
        "deployment.apps/redis-follower",
        "service/frontend",
        "service/redis-leader",
        "service/redis-follower",
    ] {
        assert!(got.lines().any(|l| l == name), "no {name} in:\n{got}");
    }
    let replicas = kubectl(
        &vc_kubeconfig,
        &[
            "get",
            "deploy",
            "frontend",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    )
    .await;
    assert_eq!(replicas, "3");
    // The controllers run: the Deployment made its three pods.
    let pods = kubectl(
        &vc_kubeconfig,
        &["get", "pods", "-l", "tier=frontend", "-o", "name"],
    )
    .await;
    assert_eq!(pods.lines().count(), 3, "{pods}");
    // The host side exists with the tenant's namespace and a simulated node.
    kubectl(&host_kubeconfig, &["get", "namespace", "vkube-dev"]).await;
    let nodes = kubectl(&host_kubeconfig, &["get", "nodes", "-o", "name"]).await;
    assert!(nodes.contains("node/"), "{nodes}");

    let (status, rest) = up.interrupt().await;
    assert!(
        status.success(),
        "vkube up exited with {status} after SIGINT"
    );
    assert!(rest.contains("stopped"), "{rest}");

    // Resume: same VKUBE_HOME, no --apply; the objects are still there.
    let mut up = Up::spawn(home.path(), &listen, &host_listen, &[]);
    up.wait_for("press Ctrl-C").await;
    let replicas = kubectl(
        &vc_kubeconfig,
        &[
            "get",
            "deploy",
            "frontend",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    )
    .await;
    assert_eq!(replicas, "3");
    let cm = kubectl(
        &vc_kubeconfig,
        &[
            "get",
            "configmap",
            "redis-config",
            "-o",
            "jsonpath={.data.redis\\.conf}",
        ],
    )
    .await;
    assert!(cm.contains("maxmemory 64mb"), "{cm}");
    kubectl(&host_kubeconfig, &["get", "namespace", "vkube-dev"]).await;
    let (status, _) = up.interrupt().await;
    assert!(status.success(), "second vkube up exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_guestbook_pods_run_on_the_host() {
    let home = tempfile::tempdir().unwrap();
    let (listen, host_listen) = (free_addr(), free_addr());
    let vc_kubeconfig = home.path().join("dev/kubeconfig");
    let host_kubeconfig = home.path().join("host/kubeconfig");
    let mut up = Up::spawn(
        home.path(),
        &listen,
        &host_listen,
        &["--apply", &guestbook()],
    );
    let out = up.wait_for("press Ctrl-C").await;
    assert!(!out.contains("not ready after"), "{out}");
    assert!(
        !out.contains("not synced"),
        "every pod and service is synced:\n{out}"
    );

    // Tenant's view: 6 pods Running, each with a host IP.
    let pods = kubectl(
        &vc_kubeconfig,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.hostIP}{\"\\n\"}{end}",
        ],
    )
    .await;
    let lines: Vec<&str> = pods.lines().collect();
    assert_eq!(lines.len(), 6, "{pods}");
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(
            f.len() == 3 && f[1] == "Running",
            "not Running with a host IP: {l}"
        );
    }
    // Host's view: the translated pods in vkube-dev.
    let host = kubectl(
        &host_kubeconfig,
        &[
            "get",
            "pods",
            "-n",
            "vkube-dev",
            "-l",
            "vkube.dev/managed-by=dev",
            "-o",
            "name",
        ],
    )
    .await;
    assert_eq!(host.lines().count(), 6, "{host}");
    let (status, _) = up.interrupt().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_a_busy_port_says_which_flag_to_use() {
    let home = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(env!("CARGO_BIN_EXE_vkube"))
            .args(["up", "--listen", &busy_addr, "--host-listen", &free_addr()])
            .env("VKUBE_HOME", home.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("vkube up should fail fast")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{busy_addr} is already in use")) && stderr.contains("--listen"),
        "{stderr}"
    );
    drop(busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_host_kubeconfig_syncs_into_that_cluster_instead_of_a_local_one() {
    let host = vkube_e2e::TestCluster::start().await;
    let home = tempfile::tempdir().unwrap();
    let host_kubeconfig = host.kubeconfig_path().display().to_string();
    let mut up = Up::spawn(
        home.path(),
        &free_addr(),
        &free_addr(),
        &["team-a", "--host-kubeconfig", &host_kubeconfig],
    );
    let out = up.wait_for("press Ctrl-C").await;
    assert!(
        out.contains(&format!(
            "Host cluster from {host_kubeconfig}, syncing into namespace vkube-team-a"
        )),
        "{out}"
    );
    assert!(!out.contains("Local host cluster"), "{out}");
    // The given host got the tenant's namespace; no local host was started.
    host.kubectl(&["get", "namespace", "vkube-team-a"])
        .await
        .expect_ok();
    assert!(!home.path().join("host").exists());
    let ns = kubectl(
        &home.path().join("team-a/kubeconfig"),
        &["get", "ns", "-o", "name"],
    )
    .await;
    assert!(
        ns.contains("namespace/default") && !ns.contains("vkube-team-a"),
        "{ns}"
    );
    let (status, _) = up.interrupt().await;
    assert!(status.success(), "{status}");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_waiting_for_pods_stops_cleanly() {
    let home = tempfile::tempdir().unwrap();
    // Default --wait-timeout (120s): without the syncer the wait is still on
    // when the signal arrives.
    let mut up = Up::spawn(
        home.path(),
        &free_addr(),
        &free_addr(),
        &["--apply", &guestbook()],
    );
    up.wait_for("applied services/frontend -n default").await;
    let (status, rest) = up.interrupt().await;
    assert!(status.success(), "exit status {status}");
    assert!(rest.contains("vkube up: stopped"), "{rest}");
    assert!(
        !rest.contains("VIRTUAL (ns/name)"),
        "interrupted before the table: {rest}"
    );
}
