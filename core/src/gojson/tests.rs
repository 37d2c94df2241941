//! Expected bodies written by hand from the Go type definitions of
//! k8s.io/api and k8s.io/apimachinery v0.34.0 (field order, json tags), the
//! way kube-apiserver's `json.Encoder` writes them; not produced by the code
//! under test.

use super::*;
use serde_json::json;

fn body(v: Value) -> String {
    String::from_utf8(to_vec(&v)).unwrap()
}

#[test]
fn a_created_daemonset_has_go_field_order_and_its_non_omitempty_zeros() {
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "ds", "namespace": "default", "uid": "u-1", "resourceVersion": "5",
                     "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"b": "2", "a": "1"}},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox", "env": []}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10
        },
        "status": {}
    });
    assert_eq!(
        body(ds),
        concat!(
            r#"{"kind":"DaemonSet","apiVersion":"apps/v1","#,
            r#""metadata":{"name":"ds","namespace":"default","uid":"u-1","resourceVersion":"5","generation":1,"creationTimestamp":"2026-01-01T00:00:00Z","labels":{"a":"1","b":"2"}},"#,
            r#""spec":{"selector":{"matchLabels":{"app":"a"}},"#,
            r#""template":{"metadata":{"labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"busybox","resources":{}}]}},"#,
            r#""updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":1,"maxSurge":0}},"revisionHistoryLimit":10},"#,
            r#""status":{"currentNumberScheduled":0,"numberMisscheduled":0,"desiredNumberScheduled":0,"numberReady":0}}"#,
            "\n"
        )
    );
}

#[test]
fn a_status_error_is_written_as_kube_apiserver_writes_it() {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "pods \"x\" not found", "reason": "NotFound",
        "details": {"name": "x", "kind": "pods"}, "code": 404
    });
    assert_eq!(
        body(status),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
         \"message\":\"pods \\\"x\\\" not found\",\"reason\":\"NotFound\",\
         \"details\":{\"name\":\"x\",\"kind\":\"pods\"},\"code\":404}\n"
    );
}

#[test]
fn a_service_and_a_list_of_them() {
    let svc = json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "ClusterIP", "sessionAffinity": "None", "clusterIP": "10.96.0.5",
                 "clusterIPs": ["10.96.0.5"], "selector": {"app": "web"},
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}
    });
    let expected_item = concat!(
        r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"default"},"#,
        r#""spec":{"ports":[{"protocol":"TCP","port":80,"targetPort":8080}],"selector":{"app":"web"},"#,
        r#""clusterIP":"10.96.0.5","clusterIPs":["10.96.0.5"],"type":"ClusterIP","sessionAffinity":"None","#,
        r#""ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","internalTrafficPolicy":"Cluster"},"#,
        r#""status":{"loadBalancer":{}}}"#
    );
    assert_eq!(body(svc.clone()), format!("{expected_item}\n"));
    let list = json!({"kind": "ServiceList", "apiVersion": "v1",
                      "metadata": {"resourceVersion": "9"}, "items": [svc]});
    assert_eq!(
        body(list),
        format!(
            r#"{{"kind":"ServiceList","apiVersion":"v1","metadata":{{"resourceVersion":"9"}},"items":[{expected_item}]}}"#
        ) + "\n"
    );
    // An empty list keeps its items array.
    let empty = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []});
    assert_eq!(
        body(empty),
        "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}\n"
    );
}

#[test]
fn a_table_with_an_embedded_object() {
    let table = json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "3"},
        "columnDefinitions": [{"name": "Name", "type": "string", "format": "name",
                               "description": "Name must be unique.", "priority": 0}],
        "rows": [{"cells": ["cm", 1], "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "cm", "namespace": "default"}}}]
    });
    assert_eq!(
        body(table),
        concat!(
            r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"3"},"#,
            r#""columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"Name must be unique.","priority":0}],"#,
            r#""rows":[{"cells":["cm",1],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"cm","namespace":"default"}}}]}"#,
            "\n"
        )
    );
}

#[test]
fn omitempty_drops_empty_lists_and_zero_scalars_but_not_pointers() {
    let pod = json!({
        "kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "env": [], "command": [],
                                 "stdin": false, "terminationMessagePath": ""}],
                 "automountServiceAccountToken": false, "hostNetwork": false, "priority": 0,
                 "nodeSelector": {}},
        "status": {"phase": "Pending", "conditions": []}
    });
    assert_eq!(
        body(pod),
        concat!(
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"#,
            r#""spec":{"containers":[{"name":"c","image":"i","resources":{}}],"#,
            r#""automountServiceAccountToken":false,"priority":0},"#,
            r#""status":{"phase":"Pending"}}"#,
            "\n"
        )
    );
}

#[test]
fn fields_without_omitempty_are_written_even_when_unset() {
    // ClusterRole.rules has no omitempty: unset is null, as upstream shows
    // for aggregated roles; a condition without lastTransitionTime shows null.
    let role = json!({"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
                      "metadata": {"name": "r"},
                      "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}});
    assert_eq!(
        body(role),
        concat!(
            r#"{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"r"},"#,
            r#""rules":null,"aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"a":"b"}}]}}"#,
            "\n"
        )
    );
    let rs = json!({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": "rs"},
                    "spec": {"selector": {"matchLabels": {"a": "b"}},
                             "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}},
                    "status": {"conditions": [{"type": "ReplicaFailure", "status": "True"}]}});
    assert_eq!(
        body(rs),
        concat!(
            r#"{"kind":"ReplicaSet","apiVersion":"apps/v1","metadata":{"name":"rs"},"#,
            r#""spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[]}}},"#,
            r#""status":{"replicas":0,"conditions":[{"type":"ReplicaFailure","status":"True","lastTransitionTime":null}]}}"#,
            "\n"
        )
    );
}

#[test]
fn strings_are_escaped_as_go_escapes_them_and_unknown_members_follow() {
    let cm = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"},
                    "zeta": 1, "alpha": {"b": 1, "a": 2},
                    "data": {"k": "<a&b>\u{2028}\u{1}\t\"\\"}});
    assert_eq!(
        body(cm),
        "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"c\"},\
         \"data\":{\"k\":\"\\u003ca\\u0026b\\u003e\\u2028\\u0001\\t\\\"\\\\\"},\
         \"alpha\":{\"a\":2,\"b\":1},\"zeta\":1}\n"
    );
    // A value naming no known kind: plain, sorted, same escaping.
    assert_eq!(
        body(json!({"type": "ADDED", "x": "<"})),
        "{\"type\":\"ADDED\",\"x\":\"\\u003c\"}\n"
    );
}

#[test]
fn every_kind_of_the_table_is_found_by_api_version_and_kind() {
    for (g, v, k, i) in table::KINDS {
        let api_version = if g.is_empty() {
            v.to_string()
        } else {
            format!("{g}/{v}")
        };
        let obj = json!({"kind": k, "apiVersion": api_version});
        assert_eq!(
            kind_of(obj.as_object().unwrap()),
            Some(*i),
            "{api_version} {k}"
        );
        // Round trip: the encoding parses back to a JSON object of that kind.
        let back: Value = serde_json::from_slice(&to_vec(&obj)).unwrap();
        assert_eq!(back["kind"], *k);
    }
    for (api_version, kind) in [
        ("v1", "Status"),
        ("v1", "APIResourceList"),
        ("v1", "APIGroupList"),
    ] {
        let obj = json!({"kind": kind, "apiVersion": api_version});
        assert!(kind_of(obj.as_object().unwrap()).is_some(), "{kind}");
    }
}

#[test]
fn the_version_document_in_go_order() {
    let v = json!({"platform": "linux/amd64", "major": "1", "minor": "34", "gitVersion": "v1.34.0",
                   "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
                   "goVersion": "go", "compiler": "gc"});
    assert_eq!(
        String::from_utf8(to_vec_as("version.Info", &v)).unwrap(),
        concat!(
            r#"{"major":"1","minor":"34","gitVersion":"v1.34.0","gitCommit":"","gitTreeState":"clean","#,
            r#""buildDate":"1970-01-01T00:00:00Z","goVersion":"go","compiler":"gc","platform":"linux/amd64"}"#,
            "\n"
        )
    );
}
