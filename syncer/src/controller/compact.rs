//! [`Summaries`]: a cache of compact per-object summaries filled from watch
//! events, in place of a kube-runtime reflector `Store` of full objects
//! (see [`crate::summary`]).
//!
//! Why not kube-runtime's `Store<K>` over a summary type implementing its
//! `Lookup` trait: that store keys each entry by an `ObjectRef` (name,
//! namespace and extras as owned strings) and holds values behind an
//! `Arc`, which per pod costs more than the summary itself; issue 4's
//! memory aim is per synced pod. The relist semantics are the reflector's.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::runtime::watcher;

/// Summaries `S` of watched objects by key `K`, maintained like
/// kube-runtime's reflector maintains its store: `Apply`/`Delete` change
/// one entry; a (re)list (`Init`, `InitApply`…, `InitDone`) is buffered
/// and replaces the whole content at `InitDone`, so objects deleted during
/// a watch gap disappear. Ready once the first list is done.
pub struct Summaries<K, S> {
    inner: Mutex<Inner<K, S>>,
    ready: tokio::sync::watch::Sender<bool>,
}

struct Inner<K, S> {
    live: HashMap<K, S>,
    relist: Option<HashMap<K, S>>,
}

impl<K: Eq + Hash + Clone, S: Clone> Default for Summaries<K, S> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                live: HashMap::new(),
                relist: None,
            }),
            ready: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl<K: Eq + Hash + Clone, S: Clone> Summaries<K, S> {
    fn lock(&self) -> MutexGuard<'_, Inner<K, S>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies watch event `ev`; `project` gives an object's key and
    /// summary (`None`: not cached, e.g. a host object without markers).
    pub fn apply<T>(&self, ev: &watcher::Event<T>, project: impl Fn(&T) -> Option<(K, S)>) {
        let mut inner = self.lock();
        match ev {
            watcher::Event::Apply(o) => {
                if let Some((k, s)) = project(o) {
                    inner.live.insert(k, s);
                }
            }
            watcher::Event::Delete(o) => {
                if let Some((k, _)) = project(o) {
                    remove_shrinking(&mut inner.live, &k);
                }
            }
            watcher::Event::Init => inner.relist = Some(HashMap::new()),
            watcher::Event::InitApply(o) => {
                if let Some((k, s)) = project(o) {
                    inner.relist.get_or_insert_with(HashMap::new).insert(k, s);
                }
            }
            watcher::Event::InitDone => {
                let mut fresh = inner.relist.take().unwrap_or_default();
                fresh.shrink_to_fit();
                inner.live = fresh;
                drop(inner);
                self.ready.send_replace(true);
            }
        }
    }

    /// The summary under `key`, if cached.
    pub fn get(&self, key: &K) -> Option<S> {
        self.lock().live.get(key).cloned()
    }

    /// Changes the summary under `key` in place, if cached.
    pub fn update(&self, key: &K, f: impl FnOnce(&mut S)) {
        if let Some(s) = self.lock().live.get_mut(key) {
            f(s);
        }
    }

    /// Whether `key` is cached.
    pub fn contains(&self, key: &K) -> bool {
        self.lock().live.contains_key(key)
    }

    /// Calls `f` for every cached entry (under the lock: `f` must not call
    /// back into this cache).
    pub fn for_each(&self, mut f: impl FnMut(&K, &S)) {
        for (k, s) in &self.lock().live {
            f(k, s);
        }
    }

    /// Whether any cached summary satisfies `f`.
    pub fn any(&self, f: impl Fn(&S) -> bool) -> bool {
        self.lock().live.values().any(f)
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first list was applied (the content is complete).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the first list was applied. Errors never (the `Result`
    /// matches kube-runtime's `Store::wait_until_ready`).
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        let mut rx = self.ready.subscribe();
        rx.wait_for(|r| *r).await?;
        Ok(())
    }
}

/// Removes `key` from `map`, and gives memory back once the map is under a
/// quarter full: a burst of 10,000 pods otherwise leaves every per-key
/// map at its peak capacity for good (issue 4's memory aim is per pod).
/// Shrinking to twice the length keeps the cost amortised O(1).
pub fn remove_shrinking<K: Eq + Hash, V>(map: &mut HashMap<K, V>, key: &K) -> Option<V> {
    let v = map.remove(key);
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
    v
}

/// Interns node names: the pods of one node share one `Arc<str>`.
#[derive(Default)]
pub struct Interner(Mutex<std::collections::HashSet<Arc<str>>>);

impl Interner {
    /// The shared copy of `s`.
    pub fn intern(&self, s: &str) -> Arc<str> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = set.get(s) {
            return Arc::clone(a);
        }
        // Forget names no one holds any more (nodes come and go).
        if set.len() >= 64 {
            set.retain(|a| Arc::strong_count(a) > 1);
        }
        let a: Arc<str> = Arc::from(s);
        set.insert(Arc::clone(&a));
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(o: &(&'static str, u32)) -> Option<(&'static str, u32)> {
        (!o.0.is_empty()).then_some(*o)
    }

    #[tokio::test]
    async fn a_relist_replaces_everything_at_its_end() {
        let c: Summaries<&str, u32> = Summaries::default();
        c.apply(&watcher::Event::Init, project);
        c.apply(&watcher::Event::InitApply(("a", 1)), project);
        assert!(c.is_empty(), "buffered until InitDone");
        assert!(!c.is_ready());
        c.apply(&watcher::Event::InitApply(("", 9)), project);
        c.apply(&watcher::Event::InitDone, project);
        c.wait_until_ready().await.unwrap();
        assert!(c.is_ready());
        assert_eq!((c.get(&"a"), c.len()), (Some(1), 1));
        c.apply(&watcher::Event::Apply(("b", 2)), project);
        c.update(&"b", |v| *v += 1);
        assert_eq!(c.get(&"b"), Some(3));
        c.apply(&watcher::Event::Delete(("a", 1)), project);
        assert!(!c.contains(&"a"));
        // A relist after a watch gap: b was deleted meanwhile, c created.
        c.apply(&watcher::Event::Init, project);
        c.apply(&watcher::Event::InitApply(("c", 4)), project);
        assert!(c.contains(&"b"), "still the old content while relisting");
        c.apply(&watcher::Event::InitDone, project);
        let mut keys = Vec::new();
        c.for_each(|k, _| keys.push(*k));
        assert_eq!(keys, ["c"]);
        assert!(c.any(|v| *v == 4));
    }

    #[test]
    fn a_drained_map_gives_its_capacity_back() {
        let mut m: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let peak = m.capacity();
        for i in 0..9_990 {
            assert_eq!(remove_shrinking(&mut m, &i), Some(i));
        }
        assert_eq!(m.len(), 10);
        assert!(m.capacity() <= 64, "{} of {peak}", m.capacity());
        assert_eq!(m.get(&9_995), Some(&9_995));
    }

    #[test]
    fn node_names_are_shared() {
        let i = Interner::default();
        let a = i.intern("node-1");
        let b = i.intern("node-1");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*i.intern("node-2"), "node-2");
    }
}
