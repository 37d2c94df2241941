//! The RBAC objects held in memory for authorization, as kube-apiserver's
//! RBAC authorizer reads them from informers instead of the store.
//!
//! The cache lists every object under the RBAC group's storage prefix once,
//! then follows a store watch from that list's revision. Each read first
//! takes the watch events that are already queued, without waiting: the
//! store queues a write's event before it acknowledges the write, so a
//! request that follows a RoleBinding's creation is decided with it (an
//! informer-fed authorizer only promises this eventually). A watch the
//! store closed (it fell behind) makes the next read list again.

use std::sync::Arc;

use super::rbac::Policy;
use crate::error::ApiResult;
use crate::store::{Followed, Storage};

/// Where the RBAC kinds are stored (`/rbac.authorization.k8s.io/{resource}/…`).
const PREFIX: &str = "/rbac.authorization.k8s.io/";

/// A [`Policy`] kept current from the store ([`Followed`]).
#[derive(Default)]
pub struct PolicyCache {
    live: Followed<Arc<Policy>>,
}

impl PolicyCache {
    /// The policy as of every RBAC write acknowledged so far. The first call
    /// lists the RBAC objects; later calls apply the queued watch events.
    ///
    /// # Errors
    /// `500` when the store cannot be listed or watched.
    pub async fn current(&self, store: &dyn Storage) -> ApiResult<Arc<Policy>> {
        self.live
            .current(store, PREFIX, apply, |policy, _| policy.clone())
            .await
    }
}

/// Folds one stored RBAC object (`None`: deleted) into the policy.
fn apply(policy: &mut Arc<Policy>, key: &str, value: Option<&[u8]>) {
    let Some((resource, namespace, name)) = split_key(key) else {
        return;
    };
    let policy = Arc::make_mut(policy);
    policy.remove(resource, namespace, name);
    if let Some(value) = value
        && let Err(e) = policy.insert(resource, value)
    {
        tracing::warn!(key, error = %e, "an RBAC object does not decode; it grants nothing");
    }
}

/// The resource, namespace (empty for cluster-scoped kinds) and name of a
/// key under [`PREFIX`].
fn split_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [resource @ ("clusterroles" | "clusterrolebindings"), name] => Some((resource, "", name)),
        [resource @ ("roles" | "rolebindings"), namespace, name] => {
            Some((resource, namespace, name))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LogStore, LogStoreConfig, MemoryBackend};
    use serde_json::json;

    #[tokio::test]
    async fn writes_reach_the_next_read_and_deletes_take_grants_away() {
        let store = LogStore::open(
            Box::new(MemoryBackend::default()),
            LogStoreConfig::default(),
        )
        .unwrap();
        let cache = PolicyCache::default();
        assert!(
            cache
                .current(&store)
                .await
                .unwrap()
                .cluster_roles
                .is_empty()
        );
        let role = json!({"metadata": {"name": "r", "namespace": "dev"}, "rules": []});
        let key = "/rbac.authorization.k8s.io/roles/dev/r";
        let rev = store.create(key, role.to_string().into()).await.unwrap();
        let binding = json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}});
        store
            .create(
                "/rbac.authorization.k8s.io/clusterrolebindings/b",
                binding.to_string().into(),
            )
            .await
            .unwrap();
        // Other groups' keys never enter the policy.
        store
            .create("/core/configmaps/dev/c", "{}".into())
            .await
            .unwrap();
        let p = cache.current(&store).await.unwrap();
        assert!(p.roles["dev"].contains_key("r"));
        assert!(p.cluster_role_bindings.contains_key("b"));
        store.delete(key, rev).await.unwrap();
        let p = cache.current(&store).await.unwrap();
        assert!(!p.roles.contains_key("dev"));
        assert_eq!(split_key("/rbac.authorization.k8s.io/roles/dev"), None);
    }
}
