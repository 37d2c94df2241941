//! The structured authentication configuration
//! (`apiserver.config.k8s.io/v1` `AuthenticationConfiguration`, KEP-3331),
//! its JWT authenticators read and validated as kube-apiserver validates
//! them (k8s.io/apiserver pkg/apis/apiserver/validation), with the field
//! paths and messages it gives.

use super::claims::{Expression, compile};
use serde::Deserialize;

/// The file given to `--authentication-config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationConfiguration {
    /// `apiserver.config.k8s.io/v1` (v1beta1 and v1alpha1 read the same).
    #[serde(default)]
    pub api_version: String,
    /// `AuthenticationConfiguration`.
    #[serde(default)]
    pub kind: String,
    /// JWT (OIDC) authenticators, one per issuer.
    #[serde(default)]
    pub jwt: Vec<JwtAuthenticator>,
}

/// One issuer's tokens and how they become a user.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtAuthenticator {
    /// The issuer.
    pub issuer: Issuer,
    /// Conditions every token's claims must meet.
    #[serde(default)]
    pub claim_validation_rules: Vec<ClaimValidationRule>,
    /// How claims become the user's name, groups, uid and extra.
    pub claim_mappings: ClaimMappings,
    /// Conditions the resulting user must meet.
    #[serde(default)]
    pub user_validation_rules: Vec<UserValidationRule>,
}

/// Where tokens come from and whom they must be for.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Issuer {
    /// The `iss` of its tokens (`https://…`); its discovery document is
    /// `URL/.well-known/openid-configuration`.
    pub url: String,
    /// Where to read the discovery document instead (its `issuer` must
    /// still be `url`).
    #[serde(default, rename = "discoveryURL")]
    pub discovery_url: String,
    /// PEM CA bundle to verify the issuer's TLS with; empty: system roots.
    #[serde(default)]
    pub certificate_authority: String,
    /// Accepted `aud` values; a token must name one.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `MatchAny` (the only policy).
    #[serde(default)]
    pub audience_match_policy: String,
    /// Ignored here (no egress selector).
    #[serde(default)]
    pub egress_selector_type: String,
}

/// A claim that must hold a value, or a CEL expression over `claims` that
/// must be true.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimValidationRule {
    /// A claim name.
    #[serde(default)]
    pub claim: String,
    /// The string value `claim` must have.
    #[serde(default)]
    pub required_value: String,
    /// A CEL expression over `claims` returning a bool.
    #[serde(default)]
    pub expression: String,
    /// The error when `expression` is false.
    #[serde(default)]
    pub message: String,
}

/// How claims map to the user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimMappings {
    /// The user name (required).
    #[serde(default)]
    pub username: PrefixedClaimOrExpression,
    /// The groups.
    #[serde(default)]
    pub groups: PrefixedClaimOrExpression,
    /// The uid.
    #[serde(default)]
    pub uid: ClaimOrExpression,
    /// Extra attributes.
    #[serde(default)]
    pub extra: Vec<ExtraMapping>,
}

/// A claim (with a prefix) or a CEL expression.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixedClaimOrExpression {
    /// The claim.
    #[serde(default)]
    pub claim: String,
    /// Prepended to the claim's value(s); required with `claim` (may be
    /// empty).
    #[serde(default)]
    pub prefix: Option<String>,
    /// A CEL expression over `claims`.
    #[serde(default)]
    pub expression: String,
}

/// A claim or a CEL expression.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimOrExpression {
    /// The claim.
    #[serde(default)]
    pub claim: String,
    /// A CEL expression over `claims`.
    #[serde(default)]
    pub expression: String,
}

/// One extra attribute: its key and the CEL expression giving its values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraMapping {
    /// A lower-case key outside `k8s.io` and `kubernetes.io`.
    #[serde(default)]
    pub key: String,
    /// A CEL expression over `claims` returning a string or strings.
    #[serde(default)]
    pub value_expression: String,
}

/// A CEL expression over `user` that must be true.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserValidationRule {
    /// The expression.
    #[serde(default)]
    pub expression: String,
    /// The error when it is false.
    #[serde(default)]
    pub message: String,
}

/// An issuer's compiled CEL expressions, ready to run.
#[derive(Debug, Default)]
pub struct Compiled {
    /// `claimMappings.username.expression`.
    pub username: Option<Expression>,
    /// `claimMappings.groups.expression`.
    pub groups: Option<Expression>,
    /// `claimMappings.uid.expression`.
    pub uid: Option<Expression>,
    /// `claimMappings.extra`, by key.
    pub extra: Vec<(String, Expression)>,
    /// `claimValidationRules` with expressions, with their messages.
    pub claim_rules: Vec<(Expression, String)>,
    /// `userValidationRules`, with their messages.
    pub user_rules: Vec<(Expression, String)>,
}

impl AuthenticationConfiguration {
    /// Reads a configuration file's content, YAML or JSON (pure).
    ///
    /// # Errors
    /// A syntax error, an unknown field, or another kind.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: AuthenticationConfiguration =
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        let known = [
            "apiserver.config.k8s.io/v1",
            "apiserver.config.k8s.io/v1beta1",
            "apiserver.config.k8s.io/v1alpha1",
        ];
        if c.kind != "AuthenticationConfiguration" || !known.contains(&c.api_version.as_str()) {
            return Err(format!(
                "expected kind AuthenticationConfiguration in apiserver.config.k8s.io/v1, got kind {:?} in {:?}",
                c.kind, c.api_version
            ));
        }
        Ok(c)
    }

    /// Validates the configuration and compiles its expressions, one
    /// [`Compiled`] per `jwt` entry; `disallowed_issuers` are the service
    /// account issuers (pure).
    ///
    /// # Errors
    /// Every problem, as kube's `field.ErrorList` prints them
    /// (`jwt[0].issuer.url: Invalid value: "http://x": URL scheme must be
    /// https`).
    pub fn validate(&self, disallowed_issuers: &[String]) -> Result<Vec<Compiled>, Vec<String>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        let mut urls: Vec<&str> = Vec::new();
        for (i, a) in self.jwt.iter().enumerate() {
            let path = format!("jwt[{i}]");
            if urls.contains(&a.issuer.url.as_str()) {
                errors.push(format!(
                    "{path}.issuer.url: Duplicate value: {:?}",
                    a.issuer.url
                ));
            }
            urls.push(&a.issuer.url);
            validate_issuer(
                &a.issuer,
                disallowed_issuers,
                &format!("{path}.issuer"),
                &mut errors,
            );
            compiled.push(validate_mappings(a, &path, &mut errors));
        }
        if errors.is_empty() {
            Ok(compiled)
        } else {
            Err(errors)
        }
    }
}

fn invalid(errors: &mut Vec<String>, path: &str, value: &str, why: &str) {
    errors.push(format!("{path}: Invalid value: {value:?}: {why}"));
}

fn validate_url(url: &str, path: &str, errors: &mut Vec<String>) {
    let Some(rest) = url.strip_prefix("https://") else {
        invalid(errors, path, url, "URL scheme must be https");
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        invalid(
            errors,
            path,
            url,
            "URL must not contain a username or password",
        );
    }
    if authority.is_empty() {
        invalid(errors, path, url, "URL must have a host");
    }
    if url.contains('?') {
        invalid(errors, path, url, "URL must not contain a query");
    }
    if url.contains('#') {
        invalid(errors, path, url, "URL must not contain a fragment");
    }
}

fn validate_issuer(issuer: &Issuer, disallowed: &[String], path: &str, errors: &mut Vec<String>) {
    let url_path = format!("{path}.url");
    if issuer.url.is_empty() {
        errors.push(format!("{url_path}: Required value"));
    } else {
        if disallowed.contains(&issuer.url) {
            invalid(
                errors,
                &url_path,
                &issuer.url,
                &format!(
                    "URL must not overlap with disallowed issuers: [{}]",
                    disallowed.join(" ")
                ),
            );
        }
        validate_url(&issuer.url, &url_path, errors);
    }
    if !issuer.discovery_url.is_empty() {
        let p = format!("{path}.discoveryURL");
        if issuer.discovery_url.trim_end_matches('/') == issuer.url.trim_end_matches('/') {
            invalid(
                errors,
                &p,
                &issuer.discovery_url,
                "discoveryURL must be different from URL",
            );
        }
        validate_url(&issuer.discovery_url, &p, errors);
    }
    let aud = format!("{path}.audiences");
    if issuer.audiences.is_empty() {
        errors.push(format!(
            "{aud}: Required value: at least one {aud} is required"
        ));
    }
    for (i, a) in issuer.audiences.iter().enumerate() {
        if a.is_empty() {
            errors.push(format!("{aud}[{i}]: Required value"));
        } else if issuer.audiences[..i].contains(a) {
            errors.push(format!("{aud}[{i}]: Duplicate value: {a:?}"));
        }
    }
    let policy = &issuer.audience_match_policy;
    if issuer.audiences.len() > 1 && policy != "MatchAny" {
        invalid(
            errors,
            &format!("{path}.audienceMatchPolicy"),
            policy,
            "audienceMatchPolicy must be MatchAny for multiple audiences",
        );
    } else if issuer.audiences.len() == 1 && !policy.is_empty() && policy != "MatchAny" {
        invalid(
            errors,
            &format!("{path}.audienceMatchPolicy"),
            policy,
            "audienceMatchPolicy must be empty or MatchAny for single audience",
        );
    }
    if !issuer.certificate_authority.is_empty()
        && super::jwks::root_store(&issuer.certificate_authority).is_err()
    {
        invalid(
            errors,
            &format!("{path}.certificateAuthority"),
            "<omitted>",
            "data does not contain any valid RSA or ECDSA certificates",
        );
    }
}

fn expression(source: &str, path: &str, errors: &mut Vec<String>) -> Option<Expression> {
    match compile(source) {
        Ok(e) => Some(e),
        Err(e) => {
            invalid(errors, path, source, &format!("compilation failed: {e}"));
            None
        }
    }
}

fn validate_mappings(a: &JwtAuthenticator, path: &str, errors: &mut Vec<String>) -> Compiled {
    let mut c = Compiled::default();
    let m = &a.claim_mappings;
    let mp = format!("{path}.claimMappings");
    for (field, mapping, required) in [
        ("username", &m.username, true),
        ("groups", &m.groups, false),
    ] {
        let p = format!("{mp}.{field}");
        let has_claim = !mapping.claim.is_empty();
        let has_expression = !mapping.expression.is_empty();
        if has_claim && has_expression {
            invalid(errors, &p, "", "claim and expression can't both be set");
        } else if !has_claim && !has_expression && required {
            errors.push(format!(
                "{p}: Required value: claim or expression is required"
            ));
        }
        if has_expression {
            if mapping.prefix.is_some() {
                invalid(
                    errors,
                    &format!("{p}.prefix"),
                    mapping.prefix.as_deref().unwrap_or_default(),
                    "may not be specified when expression is set",
                );
            }
            let compiled = expression(&mapping.expression, &format!("{p}.expression"), errors);
            match field {
                "username" => c.username = compiled,
                _ => c.groups = compiled,
            }
        } else if has_claim && mapping.prefix.is_none() {
            errors.push(format!(
                "{p}.prefix: Required value: prefix is required when claim is set. It can be set to an empty string to disable prefixing"
            ));
        }
    }
    if !m.uid.claim.is_empty() && !m.uid.expression.is_empty() {
        invalid(
            errors,
            &format!("{mp}.uid"),
            "",
            "claim and expression can't both be set",
        );
    } else if !m.uid.expression.is_empty() {
        c.uid = expression(&m.uid.expression, &format!("{mp}.uid.expression"), errors);
    }
    for (i, extra) in m.extra.iter().enumerate() {
        let p = format!("{mp}.extra[{i}]");
        let key = &extra.key;
        if key.is_empty() {
            errors.push(format!("{p}.key: Required value"));
        } else if key.to_lowercase() != *key {
            invalid(errors, &format!("{p}.key"), key, "must be lowercase");
        } else if is_kubernetes_domain(key) {
            invalid(
                errors,
                &format!("{p}.key"),
                key,
                "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use",
            );
        } else if m.extra[..i].iter().any(|e| &e.key == key) {
            errors.push(format!("{p}.key: Duplicate value: {key:?}"));
        }
        if extra.value_expression.is_empty() {
            errors.push(format!("{p}.valueExpression: Required value"));
        } else if let Some(e) = expression(
            &extra.value_expression,
            &format!("{p}.valueExpression"),
            errors,
        ) {
            c.extra.push((key.clone(), e));
        }
    }
    for (i, rule) in a.claim_validation_rules.iter().enumerate() {
        let p = format!("{path}.claimValidationRules[{i}]");
        match (rule.claim.is_empty(), rule.expression.is_empty()) {
            (false, false) => invalid(
                errors,
                &p,
                &rule.claim,
                "claim and expression can't both be set",
            ),
            (true, true) => errors.push(format!(
                "{p}: Required value: claim or expression is required"
            )),
            (false, true) => {
                if !rule.message.is_empty() {
                    invalid(
                        errors,
                        &format!("{p}.message"),
                        &rule.message,
                        "may not be specified when claim is set",
                    );
                }
            }
            (true, false) => {
                if !rule.required_value.is_empty() {
                    invalid(
                        errors,
                        &format!("{p}.requiredValue"),
                        &rule.required_value,
                        "may not be specified when expression is set",
                    );
                }
                if let Some(e) = expression(&rule.expression, &format!("{p}.expression"), errors) {
                    c.claim_rules.push((e, rule.message.clone()));
                }
            }
        }
    }
    // An expression naming the user by `claims.email` must look at
    // `claims.email_verified` somewhere, or unverified addresses would sign
    // in (read from the source text; kube reads the compiled expression).
    let email_used = uses_claim(&m.username.expression, "email");
    let verified_used = uses_claim(&m.username.expression, "email_verified")
        || m.extra
            .iter()
            .any(|e| uses_claim(&e.value_expression, "email_verified"))
        || a.claim_validation_rules
            .iter()
            .any(|r| uses_claim(&r.expression, "email_verified"));
    if email_used && !verified_used {
        invalid(
            errors,
            &format!("{mp}.username.expression"),
            &m.username.expression,
            "claims.email_verified must be used in claimMappings.username.expression or claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in claimMappings.username.expression",
        );
    }
    for (i, rule) in a.user_validation_rules.iter().enumerate() {
        let p = format!("{path}.userValidationRules[{i}].expression");
        if rule.expression.is_empty() {
            errors.push(format!("{p}: Required value"));
        } else if let Some(e) = expression(&rule.expression, &p, errors) {
            c.user_rules.push((e, rule.message.clone()));
        }
    }
    c
}

/// Whether CEL `source` selects `claims.NAME` (as a whole identifier).
fn uses_claim(source: &str, name: &str) -> bool {
    let needle = format!("claims.{name}");
    source.match_indices(&needle).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = source[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Whether `key`'s domain is `k8s.io`, `kubernetes.io` or one of their
/// subdomains.
fn is_kubernetes_domain(key: &str) -> bool {
    let domain = key.split('/').next().unwrap_or_default();
    ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
}
