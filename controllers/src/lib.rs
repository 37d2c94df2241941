//! vkube-controllers: the built-in controllers of a virtual cluster, run in
//! the API server's process on kube-runtime.
//!
//! Each controller has the kube-runtime shape (`reconcile(obj, ctx) ->
//! Result<Action>` plus an error policy, state from reflector stores) around
//! a pure planner that is unit-tested with hand-built objects, and follows
//! the documented behaviour of the kube-controller-manager controller of the
//! same name:
//!
//! * [`replicaset`]: pods per ReplicaSet (and per ReplicationController,
//!   through its ReplicaSet view), expectations, status;
//! * [`deployment`]: ReplicaSets per Deployment, RollingUpdate/Recreate,
//!   revisions, rollout conditions, history cleanup;
//! * [`job`]: pods per Job until completions succeed or the Job fails,
//!   Complete/Failed conditions, ttlSecondsAfterFinished;
//! * [`cronjob`]: Jobs on a [`cron`] schedule, concurrency policy,
//!   history limits;
//! * [`statefulset`]: ordered pods with stable names and PVCs, rolling
//!   updates by ControllerRevision;
//! * [`daemonset`]: one pod per eligible node, rolling updates;
//! * [`resourcequota`]: ResourceQuota `status.hard`/`status.used`;
//! * [`gc`]: ownerReference garbage collection with background, foreground
//!   and orphan propagation;
//! * [`namespace`]: empties terminating namespaces, deletion conditions,
//!   the `kubernetes` finalizer;
//! * [`serviceaccount`]: the `default` ServiceAccount and the
//!   `kube-root-ca.crt` ConfigMap in every namespace;
//! * [`endpoints`]: v1 Endpoints of Services with a selector;
//! * [`endpointslice`]: discovery.k8s.io/v1 EndpointSlices of the same;
//! * [`disruption`]: PodDisruptionBudget status;
//! * [`podautoscaler`]: HorizontalPodAutoscalers scale their targets from
//!   `metrics.k8s.io`;
//! * [`storage_protection`]: pvc-protection and pv-protection, the
//!   finalizers that keep claims and volumes in use;
//! * [`ephemeral`]: the PersistentVolumeClaims of pods' generic ephemeral
//!   volumes;
//! * [`podgc`]: force-deletes terminated pods beyond a threshold, pods of
//!   deleted or out-of-service nodes and unscheduled terminating pods.
//!
//! Which controllers run is data: [`CONTROLLERS`], selected with
//! kube-controller-manager's `--controllers` syntax by [`select`] and
//! started by [`spawn`]. [`simulator`] is a stand-in node (scheduler plus
//! kubelet) for tests and local hosts.
#![warn(missing_docs)]

pub mod clusterrole_aggregation;
pub mod cron;
pub mod cronjob;
pub mod csrsigning;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod ephemeral;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod podautoscaler;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod serviceaccount;
pub mod simulator;
pub mod statefulset;
pub mod storage_protection;
pub mod util;

use futures::future::BoxFuture;
use kube::Client;
use std::sync::Arc;

/// A controller failure (reported by the error policy, then retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// An object lacks something the controller needs.
    #[error("{0}")]
    Invalid(String),
}

/// Result of a reconcile.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One registered controller.
pub struct ControllerDef {
    /// Name used by `--controllers` (kube-controller-manager's short name).
    pub name: &'static str,
    /// Other names accepted for it (kube-controller-manager's current
    /// `*-controller` names).
    pub aliases: &'static [&'static str],
    /// The `kube-system` service account it acts as, whose
    /// `system:controller:NAME` ClusterRole bounds what it may do
    /// (kube-controller-manager's name for it with
    /// `--use-service-account-credentials`, as kubeadm runs it).
    pub service_account: &'static str,
    /// Whether `*` includes it.
    pub enabled_by_default: bool,
    /// Runs the controller until the process ends.
    pub start: fn(Client) -> BoxFuture<'static, ()>,
}

/// Every controller vkube can run, in start order.
pub static CONTROLLERS: &[ControllerDef] = &[
    ControllerDef {
        name: "deployment",
        aliases: &["deployment-controller"],
        service_account: "deployment-controller",
        enabled_by_default: true,
        start: |c| Box::pin(deployment::run(c)),
    },
    ControllerDef {
        name: "replicaset",
        aliases: &["replicaset-controller"],
        service_account: "replicaset-controller",
        enabled_by_default: true,
        start: |c| Box::pin(replicaset::run(c)),
    },
    ControllerDef {
        name: "garbagecollector",
        aliases: &["garbage-collector-controller"],
        service_account: "generic-garbage-collector",
        enabled_by_default: true,
        start: |c| Box::pin(gc::run(c)),
    },
    ControllerDef {
        name: "replicationcontroller",
        aliases: &["replicationcontroller-controller"],
        service_account: "replication-controller",
        enabled_by_default: true,
        start: |c| Box::pin(replicaset::run_replication_controllers(c)),
    },
    ControllerDef {
        name: "namespace",
        aliases: &["namespace-controller"],
        service_account: "namespace-controller",
        enabled_by_default: true,
        start: |c| Box::pin(namespace::run(c)),
    },
    ControllerDef {
        name: "serviceaccount",
        aliases: &["serviceaccount-controller"],
        service_account: "service-account-controller",
        enabled_by_default: true,
        start: |c| Box::pin(serviceaccount::run_service_accounts(c)),
    },
    ControllerDef {
        name: "root-ca-cert-publisher",
        aliases: &["root-ca-certificate-publisher-controller"],
        service_account: "root-ca-cert-publisher",
        enabled_by_default: true,
        start: |c| Box::pin(serviceaccount::run_root_ca_publisher(c)),
    },
    ControllerDef {
        name: "endpoint",
        aliases: &["endpoints-controller"],
        service_account: "endpoint-controller",
        enabled_by_default: true,
        start: |c| Box::pin(endpoints::run(c)),
    },
    ControllerDef {
        name: "disruption",
        aliases: &["disruption-controller"],
        service_account: "disruption-controller",
        enabled_by_default: true,
        start: |c| Box::pin(disruption::run(c)),
    },
    ControllerDef {
        name: "pvc-protection",
        aliases: &["persistentvolumeclaim-protection-controller"],
        service_account: "pvc-protection-controller",
        enabled_by_default: true,
        start: |c| Box::pin(storage_protection::run_pvc_protection(c)),
    },
    ControllerDef {
        name: "pv-protection",
        aliases: &["persistentvolume-protection-controller"],
        service_account: "pv-protection-controller",
        enabled_by_default: true,
        start: |c| Box::pin(storage_protection::run_pv_protection(c)),
    },
    ControllerDef {
        name: "horizontalpodautoscaling",
        aliases: &["horizontal-pod-autoscaler-controller"],
        service_account: "horizontal-pod-autoscaler",
        enabled_by_default: true,
        start: |c| Box::pin(podautoscaler::run(c)),
    },
    ControllerDef {
        name: "ephemeral-volume",
        aliases: &["ephemeral-volume-controller"],
        service_account: "ephemeral-volume-controller",
        enabled_by_default: true,
        start: |c| Box::pin(ephemeral::run(c)),
    },
    ControllerDef {
        name: "endpointslice",
        aliases: &["endpointslice-controller"],
        service_account: "endpointslice-controller",
        enabled_by_default: true,
        start: |c| Box::pin(endpointslice::run(c)),
    },
    ControllerDef {
        name: "job",
        aliases: &["job-controller"],
        service_account: "job-controller",
        enabled_by_default: true,
        start: |c| Box::pin(job::run(c)),
    },
    ControllerDef {
        name: "cronjob",
        aliases: &["cronjob-controller"],
        service_account: "cronjob-controller",
        enabled_by_default: true,
        start: |c| Box::pin(cronjob::run(c)),
    },
    ControllerDef {
        name: "statefulset",
        aliases: &["statefulset-controller"],
        service_account: "statefulset-controller",
        enabled_by_default: true,
        start: |c| Box::pin(statefulset::run(c)),
    },
    ControllerDef {
        name: "daemonset",
        aliases: &["daemonset-controller"],
        service_account: "daemon-set-controller",
        enabled_by_default: true,
        start: |c| Box::pin(daemonset::run(c)),
    },
    ControllerDef {
        name: "clusterrole-aggregation",
        aliases: &["clusterrole-aggregation-controller"],
        service_account: "clusterrole-aggregation-controller",
        enabled_by_default: true,
        start: |c| Box::pin(clusterrole_aggregation::run(c)),
    },
    ControllerDef {
        name: "csrsigning",
        aliases: &["certificatesigningrequest-signing-controller"],
        service_account: "certificate-controller",
        enabled_by_default: true,
        start: |c| Box::pin(csrsigning::run(c)),
    },
    ControllerDef {
        name: "podgc",
        aliases: &["pod-garbage-collector-controller"],
        service_account: "pod-garbage-collector",
        enabled_by_default: true,
        start: |c| Box::pin(podgc::run(c)),
    },
    ControllerDef {
        name: "resourcequota",
        aliases: &["resourcequota-controller"],
        service_account: "resourcequota-controller",
        enabled_by_default: true,
        start: |c| Box::pin(resourcequota::run(c)),
    },
];

/// The controllers a `--controllers` value selects, with
/// kube-controller-manager's rules (`IsControllerEnabled`): a
/// comma-separated list where `foo` enables foo, `-foo` disables it, `*`
/// stands for every controller enabled by default, and the first entry
/// naming a controller wins. The default value is `*`; an empty value
/// selects nothing.
///
/// Errors name an entry that is no known controller (nor `*`).
pub fn select(value: &str) -> Result<Vec<&'static ControllerDef>, String> {
    let entries: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let known = |n: &str| {
        CONTROLLERS
            .iter()
            .any(|c| c.name == n || c.aliases.contains(&n))
    };
    for e in &entries {
        let n = e.strip_prefix('-').unwrap_or(e);
        if *e != "*" && !known(n) {
            let names: Vec<_> = CONTROLLERS.iter().map(|c| c.name).collect();
            return Err(format!(
                "{n:?} is not in the list of known controllers ({})",
                names.join(", ")
            ));
        }
    }
    let star = entries.contains(&"*");
    Ok(CONTROLLERS
        .iter()
        .filter(|c| {
            let named = |n: &str| n == c.name || c.aliases.contains(&n);
            for e in &entries {
                if named(e) {
                    return true;
                }
                if e.strip_prefix('-').is_some_and(named) {
                    return false;
                }
            }
            star && c.enabled_by_default
        })
        .collect())
}

/// Running controllers; dropping it (or [`Running::shutdown`]) stops them.
pub struct Running {
    tasks: tokio::task::JoinSet<()>,
    /// Names of the controllers started.
    pub names: Vec<&'static str>,
    /// The controllers whose task has ended (they run until the process
    /// ends, so any is a failure).
    stopped: Arc<StopState>,
}

/// Which controllers have stopped, and whether [`Running::shutdown`] is
/// stopping them.
#[derive(Default)]
struct StopState {
    stopped: std::sync::Mutex<Vec<&'static str>>,
    closing: std::sync::atomic::AtomicBool,
}

impl Running {
    /// A health check: `Err` naming the controllers that stopped.
    pub fn health_check(
        &self,
    ) -> impl Fn() -> std::result::Result<(), String> + Send + Sync + use<> {
        let state = self.stopped.clone();
        move || {
            let stopped = state.stopped.lock().unwrap_or_else(|p| p.into_inner());
            if stopped.is_empty() {
                Ok(())
            } else {
                Err(format!("controllers stopped: {}", stopped.join(", ")))
            }
        }
    }

    /// Stops every controller and waits for them to end.
    pub async fn shutdown(mut self) {
        self.stopped
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.tasks.shutdown().await;
    }
}

/// Records its controller as stopped when dropped, that is when the
/// controller's task ends for any reason (a return, a panic, or the
/// shutdown aborting it).
struct Stopped {
    name: &'static str,
    state: Arc<StopState>,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.state.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        tracing::error!(controller = self.name, "controller stopped");
        self.state
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.name);
    }
}

/// Settings some controllers need beyond a client (kube-controller-manager
/// flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// The cluster CA bundle (PEM) that root-ca-cert-publisher publishes
    /// (`--root-ca-file`); without it that controller does nothing.
    pub root_ca_pem: Option<String>,
    /// The CA csrsigning signs client certificates with
    /// (`--cluster-signing-cert-file`/`-key-file`); without it that
    /// controller does nothing.
    pub cluster_signing: Option<csrsigning::SigningCa>,
    /// Terminated pods podgc keeps (`--terminated-pod-gc-threshold`,
    /// default [`podgc::DEFAULT_TERMINATED_POD_GC_THRESHOLD`]); 0 keeps
    /// them all.
    pub terminated_pod_gc_threshold: usize,
    /// Where each controller reports its `workqueue_*` series, under its
    /// [`ControllerDef::name`] ([`measured`], [`counted`]); none: not
    /// reported.
    pub workqueue: Option<vkube_core::monitoring::WorkqueueMetrics>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            root_ca_pem: None,
            cluster_signing: None,
            terminated_pod_gc_threshold: podgc::DEFAULT_TERMINATED_POD_GC_THRESHOLD,
            workqueue: None,
        }
    }
}

impl Options {
    /// The options of controllers of a cluster whose CA is `ca_cert_pem`
    /// with key `ca_key_pem`: the CA published in namespaces and the signer
    /// of client certificates (a year at most), as kube-controller-manager
    /// is given them with `--root-ca-file` and `--cluster-signing-*`.
    pub fn for_cluster_ca(ca_cert_pem: &str, ca_key_pem: &str) -> Self {
        Self {
            root_ca_pem: Some(ca_cert_pem.to_string()),
            cluster_signing: Some(csrsigning::SigningCa {
                cert_pem: ca_cert_pem.to_string(),
                key_pem: ca_key_pem.to_string(),
                duration_seconds: csrsigning::DEFAULT_DURATION_SECONDS,
            }),
            ..Self::default()
        }
    }
}

tokio::task_local! {
    static OPTIONS: Arc<Options>;
    static QUEUE: Option<vkube_core::monitoring::QueueMetrics>;
}

/// `reconcile` with the calling controller's work queue series updated
/// around each call (to be passed to kube-runtime's `Controller::run`):
/// one `workqueue_adds_total` per reconcile started and its
/// `workqueue_work_duration_seconds`. kube-runtime's scheduler keeps its
/// queue to itself, so `workqueue_depth` and
/// `workqueue_queue_duration_seconds` are not reported for these
/// controllers (the syncer's queues report them).
pub fn measured<K, C, T, E, F, Fut>(
    mut reconcile: F,
) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, std::result::Result<T, E>>
where
    F: FnMut(Arc<K>, Arc<C>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: 'static,
    E: 'static,
{
    let queue = QUEUE.try_with(Clone::clone).ok().flatten();
    move |obj, ctx| Box::pin(counted_work(queue.clone(), reconcile(obj, ctx)))
}

/// Runs `work` as one item of `queue`: an add, then its duration.
async fn counted_work<T>(
    queue: Option<vkube_core::monitoring::QueueMetrics>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let started = std::time::Instant::now();
    if let Some(q) = &queue {
        q.added();
    }
    let out = work.await;
    if let Some(q) = &queue {
        q.worked(started.elapsed());
    }
    out
}

/// `pass` counted as one item of the calling controller's work queue
/// series (`workqueue_adds_total`, `workqueue_work_duration_seconds`), for
/// the controllers that work in passes over their caches rather than per
/// object (the garbage collector's scans, podgc's periodic collection).
pub async fn measured_pass<T>(pass: impl std::future::Future<Output = T>) -> T {
    counted_work(QUEUE.try_with(Clone::clone).ok().flatten(), pass).await
}

/// `error_policy` with each call counted as a retry of the calling
/// controller's queue (`workqueue_retries_total`): kube-runtime requeues
/// the object with the returned action.
pub fn counted<K, C, E, F>(
    error_policy: F,
) -> impl Fn(Arc<K>, &E, Arc<C>) -> kube::runtime::controller::Action
where
    F: Fn(Arc<K>, &E, Arc<C>) -> kube::runtime::controller::Action,
{
    let queue = QUEUE.try_with(Clone::clone).ok().flatten();
    move |obj, err, ctx| {
        if let Some(q) = &queue {
            q.retried();
        }
        error_policy(obj, err, ctx)
    }
}

/// The [`Options`] of the [`spawn_with`] that started the calling
/// controller (read at a controller's start; defaults outside one). A
/// task-local rather than a parameter so that [`ControllerDef::start`]
/// stays `fn(Client)` for every row of [`CONTROLLERS`].
pub fn options() -> Arc<Options> {
    OPTIONS.try_with(Arc::clone).unwrap_or_default()
}

/// Starts `controllers` on the current tokio runtime with `client` and
/// default [`Options`].
pub fn spawn(client: Client, controllers: &[&'static ControllerDef]) -> Running {
    spawn_with(client, controllers, Options::default())
}

/// Starts `controllers` on the current tokio runtime with `client`; each
/// sees `options` through [`options`].
pub fn spawn_with(
    client: Client,
    controllers: &[&'static ControllerDef],
    options: Options,
) -> Running {
    start(
        controllers.iter().map(|c| (*c, client.clone())),
        Arc::new(options),
    )
}

/// The groups of every `kube-system` service account, and so of every
/// controller's identity.
pub const SERVICE_ACCOUNT_GROUPS: [&str; 2] = [
    "system:serviceaccounts",
    "system:serviceaccounts:kube-system",
];

impl ControllerDef {
    /// The user name the controller acts as:
    /// `system:serviceaccount:kube-system:` and its
    /// [`ControllerDef::service_account`].
    pub fn user(&self) -> String {
        format!("system:serviceaccount:kube-system:{}", self.service_account)
    }
}

/// Starts `controllers`, each with the client `client_for(user, groups)`
/// gives for its own identity ([`ControllerDef::user`] in
/// [`SERVICE_ACCOUNT_GROUPS`]; an in-process client of the server, for
/// in-process controllers), so that RBAC bounds each by its own
/// `system:controller:*` role, as kube-controller-manager runs with
/// `--use-service-account-credentials`.
pub fn spawn_as_service_accounts(
    client_for: impl Fn(&str, &[&str]) -> Client,
    controllers: &[&'static ControllerDef],
    options: Options,
) -> Running {
    start(
        controllers
            .iter()
            .map(|c| (*c, client_for(&c.user(), &SERVICE_ACCOUNT_GROUPS))),
        Arc::new(options),
    )
}

fn start(
    controllers: impl IntoIterator<Item = (&'static ControllerDef, Client)>,
    options: Arc<Options>,
) -> Running {
    let mut tasks = tokio::task::JoinSet::new();
    let mut names = Vec::new();
    let stopped: Arc<StopState> = Default::default();
    for (c, client) in controllers {
        tracing::info!(controller = c.name, user = %c.user(), "starting controller");
        let queue = options.workqueue.as_ref().map(|w| w.controller(c.name));
        let run = QUEUE.scope(queue, OPTIONS.scope(options.clone(), (c.start)(client)));
        let stopped = Stopped {
            name: c.name,
            state: stopped.clone(),
        };
        tasks.spawn(async move {
            // Dropped when the task ends, returning or panicking alike.
            let _stopped = stopped;
            run.await;
        });
        names.push(c.name);
    }
    Running {
        tasks,
        names,
        stopped,
    }
}

/// A client for the kubeconfig document `yaml` (its current context).
///
/// Errors when the document does not parse or names no usable cluster.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<Client, kube::Error> {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(yaml).map_err(|e| kube::Error::Service(Box::new(e)))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| kube::Error::Service(Box::new(e)))?;
    client_from_config(config)
}

/// A client for `config` as vkube uses them: without kube-rs's in-request
/// retries of 429, 503 and 504. Every vkube caller retries on its own
/// terms (work queues and watchers with their backoff), and some 429s are
/// answers, not load: an eviction a PodDisruptionBudget forbids must reach
/// the client at once, as kube-apiserver sends it (client-go retries a 429
/// only when it carries `Retry-After`).
///
/// # Errors
/// As `kube::Client::try_from` (a TLS or proxy set-up error).
pub fn client_from_config(mut config: kube::Config) -> Result<Client, kube::Error> {
    config.default_retry = false;
    Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &str) -> Vec<&'static str> {
        select(v).unwrap().iter().map(|c| c.name).collect()
    }

    #[test]
    fn controllers_flag_follows_kube_controller_manager() {
        // Independent of the table's rows: `*` is every default controller
        // in table order, `-x` removes one wherever it appears.
        let all: Vec<&str> = CONTROLLERS
            .iter()
            .filter(|c| c.enabled_by_default)
            .map(|c| c.name)
            .collect();
        let without = |n: &str| -> Vec<&str> { all.iter().copied().filter(|x| *x != n).collect() };
        assert_eq!(
            &names("*")[..3],
            ["deployment", "replicaset", "garbagecollector"]
        );
        assert_eq!(names("*"), all);
        assert_eq!(names("*,-garbagecollector"), without("garbagecollector"));
        assert_eq!(names("replicaset"), ["replicaset"]);
        assert_eq!(names("-replicaset,*"), without("replicaset"));
        assert_eq!(names("replicaset-controller"), ["replicaset"]);
        assert!(names("").is_empty());
        let err = select("*,nope").err().unwrap();
        assert!(err.contains("\"nope\" is not in the list"), "{err}");
    }
}
