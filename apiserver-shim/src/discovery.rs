//! Discovery documents, derived from the registry.
//!
//! Legacy discovery (`/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`)
//! and aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`
//! on `/api` and `/apis`, KEP-3352), which client-go and kubectl ask for first
//! and recognise by the response's Content-Type parameters.

use crate::crd::CustomTable;
use crate::registry::{self, RESOURCES, ResourceDef};
use serde_json::{Value, json};

/// The Content-Type of an aggregated discovery answer.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes version this server reports and follows.
pub const KUBE_VERSION: (&str, &str) = ("1", "34");

/// Whether the Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
        })
    })
}

/// `/version`.
pub fn version() -> Value {
    let (major, minor) = KUBE_VERSION;
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0-vkube.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (vkube apiserver-shim, Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn subresource_kind(def: &ResourceDef, sub: &str) -> (&'static str, &'static str, &'static str) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "binding" => ("", "v1", "Binding"),
        "eviction" => ("policy", "v1", "Eviction"),
        "attach" => ("", "v1", "PodAttachOptions"),
        "proxy" if def.resource == "services" => ("", "v1", "ServiceProxyOptions"),
        "proxy" if def.resource == "nodes" => ("", "v1", "NodeProxyOptions"),
        "proxy" => ("", "v1", "PodProxyOptions"),
        "exec" => ("", "v1", "PodExecOptions"),
        "portforward" => ("", "v1", "PodPortForwardOptions"),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest"),
        _ => ("", "", def.kind),
    }
}

fn subresource_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "binding" | "eviction" | "token" => vec!["create"],
        "finalize" => vec!["update"],
        // Connect subresources: kube-apiserver lists `create` and `get`
        // for the upgrading ones, `get` for the log.
        "attach" | "exec" | "portforward" => vec!["create", "get"],
        "log" => vec!["get"],
        "ephemeralcontainers" => vec!["get", "patch", "update"],
        "proxy" => vec!["create", "delete", "get", "patch", "update"],
        _ => vec!["get", "patch", "update"],
    }
}

/// The rows served at `group`/`version`: built-in, then custom.
fn rows<'a>(group: &'a str, version: &'a str, custom: &'a CustomTable) -> Vec<&'a ResourceDef> {
    RESOURCES
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .chain(custom.of(group, version).map(|c| &c.def))
        .collect()
}

/// The served groups with their versions: the built-in ones in discovery
/// order, then the custom resources' groups by name.
fn all_groups(custom: &CustomTable) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out = registry::groups();
    for (g, vs) in custom.groups() {
        match out.iter_mut().find(|(b, _)| *b == g) {
            Some((_, bvs)) => bvs.extend(
                vs.into_iter()
                    .filter(|v| !bvs.contains(v))
                    .collect::<Vec<_>>(),
            ),
            None => out.push((g, vs)),
        }
    }
    out
}

/// `/api/v1` or `/apis/{group}/{version}`: an `APIResourceList`, or `None`.
pub fn resource_list(group: &str, version: &str, custom: &CustomTable) -> Option<Value> {
    let defs = rows(group, version, custom);
    if !registry::is_served(group, version) && !custom.serves(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for (_, _, resource, kind, namespaced, _) in reviews(group, version) {
        resources.push(json!({
            "name": resource,
            "singularName": resource.trim_end_matches('s'),
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["create"],
        }));
    }
    for d in defs {
        let mut r = json!({
            "name": d.resource,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs(),
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        for sub in d.subresources() {
            let (g, v, kind) = subresource_kind(d, sub);
            let mut s = json!({
                "name": format!("{}/{sub}", d.resource),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": kind,
                "verbs": subresource_verbs(sub),
            });
            if !g.is_empty() || sub == "scale" {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            resources.push(s);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    }))
}

/// `/api`: `APIVersions`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs[0],
    })
}

/// `/apis`: `APIGroupList` of the named groups.
pub fn api_group_list(custom: &CustomTable) -> Value {
    let groups: Vec<Value> = all_groups(custom)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| api_group(g, &vs))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/{group}`: `APIGroup`, or `None`.
pub fn api_group_doc(group: &str, custom: &CustomTable) -> Option<Value> {
    let (g, vs) = all_groups(custom)
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())?;
    let mut doc = api_group(g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The review kinds of `group`/`version` ([`registry::REVIEWS`]).
fn reviews<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static registry::ReviewDef> + 'a {
    registry::REVIEWS
        .iter()
        .filter(move |(g, v, ..)| *g == group && *v == version)
}

fn aggregated_group(group: &str, versions: &[&str], custom: &CustomTable) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| {
            let review_rows = reviews(group, v).map(|(_, _, resource, kind, namespaced, _)| {
                json!({
                    "resource": resource,
                    "responseKind": {"group": "", "version": "", "kind": kind},
                    "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": resource.trim_end_matches('s'),
                    "verbs": ["create"],
                })
            });
            let resources: Vec<Value> = review_rows
                .chain(rows(group, v, custom).into_iter().map(|d| {
                    let subs: Vec<Value> = d
                        .subresources()
                        .into_iter()
                        .map(|sub| {
                            let (g, ver, kind) = subresource_kind(d, sub);
                            json!({
                                "subresource": sub,
                                "responseKind": {"group": g, "version": ver, "kind": kind},
                                "verbs": subresource_verbs(sub),
                            })
                        })
                        .collect();
                    let mut r = json!({
                        "resource": d.resource,
                        "responseKind": {"group": "", "version": "", "kind": d.kind},
                        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": d.singular,
                        "verbs": d.verbs(),
                    });
                    if !d.short_names.is_empty() {
                        r["shortNames"] = json!(d.short_names);
                    }
                    if !d.categories.is_empty() {
                        r["categories"] = json!(d.categories);
                    }
                    if !subs.is_empty() {
                        r["subresources"] = json!(subs);
                    }
                    r
                }))
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({})
    } else {
        json!({ "name": group })
    };
    json!({ "metadata": metadata, "versions": vs })
}

/// Aggregated discovery for `/api` (`legacy = true`) or `/apis`.
pub fn aggregated(legacy: bool, custom: &CustomTable) -> Value {
    let items: Vec<Value> = all_groups(custom)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == legacy)
        .map(|(g, vs)| aggregated_group(g, &vs, custom))
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_accept_detection() {
        let client_go = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(Some(client_go)));
        assert!(!wants_aggregated(Some("application/json")));
        assert!(!wants_aggregated(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        )));
    }

    #[test]
    fn discovery_documents_cover_the_registry() {
        let none = CustomTable::default();
        let core = resource_list("", "v1", &none).unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/binding") && names.contains(&"namespaces/finalize"));
        assert!(names.contains(&"pods/portforward"));
        let apps = aggregated(false, &none);
        let apps = apps["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = &apps["versions"][0]["resources"][0];
        assert_eq!(deploy["resource"], "deployments");
        assert_eq!(deploy["subresources"][1]["responseKind"]["kind"], "Scale");
        assert!(resource_list("apps", "v2", &none).is_none());
        assert_eq!(
            api_group_doc("batch", &none).unwrap()["preferredVersion"]["groupVersion"],
            "batch/v1"
        );
        let legacy = aggregated(true, &none);
        assert_eq!(legacy["items"].as_array().unwrap().len(), 1);
    }
}
