//! Flags of the request chain shared by `vkube apiserver` and `vkube
//! server`, named as kube-apiserver's.

use anyhow::{Context, Result};
use apiserver_shim::filters::audit::{AuditConfig, policy::Policy};
use apiserver_shim::filters::authentication::config::AuthenticationConfiguration;
use apiserver_shim::filters::limits::LimitsConfig;
use std::path::PathBuf;

/// Limits on requests served at once (kube-apiserver's flags of the same
/// names).
#[derive(clap::Args, Debug, Clone)]
pub struct ServingArgs {
    /// Read-only requests (get, list) served at once; more wait in a queue
    /// fair between users, and get 429 when their user's queue is full or
    /// their wait runs out. Watches, logs, exec and port-forward are not
    /// counted, nor system:masters. 0: no limit.
    #[arg(long, default_value_t = 400, env = "VKUBE_MAX_REQUESTS_INFLIGHT")]
    pub max_requests_inflight: usize,
    /// Mutating requests served at once, as --max-requests-inflight.
    #[arg(
        long,
        default_value_t = 200,
        env = "VKUBE_MAX_MUTATING_REQUESTS_INFLIGHT"
    )]
    pub max_mutating_requests_inflight: usize,
    /// An audit.k8s.io/v1 Policy (YAML or JSON) saying which requests are
    /// recorded and at what level; with --audit-log-path, turns auditing on.
    #[arg(long, value_name = "FILE", env = "VKUBE_AUDIT_POLICY_FILE")]
    pub audit_policy_file: Option<PathBuf>,
    /// Where audit events are written, one JSON line each; `-` is stdout.
    #[arg(long, value_name = "FILE|-", env = "VKUBE_AUDIT_LOG_PATH")]
    pub audit_log_path: Option<PathBuf>,
    /// Megabytes an audit log file reaches before it is rotated (0: never).
    #[arg(long, default_value_t = 100, value_name = "MB")]
    pub audit_log_maxsize: usize,
    /// Rotated audit log files kept (0: every one).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub audit_log_maxbackup: usize,
    /// An apiserver.config.k8s.io/v1 AuthenticationConfiguration (YAML or
    /// JSON): the OIDC issuers whose JWTs authenticate users, with their
    /// audiences, claim mappings and CEL validation rules.
    #[arg(long, value_name = "FILE", env = "VKUBE_AUTHENTICATION_CONFIG")]
    pub authentication_config: Option<PathBuf>,
    /// Serve requests without credentials as system:anonymous (group
    /// system:unauthenticated), for what RBAC grants it: /healthz, /livez,
    /// /readyz and /version by default. Off: such requests get 401.
    #[arg(long, env = "VKUBE_ANONYMOUS_AUTH")]
    pub anonymous_auth: bool,
    /// An OIDC issuer's signing keys as a JWKS file, for hosts that cannot
    /// reach the issuer: URL=FILE, URL as in --authentication-config
    /// (repeatable). Replacing the file rotates the keys.
    #[arg(long = "authentication-jwks-file", value_name = "URL=FILE", value_parser = parse_key_file)]
    pub authentication_jwks_files: Vec<(String, PathBuf)>,
}

fn parse_key_file(s: &str) -> Result<(String, PathBuf), String> {
    let (url, file) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not URL=FILE"))?;
    Ok((url.to_string(), PathBuf::from(file)))
}

impl ServingArgs {
    /// The limits these flags give.
    pub fn limits(&self) -> LimitsConfig {
        LimitsConfig {
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            ..LimitsConfig::default()
        }
    }

    /// The JWKS files by issuer URL.
    pub fn key_files(&self) -> std::collections::BTreeMap<String, PathBuf> {
        self.authentication_jwks_files.iter().cloned().collect()
    }

    /// The structured authentication configuration, if given (validated
    /// when the server starts).
    ///
    /// # Errors
    /// A file that cannot be read or is not an AuthenticationConfiguration.
    pub fn authentication(&self) -> Result<Option<AuthenticationConfiguration>> {
        let Some(path) = &self.authentication_config else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --authentication-config {}", path.display()))?;
        AuthenticationConfiguration::parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--authentication-config {}: {e}", path.display()))
    }

    /// The audit configuration these flags give: none unless both a policy
    /// and a log path are given.
    ///
    /// # Errors
    /// A policy file that cannot be read or is not an audit Policy.
    pub fn audit(&self) -> Result<Option<AuditConfig>> {
        let (Some(policy_file), Some(log_path)) = (&self.audit_policy_file, &self.audit_log_path)
        else {
            if self.audit_policy_file.is_some() != self.audit_log_path.is_some() {
                tracing::warn!(
                    "auditing is off: it takes both --audit-policy-file and --audit-log-path"
                );
            }
            return Ok(None);
        };
        let text = std::fs::read_to_string(policy_file)
            .with_context(|| format!("reading --audit-policy-file {}", policy_file.display()))?;
        let policy = Policy::parse(&text)
            .map_err(|e| anyhow::anyhow!("--audit-policy-file {}: {e}", policy_file.display()))?;
        Ok(Some(AuditConfig {
            policy,
            log_path: log_path.clone(),
            max_size_megabytes: self.audit_log_maxsize,
            max_backups: self.audit_log_maxbackup,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serving: ServingArgs,
    }

    fn parse(args: &[&str]) -> ServingArgs {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .expect("parses")
            .serving
    }

    #[test]
    fn limits_default_to_kube_apiservers() {
        let limits = parse(&[]).limits();
        assert_eq!(limits.max_requests_inflight, 400);
        assert_eq!(limits.max_mutating_requests_inflight, 200);
        let limits = parse(&["--max-requests-inflight=0"]).limits();
        assert_eq!(limits.max_requests_inflight, 0);
    }

    #[test]
    fn audit_needs_a_policy_and_a_path_and_reads_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n",
        )
        .unwrap();
        let policy_flag = format!("--audit-policy-file={}", policy.display());
        assert!(parse(&[&policy_flag]).audit().unwrap().is_none());
        let audit = parse(&[&policy_flag, "--audit-log-path=-"])
            .audit()
            .unwrap()
            .unwrap();
        assert_eq!(audit.log_path, PathBuf::from("-"));
        assert_eq!(audit.max_size_megabytes, 100);
        assert_eq!(audit.policy.rules.len(), 1);
        std::fs::write(&policy, "kind: Nope\n").unwrap();
        let err = parse(&[&policy_flag, "--audit-log-path=-"])
            .audit()
            .unwrap_err();
        assert!(err.to_string().contains("--audit-policy-file"), "{err}");
    }
}
