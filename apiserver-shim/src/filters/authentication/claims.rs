//! From a verified token's claims to a user, as kube-apiserver's JWT
//! authenticator maps them (k8s.io/apiserver
//! plugin/pkg/authenticator/token/oidc): claim mappings with prefixes or
//! CEL expressions over `claims`, required claims and claim validation
//! rules, then user validation rules over `user` (pure).

use super::config::{Compiled, JwtAuthenticator};
use crate::pki::Identity;
use serde_json::Value;
use std::collections::BTreeMap;

/// The extra key naming the token's `jti` (kube's
/// `authentication.kubernetes.io/credential-id`).
pub const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// A compiled CEL expression and its source.
pub struct Expression {
    source: String,
    program: cel::Program,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

/// Compiles a CEL expression.
///
/// # Errors
/// The parser's message.
pub fn compile(source: &str) -> Result<Expression, String> {
    cel::Program::compile(source)
        .map(|program| Expression {
            source: source.to_string(),
            program,
        })
        .map_err(|e| e.to_string())
}

impl Expression {
    /// Evaluates with the variable `name` bound to `value`.
    ///
    /// # Errors
    /// An evaluation error (a missing field, a type mismatch).
    pub fn eval(&self, name: &str, value: &Value) -> Result<cel::Value, String> {
        let value = cel::to_value(value).map_err(|e| e.to_string())?;
        let mut context = cel::Context::default();
        context.add_variable_from_value(name, value);
        self.program
            .execute(&context)
            .map_err(|e| format!("{}: {e}", self.source))
    }
}

fn string_of(v: &cel::Value, what: &str) -> Result<String, String> {
    match v {
        cel::Value::String(s) => Ok(s.to_string()),
        _ => Err(format!("{what} expression must return a string")),
    }
}

fn strings_of(v: &cel::Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        cel::Value::String(s) => Ok(vec![s.to_string()]),
        cel::Value::List(items) => items
            .iter()
            .map(|i| string_of(i, what))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{what} expression must return a string or a list of strings")),
        cel::Value::Null => Ok(Vec::new()),
        _ => Err(format!(
            "{what} expression must return a string or a list of strings"
        )),
    }
}

fn claim_string(claims: &Value, claim: &str) -> Result<String, String> {
    match claims.get(claim) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("oidc: parse claim {claim:?}: not a string")),
        None => Err(format!("oidc: claim {claim:?} not present")),
    }
}

/// The user `claims` (a verified token's payload) stand for under
/// authenticator `a` with compiled expressions `c`.
///
/// # Errors
/// Why the token does not authenticate: a missing or mistyped claim, an
/// unverified email, a required claim's value, a false validation rule
/// (with its message), an expression error.
pub fn user(a: &JwtAuthenticator, c: &Compiled, claims: &Value) -> Result<Identity, String> {
    let m = &a.claim_mappings;
    let username = match &c.username {
        Some(e) => {
            let name = string_of(&e.eval("claims", claims)?, "username claim")?;
            if name.is_empty() {
                return Err("oidc: empty username via CEL expression is not allowed".into());
            }
            name
        }
        None => {
            let name = claim_string(claims, &m.username.claim)?;
            if m.username.claim == "email"
                && let Some(verified) = claims.get("email_verified")
                && verified != &Value::Bool(true)
            {
                return Err("oidc: email not verified".into());
            }
            format!("{}{name}", m.username.prefix.as_deref().unwrap_or_default())
        }
    };
    let groups = match claims
        .get(&m.groups.claim)
        .filter(|_| !m.groups.claim.is_empty())
    {
        Some(v) => {
            let prefix = m.groups.prefix.as_deref().unwrap_or_default();
            let values: Vec<String> = match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("oidc: parse groups claim {:?}", m.groups.claim))?,
                _ => return Err(format!("oidc: parse groups claim {:?}", m.groups.claim)),
            };
            values.into_iter().map(|g| format!("{prefix}{g}")).collect()
        }
        None => match &c.groups {
            Some(e) => strings_of(&e.eval("claims", claims)?, "groups claim")?,
            None => Vec::new(),
        },
    };
    let uid = if !m.uid.claim.is_empty() {
        claim_string(claims, &m.uid.claim)?
    } else if let Some(e) = &c.uid {
        string_of(&e.eval("claims", claims)?, "uid claim")?
    } else {
        String::new()
    };
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(Value::String(jti)) = claims.get("jti") {
        extra.insert(CREDENTIAL_ID.into(), vec![format!("JTI={jti}")]);
    }
    for (key, e) in &c.extra {
        let values = strings_of(&e.eval("claims", claims)?, "extra")?;
        if !values.is_empty() {
            extra.insert(key.clone(), values);
        }
    }
    for rule in a
        .claim_validation_rules
        .iter()
        .filter(|r| !r.claim.is_empty())
    {
        let value = claims.get(&rule.claim).ok_or_else(|| {
            format!(
                "oidc: required claim {} not present in ID token",
                rule.claim
            )
        })?;
        let value = value
            .as_str()
            .ok_or_else(|| format!("oidc: parse claim {}: not a string", rule.claim))?;
        if value != rule.required_value {
            return Err(format!(
                "oidc: required claim {} value does not match. Got = {value}, want = {}",
                rule.claim, rule.required_value
            ));
        }
    }
    for (e, message) in &c.claim_rules {
        if e.eval("claims", claims)? != cel::Value::Bool(true) {
            return Err(format!(
                "oidc: error evaluating claim validation expression: {message}"
            ));
        }
    }
    let identity = Identity {
        user: username,
        uid,
        groups,
        extra,
    };
    if !c.user_rules.is_empty() {
        let user = serde_json::json!({
            "username": identity.user, "uid": identity.uid,
            "groups": identity.groups, "extra": identity.extra,
        });
        for (e, message) in &c.user_rules {
            if e.eval("user", &user)? != cel::Value::Bool(true) {
                return Err(format!(
                    "oidc: error evaluating user info validation rule: {message}"
                ));
            }
        }
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::authentication::config::AuthenticationConfiguration;
    use serde_json::json;

    const CONFIG: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {url: "https://idp.example", audiences: [vkube]}
  claimValidationRules:
  - {claim: hd, requiredValue: example.com}
  - {expression: "claims.exp - claims.iat <= 86400", message: "tokens live a day at most"}
  claimMappings:
    username: {claim: email, prefix: "oidc:"}
    groups: {claim: groups, prefix: "oidc:"}
    uid: {expression: "'uid-' + claims.sub"}
    extra:
    - {key: example.com/team, valueExpression: "claims.team"}
  userValidationRules:
  - {expression: "!user.username.startsWith('oidc:system:')", message: "no system users"}
"#;

    fn map(claims: Value) -> Result<Identity, String> {
        let config = AuthenticationConfiguration::parse(CONFIG).unwrap();
        let compiled = config.validate(&[]).unwrap();
        user(&config.jwt[0], &compiled[0], &claims)
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.example", "sub": "42", "email": "alice@example.com",
            "email_verified": true, "groups": ["devs", "system:masters"], "hd": "example.com",
            "team": "blue", "iat": 1000, "exp": 4600, "jti": "t-1"})
    }

    #[test]
    fn claims_map_to_a_prefixed_user_with_uid_and_extra() {
        let id = map(claims()).unwrap();
        assert_eq!(id.user, "oidc:alice@example.com");
        // A prefix keeps a token from naming a privileged group.
        assert_eq!(id.groups, ["oidc:devs", "oidc:system:masters"]);
        assert_eq!(id.uid, "uid-42");
        assert_eq!(id.extra["example.com/team"], ["blue"]);
        assert_eq!(id.extra[CREDENTIAL_ID], ["JTI=t-1"]);
    }

    #[test]
    fn rules_and_claims_refuse_what_they_must() {
        let mut c = claims();
        c["email_verified"] = json!(false);
        assert_eq!(map(c).unwrap_err(), "oidc: email not verified");
        let mut c = claims();
        c["hd"] = json!("evil.example");
        assert!(
            map(c)
                .unwrap_err()
                .contains("required claim hd value does not match")
        );
        let mut c = claims();
        c["exp"] = json!(1_000_000);
        assert!(map(c).unwrap_err().contains("tokens live a day at most"));
        let mut c = claims();
        c["email"] = json!("system:admin");
        assert!(map(c).unwrap_err().contains("no system users"));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("email");
        assert!(map(c).is_err());
        // A single string is a group too.
        let mut c = claims();
        c["groups"] = json!("ops");
        assert_eq!(map(c).unwrap().groups, ["oidc:ops"]);
    }

    #[test]
    fn configurations_are_validated_with_kubes_messages() {
        let bad = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {url: "http://idp.example", audiences: []}
  claimMappings:
    username: {claim: sub}
    groups: {claim: groups, expression: "claims.groups"}
    extra: [{key: kubernetes.io/x, valueExpression: "1 +"}]
- issuer: {url: "https://kubernetes.default.svc.cluster.local", audiences: [a, a]}
  claimMappings:
    username: {expression: "claims.sub", prefix: "x:"}
"#;
        let config = AuthenticationConfiguration::parse(bad).unwrap();
        let errors = config
            .validate(&["https://kubernetes.default.svc.cluster.local".into()])
            .unwrap_err();
        let want = [
            r#"jwt[0].issuer.url: Invalid value: "http://idp.example": URL scheme must be https"#,
            "jwt[0].issuer.audiences: Required value: at least one jwt[0].issuer.audiences is required",
            "jwt[0].claimMappings.username.prefix: Required value: prefix is required when claim is set. It can be set to an empty string to disable prefixing",
            r#"jwt[0].claimMappings.groups: Invalid value: "": claim and expression can't both be set"#,
            r#"jwt[0].claimMappings.extra[0].key: Invalid value: "kubernetes.io/x": k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use"#,
            "URL must not overlap with disallowed issuers",
            r#"jwt[1].issuer.audiences[1]: Duplicate value: "a""#,
            r#"jwt[1].claimMappings.username.prefix: Invalid value: "x:": may not be specified when expression is set"#,
        ];
        for w in want {
            assert!(
                errors.iter().any(|e| e.contains(w)),
                "missing {w} in {errors:#?}"
            );
        }
        assert!(
            errors.iter().any(
                |e| e.starts_with("jwt[0].claimMappings.extra[0].valueExpression")
                    && e.contains("compilation failed")
            ),
            "{errors:#?}"
        );
        assert!(AuthenticationConfiguration::parse("kind: Nope").is_err());
        let email_only = |username: &str, rules: &str| {
            let text = format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {{url: https://idp, audiences: [a]}}\n  claimMappings:\n    username: {{expression: {username:?}}}\n{rules}"
            );
            AuthenticationConfiguration::parse(&text)
                .unwrap()
                .validate(&[])
        };
        let errors = email_only("claims.email", "").unwrap_err();
        assert!(
            errors[0].contains("claims.email_verified must be used"),
            "{errors:?}"
        );
        assert!(email_only("claims.email_verified ? claims.email : ''", "").is_ok());
        assert!(
            email_only(
                "claims.email",
                "  claimValidationRules: [{expression: 'claims.email_verified', message: m}]\n"
            )
            .is_ok()
        );
        assert!(email_only("claims.sub", "").is_ok());
    }
}
