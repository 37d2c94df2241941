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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use vkube_controllers::simulator::NodeSimulator;

/// Pod Security Standards level enforced on the tenant's pods when they are
/// synced (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PodSecurity {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations (the default).
    Baseline,
    /// Current pod hardening best practices.
    Restricted,
}

/// What the syncer does; mirrors `vkube_syncer::engine::SyncerConfig`.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The virtual cluster's name (the `vkube.dev/managed-by` label value).
    pub name: String,
    /// Host namespace every tenant object is synced into.
    pub host_namespace: String,
    /// Sync every ConfigMap, not only those referenced by synced pods.
    pub sync_all_configmaps: bool,
    /// Sync every Secret, not only those referenced by synced pods.
    pub sync_all_secrets: bool,
    /// Pod Security Standards level for synced pods.
    pub pod_security: PodSecurity,
    /// Host ServiceAccount the tenant's pods run as (`None`: the namespace's
    /// `default`).
    pub host_service_account: Option<String>,
    /// Owner put on every synced host object (e.g. the tenant's StatefulSet),
    /// as resolved by [`resolve_owner`].
    pub owner: Option<OwnerReference>,
    /// `(host, port)` the virtual `default/kubernetes` Service stands for on
    /// the host (`None`: the engine's default).
    pub kubernetes_service: Option<(String, u16)>,
}

/// Runs the syncer from the virtual cluster into the host namespace until
/// aborted. The ONLY call site of the syncer engine.
///
/// # Errors
/// Whatever the engine returns when it stops (it normally runs forever).
pub async fn run_syncer(
    virtual_client: kube::Client,
    host_client: kube::Client,
    opts: &SyncOptions,
) -> Result<()> {
    // SYNCER: becomes
    //   Syncer::new(virtual_client, host_client, SyncerConfig {
    //       tenant: Tenant::new(&opts.name, &opts.host_namespace), ...opts
    //   }).run().await
    // once branch `syncer-engine` is merged.
    let _ = (virtual_client, host_client);
    let SyncOptions {
        name,
        host_namespace,
        sync_all_configmaps,
        sync_all_secrets,
        pod_security,
        host_service_account,
        owner,
        kubernetes_service,
    } = opts;
    tracing::warn!(
        virtual_cluster = %name,
        %host_namespace,
        sync_all_configmaps,
        sync_all_secrets,
        ?pod_security,
        ?host_service_account,
        owner = ?owner.as_ref().map(|o| format!("{}/{}", o.kind, o.name)),
        ?kubernetes_service,
        "syncer not built in yet: tenant pods stay Pending"
    );
    std::future::pending().await
}

/// Resolves `KIND/NAME` (e.g. `statefulset/vkube-dev`, case-insensitive
/// kind: statefulset, deployment, pod, replicaset, daemonset) in `namespace`
/// to a controller [`OwnerReference`] by a GET of that object, as
/// `vkube_syncer::engine::resolve_owner` will.
///
/// # Errors
/// An unknown kind, a malformed value, or a failed GET (e.g. 404).
pub async fn resolve_owner(
    host: &kube::Client,
    namespace: &str,
    kind_name: &str,
) -> Result<OwnerReference> {
    let (resource, name) = owner_resource(kind_name)?;
    let api: Api<DynamicObject> = Api::namespaced_with(host.clone(), namespace, &resource);
    let obj = api
        .get(name)
        .await
        .with_context(|| format!("reading the owner {kind_name} in namespace {namespace}"))?;
    Ok(OwnerReference {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        name: name.to_string(),
        uid: obj.metadata.uid.unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// Splits `KIND/NAME` and maps KIND to its API resource (pure).
fn owner_resource(kind_name: &str) -> Result<(ApiResource, &str)> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
    let (kind, name) = kind_name
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
        .with_context(|| format!("owner {kind_name:?}: expected KIND/NAME"))?;
    let resource = match kind.to_ascii_lowercase().as_str() {
        "statefulset" | "statefulsets" | "sts" => ApiResource::erase::<apps::StatefulSet>(&()),
        "deployment" | "deployments" | "deploy" => ApiResource::erase::<apps::Deployment>(&()),
        "replicaset" | "replicasets" | "rs" => ApiResource::erase::<apps::ReplicaSet>(&()),
        "daemonset" | "daemonsets" | "ds" => ApiResource::erase::<apps::DaemonSet>(&()),
        "pod" | "pods" | "po" => ApiResource::erase::<core::Pod>(&()),
        other => anyhow::bail!(
            "owner kind {other:?} is not supported (statefulset, deployment, replicaset, daemonset, pod)"
        ),
    };
    Ok((resource, name))
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
}

/// A running virtual cluster: API server, controllers, syncer.
pub struct VirtualCluster {
    /// The virtual API server.
    pub server: Server,
    /// Names of the running controllers.
    pub controller_names: Vec<&'static str>,
    controllers: Option<vkube_controllers::Running>,
    syncer: tokio::task::JoinHandle<()>,
}

impl VirtualCluster {
    /// Starts the server, the selected controllers and the syncer (into
    /// `sync.host_namespace` through `host`).
    ///
    /// # Errors
    /// A bad controller selection, a data directory in use, a busy address.
    pub async fn start(
        opts: &VirtualClusterOptions,
        host: kube::Client,
        sync: SyncOptions,
    ) -> Result<Self> {
        let selected = vkube_controllers::select(&opts.controllers)
            .map_err(|e| anyhow::anyhow!("--controllers: {e}"))?;
        let mut config = ServerConfig::new(&opts.data_dir);
        config.listen = opts.listen;
        config.tls_sans = opts.tls_sans.clone();
        config.api.allocation.service_cidr = opts.service_cidr;
        config.context_name = opts.context_name.clone();
        let server = Server::start(config)
            .await
            .context("starting the virtual API server")?;
        let (controllers, controller_names) = if selected.is_empty() {
            (None, Vec::new())
        } else {
            let client = controller_client(&server).await?;
            let options = vkube_controllers::Options {
                root_ca_pem: Some(server.pki.ca_cert.clone()),
            };
            let running = vkube_controllers::spawn_with(client, &selected, options);
            let names = running.names.clone();
            (Some(running), names)
        };
        let virtual_client = vkube_controllers::client_from_kubeconfig(&server.kubeconfig)
            .await
            .context("a client for the virtual API server")?;
        let syncer = tokio::spawn(async move {
            if let Err(e) = run_syncer(virtual_client, host, &sync).await {
                tracing::error!(error = %format!("{e:#}"), "syncer stopped");
            }
        });
        Ok(Self {
            server,
            controller_names,
            controllers,
            syncer,
        })
    }

    /// Stops the syncer and controllers, then the server (its store is
    /// flushed when the server is dropped).
    pub async fn shutdown(self) {
        self.syncer.abort();
        let _ = self.syncer.await;
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
        config.listen = listen;
        config.context_name = "vkube-host".into();
        let server = Server::start(config)
            .await
            .context("starting the local host API server")?;
        let client = controller_client(&server).await?;
        let selected = vkube_controllers::select("*").map_err(|e| anyhow::anyhow!(e))?;
        let options = vkube_controllers::Options {
            root_ca_pem: Some(server.pki.ca_cert.clone()),
        };
        let controllers = vkube_controllers::spawn_with(client.clone(), &selected, options);
        let node = NodeSimulator::default().spawn(client);
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

/// A client authenticated as `system:kube-controller-manager`, as
/// kube-controller-manager would be.
async fn controller_client(server: &Server) -> Result<kube::Client> {
    let kubeconfig = server.kubeconfig_for("system:kube-controller-manager", &[])?;
    Ok(vkube_controllers::client_from_kubeconfig(&kubeconfig).await?)
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
    Ok(kube::Client::try_from(config)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_resource_maps_kinds_and_rejects_the_rest() {
        let (r, n) = owner_resource("statefulset/vkube-dev").unwrap();
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), n),
            ("apps/v1", "StatefulSet", "vkube-dev")
        );
        let (r, _) = owner_resource("Pod/x").unwrap();
        assert_eq!((r.api_version.as_str(), r.kind.as_str()), ("v1", "Pod"));
        assert!(owner_resource("statefulset").is_err());
        assert!(owner_resource("statefulset/").is_err());
        assert!(owner_resource("secret/x").is_err());
    }
}
