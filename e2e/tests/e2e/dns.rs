//! The tenant DNS end to end: a virtual cluster with a syncer, its DNS
//! server fed by watching the virtual API, queried with real DNS messages
//! over UDP and TCP; names outside the cluster domain go to an upstream
//! (here a second server of ours answering a zone `host.example`, since
//! this machine's own resolver answers nothing).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use vkube_dns::proto::op::{Message, Query, ResponseCode};
use vkube_dns::proto::rr::{Name, RData, RecordType};
use vkube_dns::{DnsView, resolver_for, serve};
use vkube_e2e::SyncedCluster;
use vkube_e2e::synced::eventually;
use vkube_syncer::pod::TenantDns;

const WAIT: Duration = Duration::from_secs(60);

const APP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, image: postgres, ports: [{name: pg, containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: db.team.svc.host.example
---
apiVersion: v1
kind: Service
metadata: {name: alias}
spec:
  type: ExternalName
  externalName: web.default.svc.cluster.local
"#;

async fn ask(addr: SocketAddr, tcp: bool, name: &str, qtype: RecordType) -> Message {
    let mut req = Message::query();
    req.metadata.recursion_desired = true;
    req.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let bytes = req.to_vec().unwrap();
    let resp = if tcp {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_u16(bytes.len() as u16).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let len = tokio::time::timeout(WAIT, s.read_u16())
            .await
            .unwrap()
            .unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    } else {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&bytes, addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(WAIT, s.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    };
    assert_eq!(resp.metadata.id, req.metadata.id);
    resp
}

fn addresses(m: &Message) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tenant_dns_answers_as_the_specification_says() {
    let tenant_dns = TenantDns {
        nameserver: "10.96.0.53".into(),
        cluster_domain: "cluster.local".into(),
    };
    let dns_config = tenant_dns.clone();
    let c = SyncedCluster::start_with(move |c| c.dns = Some(dns_config)).await;

    // The upstream: another server answering zone host.example.
    let upstream_view = Arc::new(RwLock::new(DnsView::new("host.example")));
    upstream_view.write().unwrap().mark_listed();
    upstream_view.write().unwrap().apply_service(
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "team"},
            "spec": {"clusterIP": "192.0.2.7", "ports": [{"port": 5432}]},
        }))
        .unwrap(),
    );
    let upstream = serve(
        "127.0.0.1:0".parse().unwrap(),
        upstream_view,
        vkube_dns::system_resolver().unwrap(),
    )
    .await
    .unwrap();

    let view = Arc::new(RwLock::new(DnsView::new("cluster.local")));
    let dns_client = c
        .virt
        .client_as(
            apiserver_shim::bootstrap_policy::DNS_USER,
            &vkube_controllers::SERVICE_ACCOUNT_GROUPS,
        )
        .await;
    let watch = tokio::spawn(vkube_dns::watch::run(dns_client, view.clone()));
    let dns = serve(
        "127.0.0.1:0".parse().unwrap(),
        view,
        resolver_for(&[upstream.addr], Duration::from_secs(2)).unwrap(),
    )
    .await
    .unwrap();
    let addr = dns.addr;

    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], APP)
        .await
        .expect_ok();
    let pod_ip = |name: &'static str| {
        let c = &c;
        async move {
            let p = c.virt_get("pod", name).await?;
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|x| x["type"] == "Ready" && x["status"] == "True");
            match p["status"]["podIP"].as_str() {
                Some(ip) if ready => Ok(ip.parse::<IpAddr>().unwrap()),
                _ => Err(format!("not ready: {}", p["status"])),
            }
        }
    };
    let db0 = eventually("db-0 ready", WAIT, || pod_ip("db-0")).await;
    let db1 = eventually("db-1 ready", WAIT, || pod_ip("db-1")).await;
    let web_ip: IpAddr = c.virt_get("service", "web").await.unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let kubernetes_ip: IpAddr =
        c.virt_get("service", "kubernetes").await.unwrap()["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    // The view follows the watches: wait until both db endpoints are in.
    eventually("db endpoints in DNS", WAIT, || async {
        let m = ask(addr, false, "db.default.svc.cluster.local.", RecordType::A).await;
        let got = addresses(&m);
        if got.len() == 2 {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;

    for tcp in [false, true] {
        let m = ask(addr, tcp, "web.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(addresses(&m), [web_ip], "tcp={tcp}");

        let m = ask(
            addr,
            tcp,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(addresses(&m), [kubernetes_ip]);

        let m = ask(
            addr,
            tcp,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        let RData::SRV(srv) = &m.answers[0].data else {
            panic!("no SRV: {m:?}")
        };
        assert_eq!(srv.port, 80);
        assert_eq!(srv.target.to_ascii(), "web.default.svc.cluster.local.");

        let IpAddr::V4(v4) = web_ip else {
            panic!("IPv4 ClusterIP")
        };
        let o = v4.octets();
        let ptr = format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]);
        let m = ask(addr, tcp, &ptr, RecordType::PTR).await;
        let RData::PTR(p) = &m.answers[0].data else {
            panic!("no PTR: {m:?}")
        };
        assert_eq!(p.0.to_ascii(), "web.default.svc.cluster.local.");

        // Headless: every ready endpoint, and each StatefulSet pod by name.
        let m = ask(addr, tcp, "db.default.svc.cluster.local.", RecordType::A).await;
        let mut want = vec![db0, db1];
        want.sort();
        assert_eq!(addresses(&m), want);
        let m = ask(
            addr,
            tcp,
            "db-1.db.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(addresses(&m), [db1]);
        let m = ask(
            addr,
            tcp,
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        let mut targets: Vec<String> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(format!("{}:{}", s.target.to_ascii(), s.port)),
                _ => None,
            })
            .collect();
        targets.sort();
        assert_eq!(
            targets,
            [
                "db-0.db.default.svc.cluster.local.:5432",
                "db-1.db.default.svc.cluster.local.:5432"
            ]
        );

        // ExternalName: the CNAME, and its target resolved upstream.
        let m = ask(addr, tcp, "ext.default.svc.cluster.local.", RecordType::A).await;
        assert!(
            m.answers.iter().any(|r| matches!(&r.data, RData::CNAME(n)
                if n.0.to_ascii() == "db.team.svc.host.example.")),
            "{m:?}"
        );
        assert_eq!(addresses(&m), ["192.0.2.7".parse::<IpAddr>().unwrap()]);

        // An ExternalName naming a tenant Service is answered from the view.
        let m = ask(addr, tcp, "alias.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(addresses(&m), [web_ip], "{m:?}");

        // Unknown in the cluster domain: NXDOMAIN, authoritatively.
        let m = ask(addr, tcp, "nope.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);

        // Outside it: forwarded, not authoritative.
        let m = ask(addr, tcp, "db.team.svc.host.example.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(!m.metadata.authoritative);
        assert_eq!(addresses(&m), ["192.0.2.7".parse::<IpAddr>().unwrap()]);
    }

    // A deleted Service disappears from DNS.
    c.virt
        .kubectl(&["delete", "service", "web"])
        .await
        .expect_ok();
    eventually("web gone from DNS", WAIT, || async {
        let m = ask(addr, false, "web.default.svc.cluster.local.", RecordType::A).await;
        if m.metadata.response_code == ResponseCode::NXDomain {
            Ok(())
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await;

    // Garbage never stops the server.
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [&b""[..], b"\x00", &[0xff; 600], b"\x12\x34\x01\x00\x00\x05"] {
        s.send_to(junk, addr).await.unwrap();
    }
    let m = ask(addr, false, "db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&m).len(), 2);

    // Synced host pods resolve through the tenant DNS.
    let host = c
        .host_get("pod", &c.host_name("default", "db-0"))
        .await
        .unwrap();
    let spec = &host["spec"];
    assert_eq!(spec["dnsPolicy"], "None", "{spec}");
    assert_eq!(
        spec["dnsConfig"]["nameservers"],
        serde_json::json!([tenant_dns.nameserver])
    );
    assert_eq!(
        spec["dnsConfig"]["searches"],
        serde_json::json!([
            "default.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local"
        ])
    );
    assert_eq!(
        spec["dnsConfig"]["options"],
        serde_json::json!([{"name": "ndots", "value": "5"}])
    );
    watch.abort();
}
