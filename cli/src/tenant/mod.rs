//! Host-side commands that manage virtual clusters installed with the Helm
//! chart: `create`, `connect`, `disconnect`, `list`, `delete`, `pause`,
//! `resume` and `completion`. They talk to the host cluster of the user's
//! current kube context (or, when that is a vkube context, the context it
//! was connected from), like kubectl and helm.

pub mod chart;
pub mod endpoint;
pub mod helm;
pub mod kubeconfig;
pub mod list;
pub mod user;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Node, PersistentVolumeClaim, Pod, Secret, Service,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vkube_syncer::names::LABEL_MANAGED_BY;

/// The host-side subcommands (flattened into `vkube`'s).
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Install a virtual cluster into the host cluster with the vkube Helm
    /// chart, wait until its API server answers, then connect to it.
    Create(CreateArgs),
    /// Reach a virtual cluster's API server and add/switch the kube context
    /// `vkube_NAME_NS`, print its kubeconfig, or run a command against it.
    ///
    /// Uses the Service's external address when exposed (LoadBalancer or
    /// NodePort); otherwise port-forwards a local port to pod vkube-NAME-0
    /// and keeps running until Ctrl-C (or until COMMAND exits).
    Connect(ConnectArgs),
    /// Print a kubeconfig for a user of a virtual cluster: a client
    /// certificate for --user (and --group) signed by the virtual cluster's
    /// CA through its CertificateSigningRequest API, as `kubeadm kubeconfig
    /// user` gives one. The user may do what its RBAC bindings allow.
    Kubeconfig(KubeconfigArgs),
    /// Switch back to the context used before `vkube connect` and remove the
    /// current vkube context.
    Disconnect,
    /// List the virtual clusters of the host cluster.
    List(ListArgs),
    /// Uninstall a virtual cluster: helm release, synced objects, data PVC
    /// (unless --keep-data) and its kube context.
    Delete(DeleteArgs),
    /// Stop a virtual cluster: scale its StatefulSet to 0 and delete its
    /// synced pods; its data is kept.
    Pause(Target),
    /// Start a paused virtual cluster again (StatefulSet back to 1 replica).
    Resume(Target),
}

/// Names one virtual cluster on the host.
#[derive(Args, Clone)]
pub struct Target {
    /// The virtual cluster's name (the helm release name; DNS label, at most 46 characters).
    pub name: String,
    /// Host namespace [default: vkube-NAME].
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

impl Target {
    /// The host namespace: `--namespace`, else `vkube-NAME`.
    pub fn namespace(&self) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| format!("vkube-{}", self.name))
    }
}

/// `vkube create`.
#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    target: Target,
    /// Values file for the chart (repeatable, as helm -f).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    values: Vec<PathBuf>,
    /// Set a chart value, e.g. --set isolation.enabled=true (repeatable, as helm --set).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Expose the API server through a LoadBalancer Service (exposure.type=LoadBalancer).
    #[arg(long)]
    expose: bool,
    /// Connect after creating (--connect=false to skip).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    connect: bool,
    /// Wait until the pod is Ready, the kubeconfig Secret exists and the
    /// virtual API answers (--wait=false returns right after helm install,
    /// and implies --connect=false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    wait: bool,
    /// How long to wait, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
    /// Install this chart directory instead of the chart embedded in vkube.
    #[arg(long, value_name = "DIR")]
    chart: Option<PathBuf>,
}

/// `vkube connect`.
#[derive(Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    target: Target,
    /// Print the kubeconfig instead of changing the user's kubeconfig.
    #[arg(long)]
    print: bool,
    /// Connect as this user instead of the admin: a client certificate
    /// issued as `vkube kubeconfig --user` issues it.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The user's group (with --user; a certificate names at most one).
    #[arg(long = "group", value_name = "GROUP", requires = "user")]
    groups: Vec<String>,
    /// The user's certificate lifetime (with --user), a duration such as
    /// 24h.
    #[arg(long, default_value = "8760h", value_parser = user::parse_ttl, requires = "user")]
    ttl: std::time::Duration,
    /// Run this command with KUBECONFIG pointing at the virtual cluster, then exit with its status.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// `vkube kubeconfig`.
#[derive(Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    target: Target,
    /// The user name (the certificate's CN), as RBAC bindings name it.
    #[arg(long, value_name = "NAME")]
    user: String,
    /// The user's group (the certificate's O; at most one).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Certificate lifetime, a duration such as 24h or 90m (kubeadm's
    /// default validity, a year, unless given).
    #[arg(long, default_value = "8760h", value_parser = user::parse_ttl)]
    ttl: std::time::Duration,
    /// Write the kubeconfig to this file (mode 0600) instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Output format of `vkube list`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// A JSON array of objects.
    Json,
    /// A YAML sequence.
    Yaml,
}

/// `vkube list`.
#[derive(Args)]
pub struct ListArgs {
    /// Only this host namespace.
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Every namespace (the default when -n is not given).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
}

/// `vkube delete`.
#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    target: Target,
    /// Keep the data PVC (data-vkube-NAME-0) so a later create resumes the same data.
    #[arg(long)]
    keep_data: bool,
}

/// Runs one host-side command.
pub async fn run(cmd: TenantCommand) -> Result<()> {
    match cmd {
        TenantCommand::Create(a) => create(a).await,
        TenantCommand::Connect(a) => connect(a).await,
        TenantCommand::Kubeconfig(a) => user_kubeconfig(a).await,
        TenantCommand::Disconnect => disconnect(),
        TenantCommand::List(a) => list_command(a).await,
        TenantCommand::Delete(a) => delete(a).await,
        TenantCommand::Pause(t) => pause(t, true).await,
        TenantCommand::Resume(t) => pause(t, false).await,
    }
}

/// Writes the completion script for `shell` of command `cmd` to stdout.
pub fn completion(shell: clap_complete::Shell, cmd: &mut clap::Command) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, cmd, name, &mut std::io::stdout());
}

/// A client for the host cluster and the kube context it uses.
struct Host {
    client: kube::Client,
    context: Option<String>,
}

async fn host() -> Result<Host> {
    let hint = "set KUBECONFIG or ~/.kube/config to reach the host cluster";
    let config = Kubeconfig::read().with_context(|| format!("no usable kubeconfig: {hint}"))?;
    let context = kubeconfig::host_context(&config);
    let options = KubeConfigOptions {
        context: context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(config, &options)
        .await
        .with_context(|| format!("loading context {context:?}: {hint}"))?;
    let client = kube::Client::try_from(config)?;
    Ok(Host { client, context })
}

fn spinner(message: String) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("template"));
    pb.set_message(message);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Polls `check` every second until it returns `Some`, failing after
/// `deadline` with `what` and `hint`.
async fn poll<T, F, Fut>(
    deadline: tokio::time::Instant,
    what: &str,
    hint: &str,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() > deadline {
            let last = last_error
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!("timed out waiting for {what}{last}; {hint}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn create(a: CreateArgs) -> Result<()> {
    let name = a.target.name.clone();
    let ns = a.target.namespace();
    let host = host().await?;
    let embedded = tempfile::tempdir()?;
    let chart_dir = match &a.chart {
        Some(dir) => dir.clone(),
        None => {
            chart::write_to(embedded.path())?;
            embedded.path().to_path_buf()
        }
    };
    let mut args: Vec<String> = vec![
        "install".into(),
        name.clone(),
        chart_dir.to_string_lossy().into_owned(),
        "--namespace".into(),
        ns.clone(),
        "--create-namespace".into(),
    ];
    for f in &a.values {
        args.extend(["--values".into(), f.to_string_lossy().into_owned()]);
    }
    for s in &a.set {
        args.extend(["--set".into(), s.clone()]);
    }
    if a.expose {
        args.extend(["--set".into(), "exposure.type=LoadBalancer".into()]);
    }
    let pb = spinner(format!(
        "Installing virtual cluster {name} into namespace {ns}"
    ));
    let installed = helm::run(&args, host.context.as_deref()).await;
    pb.finish_and_clear();
    installed?;
    eprintln!("Installed virtual cluster {name} in namespace {ns}");
    if !a.wait {
        eprintln!("Not waiting (--wait=false); follow it with `vkube list -n {ns}`");
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.timeout);
    let pod_name = format!("vkube-{name}-0");
    let pods: Api<Pod> = Api::namespaced(host.client.clone(), &ns);
    let pb = spinner(format!("Waiting for pod {pod_name} to be Ready"));
    let hint = format!("check `kubectl -n {ns} describe pod {pod_name}`");
    let waited = poll(
        deadline,
        &format!("pod {pod_name} to be Ready"),
        &hint,
        || async { Ok(pods.get_opt(&pod_name).await?.filter(pod_ready).map(|_| ())) },
    )
    .await;
    pb.finish_and_clear();
    waited?;
    let secrets: Api<Secret> = Api::namespaced(host.client.clone(), &ns);
    let secret_name = format!("vkube-{name}-kubeconfig");
    let pb = spinner(format!("Waiting for Secret {secret_name}"));
    let hint = format!("check the server's log: `kubectl -n {ns} logs {pod_name}`");
    let waited = poll(
        deadline,
        &format!("Secret {secret_name}"),
        &hint,
        || async { Ok(secrets.get_opt(&secret_name).await?.map(|_| ())) },
    )
    .await;
    pb.finish_and_clear();
    waited?;
    let (tenant, forwarded) = tenant_kubeconfig(&host, &name, &ns).await?;
    let pb = spinner("Waiting for the virtual API server to answer".into());
    let answered = poll(deadline, "the virtual API server", &hint, || {
        let tenant = tenant.clone();
        async move {
            let config =
                kube::Config::from_custom_kubeconfig(tenant, &KubeConfigOptions::default()).await?;
            let client = kube::Client::try_from(config)?;
            Ok(Some(client.apiserver_version().await?))
        }
    })
    .await;
    pb.finish_and_clear();
    let version = answered?;
    eprintln!(
        "Virtual cluster {name} is ready (Kubernetes {})",
        version.git_version
    );
    if a.connect {
        deliver(tenant, false, &[], forwarded, &name).await
    } else {
        eprintln!("Connect with: vkube connect {name} -n {ns}");
        Ok(())
    }
}

/// Fetches the admin kubeconfig from Secret `vkube-NAME-kubeconfig` and
/// points it at the endpoint [`endpoint::choose`] picks, starting a
/// port-forward (whose local address is returned) when needed.
async fn tenant_kubeconfig(
    host: &Host,
    name: &str,
    ns: &str,
) -> Result<(Kubeconfig, Option<SocketAddr>)> {
    let secret_name = format!("vkube-{name}-kubeconfig");
    let secrets: Api<Secret> = Api::namespaced(host.client.clone(), ns);
    let secret = secrets.get_opt(&secret_name).await?.with_context(|| {
        format!(
            "Secret {secret_name} not found in namespace {ns}: is virtual cluster {name} created and running? \
             See `vkube list` and `kubectl -n {ns} get pods`"
        )
    })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get("config"))
        .with_context(|| format!("Secret {secret_name} has no key `config`"))?;
    let admin = Kubeconfig::from_yaml(std::str::from_utf8(&bytes.0)?)
        .with_context(|| format!("parsing the kubeconfig in Secret {secret_name}"))?;
    let services: Api<Service> = Api::namespaced(host.client.clone(), ns);
    let service_name = format!("vkube-{name}");
    let service = services
        .get_opt(&service_name)
        .await?
        .with_context(|| format!("Service {service_name} not found in namespace {ns}"))?;
    let pods: Api<Pod> = Api::namespaced(host.client.clone(), ns);
    let pod_name = format!("vkube-{name}-0");
    let pod = pods.get_opt(&pod_name).await?;
    let pod_node = pod
        .as_ref()
        .and_then(|p| p.spec.as_ref()?.node_name.clone());
    let pod_port = pod
        .as_ref()
        .and_then(|p| {
            let c = p.spec.as_ref()?.containers.first()?;
            let port = c
                .ports
                .as_ref()?
                .iter()
                .find(|p| p.name.as_deref() == Some("https"))?;
            Some(port.container_port as u16)
        })
        .unwrap_or(8443);
    let exposed = matches!(
        service.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("NodePort" | "LoadBalancer")
    );
    let nodes = if exposed {
        // Reading nodes may be forbidden to the user; then no node address.
        Api::<Node>::all(host.client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let context = kubeconfig::context_name(name, ns);
    match endpoint::choose(&service, &nodes, &pod_name, pod_node.as_deref(), pod_port) {
        endpoint::Endpoint::External { host, port } => {
            let url = kubeconfig::https_url(&host, port);
            Ok((kubeconfig::for_endpoint(&admin, &context, &url)?, None))
        }
        endpoint::Endpoint::PortForward { pod, port } => {
            if pod.is_empty() || !pods.get_opt(&pod).await?.is_some_and(|p| pod_ready(&p)) {
                bail!(
                    "pod {pod_name} in namespace {ns} is not Ready: is virtual cluster {name} paused? (`vkube resume {name} -n {ns}`)"
                );
            }
            let addr = endpoint::port_forward(pods, pod, port).await?;
            let url = kubeconfig::https_url("127.0.0.1", addr.port());
            Ok((
                kubeconfig::for_endpoint(&admin, &context, &url)?,
                Some(addr),
            ))
        }
    }
}

async fn connect(a: ConnectArgs) -> Result<()> {
    let ns = a.target.namespace();
    let host = host().await?;
    let (mut tenant, forwarded) = tenant_kubeconfig(&host, &a.target.name, &ns).await?;
    if let Some(name) = &a.user {
        let groups: Vec<&str> = a.groups.iter().map(String::as_str).collect();
        let admin = client_for(&tenant).await?;
        let (cert, key) = user::issue(&admin, name, &groups, a.ttl).await?;
        tenant = user::with_client_certificate(tenant, &cert, &key)?;
    }
    deliver(tenant, a.print, &a.command, forwarded, &a.target.name).await
}

/// A client for the virtual cluster `config` reaches.
async fn client_for(config: &Kubeconfig) -> Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(config.clone(), &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// `vkube kubeconfig`: issues the user's certificate and prints (or
/// writes) a kubeconfig for it. When the virtual cluster is reached through
/// a port-forward that ends with this command, the kubeconfig names the
/// server address the virtual cluster published instead (reachable inside
/// the host cluster), and says so.
async fn user_kubeconfig(a: KubeconfigArgs) -> Result<()> {
    let ns = a.target.namespace();
    let host = host().await?;
    let (tenant, forwarded) = tenant_kubeconfig(&host, &a.target.name, &ns).await?;
    let groups: Vec<&str> = a.groups.iter().map(String::as_str).collect();
    let admin = client_for(&tenant).await?;
    let (cert, key) = user::issue(&admin, &a.user, &groups, a.ttl).await?;
    let mut config = user::with_client_certificate(tenant, &cert, &key)?;
    if forwarded.is_some() {
        let published = published_server(&host, &a.target.name, &ns).await?;
        for cluster in config
            .clusters
            .iter_mut()
            .filter_map(|c| c.cluster.as_mut())
        {
            cluster.server = Some(published.clone());
            cluster.tls_server_name = None;
        }
        eprintln!(
            "The virtual cluster is not exposed: this kubeconfig names {published}, reachable inside the host cluster; \
             from elsewhere use `vkube connect {} -n {ns} --user {}`",
            a.target.name, a.user
        );
    }
    let text = kubeconfig::to_yaml(&config)?;
    match &a.output {
        Some(path) => {
            kubeconfig::write_private(path, &text)?;
            eprintln!(
                "Wrote a kubeconfig for user {} to {}",
                a.user,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The server URL in the virtual cluster's published admin kubeconfig.
async fn published_server(host: &Host, name: &str, ns: &str) -> Result<String> {
    let secret_name = format!("vkube-{name}-kubeconfig");
    let secret = Api::<Secret>::namespaced(host.client.clone(), ns)
        .get(&secret_name)
        .await?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get("config"))
        .with_context(|| format!("Secret {secret_name} has no key `config`"))?;
    let admin = Kubeconfig::from_yaml(std::str::from_utf8(&bytes.0)?)?;
    admin
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref()?.server.clone())
        .with_context(|| format!("the kubeconfig in Secret {secret_name} names no server"))
}

/// Hands the tenant kubeconfig to the user: runs `command` with it, prints
/// it, or merges it into the user's kubeconfig; then keeps a port-forward
/// alive until Ctrl-C.
async fn deliver(
    tenant: Kubeconfig,
    print: bool,
    command: &[String],
    forwarded: Option<SocketAddr>,
    name: &str,
) -> Result<()> {
    if let Some((program, args)) = command.split_first() {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("kubeconfig");
        kubeconfig::write_private(&path, &kubeconfig::to_yaml(&tenant)?)?;
        let status = tokio::process::Command::new(program)
            .args(args)
            .env("KUBECONFIG", &path)
            .status()
            .await
            .with_context(|| format!("running {program}"))?;
        drop(dir);
        if !status.success() {
            std::process::exit(status.code().unwrap_or(1));
        }
        return Ok(());
    }
    let mut merged_context = None;
    if print {
        print!("{}", kubeconfig::to_yaml(&tenant)?);
    } else {
        let context = tenant.current_context.clone().unwrap_or_default();
        let merged = kubeconfig::merge_context(kubeconfig::load_user()?, tenant);
        let path = kubeconfig::save_user(&merged)?;
        eprintln!(
            "Switched to context {context} in {} (virtual cluster {name}); `vkube disconnect` switches back",
            path.display()
        );
        merged_context = Some(context);
    }
    if let Some(addr) = forwarded {
        eprintln!(
            "Forwarding {addr} to the virtual API server: the virtual cluster is not exposed outside \
             the host cluster, so this command holds the port-forward open and kubectl reaches it only \
             while it runs.\nCtrl-C ends it{}. To stay connected without a terminal, expose the cluster \
             (chart value exposure.type) or run `vkube connect {name}` in the background.",
            if merged_context.is_some() {
                " and switches your kube context back"
            } else {
                ""
            }
        );
        tokio::signal::ctrl_c().await?;
        // The context names the forward's local address, which nothing
        // listens on any more: switch back rather than leave kubectl
        // pointing at it.
        if let Some(context) = merged_context {
            let user = kubeconfig::load_user()?;
            if user.current_context.as_deref() == Some(context.as_str()) {
                let restored = kubeconfig::remove_context(user, &context);
                let now = restored.current_context.clone();
                kubeconfig::save_user(&restored)?;
                match now {
                    Some(ctx) => eprintln!("Port-forward ended; switched back to context {ctx}"),
                    None => eprintln!("Port-forward ended; removed context {context}"),
                }
            }
        }
    }
    Ok(())
}

fn disconnect() -> Result<()> {
    let user = kubeconfig::load_user()?;
    let current = user
        .current_context
        .clone()
        .context("no current kube context; nothing to disconnect")?;
    kubeconfig::ensure_vkube_context(&current)?;
    let updated = kubeconfig::remove_context(user, &current);
    let now = updated.current_context.clone();
    kubeconfig::save_user(&updated)?;
    match now {
        Some(ctx) => eprintln!("Removed context {current}; switched back to {ctx}"),
        None => eprintln!("Removed context {current}; no current context now"),
    }
    Ok(())
}

async fn list_command(a: ListArgs) -> Result<()> {
    let host = host().await?;
    let api: Api<StatefulSet> = match &a.namespace {
        Some(ns) => Api::namespaced(host.client.clone(), ns),
        None => Api::all(host.client.clone()),
    };
    let items = api
        .list(&ListParams::default().labels(list::LABEL_VIRTUAL_CLUSTER))
        .await
        .context("listing StatefulSets on the host")?
        .items;
    let current = kubeconfig::load_user().ok().and_then(|k| k.current_context);
    let now = jiff::Timestamp::now();
    let mut rows: Vec<list::Row> = items
        .iter()
        .filter_map(|s| list::row(s, current.as_deref(), now))
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    match a.output {
        Format::Table if rows.is_empty() => eprintln!("No virtual clusters found"),
        Format::Table => print!("{}", list::table(&rows)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Yaml => print!(
            "{}",
            serde_saphyr::to_string_with_options(&rows, kubeconfig::yaml_output())?
        ),
    }
    Ok(())
}

/// Deletes every object of kind `K` in `api` matching `selector`; returns how many.
async fn delete_matching<K>(api: Api<K>, selector: &str) -> Result<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let items = api
        .list(&ListParams::default().labels(selector))
        .await?
        .items;
    let mut n = 0;
    for item in items {
        if let Some(name) = item.meta().name.clone() {
            ignore_not_found(
                api.delete(&name, &DeleteParams::background())
                    .await
                    .map(|_| ()),
            )?;
            n += 1;
        }
    }
    Ok(n)
}

fn ignore_not_found(r: kube::Result<()>) -> Result<()> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => Ok(other?),
    }
}

async fn delete(a: DeleteArgs) -> Result<()> {
    let name = a.target.name.clone();
    let ns = a.target.namespace();
    let host = host().await?;
    let c = host.client.clone();
    let pb = spinner(format!(
        "Deleting virtual cluster {name} from namespace {ns}"
    ));
    let args: Vec<String> = vec![
        "uninstall".into(),
        name.clone(),
        "--namespace".into(),
        ns.clone(),
    ];
    let uninstalled = helm::run(&args, host.context.as_deref()).await;
    let result: Result<usize> = async {
        let selector = format!("{LABEL_MANAGED_BY}={name}");
        let mut n = delete_matching(Api::<Pod>::namespaced(c.clone(), &ns), &selector).await?;
        n += delete_matching(Api::<Service>::namespaced(c.clone(), &ns), &selector).await?;
        n += delete_matching(Api::<Endpoints>::namespaced(c.clone(), &ns), &selector).await?;
        n += delete_matching(Api::<ConfigMap>::namespaced(c.clone(), &ns), &selector).await?;
        // The record of a paused cluster's pods.
        delete_matching(
            Api::<ConfigMap>::namespaced(c.clone(), &ns),
            &format!("{}={name}", vkube_syncer::pause::LABEL_PAUSED_PODS),
        )
        .await?;
        n += delete_matching(Api::<Secret>::namespaced(c.clone(), &ns), &selector).await?;
        n += delete_matching(
            Api::<PersistentVolumeClaim>::namespaced(c.clone(), &ns),
            &selector,
        )
        .await?;
        let secrets: Api<Secret> = Api::namespaced(c.clone(), &ns);
        for secret in [
            format!("vkube-{name}-kubeconfig"),
            format!("vkube-{name}-metrics"),
        ] {
            ignore_not_found(
                secrets
                    .delete(&secret, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
        }
        if !a.keep_data {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), &ns);
            ignore_not_found(
                pvcs.delete(&format!("data-vkube-{name}-0"), &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
        }
        Ok(n)
    }
    .await;
    pb.finish_and_clear();
    if let Err(e) = &uninstalled {
        if !format!("{e:#}").contains("not found") {
            return Err(uninstalled.unwrap_err());
        }
        eprintln!("No helm release {name} in namespace {ns}; removing what is left");
    }
    let synced = result?;
    let context = kubeconfig::context_name(&name, &ns);
    if let Ok(user) = kubeconfig::load_user()
        && user.contexts.iter().any(|c| c.name == context)
    {
        kubeconfig::save_user(&kubeconfig::remove_context(user, &context))?;
        eprintln!("Removed kube context {context}");
    }
    let data = if a.keep_data { "kept" } else { "deleted" };
    eprintln!(
        "Deleted virtual cluster {name} from namespace {ns} ({synced} synced objects removed, data {data}); \
         the namespace {ns} is kept (it may hold other things): `kubectl delete namespace {ns}` removes it"
    );
    Ok(())
}

/// How long `vkube pause` waits for the virtual cluster's pod to stop.
const PAUSE_STOP_TIMEOUT: Duration = Duration::from_secs(300);

async fn pause(t: Target, paused: bool) -> Result<()> {
    let ns = t.namespace();
    let host = host().await?;
    let sts_name = format!("vkube-{}", t.name);
    let api: Api<StatefulSet> = Api::namespaced(host.client.clone(), &ns);
    if api.get_opt(&sts_name).await?.is_none() {
        bail!(
            "StatefulSet {sts_name} not found in namespace {ns}: see `vkube list` for virtual clusters"
        );
    }
    let patch = if paused {
        serde_json::json!({"metadata": {"annotations": {list::ANNOTATION_PAUSED: "true"}}, "spec": {"replicas": 0}})
    } else {
        serde_json::json!({"metadata": {"annotations": {list::ANNOTATION_PAUSED: null}}, "spec": {"replicas": 1}})
    };
    api.patch(&sts_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("patching StatefulSet {sts_name}"))?;
    if paused {
        // The syncer must be gone before its host pods are: a running one
        // would take them for deleted on the host and delete the tenant's
        // pods. Then the pods are recorded and deleted, so resume runs them
        // again (vkube_syncer::pause).
        let pod_name = format!("{sts_name}-0");
        let pods: Api<Pod> = Api::namespaced(host.client.clone(), &ns);
        let pb = spinner(format!("Stopping virtual cluster {}", t.name));
        let deadline = tokio::time::Instant::now() + PAUSE_STOP_TIMEOUT;
        while pods.get_opt(&pod_name).await?.is_some() {
            if tokio::time::Instant::now() > deadline {
                pb.finish_and_clear();
                bail!(
                    "pod {pod_name} is still there after {}s; its synced pods were left running: run `vkube pause {} -n {ns}` again once it is gone",
                    PAUSE_STOP_TIMEOUT.as_secs(),
                    t.name
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        pb.finish_and_clear();
        let tenant = vkube_syncer::names::Tenant::new(&t.name, &ns)
            .map_err(|e| anyhow::anyhow!("virtual cluster {} in {ns}: {e}", t.name))?;
        let n = vkube_syncer::pause::pause_pods(&host.client, &tenant).await?;
        eprintln!(
            "Paused virtual cluster {} ({n} synced pods stopped; they run again on `vkube resume {} -n {ns}`)",
            t.name, t.name
        );
    } else {
        eprintln!("Resumed virtual cluster {}", t.name);
    }
    Ok(())
}
