//! `vkube up [NAME]`: a local host cluster and a virtual cluster NAME in one
//! process, optionally applying a directory of manifests and showing the
//! tenant's view beside the host's.
//!
//! Layout under `$VKUBE_HOME` (default `~/.vkube`): `host/data`,
//! `host/kubeconfig`, `NAME/data`, `NAME/kubeconfig`. The virtual cluster
//! syncs into host namespace `vkube-NAME`. A second `vkube up` reuses the
//! data directories and so resumes where the first stopped.

use crate::embedded::{self, LocalHost, VirtualCluster};
use anyhow::{Context, Result, bail};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vkube_syncer::names::{ANNOTATION_OBJECT_NAME, ANNOTATION_OBJECT_NAMESPACE, LABEL_MANAGED_BY};

/// Field manager of `--apply` (server-side apply).
pub const FIELD_MANAGER: &str = "vkube";

/// `vkube up` flags.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Name of the virtual cluster (a DNS label); its host namespace is `vkube-NAME`.
    #[arg(default_value = "dev")]
    pub name: String,
    /// Where data and kubeconfigs live (default `~/.vkube`).
    #[arg(long, env = "VKUBE_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Address of the virtual cluster's API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Address of the local host API server (unused with --host-kubeconfig).
    #[arg(long, default_value = "127.0.0.1:6440")]
    pub host_listen: SocketAddr,
    /// Sync into the cluster of this kubeconfig's current context instead of
    /// starting a local host.
    #[arg(long, value_name = "FILE")]
    pub host_kubeconfig: Option<PathBuf>,
    /// Apply every manifest in DIR (*.yaml, *.yml, *.json; sorted) into the
    /// virtual cluster with server-side apply, wait for its pods, and show
    /// the tenant's and the host's view side by side.
    #[arg(long, value_name = "DIR")]
    pub apply: Option<PathBuf>,
    /// How long --apply waits for the applied workloads' pods to run (e.g.
    /// `120s`, `2m`); on timeout it prints what is not ready and keeps running.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// Controllers of the virtual cluster (kube-controller-manager's --controllers syntax).
    #[arg(long, default_value = "*")]
    pub controllers: String,
    /// Log more (-v: info, -vv: debug); `VKUBE_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Parses `90`, `90s`, `2m`, `1h` into a duration (pure).
///
/// # Errors
/// Anything else.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 120s, 2m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// Whether `name` is a DNS-1123 label short enough for `vkube-NAME` (pure).
fn valid_name(name: &str) -> bool {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    !name.is_empty()
        && name.len() <= 63 - "vkube-".len()
        && ok_chars
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Runs `vkube up` until SIGINT/SIGTERM.
///
/// # Errors
/// A busy address, a data directory in use, an unreadable manifest directory
/// or a manifest the server rejects.
pub async fn run(args: UpArgs) -> Result<()> {
    if !valid_name(&args.name) {
        bail!(
            "virtual cluster name {:?} must be a DNS label (lowercase letters, digits, '-') of at most 57 characters",
            args.name
        );
    }
    let home = match &args.home {
        Some(h) => h.clone(),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --home")?)
            .join(".vkube"),
    };
    let manifests = match &args.apply {
        Some(dir) => load_dir(dir)?,
        None => Vec::new(),
    };
    check_free(args.listen, "--listen")?;
    let host_namespace = format!("vkube-{}", args.name);

    // Register for SIGINT/SIGTERM before anything long-running starts.
    let mut signal = embedded::listen_for_signal();

    let (local, host_client) = match &args.host_kubeconfig {
        Some(file) => (None, embedded::client_from_file(file).await?),
        None => {
            check_free(args.host_listen, "--host-listen")?;
            let host = LocalHost::start(&home.join("host").join("data"), args.host_listen).await?;
            let path = home.join("host").join("kubeconfig");
            write_kubeconfig(&path, &host.server.kubeconfig)?;
            let client = host.client().await?;
            (Some(host), client)
        }
    };
    embedded::ensure_namespace(&host_client, &host_namespace)
        .await
        .context("creating the host namespace")?;
    let vc_opts = embedded::VirtualClusterOptions {
        data_dir: home.join(&args.name).join("data"),
        listen: args.listen,
        tls_sans: Vec::new(),
        service_cidr: vkube_core::service::ServiceCidr::parse("10.96.0.0/12")
            .map_err(anyhow::Error::msg)?,
        controllers: args.controllers.clone(),
        context_name: format!("vkube-{}", args.name),
        kubernetes_service_ip: None,
        // The tenant DNS on a free loopback port: the local host runs no
        // pods that could use it, but its answers can be checked there.
        dns: Some(embedded::DnsOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cluster_domain: "cluster.local".into(),
        }),
        limits: Default::default(),
        audit: None,
        authentication: None,
        anonymous_auth: false,
        authentication_key_files: Default::default(),
        static_tokens: Default::default(),
    };
    let tenant = vkube_syncer::names::Tenant::new(&args.name, &host_namespace)
        .context("the virtual cluster's name must be a DNS label")?;
    // Defaults: referenced ConfigMaps/Secrets only, baseline Pod Security,
    // host pods as `vkube-workload-NAME`. No KUBERNETES_SERVICE_* for host
    // pods: the virtual server listens on loopback, which a host pod cannot
    // reach.
    let sync = vkube_syncer::SyncerConfig::new(tenant);
    let vc = VirtualCluster::start(&vc_opts, host_client.clone(), sync).await?;
    let vc_kubeconfig = home.join(&args.name).join("kubeconfig");
    write_kubeconfig(&vc_kubeconfig, &vc.server.kubeconfig)?;

    println!(
        "{}",
        banner(
            &args.name,
            &vc.server.url(),
            &vc_kubeconfig,
            local
                .as_ref()
                .map(|h| (h.server.url(), home.join("host").join("kubeconfig"))),
            args.host_kubeconfig.as_deref(),
            &host_namespace,
        )
    );
    if let Some(dns) = &vc.dns {
        println!(
            "Tenant DNS (cluster.local): {} (e.g. dig @{} -p {} kubernetes.default.svc.cluster.local)",
            dns.addr,
            dns.addr.ip(),
            dns.addr.port()
        );
    }

    // Applying and waiting can be interrupted; either way the servers stop
    // cleanly below.
    let finished = if manifests.is_empty() {
        Ok(false)
    } else {
        let virtual_client =
            vkube_controllers::client_from_kubeconfig(&vc.server.kubeconfig).await?;
        let work = apply_and_show(
            &virtual_client,
            &host_client,
            &manifests,
            &args.name,
            &host_namespace,
            args.wait_timeout,
        );
        tokio::select! {
            r = work => r.map(|()| false),
            s = &mut signal => s.map(|()| true),
        }
    };
    let result = match finished {
        Ok(false) => {
            println!("vkube up: running; press Ctrl-C to stop.");
            signal.await
        }
        Ok(true) => Ok(()),
        Err(e) => Err(e),
    };
    vc.shutdown().await;
    if let Some(h) = local {
        h.shutdown().await;
    }
    if result.is_ok() {
        println!(
            "vkube up: stopped; run `vkube up {}` again to resume.",
            args.name
        );
    }
    result
}

/// Fails with a hint when `addr` is taken (pure apart from the bind probe).
fn check_free(addr: SocketAddr, flag: &str) -> Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{addr} is already in use (another `vkube up`?); stop it, or pick a free address with {flag} 127.0.0.1:PORT"
        ),
        Err(e) => Err(e).with_context(|| format!("checking {addr}")),
    }
}

fn write_kubeconfig(path: &Path, contents: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// What `vkube up` prints once both servers answer (pure).
fn banner(
    name: &str,
    url: &str,
    kubeconfig: &Path,
    local_host: Option<(String, PathBuf)>,
    host_kubeconfig: Option<&Path>,
    host_namespace: &str,
) -> String {
    let k = kubeconfig.display();
    let mut s = format!(
        "Virtual cluster {name} is up at {url}\n  kubeconfig: {k}\n    export KUBECONFIG={k}\n    kubectl --kubeconfig {k} get namespaces\n"
    );
    match (local_host, host_kubeconfig) {
        (Some((host_url, path)), _) => {
            let p = path.display();
            s += &format!(
                "Local host cluster (simulated node) at {host_url}, syncing into namespace {host_namespace}\n  kubeconfig: {p}\n    kubectl --kubeconfig {p} get pods -n {host_namespace}\n"
            );
        }
        (None, Some(path)) => {
            let p = path.display();
            s += &format!(
                "Host cluster from {p}, syncing into namespace {host_namespace}\n    kubectl --kubeconfig {p} get pods -n {host_namespace}\n"
            );
        }
        (None, None) => {}
    }
    s
}

/// One document of a manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `FILE` or `FILE#N` (N = document index), for messages.
    pub source: String,
    /// The object.
    pub object: Value,
}

/// Reads every `*.yaml`, `*.yml` and `*.json` file directly in `dir`
/// (sorted by name) into manifests.
///
/// # Errors
/// An unreadable directory or file, or a document that is not an object
/// with `apiVersion`, `kind` and `metadata.name`.
pub fn load_dir(dir: &Path) -> Result<Vec<Manifest>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading manifest directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        out.extend(parse_manifests(&f.display().to_string(), &text)?);
    }
    if out.is_empty() {
        bail!("no manifests (*.yaml, *.yml, *.json) in {}", dir.display());
    }
    Ok(out)
}

/// Splits multi-document YAML (or JSON) into objects, skipping empty
/// documents and unwrapping `kind: List` (pure).
///
/// # Errors
/// Invalid YAML, or a document without `apiVersion`, `kind` or `metadata.name`.
pub fn parse_manifests(source: &str, text: &str) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    // Empty documents are skipped by the parser: `#i` counts the others.
    let docs: Vec<Value> = serde_saphyr::from_str_multiple_with_options(
        text,
        apiserver_shim::fieldmanager::kube_yaml_options(),
    )
    .with_context(|| source.to_string())?;
    for (i, value) in docs.into_iter().enumerate() {
        let src = format!("{source}#{i}");
        let objects = match value {
            Value::Null => continue,
            Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => o
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            v => vec![v],
        };
        for object in objects {
            for field in ["apiVersion", "kind"] {
                if object.get(field).and_then(Value::as_str).is_none() {
                    bail!("{src}: missing {field}");
                }
            }
            if object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_none()
            {
                bail!("{src}: missing metadata.name (generateName is not supported by apply)");
            }
            out.push(Manifest {
                source: src.clone(),
                object,
            });
        }
    }
    Ok(out)
}

/// Apply order (pure): Namespaces, then CustomResourceDefinitions, then
/// other cluster-scoped objects, then namespaced ones, then kinds the
/// server did not know yet (`namespaced = None`, e.g. custom resources of a
/// CRD in the same directory).
pub fn apply_rank(kind: &str, namespaced: Option<bool>) -> u8 {
    match (kind, namespaced) {
        ("Namespace", _) => 0,
        ("CustomResourceDefinition", _) => 1,
        (_, Some(false)) => 2,
        (_, Some(true)) => 3,
        (_, None) => 4,
    }
}

fn gvk_of(obj: &Value) -> GroupVersionKind {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

/// An object `--apply` wrote.
#[derive(Debug, Clone)]
struct Applied {
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
}

impl Applied {
    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }
}

/// Server-side applies `manifests` in [`apply_rank`] order, printing one
/// line per object.
async fn apply_all(client: &kube::Client, manifests: &[Manifest]) -> Result<Vec<Applied>> {
    let mut discovery = Discovery::new(client.clone()).run().await?;
    let mut ordered: Vec<&Manifest> = manifests.iter().collect();
    ordered.sort_by_key(|m| {
        let namespaced = discovery
            .resolve_gvk(&gvk_of(&m.object))
            .map(|(_, caps)| caps.scope == Scope::Namespaced);
        apply_rank(m.object["kind"].as_str().unwrap_or_default(), namespaced)
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    for m in ordered {
        let gvk = gvk_of(&m.object);
        if discovery.resolve_gvk(&gvk).is_none() {
            // Maybe defined by a CRD applied just before.
            discovery = Discovery::new(client.clone()).run().await?;
        }
        let (resource, caps) = discovery.resolve_gvk(&gvk).with_context(|| {
            format!(
                "{}: the server has no resource for {} {}",
                m.source,
                m.object["apiVersion"].as_str().unwrap_or_default(),
                gvk.kind
            )
        })?;
        let name = m.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = (caps.scope == Scope::Namespaced).then(|| {
            m.object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string()
        });
        let a = Applied {
            resource,
            namespace,
            name,
        };
        a.api(client)
            .patch(&a.name, &params, &Patch::Apply(&m.object))
            .await
            .with_context(|| format!("{}: applying {} {}", m.source, gvk.kind, a.name))?;
        let plural = if a.resource.group.is_empty() {
            a.resource.plural.clone()
        } else {
            format!("{}.{}", a.resource.plural, a.resource.group)
        };
        match &a.namespace {
            Some(ns) => println!("applied {plural}/{} -n {ns}", a.name),
            None => println!("applied {plural}/{}", a.name),
        }
        applied.push(a);
    }
    Ok(applied)
}

/// Whether an applied workload has what it asked for running (pure):
/// Deployments, ReplicaSets and StatefulSets all replicas ready, DaemonSets
/// every scheduled pod ready, Jobs their completions, Pods Running or
/// Succeeded. Other kinds are not waited for (`None`).
pub fn workload_ready(kind: &str, obj: &Value) -> Option<bool> {
    let int = |p: &str| obj.pointer(p).and_then(Value::as_i64);
    Some(match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" => {
            int("/status/readyReplicas").unwrap_or(0) >= int("/spec/replicas").unwrap_or(1)
        }
        "DaemonSet" => {
            int("/status/numberReady").unwrap_or(0)
                >= int("/status/desiredNumberScheduled").unwrap_or(0)
        }
        "Job" => {
            let complete = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Complete" && c["status"] == "True")
                });
            complete
                || int("/status/succeeded").unwrap_or(0) >= int("/spec/completions").unwrap_or(1)
        }
        "Pod" => matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Running" | "Succeeded")
        ),
        _ => return None,
    })
}

/// Applies, waits with a spinner, then prints the side-by-side table.
async fn apply_and_show(
    virtual_client: &kube::Client,
    host_client: &kube::Client,
    manifests: &[Manifest],
    name: &str,
    host_namespace: &str,
    timeout: Duration,
) -> Result<()> {
    let applied = apply_all(virtual_client, manifests).await?;
    let namespaces: BTreeSet<String> = applied.iter().filter_map(|a| a.namespace.clone()).collect();
    let not_ready = wait_for_workloads(virtual_client, &applied, &namespaces, timeout).await;
    if !not_ready.is_empty() {
        println!(
            "not ready after {}s (still running; check with kubectl):",
            timeout.as_secs()
        );
        for n in &not_ready {
            println!("  {n}");
        }
    }
    let virtual_rows = virtual_rows(virtual_client, &namespaces).await?;
    let host_rows = host_rows(host_client, name, host_namespace).await?;
    println!("\nTenant's view → host's view (host namespace {host_namespace}):");
    print!("{}", side_by_side(&virtual_rows, &host_rows));
    Ok(())
}

/// Polls until every applied workload is ready or `timeout` passes; returns
/// the workloads not ready (`kind ns/name`).
async fn wait_for_workloads(
    client: &kube::Client,
    applied: &[Applied],
    namespaces: &BTreeSet<String>,
    timeout: Duration,
) -> Vec<String> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    loop {
        let mut not_ready = Vec::new();
        let mut total = 0;
        for a in applied {
            let kind = a.resource.kind.as_str();
            let ready = match a.api(client).get(&a.name).await {
                Ok(obj) => serde_json::to_value(&obj)
                    .ok()
                    .and_then(|v| workload_ready(kind, &v)),
                Err(_) => Some(false),
            };
            if let Some(r) = ready {
                total += 1;
                if !r {
                    let ns = a.namespace.as_deref().unwrap_or("");
                    not_ready.push(format!("{kind} {ns}/{}", a.name));
                }
            }
        }
        let mut running = 0;
        for ns in namespaces {
            let pods: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                ns,
                &ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
            );
            if let Ok(list) = pods.list(&ListParams::default()).await {
                running += list
                    .items
                    .iter()
                    .filter(|p| p.data.pointer("/status/phase") == Some(&Value::from("Running")))
                    .count();
            }
        }
        spinner.set_message(format!(
            "waiting: {running} pods Running, {}/{total} workloads ready",
            total - not_ready.len()
        ));
        if not_ready.is_empty() || started.elapsed() >= timeout {
            spinner.finish_and_clear();
            return not_ready;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A tenant-side object in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualRow {
    /// `pod` or `svc`.
    pub kind: &'static str,
    /// Tenant namespace.
    pub namespace: String,
    /// Tenant name.
    pub name: String,
    /// Status as the tenant sees it.
    pub status: String,
}

/// A synced host object, keyed by the tenant object it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    /// `pod` or `svc`.
    pub kind: &'static str,
    /// `vkube.dev/object-namespace` of the host object.
    pub virtual_namespace: String,
    /// `vkube.dev/object-name` of the host object.
    pub virtual_name: String,
    /// The host object's name.
    pub host_name: String,
    /// Status on the host.
    pub status: String,
}

/// A pod's STATUS cell (pure): its phase, pod IP and the node it runs on
/// (`spec.nodeName`, as `kubectl get pods -o wide` shows it).
fn pod_status(obj: &Value) -> String {
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    let mut s = phase.to_string();
    if let Some(ip) = obj.pointer("/status/podIP").and_then(Value::as_str) {
        s += &format!(" {ip}");
    }
    if let Some(node) = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        s += &format!(" on {node}");
    }
    s
}

fn service_status(obj: &Value) -> String {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    match obj.pointer("/spec/clusterIP").and_then(Value::as_str) {
        Some(ip) => format!("{ty} {ip}"),
        None => ty.to_string(),
    }
}

/// A pod or service shown in the table: its table kind (`pod`/`svc`), its
/// status text and its JSON.
type Shown = (&'static str, String, Value);

/// The pods and services in `namespace` matching `lp`.
async fn list_shown(client: &kube::Client, namespace: &str, lp: &ListParams) -> Result<Vec<Shown>> {
    use k8s_openapi::api::core::v1::{Pod, Service};
    type StatusOf = fn(&Value) -> String;
    let kinds: [(&str, ApiResource, StatusOf); 2] = [
        ("pod", ApiResource::erase::<Pod>(&()), pod_status),
        ("svc", ApiResource::erase::<Service>(&()), service_status),
    ];
    let mut out = Vec::new();
    for (kind, resource, status) in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for obj in api.list(lp).await?.items {
            let obj = serde_json::to_value(&obj)?;
            out.push((kind, status(&obj), obj));
        }
    }
    Ok(out)
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn virtual_rows(
    client: &kube::Client,
    namespaces: &BTreeSet<String>,
) -> Result<Vec<VirtualRow>> {
    let mut rows = Vec::new();
    for ns in namespaces {
        for (kind, status, obj) in list_shown(client, ns, &ListParams::default()).await? {
            // The API server's own Service stands for the virtual API server,
            // not for a workload, and is not synced like the tenant's.
            if (kind, ns.as_str(), obj["metadata"]["name"].as_str())
                == ("svc", "default", Some("kubernetes"))
            {
                continue;
            }
            rows.push(VirtualRow {
                kind,
                namespace: ns.clone(),
                name: name_of(&obj),
                status,
            });
        }
    }
    Ok(rows)
}

/// The host's synced pods and services, identified by their annotations
/// (never by parsing host names).
async fn host_rows(
    client: &kube::Client,
    name: &str,
    host_namespace: &str,
) -> Result<Vec<HostRow>> {
    let lp = ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={name}"));
    let shown = list_shown(client, host_namespace, &lp)
        .await
        .context("listing synced host objects")?;
    Ok(shown
        .into_iter()
        .filter_map(|(kind, status, obj)| {
            let ann = &obj["metadata"]["annotations"];
            Some(HostRow {
                kind,
                virtual_namespace: ann[ANNOTATION_OBJECT_NAMESPACE].as_str()?.to_string(),
                virtual_name: ann[ANNOTATION_OBJECT_NAME].as_str()?.to_string(),
                host_name: name_of(&obj),
                status,
            })
        })
        .collect())
}

/// The `VIRTUAL (ns/name) → HOST (host name) STATUS` table (pure): one row
/// per tenant object, the host name from the matching [`HostRow`] (`-` and
/// `not synced` when there is none) and the host's status.
pub fn side_by_side(virtual_rows: &[VirtualRow], host_rows: &[HostRow]) -> String {
    let host: BTreeMap<(&str, &str, &str), &HostRow> = host_rows
        .iter()
        .map(|h| {
            (
                (
                    h.kind,
                    h.virtual_namespace.as_str(),
                    h.virtual_name.as_str(),
                ),
                h,
            )
        })
        .collect();
    let mut table = vec![[
        "VIRTUAL (ns/name)".to_string(),
        "→".to_string(),
        "HOST (host name)".to_string(),
        "STATUS".to_string(),
    ]];
    for v in virtual_rows {
        let (host_name, status) = match host.get(&(v.kind, v.namespace.as_str(), v.name.as_str())) {
            Some(h) => (h.host_name.clone(), h.status.clone()),
            None => (
                "-".to_string(),
                format!("not synced (virtual: {})", v.status),
            ),
        };
        table.push([
            format!("{} {}/{}", v.kind, v.namespace, v.name),
            "→".to_string(),
            host_name,
            status,
        ]);
    }
    let widths: Vec<usize> = (0..3)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &table {
        for (c, cell) in r.iter().enumerate() {
            if c < 3 {
                out += cell;
                out += &" ".repeat(widths[c] - cell.chars().count() + 2);
            } else {
                out += cell;
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_names_the_node_not_its_address() {
        let pod = serde_json::json!({
            "spec": {"nodeName": "vkube-sim-node"},
            "status": {"phase": "Running", "podIP": "10.244.0.3", "hostIP": "10.0.0.10"},
        });
        assert_eq!(pod_status(&pod), "Running 10.244.0.3 on vkube-sim-node");
        assert_eq!(pod_status(&serde_json::json!({})), "Pending");
    }
    use serde_json::json;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("2 days").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn names_must_be_dns_labels() {
        assert!(valid_name("dev"));
        assert!(valid_name("team-a1"));
        for bad in ["", "Dev", "-a", "a-", "a_b", &"a".repeat(58)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn manifests_split_documents_and_lists() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n";
        let m = parse_manifests("f.yaml", text).unwrap();
        let kinds: Vec<_> = m
            .iter()
            .map(|m| m.object["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap"]);
        let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
        assert_eq!(parse_manifests("f.json", json).unwrap().len(), 1);
        let err = parse_manifests("f.yaml", "kind: Pod\nmetadata: {name: p}\n").unwrap_err();
        assert!(err.to_string().contains("missing apiVersion"), "{err}");
    }

    #[test]
    fn namespaces_and_crds_apply_first() {
        let mut kinds = [
            ("Deployment", Some(true)),
            ("Widget", None),
            ("ClusterRole", Some(false)),
            ("Namespace", Some(false)),
            ("CustomResourceDefinition", Some(false)),
        ];
        kinds.sort_by_key(|(k, n)| apply_rank(k, *n));
        let order: Vec<_> = kinds.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            order,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ClusterRole",
                "Deployment",
                "Widget"
            ]
        );
    }

    #[test]
    fn readiness_per_kind() {
        let d = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 2}});
        assert_eq!(workload_ready("Deployment", &d), Some(false));
        let d = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!(workload_ready("Deployment", &d), Some(true));
        let j = json!({"spec": {"completions": 3}, "status": {"succeeded": 3}});
        assert_eq!(workload_ready("Job", &j), Some(true));
        let j = json!({"spec": {"completions": 3}, "status": {"succeeded": 1}});
        assert_eq!(workload_ready("Job", &j), Some(false));
        assert_eq!(
            workload_ready("Pod", &json!({"status": {"phase": "Pending"}})),
            Some(false)
        );
        assert_eq!(workload_ready("Service", &json!({})), None);
    }

    #[test]
    fn table_matches_host_objects_by_annotation_identity() {
        let v = vec![
            VirtualRow {
                kind: "pod",
                namespace: "default".into(),
                name: "web".into(),
                status: "Running".into(),
            },
            VirtualRow {
                kind: "svc",
                namespace: "default".into(),
                name: "web".into(),
                status: "ClusterIP 10.96.0.5".into(),
            },
        ];
        let h = vec![HostRow {
            kind: "pod",
            virtual_namespace: "default".into(),
            virtual_name: "web".into(),
            host_name: "web-x-default-x-dev".into(),
            status: "Running 10.244.0.2 on 10.0.0.10".into(),
        }];
        let t = side_by_side(&v, &h);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("VIRTUAL (ns/name)"), "{t}");
        assert!(lines[1].contains("pod default/web") && lines[1].contains("web-x-default-x-dev"));
        assert!(lines[1].ends_with("Running 10.244.0.2 on 10.0.0.10"), "{t}");
        assert!(lines[2].contains("svc default/web") && lines[2].contains(" - "));
        assert!(
            lines[2].ends_with("not synced (virtual: ClusterIP 10.96.0.5)"),
            "{t}"
        );
    }
}
