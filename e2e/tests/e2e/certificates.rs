//! CertificateSigningRequests with real kubectl: a user's request is
//! approved with `kubectl certificate approve`, the csrsigning controller
//! issues a client certificate from the cluster CA, and that certificate
//! authenticates as the requested user and groups; requests a client
//! certificate must not have fail, and denied ones stay unsigned.

use std::time::{Duration, Instant};

use base64::Engine as _;
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::TestCluster;

/// A new key and a PEM request for CN `user`, O `groups`.
fn request(user: &str, groups: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    for g in groups {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *g);
    }
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    (csr, key.serialize_pem())
}

fn manifest(name: &str, csr: &str, usages: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(csr);
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  request: {b64}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 86400\n  usages: [{usages}]\n"
    )
}

async fn wait_for(
    c: &TestCluster,
    name: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let csr = c.get_json(&["csr", name]).await.unwrap();
        if done(&csr) {
            return csr;
        }
        assert!(Instant::now() < deadline, "{name}: {csr}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_approved_request_gets_a_certificate_that_authenticates() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    let (csr, key) = request("alice", &["devs"]);
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &manifest("alice", &csr, "client auth, digital signature"),
    )
    .await
    .expect_ok();
    // The requester is the caller, whatever the body said.
    let got = c.get_json(&["csr", "alice"]).await.unwrap();
    assert_eq!(got["spec"]["username"], "kubernetes-admin", "{got}");
    let table = c.kubectl(&["get", "csr"]).await.expect_ok();
    let header: Vec<&str> = table.lines()[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    assert!(table.lines()[1].ends_with("Pending"), "{}", table.stdout);
    assert!(table.lines()[1].contains("24h"), "{}", table.stdout);
    // Not signed before approval.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.get_json(&["csr", "alice"]).await.unwrap()["status"]["certificate"].is_null());
    c.kubectl(&["certificate", "approve", "alice"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["approved"]);
    let issued = wait_for(&c, "alice", |c| c["status"]["certificate"].is_string()).await;
    let cert = base64::engine::general_purpose::STANDARD
        .decode(issued["status"]["certificate"].as_str().unwrap())
        .unwrap();
    c.kubectl(&["get", "csr", "alice"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["Approved,Issued"]);
    // The certificate and its key authenticate as alice in devs.
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: alice\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: t\n  context: {{cluster: t, user: alice}}\ncurrent-context: t\n",
        c.server.url(),
        b64(c.server.pki.ca_cert.as_bytes()),
        b64(&cert),
        b64(key.as_bytes()),
    );
    let path = c.write_file("alice.kubeconfig", &kubeconfig);
    c.kubectl(&["--kubeconfig", path.to_str().unwrap(), "auth", "whoami"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["alice", "devs", "system:authenticated"]);
    // The approval may not be taken back (kubectl refuses on its own; the
    // server too, for a client that asks).
    let mut both = c.get_json(&["csr", "alice"]).await.unwrap();
    both["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "Denied", "status": "True", "reason": "Changed"}));
    let file = c.write_file("both.json", &both.to_string());
    c.kubectl(&[
        "replace",
        "--raw",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests/alice/approval",
        "-f",
        file.to_str().unwrap(),
    ])
    .await
    .expect_err_contains("Approved and Denied conditions are mutually exclusive");
    c.shutdown().await;
}

#[tokio::test]
async fn wrong_usages_fail_denied_requests_stay_unsigned_and_bad_requests_are_invalid() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    let (csr, _) = request("bob", &[]);
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "{}---\n{}",
            manifest("server", &csr, "server auth"),
            manifest("denied", &csr, "client auth")
        ),
    )
    .await
    .expect_ok();
    c.kubectl(&["certificate", "approve", "server"])
        .await
        .expect_ok();
    let failed = wait_for(&c, "server", |c| {
        c["status"]["conditions"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["type"] == "Failed"))
    })
    .await;
    let condition = failed["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "Failed")
        .unwrap()
        .clone();
    assert_eq!(condition["reason"], "SignerValidationFailure");
    assert_eq!(
        condition["message"],
        "invalid usage for client certificate: server auth"
    );
    assert!(failed["status"]["certificate"].is_null());
    c.kubectl(&["certificate", "deny", "denied"])
        .await
        .expect_ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.kubectl(&["get", "csr", "denied"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["Denied"]);
    assert!(c.get_json(&["csr", "denied"]).await.unwrap()["status"]["certificate"].is_null());
    // No client certificate for the privileged group (kube's
    // CertificateSubjectRestriction).
    let (root, _) = request("root", &["system:masters"]);
    c.kubectl_stdin(&["apply", "-f", "-"], &manifest("root", &root, "client auth"))
        .await
        .expect_err_contains(
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed",
        );
    // Approving takes `approve` on the signer (kube's CertificateApproval):
    // a service account without it is refused.
    let (pending, _) = request("carol", &[]);
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &manifest("carol", &pending, "client auth"),
    )
    .await
    .expect_ok();
    let token = c
        .kubectl(&["create", "token", "default"])
        .await
        .expect_ok()
        .stdout
        .trim()
        .to_string();
    // The service account may update approvals, but holds `approve` on no
    // signer: the CertificateApproval admission refuses it.
    c.kubectl(&[
        "create",
        "clusterrole",
        "csr-approver",
        "--verb=get,list,update",
        "--resource=certificatesigningrequests,certificatesigningrequests/approval",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "clusterrolebinding",
        "csr-approvers",
        "--clusterrole=csr-approver",
        "--serviceaccount=default:default",
    ])
    .await
    .expect_ok();
    let kc = c.token_kubeconfig("sa.kubeconfig", &token);
    c.kubectl(&["--kubeconfig", &kc, "certificate", "approve", "carol"])
        .await
        .expect_err_contains(
            "user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\"",
        );
    // Issuing takes `sign` on the signer (kube's CertificateSigning): with
    // `update` on the status but no `sign`, writing a certificate into an
    // approved request of a signer nobody here runs is refused, while a
    // status write that leaves the certificate alone is not.
    let custom = manifest("dave", &request("dave", &[]).0, "client auth")
        .replace("kubernetes.io/kube-apiserver-client", "example.com/custom");
    c.kubectl_stdin(&["apply", "-f", "-"], &custom)
        .await
        .expect_ok();
    c.kubectl(&["certificate", "approve", "dave"])
        .await
        .expect_ok();
    c.kubectl(&[
        "create",
        "clusterrole",
        "csr-status-writer",
        "--verb=get,patch,update",
        "--resource=certificatesigningrequests/status",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "clusterrolebinding",
        "csr-status-writers",
        "--clusterrole=csr-status-writer",
        "--serviceaccount=default:default",
    ])
    .await
    .expect_ok();
    let issued = base64::engine::general_purpose::STANDARD.encode(&c.server.pki.ca_cert);
    let write_certificate = format!(r#"{{"status":{{"certificate":"{issued}"}}}}"#);
    let status_patch = async |kind: &str, patch: &str| {
        c.kubectl(&[
            "--kubeconfig",
            &kc,
            "patch",
            "csr",
            "dave",
            "--subresource=status",
            &format!("--type={kind}"),
            "-p",
            patch,
        ])
        .await
    };
    status_patch("merge", &write_certificate)
        .await
        .expect_err_contains(
            "user not permitted to sign requests with signerName \"example.com/custom\"",
        );
    status_patch("merge", r#"{"metadata":{"labels":{"seen":"yes"}}}"#)
        .await
        .expect_ok();
    // A `Failed` condition is the signer's answer too: it takes `sign`.
    status_patch(
        "json",
        r#"[{"op":"add","path":"/status/conditions/-","value":{"type":"Failed","status":"True","reason":"SignerError","message":"no"}}]"#,
    )
    .await
    .expect_err_contains(
        "user not permitted to sign requests with signerName \"example.com/custom\"",
    );
    assert!(c.get_json(&["csr", "dave"]).await.unwrap()["status"]["certificate"].is_null());
    // The admin holds every verb, `sign` included.
    c.kubectl(&[
        "patch",
        "csr",
        "dave",
        "--subresource=status",
        "--type=merge",
        "-p",
        &write_certificate,
    ])
    .await
    .expect_ok();
    assert_eq!(
        c.get_json(&["csr", "dave"]).await.unwrap()["status"]["certificate"],
        issued.as_str()
    );
    // kube's validation of the request itself.
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {name: junk}\nspec:\n  request: aGVsbG8=\n  signerName: nope\n  usages: []\n",
    )
    .await
    .expect_err_contains("spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST");
    c.shutdown().await;
}
