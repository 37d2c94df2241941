//! The server's PKI: a CA, the serving certificate, the admin client
//! credential, and the rustls configuration that authenticates clients.
//!
//! Layout under `DATA_DIR/pki/` (PEM): `ca.crt`/`ca.key`, `apiserver.crt`/
//! `apiserver.key` (re-issued when the SAN list changes), `admin.crt`/
//! `admin.key` (CN `kubernetes-admin`, O `system:masters`), `admin.token`,
//! `sa.key` (service account token signing key, see [`crate::sa_token`]).
//! Identity from a client certificate follows kube-apiserver's x509
//! authenticator: the subject CN is the user name, each O is a group.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An authenticated user (apiserver `user.Info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// User name (certificate CN, or the token's user).
    pub user: String,
    /// User UID (a service account's uid; empty for certificates).
    pub uid: String,
    /// Groups (certificate O fields, service account groups); the server's
    /// authenticate step appends `system:authenticated`.
    pub groups: Vec<String>,
    /// Extra attributes (service account tokens: pod/node/credential id).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// The SANs every serving certificate carries, besides the configured ones.
pub const DEFAULT_SANS: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Loaded PKI material (PEM strings).
pub struct Pki {
    /// CA certificate.
    pub ca_cert: String,
    ca_key: String,
    /// Serving certificate.
    pub server_cert: String,
    /// Serving key.
    pub server_key: String,
    /// Admin client certificate.
    pub admin_cert: String,
    /// Admin client key.
    pub admin_key: String,
    /// Admin bearer token.
    pub admin_token: String,
}

pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// A new key and a PKCS#10 certificate signing request for client
/// certificate `CN=user`, `O=group` (PEM request, PEM key), to submit as a
/// `CertificateSigningRequest` for signer
/// `kubernetes.io/kube-apiserver-client` (the Kubernetes docs' "Issue a
/// certificate for a user").
///
/// # Errors
/// More than one group (one organization per certificate, see `dn`), or a
/// key or encoding failure.
pub fn client_csr(user: &str, groups: &[&str]) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(user, groups)?;
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// A subject `CN=cn`, `O=org`. rcgen keeps one attribute per type, so a
/// certificate holds at most one organization (group): more is an error,
/// never a silently dropped group.
fn dn(cn: &str, orgs: &[&str]) -> Result<DistinguishedName> {
    anyhow::ensure!(
        orgs.len() <= 1,
        "a certificate can name one group (organization) here, not {}",
        orgs.len()
    );
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    for o in orgs {
        d.push(DnType::OrganizationName, *o);
    }
    Ok(d)
}

/// The certificate chain and private key of PEM texts.
fn parse_chain_and_key(
    cert_pem: &str,
    key_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("parsing the certificate PEM")?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in the certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("parsing the key PEM")?;
    Ok((chain, key))
}

/// The rustls configuration of a port that serves with `cert_pem` (a chain,
/// leaf first) and `key_pem` and takes no client certificates (bearer
/// tokens authenticate its clients), with ALPN h2 and http/1.1: what a
/// component's `--tls-cert-file`/`--tls-private-key-file` give.
///
/// # Errors
/// PEM texts that hold no certificate or no usable key, or a key that does
/// not match the certificate.
pub fn serving_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = parse_chain_and_key(cert_pem, key_pem)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A self-signed serving certificate and its key (PEM), valid for `sans`
/// (DNS names and IP addresses): what a component given no certificate
/// serves with, as kube-controller-manager generates one (kept in memory
/// here, not written to a `--cert-dir`).
///
/// # Errors
/// A SAN that is neither a DNS name nor an IP address.
pub fn self_signed(cn: &str, sans: &[String]) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    params.distinguished_name = dn(cn, &[])?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl Pki {
    /// Loads the PKI from `dir/pki`, creating what is missing; the serving
    /// certificate is re-issued when `extra_sans` differ from the last start.
    pub fn load_or_create(dir: &Path, extra_sans: &[String]) -> Result<Pki> {
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki).with_context(|| format!("creating {}", pki.display()))?;
        let p = |f: &str| -> PathBuf { pki.join(f) };
        let read = |f: &str| std::fs::read_to_string(p(f)).ok();

        let (ca_cert, ca_key) = match (read("ca.crt"), read("ca.key")) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::new(Vec::<String>::new())?;
                params.distinguished_name = dn("vkube-ca", &[])?;
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                    KeyUsagePurpose::DigitalSignature,
                ];
                let cert = params.self_signed(&key)?;
                write_private(&p("ca.key"), &key.serialize_pem())?;
                std::fs::write(p("ca.crt"), cert.pem())?;
                (cert.pem(), key.serialize_pem())
            }
        };
        let mut this = Pki {
            ca_cert,
            ca_key,
            server_cert: String::new(),
            server_key: String::new(),
            admin_cert: String::new(),
            admin_key: String::new(),
            admin_token: String::new(),
        };

        let mut sans: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
        for s in extra_sans {
            if !sans.contains(s) {
                sans.push(s.clone());
            }
        }
        let san_record = sans.join("\n");
        match (
            read("apiserver.crt"),
            read("apiserver.key"),
            read("apiserver.sans"),
        ) {
            (Some(c), Some(k), Some(s)) if s == san_record => {
                this.server_cert = c;
                this.server_key = k;
            }
            _ => {
                let (c, k) = this.issue(
                    "kube-apiserver",
                    &[],
                    sans,
                    ExtendedKeyUsagePurpose::ServerAuth,
                )?;
                write_private(&p("apiserver.key"), &k)?;
                std::fs::write(p("apiserver.crt"), &c)?;
                std::fs::write(p("apiserver.sans"), &san_record)?;
                this.server_cert = c;
                this.server_key = k;
            }
        }
        match (read("admin.crt"), read("admin.key")) {
            (Some(c), Some(k)) => {
                this.admin_cert = c;
                this.admin_key = k;
            }
            _ => {
                let (c, k) = this.issue_client("kubernetes-admin", &["system:masters"])?;
                write_private(&p("admin.key"), &k)?;
                std::fs::write(p("admin.crt"), &c)?;
                this.admin_cert = c;
                this.admin_key = k;
            }
        }
        this.admin_token = match read("admin.token") {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                write_private(&p("admin.token"), &t)?;
                t
            }
        };
        Ok(this)
    }

    fn issue(
        &self,
        cn: &str,
        orgs: &[&str],
        sans: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<(String, String)> {
        let ca_key = KeyPair::from_pem(&self.ca_key).context("parsing the CA key")?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert, ca_key)
            .context("parsing the CA certificate")?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = dn(cn, orgs)?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The CA private key (PEM), for the controllers that sign with it
    /// (csrsigning), as kube-controller-manager reads the cluster's.
    pub fn ca_key_pem(&self) -> &str {
        &self.ca_key
    }

    /// Issues a client certificate for `user` in `groups`, signed by the CA
    /// (PEM certificate, PEM key).
    ///
    /// # Errors
    /// More than one group (one organization per certificate, see `dn`),
    /// or a signing failure.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<(String, String)> {
        self.issue(
            user,
            groups,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// The rustls server configuration: the serving certificate, ALPN h2 and
    /// http/1.1, and client certificates verified against the CA when
    /// presented (bearer tokens cover clients without one).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_cert.as_bytes()) {
            roots.add(c?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()?;
        let (chain, key) = parse_chain_and_key(&self.server_cert, &self.server_key)?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// A kubeconfig for `server` (e.g. `https://127.0.0.1:6443`) with the
    /// admin client certificate, context and cluster named `name`.
    pub fn admin_kubeconfig(&self, server: &str, name: &str) -> String {
        kubeconfig(
            server,
            name,
            &self.ca_cert,
            &self.admin_cert,
            &self.admin_key,
        )
    }
}

/// A kubeconfig document for one cluster/user/context named `name`.
pub fn kubeconfig(server: &str, name: &str, ca: &str, cert: &str, key: &str) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}-admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-admin\ncurrent-context: {name}\npreferences: {{}}\n",
        ca = b64(ca),
        cert = b64(cert),
        key = b64(key),
    )
}

/// A kubeconfig for `server` (CA `ca`, PEM) whose credential is the bearer
/// `token`, with cluster and context named `name`.
pub fn token_kubeconfig(server: &str, name: &str, ca: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}-user\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-user\ncurrent-context: {name}\npreferences: {{}}\n",
    )
}

/// The identity a verified client certificate carries (CN → user, O → groups).
pub fn identity_from_cert(der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(Identity {
        user,
        groups,
        ..Identity::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serving_config_needs_a_certificate_and_its_own_key() {
        let sans = ["localhost".to_string(), "127.0.0.1".to_string()];
        let (cert, key) = self_signed("vkube-syncer", &sans).unwrap();
        let cfg = serving_config(&cert, &key).expect("a matching pair serves");
        assert_eq!(cfg.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        let (_, other_key) = self_signed("other", &sans).unwrap();
        assert!(serving_config(&cert, &other_key).is_err(), "a foreign key");
        assert!(serving_config("", &key).is_err(), "no certificate");
        assert!(serving_config(&cert, "").is_err(), "no key");
    }

    #[test]
    fn pki_is_created_once_and_reissued_on_new_sans() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &[]).unwrap();
        let b = Pki::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(a.ca_cert, b.ca_cert);
        assert_eq!(a.server_cert, b.server_cert);
        assert_eq!(a.admin_token, b.admin_token);
        let c = Pki::load_or_create(dir.path(), &["vc.example.com".into()]).unwrap();
        assert_eq!(a.ca_cert, c.ca_cert);
        assert_ne!(a.server_cert, c.server_cert);
        a.server_config().unwrap();
        let der = CertificateDer::from_pem_slice(a.admin_cert.as_bytes()).unwrap();
        assert_eq!(
            identity_from_cert(&der),
            Some(Identity {
                user: "kubernetes-admin".into(),
                groups: vec!["system:masters".into()],
                ..Identity::default()
            })
        );
    }
}
