//! `pods/eviction`: a delete that PodDisruptionBudgets may refuse, as
//! kube-apiserver's EvictionREST (pkg/registry/core/pod/storage/eviction.go)
//! serves it.
//!
//! 1. The body is a `policy/v1` (or `v1beta1`) Eviction whose name must be
//!    the URL's (`400 name in URL does not match name in Eviction object`);
//!    its `deleteOptions` are the delete's.
//! 2. A pod that is Succeeded, Failed, Pending or already being deleted is
//!    deleted at once: it disrupts nothing more.
//! 3. With a [`vkube_core::eviction::HostEvictor`] (a virtual cluster's
//!    server) the tenant's budget is checked first (without taking a
//!    disruption), then the host evicts its copy under the host's budgets
//!    (the tenant's synced copy among them); its refusal is the answer, and
//!    once it evicted the virtual pod is deleted too.
//! 4. Otherwise this server's budgets decide ([`check_budget`]): none
//!    selecting the pod deletes it; more than one answers `500 This pod has
//!    more than one PodDisruptionBudget, which the eviction subresource
//!    does not support.`; one allows the eviction only if its status (the
//!    disruption controller's) allows a disruption, which the eviction
//!    takes (`disruptionsAllowed - 1`, the pod recorded in
//!    `disruptedPods`), else `429 TooManyRequests` `Cannot evict pod as it
//!    would violate the pod's disruption budget.` with a `DisruptionBudget`
//!    cause saying why. An unready pod is let go without taking a
//!    disruption when the budget's `unhealthyPodEvictionPolicy` is
//!    `AlwaysAllow`, or when the budget is currently met.
//! 5. The evicted pod gets the `DisruptionTarget` condition (reason
//!    `EvictionByEvictionAPI`) and is deleted; the answer is `201` with a
//!    `Success` Status.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use vkube_core::eviction::HostEviction;
use vkube_core::labels::LabelSelector;

use super::{Api, DeleteOptions, decode_body, delete_options_from, json_response};
use crate::error::{ApiError, ApiResult, GroupResource};
use crate::meta;
use crate::registry::lookup;
use crate::request::Target;

/// Entries `disruptedPods` may hold before evictions are refused
/// (kube's `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

/// The message of every budget refusal.
const CANNOT_EVICT: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Whether an eviction of `pod` needs no budget (`canIgnorePDB`).
fn can_ignore_budget(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    matches!(phase, Some("Succeeded" | "Failed" | "Pending")) || meta::is_deleting(pod)
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether budget `pdb` selects `pod`: a nil or empty selector selects
/// nothing (`getPodDisruptionBudgets`).
pub fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector") else {
        return false;
    };
    match LabelSelector::from_label_selector_json(sel) {
        Ok(s) if !s.is_empty() => s.matches_json(pod.pointer("/metadata/labels")),
        _ => false,
    }
}

fn as_i64(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether unready `pod` may go without taking one of `budget`'s
/// disruptions: its `unhealthyPodEvictionPolicy` is `AlwaysAllow`, or the
/// budget is met without it (the default `IfHealthyBudget`).
fn exempt_unready(budget: &Value, pod: &Value) -> bool {
    if is_ready(pod) {
        return false;
    }
    let always = budget.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
    let desired = as_i64(budget, "/status/desiredHealthy");
    always || (as_i64(budget, "/status/currentHealthy") >= desired && desired > 0)
}

/// `429 TooManyRequests` with a `DisruptionBudget` cause.
fn budget_refusal(message: String, retry_after: u64) -> ApiError {
    let mut e = ApiError::too_many_requests(CANNOT_EVICT);
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": message}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    e.details = Some(details);
    e
}

/// The budget after an eviction of pod `pod_name` takes one of its
/// disruptions at `now`, or why it may not (`checkAndDecrement`).
pub fn check_budget(pdb: &Value, pod_name: &str, now: &str) -> ApiResult<Value> {
    let name = pdb
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if as_i64(pdb, "/status/observedGeneration") < as_i64(pdb, "/metadata/generation") {
        return Err(budget_refusal(
            format!("The disruption budget {name} is still being processed by the server."),
            10,
        ));
    }
    let gr = GroupResource::new("policy", "poddisruptionbudget");
    let allowed = as_i64(pdb, "/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(ApiError::forbidden(
            &gr,
            name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(ApiError::forbidden(
            &gr,
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        let condition = pdb
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "DisruptionAllowed");
        let reason = condition.and_then(|c| c["reason"].as_str()).unwrap_or("");
        let message = condition.and_then(|c| c["message"].as_str()).unwrap_or("");
        let (current, desired) = (
            as_i64(pdb, "/status/currentHealthy"),
            as_i64(pdb, "/status/desiredHealthy"),
        );
        let why = if reason == "SyncFailed" {
            format!(
                "The disruption budget {name} does not allow evicting pods currently because it failed sync: {message}"
            )
        } else if current <= desired {
            format!(
                "The disruption budget {name} needs {desired} healthy pods and has {current} currently"
            )
        } else if condition.is_some_and(|c| c["status"] == "False") && !message.is_empty() {
            format!(
                "The disruption budget {name} does not allow evicting pods currently ({reason}): {message}"
            )
        } else {
            format!("The disruption budget {name} does not allow evicting pods currently")
        };
        return Err(budget_refusal(why, 0));
    }
    let mut out = pdb.clone();
    let status = meta::ensure_object(&mut out, "status");
    status.insert("disruptionsAllowed".into(), json!(allowed - 1));
    let map = status.entry("disruptedPods").or_insert_with(|| json!({}));
    if !map.is_object() {
        *map = json!({});
    }
    map[pod_name] = json!(now);
    Ok(out)
}

impl Api {
    /// Serves `POST pods/NAME/eviction` (see the module docs).
    pub(super) async fn evict(
        &self,
        target: &Target,
        name: &str,
        query_dry_run: &[String],
        headers: &HeaderMap,
        body: &[u8],
    ) -> ApiResult<Response> {
        let eviction = decode_body(headers, body, "Eviction")?;
        if eviction.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let base = DeleteOptions {
            dry_run: query_dry_run.iter().any(|d| d == "All"),
            ..DeleteOptions::default()
        };
        let mut opts = match eviction.get("deleteOptions").filter(|v| v.is_object()) {
            Some(v) => delete_options_from(v, base, query_dry_run)?,
            None => {
                crate::fieldmanager::validate_delete_dry_run(query_dry_run)?;
                base
            }
        };
        let ns = target.namespace.clone().unwrap_or_default();
        let pod = self.get(target, name).await?;
        // The caller's preconditions hold for the pod read here, or nothing
        // happens (the host is not asked); the delete then names this pod's
        // uid, so a pod recreated under the name meanwhile is not evicted.
        let gr = GroupResource::new("", "pods");
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let rv = pod
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(want) = opts.precondition_uid.as_deref().filter(|u| *u != uid) {
            return Err(ApiError::conflict(
                &gr,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = opts.precondition_rv.as_deref().filter(|r| *r != rv) {
            return Err(ApiError::conflict(
                &gr,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({rv}). The object might have been modified"
                ),
            ));
        }
        opts.precondition_uid = Some(uid);
        if can_ignore_budget(&pod) {
            return self.delete_evicted(target, name, opts).await;
        }
        let pdb_def = lookup("policy", "v1", "poddisruptionbudgets").expect("a served kind");
        let budgets: Vec<Value> = self
            .list_prefix(pdb_def, &pdb_def.collection_prefix(Some(&ns)))
            .await?
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
            .filter(|b| selects(b, &pod))
            .collect();
        if let Some(evictor) = self.config.evictor.clone().filter(|_| !opts.dry_run) {
            // The tenant's own budgets guard first (one the host does not
            // hold yet, or refused to hold, still counts); the host's, the
            // tenant's synced copy among them, then decide and count.
            if let [one] = budgets.as_slice()
                && !exempt_unready(one, &pod)
            {
                check_budget(one, name, &meta::now_rfc3339())?;
            }
            let uid = opts.precondition_uid.clone().unwrap_or_default();
            match evictor
                .evict(&ns, name, &uid, &eviction)
                .await
                .map_err(ApiError::from_host)?
            {
                HostEviction::Evicted => return self.delete_evicted(target, name, opts).await,
                HostEviction::NoHostPod => {}
            }
        }
        let budget = match budgets.as_slice() {
            [] => return self.delete_evicted(target, name, opts).await,
            [one] => one,
            _ => {
                return Ok(json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "code": 500,
                        "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}),
                ));
            }
        };
        if exempt_unready(budget, &pod) {
            // The pod counts for nothing in the budget; it goes as long as
            // it has not turned ready meanwhile.
            let mut opts = opts;
            if opts.precondition_rv.is_none() {
                opts.precondition_rv = pod
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            return self.delete_evicted(target, name, opts).await;
        }
        let pdb_name = budget
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let pdb_target = Target {
            def: crate::registry::Def::Builtin(pdb_def),
            namespace: Some(ns.clone()),
            name: Some(pdb_name.clone()),
            subresource: Some("status".into()),
            watch_prefix: false,
        };
        let now = meta::now_rfc3339();
        self.guaranteed_update(&pdb_target, &pdb_name, false, opts.dry_run, |old| {
            let old = old.ok_or_else(|| {
                ApiError::not_found(
                    &GroupResource::new("policy", "poddisruptionbudgets"),
                    &pdb_name,
                )
            })?;
            check_budget(old, name, &now)
        })
        .await?;
        self.delete_evicted(target, name, opts).await
    }

    /// Marks pod `name` with the `DisruptionTarget` condition and deletes
    /// it with `opts`; answers `201 Success`.
    async fn delete_evicted(
        &self,
        target: &Target,
        name: &str,
        opts: DeleteOptions,
    ) -> ApiResult<Response> {
        let mut opts = opts;
        if !opts.dry_run {
            let status_target = Target {
                subresource: Some("status".into()),
                ..target.clone()
            };
            let (uid, rv) = (opts.precondition_uid.clone(), opts.precondition_rv.clone());
            let marked = self
                .guaranteed_update(&status_target, name, false, false, |old| {
                    let old = old.ok_or_else(|| {
                        ApiError::not_found(&GroupResource::new("", "pods"), name)
                    })?;
                    // The delete's preconditions guard this write as well;
                    // the delete then expects the version it leaves.
                    let meta_is = |path: &str, want: &Option<String>| {
                        want.as_deref()
                            .is_none_or(|w| old.pointer(path).and_then(Value::as_str) == Some(w))
                    };
                    if !meta_is("/metadata/uid", &uid) || !meta_is("/metadata/resourceVersion", &rv) {
                        return Err(ApiError::conflict(
                            &GroupResource::new("", "pods"),
                            name,
                            "the object has been modified; please apply your changes to the latest version and try again",
                        ));
                    }
                    let mut pod = old.clone();
                    super::set_condition(&mut pod, "DisruptionTarget", "True");
                    if let Some(c) = pod
                        .pointer_mut("/status/conditions")
                        .and_then(Value::as_array_mut)
                        .and_then(|a| a.iter_mut().find(|c| c["type"] == "DisruptionTarget"))
                    {
                        c["reason"] = json!("EvictionByEvictionAPI");
                        c["message"] = json!("Eviction API: evicting");
                    }
                    Ok(pod)
                })
                .await;
            match marked {
                Ok((pod, _)) => {
                    if opts.precondition_rv.is_some() {
                        opts.precondition_rv = pod
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                    }
                }
                // A pod gone meanwhile is evicted as well.
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        match self.delete_one(target, name, &opts).await {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 2},
            "status": status})
    }

    #[test]
    fn a_budget_without_disruptions_refuses_with_kubes_message() {
        let pdb = budget(json!({"observedGeneration": 1, "disruptionsAllowed": 0,
            "currentHealthy": 2, "desiredHealthy": 2}));
        let e = check_budget(&pdb, "p", "2026-01-01T00:00:00Z").unwrap_err();
        assert_eq!((e.code, e.reason.as_ref()), (429, "TooManyRequests"));
        assert_eq!(e.message, CANNOT_EVICT);
        assert_eq!(
            e.details.unwrap()["causes"][0],
            json!({"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"})
        );
        let stale = budget(json!({"observedGeneration": 0, "disruptionsAllowed": 1}));
        let e = check_budget(&stale, "p", "t").unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(e.details.unwrap()["retryAfterSeconds"], 10);
    }

    #[test]
    fn an_allowed_eviction_takes_one_disruption() {
        let pdb = budget(json!({"observedGeneration": 1, "disruptionsAllowed": 2}));
        let out = check_budget(&pdb, "p", "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(out["status"]["disruptionsAllowed"], 1);
        assert_eq!(out["status"]["disruptedPods"]["p"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn budgets_select_by_labels_and_empty_selectors_select_nothing() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}});
        assert!(selects(&budget(json!({})), &pod));
        assert!(!selects(&json!({"spec": {"selector": {}}}), &pod));
        assert!(!selects(&json!({"spec": {}}), &pod));
        assert!(can_ignore_budget(&json!({"status": {"phase": "Pending"}})));
        assert!(!can_ignore_budget(&json!({"status": {"phase": "Running"}})));
    }
}
