//! The csrsigning controller for the `kubernetes.io/kube-apiserver-client`
//! signer: an approved CertificateSigningRequest of that signer, not denied,
//! failed or issued yet, gets a client certificate signed by the cluster CA
//! (`--cluster-signing-cert-file`/`-key-file`, [`crate::Options`]) in
//! `status.certificate`, as kube-controller-manager's
//! (pkg/controller/certificates/signer) does:
//!
//! * usages must include `client auth` and may add only `digital
//!   signature` and `key encipherment`; otherwise the request gets a
//!   `Failed` condition (reason `SignerValidationFailure`);
//! * the certificate carries the request's subject and subject alternative
//!   names, those usages and a random 128-bit serial; it starts five
//!   minutes back (clock skew) and lives `spec.expirationSeconds` (at least
//!   600) capped by the signing duration (`--cluster-signing-duration`, a
//!   year by default);
//! * a subject that repeats an attribute (two `O` groups) or has a
//!   multi-valued RDN fails: the certificate library keeps one value per
//!   attribute, and dropping a group silently would hand out a different
//!   identity than the one approved;
//! * requests of other signers are left alone (kubelet signers are not
//!   served here).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::{Error, Result};

/// The signer this controller serves.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// The default lifetime of issued certificates (kube-controller-manager's
/// `--cluster-signing-duration`), in seconds.
pub const DEFAULT_DURATION_SECONDS: u64 = 365 * 24 * 3600;

/// How far back a certificate's validity starts (kube's backdate).
const BACKDATE_SECONDS: i64 = 5 * 60;

/// The CA that signs (PEM certificate and key).
#[derive(Clone)]
pub struct SigningCa {
    /// The CA certificate.
    pub cert_pem: String,
    /// The CA private key.
    pub key_pem: String,
    /// The longest lifetime of an issued certificate, in seconds.
    pub duration_seconds: u64,
}

impl std::fmt::Debug for SigningCa {
    // The key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCa")
            .field("duration_seconds", &self.duration_seconds)
            .finish_non_exhaustive()
    }
}

/// What to do with one request (pure decision).
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Not this signer's, not approved, denied, failed or issued.
    Nothing,
    /// Sign it.
    Sign,
    /// Mark it `Failed` with this message.
    Fail(String),
}

fn has_condition(csr: &CertificateSigningRequest, t: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == t))
}

/// Whether `usages` are a client certificate's (`validAPIServerClientUsages`).
pub fn client_usages_error(usages: &[String]) -> Option<String> {
    for u in usages {
        if !matches!(
            u.as_str(),
            "digital signature" | "key encipherment" | "client auth"
        ) {
            return Some(format!("invalid usage for client certificate: {u}"));
        }
    }
    (!usages.iter().any(|u| u == "client auth"))
        .then(|| "missing required usage for client certificate: client auth".into())
}

/// The next [`Step`] for `csr`.
pub fn step(csr: &CertificateSigningRequest) -> Step {
    let issued = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if csr.spec.signer_name != SIGNER
        || !has_condition(csr, "Approved")
        || has_condition(csr, "Denied")
        || has_condition(csr, "Failed")
        || issued
    {
        return Step::Nothing;
    }
    match client_usages_error(csr.spec.usages.as_deref().unwrap_or_default()) {
        Some(e) => Step::Fail(e),
        None => Step::Sign,
    }
}

/// Why the subject of PEM request `request` cannot be copied as is (an
/// attribute repeated, or an RDN with several values), or `None`.
pub fn subject_error(request: &str) -> Option<String> {
    use x509_parser::prelude::FromDer;
    let (_, pem) = x509_parser::pem::parse_x509_pem(request.as_bytes()).ok()?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .ok()?;
    let mut seen = Vec::new();
    for rdn in csr.certification_request_info.subject.iter() {
        if rdn.iter().count() > 1 {
            return Some(
                "the subject has a multi-valued RDN, which this signer cannot copy".into(),
            );
        }
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            if seen.contains(&oid) {
                return Some(format!(
                    "the subject repeats attribute {oid} (e.g. several O groups), which this signer cannot copy; request one value per attribute"
                ));
            }
            seen.push(oid);
        }
    }
    None
}

/// The end of a CA certificate's validity, Unix seconds.
fn ca_not_after(cert_pem: &str) -> Result<i64, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| format!("the signing CA certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("the signing CA certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

/// Signs `csr` with `ca` at `now` (Unix seconds): the PEM certificate.
///
/// Errors: the request or the CA does not parse, the subject cannot be
/// copied ([`subject_error`]), or signing fails.
pub fn sign(ca: &SigningCa, csr: &CertificateSigningRequest, now: i64) -> Result<String, String> {
    let request = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
    if let Some(e) = subject_error(&request) {
        return Err(e);
    }
    let mut params =
        CertificateSigningRequestParams::from_pem(&request).map_err(|e| e.to_string())?;
    let lifetime = csr
        .spec
        .expiration_seconds
        .map_or(ca.duration_seconds, |s| {
            u64::try_from(s.max(600)).unwrap_or(600)
        })
        .min(ca.duration_seconds);
    let at = |secs: i64| time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string());
    // Backdated, and the lifetime counted from the backdated start; never
    // past the signer's own end (the authority's signing policy clamps to
    // it, and refuses once the signer has expired).
    let start = now - BACKDATE_SECONDS;
    let ca_end = ca_not_after(&ca.cert_pem)?;
    if start >= ca_end {
        return Err(format!("the signer has expired: NotAfter={}", at(ca_end)?));
    }
    let end = start
        .saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX / 2))
        .min(ca_end);
    params.params.not_before = at(start)?;
    params.params.not_after = at(end)?;
    let serial: [u8; 16] = rand::random();
    params.params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.params.use_authority_key_identifier_extension = true;
    params.params.key_usages = Vec::new();
    params.params.extended_key_usages = Vec::new();
    for u in csr.spec.usages.iter().flatten() {
        match u.as_str() {
            "digital signature" => params
                .params
                .key_usages
                .push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => params
                .params
                .key_usages
                .push(KeyUsagePurpose::KeyEncipherment),
            "client auth" => params
                .params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth),
            _ => {}
        }
    }
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|e| e.to_string())?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, key).map_err(|e| e.to_string())?;
    Ok(params.signed_by(&issuer).map_err(|e| e.to_string())?.pem())
}

/// Runs the controller until the process ends (idles without a CA).
pub async fn run(client: Client) {
    let Some(ca) = crate::options().cluster_signing.clone() else {
        tracing::info!("csrsigning: no cluster signing CA; client certificates are not issued");
        return std::future::pending().await;
    };
    Controller::new(
        Api::<CertificateSigningRequest>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(
        crate::measured(reconcile),
        crate::counted(error_policy),
        Arc::new((client, ca)),
    )
    .for_each(|_| futures::future::ready(()))
    .await;
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<(Client, SigningCa)>,
) -> Result<Action> {
    let (client, ca) = ctx.as_ref();
    let mut out = (*csr).clone();
    let status = out.status.get_or_insert_with(Default::default);
    match step(&csr) {
        Step::Nothing => return Ok(Action::await_change()),
        Step::Fail(message) => {
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(failed_condition(&message));
        }
        Step::Sign => match sign(ca, &csr, jiff::Timestamp::now().as_second()) {
            Ok(pem) => {
                status.certificate = Some(k8s_openapi::ByteString(pem.into_bytes()));
            }
            Err(e) => {
                status
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(failed_condition(&format!("error auto signing csr: {e}")));
            }
        },
    }
    Api::<CertificateSigningRequest>::all(client.clone())
        .replace_status(&csr.name_any(), &PostParams::default(), &out)
        .await?;
    Ok(Action::await_change())
}

fn failed_condition(
    message: &str,
) -> k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
        type_: "Failed".into(),
        status: "True".into(),
        reason: Some("SignerValidationFailure".into()),
        message: Some(message.into()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

fn error_policy(
    csr: Arc<CertificateSigningRequest>,
    err: &Error,
    _ctx: Arc<(Client, SigningCa)>,
) -> Action {
    tracing::debug!(csr = %csr.name_any(), error = %err, "signing failed");
    Action::requeue(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ca() -> SigningCa {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "vkube-ca");
        let cert = params.self_signed(&key).unwrap();
        SigningCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            duration_seconds: DEFAULT_DURATION_SECONDS,
        }
    }

    fn csr(usages: &[&str], conditions: serde_json::Value) -> CertificateSigningRequest {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "devs");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        use base64::Engine as _;
        serde_json::from_value(json!({
            "metadata": {"name": "alice"},
            "spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": SIGNER, "usages": usages, "expirationSeconds": 3600},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn approved_client_requests_are_signed_with_their_subject_and_lifetime() {
        let approved = json!([{"type": "Approved", "status": "True"}]);
        let c = csr(&["client auth", "digital signature"], approved.clone());
        assert_eq!(step(&c), Step::Sign);
        let authority = ca();
        let pem = sign(&authority, &c, 1_800_000_000).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = der.parse_x509().unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        let org = cert
            .subject()
            .iter_organization()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!((cn, org), ("alice", "devs"));
        let v = cert.validity();
        assert_eq!(v.not_after.timestamp() - v.not_before.timestamp(), 3600);
        // Near the end of the CA's validity the certificate ends with it;
        // past it, nothing is signed.
        let ca_end = ca_not_after(&authority.cert_pem).unwrap();
        let late = sign(&authority, &c, ca_end - 60).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(late.as_bytes()).unwrap();
        assert_eq!(
            der.parse_x509().unwrap().validity().not_after.timestamp(),
            ca_end
        );
        let expired = sign(&authority, &c, ca_end + 3600).unwrap_err();
        assert!(expired.starts_with("the signer has expired"), "{expired}");
        let again = sign(&authority, &c, 1_800_000_000).unwrap();
        assert_ne!(pem, again, "a serial of its own");
        assert_eq!(
            step(&csr(&["client auth"], json!([]))),
            Step::Nothing,
            "pending"
        );
        assert_eq!(
            step(&csr(&["client auth", "server auth"], approved.clone())),
            Step::Fail("invalid usage for client certificate: server auth".into())
        );
        assert_eq!(
            step(&csr(&["digital signature"], approved)),
            Step::Fail("missing required usage for client certificate: client auth".into())
        );
        let denied =
            json!([{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]);
        assert_eq!(step(&csr(&["client auth"], denied)), Step::Nothing);
        // Two groups cannot be copied by the certificate library: refused,
        // never issued with one of them dropped.
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "a");
        params
            .distinguished_name
            .push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 10]), "b");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        assert!(subject_error(&pem).unwrap().contains("2.5.4.10"));
    }
}
