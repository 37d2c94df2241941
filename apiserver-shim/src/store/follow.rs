//! State kept current from the objects under one store prefix, as an
//! informer-fed cache in kube-apiserver is (the RBAC policy, the custom
//! resource table).
//!
//! The first read lists the prefix and folds every object into the state,
//! then follows a store watch from that list's revision. Each later read
//! first folds the watch events already queued, without waiting: the store
//! queues a write's event before it acknowledges the write, so a request
//! that follows a write is served with it. A watch the store closed (it
//! fell behind) makes the next read list again.

use super::{ListOptions, Storage, StorageError, WatchStream};
use crate::error::{ApiError, ApiResult};

/// A state `S` folded from the objects under a prefix (module docs).
pub struct Followed<S> {
    live: tokio::sync::Mutex<Option<(WatchStream, S)>>,
}

impl<S> Default for Followed<S> {
    fn default() -> Self {
        Self {
            live: tokio::sync::Mutex::new(None),
        }
    }
}

impl<S: Default> Followed<S> {
    /// The state as of every write under `prefix` acknowledged so far.
    /// `apply(state, key, value)` folds one object in (`None`: it was
    /// deleted); `read(state, changed)` makes the answer, `changed` telling
    /// whether anything was folded since the last read.
    ///
    /// # Errors
    /// `500` when the store cannot be listed or watched.
    pub async fn current<R>(
        &self,
        store: &dyn Storage,
        prefix: &str,
        apply: impl Fn(&mut S, &str, Option<&[u8]>),
        read: impl FnOnce(&mut S, bool) -> R,
    ) -> ApiResult<R> {
        let mut live = self.live.lock().await;
        if let Some((watch, state)) = live.as_mut() {
            let mut changed = false;
            while let Some(ev) = watch.try_next() {
                apply(state, &ev.key, ev.value.as_deref());
                changed = true;
            }
            if !watch.is_closed() {
                return Ok(read(state, changed));
            }
        }
        let (watch, mut state) = load(store, prefix, &apply).await?;
        let answer = read(&mut state, true);
        *live = Some((watch, state));
        Ok(answer)
    }
}

/// Lists `prefix` into a fresh state and watches from the list's revision.
async fn load<S: Default>(
    store: &dyn Storage,
    prefix: &str,
    apply: &impl Fn(&mut S, &str, Option<&[u8]>),
) -> ApiResult<(WatchStream, S)> {
    let internal = |e: StorageError| ApiError::internal(e.to_string());
    // A revision compacted between the list and the watch: list again.
    for _ in 0..3 {
        let page = store
            .list(prefix, ListOptions::default())
            .await
            .map_err(internal)?;
        let mut state = S::default();
        for kv in &page.items {
            apply(&mut state, &kv.key, Some(&kv.value));
        }
        match store.watch(prefix, page.revision) {
            Ok(watch) => return Ok((watch, state)),
            Err(StorageError::Compacted { .. }) => continue,
            Err(e) => return Err(internal(e)),
        }
    }
    Err(ApiError::internal(format!(
        "the objects under {prefix} could not be read and watched"
    )))
}
