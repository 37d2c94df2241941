//! Fair limits on requests in flight.
//!
//! kube-apiserver bounds the requests it serves at once, read-only
//! (`get`, `list`, `watch`) and mutating separately
//! (`--max-requests-inflight`, `--max-mutating-requests-inflight`;
//! k8s.io/apiserver pkg/server/filters/maxinflight.go), and with API
//! Priority and Fairness queues what does not fit, fairly between flows,
//! before rejecting it (pkg/util/flowcontrol/fairqueuing). This is the
//! simple form of both:
//!
//! * each class has a number of seats; a request takes one while served;
//! * when none is free, the request waits in its user's queue; a freed seat
//!   goes to the next user in turn (round robin over the users waiting), so
//!   a client in a hot loop holds at most its share while another user's
//!   requests keep being served;
//! * a user's queue holds at most `queue_length_limit` requests and a
//!   request waits at most `queue_wait`; beyond either it gets kube's
//!   answer: `429`, `Retry-After: 1`, `Too many requests, please try again
//!   later.`;
//! * long-running requests (`watch`, `proxy`, and the `attach`, `exec`,
//!   `log`, `portforward` and `proxy` subresources, as kube's
//!   `BasicLongRunningRequestCheck`) take no seat, and neither do members
//!   of `system:masters`, whom kube-apiserver always answers.

use crate::filters::authorization::rbac::Request as Attributes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The bounds, as kube-apiserver's flags (defaults: 400 read-only, 200
/// mutating; API Priority and Fairness's queue length limit, 50, and its
/// default wait, 15 s).
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Read-only requests served at once; 0: no limit.
    pub max_requests_inflight: usize,
    /// Mutating requests served at once; 0: no limit.
    pub max_mutating_requests_inflight: usize,
    /// Requests one user may have waiting in one class.
    pub queue_length_limit: usize,
    /// Longest a request waits for a seat before its `429`.
    pub queue_wait: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            queue_length_limit: 50,
            queue_wait: Duration::from_secs(15),
        }
    }
}

/// Why a request was not admitted: answered with kube's `429`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRequests;

/// The limits of one server: one class for read-only requests, one for
/// mutating ones.
#[derive(Debug)]
pub struct Limits {
    read_only: Option<Arc<Class>>,
    mutating: Option<Arc<Class>>,
    queue_wait: Duration,
}

/// A seat held while a request is served; dropping it hands the seat to
/// the next user waiting, or frees it.
#[derive(Debug)]
pub struct Seat {
    class: Option<Arc<Class>>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(class) = self.class.take() {
            class.release();
        }
    }
}

#[derive(Debug)]
struct Class {
    seats: usize,
    queue_length_limit: usize,
    state: Mutex<ClassState>,
}

#[derive(Debug, Default)]
struct ClassState {
    executing: usize,
    /// The users waiting, in the order their turn comes, each with its
    /// requests in arrival order.
    queues: VecDeque<(String, VecDeque<oneshot::Sender<Seat>>)>,
}

impl Class {
    fn new(seats: usize, queue_length_limit: usize) -> Option<Arc<Class>> {
        (seats > 0).then(|| {
            Arc::new(Class {
                seats,
                queue_length_limit,
                state: Mutex::new(ClassState::default()),
            })
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClassState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A seat now, or the receiving end of this user's place in line.
    fn enqueue(
        self: &Arc<Self>,
        user: &str,
    ) -> Result<Result<Seat, oneshot::Receiver<Seat>>, TooManyRequests> {
        let mut state = self.lock();
        if state.executing < self.seats && state.queues.is_empty() {
            state.executing += 1;
            return Ok(Ok(Seat {
                class: Some(self.clone()),
            }));
        }
        let at = match state.queues.iter().position(|(u, _)| u == user) {
            Some(at) => at,
            None => {
                state.queues.push_back((user.to_string(), VecDeque::new()));
                state.queues.len() - 1
            }
        };
        let queue = &mut state.queues[at].1;
        // Requests that stopped waiting hold no place.
        queue.retain(|tx| !tx.is_closed());
        if queue.len() >= self.queue_length_limit {
            if queue.is_empty() {
                state.queues.remove(at);
            }
            return Err(TooManyRequests);
        }
        let (tx, rx) = oneshot::channel();
        queue.push_back(tx);
        Ok(Err(rx))
    }

    /// Hands a freed seat to the next user in turn, or frees it. A waiter
    /// that gave up is skipped; one that gives up after receiving the seat
    /// drops it, which comes back here.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self.lock();
                match state.queues.pop_front() {
                    None => {
                        state.executing -= 1;
                        return;
                    }
                    Some((user, mut waiting)) => {
                        let next = waiting.pop_front();
                        if !waiting.is_empty() {
                            state.queues.push_back((user, waiting));
                        }
                        next
                    }
                }
            };
            let Some(tx) = next else { continue };
            let seat = Seat {
                class: Some(self.clone()),
            };
            match tx.send(seat) {
                Ok(()) => return,
                // The waiter is gone: the seat is still ours to hand on.
                Err(mut seat) => {
                    seat.class = None;
                }
            }
        }
    }
}

impl Limits {
    /// Limits with `config`'s bounds.
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            read_only: Class::new(config.max_requests_inflight, config.queue_length_limit),
            mutating: Class::new(
                config.max_mutating_requests_inflight,
                config.queue_length_limit,
            ),
            queue_wait: config.queue_wait,
        }
    }

    /// Requests holding a seat now: `(read-only, mutating)` (what
    /// kube-apiserver reports as `apiserver_current_inflight_requests`).
    pub fn executing(&self) -> (usize, usize) {
        let executing = |c: &Option<Arc<Class>>| c.as_ref().map_or(0, |c| c.lock().executing);
        (executing(&self.read_only), executing(&self.mutating))
    }

    /// Admits a request of `user` in `groups` with `attributes`: `None`
    /// when it takes no seat (long-running, `system:masters`, or its class
    /// unlimited), a [`Seat`] to hold while serving it, or
    /// [`TooManyRequests`] when its user's queue is full or its wait ran
    /// out.
    ///
    /// # Errors
    /// [`TooManyRequests`], for kube's `429`.
    pub async fn admit(
        &self,
        user: &str,
        groups: &[String],
        attributes: &Attributes,
    ) -> Result<Option<Seat>, TooManyRequests> {
        if is_long_running(attributes) || groups.iter().any(|g| g == "system:masters") {
            return Ok(None);
        }
        let class = if is_mutating(attributes) {
            &self.mutating
        } else {
            &self.read_only
        };
        let Some(class) = class else { return Ok(None) };
        let mut rx = match class.enqueue(user)? {
            Ok(seat) => return Ok(Some(seat)),
            Err(rx) => rx,
        };
        tokio::select! {
            seat = &mut rx => seat.map(Some).map_err(|_| TooManyRequests),
            () = tokio::time::sleep(self.queue_wait) => {
                // A seat sent in the same instant is taken, not lost.
                rx.close();
                rx.try_recv().map(Some).map_err(|_| TooManyRequests)
            }
        }
    }
}

/// Whether a request is long-running (kube's `BasicLongRunningRequestCheck`
/// with kube-apiserver's verbs `watch`, `proxy` and subresources `attach`,
/// `exec`, `proxy`, `log`, `portforward`).
pub fn is_long_running(attributes: &Attributes) -> bool {
    match attributes {
        Attributes::Resource {
            verb, subresource, ..
        } => {
            matches!(verb.as_str(), "watch" | "proxy")
                || matches!(
                    subresource.as_str(),
                    "attach" | "exec" | "proxy" | "log" | "portforward"
                )
        }
        Attributes::NonResource { .. } => false,
    }
}

/// Whether a request counts as mutating: every verb but `get`, `list` and
/// `watch` (maxinflight.go's `nonMutatingRequestVerbs`).
pub fn is_mutating(attributes: &Attributes) -> bool {
    let verb = match attributes {
        Attributes::Resource { verb, .. } | Attributes::NonResource { verb, .. } => verb,
    };
    !matches!(verb.as_str(), "get" | "list" | "watch")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Attributes {
        crate::filters::authorization::attributes::of(
            "GET",
            &["api", "v1", "pods"],
            "/api/v1/pods",
            None,
        )
    }

    fn limits(seats: usize, queue: usize, wait_ms: u64) -> Limits {
        Limits::new(&LimitsConfig {
            max_requests_inflight: seats,
            max_mutating_requests_inflight: seats,
            queue_length_limit: queue,
            queue_wait: Duration::from_millis(wait_ms),
        })
    }

    #[test]
    fn long_running_and_mutating_follow_kube() {
        let at = |method: &str, path: &str, query: Option<&str>| {
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            crate::filters::authorization::attributes::of(method, &segments, path, query)
        };
        assert!(is_long_running(&at(
            "GET",
            "/api/v1/pods",
            Some("watch=true")
        )));
        assert!(is_long_running(&at("GET", "/api/v1/watch/pods", None)));
        assert!(is_long_running(&at(
            "POST",
            "/api/v1/namespaces/d/pods/p/exec",
            None
        )));
        assert!(is_long_running(&at(
            "GET",
            "/api/v1/namespaces/d/pods/p/log",
            None
        )));
        assert!(!is_long_running(&at("GET", "/api/v1/pods", None)));
        assert!(!is_long_running(&at("GET", "/metrics", None)));
        assert!(!is_mutating(&at("GET", "/api/v1/pods", None)));
        assert!(!is_mutating(&at("GET", "/healthz", None)));
        assert!(is_mutating(&at("POST", "/api/v1/namespaces/d/pods", None)));
        assert!(is_mutating(&at(
            "DELETE",
            "/api/v1/namespaces/d/pods",
            None
        )));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_and_masters_pass() {
        let limits = limits(1, 1, 60_000);
        let _held = limits.admit("flood", &[], &list()).await.unwrap().unwrap();
        let limits = Arc::new(limits);
        let waiting = {
            let limits = limits.clone();
            tokio::spawn(async move {
                limits
                    .admit("flood", &[], &list())
                    .await
                    .map(|s| s.is_some())
            })
        };
        tokio::task::yield_now().await;
        while limits.read_only.as_ref().unwrap().lock().queues.is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            limits.admit("flood", &[], &list()).await.unwrap_err(),
            TooManyRequests
        );
        let masters = ["system:masters".to_string()];
        assert!(
            limits
                .admit("admin", &masters, &list())
                .await
                .unwrap()
                .is_none()
        );
        drop(_held);
        assert!(waiting.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn a_wait_runs_out_and_leaks_no_seat() {
        let limits = limits(1, 10, 20);
        let held = limits.admit("a", &[], &list()).await.unwrap().unwrap();
        assert_eq!(
            limits.admit("b", &[], &list()).await.unwrap_err(),
            TooManyRequests
        );
        drop(held);
        let state = limits.read_only.as_ref().unwrap().lock();
        assert_eq!(state.executing, 0, "the seat is free again");
        assert!(state.queues.is_empty());
    }

    #[tokio::test]
    async fn freed_seats_go_round_robin_between_users() {
        let limits = Arc::new(limits(1, 100, 60_000));
        let held = limits.admit("flood", &[], &list()).await.unwrap().unwrap();
        let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        // The flooder queues five requests, then the other user one.
        for user in ["flood", "flood", "flood", "flood", "flood", "other"] {
            let queued_by = limits.clone();
            let order_tx = order_tx.clone();
            tasks.push(tokio::spawn(async move {
                let seat = queued_by.admit(user, &[], &list()).await.unwrap();
                order_tx.send(user).unwrap();
                drop(seat);
            }));
            // Queue in this order.
            loop {
                let queued: usize = limits
                    .read_only
                    .as_ref()
                    .unwrap()
                    .lock()
                    .queues
                    .iter()
                    .map(|(_, q)| q.len())
                    .sum();
                if queued == tasks.len() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        drop(order_tx);
        let mut order = Vec::new();
        while let Some(user) = order_rx.recv().await {
            order.push(user);
        }
        let other = order.iter().position(|u| *u == "other").unwrap();
        assert!(
            other <= 1,
            "the other user is served second at the latest: {order:?}"
        );
        let state = limits.read_only.as_ref().unwrap().lock();
        assert_eq!(state.executing, 0);
    }
}
