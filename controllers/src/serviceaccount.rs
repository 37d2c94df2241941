//! The serviceaccount controller and the root-ca-cert-publisher: what every
//! namespace holds for workloads to authenticate.
//!
//! * serviceaccount (k8s.io/kubernetes pkg/controller/serviceaccount,
//!   `ServiceAccountsController.syncNamespace` with
//!   `DefaultServiceAccountsControllerOptions`): every active namespace has
//!   a `default` ServiceAccount, created again when deleted;
//! * root-ca-cert-publisher (pkg/controller/certificates/rootcacertpublisher,
//!   `Publisher.syncNamespace`): every active namespace has the
//!   `kube-root-ca.crt` ConfigMap with the cluster CA under `ca.crt`,
//!   created when missing and rewritten when its data was changed.
//!
//! Both reconcile namespaces; a metadata-only watch of ServiceAccounts (and
//! a watch of ConfigMaps narrowed to `metadata.name=kube-root-ca.crt`)
//! triggers the namespace of each change. Namespaces that are not `Active`
//! (terminating) are skipped, so the namespace controller can empty them.
//! The objects themselves come from [`vkube_core::serviceaccount`].

use crate::{Error, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::reflector::{self, ObjectRef, Store};
use kube_runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use vkube_core::serviceaccount::{
    DEFAULT_SERVICE_ACCOUNT, ROOT_CA_CONFIG_MAP, ROOT_CA_DESCRIPTION, ROOT_CA_KEY,
    default_service_account, root_ca_config_map, root_ca_needs_update,
};

/// Whether the controllers should fill `ns`: it exists, is not being
/// deleted and its phase is `Active` (or not yet reported).
pub fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Active")
}

/// What the root CA publisher does for one namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum RootCaPlan {
    /// Nothing: the namespace is not active, or the ConfigMap is right.
    Nothing,
    /// Create this ConfigMap.
    Create(Value),
    /// Merge-patch the existing ConfigMap with this (data back to
    /// `{ca.crt}` exactly, description annotation).
    Restore(Value),
}

/// The root CA publisher's decision for `ns` with its `kube-root-ca.crt`
/// (`existing`, as JSON) and the CA bundle `ca_pem` (Publisher.syncNamespace).
pub fn plan_root_ca(ns: &Namespace, existing: Option<&Value>, ca_pem: &str) -> RootCaPlan {
    if !is_active(ns) {
        return RootCaPlan::Nothing;
    }
    match existing {
        None => RootCaPlan::Create(root_ca_config_map(&ns.name_any(), ca_pem)),
        Some(cm) if root_ca_needs_update(cm, ca_pem) => {
            // A merge patch cannot drop unknown keys without naming them:
            // null out every key other than ca.crt.
            let mut data = serde_json::Map::new();
            if let Some(old) = cm.get("data").and_then(Value::as_object) {
                for k in old.keys().filter(|k| *k != ROOT_CA_KEY) {
                    data.insert(k.clone(), Value::Null);
                }
            }
            data.insert(ROOT_CA_KEY.into(), json!(ca_pem));
            RootCaPlan::Restore(json!({
                "metadata": {"annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": data,
            }))
        }
        Some(_) => RootCaPlan::Nothing,
    }
}

struct SaCtx {
    client: Client,
    accounts: Store<PartialObjectMeta<ServiceAccount>>,
}

async fn reconcile_sa(ns: Arc<Namespace>, ctx: Arc<SaCtx>) -> Result<Action> {
    let name = ns.name_any();
    let have = ctx
        .accounts
        .get(&ObjectRef::new(DEFAULT_SERVICE_ACCOUNT).within(&name))
        .is_some();
    if !is_active(&ns) || have {
        return Ok(Action::await_change());
    }
    let sa: ServiceAccount = serde_json::from_value(default_service_account(&name))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(Action::await_change()),
        // 409: the store lags; 403/404: the namespace is going away.
        Err(kube::Error::Api(s)) if matches!(s.code, 409 | 403 | 404) => Ok(Action::await_change()),
        Err(e) => Err(Error::Kube(e)),
    }
}

fn error_policy<C>(ns: Arc<Namespace>, err: &Error, _ctx: Arc<C>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %err, "namespace sync failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the serviceaccount controller until the process ends: a watch on
/// namespaces and a metadata-only watch on ServiceAccounts.
pub async fn run_service_accounts(client: Client) {
    let (accounts, writer) = reflector::store();
    let sa_stream = watcher::watcher(
        Api::<PartialObjectMeta<ServiceAccount>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let ctx = Arc::new(SaCtx {
        client: client.clone(),
        accounts,
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .watches_stream(sa_stream, |sa| {
            sa.namespace()
                .map(|ns| ObjectRef::<Namespace>::new(&ns))
                .into_iter()
        })
        .run(
            crate::measured(reconcile_sa),
            crate::counted(error_policy),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

struct CaCtx {
    client: Client,
    config_maps: Store<ConfigMap>,
    ca_pem: String,
}

async fn reconcile_ca(ns: Arc<Namespace>, ctx: Arc<CaCtx>) -> Result<Action> {
    let name = ns.name_any();
    let existing = ctx
        .config_maps
        .get(&ObjectRef::new(ROOT_CA_CONFIG_MAP).within(&name))
        .map(|cm| serde_json::to_value(&*cm))
        .transpose()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let result = match plan_root_ca(&ns, existing.as_ref(), &ctx.ca_pem) {
        RootCaPlan::Nothing => return Ok(Action::await_change()),
        RootCaPlan::Create(cm) => {
            let cm: ConfigMap =
                serde_json::from_value(cm).map_err(|e| Error::Invalid(e.to_string()))?;
            api.create(&PostParams::default(), &cm).await.map(drop)
        }
        RootCaPlan::Restore(patch) => api
            .patch(
                ROOT_CA_CONFIG_MAP,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .map(drop),
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if matches!(s.code, 409 | 403 | 404) => Ok(Action::await_change()),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Runs the root-ca-cert-publisher until the process ends, publishing
/// [`crate::Options::root_ca_pem`] of the [`crate::spawn_with`] that
/// started it; without one it logs a warning and does nothing (as
/// kube-controller-manager skips the publisher without a root CA file).
pub async fn run_root_ca_publisher(client: Client) {
    let Some(ca_pem) = crate::options().root_ca_pem.clone() else {
        tracing::warn!("root-ca-cert-publisher: no root CA configured; not publishing");
        return futures::future::pending().await;
    };
    let (config_maps, writer) = reflector::store();
    let cm_stream = watcher::watcher(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIG_MAP}")),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let ctx = Arc::new(CaCtx {
        client: client.clone(),
        config_maps,
        ca_pem,
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .watches_stream(cm_stream, |cm| {
            cm.namespace()
                .map(|ns| ObjectRef::<Namespace>::new(&ns))
                .into_iter()
        })
        .run(
            crate::measured(reconcile_ca),
            crate::counted(error_policy),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ns(phase: Option<&str>, deleting: bool) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            status: Some(NamespaceStatus {
                phase: phase.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_active_namespaces_are_filled() {
        assert!(is_active(&ns(Some("Active"), false)));
        assert!(is_active(&ns(None, false)));
        assert!(!is_active(&ns(Some("Terminating"), false)));
        assert!(!is_active(&ns(Some("Active"), true)));
    }

    #[test]
    fn root_ca_plans() {
        let good = root_ca_config_map("team", "PEM");
        let mut edited = good.clone();
        edited["data"] = json!({"ca.crt": "OTHER", "extra": "x"});
        let cases: [(&str, Namespace, Option<&Value>, RootCaPlan); 5] = [
            (
                "missing",
                ns(Some("Active"), false),
                None,
                RootCaPlan::Create(good.clone()),
            ),
            (
                "right",
                ns(Some("Active"), false),
                Some(&good),
                RootCaPlan::Nothing,
            ),
            (
                "edited",
                ns(Some("Active"), false),
                Some(&edited),
                RootCaPlan::Restore(json!({
                    "metadata": {"annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                    "data": {"ca.crt": "PEM", "extra": null},
                })),
            ),
            (
                "terminating, missing",
                ns(Some("Terminating"), true),
                None,
                RootCaPlan::Nothing,
            ),
            (
                "terminating, edited",
                ns(Some("Terminating"), true),
                Some(&edited),
                RootCaPlan::Nothing,
            ),
        ];
        for (what, n, existing, want) in cases {
            assert_eq!(plan_root_ca(&n, existing, "PEM"), want, "{what}");
        }
    }
}
