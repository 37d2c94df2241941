//! `vkube`: run and manage virtual Kubernetes clusters.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

mod embedded;
mod logging;
mod memory;
mod server;
mod serving;
mod syncer;
mod tenant;
mod up;

/// Virtual Kubernetes clusters that live inside one namespace of a host cluster.
#[derive(Parser)]
#[command(name = "vkube", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text`, or `json` (one JSON
    /// object per line with `ts`, `level`, `msg` and the event's fields,
    /// as Kubernetes components' `--logging-format=json`).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "VKUBE_LOG_FORMAT"
    )]
    log_format: logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the virtual cluster's Kubernetes-compatible API server.
    ///
    /// On start it writes an admin kubeconfig to DATA_DIR/admin.kubeconfig and
    /// logs the address it listens on; stop it with Ctrl-C or SIGTERM.
    Apiserver(ApiserverArgs),
    /// Start a local host cluster (simulated node) and a virtual cluster
    /// NAME syncing into its namespace `vkube-NAME`, on loopback.
    ///
    /// Kubeconfigs are written to $VKUBE_HOME/NAME/kubeconfig (virtual) and
    /// $VKUBE_HOME/host/kubeconfig (host); a second `vkube up` resumes from
    /// the same data. Stop with Ctrl-C.
    Up(up::UpArgs),
    /// Run a virtual cluster inside a host cluster's pod: API server,
    /// controllers and syncer in one process (what the Helm chart runs).
    Server(Box<server::ServerArgs>),
    /// Run only the syncer: translate a virtual cluster's objects into one
    /// host namespace and reflect their status back (docs/syncer.md).
    ///
    /// Stop with Ctrl-C or SIGTERM; `--metrics-listen` serves Prometheus
    /// metrics on https://ADDR/metrics to users the virtual cluster's RBAC
    /// allows.
    Syncer(syncer::SyncerArgs),
    #[command(flatten)]
    Tenant(tenant::TenantCommand),
    /// Print a shell completion script (e.g. `vkube completion bash > /etc/bash_completion.d/vkube`).
    Completion {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct ApiserverArgs {
    /// Directory for the datastore, certificates and the admin kubeconfig.
    #[arg(long, env = "VKUBE_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443", env = "VKUBE_LISTEN")]
    listen: SocketAddr,
    /// Extra DNS name or IP for the serving certificate (repeatable).
    #[arg(long = "tls-san", value_name = "NAME_OR_IP")]
    tls_sans: Vec<String>,
    /// IPv4 CIDR Service ClusterIPs are allocated from (kube-apiserver's
    /// --service-cluster-ip-range); the `kubernetes` Service gets its first address.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = parse_cidr, env = "VKUBE_SERVICE_CIDR")]
    service_cidr: vkube_core::service::ServiceCidr,
    /// Controllers to run in this process, with kube-controller-manager's
    /// syntax: a comma-separated list where `*` enables every controller on
    /// by default, `foo` enables foo and `-foo` disables it (the known names
    /// are vkube_controllers::CONTROLLERS; an unknown one is an error that
    /// lists them). An empty value runs none, and deleted namespaces then
    /// stay Terminating (no namespace controller).
    #[arg(long, default_value = "*", env = "VKUBE_CONTROLLERS")]
    controllers: String,
    /// Issuer (`iss`) of service account tokens; also the audience they
    /// must name to authenticate here (kube-apiserver's
    /// --service-account-issuer and default --api-audiences).
    #[arg(long, default_value = apiserver_shim::sa_token::DEFAULT_ISSUER, env = "VKUBE_SERVICE_ACCOUNT_ISSUER")]
    service_account_issuer: String,
    /// Longest service account token lifetime, in seconds; longer
    /// TokenRequests are shortened (--service-account-max-token-expiration).
    /// Unset: no cap.
    #[arg(long, value_name = "SECONDS")]
    service_account_max_token_expiration: Option<i64>,
    /// How requests are authorized: `RBAC` (every request decided by the
    /// cluster's Roles and bindings) or `AlwaysAllow` (any authenticated
    /// request; for measurements only), as kube-apiserver's
    /// --authorization-mode.
    #[arg(long, default_value = "RBAC", value_parser = parse_authorization_mode, env = "VKUBE_AUTHORIZATION_MODE")]
    authorization_mode: apiserver_shim::AuthorizationMode,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 60, hide = true)]
    bookmark_interval_seconds: u64,
    #[command(flatten)]
    serving: serving::ServingArgs,
}

fn parse_authorization_mode(s: &str) -> Result<apiserver_shim::AuthorizationMode, String> {
    match s {
        "RBAC" => Ok(apiserver_shim::AuthorizationMode::Rbac),
        "AlwaysAllow" => Ok(apiserver_shim::AuthorizationMode::AlwaysAllow),
        other => Err(format!(
            "unknown authorization mode {other:?}: RBAC or AlwaysAllow"
        )),
    }
}

fn parse_cidr(s: &str) -> Result<vkube_core::service::ServiceCidr, String> {
    vkube_core::service::ServiceCidr::parse(s)
}

async fn apiserver(args: ApiserverArgs) -> Result<()> {
    let controllers = vkube_controllers::select(&args.controllers)
        .map_err(|e| anyhow::anyhow!("--controllers: {e}"))?;
    let mut config = apiserver_shim::ServerConfig::new(&args.data_dir);
    config.listen = args.listen;
    config.tls_sans = args.tls_sans;
    config.api.allocation.service_cidr = args.service_cidr;
    config.api.bookmark_interval = std::time::Duration::from_secs(args.bookmark_interval_seconds);
    config.service_account.issuer = args.service_account_issuer;
    config.service_account.max_expiration_seconds = args.service_account_max_token_expiration;
    config.api.authorization_mode = args.authorization_mode;
    config.limits = args.serving.limits();
    config.audit = args.serving.audit()?;
    config.authentication = args.serving.authentication()?;
    config.anonymous_auth = args.serving.anonymous_auth;
    config.authentication_key_files = args.serving.key_files();
    let server = apiserver_shim::Server::start(config).await?;
    logging::announce(&format!(
        "vkube apiserver listening on {}\n  kubeconfig: {}\n  try: kubectl --kubeconfig {} get namespaces",
        server.url(),
        server.kubeconfig_path.display(),
        server.kubeconfig_path.display()
    ));
    // The controllers talk to the server in-process, each as its own
    // kube-system service account.
    let running = if controllers.is_empty() {
        None
    } else {
        let running = embedded::spawn_controllers(&server, &controllers);
        logging::announce(&format!("  controllers: {}", running.names.join(", ")));
        Some(running)
    };
    let result = apiserver_shim::server::wait_for_signal().await;
    // Controllers first: they hold watches on the server.
    if let Some(r) = running {
        r.shutdown().await;
    }
    server.shutdown().await;
    result
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    logging::init(
        cli.log_format,
        match &cli.command {
            Command::Up(a) => ["warn", "info", "debug"][usize::from(a.verbose.min(2))],
            _ => "info",
        },
    );
    if matches!(
        cli.command,
        Command::Apiserver(_) | Command::Up(_) | Command::Server(_) | Command::Syncer(_)
    ) {
        memory::spawn_trimmer();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Apiserver(args) => apiserver(args).await,
            Command::Up(args) => up::run(args).await,
            Command::Server(args) => server::run(*args).await,
            Command::Syncer(args) => syncer::run(args).await,
            Command::Tenant(cmd) => tenant::run(cmd).await,
            Command::Completion { shell } => {
                tenant::completion(shell, &mut <Cli as clap::CommandFactory>::command());
                Ok(())
            }
        }
    })
}
