use super::*;
use serde_json::json;

fn deploy_schema() -> ApplySchema {
    ApplySchema::builtin("apps", "Deployment")
}

fn f(s: &str) -> PathElement {
    PathElement::Field(s.into())
}

fn k(s: &str) -> PathElement {
    PathElement::Key(s.into())
}

fn all(_: &[PathElement]) -> bool {
    true
}

fn writer<'a>(manager: &'a str, tracked: &'a dyn Fn(&[PathElement]) -> bool) -> Writer<'a> {
    Writer {
        manager,
        api_version: "apps/v1",
        subresource: "",
        time: "2026-01-01T00:00:00Z",
        tracked,
    }
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "c", "image": image}]}}
        }
    })
}

#[test]
fn path_strings_match_upstream() {
    let cases: Vec<(Path, &str)> = vec![
        (vec![f("spec"), f("replicas")], ".spec.replicas"),
        (
            vec![f("spec"), f("containers"), k(r#"{"name":"c"}"#), f("image")],
            r#".spec.containers[name="c"].image"#,
        ),
        (
            vec![f("ports"), k(r#"{"port":80,"protocol":"TCP"}"#)],
            r#".ports[port=80,protocol="TCP"]"#,
        ),
        (
            vec![f("finalizers"), PathElement::Value("\"a\"".into())],
            r#".finalizers[="a"]"#,
        ),
        (vec![f("args"), PathElement::Index(3)], ".args[3]"),
    ];
    for (p, want) in cases {
        assert_eq!(path_string(&p), want);
    }
}

#[test]
fn fields_v1_round_trip_and_dot_for_members_with_children() {
    let set: FieldSet = [
        vec![f("metadata"), f("labels"), f("app")],
        vec![f("spec"), f("containers"), k(r#"{"name":"c"}"#)],
        vec![f("spec"), f("containers"), k(r#"{"name":"c"}"#), f("image")],
        vec![f("spec"), f("fin"), PathElement::Value("\"x\"".into())],
        vec![f("spec"), f("args"), PathElement::Index(0)],
    ]
    .into_iter()
    .collect();
    let v = set.to_fields_v1();
    assert_eq!(
        v,
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}},
                "f:fin": {"v:\"x\"": {}},
                "f:args": {"i:0": {}}
            }
        })
    );
    assert_eq!(FieldSet::from_fields_v1(&v).unwrap(), set);
}

#[test]
fn fields_v1_decode_errors() {
    for bad in [
        json!([]),
        json!({"x:foo": {}}),
        json!({"f:a": 1}),
        json!({"k:notjson": {}}),
        json!({"k:[1]": {}}),
        json!({"i:-1": {}}),
        json!({"nocolon": {}}),
    ] {
        assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
    }
    // Keys are canonicalised on decode.
    let s = FieldSet::from_fields_v1(&json!({"k:{\"b\":1, \"a\":2}": {}})).unwrap();
    assert!(s.contains(&[k(r#"{"a":2,"b":1}"#)]));
}

#[test]
fn schema_from_smp_and_upstream_overrides() {
    let s = deploy_schema();
    let c = "spec.template.spec.containers";
    let cases = [
        (c.to_string(), ListType::Map(vec!["name"])),
        (format!("{c}[].env"), ListType::Map(vec!["name"])),
        (
            format!("{c}[].ports"),
            ListType::Map(vec!["containerPort", "protocol"]),
        ),
        (format!("{c}[].args"), ListType::Atomic),
        ("spec.template.spec.tolerations".into(), ListType::Atomic),
        ("metadata.finalizers".into(), ListType::Set),
        (
            "spec.template.spec.topologySpreadConstraints".into(),
            ListType::Map(vec!["topologyKey", "whenUnsatisfiable"]),
        ),
    ];
    for (path, want) in cases {
        assert_eq!(s.list_type(&path), want, "{path}");
    }
    assert!(s.atomic_map("spec.selector"));
    let svc = ApplySchema::builtin("", "Service");
    assert_eq!(
        svc.list_type("spec.ports"),
        ListType::Map(vec!["port", "protocol"])
    );
    assert!(svc.atomic_map("spec.selector"));
    // Unknown kinds: only metadata lists.
    let cm = ApplySchema::builtin("", "ConfigMap");
    assert_eq!(cm.list_type("metadata.finalizers"), ListType::Set);
    assert_eq!(cm.list_type("data"), ListType::Atomic);
}

#[test]
fn field_set_table() {
    let s = deploy_schema();
    let cases = vec![
        (json!({"a": 1}), json!({"f:a": {}})),
        (json!({"a": null, "b": {}}), json!({"f:a": {}, "f:b": {}})),
        (json!({"a": {"b": "x"}}), json!({"f:a": {"f:b": {}}})),
        // Non-atomic empty list: not a member.
        (json!({"metadata": {"finalizers": []}}), json!({})),
        (
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}}),
        ),
        // Atomic list: the list itself.
        (json!({"args": [1, 2]}), json!({"f:args": {}})),
        // Atomic map.
        (
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
            json!({"f:spec": {"f:selector": {}}}),
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "i", "ports": [{"containerPort": 80}]}
            ]}}}}),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}, "f:ports": {
                    "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
                }}
            }}}}}),
        ),
        // Items without their key fall back to their index.
        (
            json!({"spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}}),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "i:0": {".": {}, "f:image": {}}
            }}}}}),
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(field_set(&obj, &s).to_fields_v1(), want, "{obj}");
    }
}

#[test]
fn compare_table() {
    let s = deploy_schema();
    // (old, new, added, modified, removed)
    let cases = vec![
        (
            json!({"a": 1}),
            json!({"a": 2}),
            json!({}),
            json!({"f:a": {}}),
            json!({}),
        ),
        (
            json!({}),
            json!({"m": {"x": 1}}),
            json!({"f:m": {".": {}, "f:x": {}}}),
            json!({}),
            json!({}),
        ),
        (
            json!({"m": {"x": 1, "y": 2}}),
            json!({"m": {"x": 1}}),
            json!({}),
            json!({}),
            json!({"f:m": {"f:y": {}}}),
        ),
        // Both empty: a leaf.
        (
            json!({"m": null}),
            json!({"m": {}}),
            json!({}),
            json!({"f:m": {}}),
            json!({}),
        ),
        // Atomic list changes as one.
        (
            json!({"args": [1]}),
            json!({"args": [1, 2]}),
            json!({}),
            json!({"f:args": {}}),
            json!({}),
        ),
        // Associative list: item added, item field modified.
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "2"}, {"name": "b"}
            ]}}}}),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"b\"}": {".": {}, "f:name": {}}
            }}}}}),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"a\"}": {"f:image": {}}
            }}}}}),
            json!({}),
        ),
        // Type change is a leaf modification.
        (
            json!({"a": {"b": 1}}),
            json!({"a": "x"}),
            json!({}),
            json!({"f:a": {}}),
            json!({}),
        ),
    ];
    for (old, new, added, modified, removed) in cases {
        let c = compare(&old, &new, &s);
        assert_eq!(c.added.to_fields_v1(), added, "added {old} -> {new}");
        assert_eq!(
            c.modified.to_fields_v1(),
            modified,
            "modified {old} -> {new}"
        );
        assert_eq!(c.removed.to_fields_v1(), removed, "removed {old} -> {new}");
    }
}

#[test]
fn merge_table() {
    let s = deploy_schema();
    let c = |v: Value| json!({"spec": {"template": {"spec": {"containers": v}}}});
    let cases = vec![
        // Maps merge, scalars replaced.
        (
            json!({"a": {"x": 1, "y": 2}, "b": 1}),
            json!({"a": {"x": 9}}),
            json!({"a": {"x": 9, "y": 2}, "b": 1}),
        ),
        // Atomic list replaced.
        (
            json!({"args": [1, 2]}),
            json!({"args": [3]}),
            json!({"args": [3]}),
        ),
        // Sets union; shared and new items in applied order, live-only kept.
        (
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
            json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
        ),
        // Associative lists merge on key.
        (
            c(json!([{"name": "a", "image": "1", "tty": true}, {"name": "b", "image": "1"}])),
            c(json!([{"name": "a", "image": "2"}])),
            c(json!([{"name": "a", "image": "2", "tty": true}, {"name": "b", "image": "1"}])),
        ),
        (
            c(json!([{"name": "a"}])),
            c(json!([{"name": "z"}, {"name": "a", "image": "x"}])),
            c(json!([{"name": "z"}, {"name": "a", "image": "x"}])),
        ),
        // Atomic map replaced.
        (
            json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}),
            json!({"spec": {"selector": {"matchExpressions": []}}}),
            json!({"spec": {"selector": {"matchExpressions": []}}}),
        ),
    ];
    for (live, config, want) in cases {
        assert_eq!(merge(&live, &config, &s), want, "{live} + {config}");
    }
}

#[test]
fn remove_paths_removes_subtrees_and_items() {
    let s = deploy_schema();
    let mut obj = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
        "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}});
    let set: FieldSet = [
        vec![
            f("metadata"),
            f("finalizers"),
            PathElement::Value("\"a\"".into()),
        ],
        vec![f("metadata"), f("labels"), f("x")],
        vec![
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            k(r#"{"name":"b"}"#),
        ],
        vec![f("nothing"), f("here")],
    ]
    .into_iter()
    .collect();
    remove_paths(&mut obj, &set, &s);
    assert_eq!(
        obj,
        json!({"metadata": {"finalizers": ["b"], "labels": {"y": "2"}},
            "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}})
    );
}

#[test]
fn entries_round_trip_merge_and_sort() {
    let v = json!([
        {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:02Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:a": {}}},
        {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:01Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:b": {}}},
        {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": "2026-01-01T00:00:09Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:c": {}}},
        {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:02Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:d": {}}, "subresource": "status"},
        {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:02Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:e": {}}}
    ]);
    let entries = decode_entries(Some(&v)).unwrap();
    assert_eq!(entries.len(), 4, "same identity merged");
    let out = encode_entries(&entries);
    let order: Vec<(&str, &str)> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap(),
                e.get("subresource").and_then(Value::as_str).unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![("z", ""), ("a", ""), ("b", ""), ("b", "status")]
    );
    assert_eq!(out[2]["fieldsV1"], json!({"f:a": {}, "f:e": {}}));
}

#[test]
fn entries_decode_errors() {
    let base = json!({"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1"});
    let mut cases = Vec::new();
    for (key, val, msg) in [
        (
            "operation",
            json!("Patch"),
            "operation must be `Apply` or `Update`",
        ),
        ("apiVersion", json!(""), "apiVersion must not be empty"),
        (
            "fieldsType",
            json!(""),
            "missing fieldsType in managed fields entry 0",
        ),
        (
            "fieldsType",
            json!("FieldsV2"),
            "invalid fieldsType \"FieldsV2\"",
        ),
        ("fieldsV1", json!({"q:x": {}}), "invalid fieldsV1"),
    ] {
        let mut e = base.clone();
        e[key] = val;
        cases.push((json!([e]), msg));
    }
    cases.push((json!({}), "must be a list"));
    for (v, msg) in cases {
        let err = decode_entries(Some(&v)).unwrap_err();
        assert!(err.contains(msg), "{err} lacks {msg}");
    }
    assert!(decode_entries(None).unwrap().is_empty());
    assert!(decode_entries(Some(&Value::Null)).unwrap().is_empty());
}

#[test]
fn update_moves_changed_fields_and_drops_empty_managers() {
    let s = deploy_schema();
    let mut entries = Vec::new();
    let create = deployment(1, "a");
    update(
        &json!({}),
        &create,
        &mut entries,
        &writer("creator", &all),
        &s,
    );
    assert_eq!(entries.len(), 1);
    assert!(entries[0].fields.contains(&[f("spec"), f("replicas")]));
    // Another manager changes replicas: it moves.
    let scaled = deployment(3, "a");
    update(&create, &scaled, &mut entries, &writer("scaler", &all), &s);
    assert_eq!(entries.len(), 2);
    assert!(!entries[0].fields.contains(&[f("spec"), f("replicas")]));
    assert_eq!(
        entries[1].fields.to_fields_v1(),
        json!({"f:spec": {"f:replicas": {}}})
    );
    // A no-op update from a third manager adds nothing.
    update(&scaled, &scaled, &mut entries, &writer("noop", &all), &s);
    assert_eq!(entries.len(), 2);
    // The creator takes replicas back: the scaler's entry empties and goes.
    let back = deployment(1, "a");
    update(&scaled, &back, &mut entries, &writer("creator", &all), &s);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].manager, "creator");
    // Removing a field removes it from its owner.
    let mut removed = back.clone();
    removed["spec"].as_object_mut().unwrap().remove("replicas");
    update(&back, &removed, &mut entries, &writer("other", &all), &s);
    assert!(!entries[0].fields.contains(&[f("spec"), f("replicas")]));
    assert_eq!(entries.len(), 1, "a pure removal gives the writer nothing");
}

#[test]
fn update_respects_tracked_filter() {
    let s = deploy_schema();
    let mut entries = Vec::new();
    let no_status = |p: &[PathElement]| p.first() != Some(&PathElement::Field("status".into()));
    let obj = json!({"spec": {"a": 1}, "status": {"b": 2}});
    update(&json!({}), &obj, &mut entries, &writer("m", &no_status), &s);
    assert_eq!(
        entries[0].fields.to_fields_v1(),
        json!({"f:spec": {".": {}, "f:a": {}}})
    );
}

#[test]
fn apply_creates_owns_conflicts_forces_and_prunes() {
    let s = deploy_schema();
    let mut entries = Vec::new();
    // First apply onto an empty object.
    let cfg1 = deployment(2, "a");
    let live = apply(
        &json!({}),
        &cfg1,
        &mut entries,
        &writer("one", &all),
        false,
        &s,
    )
    .unwrap();
    assert_eq!(live, cfg1);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].operation, Operation::Apply);
    // A second applier sets the same value: shared ownership, no conflict.
    let cfg2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2}});
    let live = apply(&live, &cfg2, &mut entries, &writer("two", &all), false, &s).unwrap();
    assert_eq!(entries.len(), 2);
    // A different value conflicts with "one" only.
    let cfg3 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 5}});
    let before = entries.clone();
    let err = apply(
        &live,
        &cfg3,
        &mut entries,
        &writer("three", &all),
        false,
        &s,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"one\":\n- .spec.replicas\nconflicts with \"two\":\n- .spec.replicas"
    );
    assert_eq!(entries, before, "a conflict changes nothing");
    // Forced: three takes replicas from both.
    let live = apply(&live, &cfg3, &mut entries, &writer("three", &all), true, &s).unwrap();
    assert_eq!(live["spec"]["replicas"], 5);
    assert!(
        entries
            .iter()
            .filter(|e| e.manager != "three")
            .all(|e| !e.fields.contains(&[f("spec"), f("replicas")]))
    );
    // one drops its labels from the config: removed since nobody else owns them.
    let mut cfg4 = deployment(2, "a");
    cfg4["metadata"].as_object_mut().unwrap().remove("labels");
    cfg4["spec"].as_object_mut().unwrap().remove("replicas");
    let live = apply(&live, &cfg4, &mut entries, &writer("one", &all), false, &s).unwrap();
    assert!(live.pointer("/metadata/labels/app").is_none());
    assert_eq!(live["spec"]["replicas"], 5, "owned by three: kept");
}

#[test]
fn apply_prune_keeps_fields_other_managers_own() {
    let s = deploy_schema();
    let mut entries = Vec::new();
    let cfg = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
    let live = apply(
        &json!({}),
        &cfg,
        &mut entries,
        &writer("x", &all),
        false,
        &s,
    )
    .unwrap();
    // Another manager updates label b (same value → still changes nothing;
    // give it a new value so it owns b).
    let mut changed = live.clone();
    changed["metadata"]["labels"]["b"] = json!("3");
    update(&live, &changed, &mut entries, &writer("y", &all), &s);
    // x stops applying both labels: a goes, b (owned by y) stays.
    let live = apply(
        &changed,
        &json!({"metadata": {}}),
        &mut entries,
        &writer("x", &all),
        false,
        &s,
    )
    .unwrap();
    assert_eq!(live, json!({"metadata": {"labels": {"b": "3"}}}));
}

#[test]
fn apply_removes_list_items_and_merges_sets() {
    let s = deploy_schema();
    let mut entries = Vec::new();
    let c = |v: Value| json!({"spec": {"template": {"spec": {"containers": v}}}});
    let live = apply(
        &json!({}),
        &c(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}])),
        &mut entries,
        &writer("x", &all),
        false,
        &s,
    )
    .unwrap();
    let live = apply(
        &live,
        &c(json!([{"name": "a", "image": "1"}])),
        &mut entries,
        &writer("x", &all),
        false,
        &s,
    )
    .unwrap();
    assert_eq!(live, c(json!([{"name": "a", "image": "1"}])));
    let fins = |v: Value| json!({"metadata": {"finalizers": v}});
    let live = apply(
        &live,
        &fins(json!(["p"])),
        &mut entries,
        &writer("y", &all),
        false,
        &s,
    )
    .unwrap();
    let live = apply(
        &live,
        &fins(json!(["q"])),
        &mut entries,
        &writer("z", &all),
        false,
        &s,
    )
    .unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["p", "q"]));
}

#[test]
fn apply_noop_keeps_time() {
    let s = deploy_schema();
    let mut entries = Vec::new();
    let cfg = json!({"spec": {"replicas": 1}});
    let live = apply(
        &json!({}),
        &cfg,
        &mut entries,
        &writer("x", &all),
        false,
        &s,
    )
    .unwrap();
    let later = Writer {
        time: "2030-01-01T00:00:00Z",
        ..writer("x", &all)
    };
    apply(&live, &cfg, &mut entries, &later, false, &s).unwrap();
    assert_eq!(entries[0].time.as_deref(), Some("2026-01-01T00:00:00Z"));
}

#[test]
fn single_conflict_message_and_manager_display() {
    let e = ManagerEntry {
        manager: "kubectl-client-side-apply".into(),
        operation: Operation::Update,
        api_version: "apps/v1".into(),
        time: None,
        subresource: String::new(),
        fields: FieldSet::new(),
    };
    let c = Conflicts(vec![Conflict {
        manager: e.display(),
        field: ".spec.replicas".into(),
    }]);
    assert_eq!(
        c.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let s = ManagerEntry {
        subresource: "status".into(),
        ..e
    };
    assert_eq!(
        s.display(),
        "\"kubectl-client-side-apply\" with subresource \"status\" using apps/v1"
    );
}

#[test]
fn duplicate_entries_are_found() {
    let s = deploy_schema();
    let c = |v: Value| json!({"spec": {"template": {"spec": {"containers": v}}}});
    let cases = vec![
        (c(json!([{"name": "a"}, {"name": "b"}])), None),
        (
            c(json!([{"name": "a"}, {"name": "a", "image": "x"}])),
            Some(r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#),
        ),
        (
            json!({"metadata": {"finalizers": ["x", "y", "x"]}}),
            Some(r#".metadata.finalizers: duplicate entries for value "x""#),
        ),
        (
            json!({"spec": {"template": {"spec": {"tolerations": [1, 1]}}}}),
            None,
        ),
        (
            c(json!([{"name": "a", "env": [{"name": "E"}, {"name": "E"}]}])),
            Some(
                r#".spec.template.spec.containers[name="a"].env: duplicate entries for key [name="E"]"#,
            ),
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(duplicate_entry(&obj, &s).as_deref(), want, "{obj}");
    }
}
