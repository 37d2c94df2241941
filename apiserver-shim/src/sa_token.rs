//! Service account JWTs: the signing key, the claims kube-apiserver issues
//! for a TokenRequest, and their verification (KEP-1205 bound service
//! account tokens; k8s.io/kubernetes pkg/serviceaccount/{claims,jwt}.go).
//!
//! Pure apart from [`SigningKey::load_or_create`], which reads or writes
//! `DATA_DIR/pki/sa.key`. Checks that need the store (the service account
//! and bound objects still exist with the same uid) are the caller's, see
//! [`crate::serviceaccount`].
//!
//! The key is ECDSA P-256 and tokens are ES256 JWS: kube-apiserver accepts
//! RSA or ECDSA keys in `--service-account-signing-key-file` and signs with
//! ES256 for a P-256 key; ES256 is in every OIDC/JOSE library's required set
//! and ring can generate the key (it cannot generate RSA keys), so this needs
//! no crypto crate beyond the ring provider rustls already uses.

use crate::pki::Identity;
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// File name of the signing key under `DATA_DIR/pki/` (PKCS#8 PEM).
pub const KEY_FILE: &str = "sa.key";

/// The default issuer (`--service-account-issuer`) and API audience, as
/// kubeadm and kind configure kube-apiserver.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Clock skew tolerated on `exp`/`nbf`/`iat`, in seconds (go-jose's
/// `jwt.DefaultLeeway`, which the upstream validator uses).
pub const LEEWAY_SECONDS: i64 = 60;

/// Longest token accepted for verification, in bytes; longer bearer tokens
/// are rejected before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The JWS algorithm of our tokens.
pub const ALGORITHM: &str = "ES256";

/// DER prefix of a P-256 SubjectPublicKeyInfo, followed by the 65-byte
/// uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The service account signing key, parsed once.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    /// Uncompressed public point (`04 || x || y`).
    public: Vec<u8>,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    /// Loads `pki_dir/sa.key`, creating a new P-256 key there (mode 0600)
    /// if it is missing. A present but unusable key is an error, never
    /// silently replaced (that would invalidate every issued token).
    pub fn load_or_create(pki_dir: &Path) -> Result<SigningKey> {
        let path = pki_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(pem) => {
                let kp = rcgen::KeyPair::from_pem(&pem)
                    .with_context(|| format!("parsing {}", path.display()))?;
                SigningKey::from_pkcs8(&kp.serialize_der())
                    .with_context(|| format!("loading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                crate::pki::write_private(&path, &kp.serialize_pem())?;
                SigningKey::from_pkcs8(&kp.serialize_der())
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// A key from PKCS#8 DER; only ECDSA P-256 keys are accepted.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| anyhow::anyhow!("not an ECDSA P-256 PKCS#8 key: {e}"))?;
        let public = pair.public_key().as_ref().to_vec();
        if public.len() != 65 {
            bail!("unexpected P-256 public key length {}", public.len());
        }
        let spki = [&P256_SPKI_PREFIX[..], &public].concat();
        // kube-apiserver's keyIDFromPublicKey: base64url(SHA-256(PKIX DER)).
        let kid = B64.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(SigningKey {
            pair,
            public,
            kid,
            rng,
        })
    }

    /// The key id (`kid` header, JWK `kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (RFC 7517/7518), as `/openid/v1/jwks` lists it.
    pub fn jwk(&self) -> Value {
        json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": ALGORITHM,
            "x": B64.encode(&self.public[1..33]),
            "y": B64.encode(&self.public[33..65]),
        })
    }

    /// Signs `claims` as a compact JWS: `header.payload.signature`, header
    /// `{"alg":"ES256","kid":...}`.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        let header = json!({"alg": ALGORITHM, "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&header)?),
            B64.encode(serde_json::to_vec(claims)?)
        );
        let sig = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing failed"))?;
        Ok(format!("{signing_input}.{}", B64.encode(sig.as_ref())))
    }

    /// Checks the JWS structure, `alg` and signature of `token` and returns
    /// its payload as JSON. Never panics on hostile input.
    pub fn verify(&self, token: &str) -> Result<Value, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.get("alg").and_then(Value::as_str) != Some(ALGORITHM) {
            return Err(TokenError::Signature);
        }
        if header
            .get("kid")
            .and_then(Value::as_str)
            .is_some_and(|k| k != self.kid)
        {
            return Err(TokenError::Signature);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let key =
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.public);
        let signing_input = &token[..h.len() + 1 + p.len()];
        key.verify(signing_input.as_bytes(), &sig)
            .map_err(|_| TokenError::Signature)?;
        B64.decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(Value::is_object)
            .ok_or(TokenError::Malformed)
    }
}

/// A string list as Go's `%q` prints it: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Why a token is not accepted. Messages follow the upstream validator's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS with JSON header and payload.
    #[error("token is not a well-formed JWT")]
    Malformed,
    /// Wrong algorithm, key id or signature.
    #[error("token signature is invalid")]
    Signature,
    /// Another issuer's token.
    #[error("token issuer {0:?} is not this server's")]
    Issuer(String),
    /// No audience of the token (first) is one of the target audiences
    /// (second).
    #[error("token audiences {} is invalid for the target audiences {}", go_quoted(.0), go_quoted(.1))]
    Audience(Vec<String>, Vec<String>),
    /// `exp` (plus leeway) is past.
    #[error("service account token has expired")]
    Expired,
    /// `nbf`/`iat` (minus leeway) is in the future.
    #[error("service account token is not valid yet")]
    NotYetValid,
    /// The `kubernetes.io` private claim or `sub` is missing or inconsistent.
    #[error("service account token claims are invalid")]
    Claims,
    /// The service account or bound object is gone or was recreated.
    #[error("service account token has been invalidated: {0}")]
    Invalidated(String),
}

/// `{name, uid}` of an object a token names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
}

/// The claims of a service account token (upstream `jwt.Claims` plus
/// `privateClaims`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// `iss`.
    pub issuer: String,
    /// `aud` (always an array when issued; a string is accepted).
    pub audiences: Vec<String>,
    /// `iat`, `nbf` (Unix seconds; issued equal).
    pub issued_at: i64,
    /// `exp` (Unix seconds).
    pub expiry: i64,
    /// `nbf` (Unix seconds).
    pub not_before: i64,
    /// `jti`: a fresh UUID per token (the credential id).
    pub jti: String,
    /// `kubernetes.io.namespace`.
    pub namespace: String,
    /// `kubernetes.io.serviceaccount`.
    pub service_account: ObjectRef,
    /// `kubernetes.io.pod` when bound to a pod.
    pub pod: Option<ObjectRef>,
    /// `kubernetes.io.secret` when bound to a secret.
    pub secret: Option<ObjectRef>,
    /// `kubernetes.io.node`: the node of a bound pod, when scheduled.
    pub node: Option<ObjectRef>,
    /// `kubernetes.io.warnafter` (extended projected-volume tokens).
    pub warn_after: Option<i64>,
}

/// `system:serviceaccount:NS:NAME` (apiserver `serviceaccount.MakeUsername`).
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

fn ref_json(r: &ObjectRef) -> Value {
    json!({"name": r.name, "uid": r.uid})
}

fn ref_from(v: Option<&Value>) -> Option<ObjectRef> {
    let v = v?;
    Some(ObjectRef {
        name: v.get("name")?.as_str()?.to_string(),
        uid: v
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

impl Claims {
    /// `system:serviceaccount:NS:NAME`, the `sub` claim.
    pub fn subject(&self) -> String {
        username(&self.namespace, &self.service_account.name)
    }

    /// The JWT payload, as upstream `serviceaccount.Claims` issues it.
    pub fn to_json(&self) -> Value {
        let mut k8s = json!({
            "namespace": self.namespace,
            "serviceaccount": ref_json(&self.service_account),
        });
        if let Some(p) = &self.pod {
            k8s["pod"] = ref_json(p);
        }
        if let Some(s) = &self.secret {
            k8s["secret"] = ref_json(s);
        }
        if let Some(n) = &self.node {
            k8s["node"] = ref_json(n);
        }
        if let Some(w) = self.warn_after {
            k8s["warnafter"] = json!(w);
        }
        json!({
            "iss": self.issuer,
            "sub": self.subject(),
            "aud": self.audiences,
            "exp": self.expiry,
            "iat": self.issued_at,
            "nbf": self.not_before,
            "jti": self.jti,
            "kubernetes.io": k8s,
        })
    }

    /// Reads a verified payload; `None` when a required claim is missing or
    /// of the wrong type, or `sub` disagrees with the private claim.
    pub fn from_json(v: &Value) -> Option<Claims> {
        let num = |k: &str| v.get(k).and_then(Value::as_i64);
        let audiences = match v.get("aud")? {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()?,
            _ => return None,
        };
        let k8s = v.get("kubernetes.io")?;
        let claims = Claims {
            issuer: v.get("iss")?.as_str()?.to_string(),
            audiences,
            issued_at: num("iat").unwrap_or(0),
            expiry: num("exp")?,
            not_before: num("nbf").unwrap_or(0),
            jti: v
                .get("jti")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            namespace: k8s.get("namespace")?.as_str()?.to_string(),
            service_account: ref_from(k8s.get("serviceaccount"))?,
            pod: ref_from(k8s.get("pod")),
            secret: ref_from(k8s.get("secret")),
            node: ref_from(k8s.get("node")),
            warn_after: k8s.get("warnafter").and_then(Value::as_i64),
        };
        if claims.namespace.is_empty()
            || claims.service_account.name.is_empty()
            || v.get("sub").and_then(Value::as_str) != Some(claims.subject().as_str())
        {
            return None;
        }
        Some(claims)
    }

    /// Time and audience checks at `now` (Unix seconds): issuer equal to
    /// `issuer`, some audience in `api_audiences`, `nbf`/`iat` not after
    /// `now + leeway`, `exp` not before `now - leeway`.
    pub fn validate(
        &self,
        now: i64,
        issuer: &str,
        api_audiences: &[String],
    ) -> Result<(), TokenError> {
        if self.issuer != issuer {
            return Err(TokenError::Issuer(self.issuer.clone()));
        }
        if !self.audiences.iter().any(|a| api_audiences.contains(a)) {
            return Err(TokenError::Audience(
                self.audiences.clone(),
                api_audiences.to_vec(),
            ));
        }
        if now > self.expiry.saturating_add(LEEWAY_SECONDS) {
            return Err(TokenError::Expired);
        }
        if self.not_before.max(self.issued_at) > now.saturating_add(LEEWAY_SECONDS) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    /// The authenticated user (apiserver `ServiceAccountInfo.UserInfo`):
    /// `system:serviceaccount:NS:NAME`, uid of the service account, groups
    /// `system:serviceaccounts` and `system:serviceaccounts:NS`, extra
    /// `authentication.kubernetes.io/{pod-name,pod-uid,node-name,node-uid,
    /// credential-id}`. (`system:authenticated` is added by the caller, as
    /// upstream's authenticator chain does for every user.)
    pub fn identity(&self) -> Identity {
        let mut extra = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                extra.insert(
                    format!("authentication.kubernetes.io/{k}"),
                    vec![v.to_string()],
                );
            }
        };
        if let Some(p) = &self.pod {
            put("pod-name", &p.name);
            put("pod-uid", &p.uid);
        }
        if let Some(n) = &self.node {
            put("node-name", &n.name);
            put("node-uid", &n.uid);
        }
        if !self.jti.is_empty() {
            put("credential-id", &format!("JTI={}", self.jti));
        }
        Identity {
            user: self.subject(),
            uid: self.service_account.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", self.namespace),
            ],
            extra,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            issuer: DEFAULT_ISSUER.into(),
            audiences: vec![DEFAULT_ISSUER.into()],
            issued_at: now,
            not_before: now,
            expiry: now + 600,
            jti: "j-1".into(),
            namespace: "ns".into(),
            service_account: ObjectRef {
                name: "sa".into(),
                uid: "u-sa".into(),
            },
            ..Claims::default()
        }
    }

    fn key() -> SigningKey {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        SigningKey::from_pkcs8(&kp.serialize_der()).unwrap()
    }

    #[test]
    fn sign_verify_round_trip_and_claims_shape() {
        let k = key();
        let mut c = claims(1000);
        c.pod = Some(ObjectRef {
            name: "p".into(),
            uid: "u-p".into(),
        });
        let tok = k.sign(&c.to_json()).unwrap();
        let payload = k.verify(&tok).unwrap();
        assert_eq!(payload["sub"], "system:serviceaccount:ns:sa");
        assert_eq!(payload["aud"], json!([DEFAULT_ISSUER]));
        assert_eq!(
            payload["kubernetes.io"]["pod"],
            json!({"name": "p", "uid": "u-p"})
        );
        assert_eq!(payload["kubernetes.io"]["serviceaccount"]["uid"], "u-sa");
        assert_eq!(Claims::from_json(&payload), Some(c.clone()));
        let header: Value =
            serde_json::from_slice(&B64.decode(tok.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": k.kid()}));
        let id = c.identity();
        assert_eq!(id.user, "system:serviceaccount:ns:sa");
        assert_eq!(id.uid, "u-sa");
        assert_eq!(
            id.groups,
            vec!["system:serviceaccounts", "system:serviceaccounts:ns"]
        );
        assert_eq!(
            id.extra["authentication.kubernetes.io/pod-name"],
            vec!["p".to_string()]
        );
        assert_eq!(
            id.extra["authentication.kubernetes.io/credential-id"],
            vec!["JTI=j-1".to_string()]
        );
    }

    #[test]
    fn time_issuer_and_audience_checks() {
        let c = claims(1000);
        let auds = vec![DEFAULT_ISSUER.to_string()];
        assert_eq!(c.validate(1000, DEFAULT_ISSUER, &auds), Ok(()));
        // Leeway of a minute either side.
        assert_eq!(c.validate(1600 + 60, DEFAULT_ISSUER, &auds), Ok(()));
        assert_eq!(
            c.validate(1600 + 61, DEFAULT_ISSUER, &auds),
            Err(TokenError::Expired)
        );
        assert_eq!(c.validate(1000 - 60, DEFAULT_ISSUER, &auds), Ok(()));
        assert_eq!(
            c.validate(1000 - 61, DEFAULT_ISSUER, &auds),
            Err(TokenError::NotYetValid)
        );
        assert!(matches!(
            c.validate(1000, "https://other", &auds),
            Err(TokenError::Issuer(_))
        ));
        assert!(matches!(
            c.validate(1000, DEFAULT_ISSUER, &["foo".to_string()]),
            Err(TokenError::Audience(..))
        ));
        // Extreme values do not overflow.
        let mut far = c.clone();
        far.expiry = i64::MAX;
        assert_eq!(far.validate(i64::MAX, DEFAULT_ISSUER, &auds), Ok(()));
    }

    #[test]
    fn tampered_foreign_and_hostile_tokens_are_rejected() {
        let k = key();
        let tok = k.sign(&claims(1000).to_json()).unwrap();
        // Payload swapped for another namespace: signature no longer holds.
        let mut parts: Vec<String> = tok.split('.').map(str::to_string).collect();
        let mut other = claims(1000);
        other.namespace = "kube-system".into();
        parts[1] = B64.encode(serde_json::to_vec(&other.to_json()).unwrap());
        assert_eq!(k.verify(&parts.join(".")), Err(TokenError::Signature));
        // Another key's token.
        let tok2 = key().sign(&claims(1000).to_json()).unwrap();
        assert_eq!(k.verify(&tok2), Err(TokenError::Signature));
        // alg=none.
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none"}"#),
            B64.encode(serde_json::to_vec(&claims(1000).to_json()).unwrap())
        );
        assert_eq!(k.verify(&none), Err(TokenError::Signature));
        for junk in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "\u{e9}.\u{e9}.\u{e9}",
            "e30.e30.",
            "e30.e30.e30",
        ] {
            assert!(k.verify(junk).is_err(), "{junk:?}");
        }
        assert_eq!(
            k.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::Malformed)
        );
        // Claims that do not describe a service account.
        assert_eq!(Claims::from_json(&json!({})), None);
        let mut v = claims(1000).to_json();
        v["sub"] = json!("system:serviceaccount:kube-system:sa");
        assert_eq!(Claims::from_json(&v), None);
        let mut v = claims(1000).to_json();
        v["aud"] = json!(7);
        assert_eq!(Claims::from_json(&v), None);
        let mut v = claims(1000).to_json();
        v["aud"] = json!(DEFAULT_ISSUER);
        assert!(Claims::from_json(&v).is_some());
    }

    #[test]
    fn key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKey::load_or_create(dir.path()).unwrap();
        let b = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.kid(), b.kid());
        let tok = a.sign(&claims(1).to_json()).unwrap();
        assert!(b.verify(&tok).is_ok());
        assert_eq!(a.jwk()["crv"], "P-256");
        assert_eq!(
            B64.decode(a.jwk()["x"].as_str().unwrap()).unwrap().len(),
            32
        );
        std::fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        assert!(SigningKey::load_or_create(dir.path()).is_err());
    }
}
