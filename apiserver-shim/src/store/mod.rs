//! Storage: a revisioned key-value log behind one small trait.
//!
//! The REST layer sees only [`Storage`]: get / list at a revision / create /
//! update and delete against an expected revision / watch from a revision /
//! current and compacted revision. The contract follows etcd's MVCC model as
//! kube-apiserver uses it (k8s.io/apiserver/pkg/storage/interfaces.go): one
//! global revision counter, every write advances it by one and stamps the
//! written key with it (`mod_revision`, surfaced to clients as
//! `metadata.resourceVersion`), and watches replay history after a revision
//! and then stream live.
//!
//! [`LogStore`] implements the contract once, over any [`Backend`] (a plain
//! ordered KV with atomic batches): [`SledBackend`] is the embedded durable
//! default, [`MemoryBackend`] serves unit tests. An etcd store would implement
//! [`Storage`] directly on etcd's own revisions and watches.

mod follow;
mod log;
mod memory;
mod sled_backend;

pub use follow::Followed;
pub use log::{LogStore, LogStoreConfig};
pub use memory::MemoryBackend;
pub use sled_backend::SledBackend;

use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;

/// A stored value with the revision of its last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Storage key, e.g. `/apps/deployments/default/web`.
    pub key: String,
    /// Revision of the write that produced this value (its resourceVersion).
    pub mod_revision: u64,
    /// The serialized object (JSON bytes, without `metadata.resourceVersion`).
    pub value: Bytes,
}

/// One committed change, as delivered to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Revision of this change.
    pub revision: u64,
    /// The key that changed.
    pub key: String,
    /// New value; `None` for a deletion.
    pub value: Option<Bytes>,
    /// Value before the change; `None` for a creation.
    pub prev: Option<Bytes>,
    /// Revision of `prev` (0 for a creation).
    pub prev_revision: u64,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Items in key order, as they were at `revision`.
    pub items: Vec<KeyValue>,
    /// The revision the page was read at.
    pub revision: u64,
    /// Whether keys after the last item exist at `revision`.
    pub more: bool,
}

/// Errors of the storage layer; the REST layer maps each to a `Status`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// Create of a key that exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// Update or delete of a key that does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key's current revision differs from the expected one.
    #[error("key {key}: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// Revision the caller expected.
        expected: u64,
        /// Revision found.
        actual: u64,
    },
    /// The requested revision is older than the oldest retained history.
    #[error("revision {requested} is compacted (oldest available {compacted})")]
    Compacted {
        /// Revision asked for.
        requested: u64,
        /// Oldest revision that can still be served.
        compacted: u64,
    },
    /// The requested revision has not been reached yet.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// Revision asked for.
        requested: u64,
        /// Current revision.
        current: u64,
    },
    /// The backend failed (I/O, corruption).
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Options of [`Storage::list`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Read at this revision; `None` reads at the current revision.
    pub revision: Option<u64>,
    /// Start strictly after this key (pagination).
    pub start_after: Option<String>,
    /// At most this many items; `None` or 0 means no limit.
    pub limit: Option<usize>,
}

/// A live watch: history after the start revision, then live events, each
/// revision delivered once and in order. The stream ends (`next` gives `None`)
/// when the watcher fell too far behind and was closed, or the store shut down;
/// the client then re-watches from its last revision.
pub struct WatchStream {
    pub(crate) replay: std::collections::VecDeque<Arc<Event>>,
    pub(crate) live: tokio::sync::mpsc::Receiver<Arc<Event>>,
    pub(crate) last: u64,
}

impl WatchStream {
    /// The next event, or `None` when the watch was closed.
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        loop {
            let ev = match self.replay.pop_front() {
                Some(ev) => ev,
                None => self.live.recv().await?,
            };
            // Subscribe-then-replay can deliver one revision twice; drop duplicates.
            if ev.revision > self.last {
                self.last = ev.revision;
                return Some(ev);
            }
        }
    }

    /// The next event if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Option<Arc<Event>> {
        loop {
            let ev = match self.replay.pop_front() {
                Some(ev) => ev,
                None => self.live.try_recv().ok()?,
            };
            if ev.revision > self.last {
                self.last = ev.revision;
                return Some(ev);
            }
        }
    }

    /// The revision of the last event delivered (or the start revision).
    pub fn last_revision(&self) -> u64 {
        self.last
    }

    /// Whether the store closed this watch (it fell behind, so some events
    /// were dropped) and every event it did queue was taken.
    pub fn is_closed(&self) -> bool {
        self.replay.is_empty() && self.live.is_closed() && self.live.is_empty()
    }
}

/// The storage contract of the REST layer.
///
/// Keys are UTF-8 paths; a prefix selects a collection. All values are opaque
/// bytes. Every successful write returns the new global revision and is
/// durable when the future resolves. Implementations must be safe to call
/// concurrently; writes to one key are linearizable.
pub trait Storage: Send + Sync + 'static {
    /// The value at `key` as of the current revision.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>, StorageError>>;

    /// Keys under `prefix` as of one revision, in key order, paginated.
    /// Errors: [`StorageError::Compacted`] for a revision older than the
    /// retained history, [`StorageError::FutureRevision`] for one not reached.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        opts: ListOptions,
    ) -> BoxFuture<'a, Result<ListPage, StorageError>>;

    /// Creates `key`; [`StorageError::AlreadyExists`] if it exists.
    fn create<'a>(&'a self, key: &'a str, value: Bytes)
    -> BoxFuture<'a, Result<u64, StorageError>>;

    /// Replaces `key` if its revision is `expected`; [`StorageError::Conflict`]
    /// otherwise, [`StorageError::NotFound`] if absent.
    fn update<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
        value: Bytes,
    ) -> BoxFuture<'a, Result<u64, StorageError>>;

    /// Deletes `key` if its revision is `expected`; same errors as update.
    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
    ) -> BoxFuture<'a, Result<u64, StorageError>>;

    /// Events under `prefix` with revision greater than `after`.
    /// [`StorageError::Compacted`] if history after `after` is no longer kept.
    fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StorageError>;

    /// How many keys are under `prefix` at the current revision (what
    /// kube-apiserver's `apiserver_storage_objects` reports). The default
    /// pages through [`Storage::list`]; a backend that can count without
    /// reading values should.
    fn count<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move {
            let mut total = 0u64;
            let mut opts = ListOptions {
                limit: Some(1_000),
                ..ListOptions::default()
            };
            loop {
                let page = self.list(prefix, opts.clone()).await?;
                total += page.items.len() as u64;
                match page.items.last() {
                    Some(last) if page.more => {
                        opts.start_after = Some(last.key.clone());
                        opts.revision = Some(page.revision);
                    }
                    _ => return Ok(total),
                }
            }
        })
    }

    /// The newest durable revision.
    fn current_revision(&self) -> u64;

    /// History at or below this revision is gone: watches and lists must start
    /// above it.
    fn compacted_revision(&self) -> u64;

    /// Waits until the current revision reaches `revision` or `timeout` passes;
    /// returns whether it was reached (used for "not older than" reads).
    fn wait_for_revision(&self, revision: u64, timeout: std::time::Duration)
    -> BoxFuture<'_, bool>;
}

/// A write applied by a [`Backend`] as one atomic batch.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store `value` at `key` with `mod_revision`.
    Put {
        /// Key.
        key: String,
        /// The revision stamped on the value.
        mod_revision: u64,
        /// Value bytes.
        value: Bytes,
    },
    /// Remove `key`.
    Delete {
        /// Key.
        key: String,
    },
}

/// The minimal KV a [`LogStore`] needs: ordered keys, atomic batches that also
/// persist the revision counter, and an explicit durability barrier.
pub trait Backend: Send + Sync + 'static {
    /// The value and revision at `key`.
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError>;
    /// Up to `limit` entries under `prefix` strictly after `start_after`, in key order.
    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError>;
    /// Applies `op` and records `revision` as the current revision, atomically.
    fn apply(&self, op: Op, revision: u64) -> Result<(), StorageError>;
    /// The revision recorded by the last applied batch (0 for a new store).
    fn revision(&self) -> Result<u64, StorageError>;
    /// Makes every applied batch durable (fsync). Called by the group-commit
    /// thread, never concurrently with itself.
    fn flush(&self) -> Result<(), StorageError>;
}
