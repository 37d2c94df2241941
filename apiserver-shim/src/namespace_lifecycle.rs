//! Finishes namespace deletion: once a namespace is Terminating, deletes its
//! content and then clears the `kubernetes` entry of `spec.finalizers` through
//! the `finalize` subresource, after which the store removes it (the
//! documented behaviour of kube-controller-manager's namespace controller).
//!
//! A minimal in-process stand-in: it deletes every namespaced object with the
//! ordinary delete semantics (finalizers and graceful pod deletion are
//! honoured, so content held by finalizers keeps the namespace Terminating)
//! and re-checks until the namespace is empty.

use crate::meta;
use crate::registry::{self, RESOURCES};
use crate::request::{Query, Target};
use crate::rest::{Api, DeleteOptions, Filter};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn target(def: &'static registry::ResourceDef, ns: Option<&str>, name: Option<&str>) -> Target {
    Target {
        def,
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
        subresource: None,
        watch_prefix: false,
    }
}

/// Starts the background task.
pub fn spawn(api: Arc<Api>) {
    tokio::spawn(async move {
        loop {
            let busy = match finalize_terminating(&api).await {
                Ok(busy) => busy,
                Err(e) => {
                    tracing::warn!(error = %e, "namespace finalization failed; retrying");
                    true
                }
            };
            if busy {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let Ok(mut w) = api
                .store
                .watch("/core/namespaces/", api.store.current_revision())
            else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), w.next()).await;
        }
    });
}

/// One pass; returns whether some namespace is still terminating.
async fn finalize_terminating(api: &Arc<Api>) -> Result<bool, crate::error::ApiError> {
    let nsdef = registry::lookup("", "v1", "namespaces").expect("namespaces");
    let everything = Filter::from_query(nsdef, &Query::default(), None)?;
    let (namespaces, _, _) = api
        .list_objects(&target(nsdef, None, None), &Query::default(), &everything)
        .await?;
    let mut busy = false;
    for ns in namespaces.iter().filter(|n| meta::is_deleting(n)) {
        let name = meta::name(ns).to_string();
        let holds_kubernetes = ns
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == "kubernetes"));
        if !holds_kubernetes {
            continue;
        }
        busy = true;
        let mut remaining = 0usize;
        for def in RESOURCES.iter().filter(|d| d.namespaced) {
            let t = target(def, Some(&name), None);
            let all = Filter::from_query(def, &Query::default(), None)?;
            let (items, _, _) = api.list_objects(&t, &Query::default(), &all).await?;
            remaining += items.len();
            for item in items.iter().filter(|i| !meta::is_deleting(i)) {
                let t = target(def, Some(&name), Some(meta::name(item)));
                match api
                    .delete_one(&t, meta::name(item), &DeleteOptions::default())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if remaining == 0 {
            let mut t = target(nsdef, None, Some(&name));
            t.subresource = Some("finalize".into());
            api.guaranteed_update(&t, &name, false, false, |old| {
                let mut ns = old.cloned().unwrap_or_else(|| json!({}));
                let fins: Vec<Value> = ns
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .map(|f| f.iter().filter(|x| *x != "kubernetes").cloned().collect())
                    .unwrap_or_default();
                meta::ensure_object(&mut ns, "spec").insert("finalizers".into(), json!(fins));
                Ok(ns)
            })
            .await?;
        }
    }
    Ok(busy)
}
