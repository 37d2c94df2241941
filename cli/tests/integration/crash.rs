//! Crash safety: SIGKILL the real `vkube apiserver` during a burst of
//! concurrent writes, restart it on the same data dir, and check that every
//! acknowledged write survived and the revision never went backwards.

use crate::support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_vkube"));
    let dir = tempfile::tempdir().unwrap();
    // name -> acknowledged resourceVersion
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let mut highest_seen = 0u64;

    // Three rounds end with a SIGKILL; the last start only checks and writes.
    const KILLS: usize = 3;
    for round in 0..=KILLS {
        let mut server = support::start_apiserver(binary, dir.path()).await;
        let client = support::client(&server.kubeconfig).await;
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");

        // Everything acknowledged in earlier rounds is still there, unchanged.
        let list = cms.list(&ListParams::default()).await.unwrap();
        let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
        assert!(
            list_rv >= highest_seen,
            "round {round}: revision went backwards: {list_rv} < {highest_seen}"
        );
        let present: BTreeMap<String, u64> = list
            .items
            .iter()
            .map(|cm| {
                (
                    cm.metadata.name.clone().unwrap(),
                    cm.metadata
                        .resource_version
                        .clone()
                        .unwrap()
                        .parse()
                        .unwrap(),
                )
            })
            .collect();
        for (name, rv) in acked.lock().unwrap().iter() {
            assert_eq!(
                present.get(name),
                Some(rv),
                "round {round}: acknowledged write {name}@{rv} lost or changed"
            );
        }
        if round == KILLS {
            // New writes continue above every revision handed out before.
            let created = cms
                .create(&PostParams::default(), &configmap("after-crash".into(), 0))
                .await
                .unwrap();
            let rv: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
            assert!(rv > highest_seen, "{rv} <= {highest_seen}");
            return;
        }

        // A burst of 16 concurrent writers; kill the server while they run.
        let mut writers = Vec::new();
        for w in 0..16 {
            let cms = cms.clone();
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let cm = configmap(format!("r{round}-w{w}-{i}"), i);
                    match cms.create(&PostParams::default(), &cm).await {
                        Ok(created) => {
                            let rv = created.metadata.resource_version.unwrap().parse().unwrap();
                            acked
                                .lock()
                                .unwrap()
                                .insert(created.metadata.name.unwrap(), rv);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.child.kill().await.unwrap(); // SIGKILL
        for w in writers {
            let _ = w.await;
        }
        let count = acked.lock().unwrap().len();
        assert!(
            count > 16 * (round + 1),
            "round {round}: too few writes acknowledged ({count})"
        );
        highest_seen = acked.lock().unwrap().values().copied().max().unwrap_or(0);
    }
}

fn configmap(name: String, i: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("i".to_string(), i.to_string())])),
        ..Default::default()
    }
}
