//! `vkube list`: rows built from the host's StatefulSets labelled
//! `vkube.dev/virtual-cluster` (pure), printed as a table, JSON or YAML.

use k8s_openapi::api::apps::v1::StatefulSet;
use serde::Serialize;

/// Label on every chart object naming its virtual cluster.
pub const LABEL_VIRTUAL_CLUSTER: &str = "vkube.dev/virtual-cluster";
/// StatefulSet annotation set by `vkube pause` (value `"true"`).
pub const ANNOTATION_PAUSED: &str = "vkube.dev/paused";

/// One virtual cluster as `vkube list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The virtual cluster's name (the helm release).
    pub name: String,
    /// Host namespace.
    pub namespace: String,
    /// `Paused`, `Running` (server pod ready) or `Pending`.
    pub status: String,
    /// Whether the user's current kube context is this virtual cluster's.
    pub connected: bool,
    /// Creation time, RFC 3339.
    pub created: Option<String>,
    /// Age in kubectl's short form (`5m`, `3h`, `2d`).
    pub age: String,
}

/// Builds a row from a chart StatefulSet; `None` if it lacks the label.
/// `current_context` is the user's current kube context; `now` the time the
/// age is measured at.
pub fn row(sts: &StatefulSet, current_context: Option<&str>, now: jiff::Timestamp) -> Option<Row> {
    let name = sts
        .metadata
        .labels
        .as_ref()?
        .get(LABEL_VIRTUAL_CLUSTER)?
        .clone();
    let namespace = sts.metadata.namespace.clone().unwrap_or_default();
    let paused = sts
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_PAUSED))
        .is_some_and(|v| v == "true");
    let ready = sts
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let status = if paused {
        "Paused"
    } else if ready >= 1 {
        "Running"
    } else {
        "Pending"
    };
    let created = sts.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let context = super::kubeconfig::context_name(&name, &namespace);
    Some(Row {
        connected: current_context == Some(context.as_str()),
        status: status.into(),
        created: created.map(|t| t.to_string()),
        age: created.map_or_else(
            || "<unknown>".into(),
            |t| age(now.duration_since(t).as_secs()),
        ),
        name,
        namespace,
    })
}

/// kubectl's short age: seconds below 2 minutes, then minutes below 2
/// hours (`90m`), hours below 2 days, then days.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// An aligned table with kubectl-style headers.
pub fn table(rows: &[Row]) -> String {
    let mut cells = vec![["NAME", "NAMESPACE", "STATUS", "CONNECTED", "AGE"].map(String::from)];
    for r in rows {
        cells.push([
            r.name.clone(),
            r.namespace.clone(),
            r.status.clone(),
            if r.connected {
                "yes".into()
            } else {
                String::new()
            },
            r.age.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| cells.iter().map(|c| c[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for c in &cells {
        let line: Vec<String> = c
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_and_table() {
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "vkube-t", "namespace": "ns",
                "labels": {"vkube.dev/virtual-cluster": "t"},
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"selector": {}, "template": {}},
            "status": {"replicas": 1, "readyReplicas": 1}
        }))
        .unwrap();
        let now: jiff::Timestamp = "2026-01-01T03:00:00Z".parse().unwrap();
        let r = row(&sts, Some("vkube_t_ns"), now).unwrap();
        assert_eq!(
            (r.status.as_str(), r.connected, r.age.as_str()),
            ("Running", true, "3h")
        );
        let mut paused = sts.clone();
        paused.metadata.annotations = Some([(ANNOTATION_PAUSED.into(), "true".into())].into());
        assert_eq!(row(&paused, None, now).unwrap().status, "Paused");
        let t = table(&[r]);
        assert!(
            t.starts_with("NAME   NAMESPACE   STATUS    CONNECTED   AGE\n"),
            "{t}"
        );
        assert!(
            t.contains("t      ns          Running   yes         3h"),
            "{t}"
        );
        assert_eq!(age(59), "59s");
        assert_eq!(age(7199), "119m");
        assert_eq!(age(3 * 86400), "3d");
    }
}
