//! The pod connect subresources: `pods/log`, `pods/exec`, `pods/attach`
//! and `pods/portforward`.
//!
//! kube-apiserver decodes the options from the query (`PodLogOptions`,
//! `PodExecOptions`, `PodAttachOptions`, `PodPortForwardOptions`),
//! validates them, reads the pod and resolves the container
//! (`pkg/registry/core/pod/strategy.go`), then proxies to the kubelet of
//! the pod's node. This module does the same up to the proxying, which it
//! leaves to the server's [`PodConnector`] ([`crate::rest::ApiConfig::pod_connector`]):
//! the host cluster in a virtual cluster, a node stand-in on a local host.
//! Parsing and validation are pure functions; [`serve`] does the I/O.

use crate::error::{ApiError, ApiResult, Cause, GroupResource};
use crate::rest::{Api, decode_stored, storage_error};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::Value;
use vkube_core::connect::{LogOptions, PodConnection, PodOperation, StreamOptions};
use vkube_core::field::FieldError;

/// The connect subresources of pods, in discovery's order.
pub const SUBRESOURCES: [&str; 4] = ["attach", "exec", "log", "portforward"];

/// The values of query parameter `name`, in order.
fn values<'a>(pairs: &'a [(String, String)], name: &str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A boolean parameter as apimachinery's query conversion reads it
/// (`Convert_Slice_string_To_bool`): absent, `0` or `false` (any case) is
/// false, anything else true.
fn flag(pairs: &[(String, String)], name: &str) -> bool {
    values(pairs, name)
        .next()
        .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// An integer parameter (`Convert_Slice_string_To_int64`).
///
/// # Errors
/// `400 BadRequest` with strconv's text when the value is not an integer.
fn integer(pairs: &[(String, String)], name: &str) -> ApiResult<Option<i64>> {
    match values(pairs, name).next() {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
        }),
    }
}

/// Decodes and validates `PodLogOptions` from the query, before the pod is
/// read (the order of `LogREST.Get`). The container is left empty for
/// [`resolve_container`].
///
/// # Errors
/// `400` for an undecodable value; `422 PodLogOptions "NAME" is invalid`
/// for what `ValidatePodLogOptions` rejects: a negative `tailLines`,
/// `limitBytes` or `sinceSeconds` below 1, both `sinceTime` and
/// `sinceSeconds`, and `stream` (the `PodLogsQuerySplitStreams` feature is
/// off by default in Kubernetes 1.34).
pub fn parse_log_options(name: &str, query: Option<&str>) -> ApiResult<LogOptions> {
    let pairs = pairs(query);
    let since_time = match values(&pairs, "sinceTime").next() {
        None | Some("") => None,
        Some(t) => {
            let ts: jiff::Timestamp = t.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "parsing time {t:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {t:?} as RFC 3339"
                ))
            })?;
            // Go formats a metav1.Time as RFC 3339 in whole seconds,
            // dropping the fraction.
            let whole = jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts);
            Some(whole.to_string())
        }
    };
    let opts = LogOptions {
        container: values(&pairs, "container")
            .next()
            .unwrap_or_default()
            .to_string(),
        follow: flag(&pairs, "follow"),
        previous: flag(&pairs, "previous"),
        timestamps: flag(&pairs, "timestamps"),
        since_seconds: integer(&pairs, "sinceSeconds")?,
        since_time,
        tail_lines: integer(&pairs, "tailLines")?,
        limit_bytes: integer(&pairs, "limitBytes")?,
        insecure_skip_tls_verify_backend: flag(&pairs, "insecureSkipTLSVerifyBackend"),
    };
    let mut errs = Vec::new();
    if let Some(n) = opts.tail_lines.filter(|n| *n < 0) {
        errs.push(FieldError::invalid(
            "tailLines",
            &n.into(),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(n) = opts.limit_bytes.filter(|n| *n < 1) {
        errs.push(FieldError::invalid(
            "limitBytes",
            &n.into(),
            "must be greater than 0",
        ));
    }
    match (opts.since_seconds, &opts.since_time) {
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )),
        (Some(n), None) if n < 1 => errs.push(FieldError::invalid(
            "sinceSeconds",
            &n.into(),
            "must be greater than 0",
        )),
        _ => {}
    }
    if values(&pairs, "stream").next().is_some() {
        errs.push(FieldError::forbidden("stream", "may not be specified"));
    }
    if errs.is_empty() {
        Ok(opts)
    } else {
        Err(ApiError::invalid(
            "PodLogOptions",
            "",
            name,
            errs.into_iter().map(Cause::from).collect(),
        ))
    }
}

/// Decodes `PodExecOptions` (`exec`) or `PodAttachOptions` (`attach`,
/// which has no `command`) from the query; the container is left empty
/// for [`resolve_container`].
pub fn parse_stream_options(subresource: &str, query: Option<&str>) -> StreamOptions {
    let pairs = pairs(query);
    StreamOptions {
        container: values(&pairs, "container")
            .next()
            .unwrap_or_default()
            .to_string(),
        command: if subresource == "exec" {
            values(&pairs, "command").map(str::to_string).collect()
        } else {
            Vec::new()
        },
        stdin: flag(&pairs, "stdin"),
        stdout: flag(&pairs, "stdout"),
        stderr: flag(&pairs, "stderr"),
        tty: flag(&pairs, "tty"),
    }
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The options object admission sees for a connection
/// (`PodExecOptions`, `PodAttachOptions`, `PodPortForwardOptions`, as
/// requested: the container is not defaulted yet); `None` for a log.
pub fn connect_options(operation: &PodOperation) -> Option<Value> {
    let stream = |kind: &str, o: &StreamOptions| {
        let mut v = serde_json::json!({
            "kind": kind,
            "apiVersion": "v1",
            "stdin": o.stdin,
            "stdout": o.stdout,
            "stderr": o.stderr,
            "tty": o.tty,
        });
        if !o.container.is_empty() {
            v["container"] = serde_json::json!(o.container);
        }
        v
    };
    match operation {
        PodOperation::Exec(o) => {
            let mut v = stream("PodExecOptions", o);
            v["command"] = serde_json::json!(o.command);
            Some(v)
        }
        PodOperation::Attach(o) => Some(stream("PodAttachOptions", o)),
        PodOperation::PortForward(ports) => Some(serde_json::json!({
            "kind": "PodPortForwardOptions",
            "apiVersion": "v1",
            "ports": ports,
        })),
        PodOperation::Log(_) | PodOperation::Proxy(_) => None,
    }
}

/// The names of a pod's containers in `VisitContainers` order: init
/// containers, containers, ephemeral containers.
fn container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| {
            pod["spec"][list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
        })
        .collect()
}

/// The container a request addresses (`validateContainer`): the one named,
/// which must be one of the pod's containers (init and ephemeral ones
/// included), or the pod's only container when none is named.
///
/// # Errors
/// `400 BadRequest` with kube-apiserver's texts: `container C is not valid
/// for pod P`, `a container name must be specified for pod P, choose one
/// of: [a b]`.
pub fn resolve_container(pod: &Value, requested: &str) -> ApiResult<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if !requested.is_empty() {
        if container_names(pod).contains(&requested) {
            return Ok(requested.to_string());
        }
        return Err(ApiError::bad_request(format!(
            "container {requested} is not valid for pod {name}"
        )));
    }
    let containers = pod["spec"]["containers"].as_array();
    match containers.map_or(0, Vec::len) {
        1 => Ok(containers.expect("one container")[0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()),
        0 => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            container_names(pod).join(" ")
        ))),
    }
}

/// Whether the pod is bound to a node (`spec.nodeName`).
fn bound(pod: &Value) -> bool {
    pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
}

/// Serves `pods/{name}/{log|exec|attach|portforward}` in `namespace`.
///
/// The log is `GET` only; the streams take `GET` (WebSocket clients) and
/// `POST` (SPDY clients), as kube-apiserver's `upgradeableMethods`. A log
/// of a pod not yet bound to a node is empty (`LogLocation` returns no
/// location); a stream to such a pod is `400 pod P does not have a host
/// assigned`.
///
/// # Errors
/// `405` for another method, the option errors of [`parse_log_options`] and
/// `ports` ([`crate::portforward::parse_ports`]), `404` when the pod does not
/// exist, the container errors of [`resolve_container`], `400` when this
/// server has no connector, and whatever the connector answers.
pub async fn serve(
    api: &Api,
    namespace: &str,
    name: &str,
    subresource: &str,
    parts: http::request::Parts,
) -> ApiResult<Response> {
    let allowed = if subresource == "log" {
        parts.method == Method::GET
    } else {
        parts.method == Method::GET || parts.method == Method::POST
    };
    if !allowed {
        return Err(ApiError::method_not_supported(
            &GroupResource::new("", &format!("pods/{subresource}")),
            &parts.method.as_str().to_ascii_lowercase(),
        ));
    }
    let query = parts.uri.query();
    // Options are decoded (and a log's validated) before the pod is read.
    let mut operation = match subresource {
        "log" => PodOperation::Log(parse_log_options(name, query)?),
        "exec" => PodOperation::Exec(parse_stream_options("exec", query)),
        "attach" => PodOperation::Attach(parse_stream_options("attach", query)),
        // SPDY clients name the ports in stream headers, not the query.
        "portforward" if !pairs(query).iter().any(|(k, _)| k == "ports") => {
            PodOperation::PortForward(Vec::new())
        }
        "portforward" => PodOperation::PortForward(crate::portforward::parse_ports(query)?),
        _ => return Err(ApiError::no_route()),
    };
    // Admission of the connection, with its options as the object, before
    // the pod is read (kube's connect handler); a log is a read, not a
    // connection.
    if let Some(options) = connect_options(&operation) {
        api.admit_connect(namespace, name, subresource, options)
            .await?;
    }
    let pods = crate::registry::lookup("", "v1", "pods").expect("pods registered");
    let pod = match api.store.get(&pods.key(Some(namespace), name)).await {
        Ok(Some(kv)) => decode_stored(&kv)?,
        Ok(None) => return Err(ApiError::not_found(&GroupResource::new("", "pods"), name)),
        Err(e) => return Err(storage_error(pods, name, e)),
    };
    match &mut operation {
        PodOperation::Log(o) => o.container = resolve_container(&pod, &o.container)?,
        PodOperation::Exec(o) | PodOperation::Attach(o) => {
            o.container = resolve_container(&pod, &o.container)?
        }
        PodOperation::PortForward(_) | PodOperation::Proxy(_) => {}
    }
    if !bound(&pod) {
        if matches!(operation, PodOperation::Log(_)) {
            let mut resp = Response::new(Body::empty());
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(resp);
        }
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let Some(connector) = api.config.pod_connector.clone() else {
        return Err(ApiError::bad_request(format!(
            "pods/{subresource} of pod {namespace}/{name} is not served by this API server: \
             it has no connection to the pod's node"
        )));
    };
    let request = http::Request::from_parts(parts, ());
    let resp = connector
        .connect(PodConnection {
            pod,
            operation,
            request,
            body: bytes::Bytes::new(),
        })
        .await
        .map_err(ApiError::from_host)?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::from_parts(parts, Body::new(body));
    if out.status() != StatusCode::SWITCHING_PROTOCOLS
        && out.headers().get(header::CONTENT_TYPE).is_none()
    {
        out.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    Ok(out)
}

/// `utilnet.SplitSchemeNamePort`: `NAME`, `NAME:PORT` or
/// `SCHEME:NAME:PORT` (scheme `http` or `https`, name not empty).
pub fn split_scheme_name_port(id: &str) -> Option<(Option<String>, String, Option<String>)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => (None, *name, None),
        [name, port] => (None, *name, Some(*port)),
        [scheme, name, port] if matches!(*scheme, "http" | "https") => {
            (Some(*scheme), *name, Some(*port))
        }
        _ => return None,
    };
    if name.is_empty() {
        return None;
    }
    Some((
        scheme.map(str::to_string),
        name.to_string(),
        port.filter(|p| !p.is_empty()).map(str::to_string),
    ))
}

/// The path after `/proxy` rebuilt from decoded `segments`, each
/// percent-encoded again, so nothing in it can change which object the
/// request is about.
///
/// # Errors
/// `400` for a `.` or `..` segment (kube-apiserver's clients never send
/// them; another server could resolve them against the object's path).
pub fn proxy_path(segments: &[&str], trailing_slash: bool) -> ApiResult<String> {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':')
        .remove(b'@')
        .remove(b'!')
        .remove(b'$')
        .remove(b'&')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')')
        .remove(b'*')
        .remove(b'+')
        .remove(b',')
        .remove(b';')
        .remove(b'=');
    let mut out = String::new();
    for seg in segments {
        if *seg == "." || *seg == ".." {
            return Err(ApiError::bad_request(format!(
                "invalid proxy path segment {seg:?}"
            )));
        }
        out.push('/');
        out.extend(percent_encoding::utf8_percent_encode(seg, SEGMENT));
    }
    if trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// The first IP of a pod (`status.podIPs[0]`, else `status.podIP`).
fn pod_ip(pod: &Value) -> Option<std::net::IpAddr> {
    pod.pointer("/status/podIPs/0/ip")
        .or_else(|| pod.pointer("/status/podIP"))
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok())
}

/// Where a pod proxy goes (`ResourceLocation`): the pod IP and the port
/// named (a number, or a container port's name), else the first container
/// port; `None` when the pod has no IP or no such port.
pub fn pod_backend(pod: &Value, port: Option<&str>) -> Option<std::net::SocketAddr> {
    let ip = pod_ip(pod)?;
    let ports = || {
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
    };
    let number = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) => n,
            Err(_) => ports()
                .find(|cp| cp["name"].as_str() == Some(p))
                .and_then(|cp| cp["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok())?,
        },
        None => ports()
            .next()
            .and_then(|cp| cp["containerPort"].as_u64())
            .and_then(|n| u16::try_from(n).ok())?,
    };
    Some(std::net::SocketAddr::new(ip, number))
}

/// Where a Service proxy goes (the Service REST's `ResourceLocation`): a
/// ready address of its Endpoints on the port whose name (or number) the
/// request named, else the only port.
pub fn service_backend(
    service: &Value,
    endpoints: &Value,
    port: Option<&str>,
) -> Option<std::net::SocketAddr> {
    let ports = service["spec"]["ports"].as_array()?;
    let sp = match port {
        Some(p) => ports.iter().find(|sp| {
            sp["name"].as_str() == Some(p)
                || sp["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(p)
        })?,
        None if ports.len() == 1 => &ports[0],
        None => ports
            .iter()
            .find(|sp| sp["name"].as_str().unwrap_or("").is_empty())?,
    };
    let name = sp["name"].as_str().unwrap_or("");
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let Some(ep_port) = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or("") == name)
            .and_then(|p| p["port"].as_u64())
            .and_then(|n| u16::try_from(n).ok())
        else {
            continue;
        };
        if let Some(ip) = subset["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|a| a["ip"].as_str()?.parse().ok())
        {
            return Some(std::net::SocketAddr::new(ip, ep_port));
        }
    }
    None
}

/// Serves `pods/{name_spec}/proxy/{rest…}` and
/// `services/{name_spec}/proxy/{rest…}` in `namespace`, any method: the
/// object is read, the backend resolved (for connectors that dial it) and
/// the request handed to the pod connector with its body (at most the
/// server's request size).
///
/// # Errors
/// `400` for a malformed name or path, `404` for a missing object, `503`
/// when a Service has no ready endpoint for a connector that needs one,
/// `400` without a connector, and the connector's refusals.
#[allow(clippy::too_many_arguments)]
pub async fn serve_proxy(
    api: &Api,
    namespace: &str,
    resource: &str,
    name_spec: &str,
    rest: &[&str],
    trailing_slash: bool,
    parts: http::request::Parts,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let what = if resource == "pods" { "pod" } else { "service" };
    let Some((scheme, name, port)) = split_scheme_name_port(name_spec) else {
        return Err(ApiError::bad_request(format!(
            "invalid {what} request {name_spec:?}"
        )));
    };
    let path = proxy_path(rest, trailing_slash)?;
    let def = crate::registry::lookup("", "v1", resource).expect("built-in");
    let obj = match api.store.get(&def.key(Some(namespace), &name)).await {
        Ok(Some(kv)) => decode_stored(&kv)?,
        Ok(None) => {
            return Err(ApiError::not_found(
                &GroupResource::new("", resource),
                &name,
            ));
        }
        Err(e) => return Err(storage_error(def, &name, e)),
    };
    let backend = if resource == "pods" {
        pod_backend(&obj, port.as_deref())
    } else {
        let eps = crate::registry::lookup("", "v1", "endpoints").expect("built-in");
        match api.store.get(&eps.key(Some(namespace), &name)).await {
            Ok(Some(kv)) => service_backend(&obj, &decode_stored(&kv)?, port.as_deref()),
            _ => None,
        }
    };
    let Some(connector) = api.config.pod_connector.clone() else {
        return Err(ApiError::bad_request(format!(
            "{resource}/proxy of {namespace}/{name} is not served by this API server"
        )));
    };
    let query = parts.uri.query().map(str::to_string);
    let request = http::Request::from_parts(parts, ());
    let operation = PodOperation::Proxy(vkube_core::connect::ProxyOptions {
        resource: resource.to_string(),
        scheme,
        port,
        path,
        query,
        backend,
    });
    let resp = connector
        .connect(PodConnection {
            pod: obj,
            operation,
            request,
            body,
        })
        .await
        .map_err(ApiError::from_host)?;
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// `nodes/NAME/proxy/…`: refused. A node's kubelet API (`/stats`,
/// `/logs`, `/run`, `/exec`) belongs to whoever runs the node: a virtual
/// cluster's nodes are the host's, and a server standing in for a host has
/// no kubelet.
///
/// # Errors
/// Always: `404` for a node that does not exist, else `403 nodes "x" is
/// forbidden: …`.
pub async fn refuse_node_proxy(api: &Api, name_spec: &str) -> ApiResult<Response> {
    let name = split_scheme_name_port(name_spec)
        .map(|(_, n, _)| n)
        .unwrap_or_else(|| name_spec.to_string());
    let nodes = crate::registry::lookup("", "v1", "nodes").expect("built-in");
    let gr = GroupResource::new("", "nodes");
    match api.store.get(&nodes.key(None, &name)).await {
        Ok(Some(_)) => Err(ApiError::forbidden(
            &gr,
            &name,
            "the node's kubelet API is not served to tenants: the node belongs to the host cluster",
        )),
        Ok(None) => Err(ApiError::not_found(&gr, &name)),
        Err(e) => Err(storage_error(nodes, &name, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_options_are_decoded_as_apimachinery_does() {
        let o = parse_log_options(
            "p",
            Some("container=c&follow=true&previous=0&timestamps=1&tailLines=5&limitBytes=10&sinceTime=2026-01-02T03:04:05.6Z"),
        )
        .unwrap();
        assert_eq!(o.container, "c");
        assert!(o.follow && !o.previous && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(10)));
        assert_eq!(o.since_time.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert_eq!(
            parse_log_options("p", Some("tailLines=x"))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn invalid_log_options_get_kube_apiservers_422() {
        let e = parse_log_options("p", Some("tailLines=-1")).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = parse_log_options("p", Some("limitBytes=0&sinceSeconds=0")).unwrap_err();
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: [limitBytes: Invalid value: 0: must be greater than 0, \
             sinceSeconds: Invalid value: 0: must be greater than 0]"
        );
        let e = parse_log_options("p", Some("stream=Stdout")).unwrap_err();
        assert!(
            e.message
                .ends_with("stream: Forbidden: may not be specified"),
            "{e}"
        );
        let e = parse_log_options("p", Some("sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z"))
            .unwrap_err();
        assert!(
            e.message
                .contains("at most one of `sinceTime` or `sinceSeconds`"),
            "{e}"
        );
    }

    #[test]
    fn proxy_names_paths_and_backends_resolve_as_upstream() {
        assert_eq!(
            split_scheme_name_port("https:web:8443"),
            Some((Some("https".into()), "web".into(), Some("8443".into())))
        );
        assert_eq!(
            split_scheme_name_port("web"),
            Some((None, "web".into(), None))
        );
        assert_eq!(split_scheme_name_port("ftp:web:1"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(proxy_path(&["a b", "c?d"], true).unwrap(), "/a%20b/c%3Fd/");
        assert_eq!(proxy_path(&["..", "secrets"], false).unwrap_err().code, 400);
        let pod = json!({"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
                         "status": {"podIP": "10.0.0.5"}});
        assert_eq!(
            pod_backend(&pod, None),
            Some("10.0.0.5:8080".parse().unwrap())
        );
        assert_eq!(
            pod_backend(&pod, Some("http")),
            Some("10.0.0.5:8080".parse().unwrap())
        );
        assert_eq!(
            pod_backend(&pod, Some("9000")),
            Some("10.0.0.5:9000".parse().unwrap())
        );
        assert_eq!(pod_backend(&pod, Some("nope")), None);
        let svc =
            json!({"spec": {"ports": [{"name": "web", "port": 80}, {"name": "admin", "port": 9}]}});
        let eps = json!({"subsets": [{"addresses": [{"ip": "10.0.0.5"}],
                                      "ports": [{"name": "web", "port": 8080}, {"name": "admin", "port": 9090}]}]});
        assert_eq!(
            service_backend(&svc, &eps, Some("80")),
            Some("10.0.0.5:8080".parse().unwrap())
        );
        assert_eq!(
            service_backend(&svc, &eps, Some("admin")),
            Some("10.0.0.5:9090".parse().unwrap())
        );
        assert_eq!(service_backend(&svc, &json!({}), Some("web")), None);
    }

    #[test]
    fn stream_options_keep_the_command_only_for_exec() {
        let q = Some("command=sh&command=-c&command=exit+3&stdin=true&stdout=1&tty=false");
        let o = parse_stream_options("exec", q);
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
        assert!(parse_stream_options("attach", q).command.is_empty());
    }

    #[test]
    fn the_container_is_resolved_as_validate_container_does() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}});
        assert_eq!(resolve_container(&one, "").unwrap(), "app");
        assert_eq!(
            resolve_container(&one, "other").unwrap_err().message,
            "container other is not valid for pod p"
        );
        let many = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}],
            "ephemeralContainers": [{"name": "debugger"}],
        }});
        assert_eq!(
            resolve_container(&many, "").unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [init a b debugger]"
        );
        assert_eq!(resolve_container(&many, "debugger").unwrap(), "debugger");
        assert_eq!(resolve_container(&many, "init").unwrap(), "init");
    }
}
