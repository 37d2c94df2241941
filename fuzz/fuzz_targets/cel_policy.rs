//! CEL in a ValidatingAdmissionPolicy: the input is an expression a tenant
//! writes, used as a variable and as a validation, checked as the policy is
//! created and, when accepted, evaluated against a Deployment create.
//! Beyond not panicking (the parser and interpreter take hostile text):
//! evaluation ends within the runner's timeout.
#![no_main]

use apiserver_shim::admission_policy::{evaluate, policy_of, validate_policy};
use apiserver_shim::pki::Identity;
use apiserver_shim::webhook::matching::{Attributes, Gvr, Invocation, Operation};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|expression: &str| {
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "fuzz"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["deployments"],
            }]},
            "variables": [{"name": "v", "expression": expression}],
            "validations": [{"expression": expression}],
        },
    });
    let refused = !validate_policy(&policy).is_empty();
    if refused {
        return;
    }
    let deployments = Gvr {
        group: "apps".into(),
        version: "v1".into(),
        resource: "deployments".into(),
        kind: "Deployment".into(),
        ..Default::default()
    };
    let attrs = Attributes {
        operation: Operation::Create,
        resource: deployments.clone(),
        subresource: String::new(),
        namespaced: true,
        namespace: "team".into(),
        name: "web".into(),
        object: Some(json!({
            "metadata": {"name": "web", "labels": {"env": "prod"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        })),
        old_object: None,
        dry_run: false,
        options: Value::Null,
        user: Identity::default(),
        equivalent_versions: Vec::new(),
    };
    let invocation = Invocation {
        resource: deployments,
    };
    let namespace = json!({"metadata": {"name": "team", "labels": {"tier": "gold"}}});
    let _ = evaluate(
        &policy_of(&policy),
        &attrs,
        &invocation,
        &Value::Null,
        &namespace,
    );
});
