//! The attributes an authorizer decides on, read from a request's method,
//! path and query the way kube-apiserver's `RequestInfoFactory`
//! (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go) reads them:
//!
//! * `/api/{version}/…` and `/apis/{group}/{version}/…` with at least a
//!   resource are resource requests; every other path (`/api`, `/api/v1`,
//!   `/apis/apps`, `/apis/apps/v1`, `/openapi/v3`, `/healthz`) is a
//!   non-resource request whose verb is the lower-cased method;
//! * the verb follows the method (`POST` create, `GET`/`HEAD` get, `PUT`
//!   update, `PATCH` patch, `DELETE` delete) or the legacy `watch/` path
//!   prefix; a `get` without a name is `list`, or `watch` when the `watch`
//!   parameter is true; a `delete` without a name is `deletecollection`;
//! * `namespaces/{ns}/{resource}/…` names the namespace, and so does
//!   `namespaces/{ns}` itself (and its `status` and `finalize`
//!   subresources), so a RoleBinding in `ns` may grant access to its own
//!   Namespace object;
//! * a list or watch whose field selector requires `metadata.name=N` is
//!   about the object `N`, so `resourceNames` rules apply to it (this is how
//!   `kubectl get pod N --watch` asks).

use super::rbac::Request;

/// The attributes of a request for path `segments` (split on `/`, empty
/// segments dropped, percent-decoded: the segments the router serves),
/// its lower- or upper-case HTTP `method`, its decoded `path` (for a
/// non-resource request) and its raw `query` (pure).
pub fn of(method: &str, segments: &[&str], path: &str, query: Option<&str>) -> Request {
    let non_resource = || Request::NonResource {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
    };
    let (group, rest) = match segments {
        ["api", _, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return non_resource(),
    };
    let (mut verb, parts) = match rest {
        ["watch", parts @ ..] => ("watch".to_string(), parts),
        parts => (
            // Methods are case-sensitive: `delete` is no verb kube knows.
            match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_string(),
            parts,
        ),
    };
    let mut namespace = String::new();
    let mut parts = parts;
    if let ["namespaces", ns, tail @ ..] = parts {
        namespace = (*ns).to_string();
        if !tail.is_empty() && !matches!(tail[0], "status" | "finalize") {
            parts = tail;
        }
    }
    let part = |i: usize| parts.get(i).map_or("", |s| *s).to_string();
    let resource = part(0);
    let mut name = part(1);
    let subresource = part(2);
    if name.is_empty() && verb == "get" {
        // The first value of each parameter counts, as in Go's parameter
        // codec and in what the request is then served with.
        use crate::request::{codec_bool, first_param};
        let watch = first_param(query, "watch").is_some_and(|v| codec_bool(&v));
        let field_selector = first_param(query, "fieldSelector");
        verb = if watch { "watch" } else { "list" }.to_string();
        if let Some(selector) = field_selector
            .as_deref()
            .and_then(|s| vkube_core::fields::FieldSelector::parse(s).ok())
            && let Some(n) = selector.requires_exact_match("metadata.name")
            && is_path_segment_name(n)
        {
            name = n.to_string();
        }
    }
    if name.is_empty() && verb == "delete" {
        verb = "deletecollection".to_string();
    }
    Request::Resource {
        verb,
        namespace,
        group: group.to_string(),
        resource,
        subresource,
        name,
    }
}

/// Whether `name` may be a path segment (kube's `IsPathSegmentName`).
fn is_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(method: &str, path: &str, query: Option<&str>) -> Request {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        of(method, &segments, path, query)
    }

    fn res(verb: &str, ns: &str, group: &str, resource: &str, sub: &str, name: &str) -> Request {
        Request::Resource {
            verb: verb.into(),
            namespace: ns.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
        }
    }

    #[test]
    fn verbs_follow_the_method_and_the_name() {
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/dev/pods",
                None,
                res("list", "dev", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/dev/pods",
                Some("watch=true"),
                res("watch", "dev", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods",
                Some("watch=1&limit=5"),
                res("watch", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods",
                Some("watch=False"),
                res("list", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/dev/pods/p",
                None,
                res("get", "dev", "", "pods", "", "p"),
            ),
            (
                "HEAD",
                "/api/v1/namespaces/dev/pods/p",
                None,
                res("get", "dev", "", "pods", "", "p"),
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/dev/deployments",
                None,
                res("create", "dev", "apps", "deployments", "", ""),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/dev/deployments/web/scale",
                None,
                res("update", "dev", "apps", "deployments", "scale", "web"),
            ),
            (
                "PATCH",
                "/api/v1/nodes/n1/status",
                None,
                res("patch", "", "", "nodes", "status", "n1"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/dev/pods/p",
                None,
                res("delete", "dev", "", "pods", "", "p"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/dev/pods",
                None,
                res("deletecollection", "dev", "", "pods", "", ""),
            ),
            (
                "POST",
                "/api/v1/namespaces/dev/pods/p/exec",
                None,
                res("create", "dev", "", "pods", "exec", "p"),
            ),
            (
                "GET",
                "/api/v1/namespaces/dev/pods/p/log",
                None,
                res("get", "dev", "", "pods", "log", "p"),
            ),
            (
                "OPTIONS",
                "/api/v1/pods",
                None,
                res("", "", "", "pods", "", ""),
            ),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(at(method, path, query), want, "{method} {path} {query:?}");
        }
    }

    #[test]
    fn methods_are_case_sensitive_and_first_parameters_count() {
        assert_eq!(
            at("delete", "/api/v1/namespaces/dev/pods/p", None),
            res("", "dev", "", "pods", "", "p")
        );
        assert_eq!(
            at("GET", "/api/v1/pods", Some("watch=1&watch=0")),
            res("watch", "", "", "pods", "", "")
        );
        assert_eq!(
            at("GET", "/api/v1/pods", Some("watch=0&watch=1")),
            res("list", "", "", "pods", "", "")
        );
    }

    #[test]
    fn namespaces_name_their_own_namespace() {
        assert_eq!(
            at("POST", "/api/v1/namespaces", None),
            res("create", "", "", "namespaces", "", "")
        );
        assert_eq!(
            at("GET", "/api/v1/namespaces/dev", None),
            res("get", "dev", "", "namespaces", "", "dev")
        );
        assert_eq!(
            at("PUT", "/api/v1/namespaces/dev/finalize", None),
            res("update", "dev", "", "namespaces", "finalize", "dev")
        );
        assert_eq!(
            at("GET", "/api/v1/namespaces/dev/status", None),
            res("get", "dev", "", "namespaces", "status", "dev")
        );
    }

    #[test]
    fn the_watch_prefix_and_name_selectors_are_kubes() {
        assert_eq!(
            at("GET", "/api/v1/watch/namespaces/dev/pods", None),
            res("watch", "dev", "", "pods", "", "")
        );
        assert_eq!(
            at("GET", "/api/v1/watch/namespaces/dev/pods/p", None),
            res("watch", "dev", "", "pods", "", "p")
        );
        assert_eq!(
            at(
                "GET",
                "/api/v1/namespaces/dev/secrets",
                Some("fieldSelector=metadata.name%3Dapp&watch=true")
            ),
            res("watch", "dev", "", "secrets", "", "app")
        );
        assert_eq!(
            at(
                "GET",
                "/api/v1/namespaces/dev/secrets",
                Some("fieldSelector=metadata.name%3Dapp&fieldSelector=")
            ),
            res("list", "dev", "", "secrets", "", "app")
        );
        // Only an exact requirement on the name names the object.
        assert_eq!(
            at(
                "GET",
                "/api/v1/namespaces/dev/secrets",
                Some("fieldSelector=metadata.name!%3Dapp")
            ),
            res("list", "dev", "", "secrets", "", "")
        );
        assert_eq!(
            at(
                "GET",
                "/api/v1/namespaces/dev/secrets",
                Some("fieldSelector=metadata.name%3D..")
            ),
            res("list", "dev", "", "secrets", "", "")
        );
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/openapi/v3",
            "/version",
            "/",
        ] {
            assert_eq!(
                at("GET", path, None),
                Request::NonResource {
                    verb: "get".into(),
                    path: path.into()
                },
                "{path}"
            );
        }
        assert_eq!(
            at("POST", "/apis/apps", None),
            Request::NonResource {
                verb: "post".into(),
                path: "/apis/apps".into()
            }
        );
    }
}
