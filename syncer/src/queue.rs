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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::controller::compact::remove_shrinking;
use vkube_core::monitoring::QueueMetrics;

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
    /// Keys with a pending delayed add ([`Queue::add_after`]), with the
    /// deadline's entry in `timers`: at most one per key.
    delayed: HashMap<K, Deadline>,
    /// The pending delayed adds by deadline (ties broken by insertion
    /// order), served by one timer task: a map entry per key costs about
    /// a tenth of a sleeping task per key.
    timers: BTreeMap<Deadline, K>,
    /// Insertion counter for [`Deadline`]s.
    seq: u64,
    /// Whether the timer task has been spawned.
    timer_task: bool,
}

/// When a delayed add is due, and its insertion number (unique).
type Deadline = (tokio::time::Instant, u64);

/// A work queue of keys `K` (see the module docs). Cheap to share in an
/// `Arc`; `add` never blocks.
pub struct Queue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    /// Wakes the timer task when a deadline sooner than every pending one
    /// is added.
    timer_wake: Arc<Notify>,
    /// The client-go work queue series this queue updates, once
    /// [`Queue::monitor`]ed.
    metrics: std::sync::OnceLock<QueueMetrics>,
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
                timers: BTreeMap::new(),
                seq: 0,
                timer_task: false,
            }),
            notify: Notify::new(),
            timer_wake: Arc::new(Notify::new()),
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// Reports this queue's adds, depth, waits, work and retries in
    /// `metrics` from now on (the first call wins).
    pub fn monitor(&self, metrics: QueueMetrics) {
        let s = self.lock();
        metrics.set_depth(s.queued.len());
        let _ = self.metrics.set(metrics);
    }

    /// A key newly queued: `workqueue_adds_total` and the depth (called
    /// with the state locked, so depths are reported in order).
    fn count_add(&self, depth: usize) {
        if let Some(m) = self.metrics.get() {
            m.added();
            m.set_depth(depth);
        }
    }

    /// Records a reconcile's duration (`workqueue_work_duration_seconds`).
    pub fn worked(&self, took: Duration) {
        if let Some(m) = self.metrics.get() {
            m.worked(took);
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
        self.count_add(s.queued.len());
        if urgent {
            s.urgent.push_back(key);
        } else {
            s.order.push_back(key);
        }
        drop(s);
        self.notify.notify_one();
    }

    /// Queues `key` after `delay`. One timer task (spawned on first use;
    /// it ends when the queue is dropped) serves every key. If a delayed
    /// add of `key` is already pending with a deadline no later than this
    /// one (within `delay / 16`), nothing changes: the earlier reconcile
    /// asks for its own requeue again, as level-based reconciles do; a
    /// later pending one is replaced. So each reconcile of a long-lived
    /// object asking for a far requeue (a token refresh in 48 min) leaves
    /// one pending entry, not one more.
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        let due = tokio::time::Instant::now() + delay;
        let mut s = self.lock();
        if let Some(&(pending, _)) = s.delayed.get(&key)
            && pending <= due + delay / 16
        {
            return;
        }
        s.seq += 1;
        let deadline = (due, s.seq);
        if let Some(old) = s.delayed.insert(key.clone(), deadline) {
            s.timers.remove(&old);
        }
        s.timers.insert(deadline, key);
        let soonest = s.timers.keys().next() == Some(&deadline);
        if !s.timer_task {
            s.timer_task = true;
            tokio::spawn(run_timers(
                Arc::downgrade(self),
                Arc::clone(&self.timer_wake),
            ));
        } else if soonest {
            self.timer_wake.notify_one();
        }
    }

    /// Takes the delayed adds due at `now`; returns them with the next
    /// pending deadline.
    fn take_due(&self, now: tokio::time::Instant) -> (Vec<K>, Option<tokio::time::Instant>) {
        let mut s = self.lock();
        let mut due = Vec::new();
        while let Some(entry) = s.timers.first_entry() {
            if entry.key().0 > now {
                let next = entry.key().0;
                return (due, Some(next));
            }
            let key = entry.remove();
            remove_shrinking(&mut s.delayed, &key);
            due.push(key);
        }
        (due, None)
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
                    let Some(since) = remove_shrinking(&mut s.queued, &key) else {
                        continue;
                    };
                    if s.queued.is_empty() {
                        // A burst is over: give the lanes' peak capacity back.
                        s.urgent.shrink_to(64);
                        s.order.shrink_to(64);
                    }
                    s.active.insert(key.clone());
                    if let Some(m) = self.metrics.get() {
                        m.set_depth(s.queued.len());
                        m.taken(since.elapsed());
                    }
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
            remove_shrinking(&mut s.failures, key);
            None
        } else {
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            let n = *n;
            if let Some(m) = self.metrics.get() {
                m.retried();
            }
            Some(backoff(n))
        };
        if let Some(since) = remove_shrinking(&mut s.dirty, key)
            && !s.queued.contains_key(key)
        {
            s.queued.insert(key.clone(), since);
            self.count_add(s.queued.len());
            s.order.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
        backoff
    }
}

impl<K> Drop for Queue<K> {
    /// Wakes the timer task so that it sees the queue gone and ends.
    fn drop(&mut self) {
        self.timer_wake.notify_one();
    }
}

/// The timer task of a [`Queue`]: adds the keys whose delay is over, then
/// sleeps until the next deadline or until `wake` says a sooner one was
/// added. Holds the queue only while adding, so it ends once the queue is
/// dropped.
async fn run_timers<K: Clone + Eq + Hash + Send + 'static>(
    queue: Weak<Queue<K>>,
    wake: Arc<Notify>,
) {
    loop {
        let next = {
            let Some(q) = queue.upgrade() else { return };
            let (due, next) = q.take_due(tokio::time::Instant::now());
            for key in due {
                q.add(key);
            }
            next
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => {}
                }
            }
            // Nothing pending: wait for an add, or for the queue's drop.
            None => wake.notified().await,
        }
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

    #[tokio::test]
    async fn delayed_keys_come_in_deadline_order_and_the_timer_ends_with_the_queue() {
        let q = Arc::new(Queue::new());
        q.add_after("late", Duration::from_millis(120));
        q.add_after("soon", Duration::from_millis(40));
        q.add_after("sooner", Duration::from_millis(20));
        q.add_after("never", Duration::from_secs(3000));
        assert_eq!(q.delayed_len(), 4);
        let next = || tokio::time::timeout(Duration::from_secs(10), q.next());
        let mut got = Vec::new();
        for _ in 0..3 {
            let (k, _) = next().await.unwrap();
            q.done(&k, true);
            got.push(k);
        }
        assert_eq!(got, ["sooner", "soon", "late"]);
        assert_eq!(q.delayed_len(), 1);
        let wake = Arc::clone(&q.timer_wake);
        drop(q);
        // The timer task held only the Notify and a weak reference: once it
        // has seen the queue gone, the Notify is ours alone.
        for _ in 0..100 {
            if Arc::strong_count(&wake) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the timer task outlived its queue");
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
