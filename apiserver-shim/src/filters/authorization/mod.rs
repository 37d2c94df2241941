//! Authorization, the stage of the request chain between authentication
//! (and impersonation) and admission: every request but the public health
//! and version endpoints is decided by RBAC ([`rbac`]) on the attributes
//! kube-apiserver reads from it ([`attributes`]), over the RBAC objects
//! held in memory ([`cache`]). A request RBAC does not allow is answered
//! `403 Forbidden` with kube-apiserver's message ([`forbidden`]).

pub mod attributes;
pub mod cache;
pub mod escalation;
pub mod rbac;

pub use cache::PolicyCache;

use crate::error::{ApiError, ApiResult, GroupResource};
use crate::pki::Identity;
use rbac::{Policy, Request, User};

/// How requests are authorized, as kube-apiserver's `--authorization-mode`
/// names the modes vkube has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// Every request is decided by RBAC (this module); the
    /// default, as kubeadm configures kube-apiserver.
    #[default]
    Rbac,
    /// Every authenticated request is allowed (`AlwaysAllow`): for
    /// measurements and single-user set-ups only.
    AlwaysAllow,
}

/// Allows `request` by `identity` under `policy`, with kube's reason (the
/// binding that allows it; empty for `system:masters`), or answers
/// kube-apiserver's `403` for it.
///
/// # Errors
/// `403 Forbidden` ([`forbidden`]) when RBAC does not allow the request.
pub fn check(policy: &Policy, identity: &Identity, request: &Request) -> ApiResult<String> {
    let user = User {
        name: &identity.user,
        groups: &identity.groups,
    };
    let decision = rbac::authorize(policy, user, request);
    if decision.allowed {
        return Ok(decision.reason);
    }
    Err(forbidden(&identity.user, request, &decision.reason))
}

/// kube's text for `user` not being allowed `request`
/// (`responsewriters.forbiddenMessage`): `User "alice" cannot list
/// resource "pods" in API group "" in the namespace "dev"`, `… at the
/// cluster scope`, or `User "alice" cannot get path "/metrics"`.
pub fn forbidden_message(user: &str, request: &Request) -> String {
    match request {
        Request::NonResource { verb, path } => {
            format!("User {user:?} cannot {verb} path {path:?}")
        }
        Request::Resource {
            verb,
            namespace,
            group,
            resource,
            subresource,
            ..
        } => {
            let resource = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            if namespace.is_empty() {
                format!(
                    "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} at the cluster scope"
                )
            } else {
                format!(
                    "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} in the namespace {namespace:?}"
                )
            }
        }
    }
}

/// kube-apiserver's `403` for a denied request (`responsewriters.Forbidden`):
/// the resource (without its subresource) and name, then
/// [`forbidden_message`] and, when RBAC gave one, `: reason`. For example
/// `secrets "db" is forbidden: User "alice" cannot get resource "secrets"
/// in API group "" in the namespace "dev"`, or `forbidden: User "alice"
/// cannot get path "/metrics"` for a non-resource request.
pub fn forbidden(user: &str, request: &Request, reason: &str) -> ApiError {
    let mut why = forbidden_message(user, request);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    match request {
        Request::Resource {
            group,
            resource,
            name,
            ..
        } => ApiError::forbidden(&GroupResource::new(group, resource), name, &why),
        Request::NonResource { .. } => ApiError::forbidden(&GroupResource::new("", ""), "", &why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(user: &str) -> Identity {
        Identity {
            user: user.into(),
            groups: vec!["system:authenticated".into()],
            ..Identity::default()
        }
    }

    #[test]
    fn denials_carry_kubes_messages() {
        let policy = Policy::default();
        let list = Request::Resource {
            verb: "list".into(),
            namespace: "dev".into(),
            group: String::new(),
            resource: "pods".into(),
            subresource: String::new(),
            name: String::new(),
        };
        let e = check(&policy, &identity("alice"), &list).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "dev""#
        );
        let exec = Request::Resource {
            verb: "create".into(),
            namespace: String::new(),
            group: "apps".into(),
            resource: "deployments".into(),
            subresource: "scale".into(),
            name: "web".into(),
        };
        assert_eq!(
            check(&policy, &identity("alice"), &exec)
                .unwrap_err()
                .message,
            r#"deployments.apps "web" is forbidden: User "alice" cannot create resource "deployments/scale" in API group "apps" at the cluster scope"#
        );
        let metrics = Request::NonResource {
            verb: "get".into(),
            path: "/metrics".into(),
        };
        assert_eq!(
            check(&policy, &identity("alice"), &metrics)
                .unwrap_err()
                .message,
            r#"forbidden: User "alice" cannot get path "/metrics""#
        );
        let mut root = identity("root");
        root.groups.push(rbac::PRIVILEGED_GROUP.into());
        check(&policy, &root, &metrics).unwrap();
    }
}
