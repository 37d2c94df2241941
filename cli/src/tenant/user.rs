//! Users of a virtual cluster: a client certificate for a user (and at most
//! one group), issued through the virtual cluster's own
//! CertificateSigningRequest API with signer
//! `kubernetes.io/kube-apiserver-client` and approved with its admin
//! credentials, as the Kubernetes docs issue a certificate for a user
//! ("Certificates and Certificate Signing Requests"), and the kubeconfig
//! that uses it. The certificate is signed by the virtual cluster's CA, as
//! `kubeadm kubeconfig user` signs one, without the CA key ever leaving the
//! server.

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use serde_json::json;
use std::time::Duration;

/// The signer of client certificates kube-apiserver trusts.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// A certificate's lifetime: a Go duration such as `8760h`, `24h` or
/// `90m` (kubeadm's `--validity-period`); the CSR API's floor is 10 minutes.
///
/// # Errors
/// Not a duration, or shorter than 10 minutes.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration such as 24h or 90m: {e}"))?;
    let secs = d.as_secs();
    if secs < 600 {
        return Err(format!(
            "{s:?} is shorter than 10m, the shortest certificate a CertificateSigningRequest asks for"
        ));
    }
    Ok(Duration::from_secs(secs.unsigned_abs()))
}

/// The `generateName` of the CertificateSigningRequest of `user` (pure):
/// its DNS subdomain form, e.g. `vkube-user-alice-example.com-` (the server
/// adds five random characters).
pub fn generate_name(user: &str) -> String {
    let mut base: String = user
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(200);
    let base = base.trim_matches(|c| c == '-' || c == '.');
    format!("vkube-user-{base}-").replace("--", "-")
}

/// The CertificateSigningRequest for PEM request `csr_pem` of `user`, valid
/// `ttl` (pure).
pub fn request(user: &str, csr_pem: &str, ttl: Duration) -> Result<CertificateSigningRequest> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(csr_pem);
    Ok(serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": generate_name(user)},
        "spec": {
            "request": b64,
            "signerName": CLIENT_SIGNER,
            "expirationSeconds": i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX),
            "usages": ["digital signature", "key encipherment", "client auth"],
        },
    }))?)
}

/// `base` (one context, as [`super::kubeconfig::for_endpoint`] gives) with
/// its user's credentials replaced by the client certificate `cert_pem` and
/// key `key_pem` (pure).
pub fn with_client_certificate(
    mut base: Kubeconfig,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Kubeconfig> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth = serde_json::from_value(json!({
        "client-certificate-data": b64(cert_pem),
        "client-key-data": b64(key_pem),
    }))?;
    let [user] = &mut base.auth_infos[..] else {
        bail!("expected one user in the virtual cluster's kubeconfig");
    };
    user.auth_info = Some(auth);
    Ok(base)
}

/// Issues a client certificate for `user` in `groups` (at most one) valid
/// for `ttl`, through the virtual cluster `admin` reaches: creates the
/// request, approves it, and waits (up to a minute) for the signer.
/// Returns the PEM certificate and PEM key; the key never leaves this
/// process but in the result.
///
/// # Errors
/// More than one group, a request the cluster refuses (e.g. the admin may
/// not approve), a request denied or failed, or no certificate within a
/// minute (is the csrsigning controller running?).
pub async fn issue(
    admin: &kube::Client,
    user: &str,
    groups: &[&str],
    ttl: Duration,
) -> Result<(String, String)> {
    let (csr_pem, key_pem) = apiserver_shim::pki::client_csr(user, groups)?;
    let api: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let created = api
        .create(&PostParams::default(), &request(user, &csr_pem, ttl)?)
        .await
        .with_context(|| format!("creating a CertificateSigningRequest for user {user}"))?;
    let name = created.metadata.name.unwrap_or_default();
    let approval = json!({"status": {"conditions": [{
        "type": "Approved", "status": "True", "reason": "VkubeKubeconfigUser",
        "message": format!("issued to user {user} by vkube kubeconfig"),
    }]}});
    api.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&approval))
        .await
        .with_context(|| format!("approving CertificateSigningRequest {name}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let csr = api.get(&name).await?;
        let status = csr.status.unwrap_or_default();
        if let Some(cert) = status.certificate {
            let pem = String::from_utf8(cert.0).context("the issued certificate is not PEM")?;
            return Ok((pem, key_pem));
        }
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| matches!(c.type_.as_str(), "Denied" | "Failed") && c.status == "True")
        {
            bail!(
                "CertificateSigningRequest {name} {}: {}",
                c.type_.to_lowercase(),
                c.message.as_deref().unwrap_or_default()
            );
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "CertificateSigningRequest {name} was approved but not signed within a minute: \
                 is the csrsigning controller running in the virtual cluster?"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_go_durations_of_at_least_ten_minutes() {
        assert_eq!(parse_ttl("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_ttl("8760h").unwrap(),
            Duration::from_secs(8760 * 3600)
        );
        assert_eq!(parse_ttl("90m").unwrap(), Duration::from_secs(5400));
        assert!(parse_ttl("5m").unwrap_err().contains("shorter than 10m"));
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn request_names_are_dns_subdomains() {
        assert_eq!(generate_name("alice"), "vkube-user-alice-");
        assert_eq!(
            generate_name("Alice@Example.com"),
            "vkube-user-alice-example.com-"
        );
        assert_eq!(
            generate_name("system:serviceaccount:a:b"),
            "vkube-user-system-serviceaccount-a-b-"
        );
    }

    #[test]
    fn the_request_names_the_client_signer_and_lifetime() {
        let r = request("alice", "PEM", Duration::from_secs(3600)).unwrap();
        assert_eq!(
            r.metadata.generate_name.as_deref(),
            Some("vkube-user-alice-")
        );
        assert_eq!(r.spec.signer_name, CLIENT_SIGNER);
        assert_eq!(r.spec.expiration_seconds, Some(3600));
        assert_eq!(r.spec.request.0, b"PEM");
    }
}
