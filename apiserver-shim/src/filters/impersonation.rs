//! User impersonation (`kubectl --as`, `--as-group`, `--as-uid`), as
//! kube-apiserver's impersonation filter
//! (k8s.io/apiserver/pkg/endpoints/filters/impersonation.go) does it: the
//! `Impersonate-User`, `Impersonate-Group` (repeatable), `Impersonate-Uid`
//! and `Impersonate-Extra-KEY` headers make the request act as that user,
//! once the caller is allowed the `impersonate` verb on each (core
//! `users`, `serviceaccounts` for `system:serviceaccount:NS:NAME` and
//! `groups`; `authentication.k8s.io` `uids` and `userextras/KEY`), decided
//! by [`crate::filters::authorization::rbac`].
//!
//! The acting user gets `system:authenticated` unless groups were named
//! (or `system:unauthenticated` when it is `system:anonymous`); a service
//! account without named groups gets its own groups. Errors: `400` for
//! groups, a uid or extras without a user; `403` with kube's message when
//! the caller may not impersonate.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

use crate::error::{ApiError, ApiResult};
use crate::filters::authorization::rbac::{self, Request, User};
use crate::pki::Identity;
use crate::rest::Api;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// What a request asks to act as, read from its headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impersonation {
    /// The user name.
    pub user: String,
    /// Groups named (none: the user's own, see the module docs).
    pub groups: Vec<String>,
    /// The uid, if named.
    pub uid: Option<String>,
    /// Extra attributes (keys percent-decoded and lower-cased).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The impersonation `headers` ask for, if any (pure).
///
/// Errors: `400` when groups, a uid or extras come without a user.
pub fn requested(headers: &HeaderMap) -> ApiResult<Option<Impersonation>> {
    // Header values are bytes; a value that is not text is not dropped
    // (the request would then run as the caller).
    let text = |v: &axum::http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let all = |name: &str| -> Vec<String> { headers.get_all(name).iter().map(text).collect() };
    let user = all(USER).into_iter().next();
    let groups = all(GROUP);
    // An empty uid is no uid (kube reads it with `Get`, "" when absent).
    let uid = all(UID).into_iter().next().filter(|u| !u.is_empty());
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        // Header names arrive lower-cased; the key is then unescaped, so
        // `%41` stays `A` as in kube.
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .into_owned();
            extra.entry(key).or_default().push(text(value));
        }
    }
    match user {
        Some(user) if !user.is_empty() => Ok(Some(Impersonation {
            user,
            groups,
            uid,
            extra,
        })),
        _ if groups.is_empty() && uid.is_none() && extra.is_empty() => Ok(None),
        _ => Err(ApiError::bad_request(
            "requested impersonation of groups, a uid or extras without impersonating a user",
        )),
    }
}

fn impersonate(namespace: &str, resource: &str, subresource: &str, name: &str) -> Request {
    Request::Resource {
        verb: "impersonate".into(),
        namespace: namespace.into(),
        // kube asks about users, groups and service accounts in the core
        // group, uids and extras in authentication.k8s.io.
        group: if matches!(resource, "uids" | "userextras") {
            "authentication.k8s.io".into()
        } else {
            String::new()
        },
        resource: resource.into(),
        subresource: subresource.into(),
        name: name.into(),
    }
}

/// The (namespace, name) of a service account user name
/// `system:serviceaccount:NS:NAME`, as kube's `serviceaccount.SplitUsername`:
/// exactly two parts, a valid namespace and name; anything else is a user.
pub fn split_service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let mut parts = rest.split(':');
    let (ns, name) = (parts.next()?, parts.next()?);
    let valid = parts.next().is_none()
        && vkube_core::validation::is_dns1123_label(ns).is_empty()
        && vkube_core::validation::is_dns1123_subdomain(name).is_empty();
    valid.then_some((ns, name))
}

/// The identity `caller` acts as under `imp`, once every part of it is
/// allowed. Errors: `403` as kube-apiserver answers (`users "alice" is
/// forbidden: User "bob" cannot impersonate resource "users" in API group
/// "" at the cluster scope`).
pub async fn apply(api: &Api, caller: &Identity, imp: Impersonation) -> ApiResult<Identity> {
    let service_account = split_service_account(&imp.user);
    let mut checks = vec![match service_account {
        Some((ns, name)) => impersonate(ns, "serviceaccounts", "", name),
        None => impersonate("", "users", "", &imp.user),
    }];
    // kube's order: user, groups, extras, uid.
    checks.extend(imp.groups.iter().map(|g| impersonate("", "groups", "", g)));
    for (k, vs) in &imp.extra {
        checks.extend(vs.iter().map(|v| impersonate("", "userextras", k, v)));
    }
    if let Some(uid) = &imp.uid {
        checks.push(impersonate("", "uids", "", uid));
    }
    let who = User {
        name: &caller.user,
        groups: &caller.groups,
    };
    let policy = api.policy().await?;
    for check in &checks {
        let decision = rbac::authorize(&policy, who, check);
        if !decision.allowed {
            return Err(crate::filters::authorization::forbidden(
                &caller.user,
                check,
                &decision.reason,
            ));
        }
    }
    let mut groups = imp.groups;
    if groups.is_empty()
        && let Some((ns, _)) = service_account
    {
        groups = vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
        ];
    }
    // kube adds the implied group unless a named group already is one.
    if !groups
        .iter()
        .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        groups.push(if imp.user == "system:anonymous" {
            "system:unauthenticated".into()
        } else {
            "system:authenticated".into()
        });
    }
    Ok(Identity {
        user: imp.user,
        uid: imp.uid.unwrap_or_default(),
        groups,
        extra: imp.extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::authorization::forbidden_message;
    use axum::http::HeaderValue;

    #[test]
    fn headers_name_the_user_groups_and_extras() {
        let mut h = HeaderMap::new();
        assert_eq!(requested(&h).unwrap(), None);
        h.insert(USER, HeaderValue::from_static("alice"));
        h.append(GROUP, HeaderValue::from_static("devs"));
        h.append(GROUP, HeaderValue::from_static("ops"));
        h.insert(
            "impersonate-extra-scopes%2Fx",
            HeaderValue::from_static("a"),
        );
        let imp = requested(&h).unwrap().unwrap();
        assert_eq!(imp.groups, ["devs", "ops"]);
        assert_eq!(imp.extra["scopes/x"], ["a"]);
        assert_eq!(
            split_service_account("system:serviceaccount:dev:builder"),
            Some(("dev", "builder"))
        );
        for user in [
            "system:serviceaccount:dev:a:b",
            "system:serviceaccount:dev",
            "system:serviceaccount:Dev:x",
            "alice",
        ] {
            assert_eq!(split_service_account(user), None, "{user}");
        }
        let mut no_user = HeaderMap::new();
        no_user.insert(GROUP, HeaderValue::from_static("devs"));
        assert_eq!(requested(&no_user).unwrap_err().code, 400);
    }

    #[test]
    fn forbidden_messages_are_kubes() {
        assert_eq!(
            forbidden_message("bob", &impersonate("", "users", "", "alice")),
            r#"User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        assert_eq!(
            forbidden_message(
                "bob",
                &Request::Resource {
                    verb: "list".into(),
                    namespace: "dev".into(),
                    group: String::new(),
                    resource: "pods".into(),
                    subresource: "log".into(),
                    name: String::new(),
                }
            ),
            r#"User "bob" cannot list resource "pods/log" in API group "" in the namespace "dev""#
        );
        assert_eq!(
            forbidden_message(
                "bob",
                &Request::NonResource {
                    verb: "get".into(),
                    path: "/metrics".into()
                }
            ),
            r#"User "bob" cannot get path "/metrics""#
        );
    }
}
