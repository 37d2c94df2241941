//! A whole virtual cluster in this process, and a local stand-in for a host
//! cluster: what `vkube up` and `vkube server` are built from.
//!
//! - [`VirtualCluster`]: the virtual API server ([`apiserver_shim::Server`]),
//!   the built-in controllers (kube-controller-manager's `--controllers`
//!   selection; never the node simulator: the tenant's pods run on the host)
//!   and the syncer against a given host [`kube::Client`].
//! - [`LocalHost`]: our own API server on loopback with every default
//!   controller and a [`NodeSimulator`] playing the host's scheduler and
//!   kubelets (as kwok does), so `vkube up` needs no real cluster.

use anyhow::{Context, Result};
use apiserver_shim::{Server, ServerConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vkube_controllers::simulator::NodeSimulator;
use vkube_syncer::controller::connect::HostPods;
use vkube_syncer::controller::resource_metrics::HostMetrics;
use vkube_syncer::controller::service::HostServices;
use vkube_syncer::{Syncer, SyncerConfig};

/// Runs the syncer from the virtual cluster into the host namespace until
/// it fails or the task is aborted. The only call site of the syncer engine
/// ([`vkube_syncer::Syncer`]).
///
/// # Errors
/// Whatever the engine returns when it stops (it normally runs forever).
pub async fn run_syncer(
    virtual_client: kube::Client,
    host_client: kube::Client,
    config: SyncerConfig,
    metrics: Arc<vkube_syncer::Metrics>,
) -> Result<()> {
    Syncer::with_metrics(virtual_client, host_client, config, metrics)
        .run()
        .await
}

/// How the virtual cluster's API server and controllers are started.
#[derive(Debug, Clone)]
pub struct VirtualClusterOptions {
    /// Data directory (store, PKI, `admin.kubeconfig`).
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Extra serving-certificate SANs.
    pub tls_sans: Vec<String>,
    /// Service ClusterIP range.
    pub service_cidr: vkube_core::service::ServiceCidr,
    /// kube-controller-manager `--controllers` syntax (e.g. `*`).
    pub controllers: String,
    /// Name of the cluster/context in the admin kubeconfig.
    pub context_name: String,
    /// The ClusterIP `default/kubernetes` shows (the server's own host
    /// Service address); `None`: the service CIDR's first address.
    pub kubernetes_service_ip: Option<std::net::IpAddr>,
    /// The tenant DNS server, if one runs in this process.
    pub dns: Option<DnsOptions>,
    /// Requests the server serves at once, fairly between users.
    pub limits: apiserver_shim::filters::limits::LimitsConfig,
    /// The audit policy and log, if any.
    pub audit: Option<apiserver_shim::filters::audit::AuditConfig>,
    /// OIDC issuers whose tokens authenticate users, if any.
    pub authentication:
        Option<apiserver_shim::filters::authentication::config::AuthenticationConfiguration>,
    /// Whether requests without credentials are `system:anonymous`.
    pub anonymous_auth: bool,
    /// OIDC issuers' keys as JWKS files, by issuer URL.
    pub authentication_key_files: std::collections::BTreeMap<String, PathBuf>,
    /// Bearer tokens accepted besides the admin's, with their identities
    /// (e.g. the metrics scraper's; see [`metrics_scraper`]).
    pub static_tokens: std::collections::HashMap<String, apiserver_shim::pki::Identity>,
}

/// The identity a metrics-scraping token carries: the user
/// `system:vkube-metrics` in group `system:monitoring`, which the
/// bootstrap policy lets read `/metrics` and the health endpoints (as
/// kube-apiserver's `system:monitoring` binding), and nothing else.
pub fn metrics_scraper() -> apiserver_shim::pki::Identity {
    apiserver_shim::pki::Identity {
        user: "system:vkube-metrics".into(),
        groups: vec!["system:monitoring".into()],
        ..Default::default()
    }
}

/// Where the tenant DNS server listens and which domain it answers.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// UDP and TCP address (port 0: any free port).
    pub listen: SocketAddr,
    /// The cluster domain, e.g. `cluster.local`.
    pub cluster_domain: String,
}

/// A running virtual cluster: API server, controllers, syncer.
pub struct VirtualCluster {
    /// The virtual API server.
    pub server: Server,
    /// Names of the running controllers.
    pub controller_names: Vec<&'static str>,
    controllers: Option<vkube_controllers::Running>,
    syncer: tokio::task::JoinHandle<()>,
    /// The tenant DNS server (answers from the virtual API's Services).
    pub dns: Option<vkube_dns::DnsServer>,
    dns_watch: Option<tokio::task::JoinHandle<()>>,
}

impl VirtualCluster {
    /// Starts the server, the selected controllers and the syncer (into
    /// `sync.tenant`'s host namespace through `host`).
    ///
    /// # Errors
    /// A bad controller selection, a data directory in use, a busy address.
    pub async fn start(
        opts: &VirtualClusterOptions,
        host: kube::Client,
        sync: SyncerConfig,
    ) -> Result<Self> {
        let selected = vkube_controllers::select(&opts.controllers)
            .map_err(|e| anyhow::anyhow!("--controllers: {e}"))?;
        let mut config = ServerConfig::new(&opts.data_dir);
        config.listen = opts.listen;
        config.tls_sans = opts.tls_sans.clone();
        config.api.allocation.service_cidr = opts.service_cidr;
        config.context_name = opts.context_name.clone();
        config.limits = opts.limits.clone();
        config.audit = opts.audit.clone();
        config.authentication = opts.authentication.clone();
        config.anonymous_auth = opts.anonymous_auth;
        config.authentication_key_files = opts.authentication_key_files.clone();
        config.static_tokens = opts.static_tokens.clone();
        config.api.kubernetes_service_ip = opts.kubernetes_service_ip;
        // Services are stored with the addresses their host copies hold.
        config.api.service_host = Some(Arc::new(HostServices::new(host.clone(), &sync)));
        // Admission webhooks never reach the server pod's own ports.
        config.api.webhook_loopback = false;
        // Pod logs, exec, attach and port-forward reach the host copies
        // through the host API server, which plays the kubelet.
        // Evictions are the host's to decide, under the tenant's synced
        // budgets and the host's own.
        let pods = Arc::new(HostPods::new(host.clone(), &sync));
        config.api.pod_connector = Some(pods.clone());
        config.api.evictor = Some(pods);
        // `kubectl top` reads the host's metrics.k8s.io, when it has one.
        config.api.metrics = Some(Arc::new(HostMetrics::new(host.clone(), &sync)));
        // Pods that break the enforced Pod Security level are refused when
        // written (pod-security admission), not only when synced.
        config.api.pod_security =
            Some(Arc::new(vkube_syncer::security::Enforce(sync.pod_security)));
        let server = Server::start(config)
            .await
            .context("starting the virtual API server")?;
        let (controllers, controller_names) = if selected.is_empty() {
            (None, Vec::new())
        } else {
            let running = spawn_controllers(&server, &selected);
            let names = running.names.clone();
            server
                .api
                .health_checks
                .add("controllers", Arc::new(running.health_check()));
            (Some(running), names)
        };
        // The syncer and the DNS server act with their own identities, bound
        // by the bootstrap policy to what they need (system:vkube-syncer,
        // and kubeadm's system:coredns for the coredns service account).
        let virtual_client = server.client_for(apiserver_shim::bootstrap_policy::SYNCER_USER, &[]);
        let dns_client = server.client_for(
            apiserver_shim::bootstrap_policy::DNS_USER,
            &vkube_controllers::SERVICE_ACCOUNT_GROUPS,
        );
        let (dns, dns_watch) = match &opts.dns {
            Some(d) => {
                let view = Arc::new(std::sync::RwLock::new(vkube_dns::DnsView::new(
                    &d.cluster_domain,
                )));
                let upstream = vkube_dns::system_resolver()
                    .context("reading /etc/resolv.conf for the DNS server's upstream")?;
                let server = vkube_dns::serve(d.listen, view.clone(), upstream)
                    .await
                    .with_context(|| format!("starting the DNS server on {}", d.listen))?;
                let client = dns_client;
                let watch = tokio::spawn(async move {
                    if let Err(e) = vkube_dns::watch::run(client, view).await {
                        tracing::error!(error = %format!("{e:#}"), "DNS watches stopped");
                    }
                });
                tracing::info!(addr = %server.addr, domain = %d.cluster_domain, "tenant DNS serving");
                (Some(server), Some(watch))
            }
            None => (None, None),
        };
        // The syncer's series are served by the virtual API server's
        // `/metrics`, beside the server's and the controllers'.
        let metrics = Arc::new(vkube_syncer::Metrics::register(
            server.api.metrics.registry(),
            server.api.metrics.workqueue.clone(),
        ));
        // The syncer runs until the process ends: once it has stopped the
        // server is not ready (`/readyz` check `syncer`).
        let syncer_stopped = Arc::new(std::sync::OnceLock::<String>::new());
        let stopped = syncer_stopped.clone();
        server.api.health_checks.add(
            "syncer",
            Arc::new(move || match syncer_stopped.get() {
                None => Ok(()),
                Some(why) => Err(format!("the syncer stopped: {why}")),
            }),
        );
        let syncer = tokio::spawn(async move {
            // Set when the task ends however it ends (a panic included);
            // an error says why first.
            struct Stop(Arc<std::sync::OnceLock<String>>);
            impl Drop for Stop {
                fn drop(&mut self) {
                    let _ = self.0.set("its task ended".into());
                }
            }
            let stop = Stop(stopped);
            let why = match run_syncer(virtual_client, host, sync, metrics).await {
                Ok(()) => "it returned".to_string(),
                Err(e) => format!("{e:#}"),
            };
            tracing::error!(error = %why, "syncer stopped");
            let _ = stop.0.set(why);
        });
        Ok(Self {
            server,
            controller_names,
            controllers,
            syncer,
            dns,
            dns_watch,
        })
    }

    /// Stops the syncer and controllers, then the server (its store is
    /// flushed when the server is dropped).
    pub async fn shutdown(self) {
        self.syncer.abort();
        let _ = self.syncer.await;
        if let Some(w) = self.dns_watch {
            w.abort();
            let _ = w.await;
        }
        drop(self.dns);
        if let Some(c) = self.controllers {
            c.shutdown().await;
        }
        self.server.shutdown().await;
    }
}

/// A local stand-in for a host cluster on loopback: our API server, every
/// default controller and a simulated node.
pub struct LocalHost {
    /// The host API server.
    pub server: Server,
    controllers: vkube_controllers::Running,
    node: tokio::task::JoinHandle<vkube_controllers::Result<()>>,
}

impl LocalHost {
    /// Starts the host API server in `data_dir` on `listen`, its controllers
    /// and a [`NodeSimulator`] with default settings.
    ///
    /// # Errors
    /// A data directory in use, a busy address.
    pub async fn start(data_dir: &Path, listen: SocketAddr) -> Result<Self> {
        let mut config = ServerConfig::new(data_dir);
        // The local host's stand-in for kubelet port-forwarding.
        config.api.pod_connector = Some(std::sync::Arc::new(
            apiserver_shim::local_node::LocalNode::default(),
        ));
        config.listen = listen;
        config.context_name = "vkube-host".into();
        let server = Server::start(config)
            .await
            .context("starting the local host API server")?;
        let selected = vkube_controllers::select("*").map_err(|e| anyhow::anyhow!(e))?;
        let controllers = spawn_controllers(&server, &selected);
        // The simulator stands in for a kubelet, which kube-apiserver
        // authorizes with its Node authorizer (vkube has none).
        let node_kubeconfig =
            server.kubeconfig_for("system:node-simulator", &["system:masters"])?;
        let node_client = vkube_controllers::client_from_kubeconfig(&node_kubeconfig).await?;
        let node = NodeSimulator::default().spawn(node_client);
        Ok(Self {
            server,
            controllers,
            node,
        })
    }

    /// An admin client for the host.
    ///
    /// # Errors
    /// When the admin kubeconfig cannot be turned into a client.
    pub async fn client(&self) -> Result<kube::Client> {
        Ok(vkube_controllers::client_from_kubeconfig(&self.server.kubeconfig).await?)
    }

    /// Stops the node, the controllers and the server.
    pub async fn shutdown(self) {
        self.node.abort();
        let _ = self.node.await;
        self.controllers.shutdown().await;
        self.server.shutdown().await;
    }
}

/// Starts listening for SIGINT (Ctrl-C) and SIGTERM right away, so a signal
/// that arrives during startup is neither fatal nor lost; the returned
/// future resolves once one has arrived.
///
/// # Errors
/// The future fails when the signal handlers cannot be installed.
pub fn listen_for_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>
{
    let task = tokio::spawn(apiserver_shim::server::wait_for_signal());
    Box::pin(async move { task.await.context("signal listener")? })
}

/// Starts `selected` controllers of `server`, each as its own
/// `kube-system` service account with an in-process client of the server
/// (as kube-controller-manager runs with
/// `--use-service-account-credentials`), with the server's CA as root CA
/// and signer.
pub fn spawn_controllers(
    server: &Server,
    selected: &[&'static vkube_controllers::ControllerDef],
) -> vkube_controllers::Running {
    let mut options =
        vkube_controllers::Options::for_cluster_ca(&server.pki.ca_cert, server.pki.ca_key_pem());
    // Each controller's work queue series, on the server's `/metrics`.
    options.workqueue = Some(server.api.metrics.workqueue.clone());
    vkube_controllers::spawn_as_service_accounts(
        |user, groups| server.client_for(user, groups),
        selected,
        options,
    )
}

/// A client from a kubeconfig file (its current context).
///
/// # Errors
/// An unreadable or invalid kubeconfig.
pub async fn client_from_file(path: &Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("using kubeconfig {}", path.display()))?;
    Ok(vkube_controllers::client_from_config(config)?)
}

/// Creates namespace `name` on `client` unless it exists.
///
/// # Errors
/// Any failure other than 409 AlreadyExists (e.g. 403).
pub async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}
