//! `/healthz`, `/livez` and `/readyz` with named checks, as
//! kube-apiserver's healthz package serves them (k8s.io/apiserver
//! pkg/server/healthz): `ok` when every check passes; with `?verbose` one
//! `[+]<name> ok` line per check and `<endpoint> check passed`; a failed
//! check is `[-]<name> failed: reason withheld` (the endpoints are public)
//! and the whole answer `500` ending `<endpoint> check failed`, always
//! verbose; `?exclude=<name>` (repeatable) skips a check (`[+]<name>
//! excluded: ok`, and a `warn:` line for names that match none);
//! `/<endpoint>/<name>` runs one check (`ok`, or `500 internal server
//! error: <why>`).
//!
//! The checks: `ping`; `log`; `etcd`, which reads this server's store
//! (kube's name, kept for the tools that ask for it, though the store is
//! the embedded one); the start-up steps kube names
//! `poststarthook/…`, which have run once the server listens; and, on
//! `/readyz` and `/healthz` only, the checks the components running beside
//! the server add ([`Checks::add`]: `controllers`, `syncer`), so a pod whose
//! syncer stopped is taken out of its Service but not restarted by its
//! liveness probe.

use crate::store::Storage;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::sync::{Arc, RwLock};

/// The start-up steps reported as `poststarthook/<name>`: bootstrap done
/// before the server listens (the RBAC bootstrap policy, the default
/// namespaces and the `kubernetes` Service, priority classes).
const POST_START_HOOKS: &[&str] = &[
    "poststarthook/rbac/bootstrap-roles",
    "poststarthook/bootstrap-controller",
    "poststarthook/scheduling/bootstrap-system-priority-classes",
    "poststarthook/start-apiextensions-controllers",
];

/// A check added by a component running beside the server: `Err` with
/// why it fails. Called on every request to the endpoint, so it must be
/// cheap and must not block.
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The checks components beside the server add to `/readyz` and
/// `/healthz` (kube-apiserver's `AddReadyzChecks`).
#[derive(Default)]
pub struct Checks(RwLock<Vec<(&'static str, Check)>>);

impl Checks {
    /// Adds (or replaces) the check `name`.
    pub fn add(&self, name: &'static str, check: Check) {
        let mut checks = self.0.write().unwrap_or_else(|p| p.into_inner());
        checks.retain(|(n, _)| *n != name);
        checks.push((name, check));
    }

    fn names(&self) -> Vec<&'static str> {
        let checks = self.0.read().unwrap_or_else(|p| p.into_inner());
        checks.iter().map(|(n, _)| *n).collect()
    }

    fn get(&self, name: &str) -> Option<Check> {
        let checks = self.0.read().unwrap_or_else(|p| p.into_inner());
        checks
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.clone())
    }
}

/// The names of the checks of `endpoint` (`healthz`, `livez`, `readyz`),
/// in kube's order, then the added ones (not on `livez`). (kube's `readyz`
/// also has `shutdown` and `informer-sync`; this server has neither state
/// to report.)
pub fn checks(endpoint: &str, added: &Checks) -> Vec<&'static str> {
    let mut names = vec!["ping", "log", "etcd"];
    names.extend_from_slice(POST_START_HOOKS);
    if endpoint != "livez" {
        names.extend(added.names());
    }
    names
}

/// Runs one check: `Err` with why it failed.
async fn run(name: &str, store: &dyn Storage, added: &Checks) -> Result<(), String> {
    match name {
        "etcd" => store
            .get("/registry/namespaces/default")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        other => added.get(other).map_or(Ok(()), |check| check()),
    }
}

fn plain(code: StatusCode, body: String) -> Response {
    let mut r = (code, body).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The query parameters `exclude` (every value) and whether `verbose` is
/// present.
fn options(query: Option<&str>) -> (Vec<String>, bool) {
    let mut excluded = Vec::new();
    let mut verbose = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "exclude" => excluded.push(v.into_owned()),
            "verbose" => verbose = true,
            _ => {}
        }
    }
    (excluded, verbose)
}

/// The report of `endpoint` for checks that gave `results` (pure): the
/// status code and body (module docs).
pub fn report(
    endpoint: &str,
    results: &[(&str, Option<Result<(), String>>)],
    unmatched_excludes: &[String],
    verbose: bool,
) -> (StatusCode, String) {
    let mut out = String::new();
    let mut failed = false;
    for (name, result) in results {
        match result {
            None => out.push_str(&format!("[+]{name} excluded: ok\n")),
            Some(Ok(())) => out.push_str(&format!("[+]{name} ok\n")),
            Some(Err(_)) => {
                failed = true;
                out.push_str(&format!("[-]{name} failed: reason withheld\n"));
            }
        }
    }
    if !unmatched_excludes.is_empty() {
        let quoted: Vec<String> = unmatched_excludes
            .iter()
            .map(|n| format!("{n:?}"))
            .collect();
        out.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            quoted.join(",")
        ));
    }
    if failed {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{out}{endpoint} check failed\n"),
        );
    }
    if !verbose {
        return (StatusCode::OK, "ok".into());
    }
    (StatusCode::OK, format!("{out}{endpoint} check passed\n"))
}

/// Answers `/<endpoint>` or `/<endpoint>/<check>`; `None` for another path.
pub async fn serve(
    path: &str,
    query: Option<&str>,
    store: &dyn Storage,
    added: &Checks,
) -> Option<Response> {
    let trimmed = path.trim_start_matches('/');
    let (endpoint, check) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    if !matches!(endpoint, "healthz" | "livez" | "readyz") {
        return None;
    }
    let names = checks(endpoint, added);
    if !check.is_empty() {
        let Some(name) = names.iter().find(|n| **n == check) else {
            return Some(plain(StatusCode::NOT_FOUND, "404 page not found\n".into()));
        };
        return Some(match run(name, store, added).await {
            Ok(()) => plain(StatusCode::OK, "ok".into()),
            // The endpoints answer before authentication: the reason of an
            // added check (which may name the host's addresses) is logged,
            // not returned.
            Err(why) if added.get(name).is_some() => {
                tracing::warn!(check = %name, error = %why, "{endpoint} check failed");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error: reason withheld\n".into(),
                )
            }
            Err(why) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {why}\n"),
            ),
        });
    }
    let (mut excluded, verbose) = options(query);
    let mut results = Vec::new();
    for name in names {
        if let Some(i) = excluded.iter().position(|e| e == name) {
            excluded.remove(i);
            results.push((name, None));
        } else {
            let result = run(name, store, added).await;
            if let Err(why) = &result {
                tracing::warn!(check = name, error = %why, "{endpoint} check failed");
            }
            results.push((name, Some(result)));
        }
    }
    excluded.sort();
    excluded.dedup();
    let (code, body) = report(endpoint, &results, &excluded, verbose);
    Some(plain(code, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_as_kubes() {
        let ok = [("ping", Some(Ok(()))), ("etcd", None)];
        assert_eq!(
            report("readyz", &ok, &[], false),
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            report("readyz", &ok, &["nope".into()], true),
            (
                StatusCode::OK,
                "[+]ping ok\n[+]etcd excluded: ok\nwarn: some health checks cannot be excluded: no matches for \"nope\"\nreadyz check passed\n".into()
            )
        );
        let failing = [("ping", Some(Ok(()))), ("etcd", Some(Err("disk".into())))];
        assert_eq!(
            report("livez", &failing, &[], false),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "[+]ping ok\n[-]etcd failed: reason withheld\nlivez check failed\n".into()
            )
        );
        assert_eq!(
            checks("readyz", &Checks::default())[..3],
            ["ping", "log", "etcd"]
        );
    }

    #[tokio::test]
    async fn added_checks_decide_readiness_not_liveness() {
        let store = crate::store::LogStore::open(
            Box::new(crate::store::MemoryBackend::new()),
            crate::store::LogStoreConfig::default(),
        )
        .unwrap();
        let added = Checks::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = down.clone();
        added.add(
            "syncer",
            Arc::new(move || {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    Err("stopped".into())
                } else {
                    Ok(())
                }
            }),
        );
        assert!(checks("readyz", &added).contains(&"syncer"));
        assert!(!checks("livez", &added).contains(&"syncer"));
        let status = |path: &'static str| {
            let (store, added) = (&store, &added);
            async move {
                serve(path, Some("verbose"), store, added)
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(status("/readyz").await, StatusCode::OK);
        down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(status("/readyz").await, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status("/readyz/syncer").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status("/healthz").await, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status("/livez").await, StatusCode::OK);
        assert_eq!(status("/livez/syncer").await, StatusCode::NOT_FOUND);
    }
}
