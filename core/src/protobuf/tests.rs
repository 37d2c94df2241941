use super::*;
use serde_json::json;

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protobuf")
}

/// Bodies recorded from kubectl v1.34 `create ...` decode to exactly the
/// JSON that `kubectl create ... --dry-run=client -o json` prints for the
/// same object (Go's `json.Marshal` of the typed object).
#[test]
fn kubectl_bodies_decode_to_kubectl_json() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let pb = entry.unwrap().path();
        if pb.extension().is_none_or(|e| e != "pb") {
            continue;
        }
        let want: Value =
            serde_json::from_slice(&std::fs::read(pb.with_extension("json")).unwrap()).unwrap();
        let got = decode(&std::fs::read(&pb).unwrap()).unwrap();
        assert_eq!(got, want, "{}", pb.display());
        checked += 1;
    }
    assert!(checked >= 17, "only {checked} fixtures");
}

#[test]
fn replicas_zero_survives_and_omitempty_zeros_go() {
    let body = std::fs::read(fixture_dir().join("deployment-zero.pb")).unwrap();
    let v = decode(&body).unwrap();
    assert_eq!(v["spec"]["replicas"], json!(0));
    // minReadySeconds 0 and paused false are on the wire but omitempty.
    assert!(v["spec"].get("minReadySeconds").is_none());
    assert!(v["spec"].get("paused").is_none());
    assert_eq!(v["status"], json!({}));
}

#[test]
fn secret_data_is_base64() {
    let body = std::fs::read(fixture_dir().join("secret-generic.pb")).unwrap();
    let v = decode(&body).unwrap();
    assert_eq!(v["data"]["password"], json!("czNjcj10")); // "s3cr=t"
}

/// Encodes a length-delimited field.
fn ld(field: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(field << 3 | 2));
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Encodes a varint field.
fn varint_field(field: u32, v: u64) -> Vec<u8> {
    [varint(u64::from(field << 3)), varint(v)].concat()
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let tm = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
    [MAGIC.to_vec(), ld(1, &tm), ld(2, raw)].concat()
}

fn meta(name: &str) -> Vec<u8> {
    ld(1, &ld(1, name.as_bytes()))
}

#[test]
fn envelope_fields() {
    let body = [envelope("apps/v1", "Deployment", b"xyz"), ld(4, b"ct")].concat();
    let env = parse_envelope(&body).unwrap();
    assert_eq!(env.api_version, "apps/v1");
    assert_eq!(env.kind, "Deployment");
    assert_eq!(env.raw, b"xyz");
    assert_eq!(env.content_type, "ct");
    assert_eq!(
        parse_envelope(b"{\"kind\":1}"),
        Err(ProtobufError::MissingPrefix)
    );
    let enc = [envelope("v1", "Pod", b""), ld(3, b"gzip")].concat();
    assert_eq!(
        parse_envelope(&enc),
        Err(ProtobufError::ContentEncoding("gzip".into()))
    );
    let bad = [MAGIC.to_vec(), varint_field(1, 3)].concat();
    assert!(matches!(
        parse_envelope(&bad),
        Err(ProtobufError::WrongWireType {
            field: "typeMeta",
            wire: 0
        })
    ));
}

#[test]
fn unknown_kind_and_delete_options() {
    let body = envelope(
        "storagemigration.k8s.io/v1beta1",
        "StorageVersionMigration",
        &meta("x"),
    );
    assert_eq!(
        decode(&body),
        Err(ProtobufError::UnknownKind {
            api_version: "storagemigration.k8s.io/v1beta1".into(),
            kind: "StorageVersionMigration".into()
        })
    );
    assert!(is_known_kind("networking.k8s.io/v1", "Ingress"));
    assert!(is_known_kind("scheduling.k8s.io/v1", "PriorityClass"));
    assert!(!is_known_kind("v2", "Pod"));
    assert!(is_known_kind("v1", "Pod"));
    // DeleteOptions{gracePeriodSeconds=1: 0, preconditions=2{uid=1}, dryRun=5}
    let raw = [
        varint_field(1, 0),
        ld(2, &ld(1, b"u-1")),
        ld(5, b"All"),
        ld(4, b"Foreground"),
    ]
    .concat();
    let v = decode(&envelope("apps/v1", "DeleteOptions", &raw)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
               "preconditions": {"uid": "u-1"}, "dryRun": ["All"],
               "propagationPolicy": "Foreground"})
    );
}

/// Special types through a Lease (MicroTime, pointer ints) and a
/// ControllerRevision (RawExtension) and a Service (IntOrString).
#[test]
fn special_types() {
    // Lease spec: holderIdentity=1, leaseDurationSeconds=2 (0 kept: pointer),
    // acquireTime=3 MicroTime{seconds, nanos}.
    let micro = [varint_field(1, 1_700_000_000), varint_field(2, 123_456_789)].concat();
    let spec = [ld(1, b"me"), varint_field(2, 0), ld(3, &micro)].concat();
    let raw = [meta("l"), ld(2, &spec)].concat();
    let v = decode(&envelope("coordination.k8s.io/v1", "Lease", &raw)).unwrap();
    assert_eq!(
        v["spec"],
        json!({"holderIdentity": "me", "leaseDurationSeconds": 0,
               "acquireTime": "2023-11-14T22:13:20.123456Z"})
    );
    // ControllerRevision: data=2 RawExtension{raw=1}, revision=3.
    let raw = [
        meta("r"),
        ld(2, &ld(1, br#"{"a":[1]}"#)),
        varint_field(3, 7),
    ]
    .concat();
    let v = decode(&envelope("apps/v1", "ControllerRevision", &raw)).unwrap();
    assert_eq!(v["data"], json!({"a": [1]}));
    assert_eq!(v["revision"], json!(7));
    let raw = [meta("r"), ld(2, &ld(1, b"{not json"))].concat();
    assert!(matches!(
        decode(&envelope("apps/v1", "ControllerRevision", &raw)),
        Err(ProtobufError::RawNotJson { .. })
    ));
    // Service port targetPort=4 IntOrString: string form, and int 0 (type 0).
    let port_s = [
        varint_field(3, 80),
        ld(4, &[varint_field(1, 1), ld(3, b"http")].concat()),
    ]
    .concat();
    let port_0 = [varint_field(3, 81), ld(4, b"")].concat();
    let spec = [ld(1, &port_s), ld(1, &port_0)].concat();
    let raw = [meta("s"), ld(2, &spec)].concat();
    let v = decode(&envelope("v1", "Service", &raw)).unwrap();
    assert_eq!(
        v["spec"]["ports"],
        json!([{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 0}])
    );
}

#[test]
fn times() {
    assert_eq!(format_time(0, 0, false), Ok(json!("1970-01-01T00:00:00Z")));
    assert_eq!(
        format_time(951_782_400, 5_000, true),
        Ok(json!("2000-02-29T00:00:00.000005Z"))
    );
    assert_eq!(format_time(-62_135_596_800, 0, false), Ok(Value::Null));
    assert_eq!(
        format_time(-1, 1_500_000_000, false),
        Ok(json!("1970-01-01T00:00:00Z"))
    );
    assert_eq!(
        format_time(253_402_300_799, 0, false),
        Ok(json!("9999-12-31T23:59:59Z"))
    );
    assert_eq!(
        format_time(i64::MAX, 0, false),
        Err(ProtobufError::TimeOutOfRange)
    );
    assert_eq!(
        format_time(i64::MAX, i64::from(i32::MAX), false),
        Err(ProtobufError::TimeOutOfRange)
    );
    // A metadata.creationTimestamp on the wire.
    let ts = ld(8, &varint_field(1, 86_400));
    let raw = ld(1, &[ld(1, b"n"), ts].concat());
    let v = decode(&envelope("v1", "Namespace", &raw)).unwrap();
    assert_eq!(
        v["metadata"]["creationTimestamp"],
        json!("1970-01-02T00:00:00Z")
    );
}

#[test]
fn durations() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(1), "1ns");
    assert_eq!(go_duration(1_500), "1.5\u{b5}s");
    assert_eq!(go_duration(1_500_000), "1.5ms");
    assert_eq!(go_duration(1_000_000_000), "1s");
    assert_eq!(go_duration(90_000_000_000), "1m30s");
    assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    assert_eq!(go_duration(-2_500_000_000), "-2.5s");
    assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
}

#[test]
fn base64_matches_std() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0xfc]), "//79/A==");
}

#[test]
fn scalars_maps_and_merging() {
    // ConfigMap: binaryData map<string,bytes>=3, data map=2 with an entry
    // lacking its value, immutable=4 false (pointer: kept).
    let raw = [
        meta("c"),
        ld(2, &ld(1, b"k")),
        ld(3, &[ld(1, b"b"), ld(2, &[0, 1, 2])].concat()),
        varint_field(4, 0),
    ]
    .concat();
    let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(v["data"], json!({"k": ""}));
    assert_eq!(v["binaryData"], json!({"b": "AAEC"}));
    assert_eq!(v["immutable"], json!(false));
    // Two metadata occurrences merge; a later zero scalar clears the earlier.
    let raw = [
        ld(1, &[ld(1, b"a"), ld(3, b"ns")].concat()),
        ld(1, &[ld(3, b"")].concat()),
    ]
    .concat();
    let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(v["metadata"], json!({"name": "a"}));
    // Negative int32 (10-byte varint) and packed repeated int64.
    // PodSecurityContext{runAsUser=2: -5, supplementalGroups=4 packed}
    let sc = [varint_field(2, (-5i64) as u64), ld(4, &[1, 2, 0x80, 0x01])].concat();
    let pod_spec = ld(14, &sc); // PodSpec.securityContext=14
    let raw = [meta("p"), ld(2, &pod_spec)].concat();
    let v = decode(&envelope("v1", "Pod", &raw)).unwrap();
    assert_eq!(
        v["spec"]["securityContext"],
        json!({"runAsUser": -5, "supplementalGroups": [1, 2, 128]})
    );
    // Unknown fields are skipped; invalid UTF-8 becomes U+FFFD as in Go JSON.
    let raw = [
        meta("\u{e9}"),
        varint_field(99, 1),
        ld(2, &ld(1, &[b'a', 0xff])),
    ]
    .concat();
    let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(v["data"], json!({"a\u{fffd}": ""}));
}

#[test]
fn inline_structs_flatten() {
    // Volume{name=1, volumeSource=2 inline{configMap=19{localObjectReference=1 inline{name=1}}}}
    let cm = ld(19, &ld(1, &ld(1, b"cfg")));
    let vol = [ld(1, b"v"), ld(2, &cm)].concat();
    let raw = [meta("p"), ld(2, &ld(1, &vol))].concat();
    let v = decode(&envelope("v1", "Pod", &raw)).unwrap();
    assert_eq!(
        v["spec"]["volumes"],
        json!([{"name": "v", "configMap": {"name": "cfg"}}])
    );
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    let good = std::fs::read(fixture_dir().join("deployment-web.pb")).unwrap();
    // Every truncation and every single-byte corruption: no panic.
    for n in 0..good.len() {
        let _ = decode(&good[..n]);
        for b in [0x00, 0x07, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[n] = b;
            let _ = decode(&bad);
        }
    }
    // Wrong wire type on a known field.
    let raw = [varint_field(1, 5)].concat();
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", &raw)),
        Err(ProtobufError::WrongWireType {
            field: "metadata",
            wire: 0
        })
    );
    // The served types are not recursive, so nesting is bounded by the
    // schema; the cap is still enforced.
    let depth_err = merge_fields(&table::MESSAGES[0], b"", MAX_DEPTH + 1, &mut Map::new());
    assert_eq!(depth_err, Err(ProtobufError::TooDeep));
}

/// Pseudo-random object bytes for every kind: errors or values, no panic.
#[test]
fn random_bytes_never_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for &(group, version, kind, _) in table::KINDS {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        for _ in 0..300 {
            let len = (next() % 96) as usize;
            // Bias towards plausible keys: small field numbers, wire type 0 or 2.
            let raw: Vec<u8> = (0..len)
                .map(|i| {
                    let r = next();
                    if i % 3 == 0 {
                        ((r % 12) << 3 | [0, 2, 2, 1, 5][(r >> 8) as usize % 5]) as u8
                    } else {
                        (r >> 16) as u8 % 24
                    }
                })
                .collect();
            let _ = decode_object(&api_version, kind, &raw);
        }
    }
}

/// kubectl `create token` sends a TokenRequest and `auth whoami` a
/// SelfSubjectReview as protobuf (authentication.k8s.io/v1).
#[test]
fn token_request_and_self_subject_review() {
    // TokenRequest{metadata, spec{audiences=1 ["foo"], boundObjectRef=3
    // {kind=1 Pod, apiVersion=2 v1, name=3 p, uid=4 u}, expirationSeconds=4 600}}
    let spec = [
        ld(1, b"foo"),
        ld(
            3,
            &[ld(1, b"Pod"), ld(2, b"v1"), ld(3, b"p"), ld(4, b"u")].concat(),
        ),
        varint_field(4, 600),
    ]
    .concat();
    let raw = [ld(1, b""), ld(2, &spec)].concat();
    let v = decode(&envelope("authentication.k8s.io/v1", "TokenRequest", &raw)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "metadata": {}, "spec": {"audiences": ["foo"], "expirationSeconds": 600,
               "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}}})
    );
    // expirationSeconds is a Go *int64: an explicit 0 is kept (and rejected
    // by validation, not silently defaulted).
    let raw = [ld(1, b""), ld(2, &varint_field(4, 0))].concat();
    let v = decode(&envelope("authentication.k8s.io/v1", "TokenRequest", &raw)).unwrap();
    assert_eq!(v["spec"], json!({"expirationSeconds": 0}));

    let v = decode(&envelope(
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &ld(1, b""),
    ))
    .unwrap();
    assert_eq!(v["kind"], "SelfSubjectReview");
}
