//! Parsing of resource URLs and query parameters (pure; no I/O).
//!
//! URL layout per the API concepts: `/api/v1/...` for the core group,
//! `/apis/{group}/{version}/...` otherwise, then
//! `[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]`, with the legacy
//! `watch/` prefix accepted. `/api/v1/namespaces/{name}[/status|/finalize]`
//! addresses the namespace itself.

use crate::crd::CustomTable;
use crate::error::{ApiError, ApiResult};
use crate::pki::Identity;
use crate::registry::{self, Def};

tokio::task_local! {
    static CALLER: Identity;
}

/// Runs request handler `f` with `caller` as the request's user, which
/// per-kind strategies read with [`caller`] (a CertificateSigningRequest
/// records its requester, as kube-apiserver's reads the request context).
pub async fn with_caller<F: std::future::Future>(caller: Identity, f: F) -> F::Output {
    CALLER.scope(caller, f).await
}

/// The user of the request being served; `None` outside [`with_caller`]
/// (a background task).
pub fn caller() -> Option<Identity> {
    CALLER.try_with(Clone::clone).ok()
}

/// What a resource URL addresses.
#[derive(Clone)]
pub struct Target {
    /// The resource.
    pub def: Def,
    /// Namespace from the URL (`None`: cluster-scoped kind, or all namespaces).
    pub namespace: Option<String>,
    /// Object name (`None`: the collection).
    pub name: Option<String>,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
    /// The URL used the legacy `/watch/` prefix.
    pub watch_prefix: bool,
}

/// Parses the part of a path after `/api/v1/` or `/apis/{g}/{v}/` into a [`Target`]:
/// a built-in resource, else one of `custom`'s. Unknown resources and
/// malformed paths are `404`.
pub fn parse_target(
    group: &str,
    version: &str,
    rest: &[&str],
    custom: &CustomTable,
) -> ApiResult<Target> {
    let (watch_prefix, rest) = match rest.split_first() {
        Some((&"watch", tail)) => (true, tail),
        _ => (false, rest),
    };
    // `namespaces/{name}/{sub}` addresses a subresource of the namespace itself.
    let namespace_subresource = rest.len() == 3
        && rest[0] == "namespaces"
        && registry::lookup(group, version, "namespaces")
            .is_some_and(|ns| ns.subresources().contains(&rest[2]));
    let namespaced_path = rest.len() >= 3 && rest[0] == "namespaces" && !namespace_subresource;
    let (namespace, tail) = if namespaced_path {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let (resource, name, subresource) = match tail {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(*n), None),
        [r, n, s] => (*r, Some(*n), Some(*s)),
        _ => return Err(ApiError::no_route()),
    };
    let def = registry::lookup(group, version, resource)
        .map(Def::Builtin)
        .or_else(|| custom.lookup(group, version, resource))
        .ok_or_else(ApiError::no_route)?;
    if namespace.is_some() && !def.namespaced {
        return Err(ApiError::no_route());
    }
    if name.is_some() && def.namespaced && namespace.is_none() {
        return Err(ApiError::no_route());
    }
    if subresource.is_some_and(|s| !def.subresources().contains(&s)) {
        return Err(ApiError::no_route());
    }
    if name.is_some_and(|n| n.is_empty()) {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        def,
        namespace,
        name: name.map(str::to_string),
        subresource: subresource.map(str::to_string),
        watch_prefix,
    })
}

/// The query parameters of a resource request (k8s.io/apimachinery
/// metav1.ListOptions, GetOptions, CreateOptions, UpdateOptions, PatchOptions,
/// DeleteOptions in their URL form).
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// `watch`.
    pub watch: bool,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Every non-empty `dryRun` value given; anything but `All` is refused
    /// by the verb's options validation (`ValidateDryRun`, `422`).
    pub dry_run_values: Vec<String>,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`.
    pub propagation_policy: Option<String>,
    /// `includeObject` for Table output: `None`, `Metadata` (default) or `Object`.
    pub include_object: Option<String>,
    /// `fieldManager` of a write (server-side apply requires it).
    pub field_manager: Option<String>,
    /// `force` of an apply patch (`None`: not sent).
    pub force: Option<bool>,
    /// `fieldValidation` as sent; see [`crate::typed::FieldValidation::parse`].
    pub field_validation: Option<String>,
}

/// The first value of parameter `key` in the raw query `raw`, as Go's
/// `url.Values.Get` reads it (and so as every parameter is read here).
pub fn first_param(raw: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A boolean parameter as Go's parameter codec converts it
/// (`Convert_Slice_string_To_bool`): only `0`, `f` and `false` (any case)
/// are false.
pub fn codec_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("f") || v.eq_ignore_ascii_case("false"))
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
fn parse_bool(key: &str, v: &str) -> ApiResult<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid value for {key}: strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> ApiResult<T> {
    v.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid value for {key}: strconv.ParseInt: parsing {v:?}: invalid syntax"
        ))
    })
}

impl Query {
    /// Parses a raw query string; malformed values are `400 BadRequest`.
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        let mut q = Query::default();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            // The first value of a parameter counts (Go's url.Values.Get,
            // and what authorization read); `dryRun` may repeat.
            if k != "dryRun" && !seen.insert(k.clone()) {
                continue;
            }
            let v = v.into_owned();
            match k.as_ref() {
                "watch" => q.watch = parse_bool("watch", &v)?,
                "labelSelector" => q.label_selector = Some(v),
                "fieldSelector" => q.field_selector = Some(v),
                "resourceVersion" => q.resource_version = Some(v).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => {
                    q.resource_version_match = Some(v).filter(|s| !s.is_empty())
                }
                "limit" => {
                    let l: i64 = parse_num("limit", &v)?;
                    q.limit = usize::try_from(l).ok().filter(|l| *l > 0);
                }
                "continue" => q.continue_token = Some(v).filter(|s| !s.is_empty()),
                "timeoutSeconds" => q.timeout_seconds = Some(parse_num("timeoutSeconds", &v)?),
                "allowWatchBookmarks" => {
                    q.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", &v)?
                }
                "sendInitialEvents" => {
                    q.send_initial_events = Some(parse_bool("sendInitialEvents", &v)?)
                }
                "dryRun" if !v.is_empty() => {
                    q.dry_run |= v == "All";
                    q.dry_run_values.push(v);
                }
                "gracePeriodSeconds" => {
                    q.grace_period_seconds = Some(parse_num("gracePeriodSeconds", &v)?)
                }
                "propagationPolicy" => q.propagation_policy = Some(v),
                "includeObject" => q.include_object = Some(v),
                "fieldManager" => q.field_manager = Some(v).filter(|s| !s.is_empty()),
                "force" => q.force = Some(parse_bool("force", &v)?),
                "fieldValidation" => q.field_validation = Some(v),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// How the client asked for the response to be shaped (the `Accept` header's
/// `as=`, `g=`, `v=` parameters, API concepts "Receiving resources as Tables").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    PartialMetadata,
}

/// Picks the first representation in `accept` that the server can produce.
pub fn representation(accept: Option<&str>) -> Representation {
    let Some(accept) = accept else {
        return Representation::Object;
    };
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let mime = parts.next().unwrap_or("");
        if mime != "application/json" && mime != "*/*" && mime != "application/*" {
            continue;
        }
        let (mut as_, mut g, mut v) = (None, None, None);
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = Some(x),
                Some(("g", x)) => g = Some(x),
                Some(("v", x)) => v = Some(x),
                _ => {}
            }
        }
        match (as_, g, v) {
            (None, _, _) => return Representation::Object,
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) => return Representation::Table,
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1"),
            ) => {
                return Representation::PartialMetadata;
            }
            _ => continue,
        }
    }
    Representation::Object
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(group: &str, path: &str) -> ApiResult<Target> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        parse_target(group, "v1", &segs, &CustomTable::default())
    }

    #[test]
    fn the_first_value_of_a_parameter_counts() {
        let q = Query::parse(Some(
            "fieldSelector=metadata.name%3Ddb&fieldSelector=&watch=1&watch=0&dryRun=All&dryRun=All",
        ))
        .unwrap();
        assert_eq!(q.field_selector.as_deref(), Some("metadata.name=db"));
        assert!(q.watch);
        assert_eq!(q.dry_run_values, ["All", "All"]);
    }

    #[test]
    fn resource_paths() {
        let p = t("", "namespaces/default/pods/web/status").ok().unwrap();
        assert_eq!(p.def.resource, "pods");
        assert_eq!(p.namespace.as_deref(), Some("default"));
        assert_eq!(p.name.as_deref(), Some("web"));
        assert_eq!(p.subresource.as_deref(), Some("status"));
        let all = t("", "pods").ok().unwrap();
        assert!(all.namespace.is_none() && all.name.is_none());
        let ns = t("", "namespaces/kube-system").ok().unwrap();
        assert_eq!(ns.def.resource, "namespaces");
        assert_eq!(ns.name.as_deref(), Some("kube-system"));
        let fin = t("", "namespaces/x/finalize").ok().unwrap();
        assert_eq!(fin.def.resource, "namespaces");
        assert_eq!(fin.subresource.as_deref(), Some("finalize"));
        let w = t("", "watch/namespaces/default/configmaps").ok().unwrap();
        assert!(w.watch_prefix);
        assert_eq!(w.def.resource, "configmaps");
        let d = t("apps", "namespaces/default/deployments/web/scale")
            .ok()
            .unwrap();
        assert_eq!(d.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn unknown_or_misscoped_paths_are_404() {
        assert_eq!(t("", "widgets").err().unwrap().code, 404);
        assert_eq!(t("", "namespaces/default/nodes").err().unwrap().code, 404);
        assert_eq!(t("", "pods/web").err().unwrap().code, 404);
        assert_eq!(
            t("", "namespaces/default/pods/web/scale")
                .err()
                .unwrap()
                .code,
            404
        );
    }

    #[test]
    fn query_parsing() {
        let q = Query::parse(Some(
            "watch=1&labelSelector=app%3Dweb&limit=500&resourceVersion=10&allowWatchBookmarks=true&dryRun=All",
        ))
        .unwrap();
        assert!(q.watch && q.allow_watch_bookmarks && q.dry_run);
        assert_eq!(q.label_selector.as_deref(), Some("app=web"));
        assert_eq!(q.limit, Some(500));
        assert_eq!(q.resource_version.as_deref(), Some("10"));
        assert_eq!(Query::parse(Some("watch=maybe")).unwrap_err().code, 400);
        assert_eq!(Query::parse(Some("limit=x")).unwrap_err().code, 400);
        // Unsupported dryRun values are kept for the verb's options
        // validation to refuse (422), not a parse error.
        let q = Query::parse(Some("dryRun=Some&dryRun=All")).unwrap();
        assert_eq!(q.dry_run_values, ["Some", "All"]);
        assert!(q.dry_run);
    }

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(representation(Some(kubectl)), Representation::Table);
        assert_eq!(
            representation(Some(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"
            )),
            Representation::Object
        );
        assert_eq!(
            representation(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Representation::PartialMetadata
        );
        assert_eq!(representation(None), Representation::Object);
    }
}
