//! ValidatingAdmissionPolicy with real kubectl: a CEL policy with params
//! (a ConfigMap) denies what breaks it with kube's message, a `Warn`
//! binding warns instead, and removing the binding lifts the policy.

use vkube_e2e::TestCluster;

const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replica-limit}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  variables:
  - {name: max, expression: "int(params.data.max)"}
  validations:
  - expression: "object.spec.replicas <= variables.max"
    messageExpression: "'replicas must be at most ' + string(variables.max)"
    reason: Forbidden
---
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: default}
data: {max: "3"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replica-limit-binding}
spec:
  policyName: replica-limit
  validationActions: [Deny]
  paramRef: {name: limits, namespace: default, parameterNotFoundAction: Deny}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: team-label}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - {expression: "has(object.metadata.labels) && 'team' in object.metadata.labels", message: every ConfigMap needs a team label}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: team-label-warning}
spec:
  policyName: team-label
  validationActions: [Warn]
"#;

#[tokio::test]
async fn a_cel_policy_with_params_denies_and_a_warn_binding_warns() {
    let c = TestCluster::start().await;
    c.kubectl_stdin(&["apply", "-f", "-"], POLICY)
        .await
        .expect_ok();
    c.kubectl(&["get", "validatingadmissionpolicies"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["replica-limit", "team-label"]);

    c.kubectl(&[
        "create",
        "deployment",
        "small",
        "--image=nginx",
        "--replicas=2",
    ])
    .await
    .expect_ok();
    c.kubectl(&["create", "deployment", "big", "--image=nginx", "--replicas=5"])
        .await
        .expect_err_contains(
            "deployments.apps \"big\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-binding' denied request: replicas must be at most 3",
        );
    c.kubectl(&["get", "deployment", "big"])
        .await
        .expect_err_contains("NotFound");
    // Updates are held to it too, and the params are read on each request.
    c.kubectl(&[
        "patch",
        "deployment",
        "small",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ])
    .await
    // The validation's reason is the answer's: 403 Forbidden.
    .expect_err_contains("Error from server (Forbidden): deployments.apps \"small\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-binding' denied request: replicas must be at most 3");
    c.kubectl(&[
        "patch",
        "configmap",
        "limits",
        "-p",
        r#"{"data":{"max":"4"}}"#,
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "patch",
        "deployment",
        "small",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ])
    .await
    .expect_ok();

    // Warn: the object is stored and kubectl shows why it should not be.
    let warned = c
        .kubectl(&["create", "configmap", "unlabelled"])
        .await
        .expect_ok();
    assert!(
        warned.stderr.contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'team-label' with binding 'team-label-warning': every ConfigMap needs a team label"
        ),
        "{}",
        warned.stderr
    );

    // Without params the Deny binding refuses (parameterNotFoundAction).
    c.kubectl(&["delete", "configmap", "limits"])
        .await
        .expect_ok();
    c.kubectl(&["create", "deployment", "any", "--image=nginx"])
        .await
        .expect_err_contains(
            "no params found for policy binding with `Deny` parameterNotFoundAction",
        );
    // Removing the binding lifts the policy.
    c.kubectl(&[
        "delete",
        "validatingadmissionpolicybinding",
        "replica-limit-binding",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "deployment",
        "big",
        "--image=nginx",
        "--replicas=5",
    ])
    .await
    .expect_ok();

    // A binding kube would refuse is refused with its message.
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: bad}\nspec: {policyName: team-label, validationActions: [Deny, Warn]}\n",
    )
    .await
    .expect_err_contains("must not contain both Deny and Warn");
    c.shutdown().await;
}

#[tokio::test]
async fn pointing_a_binding_at_params_takes_permission_to_read_them() {
    let c = TestCluster::start().await;
    c.kubectl_stdin(&["apply", "-f", "-"], POLICY)
        .await
        .expect_ok();
    // alice may write bindings, but not read ConfigMaps.
    c.kubectl(&[
        "create",
        "clusterrole",
        "binding-writer",
        "--verb=create,update,get,patch",
        "--resource=validatingadmissionpolicybindings.admissionregistration.k8s.io",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "clusterrolebinding",
        "alice-binding-writer",
        "--clusterrole=binding-writer",
        "--user=alice",
    ])
    .await
    .expect_ok();
    let binding = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: alices}\nspec:\n  policyName: replica-limit\n  validationActions: [Warn]\n  paramRef: {name: limits, namespace: default, parameterNotFoundAction: Allow}\n";
    c.kubectl_stdin(&["create", "--as=alice", "-f", "-"], binding)
        .await
        .expect_err_contains("spec.paramRef: Forbidden: user &{alice  [system:authenticated] map[]} does not have \"get\" permission on the object referenced by paramRef");
    c.kubectl(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
        "-n",
        "default",
    ])
    .await
    .expect_ok();
    c.kubectl_stdin(&["create", "--as=alice", "-f", "-"], binding)
        .await
        .expect_ok();
    c.shutdown().await;
}
