//! Kube contexts for virtual clusters in the user's kubeconfig: pure edits
//! of [`Kubeconfig`] values plus loading and saving the file kubectl uses
//! (`$KUBECONFIG`'s first entry, else `~/.kube/config`; see "Organizing
//! Cluster Access Using kubeconfig Files" in the Kubernetes docs).

use anyhow::{Context as _, Result, bail};
use kube::config::{
    Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext, NamedExtension,
};
use std::path::PathBuf;

/// Context extension naming the context that was current before
/// `vkube connect` switched to a virtual cluster (restored by disconnect).
pub const PREVIOUS_CONTEXT_EXTENSION: &str = "vkube.dev/previous-context";

/// Prefix of every context vkube adds.
pub const CONTEXT_PREFIX: &str = "vkube_";

/// Context (and cluster and user) name for virtual cluster `name` in host
/// namespace `namespace`: `vkube_NAME_NS`.
pub fn context_name(name: &str, namespace: &str) -> String {
    format!("{CONTEXT_PREFIX}{name}_{namespace}")
}

/// The host part of an `https://HOST[:PORT][/path]` URL (IPv6 brackets
/// kept off), or `None` if the URL has no host.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then_some(host)
}

/// `https://HOST:PORT`, bracketing IPv6 literals.
pub fn https_url(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// Turns the admin kubeconfig the server wrote into one context named
/// `context` whose cluster points at `server` (an https URL). TLS
/// verification stays on: when `server`'s host differs from the host in the
/// admin kubeconfig (a name in the serving certificate's SANs), that host
/// becomes `tls-server-name`. Errors: the admin kubeconfig has no current
/// context, or its cluster or user is missing.
pub fn for_endpoint(admin: &Kubeconfig, context: &str, server: &str) -> Result<Kubeconfig> {
    let current = admin
        .current_context
        .as_deref()
        .or_else(|| admin.contexts.first().map(|c| c.name.as_str()))
        .context("the admin kubeconfig has no context")?;
    let ctx = admin
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.clone())
        .with_context(|| format!("the admin kubeconfig lacks context {current}"))?;
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.clone())
        .with_context(|| format!("the admin kubeconfig lacks cluster {}", ctx.cluster))?;
    let user_name = ctx.user.clone().unwrap_or_default();
    let user = admin
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.clone())
        .with_context(|| format!("the admin kubeconfig lacks user {user_name}"))?;
    let (mut cluster, user) = inline_only(cluster, user)?;
    let old_host = cluster
        .server
        .as_deref()
        .and_then(url_host)
        .map(str::to_owned);
    if cluster.tls_server_name.is_none() && old_host.as_deref() != url_host(server) {
        cluster.tls_server_name = old_host;
    }
    cluster.server = Some(server.to_owned());
    Ok(Kubeconfig {
        clusters: vec![NamedCluster {
            name: context.to_owned(),
            cluster: Some(cluster),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: context.to_owned(),
            auth_info: Some(user),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: context.to_owned(),
            context: Some(Context {
                cluster: context.to_owned(),
                user: Some(context.to_owned()),
                namespace: ctx.namespace,
                extensions: None,
                other: Default::default(),
            }),
            ..Default::default()
        }],
        current_context: Some(context.to_owned()),
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        ..Default::default()
    })
}

/// Keeps only the inline credentials of an admin kubeconfig read from the
/// host (server, CA data, server name; client certificate and key data or a
/// bearer token) and refuses anything that would make this machine run a
/// program or read a local file (exec and auth-provider plugins, file paths)
/// or skip TLS verification: whoever can write that Secret must not get
/// code execution or a MITM on the user connecting. Errors name the field.
fn inline_only(
    cluster: kube::config::Cluster,
    user: kube::config::AuthInfo,
) -> Result<(kube::config::Cluster, kube::config::AuthInfo)> {
    let refused = [
        ("exec", user.exec.is_some()),
        ("auth-provider", user.auth_provider.is_some()),
        ("tokenFile", user.token_file.is_some()),
        ("client-certificate", user.client_certificate.is_some()),
        ("client-key", user.client_key.is_some()),
        (
            "certificate-authority",
            cluster.certificate_authority.is_some(),
        ),
        ("proxy-url", cluster.proxy_url.is_some()),
        (
            "insecure-skip-tls-verify",
            cluster.insecure_skip_tls_verify == Some(true),
        ),
    ];
    if let Some((field, _)) = refused.iter().find(|(_, set)| *set) {
        bail!(
            "the admin kubeconfig in the host Secret sets `{field}`, which vkube refuses \
             (only inline certificate data or a token are accepted); recreate the virtual cluster"
        );
    }
    if cluster.certificate_authority_data.is_none() {
        bail!(
            "the admin kubeconfig in the host Secret has no certificate-authority-data to verify the server with"
        );
    }
    let cluster = kube::config::Cluster {
        server: cluster.server,
        certificate_authority_data: cluster.certificate_authority_data,
        tls_server_name: cluster.tls_server_name,
        ..Default::default()
    };
    let user = kube::config::AuthInfo {
        client_certificate_data: user.client_certificate_data,
        client_key_data: user.client_key_data,
        token: user.token,
        ..Default::default()
    };
    Ok((cluster, user))
}

/// The context recorded as "previous" on context `name`, if any.
pub fn previous_context(config: &Kubeconfig, name: &str) -> Option<String> {
    let ctx = config
        .contexts
        .iter()
        .find(|c| c.name == name)?
        .context
        .as_ref()?;
    ctx.extensions
        .iter()
        .flatten()
        .find(|e| e.name == PREVIOUS_CONTEXT_EXTENSION)
        .and_then(|e| e.extension.as_str().map(str::to_owned))
}

/// The host context: the current context, or, when that is a vkube context,
/// the context it recorded as previous. `None`: no current context.
pub fn host_context(config: &Kubeconfig) -> Option<String> {
    let current = config.current_context.clone()?;
    if current.starts_with(CONTEXT_PREFIX) {
        previous_context(config, &current).or(Some(current))
    } else {
        Some(current)
    }
}

/// Removes the cluster, user and context named `name` (no-op if absent);
/// if it was current, the recorded previous context (when it still exists)
/// becomes current, else none is.
pub fn remove_context(mut config: Kubeconfig, name: &str) -> Kubeconfig {
    let previous = previous_context(&config, name);
    config.clusters.retain(|c| c.name != name);
    config.auth_infos.retain(|u| u.name != name);
    config.contexts.retain(|c| c.name != name);
    if config.current_context.as_deref() == Some(name) {
        config.current_context = previous.filter(|p| config.contexts.iter().any(|c| &c.name == p));
    }
    config
}

/// Adds `tenant`'s single context (from [`for_endpoint`]) to `user`,
/// replacing one of the same name, records the host context as its previous
/// context and makes it current.
pub fn merge_context(user: Kubeconfig, tenant: Kubeconfig) -> Kubeconfig {
    let Some(name) = tenant.current_context.clone() else {
        return user;
    };
    let previous = host_context(&user).filter(|p| p != &name);
    let mut user = remove_context(user, &name);
    user.clusters.extend(tenant.clusters);
    user.auth_infos.extend(tenant.auth_infos);
    for mut ctx in tenant.contexts {
        if let (Some(c), Some(prev)) = (ctx.context.as_mut(), previous.as_ref()) {
            c.extensions = Some(vec![NamedExtension {
                name: PREVIOUS_CONTEXT_EXTENSION.into(),
                extension: serde_json::Value::String(prev.clone()),
            }]);
        }
        user.contexts.push(ctx);
    }
    user.current_context = Some(name);
    if user.api_version.is_none() {
        user.api_version = Some("v1".into());
        user.kind = Some("Config".into());
    }
    user
}

/// The kubeconfig file vkube edits: the first entry of `$KUBECONFIG`, else
/// `$HOME/.kube/config`. Errors: neither is set.
pub fn user_path() -> Result<PathBuf> {
    if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty())
        && let Some(first) = std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").context("neither KUBECONFIG nor HOME is set")?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

/// Loads the user's kubeconfig ([`user_path`]); a missing file is empty.
pub fn load_user() -> Result<Kubeconfig> {
    let path = user_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Ok(Kubeconfig::default()),
        Ok(text) => Kubeconfig::from_yaml(&text)
            .with_context(|| format!("parsing kubeconfig {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Kubeconfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading kubeconfig {}", path.display())),
    }
}

/// Serializes `config` as YAML.
/// How vkube writes YAML for people and line-based tools: long strings
/// (certificate data, tokens) on one line, as kubectl writes them, not
/// folded into block scalars.
pub fn yaml_output() -> serde_saphyr::SerializerOptions {
    serde_saphyr::ser_options! {
        prefer_block_scalars: false,
    }
}

pub fn to_yaml(config: &Kubeconfig) -> Result<String> {
    Ok(serde_saphyr::to_string_with_options(config, yaml_output())?)
}

/// Writes `config` to the user's kubeconfig ([`user_path`]), mode 0600.
pub fn save_user(config: &Kubeconfig) -> Result<PathBuf> {
    let path = user_path()?;
    write_private(&path, &to_yaml(config)?)?;
    Ok(path)
}

/// Writes `text` to `path` readable only by the owner (it holds keys).
pub fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Fails unless `name` is a context vkube added.
pub fn ensure_vkube_context(name: &str) -> Result<()> {
    if !name.starts_with(CONTEXT_PREFIX) {
        bail!("the current context {name} is not a vkube context; nothing to disconnect");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: vkube
  cluster:
    server: https://vkube-t.ns.svc:443
    certificate-authority-data: Q0E=
users:
- name: admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
contexts:
- name: vkube
  context: {cluster: vkube, user: admin}
current-context: vkube
"#;

    const USER: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: host
  cluster: {server: https://10.0.0.1:6443}
users:
- name: host
  user: {token: abc}
contexts:
- name: host
  context: {cluster: host, user: host}
current-context: host
"#;

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://a.b:443"), Some("a.b"));
        assert_eq!(url_host("https://a.b/x"), Some("a.b"));
        assert_eq!(url_host("https://[::1]:8443"), Some("::1"));
        assert_eq!(url_host("https://"), None);
        assert_eq!(https_url("::1", 1), "https://[::1]:1");
        assert_eq!(context_name("t", "ns"), "vkube_t_ns");
    }

    #[test]
    fn endpoint_rewrite_keeps_verification_with_the_old_host_as_server_name() {
        let admin = Kubeconfig::from_yaml(ADMIN).unwrap();
        let k = for_endpoint(&admin, "vkube_t_ns", "https://127.0.0.1:4000").unwrap();
        let c = k.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(c.server.as_deref(), Some("https://127.0.0.1:4000"));
        assert_eq!(c.tls_server_name.as_deref(), Some("vkube-t.ns.svc"));
        assert_eq!(c.certificate_authority_data.as_deref(), Some("Q0E="));
        assert_eq!(c.insecure_skip_tls_verify, None);
        assert_eq!(k.current_context.as_deref(), Some("vkube_t_ns"));
        assert_eq!(k.auth_infos[0].name, "vkube_t_ns");
        // Same host: no server name override.
        let same = for_endpoint(&admin, "x", "https://vkube-t.ns.svc:443").unwrap();
        assert_eq!(
            same.clusters[0].cluster.as_ref().unwrap().tls_server_name,
            None
        );
        assert!(for_endpoint(&Kubeconfig::default(), "x", "https://a").is_err());
    }

    #[test]
    fn plugins_files_and_insecure_settings_are_refused() {
        for (from, to, field) in [
            (
                "    client-key-data: S0VZ\n",
                "    client-key-data: S0VZ\n    exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}\n",
                "exec",
            ),
            (
                "    client-key-data: S0VZ\n",
                "    client-key: /etc/shadow\n",
                "client-key",
            ),
            (
                "    certificate-authority-data: Q0E=\n",
                "    certificate-authority-data: Q0E=\n    insecure-skip-tls-verify: true\n",
                "insecure-skip-tls-verify",
            ),
            (
                "    certificate-authority-data: Q0E=\n",
                "    certificate-authority: /tmp/ca\n",
                "certificate-authority",
            ),
        ] {
            let text = ADMIN.replace(from, to);
            assert_ne!(text, ADMIN);
            let admin = Kubeconfig::from_yaml(&text).unwrap();
            let err = for_endpoint(&admin, "x", "https://a:1")
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn connect_then_disconnect_restores_the_host_context() {
        let admin = Kubeconfig::from_yaml(ADMIN).unwrap();
        let user = Kubeconfig::from_yaml(USER).unwrap();
        let tenant = for_endpoint(&admin, "vkube_t_ns", "https://1.2.3.4:443").unwrap();
        let merged = merge_context(user, tenant.clone());
        assert_eq!(merged.current_context.as_deref(), Some("vkube_t_ns"));
        assert_eq!(
            previous_context(&merged, "vkube_t_ns").as_deref(),
            Some("host")
        );
        assert_eq!(host_context(&merged).as_deref(), Some("host"));
        assert_eq!(merged.contexts.len(), 2);
        // Connecting again replaces the entry and keeps the host as previous.
        let again = merge_context(merged, tenant);
        assert_eq!(again.contexts.len(), 2);
        assert_eq!(again.clusters.len(), 2);
        assert_eq!(
            previous_context(&again, "vkube_t_ns").as_deref(),
            Some("host")
        );
        // The YAML round trip keeps the keys and the extension.
        let text = to_yaml(&again).unwrap();
        assert!(text.contains("client-key-data: S0VZ"), "{text}");
        let back = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(
            previous_context(&back, "vkube_t_ns").as_deref(),
            Some("host")
        );
        let removed = remove_context(back, "vkube_t_ns");
        assert_eq!(removed.current_context.as_deref(), Some("host"));
        assert_eq!(removed.contexts.len(), 1);
        assert_eq!(removed.clusters.len(), 1);
        assert_eq!(removed.auth_infos.len(), 1);
    }
}
