//! CertificateSigningRequests (`certificates.k8s.io/v1`): the strategy and
//! validation of kube-apiserver's pkg/registry/certificates and
//! pkg/apis/certificates/validation (pure functions over the JSON object).
//!
//! * Create: the status is cleared and `spec.username`, `uid`, `groups`,
//!   `extra` are the requesting user's ([`set_requester`]), never the
//!   client's; the request must be a PEM `CERTIFICATE REQUEST` with a valid
//!   signature, the usages known and not repeated, the signer name
//!   `domain/path`, `expirationSeconds` at least 600.
//! * Main resource updates change neither spec nor status.
//! * `approval` changes only `status.conditions`, and may add `Approved`
//!   or `Denied` (never both, never remove one); `status` may set the
//!   certificate once and add other conditions, not `Approved`/`Denied`.

use serde_json::{Value, json};
use vkube_core::field::FieldError;
use x509_parser::prelude::FromDer;

use crate::pki::Identity;

/// Every key usage a request may ask for (k8s.io/api/certificates/v1
/// `KeyUsage`), sorted as kube lists them in errors.
pub const USAGES: [&str; 23] = [
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// The signer that issues client certificates this server accepts.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";

/// Sets the requester fields of new request `obj` from `caller`
/// (`spec.username`, `uid`, `groups`, `extra`; empty ones left out).
pub fn set_requester(obj: &mut Value, caller: &Identity) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for k in ["username", "uid", "groups", "extra"] {
        spec.remove(k);
    }
    spec.insert("username".into(), json!(caller.user));
    if !caller.uid.is_empty() {
        spec.insert("uid".into(), json!(caller.uid));
    }
    if !caller.groups.is_empty() {
        spec.insert("groups".into(), json!(caller.groups));
    }
    if !caller.extra.is_empty() {
        spec.insert("extra".into(), json!(caller.extra));
    }
}

/// The strategy's `PrepareForCreate`: an empty status, the caller as
/// requester (none outside a request: the client's fields never stay).
pub fn prepare_create(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        o.insert("status".into(), json!({}));
    }
    let caller = crate::request::caller().unwrap_or_default();
    set_requester(obj, &caller);
}

/// CertificateSubjectRestriction: why a new request is refused (a
/// `kube-apiserver-client` request whose subject names the
/// `system:masters` group), or `None`.
pub fn subject_restriction(obj: &Value) -> Option<String> {
    if obj.pointer("/spec/signerName").and_then(Value::as_str) != Some(KUBE_APISERVER_CLIENT) {
        return None;
    }
    let request = decode_base64(obj.pointer("/spec/request"));
    let text = String::from_utf8_lossy(&request);
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).ok()?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .ok()?;
    csr.certification_request_info
        .subject
        .iter_organization()
        .any(|o| o.as_str() == Ok(crate::filters::authorization::rbac::PRIVILEGED_GROUP))
        .then(|| {
            format!(
                "use of {KUBE_APISERVER_CLIENT} signer with {} group is not allowed",
                crate::filters::authorization::rbac::PRIVILEGED_GROUP
            )
        })
}

/// Whether `caller` may `verb` (`approve`, `sign`) requests of `signer`
/// (kube's `IsAuthorizedForSignerName`): the verb on `signers` of
/// `certificates.k8s.io` named the signer, or `DOMAIN/*`.
pub fn may_act_on_signer(
    policy: &crate::filters::authorization::rbac::Policy,
    caller: &Identity,
    verb: &str,
    signer: &str,
) -> bool {
    let user = crate::filters::authorization::rbac::User {
        name: &caller.user,
        groups: &caller.groups,
    };
    let mut names = vec![signer.to_string()];
    if let Some((domain, _)) = signer.split_once('/') {
        names.push(format!("{domain}/*"));
    }
    names.iter().any(|name| {
        crate::filters::authorization::rbac::authorize(
            policy,
            user,
            &crate::filters::authorization::rbac::Request::Resource {
                verb: verb.into(),
                namespace: String::new(),
                group: "certificates.k8s.io".into(),
                resource: "signers".into(),
                subresource: String::new(),
                name: name.clone(),
            },
        )
        .allowed
    })
}

/// The strategy's `PrepareForUpdate`: spec and status stay the stored ones.
pub fn prepare_update(new: &mut Value, old: &Value) {
    for k in ["spec", "status"] {
        match old.get(k) {
            Some(v) => new[k] = v.clone(),
            None => {
                new.as_object_mut().map(|o| o.remove(k));
            }
        }
    }
}

/// Go's `%#v` of a byte slice (how a field error shows `spec.request`).
fn go_bytes(b: &[u8]) -> String {
    let items: Vec<String> = b.iter().map(|x| format!("0x{x:x}")).collect();
    format!("[]byte{{{}}}", items.join(", "))
}

fn decode_base64(v: Option<&Value>) -> Vec<u8> {
    use base64::Engine as _;
    v.and_then(Value::as_str)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default()
}

/// Why PEM `request` is not a signed PKCS#10 request (Go's `ParseCSR` and
/// `CheckSignature` texts), or `None`.
fn request_error(request: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(request);
    let Some(begin) = text.find("-----BEGIN ") else {
        return Some("PEM block type must be CERTIFICATE REQUEST".into());
    };
    let block = &text[begin..];
    if !block.starts_with("-----BEGIN CERTIFICATE REQUEST-----") {
        return Some("PEM block type must be CERTIFICATE REQUEST".into());
    }
    let der = match x509_parser::pem::parse_x509_pem(block.as_bytes()) {
        Ok((_, pem)) => pem.contents,
        Err(_) => return Some("PEM block type must be CERTIFICATE REQUEST".into()),
    };
    match x509_parser::certification_request::X509CertificationRequest::from_der(&der) {
        Err(e) => Some(format!("x509: malformed certificate request: {e}")),
        Ok((_, csr)) => csr
            .verify_signature()
            .err()
            .map(|_| "x509: signature verification failure".into()),
    }
}

/// Why `signer` is not a valid signer name (kube's `ValidateSignerName`,
/// its first checks), or `None`.
fn signer_errors(signer: &str) -> Vec<FieldError> {
    let path = "spec.signerName";
    if signer.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let Some((domain, rest)) = signer.split_once('/').filter(|(_, r)| !r.contains('/')) else {
        return vec![FieldError::invalid(
            path,
            &json!(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    let mut out = Vec::new();
    for label in domain.split('.') {
        for e in vkube_core::validation::is_dns1123_label(label) {
            out.push(FieldError::invalid(
                path,
                &json!(domain),
                &format!("validating label {label:?}: {e}"),
            ));
        }
    }
    if !domain.contains('.') {
        out.push(FieldError::invalid(
            path,
            &json!(domain),
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if rest.is_empty() {
        out.push(FieldError::invalid(
            path,
            &json!(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    out
}

/// The conditions of `obj` of type `t`.
fn conditions<'a>(obj: &'a Value, t: &str) -> Vec<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == t)
        .collect()
}

/// `validateConditions`: types set, statuses allowed (`True` only for
/// Approved, Denied, Failed), Approved and Denied exclusive, no type twice.
fn condition_errors(obj: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let (mut approved, mut denied) = (false, false);
    let list = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, c) in list.iter().enumerate() {
        let path = format!("status.conditions[{i}]");
        let t = c["type"].as_str().unwrap_or_default();
        if t.is_empty() {
            out.push(FieldError::required(format!("{path}.type"), ""));
        }
        let status = c["status"].as_str().unwrap_or_default();
        let true_only = matches!(t, "Approved" | "Denied" | "Failed");
        let allowed: &[&str] = if true_only {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if status.is_empty() {
            out.push(FieldError::required(format!("{path}.status"), ""));
        } else if !allowed.contains(&status) {
            out.push(FieldError::not_supported(
                format!("{path}.status"),
                &json!(status),
                allowed,
            ));
        }
        let exclusive = |out: &mut Vec<FieldError>| {
            out.push(FieldError::invalid(
                "status.conditions",
                &json!(t),
                "Approved and Denied conditions are mutually exclusive",
            ));
        };
        match t {
            "Approved" => {
                approved = true;
                if denied {
                    exclusive(&mut out);
                }
            }
            "Denied" => {
                denied = true;
                if approved {
                    exclusive(&mut out);
                }
            }
            _ => {}
        }
        if seen.iter().any(|s| s == t) {
            out.push(FieldError::duplicate(format!("{path}.type"), &json!(t)));
        }
        seen.push(t.to_string());
    }
    out
}

/// The kind's create validation (`ValidateCertificateSigningRequestCreate`
/// without ObjectMeta, which the REST layer checks).
pub fn validate_create(obj: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    let request = decode_base64(obj.pointer("/spec/request"));
    if let Some(e) = request_error(&request) {
        out.push(FieldError::invalid_rendered(
            "spec.request",
            &go_bytes(&request),
            &e,
        ));
    }
    let usages: Vec<&str> = obj
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if usages.is_empty() {
        out.push(FieldError::required("spec.usages", ""));
    }
    for (i, u) in usages.iter().enumerate() {
        if !USAGES.contains(u) {
            out.push(FieldError::not_supported(
                format!("spec.usages[{i}]"),
                &json!(u),
                &USAGES,
            ));
        }
        if usages[..i].contains(u) {
            out.push(FieldError::duplicate(
                format!("spec.usages[{i}]"),
                &json!(u),
            ));
        }
    }
    let signer = obj
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if signer == "kubernetes.io/legacy-unknown" {
        out.push(FieldError::invalid(
            "spec.signerName",
            &json!(signer),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        out.extend(signer_errors(signer));
    }
    if let Some(exp) = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        && exp < 600
    {
        out.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(exp),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    out.extend(condition_errors(obj));
    out
}

/// Why PEM `cert` is not a chain of certificates (kube's
/// `validateCertificate`), or `None`.
fn certificate_error(cert: &[u8]) -> Option<String> {
    if cert.is_empty() {
        return None;
    }
    let mut blocks = 0;
    for pem in x509_parser::pem::Pem::iter_from_buffer(cert) {
        let Ok(pem) = pem else {
            break;
        };
        if pem.label != "CERTIFICATE" {
            return Some(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                pem.label
            ));
        }
        if pem.parse_x509().is_err() {
            return Some("x509: malformed certificate".into());
        }
        blocks += 1;
    }
    (blocks == 0).then(|| "must contain at least one CERTIFICATE PEM block".into())
}

/// The update validation of a write to `sub` (`None`: the main resource,
/// `status`, `approval`) from `old` to `new`
/// (`validateCertificateSigningRequestUpdate`).
pub fn validate_update(sub: Option<&str>, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut out = condition_errors(new);
    for t in ["Approved", "Denied", "Failed"] {
        if conditions(new, t).len() < conditions(old, t).len() {
            out.push(FieldError::forbidden(
                "status.conditions",
                &format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    if sub != Some("approval") {
        for t in ["Approved", "Denied"] {
            let (o, n) = (conditions(old, t), conditions(new, t));
            if n.len() > o.len() {
                out.push(FieldError::forbidden(
                    "status.conditions",
                    &format!("updates may not add a condition of type {t:?}"),
                ));
            } else if n.len() == o.len() && n != o {
                out.push(FieldError::forbidden(
                    "status.conditions",
                    &format!("updates may not modify a condition of type {t:?}"),
                ));
            }
        }
    }
    let (nc, oc) = (
        decode_base64(new.pointer("/status/certificate")),
        decode_base64(old.pointer("/status/certificate")),
    );
    if nc != oc {
        if sub != Some("status") {
            out.push(FieldError::forbidden(
                "status.certificate",
                "updates may not set certificate content",
            ));
        } else if !oc.is_empty() {
            out.push(FieldError::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        } else if let Some(e) = certificate_error(&nc) {
            out.push(FieldError::invalid(
                "status.certificate",
                &json!("<certificate data>"),
                &e,
            ));
        }
    }
    out
}

/// What an `approval` write keeps: the stored object with the request's
/// `status.conditions` (kube's approval strategy), their timestamps filled
/// in ([`populate_condition_timestamps`]).
pub fn approval_update(old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    let conditions = new
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or(Value::Null);
    let status = crate::meta::ensure_object(&mut out, "status");
    if conditions.is_null() {
        status.remove("conditions");
    } else {
        status.insert("conditions".into(), conditions);
    }
    populate_condition_timestamps(&mut out, old, &crate::meta::now_rfc3339());
    out
}

/// kube's status strategy for a write to `status`: the stored `Approved`
/// and `Denied` conditions stand in for the request's when it has as many
/// (clients that round-trip them lose details such as null timestamps:
/// `preserveConditionInstances`), then timestamps are filled in.
pub fn status_update(new: &mut Value, old: &Value) {
    for t in ["Approved", "Denied"] {
        let (o, n) = (conditions(old, t).len(), conditions(new, t).len());
        if o != n || o == 0 {
            continue;
        }
        let stored: Vec<Value> = conditions(old, t).into_iter().cloned().collect();
        if let Some(list) = new
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
        {
            let mut stored = stored.into_iter();
            for c in list.iter_mut().filter(|c| c["type"] == t) {
                if let Some(s) = stored.next() {
                    *c = s;
                }
            }
        }
    }
    populate_condition_timestamps(new, old, &crate::meta::now_rfc3339());
}

/// kube's `populateConditionTimestamps`: a condition without
/// `lastUpdateTime` gets `now`; without `lastTransitionTime`, the stored
/// one of a condition of the same type and status, else `now`.
pub fn populate_condition_timestamps(new: &mut Value, old: &Value, now: &str) {
    let Some(list) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in list.iter_mut() {
        let unset = |v: &Value, k: &str| v.get(k).is_none_or(Value::is_null);
        if unset(c, "lastUpdateTime") {
            c["lastUpdateTime"] = json!(now);
        }
        if unset(c, "lastTransitionTime") {
            let previous = conditions(old, c["type"].as_str().unwrap_or_default())
                .into_iter()
                .find(|o| o["status"] == c["status"] && !unset(o, "lastTransitionTime"))
                .map(|o| o["lastTransitionTime"].clone());
            c["lastTransitionTime"] = previous.unwrap_or_else(|| json!(now));
        }
    }
}

/// The Condition column of `kubectl get csr` (`extractCSRStatus`):
/// `Denied`, else `Approved`, else `Pending`; then `,Failed` and `,Issued`.
pub fn condition_summary(obj: &Value) -> String {
    let has = |t: &str| !conditions(obj, t).is_empty();
    let mut s = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        s.push_str(",Failed");
    }
    if obj
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        s.push_str(",Issued");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn csr_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(request: &str, usages: Value, signer: &str) -> Value {
        json!({"metadata": {"name": "alice"},
            "spec": {"request": base64::engine::general_purpose::STANDARD.encode(request),
                "usages": usages, "signerName": signer}})
    }

    #[test]
    fn a_well_formed_request_passes_and_bad_ones_get_kubes_messages() {
        let good = csr(&csr_pem(), json!(["client auth"]), KUBE_APISERVER_CLIENT);
        assert!(
            validate_create(&good).is_empty(),
            "{:?}",
            validate_create(&good)
        );
        let bad = csr("hello", json!([]), "nope");
        let errs: Vec<String> = validate_create(&bad)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        assert_eq!(
            errs,
            [
                "spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST",
                "spec.usages: Required value",
                "spec.signerName: Invalid value: \"nope\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
            ]
        );
        let dup = csr(
            &csr_pem(),
            json!(["client auth", "client auth", "flying"]),
            KUBE_APISERVER_CLIENT,
        );
        let fields: Vec<String> = validate_create(&dup)
            .iter()
            .map(|e| e.field.clone())
            .collect();
        assert_eq!(fields, ["spec.usages[1]", "spec.usages[2]"]);
    }

    #[test]
    fn approval_and_status_writes_change_only_what_they_own() {
        let old = json!({"spec": {"username": "alice"}, "status": {}});
        let approved = json!({"status": {"conditions": [
            {"type": "Approved", "status": "True", "reason": "KubectlApprove"}]}});
        let merged = approval_update(&old, &approved);
        assert_eq!(merged["spec"]["username"], "alice");
        assert!(validate_update(Some("approval"), &merged, &old).is_empty());
        let via_status = validate_update(Some("status"), &merged, &old);
        assert_eq!(
            via_status[0].message,
            "Forbidden: updates may not add a condition of type \"Approved\""
        );
        let both = json!({"status": {"conditions": [
            {"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}});
        assert!(
            validate_update(Some("approval"), &both, &old)
                .iter()
                .any(|e| e.message.contains("mutually exclusive"))
        );
        assert!(
            !validate_update(Some("approval"), &old, &merged).is_empty(),
            "no removal"
        );
        assert_eq!(condition_summary(&merged), "Approved");
        let mut issued = merged.clone();
        issued["status"]["certificate"] = json!("eA==");
        assert_eq!(condition_summary(&issued), "Approved,Issued");
        assert_eq!(
            validate_update(None, &issued, &merged)[0].message,
            "Forbidden: updates may not set certificate content"
        );
    }
}
