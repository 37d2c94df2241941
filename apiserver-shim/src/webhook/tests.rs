//! The pure parts of admission webhooks: configurations, matching,
//! AdmissionReview building and verification, endpoint resolution.

use super::config::{self, Phase};
use super::matching::{self, Attributes, ConditionOutcome, Gvr, Invocation, Operation};
use super::review;
use super::service_endpoint;
use crate::pki::Identity;
use base64::Engine as _;
use serde_json::{Value, json};

fn pods() -> Gvr {
    Gvr {
        group: String::new(),
        version: "v1".into(),
        resource: "pods".into(),
        kind: "Pod".into(),
        ..Default::default()
    }
}

fn attrs(operation: Operation, subresource: &str) -> Attributes {
    Attributes {
        operation,
        resource: pods(),
        subresource: subresource.into(),
        namespaced: true,
        namespace: "team".into(),
        name: "web".into(),
        object: Some(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}}}),
        ),
        old_object: None,
        dry_run: false,
        options: json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}),
        user: Identity {
            user: "alice".into(),
            groups: vec!["devs".into()],
            ..Default::default()
        },
        equivalent_versions: Vec::new(),
    }
}

fn hook(extra: Value) -> config::Webhook {
    let mut w = json!({
        "name": "pods.example.com",
        "clientConfig": {"url": "https://hooks.example.com/validate"},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    for (k, v) in extra.as_object().unwrap() {
        w[k] = v.clone();
    }
    let cfg = json!({"metadata": {"name": "c"}, "webhooks": [w]});
    config::webhooks_of(&cfg, Phase::Validating).remove(0)
}

#[test]
fn configurations_are_read_with_the_v1_defaults() {
    let h = hook(json!({"clientConfig": {"service": {"namespace": "ns", "name": "svc"}}}));
    assert_eq!(h.failure_policy, config::FailurePolicy::Fail);
    assert_eq!(h.match_policy, config::MatchPolicy::Equivalent);
    assert!(h.no_side_effects_on_dry_run && h.accepts_v1);
    assert_eq!(h.timeout, std::time::Duration::from_secs(10));
    assert_eq!(
        h.client_config,
        Some(config::ClientConfig::Service {
            namespace: "ns".into(),
            name: "svc".into(),
            path: "/".into(),
            port: 443
        })
    );
    assert_eq!(h.rules[0].scope, "*");
    let mut stored = json!({"webhooks": [{"name": "a.b.c", "rules": [{}], "clientConfig": {"service": {"name": "s", "namespace": "n"}}}]});
    config::set_defaults(&mut stored, Phase::Mutating);
    let w = &stored["webhooks"][0];
    assert_eq!(
        (
            &w["failurePolicy"],
            &w["matchPolicy"],
            &w["timeoutSeconds"],
            &w["reinvocationPolicy"],
            &w["rules"][0]["scope"],
            &w["clientConfig"]["service"]["port"],
            &w["namespaceSelector"],
        ),
        (
            &json!("Fail"),
            &json!("Equivalent"),
            &json!(10),
            &json!("Never"),
            &json!("*"),
            &json!(443),
            &json!({})
        )
    );
}

#[test]
fn rules_match_operations_groups_versions_resources_and_scope() {
    let create = attrs(Operation::Create, "");
    let rule = |ops: &[&str], resources: &[&str], scope: &str| config::Rule {
        operations: ops.iter().map(|s| s.to_string()).collect(),
        api_groups: vec!["".into()],
        api_versions: vec!["*".into()],
        resources: resources.iter().map(|s| s.to_string()).collect(),
        scope: scope.into(),
    };
    let r = &create.resource;
    assert!(matching::rule_matches(
        &rule(&["CREATE"], &["pods"], "*"),
        &create,
        r
    ));
    assert!(matching::rule_matches(
        &rule(&["*"], &["*"], "Namespaced"),
        &create,
        r
    ));
    assert!(!matching::rule_matches(
        &rule(&["UPDATE"], &["pods"], "*"),
        &create,
        r
    ));
    assert!(!matching::rule_matches(
        &rule(&["*"], &["pods"], "Cluster"),
        &create,
        r
    ));
    assert!(!matching::rule_matches(
        &rule(&["*"], &["services"], "*"),
        &create,
        r
    ));
    // `*` is main resources only; subresources need `*/*`, `pods/*` or `*/status`.
    let status = attrs(Operation::Update, "status");
    assert!(!matching::rule_matches(
        &rule(&["*"], &["*"], "*"),
        &status,
        r
    ));
    assert!(!matching::rule_matches(
        &rule(&["*"], &["pods"], "*"),
        &status,
        r
    ));
    for resources in [&["*/*"][..], &["pods/*"], &["*/status"], &["pods/status"]] {
        assert!(
            matching::rule_matches(&rule(&["*"], resources, "*"), &status, r),
            "{resources:?}"
        );
    }
    assert!(!matching::rule_matches(
        &rule(&["*"], &["pods/log"], "*"),
        &status,
        r
    ));
}

#[test]
fn equivalent_versions_match_unless_the_policy_is_exact() {
    let mut a = attrs(Operation::Create, "");
    let v1 = Gvr {
        group: "stable.example.com".into(),
        version: "v1".into(),
        resource: "crontabs".into(),
        kind: "CronTab".into(),
        ..Default::default()
    };
    let v1beta1 = Gvr {
        version: "v1beta1".into(),
        ..v1.clone()
    };
    a.resource = v1.clone();
    a.equivalent_versions = vec![v1beta1.clone()];
    let rules = json!([{"operations": ["*"], "apiGroups": ["stable.example.com"], "apiVersions": ["v1beta1"], "resources": ["crontabs"]}]);
    let equivalent = hook(json!({"rules": rules}));
    assert_eq!(
        matching::match_rules(&equivalent, &a),
        Some(Invocation { resource: v1beta1 })
    );
    let exact = hook(json!({"rules": rules, "matchPolicy": "Exact"}));
    assert_eq!(matching::match_rules(&exact, &a), None);
}

#[test]
fn object_selectors_match_the_new_or_the_old_object() {
    let h = hook(json!({"objectSelector": {"matchLabels": {"app": "db"}}}));
    let mut a = attrs(Operation::Update, "");
    assert_eq!(matching::object_selector_matches(&h, &a), Ok(false));
    a.old_object = Some(json!({"metadata": {"labels": {"app": "db"}}}));
    assert_eq!(matching::object_selector_matches(&h, &a), Ok(true));
    a.object = None;
    a.old_object = None;
    assert_eq!(matching::object_selector_matches(&h, &a), Ok(false));
    let everything = hook(json!({}));
    assert_eq!(matching::object_selector_matches(&everything, &a), Ok(true));
}

#[test]
fn namespace_labels_come_from_the_namespace_object_or_the_store() {
    let mut a = attrs(Operation::Create, "");
    assert!(matches!(
        matching::namespace_labels(&a),
        matching::NamespaceLabels::Stored("team")
    ));
    a.resource.resource = "namespaces".into();
    a.namespaced = false;
    a.namespace = "web".into();
    assert!(matches!(
        matching::namespace_labels(&a),
        matching::NamespaceLabels::Object(Some(_))
    ));
    a.operation = Operation::Delete;
    assert!(matches!(
        matching::namespace_labels(&a),
        matching::NamespaceLabels::Stored("web")
    ));
    a.resource.resource = "nodes".into();
    a.namespace = String::new();
    assert!(matches!(
        matching::namespace_labels(&a),
        matching::NamespaceLabels::NotApplicable
    ));
}

#[test]
fn match_conditions_skip_on_false_and_report_errors() {
    let a = attrs(Operation::Create, "");
    let inv = Invocation { resource: pods() };
    let conds = |exprs: &[&str]| -> Vec<matching::MatchCondition> {
        exprs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                matching::MatchCondition::compile(
                    &json!({"name": format!("c{i}"), "expression": e}),
                )
            })
            .collect()
    };
    let eval = |exprs: &[&str]| matching::evaluate_conditions(&conds(exprs), &a, &inv);
    assert_eq!(eval(&[]), ConditionOutcome::Match);
    assert_eq!(
        eval(&[
            "object.metadata.labels.app == 'web'",
            "request.userInfo.username == 'alice'"
        ]),
        ConditionOutcome::Match
    );
    assert_eq!(
        eval(&["request.operation == 'UPDATE'"]),
        ConditionOutcome::NoMatch
    );
    assert_eq!(
        eval(&["oldObject == null && request.namespace == 'team'"]),
        ConditionOutcome::Match
    );
    // A false condition wins over an error; an error alone decides.
    assert_eq!(
        eval(&["object.nope.deeper", "false"]),
        ConditionOutcome::NoMatch
    );
    assert!(
        matches!(eval(&["object.nope.deeper"]), ConditionOutcome::Error(e) if e.starts_with("matchCondition 'c0': "))
    );
    assert!(
        matches!(eval(&["'not a bool'"]), ConditionOutcome::Error(e) if e.contains("must evaluate to bool"))
    );
}

#[test]
fn the_review_carries_the_request_and_the_invocations_version() {
    let mut a = attrs(Operation::Create, "");
    a.name = String::new();
    let v2 = Gvr {
        version: "v2".into(),
        ..pods()
    };
    let body = review::request(&a, &Invocation { resource: v2 }, "u-1");
    let r = &body["request"];
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(r["uid"], "u-1");
    assert_eq!(
        r["kind"],
        json!({"group": "", "version": "v2", "kind": "Pod"})
    );
    assert_eq!(
        r["requestKind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(r["object"]["apiVersion"], "v2");
    assert_eq!(r["oldObject"], Value::Null);
    assert_eq!(
        r["userInfo"],
        json!({"username": "alice", "groups": ["devs"]})
    );
    assert_eq!(r["namespace"], "team");
    assert!(r.get("name").is_none() && r.get("subResource").is_none());
    assert_eq!(r["operation"], "CREATE");
    assert_eq!(r["dryRun"], false);
}

fn answer(response: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})).unwrap()
}

#[test]
fn responses_are_verified_as_kube_verifies_them() {
    let ok = review::verify(
        &answer(json!({"uid": "u", "allowed": true, "warnings": ["w"]})),
        "u",
        false,
    )
    .unwrap();
    assert!(ok.allowed);
    assert_eq!(ok.warnings, ["w"]);
    let why = |body: Vec<u8>, mutating: bool| review::verify(&body, "u", mutating).unwrap_err().0;
    assert_eq!(
        why(answer(json!({"uid": "x", "allowed": true})), false),
        "received invalid webhook response: expected response.uid=\"u\", got \"x\""
    );
    assert_eq!(
        why(
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}".to_vec(),
            false
        ),
        "received invalid webhook response: webhook response was absent"
    );
    assert_eq!(
        why(
            b"{\"apiVersion\":\"v1\",\"kind\":\"Status\"}".to_vec(),
            false
        ),
        "received invalid webhook response: expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got /v1, Kind=Status"
    );
    assert!(why(b"<html>".to_vec(), false).starts_with("failed to call webhook: "));
    let patch =
        base64::engine::general_purpose::STANDARD.encode(r#"[{"op":"add","path":"/a","value":1}]"#);
    assert_eq!(
        why(
            answer(json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "JSONPatch"})),
            false
        ),
        "received invalid webhook response: validating webhook may not return response.patch"
    );
    assert_eq!(
        why(
            answer(json!({"uid": "u", "allowed": true, "patch": patch})),
            true
        ),
        "received invalid webhook response: webhook returned response.patch but not response.patchType"
    );
    assert_eq!(
        why(
            answer(json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "MergePatch"})),
            true
        ),
        "unsupported patch type \"MergePatch\""
    );
    assert!(
        why(
            answer(json!({"uid": "u", "allowed": true, "patch": "!!", "patchType": "JSONPatch"})),
            true
        )
        .starts_with("received undecodable patch in webhook response: ")
    );
    let patched = review::verify(
        &answer(json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "JSONPatch"})),
        "u",
        true,
    )
    .unwrap();
    assert_eq!(patched.patch.unwrap().0.len(), 1);
}

#[test]
fn denials_keep_the_webhooks_status_with_a_prefixed_message() {
    let e = review::denied(
        "v.example.com",
        Some(&json!({"code": 403, "reason": "Forbidden", "message": "no"})),
    );
    assert_eq!(
        (e.code, e.reason.as_ref(), e.message.as_str()),
        (
            403,
            "Forbidden",
            "admission webhook \"v.example.com\" denied the request: no"
        )
    );
    let e = review::denied(
        "v.example.com",
        Some(&json!({"code": 200, "reason": "Custom"})),
    );
    assert_eq!(
        (e.code, e.reason.as_ref(), e.message.as_str()),
        (
            400,
            "Custom",
            "admission webhook \"v.example.com\" denied the request: Custom"
        )
    );
    let e = review::denied("v.example.com", None);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            400,
            "admission webhook \"v.example.com\" denied the request without explanation"
        )
    );
    let e = review::call_failed(
        "v.example.com",
        &review::CallError("failed to call webhook: x".into()),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            500,
            "Internal error occurred: failed calling webhook \"v.example.com\": failed to call webhook: x"
        )
    );
}

#[test]
fn service_references_resolve_to_a_ready_endpoint_of_the_named_port() {
    let svc = json!({"metadata": {"name": "hooks"}, "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}, {"name": "metrics", "port": 9090}]}});
    let eps = json!({"subsets": [
        {"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"name": "https", "port": 8443}]},
        {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "metrics", "port": 9090}, {"name": "https", "port": 8443}]},
    ]});
    assert_eq!(
        service_endpoint(&svc, Some(&eps), 443),
        Ok(vec!["10.0.0.1:8443".parse().unwrap()])
    );
    assert_eq!(
        service_endpoint(&svc, Some(&eps), 80),
        Err("no service port 80 found for service \"hooks\"".into())
    );
    assert_eq!(
        service_endpoint(&svc, None, 443),
        Err("no endpoints available for service \"hooks\"".into())
    );
    let external = json!({"metadata": {"name": "hooks"}, "spec": {"type": "ExternalName", "externalName": "evil.example.com"}});
    assert_eq!(
        service_endpoint(&external, Some(&eps), 443),
        Err("unsupported service type \"ExternalName\"".into())
    );
}

#[test]
fn metadata_endpoints_are_never_called_and_loopback_only_when_allowed() {
    use super::client::refused_address;
    for ip in [
        "169.254.169.254",
        "fe80::1",
        "::ffff:169.254.169.254",
        "0.0.0.0",
    ] {
        assert!(refused_address(ip.parse().unwrap(), true).is_some(), "{ip}");
    }
    for ip in ["10.0.0.1", "fd00::2", "192.0.2.2"] {
        assert!(
            refused_address(ip.parse().unwrap(), false).is_none(),
            "{ip}"
        );
    }
    for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(
            refused_address(ip.parse().unwrap(), false),
            Some("loopback")
        );
        assert_eq!(refused_address(ip.parse().unwrap(), true), None);
    }
}

#[test]
fn webhook_patches_are_bounded_while_they_apply() {
    let doc = json!({"metadata": {"name": "x"}, "spec": {"data": "a".repeat(1000)}});
    let patch = |ops: Value| -> json_patch::Patch { serde_json::from_value(ops).unwrap() };
    let ok = review::apply_patch(
        &doc,
        &patch(json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])),
        1 << 20,
        100,
    )
    .unwrap();
    assert_eq!(ok["metadata"]["labels"]["a"], "b");
    // `copy` doubling the object is refused long before memory runs out.
    let doubling: Vec<Value> = (0..64)
        .map(|i| json!({"op": "copy", "from": "/spec", "path": format!("/spec/c{i}")}))
        .collect();
    let e = review::apply_patch(&doc, &patch(json!(doubling)), 1 << 20, 100).unwrap_err();
    assert!(e.starts_with("the patched object would exceed"), "{e}");
    // A chain of moves nesting the object deeper each time.
    let mut nesting = Vec::new();
    for _ in 0..200 {
        nesting.push(json!({"op": "add", "path": "/n", "value": {}}));
        nesting.push(json!({"op": "move", "from": "/spec", "path": "/n/spec"}));
        nesting.push(json!({"op": "move", "from": "/n", "path": "/spec"}));
    }
    let e = review::apply_patch(&doc, &patch(json!(nesting)), 1 << 20, 100).unwrap_err();
    assert!(e.starts_with("the patched object would exceed"), "{e}");
    let too_many: Vec<Value> = (0..=review::MAX_PATCH_OPERATIONS)
        .map(|_| json!({"op": "test", "path": "/metadata/name", "value": "x"}))
        .collect();
    assert!(review::apply_patch(&doc, &patch(json!(too_many)), 1 << 20, 100).is_err());
    // A patch that does not apply leaves nothing half-done.
    assert!(
        review::apply_patch(
            &doc,
            &patch(json!([{"op": "remove", "path": "/nope"}])),
            1 << 20,
            100
        )
        .is_err()
    );
}

#[test]
fn configurations_are_validated_with_kubes_messages() {
    let cfg = json!({"webhooks": [
        {"name": "short", "clientConfig": {}, "timeoutSeconds": 31, "sideEffects": "Some", "admissionReviewVersions": ["v2"],
         "rules": [{"operations": ["CREATE", "*"], "apiGroups": [], "apiVersions": ["v1"], "resources": ["pods"]}],
         "matchConditions": [{"name": "m", "expression": "object.("}]},
        {"name": "a.b.c", "clientConfig": {"url": "http://x.example.com/"}},
        {"name": "a.b.c", "clientConfig": {"service": {"name": "s", "namespace": "n", "path": "p", "port": 0}}, "sideEffects": "None", "admissionReviewVersions": ["v1"]},
    ]});
    let errs: Vec<String> = config::validate(&cfg, Phase::Validating)
        .into_iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    for expected in [
        "webhooks[0].name: Invalid value: \"short\": should be a domain with at least three segments separated by dots",
        "webhooks[0].rules[0].operations: Invalid value: [\"CREATE\",\"*\"]: if '*' is present, must not specify other operations",
        "webhooks[0].rules[0].apiGroups: Required value",
        "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
        "webhooks[0].admissionReviewVersions: Invalid value: [\"v2\"]: must include at least one of v1, v1beta1",
        "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
        "webhooks[0].clientConfig: Required value: exactly one of url or service is required",
        "webhooks[1].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[1].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
        "webhooks[1].clientConfig.url: Invalid value: \"http://x.example.com/\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
        "webhooks[2].name: Duplicate value: \"a.b.c\"",
        "webhooks[2].clientConfig.service.path: Invalid value: \"p\": must start with a '/'",
        "webhooks[2].clientConfig.service.port: Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive",
    ] {
        assert!(
            errs.iter().any(|e| e == expected),
            "missing {expected:?} in {errs:#?}"
        );
    }
    assert!(errs.iter().any(|e| e.starts_with("webhooks[0].matchConditions[0].expression: Invalid value: \"object.(\": compilation failed: ")), "{errs:#?}");
}

#[test]
fn reinvocation_calls_earlier_if_needed_webhooks_once_more() {
    use super::Reinvocation;
    // a (IfNeeded), b (Never), c (IfNeeded) changes the object, d.
    let mut plan = Reinvocation::new([true, false, true, false].into_iter());
    for i in 0..4 {
        assert!(plan.runs(0, i));
        plan.called(0, i, i == 2);
    }
    assert!(plan.another_round());
    let round1: Vec<usize> = (0..4).filter(|i| plan.runs(1, *i)).collect();
    // Only the earlier IfNeeded webhook; c's own change does not mark c.
    assert_eq!(round1, [0]);
    // A webhook that did not match (was not called) is not reinvoked.
    let mut plan = Reinvocation::new([true, true].into_iter());
    plan.called(0, 1, true);
    assert!(!plan.another_round());
    // No change, no second round.
    let mut plan = Reinvocation::new([true, true].into_iter());
    plan.called(0, 0, false);
    plan.called(0, 1, false);
    assert!(!plan.another_round());
}
