//! End-to-end test harness: real client binaries against real vkube servers.
//!
//! [`TestCluster::start`] runs an [`apiserver_shim::Server`] in-process on a
//! free loopback port with its own temporary data directory, PKI and admin
//! kubeconfig; [`TestCluster::kubectl`] runs the real `kubectl` binary against
//! it over verified TLS and captures what it prints.
//!
//! Client binaries are found by [`find_tool`]: the environment variable
//! (`KUBECTL`, `HELM`), else `<workspace>/.tools/bin/<name>`, else `PATH`.
//! A missing binary is an error telling to run `scripts/install-tools.sh`;
//! tests never skip silently.
//!
//! ```no_run
//! # async fn demo() {
//! use vkube_e2e::TestCluster;
//! let cluster = TestCluster::start().await;
//! let out = cluster.kubectl(&["get", "ns"]).await.expect_ok();
//! assert!(out.stdout.contains("kube-system"));
//! cluster.shutdown().await;
//! # }
//! ```
#![warn(missing_docs)]

pub mod metrics;
pub mod synced;
pub use synced::SyncedCluster;

use anyhow::{Context, Result, bail};
use apiserver_shim::{Server, ServerConfig};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// How long one client command may run before the harness kills it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e crate lives inside the workspace")
        .to_path_buf()
}

/// The configuration of a test cluster's server: the defaults, plus the
/// pod connect subresources served by the local node stand-in, since test
/// clusters often stand in for a host cluster
/// ([`apiserver_shim::local_node::LocalNode`]). Test scaffolding: `exec`
/// runs the requested command as a local process, so tests can check what
/// a real kubelet would run (exit codes, stdin, output).
fn test_config(data_dir: impl Into<PathBuf>) -> ServerConfig {
    use apiserver_shim::local_node::{LocalExec, LocalNode};
    let mut config = ServerConfig::new(data_dir);
    config.api.pod_connector = Some(std::sync::Arc::new(LocalNode {
        exec: LocalExec::RunLocalProcesses,
    }));
    config
}

/// A TLS acceptor for a test server whose certificate names `sans` (host
/// names or IP addresses), signed by a new CA; returns the acceptor and
/// the CA certificate (PEM) clients must trust.
///
/// # Panics
/// If rcgen or rustls refuse the generated key or certificate.
pub fn tls_acceptor(sans: &[&str]) -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("a server key");
    let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .expect("server params")
        .signed_by(&leaf_key, &issuer)
        .expect("a server certificate");
    let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .expect("the server certificate");
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls)),
        ca.pem(),
    )
}

/// A TCP echo server on `ip` (any free port), standing in for a
/// container's listener in port-forward tests and benches; its port.
pub async fn echo_tcp(ip: &str) -> u16 {
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("binding the echo server");
    let port = listener.local_addr().expect("bound").port();
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

/// Locates a client binary: `$ENV_VAR` if set (it must exist), else
/// `<workspace>/.tools/bin/<name>`, else `<name>` on `PATH`.
///
/// Fails with a message naming `scripts/install-tools.sh` when none exists.
pub fn find_tool(env_var: &str, name: &str) -> Result<PathBuf> {
    let hint = "run scripts/install-tools.sh (or scripts/test, which runs it) to install the pinned client tools";
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "${env_var} is {} but no such file exists; {hint}",
            p.display()
        );
    }
    let local = workspace_root().join(".tools/bin").join(name);
    if local.is_file() {
        return Ok(local);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "{name} not found (looked at ${env_var}, {}, PATH); {hint}",
        local.display()
    )
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// The command line, for failure messages.
    pub command: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (showing the command's output) unless it succeeded.
    #[track_caller]
    pub fn expect_ok(self) -> Self {
        assert!(self.success(), "expected success: {self}");
        self
    }

    /// Panics unless the command failed and its stderr contains `needle`.
    #[track_caller]
    pub fn expect_err_contains(self, needle: &str) -> Self {
        assert!(!self.success(), "expected failure: {self}");
        assert!(
            self.stderr.contains(needle),
            "expected stderr to contain {needle:?}: {self}"
        );
        self
    }

    /// Panics unless stdout contains every one of `needles`.
    #[track_caller]
    pub fn expect_stdout_contains(self, needles: &[&str]) -> Self {
        for n in needles {
            assert!(
                self.stdout.contains(n),
                "expected stdout to contain {n:?}: {self}"
            );
        }
        self
    }

    /// Panics unless stdout contains none of `needles`.
    #[track_caller]
    pub fn expect_stdout_lacks(self, needles: &[&str]) -> Self {
        for n in needles {
            assert!(
                !self.stdout.contains(n),
                "expected stdout not to contain {n:?}: {self}"
            );
        }
        self
    }

    /// Parses stdout as JSON, panicking with the output if it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// The non-empty lines of stdout, trimmed at the end.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// A vkube API server running in-process for one test, with everything a
/// client needs to reach it.
pub struct TestCluster {
    /// The running server (address, kubeconfig, PKI, REST layer).
    pub server: Server,
    /// The `kubectl` binary used by [`TestCluster::kubectl`].
    pub kubectl_bin: PathBuf,
    /// A scratch directory for the test's own files (manifests, HOME, caches).
    pub work_dir: PathBuf,
    /// Controllers started by [`TestCluster::start_with_controllers`] or
    /// [`TestCluster::run_controllers`], with their `--controllers`
    /// selection (to start them again after a restart).
    controllers: Vec<(String, vkube_controllers::Running)>,
    /// The simulated nodes: network clients, as kubelets are.
    nodes: Vec<tokio::task::JoinHandle<vkube_controllers::Result<()>>>,
    // Dropped last: holds the data directory and work_dir.
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts a server in a fresh temporary directory; panics with a clear
    /// message if kubectl is missing or the server does not start.
    pub async fn start() -> TestCluster {
        match Self::try_start().await {
            Ok(c) => c,
            Err(e) => panic!("starting the test cluster: {e:#}"),
        }
    }

    /// Like [`TestCluster::start`], returning the error instead of panicking.
    pub async fn try_start() -> Result<TestCluster> {
        Self::try_start_configured(|_| {}).await
    }

    /// Like [`TestCluster::start`], letting `configure` change the server's
    /// configuration first (e.g. a virtual cluster's
    /// [`apiserver_shim::rest::ApiConfig::service_host`]).
    pub async fn start_configured(configure: impl FnOnce(&mut ServerConfig)) -> TestCluster {
        match Self::try_start_configured(configure).await {
            Ok(c) => c,
            Err(e) => panic!("starting the test cluster: {e:#}"),
        }
    }

    /// Like [`TestCluster::start_configured`], returning the error.
    pub async fn try_start_configured(
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Result<TestCluster> {
        let kubectl_bin = find_tool("KUBECTL", "kubectl")?;
        let dir = tempfile::Builder::new()
            .prefix("vkube-e2e-")
            .tempdir()
            .context("creating a temporary directory")?;
        let mut config = test_config(dir.path().join("data"));
        configure(&mut config);
        let server = Server::start(config)
            .await
            .context("starting apiserver_shim::Server")?;
        let work_dir = dir.path().join("work");
        std::fs::create_dir_all(work_dir.join("home"))?;
        std::fs::create_dir_all(work_dir.join("tmp"))?;
        Ok(TestCluster {
            server,
            kubectl_bin,
            work_dir,
            controllers: Vec::new(),
            nodes: Vec::new(),
            _dir: dir,
        })
    }

    /// Like [`TestCluster::start`], plus every default controller (as
    /// `vkube apiserver --controllers='*'` runs them) and a
    /// [`vkube_controllers::simulator::NodeSimulator`] (default settings
    /// except `sim`'s) that binds pods and reports them Running and Ready.
    pub async fn start_with_controllers(
        sim: vkube_controllers::simulator::NodeSimulator,
    ) -> TestCluster {
        Self::start_configured_with_controllers(sim, |_| {}).await
    }

    /// Like [`TestCluster::start_with_controllers`], letting `configure`
    /// change the server's configuration first (e.g. a metrics provider).
    pub async fn start_configured_with_controllers(
        sim: vkube_controllers::simulator::NodeSimulator,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestCluster {
        let mut c = Self::start_configured(configure).await;
        c.run_controllers("*");
        let node = sim.spawn(c.node_client().await);
        c.nodes.push(node);
        c
    }

    /// Starts the controllers that `selection` (kube-controller-manager's
    /// `--controllers` syntax, e.g. `"namespace"`) names, without a node:
    /// for tests that need one controller's effect, such as namespace
    /// deletion finishing (the API server alone leaves a deleted namespace
    /// Terminating, as kube-apiserver does without kube-controller-manager).
    pub fn run_controllers(&mut self, selection: &str) {
        let running = self.spawn_controllers(selection);
        self.controllers.push((selection.to_string(), running));
    }

    /// Starts the controllers `selection` names, each as its own
    /// `kube-system` service account (as `vkube apiserver` runs them).
    fn spawn_controllers(&self, selection: &str) -> vkube_controllers::Running {
        let selected = vkube_controllers::select(selection)
            .unwrap_or_else(|e| panic!("--controllers={selection}: {e}"));
        vkube_controllers::spawn_as_service_accounts(
            |user, groups| self.server.client_for(user, groups),
            &selected,
            self.options(),
        )
    }

    /// The controllers' settings for this server (its CA as the root CA).
    fn options(&self) -> vkube_controllers::Options {
        vkube_controllers::Options::for_cluster_ca(
            &self.server.pki.ca_cert,
            self.server.pki.ca_key_pem(),
        )
    }

    /// A kube-rs client for the node simulator: it stands in for a
    /// kubelet, which kube-apiserver authorizes with its Node authorizer
    /// (vkube has none), so it acts in `system:masters`.
    pub async fn node_client(&self) -> kube::Client {
        let kubeconfig = self
            .server
            .kubeconfig_for("system:node-simulator", &["system:masters"])
            .expect("issuing the node simulator's certificate");
        vkube_controllers::client_from_kubeconfig(&kubeconfig)
            .await
            .expect("a client for the node simulator's kubeconfig")
    }

    /// A kube-rs client acting as `user` in `groups` (an in-memory token of
    /// the server), e.g. the syncer's own identity.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> kube::Client {
        let kubeconfig = self
            .server
            .kubeconfig_for(user, groups)
            .expect("issuing a loopback token");
        vkube_controllers::client_from_kubeconfig(&kubeconfig)
            .await
            .expect("a client for the loopback kubeconfig")
    }

    /// A kube-rs client with the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        vkube_controllers::client_from_kubeconfig(&self.server.kubeconfig)
            .await
            .expect("a client for the admin kubeconfig")
    }

    /// POSTs a `policy/v1` Eviction of pod `default/pod` with
    /// `kubectl create --raw` plus `extra` arguments (e.g. `-v=8`): what
    /// `kubectl drain` sends for each pod.
    pub async fn evict(&self, pod: &str, extra: &[&str]) -> Output {
        let eviction = serde_json::json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": "default"},
        })
        .to_string();
        let path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
        let mut args = vec!["create", "--raw", &path, "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_stdin(&args, &eviction).await
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.server.kubeconfig_path
    }

    /// Writes `contents` to `name` inside [`TestCluster::work_dir`] and
    /// returns its path (e.g. a manifest for `kubectl create -f`).
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.work_dir.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Writes kubeconfig `name` that reaches this cluster with bearer
    /// `token` only (no client certificate), and returns its path.
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.server.pki.ca_cert);
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: u\n    namespace: default\ncurrent-context: t\n",
            self.server.url()
        );
        self.write_file(name, &yaml).display().to_string()
    }

    /// A `kubectl` invocation against this cluster, to configure before
    /// running (stdin, environment).
    pub fn kubectl_cmd(&self, args: &[&str]) -> Kubectl {
        Kubectl {
            bin: self.kubectl_bin.clone(),
            kubeconfig: self.server.kubeconfig_path.clone(),
            cache_dir: self.work_dir.join("kube-cache"),
            home: self.work_dir.join("home"),
            tmp: self.work_dir.join("tmp"),
            args: args.iter().map(OsString::from).collect(),
            envs: Vec::new(),
            stdin: None,
            timeout: COMMAND_TIMEOUT,
        }
    }

    /// `kubectl get ARGS -o json` parsed, or kubectl's stderr when it fails
    /// (e.g. `NotFound`), for polling with `synced::eventually`.
    pub async fn get_json(&self, args: &[&str]) -> std::result::Result<serde_json::Value, String> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        let out = self.kubectl(&all).await;
        if out.success() {
            Ok(out.json())
        } else {
            Err(out.stderr)
        }
    }

    /// Runs `kubectl ARGS` (one shell-quoted string) on a terminal, which
    /// util-linux `script` gives it, as for `exec -it`; its exit code and
    /// what the terminal showed.
    pub async fn kubectl_on_terminal(&self, args: &str) -> (Option<i32>, String) {
        let line = format!(
            "{} --kubeconfig {} {args}",
            self.kubectl_bin.display(),
            self.kubeconfig_path().display()
        );
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("HOME", self.work_dir.join("home"))
            .stdin(Stdio::null())
            .output()
            .await
            .expect("running script(1)");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs `kubectl ARGS` to completion and captures its output.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).run().await
    }

    /// Runs `kubectl ARGS` with `stdin` as standard input (e.g. `create -f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.kubectl_cmd(args).stdin(stdin).run().await
    }

    /// Restarts the API server on the same address and data directory (same
    /// PKI and data), as after a crash or an upgrade: network clients (the
    /// node simulator, kubectl, `clients_as`) see their connections drop
    /// and must reconnect; the in-process controllers stop with the old
    /// server and start again on the new one.
    pub async fn restart_server(&mut self) {
        let data_dir = self._dir.path().join("data");
        let mut config = test_config(&data_dir);
        config.listen = self.server.addr;
        // The in-process controllers stop and start with the server, as in
        // `vkube apiserver`. The other clients (the node, clients_as) outlive
        // the restart, so their in-memory tokens carry over.
        config.static_tokens = self.server.static_tokens();
        let selections: Vec<String> = self.controllers.iter().map(|(s, _)| s.clone()).collect();
        for (_, running) in self.controllers.drain(..) {
            running.shutdown().await;
        }
        // `shutdown` consumes the server: park a throwaway in its place.
        let spare_dir = self._dir.path().join("spare");
        let spare = Server::start(ServerConfig::new(&spare_dir))
            .await
            .expect("starting a spare server");
        let old = std::mem::replace(&mut self.server, spare);
        old.shutdown().await;
        // Connections and background tasks release the store (sled's lock)
        // shortly after shutdown returns: retry for up to 10 s.
        let mut tries = 0;
        let restarted = loop {
            match Server::start(config.clone()).await {
                Ok(s) => break s,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restarting the API server on its address: {e:#}"),
            }
        };
        let spare = std::mem::replace(&mut self.server, restarted);
        spare.shutdown().await;
        let _ = std::fs::remove_dir_all(spare_dir);
        for selection in selections {
            self.run_controllers(&selection);
        }
    }

    /// Stops the controllers, the server, and removes the temporary directory.
    pub async fn shutdown(self) {
        for node in self.nodes {
            node.abort();
        }
        for (_, running) in self.controllers {
            running.shutdown().await;
        }
        self.server.shutdown().await;
    }
}

/// One configured `kubectl` command (see [`TestCluster::kubectl_cmd`]).
///
/// Every invocation gets `--kubeconfig` and `--cache-dir` of the test
/// cluster and a private `HOME` and `TMPDIR` (where `kubectl edit` keeps its
/// files), so tests never touch the user's config.
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
    home: PathBuf,
    tmp: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Kubectl {
    /// Feeds `input` on standard input.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Sets an environment variable (e.g. `EDITOR`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Overrides [`COMMAND_TIMEOUT`] for [`Kubectl::run`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn describe(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|a| a.to_string_lossy()).collect();
        format!("kubectl {}", args.join(" "))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(&self.args)
            .env("HOME", &self.home)
            .env("TMPDIR", &self.tmp)
            .env_remove("KUBECONFIG")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs to completion (killing it after the timeout, which panics) and
    /// captures the output.
    pub async fn run(self) -> Output {
        let command = self.describe();
        let mut child = self
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("spawning `{command}`: {e}"));
        if let Some(input) = &self.stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(input).await.expect("writing kubectl stdin");
            drop(pipe);
        }
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Output {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                command,
            },
            Ok(Err(e)) => panic!("waiting for `{command}`: {e}"),
            Err(_) => panic!("`{command}` did not finish within {:?}", self.timeout),
        }
    }

    /// Starts the command in the background (e.g. `get -w`, `wait`); read
    /// its output with [`Background::wait_for_stdout`].
    pub fn spawn(self) -> Background {
        let command = self.describe();
        let mut child = self
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("spawning `{command}`: {e}"));
        if let Some(input) = self.stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
            });
        }
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stderr_pipe = BufReader::new(child.stderr.take().expect("stderr is piped"));
        let (stderr_tx, stderr) = tokio::sync::watch::channel(String::new());
        let stderr_task = tokio::spawn(async move {
            let mut lines = stderr_pipe.lines();
            while let Ok(Some(line)) = lines.next_line().await {
                stderr_tx.send_modify(|s| {
                    s.push_str(&line);
                    s.push('\n');
                });
            }
        });
        Background {
            child,
            stdout,
            seen: String::new(),
            stderr,
            stderr_task,
            command,
        }
    }
}

/// A `kubectl` running in the background (see [`Kubectl::spawn`]).
pub struct Background {
    child: Child,
    stdout: BufReader<ChildStdout>,
    seen: String,
    stderr: tokio::sync::watch::Receiver<String>,
    stderr_task: tokio::task::JoinHandle<()>,
    command: String,
}

impl Background {
    /// Reads stdout line by line until everything read so far contains
    /// `needle`; returns all stdout read so far. Panics after `timeout` or
    /// if stdout closes first.
    pub async fn wait_for_stdout(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_until(
            &format!("{needle:?}"),
            |seen| seen.contains(needle),
            timeout,
        )
        .await
    }

    /// Reads stdout line by line until `done` holds for everything read so
    /// far; returns it. Panics after `timeout` or if stdout closes first,
    /// naming `what` was awaited.
    pub async fn wait_until(
        &mut self,
        what: &str,
        done: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.seen) {
            let mut line = String::new();
            match tokio::time::timeout_at(deadline, self.stdout.read_line(&mut line)).await {
                Ok(Ok(0)) => panic!(
                    "`{}` closed stdout before printing {what}; stdout so far:\n{}",
                    self.command, self.seen
                ),
                Ok(Ok(_)) => self.seen.push_str(&line),
                Ok(Err(e)) => panic!("reading `{}` stdout: {e}", self.command),
                Err(_) => panic!(
                    "`{}` did not print {what} within {timeout:?}; stdout so far:\n{}",
                    self.command, self.seen
                ),
            }
        }
        self.seen.clone()
    }

    /// Waits until the command's stderr contains `needle` (e.g. a request
    /// logged with `-v=6`); returns all stderr so far. Panics after `timeout`.
    pub async fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let found = tokio::time::timeout(timeout, self.stderr.wait_for(|s| s.contains(needle)))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|s| s.clone());
        found.unwrap_or_else(|| {
            panic!(
                "`{}` did not print {needle:?} on stderr within {timeout:?}; stderr so far:\n{}",
                self.command,
                self.stderr.borrow().as_str()
            )
        })
    }

    /// Waits for the command to exit on its own (panicking after `timeout`)
    /// and returns everything it printed.
    pub async fn wait(mut self, timeout: Duration) -> Output {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(s) => s.expect("waiting for background kubectl"),
            Err(_) => panic!(
                "`{}` did not exit within {timeout:?}; stdout so far:\n{}",
                self.command, self.seen
            ),
        };
        self.collect(status).await
    }

    /// Kills the command and returns everything it printed.
    pub async fn kill(mut self) -> Output {
        let _ = self.child.start_kill();
        let status = self.child.wait().await.expect("waiting for killed kubectl");
        self.collect(status).await
    }

    async fn collect(mut self, status: ExitStatus) -> Output {
        let mut rest = String::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.stdout.read_to_string(&mut rest),
        )
        .await;
        self.seen.push_str(&rest);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.stderr_task).await;
        let stderr = self.stderr.borrow().clone();
        Output {
            status,
            stdout: self.seen,
            stderr,
            command: self.command,
        }
    }
}

/// Resident set size of process `pid` in KiB (`VmRSS` of
/// `/proc/PID/status`, Linux), for benchmarks; 0 if it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) process `pid` has used so far, in seconds, from
/// `/proc/PID/stat` fields 14 and 15 (proc(5)); 0 when unreadable. Clock
/// ticks are taken as 100 per second (`USER_HZ` on Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The command name (field 2) may hold spaces: count after its ')'.
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// A Deployment `guarded` of two pods and a PodDisruptionBudget `guarded`
/// that wants both available: the eviction tests' workload (no eviction is
/// allowed until the budget is relaxed).
pub const GUARDED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: guarded}
spec:
  replicas: 2
  selector: {matchLabels: {app: guarded}}
  template:
    metadata: {labels: {app: guarded}}
    spec:
      containers: [{name: c, image: nginx}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: guarded}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: guarded}}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_an_error_naming_the_install_script() {
        let err = find_tool("VKUBE_E2E_UNSET_TOOL_VAR", "vkube-e2e-no-such-tool")
            .unwrap_err()
            .to_string();
        assert!(err.contains("scripts/install-tools.sh"), "{err}");
        assert!(err.contains("vkube-e2e-no-such-tool not found"), "{err}");
    }

    #[test]
    fn output_helpers() {
        let out = Output {
            status: std::process::Command::new("true").status().unwrap(),
            stdout: "{\"a\": 1}\n\n".into(),
            stderr: String::new(),
            command: "true".into(),
        };
        assert_eq!(out.json()["a"], 1);
        assert_eq!(out.lines(), ["{\"a\": 1}"]);
        out.expect_ok().expect_stdout_lacks(&["b"]);
    }
}
