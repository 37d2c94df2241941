//! [`SyncedCluster`]: a host cluster and a virtual cluster with a
//! [`vkube_syncer::Syncer`] between them, for syncer tests.
//!
//! * HOST: a [`TestCluster`] with every default controller and a
//!   [`NodeSimulator`] (plays the host's scheduler and kubelets, as kwok);
//! * VIRTUAL: a [`TestCluster`] with the default controllers but no
//!   simulator: the syncer is the virtual cluster's kubelet; its Services
//!   get their addresses from the host ([`HostServices`]) and its pods'
//!   logs, exec and port-forward go through it ([`HostPods`]);
//! * the syncer task (admin clients on both sides), host namespace
//!   [`HOST_NAMESPACE`], tenant [`TENANT`]; stop and restart it with
//!   [`SyncedCluster::stop_syncer`] / [`SyncedCluster::start_syncer`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use vkube_controllers::simulator::NodeSimulator;
use vkube_syncer::controller::connect::HostPods;
use vkube_syncer::controller::resource_metrics::HostMetrics;
use vkube_syncer::controller::service::HostServices;
use vkube_syncer::names::Tenant;
use vkube_syncer::security::Enforce;
use vkube_syncer::{Metrics, Syncer, SyncerConfig};

use crate::TestCluster;

/// The host namespace the test tenant syncs into.
pub const HOST_NAMESPACE: &str = "vkube-test";

/// The test tenant (virtual cluster) name.
pub const TENANT: &str = "vc1";

/// Host and virtual clusters with a syncer between them (module docs).
pub struct SyncedCluster {
    /// The host cluster (controllers + node simulator).
    pub host: TestCluster,
    /// The virtual cluster (controllers, no node).
    pub virt: TestCluster,
    /// The syncer's configuration (edit, then restart the syncer to apply).
    pub config: SyncerConfig,
    syncer: Option<(tokio::task::JoinHandle<anyhow::Result<()>>, Arc<Metrics>)>,
}

impl SyncedCluster {
    /// Starts both clusters and the syncer with [`SyncedCluster::default_config`].
    pub async fn start() -> SyncedCluster {
        Self::start_with(|_| {}).await
    }

    /// Like [`SyncedCluster::start`], letting `configure` change the
    /// syncer's configuration first (which starts as
    /// [`SyncedCluster::default_config`] with `kubernetes_service`
    /// `10.96.0.1:443`, so host pods carry recognisable
    /// `KUBERNETES_SERVICE_*` values).
    pub async fn start_with(configure: impl FnOnce(&mut SyncerConfig)) -> SyncedCluster {
        Self::start_with_simulator(NodeSimulator::default(), configure).await
    }

    /// Like [`SyncedCluster::start_with`], with the host's node simulator
    /// configured by the test (e.g. loopback pod IPs, so a port-forward
    /// reaches a listener of the test).
    pub async fn start_with_simulator(
        simulator: NodeSimulator,
        configure: impl FnOnce(&mut SyncerConfig),
    ) -> SyncedCluster {
        Self::start_with_host(simulator, |_| {}, configure).await
    }

    /// Like [`SyncedCluster::start_with_simulator`], letting `host_config`
    /// change the host server's configuration (e.g. serve
    /// `metrics.k8s.io` with [`crate::metrics::FixedMetrics`]).
    pub async fn start_with_host(
        simulator: NodeSimulator,
        host_config: impl FnOnce(&mut apiserver_shim::ServerConfig),
        configure: impl FnOnce(&mut SyncerConfig),
    ) -> SyncedCluster {
        Self::start_inner(simulator, host_config, configure, true).await
    }

    /// Like [`SyncedCluster::start`], but the virtual API server runs no
    /// PodSecurity admission, so pods that break the level reach the store
    /// (as pods written while the level was laxer do) and the syncer's own
    /// refusal is what the tenant sees.
    pub async fn start_without_admission() -> SyncedCluster {
        Self::start_inner(NodeSimulator::default(), |_| {}, |_| {}, false).await
    }

    async fn start_inner(
        simulator: NodeSimulator,
        host_config: impl FnOnce(&mut apiserver_shim::ServerConfig),
        configure: impl FnOnce(&mut SyncerConfig),
        admission: bool,
    ) -> SyncedCluster {
        let host = TestCluster::start_configured_with_controllers(simulator, host_config).await;
        let mut config = Self::default_config();
        config.kubernetes_service = Some(("10.96.0.1".into(), 443));
        configure(&mut config);
        // As `vkube up` and `vkube server` run it: Services are stored with
        // the addresses of their host copies.
        let services = HostServices::new(host.client().await, &config);
        let pods = Arc::new(HostPods::new(host.client().await, &config));
        let metrics = HostMetrics::new(host.client().await, &config);
        let level = config.pod_security;
        let mut virt = TestCluster::start_configured(|c| {
            c.api.service_host = Some(Arc::new(services));
            c.api.pod_connector = Some(pods.clone());
            c.api.evictor = Some(pods);
            c.api.metrics = Some(Arc::new(metrics));
            if admission {
                c.api.pod_security = Some(Arc::new(Enforce(level)));
            }
        })
        .await;
        virt.run_controllers("*");
        let mut c = SyncedCluster {
            host,
            virt,
            config,
            syncer: None,
        };
        c.start_syncer().await;
        c
    }

    /// The tests' default: tenant [`TENANT`] into [`HOST_NAMESPACE`], a
    /// short resync period (10 s) so periodic comparison is exercised.
    pub fn default_config() -> SyncerConfig {
        let mut config = SyncerConfig::new(Tenant::new(TENANT, HOST_NAMESPACE).expect("valid"));
        config.resync_period = Duration::from_secs(10);
        config
    }

    /// The tenant of [`SyncedCluster::config`].
    pub fn tenant(&self) -> &Tenant {
        &self.config.tenant
    }

    /// The host name of virtual object (`namespace`, `name`).
    pub fn host_name(&self, namespace: &str, name: &str) -> String {
        vkube_syncer::names::host_name(self.tenant(), namespace, name)
    }

    /// Starts the syncer (no-op if running).
    pub async fn start_syncer(&mut self) {
        if self.syncer.is_some() {
            return;
        }
        // The syncer acts on the virtual API as its own user, as `vkube
        // server` runs it, so its role is what these tests exercise.
        let syncer = Syncer::new(
            self.virt
                .client_as(apiserver_shim::bootstrap_policy::SYNCER_USER, &[])
                .await,
            self.host.client().await,
            self.config.clone(),
        );
        let metrics = syncer.metrics();
        let task = tokio::spawn(syncer.run());
        self.syncer = Some((task, metrics));
    }

    /// Stops the syncer (aborts its task); panics if it had failed.
    pub async fn stop_syncer(&mut self) {
        if let Some((task, _)) = self.syncer.take() {
            if task.is_finished() {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => panic!("the syncer failed: {e:#}"),
                    Err(e) => panic!("the syncer panicked: {e}"),
                }
                return;
            }
            task.abort();
            let _ = task.await;
        }
    }

    /// Metrics of the running syncer.
    pub fn metrics(&self) -> Option<Arc<Metrics>> {
        self.syncer.as_ref().map(|(_, m)| Arc::clone(m))
    }

    /// `kubectl ARGS -n HOST_NAMESPACE` against the host.
    pub async fn host_kubectl(&self, args: &[&str]) -> crate::Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-n", HOST_NAMESPACE]);
        self.host.kubectl(&all).await
    }

    /// Host object `kind/name` in the host namespace as JSON, or the error.
    pub async fn host_get(&self, kind: &str, name: &str) -> Result<serde_json::Value, String> {
        self.host
            .get_json(&[kind, name, "-n", HOST_NAMESPACE])
            .await
    }

    /// Virtual object `kind/name` in virtual namespace `default` as JSON, or
    /// the error.
    pub async fn virt_get(&self, kind: &str, name: &str) -> Result<serde_json::Value, String> {
        self.virt.get_json(&[kind, name, "-n", "default"]).await
    }

    /// Waits (up to 60 s) until the virtual pod `default/name` is Running:
    /// its host copy ran and the syncer reflected it.
    pub async fn wait_running(&self, name: &str) {
        eventually(
            "the virtual pod Running",
            Duration::from_secs(60),
            || async {
                let p = self.virt_get("pod", name).await?;
                (p["status"]["phase"] == "Running")
                    .then_some(())
                    .ok_or_else(|| format!("{name}: {}", p["status"]))
            },
        )
        .await;
    }

    /// Waits (up to 60 s) until a virtual Event about object `name` of
    /// namespace `default` has reason `reason` and mentions `needle`.
    pub async fn wait_event(&self, name: &str, reason: &str, needle: &str) {
        let sel = format!("--field-selector=involvedObject.name={name}");
        eventually(
            &format!("a {reason} event about {name}"),
            Duration::from_secs(60),
            || async {
                let out = self.virt.kubectl(&["get", "events", &sel]).await;
                (out.stdout.contains(reason) && out.stdout.contains(needle))
                    .then_some(())
                    .ok_or(out.stdout)
            },
        )
        .await;
    }

    /// Stops the syncer and both clusters.
    pub async fn shutdown(mut self) {
        self.stop_syncer().await;
        self.virt.shutdown().await;
        self.host.shutdown().await;
    }
}

/// Polls `check` every 100 ms until it returns `Some` or `timeout` passes;
/// panics with `what` and the last error otherwise.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if start.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
