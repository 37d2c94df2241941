//! The simulated node's ingress controller: a stand-in for the host's
//! ingress controller publishing its address. Every Ingress without a
//! `status.loadBalancer.ingress` gets the node's IP there, as
//! ingress-nginx publishes its Service's address; nothing routes traffic.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;
use serde_json::json;

use crate::{Error, Result};

/// Whether `ing` still lacks a published address.
pub fn needs_address(ing: &Ingress) -> bool {
    ing.metadata.deletion_timestamp.is_none()
        && ing
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .is_none_or(Vec::is_empty)
}

struct Ctx {
    client: Client,
    address: String,
}

/// Publishes `address` on every Ingress until the process ends.
pub async fn run(client: Client, address: String) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        address,
    });
    Controller::new(Api::<Ingress>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(ing: Arc<Ingress>, ctx: Arc<Ctx>) -> Result<Action> {
    if needs_address(&ing) {
        let api: Api<Ingress> =
            Api::namespaced(ctx.client.clone(), &ing.namespace().unwrap_or_default());
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ctx.address}]}}});
        match api
            .patch_status(
                &ing.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

fn error_policy(ing: Arc<Ingress>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(ingress = %ing.name_any(), error = %err, "simulated ingress: publishing failed");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ingresses_without_an_address_get_one() {
        let bare: Ingress = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
        assert!(needs_address(&bare));
        let published: Ingress = serde_json::from_value(json!({"metadata": {"name": "a"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.10"}]}}}))
        .unwrap();
        assert!(!needs_address(&published));
    }
}
