//! The CRD finalizer: deletes the objects of a deleted CustomResourceDefinition,
//! then lets the definition go (k8s.io/apiextensions-apiserver
//! `finalizer.CRDFinalizer`).
//!
//! Each pass reads the stored CRDs; for every one that is being deleted and
//! still carries [`super::CLEANUP_FINALIZER`], its objects are deleted
//! through the REST layer (so their own finalizers hold them, as the
//! upstream controller's `DeleteCollection` does), and once none is left
//! the finalizer is removed, which deletes the CRD. Passes run when a CRD
//! changes, and every second while a deletion waits on objects.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::registry::Def;
use crate::request::Target;
use crate::rest::{Api, DeleteOptions};
use crate::store::ListOptions;

/// Runs the finalizer until `shutdown` turns true.
pub async fn run(api: Arc<Api>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let revision = api.store.current_revision();
        let waiting = match pass(&api).await {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!(error = %e, "CRD finalizer pass failed; retrying");
                true
            }
        };
        let changed = async {
            match api.store.watch(super::PREFIX, revision) {
                Ok(mut w) => {
                    w.next().await;
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        let tick = async {
            if waiting {
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = changed => {}
            () = tick => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One pass over the deleted CRDs; `Ok(true)` while one still waits for
/// its objects to go.
async fn pass(api: &Api) -> crate::error::ApiResult<bool> {
    let internal = |e: crate::store::StorageError| crate::error::ApiError::internal(e.to_string());
    let page = api
        .store
        .list(super::PREFIX, ListOptions::default())
        .await
        .map_err(internal)?;
    let mut waiting = false;
    for kv in &page.items {
        let Ok(crd) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        // One CRD's failure waits for the next pass, not the others.
        match finalize(api, &crd).await {
            Ok(w) => waiting |= w,
            Err(e) => {
                tracing::warn!(crd = crate::meta::name(&crd), error = %e.message, "CRD finalizer");
                waiting = true;
            }
        }
    }
    Ok(waiting)
}

/// Finalizes one CRD if it is being deleted; `Ok(true)` while its objects
/// are still going.
async fn finalize(api: &Api, crd: &Value) -> crate::error::ApiResult<bool> {
    let internal = |e: crate::store::StorageError| crate::error::ApiError::internal(e.to_string());
    let holds = crd
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == super::CLEANUP_FINALIZER));
    if !crate::meta::is_deleting(crd) || !holds {
        return Ok(false);
    }
    let name = crate::meta::name(crd).to_string();
    let table = api.custom_resources().await?;
    let Some(row) = table.iter().find(|c| c.crd == name).cloned() else {
        // No served version: nothing can reach its objects but this.
        delete_unreachable(api, crd).await?;
        release(api, &name).await?;
        return Ok(false);
    };
    let def = Def::Custom(row);
    let prefix = def.prefix();
    let objects = api
        .store
        .list(&prefix, ListOptions::default())
        .await
        .map_err(internal)?;
    if objects.items.is_empty() {
        release(api, &name).await?;
        return Ok(false);
    }
    for obj in &objects.items {
        let Some(rest) = obj.key.strip_prefix(&prefix) else {
            continue;
        };
        let (namespace, object) = match rest.split_once('/') {
            Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
            None => (None, rest.to_string()),
        };
        let target = Target {
            def: def.clone(),
            namespace,
            name: Some(object.clone()),
            subresource: None,
            watch_prefix: false,
        };
        if let Err(e) = api
            .delete_one(&target, &object, &DeleteOptions::default())
            .await
            && e.code != 404
        {
            tracing::warn!(crd = %name, object = %object, error = %e.message, "deleting a custom resource of a deleted CRD");
        }
    }
    Ok(true)
}

/// Deletes the stored objects of a CRD none of whose versions is served.
async fn delete_unreachable(api: &Api, crd: &Value) -> crate::error::ApiResult<()> {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    if group.is_empty() || plural.is_empty() {
        return Ok(());
    }
    let prefix = crate::registry::custom_prefix(group, plural);
    let internal = |e: crate::store::StorageError| crate::error::ApiError::internal(e.to_string());
    let page = api
        .store
        .list(&prefix, ListOptions::default())
        .await
        .map_err(internal)?;
    for kv in page.items {
        let _ = api.store.delete(&kv.key, kv.mod_revision).await;
    }
    Ok(())
}

/// Removes the cleanup finalizer, which deletes the CRD when it was the
/// last one.
async fn release(api: &Api, name: &str) -> crate::error::ApiResult<()> {
    let def = crate::registry::lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CRDs are a built-in kind");
    let target = Target {
        def: Def::Builtin(def),
        namespace: None,
        name: Some(name.to_string()),
        subresource: Some("status".into()),
        watch_prefix: false,
    };
    let result = api
        .guaranteed_update(&target, name, false, false, |current| {
            let mut crd = current.cloned().unwrap_or_else(|| json!({}));
            if let Some(list) = crd
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                list.retain(|f| f != super::CLEANUP_FINALIZER);
            }
            Ok(crd)
        })
        .await;
    match result {
        Err(e) if e.code != 404 => Err(e),
        _ => Ok(()),
    }
}
