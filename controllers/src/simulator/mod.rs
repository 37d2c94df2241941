//! A simulated node: a scheduler and kubelet in miniature, for tests and
//! local hosts without a real node.
//!
//! [`NodeSimulator`] registers a Node and then, for every pod:
//!
//! * unscheduled (no `spec.nodeName`, default scheduler): binds it to the
//!   node through the `pods/binding` subresource, as kube-scheduler does;
//! * assigned to the node and not yet running: reports it `Running` through
//!   the `pods/status` subresource, as a kubelet does once containers
//!   started: `startTime`, `hostIP`, a `podIP` from [`NodeSimulator::pod_cidr_prefix`],
//!   `containerStatuses` (running, started, ready) and the conditions
//!   `PodReadyToStartContainers`, `Initialized`, `ContainersReady`, `Ready`
//!   and `PodScheduled`; with a [`NodeSimulator::ready_delay`] the pod is
//!   first Running but not Ready, and turns Ready after the delay;
//! * Running with ephemeral containers that have no status yet (added by
//!   `kubectl debug`): reports them running;
//! * assigned to the node, Running, and meant to finish (see
//!   [`exit_of`]): after its run time, reports it `Succeeded` (exit code 0)
//!   or `Failed` (any other code) with terminated container statuses, as a
//!   kubelet does when the containers of a `restartPolicy: Never` pod exit;
//! * assigned to the node and being deleted (graceful deletion): deletes it
//!   with grace period 0, as a kubelet does once containers stopped.
//!
//! Pods finish when they carry the annotation [`EXIT_CODE_ANNOTATION`]
//! (optionally with [`RUN_SECONDS_ANNOTATION`]), or, so that plain
//! `kubectl create job x --image=busybox -- sh -c 'exit 1'` works, when
//! their `restartPolicy` is not `Always` and the first container's command
//! line is `sh -c 'exit N'` (also `/bin/sh`, `bash`; `true`/`false` too).
//! Containers are never restarted: an `OnFailure` pod whose code is non-zero
//! is reported `Failed` as well.
//!
//! No container runs; nothing else of a kubelet (probes, volumes, leases)
//! is simulated. A pod whose PersistentVolumeClaims are not all Bound is not
//! bound to the node; [`storage`] plays the host's default StorageClass and
//! its provisioner, which bind them. [`ingress`] plays the host's ingress
//! controller publishing the node's address on every Ingress.

pub mod ingress;
pub mod storage;

use crate::{Error, Result};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How a simulated node behaves.
#[derive(Debug, Clone)]
pub struct NodeSimulator {
    /// Name of the Node registered and bound to.
    pub node_name: String,
    /// The node's InternalIP (reported as each pod's `hostIP`).
    pub node_ip: String,
    /// First two octets of pod IPs (`10.244` gives 10.244.0.1, 10.244.0.2, …).
    pub pod_cidr_prefix: String,
    /// Bind pods that no scheduler placed yet.
    pub bind_unscheduled: bool,
    /// How long a started pod stays Running but not Ready.
    pub ready_delay: Duration,
    /// How long a finishing pod (see [`exit_of`]) runs before its containers
    /// exit, unless its [`RUN_SECONDS_ANNOTATION`] says otherwise.
    pub run_duration: Duration,
    /// The default StorageClass registered and provisioned for (see
    /// [`storage`]); `None` for no storage.
    pub storage_class: Option<String>,
}

/// Annotation making a simulated pod's containers exit with this code
/// (decimal) after the run time.
pub const EXIT_CODE_ANNOTATION: &str = "sim.vkube.dev/exit-code";

/// Annotation giving a finishing simulated pod's run time in seconds
/// (decimal, fractions allowed), overriding [`NodeSimulator::run_duration`].
pub const RUN_SECONDS_ANNOTATION: &str = "sim.vkube.dev/run-seconds";

/// Whether and how a pod's containers exit on the simulated node: the exit
/// code and the run time (from `sim` unless annotated), or `None` for pods
/// that run forever. See the module docs for the rules.
pub fn exit_of(sim: &NodeSimulator, pod: &Pod) -> Option<(i32, Duration)> {
    let ann = pod.metadata.annotations.as_ref();
    let run = ann
        .and_then(|a| a.get(RUN_SECONDS_ANNOTATION))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(sim.run_duration, Duration::from_secs_f64);
    if let Some(code) = ann
        .and_then(|a| a.get(EXIT_CODE_ANNOTATION))
        .and_then(|s| s.trim().parse().ok())
    {
        return Some((code, run));
    }
    let spec = pod.spec.as_ref()?;
    if matches!(spec.restart_policy.as_deref(), None | Some("Always")) {
        return None;
    }
    let c = spec.containers.first()?;
    let argv: Vec<&str> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(String::as_str)
        .collect();
    let shells = ["sh", "/bin/sh", "bash", "/bin/bash"];
    let script = match argv.as_slice() {
        [sh, "-c", script] if shells.contains(sh) => script.trim(),
        [one] => one.trim(),
        _ => return None,
    };
    let code = match script {
        "true" | "/bin/true" => 0,
        "false" | "/bin/false" => 1,
        s => s.strip_prefix("exit")?.trim().parse().ok()?,
    };
    Some((code, run))
}

impl Default for NodeSimulator {
    fn default() -> Self {
        Self {
            node_name: "vkube-sim-node".into(),
            node_ip: "10.0.0.10".into(),
            pod_cidr_prefix: "10.244".into(),
            bind_unscheduled: true,
            ready_delay: Duration::ZERO,
            run_duration: Duration::from_millis(500),
            storage_class: Some("standard".into()),
        }
    }
}

struct Ctx {
    client: Client,
    sim: NodeSimulator,
    next_ip: AtomicU32,
}

impl NodeSimulator {
    /// The Node object registered on start: Ready, with capacity for 110
    /// pods and the usual well-known labels.
    pub fn node(&self) -> Node {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "vkube-simulated",
                },
            },
            "status": {
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "addresses": [
                    {"type": "InternalIP", "address": self.node_ip},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "vkube simulated node is posting ready status",
                    "lastHeartbeatTime": Timestamp::now().to_string(),
                    "lastTransitionTime": Timestamp::now().to_string(),
                }],
                "nodeInfo": {
                    "kubeletVersion": "v1.34.0-vkube-sim", "kubeProxyVersion": "",
                    "operatingSystem": "linux", "architecture": "amd64",
                    "containerRuntimeVersion": "vkube-sim://0", "kernelVersion": "",
                    "osImage": "vkube simulated node", "machineID": "", "systemUUID": "",
                    "bootID": "",
                },
            },
        }))
        .expect("a valid Node")
    }

    /// Registers the node (an existing one is kept) and runs until the
    /// process ends. Fails only if the node cannot be registered.
    pub async fn run(self, client: Client) -> Result<()> {
        let nodes: Api<Node> = Api::all(client.clone());
        match nodes.create(&PostParams::default(), &self.node()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let storage = {
            let (sim, client) = (self.clone(), client.clone());
            async move {
                if let Err(e) = storage::run(&sim, client).await {
                    tracing::warn!(error = %e, "simulated storage stopped");
                }
            }
        };
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            sim: self.clone(),
            next_ip: AtomicU32::new(1),
        });
        let ingresses = ingress::run(client.clone(), self.node_ip.clone());
        let pods = Controller::new(Api::<Pod>::all(client), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| futures::future::ready(()));
        futures::join!(storage, pods, ingresses);
        Ok(())
    }

    /// Starts [`NodeSimulator::run`] on the current runtime.
    pub fn spawn(self, client: Client) -> tokio::task::JoinHandle<Result<()>> {
        tokio::spawn(self.run(client))
    }
}

/// What the simulated node does next for one pod.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing (another node's pod, or already Running and Ready).
    None,
    /// Bind it to the node.
    Bind,
    /// Report it Running; `ready` says whether also Ready.
    Start {
        /// Report the Ready condition True.
        ready: bool,
    },
    /// Report it Ready (it has been Running for the ready delay).
    MakeReady,
    /// Report its ephemeral containers without a status running (they
    /// were added through `pods/ephemeralcontainers`, e.g. `kubectl debug`).
    StartEphemeral,
    /// Wait this long, then look again.
    Wait(Duration),
    /// Finish its graceful deletion.
    Delete,
    /// Its containers exited with this code: report it Succeeded or Failed.
    Finish {
        /// The containers' exit code.
        exit_code: i32,
    },
}

/// Decides the next [`Step`] for `pod` on the node `sim` (pure).
pub fn step(sim: &NodeSimulator, pod: &Pod, now: Timestamp) -> Step {
    let spec = pod.spec.as_ref();
    let node = spec.and_then(|s| s.node_name.as_deref()).unwrap_or("");
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if node.is_empty() {
        let scheduler = spec.and_then(|s| s.scheduler_name.as_deref());
        let ours = matches!(scheduler, None | Some("" | "default-scheduler"));
        return if sim.bind_unscheduled && ours && pod.metadata.deletion_timestamp.is_none() {
            Step::Bind
        } else {
            Step::None
        };
    }
    if node != sim.node_name {
        return Step::None;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Step::Delete;
    }
    if matches!(phase, "Succeeded" | "Failed") {
        return Step::None;
    }
    if phase != "Running" {
        return Step::Start {
            ready: sim.ready_delay.is_zero(),
        };
    }
    let with_status: Vec<&str> = status
        .and_then(|s| s.ephemeral_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    if spec
        .and_then(|s| s.ephemeral_containers.as_ref())
        .into_iter()
        .flatten()
        .any(|c| !with_status.contains(&c.name.as_str()))
    {
        return Step::StartEphemeral;
    }
    let started = status
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0);
    if let Some((exit_code, run)) = exit_of(sim, pod) {
        let at = started + jiff::SignedDuration::try_from(run).unwrap_or_default();
        return if at <= now {
            Step::Finish { exit_code }
        } else {
            Step::Wait(Duration::try_from(at.duration_since(now)).unwrap_or_default())
        };
    }
    if crate::util::is_pod_ready(pod) {
        return Step::None;
    }
    let at = started + jiff::SignedDuration::try_from(sim.ready_delay).unwrap_or_default();
    if at <= now {
        Step::MakeReady
    } else {
        Step::Wait(Duration::try_from(at.duration_since(now)).unwrap_or_default())
    }
}

fn running_status(ctx: &Ctx, pod: &Pod, ready: bool, now: Timestamp) -> serde_json::Value {
    let sim = &ctx.sim;
    let status = pod.status.as_ref();
    let start = status
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0)
        .to_string();
    let ip = match status.and_then(|s| s.pod_ip.clone()) {
        Some(ip) => ip,
        None => {
            let n = ctx.next_ip.fetch_add(1, Ordering::Relaxed);
            format!("{}.{}.{}", sim.pod_cidr_prefix, (n >> 8) & 0xff, n & 0xff)
        }
    };
    let now_s = now.to_string();
    let flag = if ready { "True" } else { "False" };
    let cond = |t: &str, s: &str| json!({"type": t, "status": s, "lastTransitionTime": now_s});
    let containers: Vec<_> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "containerID": format!("vkube-sim://{}-{}", pod.uid().unwrap_or_default(), c.name),
                "ready": ready,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": start}},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Running",
        "hostIP": sim.node_ip,
        "hostIPs": [{"ip": sim.node_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": start,
        "qosClass": status.and_then(|s| s.qos_class.clone()).unwrap_or_else(|| "BestEffort".into()),
        "conditions": [
            cond("PodReadyToStartContainers", "True"),
            cond("Initialized", "True"),
            cond("Ready", flag),
            cond("ContainersReady", flag),
            cond("PodScheduled", "True"),
        ],
        "containerStatuses": containers,
    }})
}

/// The ephemeral container statuses of a running pod: the existing ones
/// kept, the others running since `now`.
fn ephemeral_status(pod: &Pod, now: Timestamp) -> serde_json::Value {
    let existing: Vec<k8s_openapi::api::core::v1::ContainerStatus> = pod
        .status
        .as_ref()
        .and_then(|s| s.ephemeral_container_statuses.clone())
        .unwrap_or_default();
    let mut out: Vec<serde_json::Value> = existing
        .iter()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect();
    for c in pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .into_iter()
        .flatten()
    {
        if existing.iter().any(|s| s.name == c.name) {
            continue;
        }
        out.push(json!({
            "name": c.name,
            "image": c.image.clone().unwrap_or_default(),
            "imageID": "",
            "containerID": format!("vkube-sim://{}-{}", pod.uid().unwrap_or_default(), c.name),
            "ready": false,
            "restartCount": 0,
            "state": {"running": {"startedAt": now.to_string()}},
        }));
    }
    json!({"status": {"ephemeralContainerStatuses": out}})
}

/// The status of a pod whose containers all exited with `exit_code`.
fn finished_status(pod: &Pod, exit_code: i32, now: Timestamp) -> serde_json::Value {
    let status = pod.status.as_ref();
    let start = status
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0)
        .to_string();
    let now_s = now.to_string();
    let (phase, reason) = if exit_code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let cond = |t: &str, s: &str, r: Option<&str>| json!({"type": t, "status": s, "lastTransitionTime": now_s, "reason": r});
    let containers: Vec<_> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "containerID": format!("vkube-sim://{}-{}", pod.uid().unwrap_or_default(), c.name),
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"terminated": {
                    "exitCode": exit_code, "reason": reason,
                    "startedAt": start, "finishedAt": now_s,
                    "containerID": format!("vkube-sim://{}-{}", pod.uid().unwrap_or_default(), c.name),
                }},
            })
        })
        .collect();
    json!({"status": {
        "phase": phase,
        "conditions": [
            cond("PodReadyToStartContainers", "False", None),
            cond("Initialized", "True", None),
            cond("Ready", "False", Some("PodCompleted")),
            cond("ContainersReady", "False", Some("PodCompleted")),
            cond("PodScheduled", "True", None),
        ],
        "containerStatuses": containers,
    }})
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();
    let result = match step(&ctx.sim, &pod, now) {
        Step::None => return Ok(Action::await_change()),
        Step::Wait(d) => return Ok(Action::requeue(d)),
        Step::Bind if !storage::claims_bound(&ctx.client, &pod).await? => {
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
        Step::Bind => {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": ctx.sim.node_name},
            });
            api.create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await
            .map(|_| ())
        }
        Step::Start { ready } => api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(running_status(&ctx, &pod, ready, now)),
            )
            .await
            .map(|_| ()),
        Step::MakeReady => api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(running_status(&ctx, &pod, true, now)),
            )
            .await
            .map(|_| ()),
        Step::StartEphemeral => api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(ephemeral_status(&pod, now)),
            )
            .await
            .map(|_| ()),
        Step::Finish { exit_code } => api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(finished_status(&pod, exit_code, now)),
            )
            .await
            .map(|_| ()),
        Step::Delete => {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            api.delete(&name, &dp).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        // Gone, or already bound/changed by someone else: the watch brings news.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(pod: Arc<Pod>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(pod = %pod.name_any(), error = %err, "simulated node: pod step failed");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(node: Option<&str>, phase: Option<&str>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: phase.map(str::to_string),
                start_time: Some(Time(Timestamp::from_second(100).unwrap())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn steps_follow_scheduler_then_kubelet() {
        let sim = NodeSimulator::default();
        let now = Timestamp::from_second(101).unwrap();
        assert_eq!(step(&sim, &pod(None, Some("Pending")), now), Step::Bind);
        assert_eq!(
            step(&sim, &pod(Some("other"), Some("Pending")), now),
            Step::None
        );
        assert_eq!(
            step(&sim, &pod(Some("vkube-sim-node"), Some("Pending")), now),
            Step::Start { ready: true }
        );
        let mut deleting = pod(Some("vkube-sim-node"), Some("Running"));
        deleting.metadata.deletion_timestamp = Some(Time(now));
        assert_eq!(step(&sim, &deleting, now), Step::Delete);
        let mut custom = pod(None, None);
        custom.spec.as_mut().unwrap().scheduler_name = Some("other".into());
        assert_eq!(step(&sim, &custom, now), Step::None);
    }

    #[test]
    fn pods_meant_to_exit_finish_after_their_run_time() {
        use k8s_openapi::api::core::v1::Container;
        let sim = NodeSimulator::default();
        let job_pod = |policy: Option<&str>, cmd: &[&str]| {
            let mut p = pod(Some("vkube-sim-node"), Some("Running"));
            let spec = p.spec.as_mut().unwrap();
            spec.restart_policy = policy.map(str::to_string);
            spec.containers = vec![Container {
                name: "c".into(),
                command: Some(cmd.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }];
            p
        };
        // (restartPolicy, command) -> exit code
        let cases: &[(Option<&str>, &[&str], Option<i32>)] = &[
            (Some("Never"), &["sh", "-c", "exit 0"], Some(0)),
            (Some("Never"), &["/bin/sh", "-c", " exit 3 "], Some(3)),
            (Some("OnFailure"), &["false"], Some(1)),
            (Some("Never"), &["sh", "-c", "sleep 3600"], None),
            (None, &["sh", "-c", "exit 0"], None),
            (Some("Always"), &["true"], None),
        ];
        for (policy, cmd, want) in cases {
            let got = exit_of(&sim, &job_pod(*policy, cmd)).map(|(c, _)| c);
            assert_eq!(got, *want, "{policy:?} {cmd:?}");
        }
        let mut annotated = pod(Some("vkube-sim-node"), Some("Running"));
        annotated.metadata.annotations = Some(
            [
                (EXIT_CODE_ANNOTATION.to_string(), "2".to_string()),
                (RUN_SECONDS_ANNOTATION.to_string(), "4".to_string()),
            ]
            .into(),
        );
        assert_eq!(
            step(&sim, &annotated, Timestamp::from_second(101).unwrap()),
            Step::Wait(Duration::from_secs(3))
        );
        assert_eq!(
            step(&sim, &annotated, Timestamp::from_second(104).unwrap()),
            Step::Finish { exit_code: 2 }
        );
        let mut done = annotated.clone();
        done.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(
            step(&sim, &done, Timestamp::from_second(200).unwrap()),
            Step::None
        );
    }

    #[test]
    fn a_ready_delay_keeps_running_pods_unready_for_a_while() {
        let sim = NodeSimulator {
            ready_delay: Duration::from_secs(5),
            ..Default::default()
        };
        let running = pod(Some("vkube-sim-node"), Some("Running"));
        assert_eq!(
            step(&sim, &running, Timestamp::from_second(102).unwrap()),
            Step::Wait(Duration::from_secs(3))
        );
        assert_eq!(
            step(&sim, &running, Timestamp::from_second(105).unwrap()),
            Step::MakeReady
        );
        assert_eq!(
            step(
                &sim,
                &pod(Some("vkube-sim-node"), None),
                Timestamp::from_second(0).unwrap()
            ),
            Step::Start { ready: false }
        );
    }
}
