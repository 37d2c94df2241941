//! A deduplicating work queue with per-key backoff, in the shape of
//! client-go's `workqueue` (`RateLimitingInterface`): a key is queued at
//! most once, is never handed to two workers at the same time, and a key
//! added while a worker holds it is queued again when that worker is done.
//!
//! Why not `kube::runtime::Controller`: its reconciler only runs for objects
//! present in its reflector store, but the syncer must also act when one
//! side is *gone* (virtual pod deleted → host pod deleted; host pod gone →
//! virtual pod finalized). Keys here are plain values (virtual namespace and
//! name) and each reconcile loads both sides itself.
//!
//! Two lanes: keys added with [`Queue::add_urgent`] (work that makes an
//! object exist, e.g. creating a host pod) are handed out before those of
//! [`Queue::add`] (follow-ups such as status writes), so a burst of
//! creates is not slowed by the round trips of earlier objects'
//! follow-ups, the way kube-scheduler's active queue puts some pods first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// First retry delay after a failed reconcile of a key; doubled per
/// consecutive failure up to [`MAX_BACKOFF`] (client-go's per-item
/// exponential limiter uses 5 ms..1000 s; the syncer prefers fewer retries).
pub const BASE_BACKOFF: Duration = Duration::from_millis(100);

/// Longest retry delay after repeated failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct State<K> {
    /// Keys of the urgent lane, handed out first. A key may sit in both
    /// lanes; `queued` decides: a key popped that is no longer in
    /// `queued` was already handed out from the other lane.
    urgent: VecDeque<K>,
    order: VecDeque<K>,
    /// Queued keys with the time they were first added since last taken.
    queued: HashMap<K, Instant>,
    /// Keys a worker holds.
    active: HashSet<K>,
    /// Keys added while active: queued again on [`Queue::done`].
    dirty: HashMap<K, Instant>,
    /// Consecutive failures per key, for backoff.
    failures: HashMap<K, u32>,
    /// Keys with a pending delayed add ([`Queue::add_after`]), with its
    /// deadline: at most one live timer per key (a superseded one adds
    /// nothing when it fires).
    delayed: HashMap<K, tokio::time::Instant>,
}

/// A work queue of keys `K` (see the module docs). Cheap to share in an
/// `Arc`; `add` never blocks.
pub struct Queue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for Queue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Queue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                urgent: VecDeque::new(),
                order: VecDeque::new(),
                queued: HashMap::new(),
                active: HashSet::new(),
                dirty: HashMap::new(),
                failures: HashMap::new(),
                delayed: HashMap::new(),
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` now (no-op if already queued; deferred if a worker holds it).
    pub fn add(&self, key: K) {
        self.push(key, false);
    }

    /// Queues `key` in the urgent lane: handed out before every key of the
    /// ordinary lane (one already queued there moves up). Deferred like
    /// [`Queue::add`] if a worker holds it.
    pub fn add_urgent(&self, key: K) {
        self.push(key, true);
    }

    fn push(&self, key: K, urgent: bool) {
        let now = Instant::now();
        let mut s = self.lock();
        if s.active.contains(&key) {
            s.dirty.entry(key).or_insert(now);
            return;
        }
        if s.queued.contains_key(&key) {
            if urgent {
                s.urgent.push_back(key);
            }
            return;
        }
        s.queued.insert(key.clone(), now);
        if urgent {
            s.urgent.push_back(key);
        } else {
            s.order.push_back(key);
        }
        drop(s);
        self.notify.notify_one();
    }

    /// Queues `key` after `delay` (from a spawned timer task). If a timer
    /// for `key` is already pending with a deadline no later than this one
    /// (within `delay / 16`), nothing is spawned: the earlier reconcile
    /// asks for its own requeue again, as level-based reconciles do. So
    /// each reconcile of a long-lived object asking for a far requeue (a
    /// token refresh in 48 min) does not leave one more sleeping task
    /// behind (those piled up by the thousands per thousand pods).
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        let deadline = tokio::time::Instant::now() + delay;
        {
            let mut s = self.lock();
            if let Some(&pending) = s.delayed.get(&key)
                && pending <= deadline + delay / 16
            {
                return;
            }
            s.delayed.insert(key.clone(), deadline);
        }
        let q = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let ours = {
                let mut s = q.lock();
                let ours = s.delayed.get(&key) == Some(&deadline);
                if ours {
                    s.delayed.remove(&key);
                }
                ours
            };
            // Superseded by a sooner timer, whose reconcile asked again.
            if ours {
                q.add(key);
            }
        });
    }

    /// Number of keys with a pending delayed add.
    pub fn delayed_len(&self) -> usize {
        self.lock().delayed.len()
    }

    /// Number of keys waiting (not counting those a worker holds).
    pub fn len(&self) -> usize {
        self.lock().queued.len()
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next key; returns it with the time it was first queued.
    /// The caller must call [`Queue::done`] with it afterwards.
    pub async fn next(&self) -> (K, Instant) {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                while let Some(key) = s.urgent.pop_front().or_else(|| s.order.pop_front()) {
                    // Already handed out from the other lane.
                    let Some(since) = s.queued.remove(&key) else {
                        continue;
                    };
                    s.active.insert(key.clone());
                    if !s.queued.is_empty() {
                        self.notify.notify_one();
                    }
                    return (key, since);
                }
            }
            notified.await;
        }
    }

    /// Releases `key` after a reconcile. `ok` resets its backoff; a failure
    /// returns the delay before the retry the caller should schedule.
    pub fn done(&self, key: &K, ok: bool) -> Option<Duration> {
        let mut s = self.lock();
        s.active.remove(key);
        let backoff = if ok {
            s.failures.remove(key);
            None
        } else {
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            Some(backoff(*n))
        };
        if let Some(since) = s.dirty.remove(key)
            && !s.queued.contains_key(key)
        {
            s.queued.insert(key.clone(), since);
            s.order.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
        backoff
    }
}

/// Delay before retry number `failures` (1-based): [`BASE_BACKOFF`] doubled
/// per earlier failure, capped at [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    BASE_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_keys_added_while_active() {
        let q = Queue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let (k, _) = q.next().await;
        assert_eq!(k, "a");
        q.add("a");
        assert_eq!(q.len(), 1, "a is held, so only remembered");
        assert_eq!(q.done(&"a", true), None);
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await.0, "b");
        assert_eq!(q.next().await.0, "a");
    }

    #[tokio::test]
    async fn urgent_keys_come_first_and_once() {
        let q = Queue::new();
        q.add("a");
        q.add("b");
        q.add_urgent("c");
        q.add_urgent("b");
        assert_eq!(q.len(), 3);
        let mut got = Vec::new();
        for _ in 0..3 {
            let (k, _) = q.next().await;
            q.done(&k, true);
            got.push(k);
        }
        assert_eq!(got, ["c", "b", "a"]);
        assert!(q.is_empty());
        let none = tokio::time::timeout(Duration::from_millis(50), q.next()).await;
        assert!(none.is_err(), "b was not handed out twice");
    }

    #[tokio::test]
    async fn one_timer_per_key_unless_sooner() {
        let q = Arc::new(Queue::new());
        for _ in 0..100 {
            q.add_after("a", Duration::from_secs(3000));
        }
        assert_eq!(q.delayed_len(), 1);
        q.add_after("a", Duration::from_millis(10));
        q.add_after("b", Duration::from_millis(20));
        assert_eq!(q.delayed_len(), 2);
        let next = || tokio::time::timeout(Duration::from_secs(10), q.next());
        let mut got = vec![next().await.unwrap().0, next().await.unwrap().0];
        got.sort();
        assert_eq!(got, ["a", "b"], "the sooner timer of a fired");
        assert_eq!(q.delayed_len(), 0, "a's far timer was superseded");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), BASE_BACKOFF);
        assert_eq!(backoff(2), BASE_BACKOFF * 2);
        assert_eq!(backoff(40), MAX_BACKOFF);
        let q = Queue::new();
        assert_eq!(q.done(&1, false), Some(BASE_BACKOFF));
        assert_eq!(q.done(&1, false), Some(BASE_BACKOFF * 2));
        assert_eq!(q.done(&1, true), None);
        assert_eq!(q.done(&1, false), Some(BASE_BACKOFF));
    }
}
