//! `vkube server`: what runs in the tenant pod. The virtual API server, its
//! controllers and the syncer in one process against the host cluster it
//! runs in (or `--host-kubeconfig`); on start it publishes the admin
//! kubeconfig in a host Secret, then runs until SIGTERM. Flags follow the
//! shared chart contract (the chart templates them).

use crate::embedded::{self, VirtualCluster, VirtualClusterOptions};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use vkube_syncer::SyncerConfig;
use vkube_syncer::names::Tenant;
use vkube_syncer::security::PodSecurityLevel;

/// `vkube server` flags (the chart's contract).
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// The virtual cluster's name.
    #[arg(long, env = "VKUBE_NAME")]
    pub name: String,
    /// Directory for the datastore, certificates and the admin kubeconfig.
    #[arg(long, env = "VKUBE_DATA_DIR", default_value = "/data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "VKUBE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Extra DNS name or IP for the serving certificate (repeatable).
    #[arg(long = "tls-san", value_name = "NAME_OR_IP")]
    pub tls_sans: Vec<String>,
    /// Host namespace objects are synced into (the pod's own namespace,
    /// from the downward API).
    #[arg(long, env = "POD_NAMESPACE")]
    pub host_namespace: String,
    /// Kubeconfig of the host cluster; default: the in-cluster config.
    #[arg(long, value_name = "FILE")]
    pub host_kubeconfig: Option<PathBuf>,
    /// Host Secret (key `config`) the admin kubeconfig is written to;
    /// default `vkube-NAME-kubeconfig`.
    #[arg(long, value_name = "NAME")]
    pub kubeconfig_secret: Option<String>,
    /// Server URL written into that kubeconfig; default
    /// `https://vkube-NAME.NAMESPACE.svc:443`.
    #[arg(long, value_name = "URL")]
    pub kubeconfig_server: Option<String>,
    /// Owner of every synced host object and of the kubeconfig Secret, e.g.
    /// `statefulset/vkube-NAME`.
    #[arg(long, value_name = "KIND/NAME")]
    pub host_owner: Option<String>,
    /// Pod Security Standards level enforced on synced pods: privileged,
    /// baseline or restricted.
    #[arg(long, default_value = "baseline", value_name = "LEVEL")]
    pub pod_security: PodSecurityLevel,
    /// Sync every ConfigMap (default: only those synced pods reference).
    #[arg(long)]
    pub sync_all_configmaps: bool,
    /// Sync every Secret (default: only those synced pods reference).
    #[arg(long)]
    pub sync_all_secrets: bool,
    /// Host ServiceAccount the tenant's pods run as.
    #[arg(long, value_name = "NAME")]
    pub host_service_account: Option<String>,
    /// Which host nodes the tenant sees as Nodes: auto (all when the host
    /// lets this process list nodes, else used), used (those running its
    /// pods), all, or a label selector such as `pool=tenants`.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub sync_nodes: vkube_syncer::node::NodeVisibility,
    /// Controllers to run (kube-controller-manager's --controllers syntax);
    /// the node simulator is never among them here.
    #[arg(long, default_value = "*", env = "VKUBE_CONTROLLERS")]
    pub controllers: String,
    /// IPv4 CIDR Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = vkube_core::service::ServiceCidr::parse)]
    pub service_cidr: vkube_core::service::ServiceCidr,
    /// The host Service in front of this server; default `vkube-NAME`. Its
    /// ClusterIP is what tenant pods use to reach this server
    /// (`KUBERNETES_SERVICE_HOST`, the tenant's `kubernetes` Service, a
    /// serving-certificate SAN).
    #[arg(long, value_name = "NAME")]
    pub host_service: Option<String>,
    /// The host Service carrying the tenant DNS on port 53; its ClusterIP
    /// becomes synced pods' nameserver. Unset: pods keep the host's DNS.
    #[arg(long, value_name = "NAME")]
    pub dns_service: Option<String>,
    /// The tenant's cluster domain (DNS names `SVC.NS.svc.DOMAIN`).
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    pub cluster_domain: String,
    /// UDP and TCP address of the tenant DNS server (the chart passes
    /// `0.0.0.0:1053`), or `off`.
    #[arg(long, default_value = "off", value_name = "ADDR|off")]
    pub dns_listen: String,
    /// Host Secret (keys `token` and `ca.crt`) to publish a bearer token
    /// in that may read `/metrics` and the health endpoints and nothing
    /// else (group `system:monitoring`), for a Prometheus in the host
    /// (the chart's ServiceMonitor reads it). Unset: no such token.
    #[arg(long, value_name = "NAME")]
    pub metrics_token_secret: Option<String>,
    #[command(flatten)]
    pub kinds: crate::syncer::SyncKindArgs,
    #[command(flatten)]
    pub serving: crate::serving::ServingArgs,
}

/// What the host Service in front of `vkube server` gives the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostServiceAddress {
    /// Its ClusterIP.
    pub ip: std::net::IpAddr,
    /// The port of its `https` port (the first port when none is named so).
    pub https_port: u16,
}

/// Reads the address tenant pods reach this server at from its host
/// Service (pure): `None` for a headless Service or one without a valid
/// ClusterIP.
pub fn host_service_address(
    svc: &k8s_openapi::api::core::v1::Service,
) -> Option<HostServiceAddress> {
    let spec = svc.spec.as_ref()?;
    let ip = spec.cluster_ip.as_deref()?.parse().ok()?;
    let ports = spec.ports.as_deref().unwrap_or_default();
    let https = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("https"))
        .or_else(|| ports.first())?;
    Some(HostServiceAddress {
        ip,
        https_port: u16::try_from(https.port).ok()?,
    })
}

/// Reads a host Service (`None` when absent or unreadable, with a warning).
async fn get_host_service(
    host: &kube::Client,
    namespace: &str,
    name: &str,
) -> Option<k8s_openapi::api::core::v1::Service> {
    match Api::<k8s_openapi::api::core::v1::Service>::namespaced(host.clone(), namespace)
        .get_opt(name)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(service = %name, error = %e, "reading a host Service");
            None
        }
    }
}

impl ServerArgs {
    /// The kubeconfig Secret's name (`--kubeconfig-secret` or its default).
    pub fn secret_name(&self) -> String {
        self.kubeconfig_secret
            .clone()
            .unwrap_or_else(|| format!("vkube-{}-kubeconfig", self.name))
    }

    /// The URL in the published kubeconfig (`--kubeconfig-server` or its default).
    pub fn server_url(&self) -> String {
        self.kubeconfig_server.clone().unwrap_or_else(|| {
            format!(
                "https://vkube-{}.{}.svc:443",
                self.name, self.host_namespace
            )
        })
    }
}

/// The kubeconfig Secret as a server-side apply body (pure).
pub fn kubeconfig_secret(
    name: &str,
    namespace: &str,
    vc_name: &str,
    kubeconfig: &str,
    owner: Option<&OwnerReference>,
) -> serde_json::Value {
    let mut secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "vkube",
                "app.kubernetes.io/instance": vc_name,
                "vkube.dev/virtual-cluster": vc_name,
            },
        },
        "type": "Opaque",
        "stringData": {"config": kubeconfig},
    });
    if let Some(o) = owner {
        secret["metadata"]["ownerReferences"] = json!([o]);
    }
    secret
}

/// The metrics token Secret as a server-side apply body (pure): the
/// scraper's bearer `token` and the cluster CA (`ca.crt`) that verifies
/// the server, labelled and owned as the kubeconfig Secret.
pub fn metrics_token_secret(
    name: &str,
    namespace: &str,
    vc_name: &str,
    token: &str,
    ca_pem: &str,
    owner: Option<&OwnerReference>,
) -> serde_json::Value {
    let mut secret = kubeconfig_secret(name, namespace, vc_name, "", owner);
    secret["stringData"] = json!({"token": token, "ca.crt": ca_pem});
    secret
}

/// The token in `path` (its mode tightened to 0600 if wider), or a new
/// one written there atomically (a 0600 temporary file renamed into place)
/// so it outlives restarts: 256 bits from a cryptographically secure
/// generator (rand's thread generator, seeded by the OS), hex-encoded.
///
/// # Errors
/// An unreadable or unwritable file.
pub fn load_or_create_token(path: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Ok(t) = std::fs::read_to_string(path)
        && !t.trim().is_empty()
    {
        let perms = std::fs::metadata(path)?.permissions();
        if perms.mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
        }
        return Ok(t.trim().to_string());
    }
    use std::io::Write as _;
    let token: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Writes Secret `name` (the `what` Secret, for the error) with
/// server-side apply as vkube's field manager, taking its fields over.
///
/// # Errors
/// The write refused (e.g. 403 without RBAC on Secrets).
async fn apply_secret(
    secrets: &Api<Secret>,
    name: &str,
    body: &serde_json::Value,
    what: &str,
) -> Result<()> {
    secrets
        .patch(
            name,
            &PatchParams::apply(crate::up::FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .with_context(|| {
            let ns = secrets.namespace().unwrap_or_default();
            format!("writing the {what} Secret {ns}/{name}")
        })?;
    Ok(())
}

/// The `(host, port)` of an `https://` URL, what host pods get as
/// `KUBERNETES_SERVICE_HOST`/`_PORT` (pure; port 443 when absent, `None`
/// for anything that is not an absolute URL).
pub fn kubernetes_service(url: &str) -> Option<(String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), uri.port_u16().unwrap_or(443)))
}

/// Runs `vkube server` until SIGINT/SIGTERM.
///
/// # Errors
/// No host client, an unresolvable owner, the Secret write refused, or the
/// virtual cluster failing to start.
pub async fn run(args: ServerArgs) -> Result<()> {
    let host = match &args.host_kubeconfig {
        Some(f) => embedded::client_from_file(f).await?,
        None => vkube_controllers::client_from_config(
            kube::Config::infer()
                .await
                .context("no in-cluster host config; pass --host-kubeconfig")?,
        )?,
    };
    let owner = match &args.host_owner {
        Some(o) => Some(vkube_syncer::resolve_owner(&host, &args.host_namespace, o).await?),
        None => None,
    };
    let host_service = args
        .host_service
        .clone()
        .unwrap_or_else(|| format!("vkube-{}", args.name));
    let address = get_host_service(&host, &args.host_namespace, &host_service)
        .await
        .as_ref()
        .and_then(host_service_address);
    let dns_address = match &args.dns_service {
        Some(name) => get_host_service(&host, &args.host_namespace, name)
            .await
            .as_ref()
            .and_then(host_service_address),
        None => None,
    };
    if address.is_none() {
        tracing::warn!(service = %host_service,
            "no ClusterIP for the host Service: tenant pods reach this server by the kubeconfig URL and use the host's DNS");
    }
    let dns_listen = match args.dns_listen.as_str() {
        "off" => None,
        a => Some(
            a.parse::<SocketAddr>()
                .with_context(|| format!("--dns-listen {a:?}: not an address or `off`"))?,
        ),
    };
    let mut tls_sans = args.tls_sans.clone();
    if let Some(a) = &address {
        tls_sans.push(a.ip.to_string());
    }
    let mut static_tokens = std::collections::HashMap::new();
    // The metrics token Secret's name with the token it publishes.
    let metrics_token = match &args.metrics_token_secret {
        Some(name) => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating {}", args.data_dir.display()))?;
            let token = load_or_create_token(&args.data_dir.join("metrics.token"))?;
            static_tokens.insert(token.clone(), embedded::metrics_scraper());
            Some((name, token))
        }
        None => None,
    };
    let opts = VirtualClusterOptions {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        tls_sans,
        service_cidr: args.service_cidr,
        controllers: args.controllers.clone(),
        context_name: format!("vkube-{}", args.name),
        limits: args.serving.limits(),
        audit: args.serving.audit()?,
        authentication: args.serving.authentication()?,
        anonymous_auth: args.serving.anonymous_auth,
        authentication_key_files: args.serving.key_files(),
        static_tokens,
        kubernetes_service_ip: address.as_ref().map(|a| a.ip),
        dns: dns_listen.map(|listen| embedded::DnsOptions {
            listen,
            cluster_domain: args.cluster_domain.clone(),
        }),
    };
    let tenant = Tenant::new(&args.name, &args.host_namespace)
        .context("--name and --host-namespace must be DNS labels")?;
    let mut sync = SyncerConfig::new(tenant);
    sync.sync_all_configmaps = args.sync_all_configmaps;
    sync.sync_all_secrets = args.sync_all_secrets;
    sync.pod_security = args.pod_security;
    sync.host_service_account = args.host_service_account.clone();
    sync.nodes = args.sync_nodes.clone();
    args.kinds.apply(&mut sync)?;
    sync.owner = owner.clone();
    // In-pod clients reach the virtual API server at its host Service's
    // ClusterIP (an address, so no DNS is needed), else where the
    // published kubeconfig points.
    sync.kubernetes_service = match &address {
        Some(a) => Some((a.ip.to_string(), a.https_port)),
        None => kubernetes_service(&args.server_url()),
    };
    // Tenant pods resolve through the tenant DNS when a host Service
    // carries it.
    if let Some(a) = dns_address.as_ref().filter(|_| dns_listen.is_some()) {
        sync.dns = Some(vkube_syncer::pod::TenantDns {
            nameserver: a.ip.to_string(),
            cluster_domain: args.cluster_domain.clone(),
        });
    }
    let signal = embedded::listen_for_signal();
    let vc = VirtualCluster::start(&opts, host.clone(), sync).await?;
    let kubeconfig = vc
        .server
        .pki
        .admin_kubeconfig(&args.server_url(), &opts.context_name);
    let secret_name = args.secret_name();
    let body = kubeconfig_secret(
        &secret_name,
        &args.host_namespace,
        &args.name,
        &kubeconfig,
        owner.as_ref(),
    );
    let secrets: Api<Secret> = Api::namespaced(host, &args.host_namespace);
    let written = async {
        apply_secret(&secrets, &secret_name, &body, "kubeconfig").await?;
        if let Some((name, token)) = &metrics_token {
            let body = metrics_token_secret(
                name,
                &args.host_namespace,
                &args.name,
                token,
                &vc.server.pki.ca_cert,
                owner.as_ref(),
            );
            apply_secret(&secrets, name, &body, "metrics token").await?;
        }
        anyhow::Ok(())
    }
    .await;
    let result = match written {
        Ok(_) => {
            tracing::info!(
                url = %vc.server.url(),
                secret = %secret_name,
                controllers = %vc.controller_names.join(","),
                "vkube server ready"
            );
            signal.await
        }
        Err(e) => Err(e),
    };
    vc.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServerArgs,
    }

    #[test]
    fn the_host_service_gives_the_address() {
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
            "spec": {"clusterIP": "10.96.44.5", "ports": [
                {"name": "metrics", "port": 9000},
                {"name": "https", "port": 443},
            ]},
        }))
        .unwrap();
        assert_eq!(
            host_service_address(&svc),
            Some(HostServiceAddress {
                ip: "10.96.44.5".parse().unwrap(),
                https_port: 443,
            })
        );
        let headless: k8s_openapi::api::core::v1::Service = serde_json::from_value(
            json!({"spec": {"clusterIP": "None", "ports": [{"name": "https", "port": 443}]}}),
        )
        .unwrap();
        assert_eq!(host_service_address(&headless), None);
    }

    #[test]
    fn defaults_follow_the_chart_contract() {
        let a = Cli::try_parse_from(["x", "--name", "t1", "--host-namespace", "ns1"])
            .unwrap()
            .args;
        assert_eq!(a.secret_name(), "vkube-t1-kubeconfig");
        assert_eq!(a.server_url(), "https://vkube-t1.ns1.svc:443");
        assert_eq!(a.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(a.data_dir, PathBuf::from("/data"));
        assert_eq!(a.pod_security, PodSecurityLevel::Baseline);
        assert!(
            Cli::try_parse_from([
                "x",
                "--name",
                "t",
                "--host-namespace",
                "n",
                "--pod-security",
                "lax"
            ])
            .is_err()
        );
    }

    #[test]
    fn kubernetes_service_comes_from_the_published_url() {
        assert_eq!(
            kubernetes_service("https://vkube-t1.ns1.svc:443"),
            Some(("vkube-t1.ns1.svc".to_string(), 443))
        );
        assert_eq!(
            kubernetes_service("https://10.0.0.7"),
            Some(("10.0.0.7".to_string(), 443))
        );
        assert_eq!(
            kubernetes_service("https://[fd00::1]:6443"),
            Some(("fd00::1".to_string(), 6443))
        );
        assert_eq!(kubernetes_service("not a url"), None);
    }

    #[test]
    fn metrics_token_persists_and_its_secret_carries_token_and_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.token");
        let token = load_or_create_token(&path).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(load_or_create_token(&path).unwrap(), token);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A token file left readable by others is tightened, not trusted as is.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_or_create_token(&path).unwrap(), token);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let s = metrics_token_secret("m", "ns1", "t1", "tok", "CA", None);
        assert_eq!(s["stringData"], json!({"token": "tok", "ca.crt": "CA"}));
        assert_eq!(s["metadata"]["labels"]["vkube.dev/virtual-cluster"], "t1");
    }

    #[test]
    fn secret_carries_config_labels_and_owner() {
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "vkube-t1".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: None,
        };
        let s = kubeconfig_secret("vkube-t1-kubeconfig", "ns1", "t1", "KC", Some(&owner));
        assert_eq!(s["stringData"]["config"], "KC");
        assert_eq!(s["metadata"]["labels"]["vkube.dev/virtual-cluster"], "t1");
        assert_eq!(s["metadata"]["ownerReferences"][0]["uid"], "u1");
        let s = kubeconfig_secret("n", "ns1", "t1", "KC", None);
        assert!(s["metadata"].get("ownerReferences").is_none());
    }
}
