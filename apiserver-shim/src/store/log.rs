//! [`LogStore`]: the [`Storage`] contract over any [`Backend`].
//!
//! * **Writes** take one short lock: read the key, check the expected
//!   revision, apply one atomic batch at revision `r + 1`, append the event to
//!   the in-memory window. They then wait for the group-commit thread, which
//!   flushes the backend once for every write that arrived meanwhile and only
//!   then publishes the events to watchers and to readers. So a write is
//!   acknowledged, read and watched only once durable, and the revision a
//!   client has seen never goes backwards after a crash.
//! * **The window** keeps the last events (bounded by count and bytes), with
//!   each event's previous value. It serves watch replay and reads at a past
//!   revision: a list at revision `R` scans the backend without holding the
//!   lock and then rolls every key written after `R` back to its value at `R`.
//!   A revision that has left the window is compacted: `Compacted` (410).
//! * **Watch** registers the subscriber and snapshots the replay under the same
//!   lock the publisher takes, then drops duplicates by revision (kine's
//!   watch, STYLE 3). Subscribers have bounded buffers; a full one is closed so
//!   a slow watcher never blocks writers or other watchers.

use super::{
    Backend, Event, KeyValue, ListOptions, ListPage, Op, Storage, StorageError, WatchStream,
};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Tuning of a [`LogStore`].
#[derive(Debug, Clone)]
pub struct LogStoreConfig {
    /// Most events kept in the window (watch replay and past-revision reads).
    pub window_events: usize,
    /// Most bytes of values kept in the window.
    pub window_bytes: usize,
    /// Events buffered per watcher before it is closed as too slow.
    pub watcher_buffer: usize,
}

impl Default for LogStoreConfig {
    fn default() -> Self {
        Self {
            window_events: 10_000,
            window_bytes: 32 << 20,
            watcher_buffer: 1_024,
        }
    }
}

struct Subscriber {
    prefix: String,
    tx: mpsc::Sender<Arc<Event>>,
}

struct Inner {
    /// Last applied revision (possibly not yet durable).
    applied: u64,
    /// Last durable, published revision.
    durable: u64,
    /// Events at or below this revision are no longer in the window.
    compacted: u64,
    window: VecDeque<Arc<Event>>,
    window_bytes: usize,
    subscribers: Vec<Subscriber>,
    shutdown: bool,
}

struct Shared {
    backend: Box<dyn Backend>,
    inner: Mutex<Inner>,
    wake_flusher: Condvar,
    durable_tx: watch::Sender<u64>,
    config: LogStoreConfig,
}

/// The revisioned log store. Dropping it stops the group-commit thread after a
/// final flush.
pub struct LogStore {
    shared: Arc<Shared>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

fn event_bytes(ev: &Event) -> usize {
    ev.key.len() + ev.value.as_ref().map_or(0, Bytes::len) + ev.prev.as_ref().map_or(0, Bytes::len)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one write under the lock; returns its revision (not yet durable).
    fn write(
        &self,
        key: &str,
        decide: impl FnOnce(Option<&KeyValue>) -> Result<Option<Bytes>, StorageError>,
    ) -> Result<u64, StorageError> {
        let mut inner = self.lock();
        if inner.shutdown {
            return Err(StorageError::Backend("store is shutting down".into()));
        }
        let current = self.backend.get(key)?;
        let new_value = decide(current.as_ref())?;
        let revision = inner.applied + 1;
        let op = match &new_value {
            Some(v) => Op::Put {
                key: key.to_string(),
                mod_revision: revision,
                value: v.clone(),
            },
            None => Op::Delete {
                key: key.to_string(),
            },
        };
        self.backend.apply(op, revision)?;
        inner.applied = revision;
        let ev = Arc::new(Event {
            revision,
            key: key.to_string(),
            value: new_value,
            prev_revision: current.as_ref().map_or(0, |kv| kv.mod_revision),
            prev: current.map(|kv| kv.value),
        });
        inner.window_bytes += event_bytes(&ev);
        inner.window.push_back(ev);
        self.evict(&mut inner);
        drop(inner);
        self.wake_flusher.notify_one();
        Ok(revision)
    }

    /// Drops the oldest durable events beyond the window bounds.
    fn evict(&self, inner: &mut Inner) {
        while inner.window.len() > self.config.window_events
            || inner.window_bytes > self.config.window_bytes
        {
            match inner.window.front() {
                Some(front) if front.revision <= inner.durable => {
                    let front = inner.window.pop_front().expect("front exists");
                    inner.window_bytes -= event_bytes(&front);
                    inner.compacted = front.revision;
                }
                _ => break,
            }
        }
    }

    /// The group-commit loop: one backend flush per batch of writes, then publish.
    fn flush_loop(self: Arc<Self>) {
        loop {
            let target = {
                let mut inner = self.lock();
                while inner.applied == inner.durable && !inner.shutdown {
                    inner = self
                        .wake_flusher
                        .wait(inner)
                        .unwrap_or_else(|p| p.into_inner());
                }
                if inner.applied == inner.durable && inner.shutdown {
                    inner.subscribers.clear();
                    return;
                }
                inner.applied
            };
            if let Err(e) = self.backend.flush() {
                tracing::error!(error = %e, "storage flush failed; retrying");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let mut inner = self.lock();
            let from = inner.durable;
            let start = inner.window.partition_point(|e| e.revision <= from);
            let Inner {
                window,
                subscribers,
                ..
            } = &mut *inner;
            for ev in window
                .iter()
                .skip(start)
                .take_while(|e| e.revision <= target)
            {
                subscribers.retain(|s| {
                    if !ev.key.starts_with(&s.prefix) {
                        return !s.tx.is_closed();
                    }
                    // A full buffer closes the watcher: it re-watches from its last revision.
                    s.tx.try_send(ev.clone()).is_ok()
                });
            }
            inner.durable = target;
            self.evict(&mut inner);
            drop(inner);
            self.durable_tx.send_replace(target);
        }
    }

    async fn wait_durable(&self, revision: u64) -> Result<(), StorageError> {
        let mut rx = self.durable_tx.subscribe();
        rx.wait_for(|d| *d >= revision)
            .await
            .map(|_| ())
            .map_err(|_| StorageError::Backend("store closed".into()))
    }

    /// Values of keys in `(lower, upper]` under `prefix` that were written
    /// after `revision`, rolled back to their state at `revision` (`None`:
    /// absent then). Errors if `revision` has been compacted.
    fn rollback(
        &self,
        prefix: &str,
        lower: Option<&str>,
        upper: Option<&str>,
        revision: u64,
    ) -> Result<BTreeMap<String, Option<KeyValue>>, StorageError> {
        let inner = self.lock();
        if revision < inner.compacted {
            return Err(StorageError::Compacted {
                requested: revision,
                compacted: inner.compacted,
            });
        }
        let start = inner.window.partition_point(|e| e.revision <= revision);
        let mut out = BTreeMap::new();
        for ev in inner.window.iter().skip(start) {
            let k = ev.key.as_str();
            if !k.starts_with(prefix)
                || lower.is_some_and(|l| k <= l)
                || upper.is_some_and(|u| k > u)
            {
                continue;
            }
            // The earliest event after `revision` carries the value at `revision`.
            out.entry(ev.key.clone()).or_insert_with(|| {
                ev.prev.as_ref().map(|v| KeyValue {
                    key: ev.key.clone(),
                    mod_revision: ev.prev_revision,
                    value: v.clone(),
                })
            });
        }
        Ok(out)
    }
}

impl LogStore {
    /// Opens a store over `backend`, resuming at the backend's recorded revision.
    pub fn open(backend: Box<dyn Backend>, config: LogStoreConfig) -> Result<Self, StorageError> {
        let revision = backend.revision()?;
        let (durable_tx, _) = watch::channel(revision);
        let shared = Arc::new(Shared {
            backend,
            inner: Mutex::new(Inner {
                applied: revision,
                durable: revision,
                compacted: revision,
                window: VecDeque::new(),
                window_bytes: 0,
                subscribers: Vec::new(),
                shutdown: false,
            }),
            wake_flusher: Condvar::new(),
            durable_tx,
            config,
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("vkube-store-flush".into())
                .spawn(move || shared.flush_loop())
                .map_err(|e| StorageError::Backend(e.to_string()))?
        };
        Ok(Self {
            shared,
            flusher: Some(flusher),
        })
    }

    /// Number of live watch subscribers (for metrics and tests).
    pub fn watcher_count(&self) -> usize {
        self.shared.lock().subscribers.len()
    }

    async fn commit(
        &self,
        key: &str,
        decide: impl FnOnce(Option<&KeyValue>) -> Result<Option<Bytes>, StorageError>,
    ) -> Result<u64, StorageError> {
        let revision = self.shared.write(key, decide)?;
        self.shared.wait_durable(revision).await?;
        Ok(revision)
    }

    fn get_at_durable(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        // Pin the revision first: whatever the backend holds now is at or after it.
        let durable = self.shared.lock().durable;
        let current = self.shared.backend.get(key)?;
        // (None, key] under prefix `key` selects exactly `key`.
        let mut rolled = self.shared.rollback(key, None, Some(key), durable)?;
        Ok(rolled.remove(key).unwrap_or(current))
    }

    fn list_sync(&self, prefix: &str, opts: &ListOptions) -> Result<ListPage, StorageError> {
        let want = opts.limit.filter(|l| *l > 0);
        for _attempt in 0..8 {
            let revision = {
                let inner = self.shared.lock();
                let r = opts.revision.unwrap_or(inner.durable);
                if r > inner.durable {
                    return Err(StorageError::FutureRevision {
                        requested: r,
                        current: inner.durable,
                    });
                }
                if r < inner.compacted {
                    return Err(StorageError::Compacted {
                        requested: r,
                        compacted: inner.compacted,
                    });
                }
                r
            };
            match self.scan_at(prefix, opts.start_after.as_deref(), want, revision) {
                Err(StorageError::Compacted { .. }) if opts.revision.is_none() => continue,
                other => return other,
            }
        }
        Err(StorageError::Backend(
            "list could not complete under a heavy write load".into(),
        ))
    }

    fn scan_at(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
        revision: u64,
    ) -> Result<ListPage, StorageError> {
        let target = limit.map_or(usize::MAX, |l| l + 1);
        let mut items: Vec<KeyValue> = Vec::new();
        let mut cursor = start_after.map(str::to_string);
        loop {
            let chunk_size = limit.map_or(1024, |_| (target - items.len()).clamp(16, 1024));
            let chunk = self
                .shared
                .backend
                .scan(prefix, cursor.as_deref(), chunk_size)?;
            let exhausted = chunk.len() < chunk_size;
            let upper = if exhausted {
                None
            } else {
                chunk.last().map(|kv| kv.key.clone())
            };
            let mut rolled =
                self.shared
                    .rollback(prefix, cursor.as_deref(), upper.as_deref(), revision)?;
            let mut merged: Vec<KeyValue> = Vec::with_capacity(chunk.len());
            for kv in chunk {
                match rolled.remove(&kv.key) {
                    Some(Some(old)) => merged.push(old),
                    Some(None) => {}
                    None if kv.mod_revision <= revision => merged.push(kv),
                    // Written after `revision` yet absent from the window: compacted meanwhile.
                    None => {
                        return Err(StorageError::Compacted {
                            requested: revision,
                            compacted: self.shared.lock().compacted,
                        });
                    }
                }
            }
            // Keys deleted after `revision` are missing from the scan: put them back.
            merged.extend(rolled.into_values().flatten());
            merged.sort_by(|a, b| a.key.cmp(&b.key));
            items.extend(merged);
            if exhausted || items.len() >= target {
                break;
            }
            cursor = upper;
        }
        let more = items.len() > limit.unwrap_or(usize::MAX);
        if let Some(l) = limit {
            items.truncate(l);
        }
        Ok(ListPage {
            items,
            revision,
            more,
        })
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake_flusher.notify_all();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
    }
}

impl Storage for LogStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>, StorageError>> {
        futures::future::ready(self.get_at_durable(key)).boxed()
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        opts: ListOptions,
    ) -> BoxFuture<'a, Result<ListPage, StorageError>> {
        futures::future::ready(self.list_sync(prefix, &opts)).boxed()
    }

    fn create<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        async move {
            self.commit(key, |cur| match cur {
                Some(_) => Err(StorageError::AlreadyExists(key.to_string())),
                None => Ok(Some(value)),
            })
            .await
        }
        .boxed()
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
        value: Bytes,
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        async move {
            self.commit(key, |cur| check(key, cur, expected).map(|_| Some(value)))
                .await
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        async move {
            self.commit(key, |cur| check(key, cur, expected).map(|_| None))
                .await
        }
        .boxed()
    }

    fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StorageError> {
        let mut inner = self.shared.lock();
        if after < inner.compacted {
            return Err(StorageError::Compacted {
                requested: after,
                compacted: inner.compacted,
            });
        }
        let durable = inner.durable;
        let replay = inner
            .window
            .iter()
            .filter(|e| e.revision > after && e.revision <= durable && e.key.starts_with(prefix))
            .cloned()
            .collect();
        let (tx, live) = mpsc::channel(self.shared.config.watcher_buffer);
        inner.subscribers.push(Subscriber {
            prefix: prefix.to_string(),
            tx,
        });
        Ok(WatchStream {
            replay,
            live,
            last: after,
        })
    }

    fn current_revision(&self) -> u64 {
        self.shared.lock().durable
    }

    fn compacted_revision(&self) -> u64 {
        self.shared.lock().compacted
    }

    fn wait_for_revision(&self, revision: u64, timeout: Duration) -> BoxFuture<'_, bool> {
        async move {
            tokio::time::timeout(timeout, self.shared.wait_durable(revision))
                .await
                .is_ok_and(|r| r.is_ok())
        }
        .boxed()
    }
}

fn check(key: &str, cur: Option<&KeyValue>, expected: u64) -> Result<(), StorageError> {
    match cur {
        None => Err(StorageError::NotFound(key.to_string())),
        Some(kv) if kv.mod_revision != expected => Err(StorageError::Conflict {
            key: key.to_string(),
            expected,
            actual: kv.mod_revision,
        }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryBackend;

    fn store(window: usize) -> LogStore {
        LogStore::open(
            Box::new(MemoryBackend::new()),
            LogStoreConfig {
                window_events: window,
                window_bytes: usize::MAX,
                watcher_buffer: 4,
            },
        )
        .unwrap()
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn revisions_advance_and_preconditions_hold() {
        let s = store(100);
        let r1 = s.create("/a/x", b("1")).await.unwrap();
        let r2 = s.create("/a/y", b("2")).await.unwrap();
        assert_eq!((r1, r2), (1, 2));
        assert_eq!(
            s.create("/a/x", b("again")).await,
            Err(StorageError::AlreadyExists("/a/x".into()))
        );
        assert!(matches!(
            s.update("/a/x", 2, b("stale")).await,
            Err(StorageError::Conflict { actual: 1, .. })
        ));
        let r3 = s.update("/a/x", 1, b("1b")).await.unwrap();
        assert_eq!(r3, 3);
        assert_eq!(s.get("/a/x").await.unwrap().unwrap().value, b("1b"));
        assert_eq!(s.current_revision(), 3);
        s.delete("/a/y", 2).await.unwrap();
        assert_eq!(s.get("/a/y").await.unwrap(), None);
    }

    #[tokio::test]
    async fn list_at_past_revision_rolls_back_writes() {
        let s = store(100);
        for k in ["a", "b", "c"] {
            s.create(&format!("/p/{k}"), b(k)).await.unwrap();
        }
        let at = s.current_revision();
        s.update("/p/a", 1, b("a2")).await.unwrap();
        s.delete("/p/b", 2).await.unwrap();
        s.create("/p/d", b("d")).await.unwrap();
        let past = s
            .list(
                "/p/",
                ListOptions {
                    revision: Some(at),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let got: Vec<_> = past
            .items
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![("/p/a", b("a")), ("/p/b", b("b")), ("/p/c", b("c"))]
        );
        let now = s.list("/p/", ListOptions::default()).await.unwrap();
        let keys: Vec<_> = now.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, vec!["/p/a", "/p/c", "/p/d"]);
    }

    #[tokio::test]
    async fn pagination_is_consistent_and_compaction_is_reported() {
        let s = store(3);
        for i in 0..10 {
            s.create(&format!("/p/{i:02}"), b("v")).await.unwrap();
        }
        let first = s
            .list(
                "/p/",
                ListOptions {
                    limit: Some(4),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(first.items.len(), 4);
        assert!(first.more);
        // Two writes after the snapshot stay invisible to the next page.
        s.delete("/p/05", 6).await.unwrap();
        s.create("/p/045", b("new")).await.unwrap();
        let next = s
            .list(
                "/p/",
                ListOptions {
                    revision: Some(first.revision),
                    start_after: Some(first.items[3].key.clone()),
                    limit: Some(100),
                },
            )
            .await
            .unwrap();
        let keys: Vec<_> = next.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["/p/04", "/p/05", "/p/06", "/p/07", "/p/08", "/p/09"]
        );
        assert!(!next.more);
        for _ in 0..5 {
            let cur = s.get("/p/00").await.unwrap().unwrap().mod_revision;
            s.update("/p/00", cur, b("x")).await.unwrap();
        }
        let err = s
            .list(
                "/p/",
                ListOptions {
                    revision: Some(first.revision),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Compacted { .. }));
        assert!(matches!(
            s.watch("/p/", first.revision),
            Err(StorageError::Compacted { .. })
        ));
    }

    #[tokio::test]
    async fn watch_replays_then_streams_each_revision_once() {
        let s = store(100);
        s.create("/w/a", b("1")).await.unwrap();
        s.create("/other/z", b("z")).await.unwrap();
        s.create("/w/b", b("2")).await.unwrap();
        let mut w = s.watch("/w/", 1).unwrap();
        s.update("/w/a", 1, b("3")).await.unwrap();
        let first = w.next().await.unwrap();
        assert_eq!((first.revision, first.key.as_str()), (3, "/w/b"));
        let second = w.next().await.unwrap();
        assert_eq!(second.revision, 4);
        assert_eq!(second.prev, Some(b("1")));
        assert_eq!(second.value, Some(b("3")));
    }

    #[tokio::test]
    async fn slow_watcher_is_closed_without_blocking_writers() {
        let s = store(1000);
        let mut slow = s.watch("/s/", 0).unwrap();
        for i in 0..50 {
            s.create(&format!("/s/{i}"), b("v")).await.unwrap();
        }
        // Buffer is 4: the watcher got the first events, then was closed.
        let mut seen = 0;
        while slow.next().await.is_some() {
            seen += 1;
        }
        assert!((1..50).contains(&seen), "seen {seen}");
        assert_eq!(s.watcher_count(), 0);
    }
}
