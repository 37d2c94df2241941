//! `vkube syncer`: runs only the syncer ([`vkube_syncer::Syncer`]) between
//! a virtual API server and a host cluster, each given by a kubeconfig
//! (the host one optional: in-cluster config, else `~/.kube/config`), and
//! optionally serves the syncer's Prometheus metrics on `/metrics` over
//! HTTPS, to the users the virtual API server authenticates and authorizes
//! ([`apiserver_shim::delegated`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use apiserver_shim::delegated::Delegated;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use vkube_syncer::names::Tenant;
use vkube_syncer::{Metrics, Syncer, SyncerConfig};

use vkube_syncer::security::PodSecurityLevel;

use crate::embedded;

/// `vkube syncer` flags.
#[derive(clap::Args, Debug)]
pub struct SyncerArgs {
    /// Kubeconfig of the virtual API server (its current context is used).
    #[arg(long, value_name = "FILE")]
    pub virtual_kubeconfig: PathBuf,
    /// Kubeconfig of the host cluster; default: the in-cluster config, else
    /// $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub host_kubeconfig: Option<PathBuf>,
    /// Host namespace every tenant object is synced into (created if missing).
    #[arg(long, value_name = "NS")]
    pub host_namespace: String,
    /// The virtual cluster's name (the `vkube.dev/managed-by` label value).
    #[arg(long, value_name = "VC")]
    pub name: String,
    /// Sync every ConfigMap (default: only those synced pods reference).
    #[arg(long)]
    pub sync_all_configmaps: bool,
    /// Sync every Secret (default: only those synced pods reference).
    #[arg(long)]
    pub sync_all_secrets: bool,
    /// Pod Security Standards level enforced on synced pods: privileged,
    /// baseline or restricted.
    #[arg(long, default_value = "baseline", value_name = "LEVEL")]
    pub pod_security: PodSecurityLevel,
    /// Host ServiceAccount the tenant's pods run as (must exist); default
    /// `vkube-workload-VC`, created if missing.
    #[arg(long, value_name = "NAME")]
    pub host_service_account: Option<String>,
    /// Which host nodes the tenant sees as Nodes: auto (all when the host
    /// lets this process list nodes, else used), used (those running its
    /// pods), all, or a label selector such as `pool=tenants`.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub sync_nodes: vkube_syncer::node::NodeVisibility,
    /// Host object in the host namespace every synced object is owned by
    /// (statefulset, deployment, service or configmap), e.g.
    /// `statefulset/vkube-dev`: deleting it lets the host's garbage
    /// collector remove everything.
    #[arg(long, value_name = "KIND/NAME")]
    pub host_owner: Option<String>,
    /// Serve Prometheus metrics on https://ADDR/metrics (port 0 picks one;
    /// the address is logged) to bearer tokens the virtual API server
    /// authenticates (TokenReview) of users its RBAC lets `get` the
    /// non-resource URL /metrics (SubjectAccessReview; group
    /// system:monitoring may). /healthz, /livez and /readyz need no token.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Certificate (PEM, leaf first) the metrics port serves; default: a
    /// self-signed one made at start-up for localhost and ADDR.
    #[arg(long, value_name = "FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub kinds: SyncKindArgs,
}

/// Options of the optional synced kinds, shared by `vkube syncer` and
/// `vkube server`.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncKindArgs {
    /// Sync the tenant's PriorityClasses to the host (cluster-scoped
    /// writes; renamed vkube-NAME-x-HOSTNS-x-VC, never the host's default); host
    /// pods then name their class's host copy. Off: host pods name no class.
    #[arg(long)]
    pub sync_priority_classes: bool,
    /// The highest value a synced PriorityClass gets on the host (higher
    /// values are lowered to it), so a tenant cannot outrank or preempt the
    /// host's and other tenants' pods.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "VALUE",
        allow_negative_numbers = true
    )]
    pub priority_class_max_value: i32,
    /// Deliver pods' service-account tokens through one host Secret per pod
    /// (default: in the host pod's annotations, mounted by a downwardAPI
    /// volume, one host write less per pod).
    #[arg(long)]
    pub token_secrets: bool,
    /// Ingress annotation keys never copied to the host (`*` matches any
    /// run of characters; repeatable). Replaces the default list, the
    /// ingress-nginx snippet and Secret/ConfigMap-naming annotations.
    #[arg(long = "ingress-deny-annotation", value_name = "PATTERN")]
    pub ingress_deny_annotations: Option<Vec<String>>,
    /// Sync the tenant's StorageClasses to the host (cluster-scoped writes;
    /// renamed vkube-NAME-x-HOSTNS-x-VC, never the host's default, no
    /// Secret parameters); claims then name those. Default: the host's
    /// classes are shown read-only in the tenant and claims name them.
    #[arg(long)]
    pub sync_storage_classes_to_host: bool,
    /// A provisioner the tenant's StorageClasses synced to the host may
    /// name (repeatable; none by default, which refuses every class). List
    /// only provisioners whose parameters cannot reach another tenant's
    /// storage.
    #[arg(long = "storage-class-provisioner", value_name = "PROVISIONER")]
    pub storage_class_provisioners: Vec<String>,
    /// Sync the PersistentVolumes the tenant creates to the host
    /// (cluster-scoped writes; renamed vkube-NAME-x-HOSTNS-x-VC, pre-bound to
    /// the tenant's claim, reclaim policy Retain).
    #[arg(long)]
    pub sync_persistent_volumes: bool,
    /// A volume source synced PersistentVolumes may use: a source field
    /// (nfs, csi, iscsi, ...), csi:DRIVER, nfs:SERVER or nfs:SERVER:/PATH
    /// (repeatable; none by default). hostPath, local, cephfs, rbd and
    /// flexVolume never are.
    #[arg(long = "persistent-volume-source", value_name = "SOURCE")]
    pub persistent_volume_sources: Option<Vec<String>>,
}

impl SyncKindArgs {
    /// Applies these options to `config`. Errors: a persistent volume
    /// source that is not one or is never allowed.
    pub fn apply(&self, config: &mut SyncerConfig) -> Result<()> {
        config.priority_classes = self.sync_priority_classes.then_some(
            vkube_syncer::priorityclass::PriorityClassOptions {
                max_value: self.priority_class_max_value,
            },
        );
        config.token_secrets = self.token_secrets;
        if let Some(deny) = &self.ingress_deny_annotations {
            config.ingress.denied_annotations = deny.clone();
        }
        config.storage_classes_to_host = self.sync_storage_classes_to_host;
        config
            .storage_class_provisioners
            .clone_from(&self.storage_class_provisioners);
        config.persistent_volumes = if self.sync_persistent_volumes {
            let mut opts = vkube_syncer::persistentvolume::PersistentVolumeOptions::default();
            if let Some(sources) = &self.persistent_volume_sources {
                opts.sources.clone_from(sources);
            }
            opts.validate()
                .map_err(|e| anyhow::anyhow!("--persistent-volume-source {e}"))?;
            Some(opts)
        } else {
            None
        };
        Ok(())
    }
}

impl SyncerArgs {
    /// The engine configuration these flags ask for (pure). Errors: an
    /// invalid virtual cluster or namespace name.
    pub fn config(&self) -> Result<SyncerConfig> {
        let tenant = Tenant::new(&self.name, &self.host_namespace)
            .map_err(|e| anyhow::anyhow!("--name/--host-namespace: {e}"))?;
        let mut config = SyncerConfig::new(tenant);
        config.sync_all_configmaps = self.sync_all_configmaps;
        config.sync_all_secrets = self.sync_all_secrets;
        config.host_service_account = self.host_service_account.clone();
        config.pod_security = self.pod_security;
        config.nodes = self.sync_nodes.clone();
        self.kinds.apply(&mut config)?;
        Ok(config)
    }
}

/// The metrics port's router: `GET /metrics` answers [`Metrics::render`]
/// with content type `text/plain; version=0.0.4; charset=utf-8`
/// (Prometheus text format) to the callers `delegated` lets through;
/// `/healthz`, `/livez` and `/readyz` answer `ok` to anyone (the process
/// ends when the syncer stops).
pub fn metrics_router(metrics: Arc<Metrics>, delegated: Arc<Delegated>) -> Router {
    let ok = || get(|| async { "ok" });
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    (
                        [(header::CONTENT_TYPE, vkube_core::monitoring::CONTENT_TYPE)],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
        .route("/healthz", ok())
        .route("/livez", ok())
        .route("/readyz", ok())
        .layer(axum::middleware::from_fn_with_state(
            delegated,
            apiserver_shim::delegated::filter,
        ))
}

/// The metrics port's certificate and key (PEM): `--tls-cert-file` and
/// `--tls-private-key-file`, else a self-signed certificate for localhost,
/// the loopback addresses and `listen`'s address when it names one.
///
/// # Errors
/// Unreadable certificate or key files.
fn metrics_certificate(args: &SyncerArgs, listen: SocketAddr) -> Result<(String, String)> {
    if let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_private_key_file) {
        let read = |f: &PathBuf| {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))
        };
        return Ok((read(cert)?, read(key)?));
    }
    let mut sans: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        sans.push(listen.ip().to_string());
    }
    apiserver_shim::pki::self_signed("vkube-syncer", &sans)
}

/// Runs `vkube syncer` until the syncer fails or SIGINT/SIGTERM.
///
/// # Errors
/// Unreadable kubeconfigs, an unresolvable `--host-owner`, the metrics
/// address in use, or the syncer stopping with an error.
pub async fn run(args: SyncerArgs) -> Result<()> {
    let signal = embedded::listen_for_signal();
    let mut config = args.config()?;
    let virtual_client = embedded::client_from_file(&args.virtual_kubeconfig).await?;
    let host_client = match &args.host_kubeconfig {
        Some(f) => embedded::client_from_file(f).await?,
        None => vkube_controllers::client_from_config(
            kube::Config::infer()
                .await
                .context("no in-cluster or default host config; pass --host-kubeconfig")?,
        )?,
    };
    if let Some(spec) = &args.host_owner {
        // The owner lives in the host namespace, which must then exist.
        config.owner =
            Some(vkube_syncer::resolve_owner(&host_client, &args.host_namespace, spec).await?);
    }
    // The metrics port asks the virtual API server whom a token is and
    // what its RBAC lets them do, as kube's components ask theirs.
    let delegated = Arc::new(Delegated::new(virtual_client.clone()));
    let syncer = Syncer::new(virtual_client, host_client, config);
    let metrics = syncer.metrics();
    metrics
        .registry()
        .lock()
        .register_collector(Box::new(apiserver_shim::metrics::ProcessCollector));
    let serve_metrics = async {
        let Some(addr) = args.metrics_listen else {
            return std::future::pending().await;
        };
        let (cert, key) = metrics_certificate(&args, addr)?;
        let tls = apiserver_shim::pki::serving_config(&cert, &key)
            .context("the metrics port's certificate and key")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-listen {addr}"))?;
        crate::logging::announce(&format!(
            "vkube syncer metrics on https://{}/metrics",
            listener.local_addr()?
        ));
        // Served until the process ends: the sender is kept, never sent.
        let (_running, shutdown) = tokio::sync::watch::channel(false);
        apiserver_shim::server::accept_loop(
            listener,
            tls,
            metrics_router(metrics, delegated),
            shutdown,
        )
        .await;
        Ok(())
    };
    crate::logging::announce(&format!(
        "vkube syncer: virtual cluster {} into host namespace {}",
        args.name, args.host_namespace
    ));
    tokio::select! {
        r = syncer.run() => r,
        r = serve_metrics => r,
        r = signal => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SyncerArgs,
    }

    fn parse(extra: &[&str]) -> SyncerArgs {
        parse_named("dev", extra)
    }

    fn parse_named(name: &str, extra: &[&str]) -> SyncerArgs {
        let mut argv = vec![
            "vkube-syncer",
            "--virtual-kubeconfig",
            "v.yaml",
            "--host-namespace",
            "vkube-dev",
            "--name",
            name,
        ];
        argv.extend(extra);
        Cli::try_parse_from(argv).expect("parses").args
    }

    #[test]
    fn flags_become_the_engine_configuration() {
        let c = parse(&[]).config().unwrap();
        assert_eq!(c.tenant.name(), "dev");
        assert_eq!(c.tenant.host_namespace(), "vkube-dev");
        assert!(!c.sync_all_configmaps && !c.sync_all_secrets);
        assert_eq!(c.pod_security, PodSecurityLevel::Baseline);
        assert!(!c.translate_options().allow_privileged);
        let c = parse(&[
            "--sync-all-configmaps",
            "--sync-all-secrets",
            "--pod-security",
            "privileged",
            "--host-service-account",
            "runner",
        ])
        .config()
        .unwrap();
        assert!(c.sync_all_configmaps && c.sync_all_secrets);
        assert_eq!(c.pod_security, PodSecurityLevel::Privileged);
        assert!(c.translate_options().allow_privileged && c.translate_options().allow_host_path);
        assert_eq!(c.host_service_account_name(), "runner");
        assert!(parse_named("Not_Valid", &[]).config().is_err());
    }
}
