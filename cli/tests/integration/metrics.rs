//! `/metrics` of a virtual cluster as Prometheus and its users see it:
//! scraped with real kubectl (`get --raw /metrics`) as an authorized user,
//! parsed with a Prometheus text parser, linted with `promtool check
//! metrics`, and read by API server recording and alerting rules of the
//! kubernetes-mixin kind under `promtool test rules`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs real kubectl with `kubeconfig`, feeding `stdin`; returns its output
/// whatever the exit status.
pub(crate) async fn kubectl_output(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    let bin = vkube_e2e::find_tool("KUBECTL", "kubectl").expect("kubectl");
    let home = kubeconfig.parent().unwrap().join("kubectl-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .args(args)
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running kubectl");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    tokio::time::timeout(vkube_e2e::COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .expect("kubectl timed out")
        .expect("kubectl output")
}

/// One scrape: its text and its samples as a Prometheus server parses them.
pub(crate) struct Scrape {
    pub(crate) text: String,
    parsed: prometheus_parse::Scrape,
}

impl Scrape {
    /// `GET /metrics` through `kubeconfig`'s credentials, with `extra`
    /// kubectl flags (e.g. impersonation).
    pub(crate) async fn take(kubeconfig: &Path, extra: &[&str]) -> Result<Scrape, String> {
        let mut args = vec!["get", "--raw", "/metrics"];
        args.extend_from_slice(extra);
        let out = kubectl_output(kubeconfig, &args, "").await;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8(out.stdout).expect("UTF-8 metrics");
        let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("a Prometheus text exposition");
        Ok(Scrape { text, parsed })
    }

    fn matching<'a>(
        &'a self,
        metric: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a prometheus_parse::Sample> + 'a {
        self.parsed.samples.iter().filter(move |s| {
            s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
    }

    /// The sum of the counter `metric`'s series with `labels` (0 if none).
    pub(crate) fn counter(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(metric, labels)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("{metric} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// The distinct values of label `label` on `metric`'s series.
    pub(crate) fn label_values(&self, metric: &str, label: &str) -> BTreeSet<String> {
        self.matching(metric, &[])
            .filter_map(|s| s.labels.get(label).map(str::to_string))
            .collect()
    }

    /// The bucket bounds of the histogram `metric`'s series with `labels`.
    fn buckets(&self, metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let sample = self
            .matching(metric, labels)
            .next()
            .unwrap_or_else(|| panic!("no {metric} {labels:?} in\n{}", self.text));
        match &sample.value {
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.less_than).collect(),
            other => panic!("{metric} is not a histogram: {other:?}"),
        }
    }
}

fn pod_template(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PodTemplate\nmetadata: {{name: {name}, namespace: default}}\n\
         template:\n  spec: {{containers: [{{name: c, image: busybox}}]}}\n"
    )
}

/// Makes requests nothing else in a cluster makes (PodTemplates: no
/// controller or syncer touches them) and checks that `/metrics` counted
/// exactly those, per verb, resource and code, with kube-apiserver's
/// buckets; returns the scrapes before and after.
pub(crate) async fn assert_counts_requests(kubeconfig: &Path) -> (Scrape, Scrape) {
    let before = Scrape::take(kubeconfig, &[]).await.expect("scraping");
    for i in 0..3 {
        let out = kubectl_output(
            kubeconfig,
            &["create", "-f", "-"],
            &pod_template(&format!("pt-{i}")),
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let again = kubectl_output(kubeconfig, &["create", "-f", "-"], &pod_template("pt-0")).await;
    assert!(
        !again.status.success(),
        "a second create of pt-0 must conflict"
    );
    let missing = kubectl_output(kubeconfig, &["get", "podtemplate", "no-such-template"], "").await;
    assert!(!missing.status.success());
    let after = Scrape::take(kubeconfig, &[]).await.expect("scraping");

    let delta = |labels: &[(&str, &str)]| {
        after.counter("apiserver_request_total", labels)
            - before.counter("apiserver_request_total", labels)
    };
    let templates = |verb, code| {
        [
            ("verb", verb),
            ("resource", "podtemplates"),
            ("group", ""),
            ("version", "v1"),
            ("code", code),
            ("component", "apiserver"),
        ]
    };
    assert_eq!(delta(&templates("POST", "201")), 3.0, "{}", after.text);
    assert_eq!(delta(&templates("POST", "409")), 1.0);
    assert_eq!(delta(&templates("GET", "404")), 1.0);
    assert_eq!(
        delta(&[("resource", "podtemplates"), ("scope", "resource")]),
        5.0,
        "every request named one object or was a create"
    );

    let mut want: Vec<f64> = apiserver_shim::metrics::REQUEST_DURATION_BUCKETS.to_vec();
    want.push(f64::INFINITY);
    assert_eq!(
        after.buckets(
            "apiserver_request_duration_seconds",
            &[("verb", "POST"), ("resource", "podtemplates")]
        ),
        want,
        "kube-apiserver's latency buckets"
    );
    (before, after)
}

/// Checks that every running controller reports client-go's work queue
/// series under its `--controllers` name, and each syncer queue
/// with its depth.
pub(crate) fn assert_workqueues(scrape: &Scrape, syncer: bool) {
    let names = scrape.label_values("workqueue_adds_total", "name");
    let defaults = vkube_controllers::CONTROLLERS
        .iter()
        .filter(|c| c.enabled_by_default);
    for c in defaults {
        assert!(
            names.contains(c.name),
            "no work queue {:?} in {names:?}",
            c.name
        );
    }
    if syncer {
        let depths = scrape.label_values("workqueue_depth", "name");
        for q in ["syncer_pod", "syncer_service", "syncer_configmap"] {
            assert!(depths.contains(q), "no depth of {q} in {depths:?}");
        }
    }
}

/// `promtool check metrics` on a scrape: exit 0 and no lint findings.
pub(crate) async fn promtool_check(scrape: &Scrape) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/install-tools.sh installs it)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(scrape.text.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Recording and alerting rules for the API server as kubernetes-mixin
/// writes them (its availability, latency and error rules read the same
/// series, labels and `job="apiserver"` selector).
const RULES: &str = r#"groups:
- name: kube-apiserver-availability.rules
  rules:
  - record: code_verb:apiserver_request_total:increase1h
    expr: sum by (code, verb) (increase(apiserver_request_total{job="apiserver",verb=~"LIST|GET|POST|PUT|PATCH|DELETE"}[1h]))
  - record: code:apiserver_request_total:increase30d
    expr: sum by (code) (code_verb:apiserver_request_total:increase1h)
- name: kube-apiserver-histogram.rules
  rules:
  - record: cluster_quantile:apiserver_request_sli_duration_seconds:histogram_quantile
    expr: histogram_quantile(0.99, sum by (le, resource) (rate(apiserver_request_sli_duration_seconds_bucket{job="apiserver",verb=~"LIST|GET",subresource!~"proxy|attach|log|exec|portforward"}[5m]))) > 0
    labels:
      quantile: "0.99"
      verb: read
- name: kubernetes-system-apiserver
  rules:
  - alert: KubeAPIErrorsHigh
    expr: sum(rate(apiserver_request_total{job="apiserver",code=~"5.."}[5m])) / sum(rate(apiserver_request_total{job="apiserver"}[5m])) > 0.03
    for: 1m
    labels:
      severity: warning
  - alert: KubeAPIDown
    expr: absent(up{job="apiserver"} == 1)
    for: 1m
    labels:
      severity: critical
  - alert: KubeAPITooManyInflight
    expr: sum(apiserver_current_inflight_requests{job="apiserver"}) > 400
    labels:
      severity: warning
"#;

/// The series of two scrapes one minute apart, as `promtool test rules`
/// input series with `job="apiserver"`: `(series, "before after")`.
fn input_series(before: &Scrape, after: &Scrape) -> Vec<(String, String)> {
    let samples = |s: &Scrape| {
        s.text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let series = match series.split_once('{') {
                    Some((name, labels)) => format!("{name}{{job=\"apiserver\",{labels}"),
                    None => format!("{series}{{job=\"apiserver\"}}"),
                };
                Some((series, value.to_string()))
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (b, a) = (samples(before), samples(after));
    a.into_iter()
        .map(|(series, value)| {
            let first = b.get(&series).cloned().unwrap_or_else(|| "0".into());
            (series, format!("{first} {value}"))
        })
        .collect()
}

/// Runs [`RULES`] under `promtool test rules` on two scrapes: the rules
/// evaluate without errors, a recording rule yields the requests the
/// workload made, and no alert fires on a healthy server.
pub(crate) async fn promtool_test_rules(before: &Scrape, after: &Scrape, dir: &Path) {
    use std::fmt::Write as _;
    std::fs::write(dir.join("rules.yaml"), RULES).unwrap();
    let mut test = String::from(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n  - series: 'up{job=\"apiserver\"}'\n    values: '1 1'\n",
    );
    for (series, values) in input_series(before, after) {
        // Single quotes in YAML: a quote inside is doubled.
        let series = series.replace('\'', "''");
        let _ = write!(test, "  - series: '{series}'\n    values: '{values}'\n");
    }
    test.push_str(
        r#"  promql_expr_test:
  - expr: sum by (code) (apiserver_request_total{resource="podtemplates",verb="POST"}) - sum by (code) (apiserver_request_total{resource="podtemplates",verb="POST"} offset 1m)
    eval_time: 1m
    exp_samples:
    - labels: '{code="201"}'
      value: 3
    - labels: '{code="409"}'
      value: 1
  - expr: count(code_verb:apiserver_request_total:increase1h{code="201",verb="POST"})
    eval_time: 1m
    exp_samples:
    - labels: '{}'
      value: 1
  alert_rule_test:
  - eval_time: 2m
    alertname: KubeAPIErrorsHigh
    exp_alerts: []
  - eval_time: 2m
    alertname: KubeAPIDown
    exp_alerts: []
  - eval_time: 2m
    alertname: KubeAPITooManyInflight
    exp_alerts: []
"#,
    );
    std::fs::write(dir.join("apiserver_test.yaml"), &test).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "apiserver_test.yaml"])
        .current_dir(dir)
        .output()
        .await
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `/metrics` refuses requests without credentials (401) and users
/// without the `system:monitoring` role (403), as kube-apiserver does.
pub(crate) async fn assert_metrics_authorization(kubeconfig: &Path, url: &str) {
    let denied = Scrape::take(kubeconfig, &["--as=jane"])
        .await
        .err()
        .expect("403");
    assert!(
        denied.contains("Forbidden") && denied.contains("cannot get path \"/metrics\""),
        "{denied}"
    );
    Scrape::take(kubeconfig, &["--as=jane", "--as-group=system:monitoring"])
        .await
        .expect("system:monitoring may scrape");
    // No credentials at all (kubectl would prompt for some): a plain
    // HTTPS client gets kube's 401 Status.
    let out = Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}", &format!("{url}/metrics")])
        .output()
        .await
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    let (status, code) = body.rsplit_once('\n').unwrap();
    assert_eq!(code, "401", "{body}");
    let status: serde_json::Value = serde_json::from_str(status).expect("a Status");
    assert_eq!(status["reason"], "Unauthorized", "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_kube_apiserver_metrics_that_prometheus_rules_read() {
    let home = tempfile::tempdir().unwrap();
    let (listen, host_listen) = (super::up::free_addr(), super::up::free_addr());
    let vc_kubeconfig = home.path().join("dev/kubeconfig");
    let log = home.path().join("up.log");
    let mut up = super::up::Up::spawn_with(
        home.path(),
        &listen,
        &host_listen,
        &[
            "--apply",
            &super::up::guestbook(),
            "--wait-timeout",
            "3s",
            "--log-format",
            "json",
            "-v",
        ],
        std::fs::File::create(&log).unwrap().into(),
    );
    up.wait_for("press Ctrl-C").await;

    let (before, after) = assert_counts_requests(&vc_kubeconfig).await;
    assert_workqueues(&after, true);
    // The guestbook's Deployments went through the deployment controller
    // and its pods through the syncer.
    assert!(after.counter("workqueue_adds_total", &[("name", "deployment")]) >= 3.0);
    assert!(after.counter("workqueue_adds_total", &[("name", "syncer_pod")]) >= 1.0);
    assert!(after.counter("vkube_syncer_reconciles_total", &[("kind", "Pod")]) >= 1.0);
    assert!(
        after.counter("apiserver_watch_events_total", &[("kind", "Pod")]) >= 1.0,
        "controllers watch pods"
    );
    assert!(
        after
            .text
            .contains("\napiserver_storage_objects{resource=\"deployments.apps\"} 3\n")
    );
    assert!(after.text.contains("\nprocess_resident_memory_bytes "));
    let mut want: Vec<f64> = apiserver_shim::metrics::STORAGE_DURATION_BUCKETS.to_vec();
    want.push(f64::INFINITY);
    assert_eq!(
        after.buckets(
            "etcd_request_duration_seconds",
            &[("operation", "create"), ("type", "podtemplates")]
        ),
        want,
        "the store's latency under kube's name"
    );
    promtool_check(&after).await;
    promtool_test_rules(&before, &after, home.path()).await;
    assert_metrics_authorization(&vc_kubeconfig, &format!("https://{listen}")).await;

    let (status, _) = up.interrupt().await;
    assert!(status.success(), "vkube up exited with {status}");

    // Every log line is one JSON object with Kubernetes' keys.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["ts"].is_f64(), "{line}");
        assert!(v["level"].is_string() && v["msg"].is_string(), "{line}");
    }
    assert!(
        log.contains("\"msg\":\"vkube apiserver listening\""),
        "{log}"
    );
}

#[test]
fn input_series_pairs_scrapes_and_adds_the_job() {
    let parse = |text: &str| Scrape {
        text: text.to_string(),
        parsed: prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap(),
    };
    let before = parse("# TYPE a_total counter\na_total{code=\"200\"} 1\n");
    let after =
        parse("# TYPE a_total counter\na_total{code=\"200\"} 4\na_total{code=\"500\"} 2\nb 7\n");
    assert_eq!(
        input_series(&before, &after),
        [
            (
                "a_total{job=\"apiserver\",code=\"200\"}".to_string(),
                "1 4".to_string()
            ),
            (
                "a_total{job=\"apiserver\",code=\"500\"}".to_string(),
                "0 2".to_string()
            ),
            ("b{job=\"apiserver\"}".to_string(), "0 7".to_string()),
        ]
    );
}
