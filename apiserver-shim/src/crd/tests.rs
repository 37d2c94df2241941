use super::*;
use serde_json::json;

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_message).collect()
}

fn crontab_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                {"name": "v1", "served": true, "storage": true,
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}},
                {"name": "v1alpha1", "served": false, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
            ],
        },
    })
}

#[test]
fn defaults_fill_names_and_the_conversion_strategy() {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    assert_eq!(crd["spec"]["names"]["singular"], "crontab");
    assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
    assert_eq!(crd["spec"]["conversion"]["strategy"], "None");
    assert!(
        validate_create(&crd).is_empty(),
        "{:?}",
        messages(&validate_create(&crd))
    );
}

#[test]
fn crd_validation_answers_with_kubes_messages() {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    crd["metadata"]["name"] = json!("crontabs.other.example");
    crd["spec"]["group"] = json!("example");
    crd["spec"]["scope"] = json!("Everywhere");
    crd["spec"]["names"]["listKind"] = json!("CronTab");
    crd["spec"]["names"]["shortNames"] = json!(["CT"]);
    crd["spec"]["versions"][0]["storage"] = json!(true);
    crd["spec"]["versions"][2]["schema"] = json!({});
    crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["bad"] =
        json!({"description": "no type"});
    let got = messages(&validate_create(&crd));
    for want in [
        "metadata.name: Invalid value: \"crontabs.other.example\": must be spec.names.plural+\".\"+spec.group",
        "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
        "spec.scope: Unsupported value: \"Everywhere\": supported values: \"Cluster\", \"Namespaced\"",
        "spec.names.listKind: Invalid value: \"CronTab\": kind and listKind may not be the same",
        "spec.versions[2].schema.openAPIV3Schema: Required value: schemas are required",
        "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[bad].type: Required value: must not be empty for specified object fields",
    ] {
        assert!(
            got.iter().any(|m| m == want),
            "missing {want:?} in {got:#?}"
        );
    }
    assert!(got.iter().any(|m| {
        m.starts_with("spec.names.shortNames[0]: Invalid value: \"CT\": a DNS-1035 label")
    }));
    assert!(
        got.iter()
            .any(|m| m.starts_with("spec.versions: Invalid value: ")
                && m.ends_with("must have exactly one version marked as storage version"))
    );
}

#[test]
fn selectable_fields_are_simple_paths_at_most_eight() {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    crd["spec"]["versions"][1]["selectableFields"] = json!([
        {"jsonPath": ".spec.a"}, {"jsonPath": ".spec.a"}, {"jsonPath": ".metadata.name"},
        {"jsonPath": "spec[0]"}, {"jsonPath": ".b"}, {"jsonPath": ".c"}, {"jsonPath": ".d"},
        {"jsonPath": ".e"}, {"jsonPath": ".f"},
    ]);
    let got = messages(&validate_create(&crd));
    assert_eq!(
        got,
        [
            "spec.versions[1].selectableFields: Too many: 9: must have at most 8 items",
            "spec.versions[1].selectableFields[1].jsonPath: Duplicate value: \".spec.a\"",
            "spec.versions[1].selectableFields[2].jsonPath: Invalid value: \".metadata.name\": is a selectable field of every resource already",
            "spec.versions[1].selectableFields[3].jsonPath: Invalid value: \"spec[0]\": must be a simple json path",
        ]
    );
    crd["spec"]["versions"][1]["selectableFields"] = json!([{"jsonPath": ".spec.replicas"}]);
    prepare_create(&mut crd);
    let table = CustomTable::from_crds([&crd]);
    let v1 = table
        .lookup("stable.example.com", "v1", "crontabs")
        .unwrap();
    assert!(v1.selectable("spec.replicas") && !v1.selectable("spec.other"));
}

#[test]
fn built_in_and_protected_groups_and_scale_paths_are_checked() {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    crd["metadata"]["name"] = json!("clusterrolebindings.rbac.authorization.k8s.io");
    crd["spec"]["group"] = json!("rbac.authorization.k8s.io");
    crd["spec"]["names"]["plural"] = json!("clusterrolebindings");
    crd["spec"]["versions"][1]["subresources"]["scale"] =
        json!({"specReplicasPath": ".status.replicas", "labelSelectorPath": "selector"});
    let got = messages(&validate_create(&crd));
    assert_eq!(
        got,
        [
            "spec.group: Invalid value: \"rbac.authorization.k8s.io\": is a built-in API group of this server",
            "metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
            "spec.versions[1].subresources.scale.specReplicasPath: Invalid value: \".status.replicas\": should be a json path under .spec",
            "spec.versions[1].subresources.scale.statusReplicasPath: Required value",
            "spec.versions[1].subresources.scale.labelSelectorPath: Invalid value: \"selector\": must be a simple json path",
        ]
    );
}

#[test]
fn custom_objects_live_apart_and_read_as_the_version_asked_for() {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    prepare_create(&mut crd);
    let table = CustomTable::from_crds([&crd]);
    let v1 = table
        .lookup("stable.example.com", "v1", "crontabs")
        .unwrap();
    assert_eq!(
        v1.key(Some("ns"), "a"),
        "/customresources/stable.example.com/crontabs/ns/a"
    );
    // Stored while another version was the storage one: read as v1.
    let old = json!({"apiVersion": "stable.example.com/v1beta1", "kind": "CronTab"});
    assert!(v1.converts());
    assert_eq!(v1.from_storage(old)["apiVersion"], "stable.example.com/v1");
    // Names come from the validated spec, never from a written status.
    crd["status"]["acceptedNames"]["plural"] = json!("secrets");
    let table = CustomTable::from_crds([&crd]);
    assert!(
        table
            .lookup("stable.example.com", "v1", "secrets")
            .is_none()
    );
    assert!(
        table
            .lookup("stable.example.com", "v1", "crontabs")
            .is_some()
    );
}

#[test]
fn unchanged_fields_keep_their_old_errors_on_update() {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"] = json!({
        "type": "object", "required": ["cron"],
        "properties": {"replicas": {"type": "integer", "maximum": 3}, "cron": {"type": "string"}},
    });
    prepare_create(&mut crd);
    let table = CustomTable::from_crds([&crd]);
    let Def::Custom(v1) = table
        .lookup("stable.example.com", "v1", "crontabs")
        .unwrap()
    else {
        unreachable!()
    };
    // Stored before the schema tightened: too many replicas, no cron.
    let old = json!({"metadata": {"name": "a"}, "spec": {"replicas": 5}});
    let mut same = old.clone();
    same["metadata"]["finalizers"] = json!([]);
    assert!(v1.default_and_validate(&mut same, Some(&old)).is_empty());
    let mut changed = old.clone();
    changed["spec"]["replicas"] = json!(6);
    assert_eq!(
        messages(&v1.default_and_validate(&mut changed, Some(&old))),
        [
            "spec.replicas: Invalid value: 6: spec.replicas in body should be less than or equal to 3",
            "spec.cron: Required value",
        ]
    );
    assert_eq!(
        schema::pointer_of("spec.ports[0].name"),
        "/spec/ports/0/name"
    );
    assert_eq!(schema::pointer_of(""), "");
    // A dotted map key does not lead back to its value: its error stays.
    let mut crd2 = crd.clone();
    crd2["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["labels"] = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let table = CustomTable::from_crds([&crd2]);
    let Def::Custom(v1) = table
        .lookup("stable.example.com", "v1", "crontabs")
        .unwrap()
    else {
        unreachable!()
    };
    let mut labels = old.clone();
    labels["spec"]["labels"] = json!({"app.kubernetes.io/name": 5});
    let got = messages(&v1.default_and_validate(&mut labels, Some(&old)));
    assert!(
        got.iter()
            .any(|m| m.starts_with("spec.labels.app.kubernetes.io/name: Invalid value: 5")),
        "{got:?}"
    );
}

#[test]
fn the_root_of_a_schema_is_an_object() {
    let errs = messages(&schema::validate_schema(&json!({"properties": {}}), "s"));
    assert_eq!(
        errs,
        ["s.type: Required value: must not be empty at the root"]
    );
    let errs = messages(&schema::validate_schema(&json!({"type": "string"}), "s"));
    assert_eq!(
        errs,
        ["s.type: Invalid value: \"string\": must be object at the root"]
    );
    let errs = messages(&schema::validate_schema(
        &json!({"type": "object", "properties": {"a": {"type": "array"}, "p": {"type": "string", "pattern": "("}}}),
        "s",
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0],
        "s.properties[a].items: Required value: must be specified"
    );
    assert!(errs[1].starts_with(
        "s.properties[p].pattern: Invalid value: \"(\": must be a valid regular expression"
    ));
    let metadata = |props: Value| {
        messages(&schema::validate_schema(
            &json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": props}}}),
            "s",
        ))
    };
    assert_eq!(
        metadata(
            json!({"name": {"type": "string", "maxLength": 20}, "generateName": {"type": "string"}})
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        metadata(json!({"labels": {"type": "object", "default": {"a": "b"}}})),
        [
            "s.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        ]
    );
}

#[test]
fn updates_keep_group_scope_and_stored_versions() {
    let mut old = crontab_crd();
    default_crd(&mut old);
    prepare_create(&mut old);
    assert_eq!(old["status"]["storedVersions"], json!(["v1"]));
    let mut new = old.clone();
    new["spec"]["scope"] = json!("Cluster");
    new["spec"]["versions"][1]["name"] = json!("v2");
    let got = messages(&validate_update(&new, &old));
    assert!(
        got.contains(&"spec.scope: Invalid value: \"Cluster\": field is immutable".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(
            &"status.storedVersions[0]: Invalid value: \"v1\": must appear in spec.versions"
                .to_string()
        ),
        "{got:?}"
    );
}

#[test]
fn a_deleted_crd_is_held_by_the_cleanup_finalizer() {
    let mut crd = crontab_crd();
    assert!(holds_deletion(&crd));
    begin_deletion(&mut crd);
    assert_eq!(crd["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
    let terminating = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Terminating")
        .unwrap();
    assert_eq!(terminating["reason"], "InstanceDeletionPending");
    crd["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert!(!holds_deletion(&crd));
}

#[test]
fn the_table_serves_each_served_version_of_accepted_crds() {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    // Not yet accepted: nothing served.
    assert!(CustomTable::from_crds([&crd]).iter().next().is_none());
    prepare_create(&mut crd);
    let table = CustomTable::from_crds([&crd]);
    let v1 = table
        .lookup("stable.example.com", "v1", "crontabs")
        .unwrap();
    assert!(v1.namespaced && v1.status && v1.generation);
    assert_eq!(v1.scale.unwrap().spec_replicas, ["spec", "replicas"]);
    assert_eq!(v1.short_names, ["ct"]);
    assert_eq!(v1.stored_version, Some("v1"));
    let beta = table
        .lookup("stable.example.com", "v1beta1", "crontabs")
        .unwrap();
    assert_eq!(beta.stored_version, Some("v1"));
    let stored = beta.to_storage(json!({"apiVersion": "stable.example.com/v1beta1"}));
    assert_eq!(stored["apiVersion"], "stable.example.com/v1");
    assert_eq!(
        beta.from_storage(stored)["apiVersion"],
        "stable.example.com/v1beta1"
    );
    assert!(
        table
            .lookup("stable.example.com", "v1alpha1", "crontabs")
            .is_none()
    );
    assert_eq!(
        table.groups(),
        [("stable.example.com", vec!["v1", "v1beta1"])]
    );
}

#[test]
fn versions_sort_in_kube_priority_order() {
    let mut vs = vec![
        "v1alpha1",
        "foo",
        "v2",
        "v1",
        "v1beta2",
        "v11alpha2",
        "v1beta1",
        "bar",
    ];
    vs.sort_by_key(|v| version_priority(v));
    assert_eq!(
        vs,
        [
            "v2",
            "v1",
            "v1beta2",
            "v1beta1",
            "v11alpha2",
            "v1alpha1",
            "bar",
            "foo"
        ]
    );
}

#[test]
fn pruning_drops_unspecified_fields_and_names_them() {
    let s = json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "a": {"type": "string"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
                "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
            }},
        },
    });
    let mut obj = json!({
        "apiVersion": "x/v1", "kind": "X",
        "metadata": {"name": "a", "bogus": 1},
        "spec": {
            "a": "x", "b": 1,
            "free": {"anything": {"goes": true}},
            "labels": {"k": "v"},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "extra": 1},
            "items": [{"n": 1, "m": 2}],
        },
        "status": {},
    });
    let pruned: Vec<String> = schema::prune(&mut obj, &s)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        pruned,
        [
            "metadata.bogus",
            "spec.b",
            "spec.items[0].m",
            "spec.template.extra",
            "status"
        ]
    );
    assert_eq!(obj["spec"]["free"]["anything"]["goes"], true);
    assert_eq!(obj["spec"]["template"]["kind"], "Pod");
    assert_eq!(obj["spec"]["labels"]["k"], "v");
    assert_eq!(obj["metadata"], json!({"name": "a"}));
}

#[test]
fn defaults_are_set_top_down() {
    let s = json!({"type": "object", "properties": {"spec": {
    "type": "object", "default": {},
    "properties": {
        "replicas": {"type": "integer", "default": 1},
        "mode": {"type": "string", "default": "fast"},
        "keep": {"type": "string", "nullable": true, "default": "x"},
        "ports": {"type": "array", "items": {"type": "object", "properties": {"protocol": {"type": "string", "default": "TCP"}}}},
    }}}});
    let mut obj = json!({"metadata": {}});
    schema::apply_defaults(&mut obj, &s);
    assert_eq!(
        obj["spec"],
        json!({"replicas": 1, "mode": "fast", "keep": "x"})
    );
    let mut obj = json!({"spec": {"mode": null, "keep": null, "gone": null, "ports": [{}]}});
    let with_gone = json!({"type": "object", "properties": {"spec": {
    "type": "object",
    "properties": {
        "mode": {"type": "string", "default": "fast"},
        "keep": {"type": "string", "nullable": true, "default": "x"},
        "gone": {"type": "string"},
        "ports": s["properties"]["spec"]["properties"]["ports"].clone(),
    }}}});
    schema::apply_defaults(&mut obj, &with_gone);
    assert_eq!(obj["spec"]["mode"], "fast");
    assert!(obj["spec"]["keep"].is_null());
    assert!(
        obj["spec"].get("gone").is_none(),
        "a null without a default is dropped"
    );
    assert_eq!(obj["spec"]["ports"][0]["protocol"], "TCP");
    // The root's metadata is never defaulted from the schema.
    let meta = json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"finalizers": {"type": "array", "items": {"type": "string"}, "default": ["x"]}}}}});
    let mut obj = json!({"metadata": {"name": "a"}});
    schema::apply_defaults(&mut obj, &meta);
    assert_eq!(obj["metadata"], json!({"name": "a"}));
}

#[test]
fn validation_answers_with_kube_openapis_messages() {
    let s = json!({"type": "object", "properties": {"spec": {
    "type": "object",
    "required": ["cron"],
    "properties": {
        "cron": {"type": "string", "pattern": "^[0-9]+$"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
        "policy": {"type": "string", "enum": ["Allow", "Forbid"]},
        "port": {"x-kubernetes-int-or-string": true},
        "name": {"type": "string", "maxLength": 3, "minLength": 2},
        "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
        "when": {"type": "string", "format": "date-time"},
        "opt": {"type": "string", "nullable": true},
    }}}});
    let patterns = schema::patterns(&s);
    let obj = json!({"spec": {
        "replicas": "many", "policy": "Maybe", "port": true, "name": "abcd",
        "tags": ["a", "b"], "when": "yesterday", "opt": null,
    }});
    let got = messages(&schema::validate(&obj, &s, &patterns));
    assert_eq!(
        got,
        [
            "spec.name: Too long: may not be more than 3 bytes",
            "spec.policy: Unsupported value: \"Maybe\": supported values: \"Allow\", \"Forbid\"",
            "spec.port: Invalid value: true: spec.port in body must be of type integer,string: true",
            "spec.replicas: Invalid value: \"many\": spec.replicas in body must be of type integer: \"many\"",
            "spec.tags: Too many: 2: must have at most 1 items",
            "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
            "spec.cron: Required value",
        ]
    );
    let obj = json!({"spec": {"cron": "x", "replicas": 0, "port": "http", "name": "a"}});
    let got = messages(&schema::validate(&obj, &s, &patterns));
    assert_eq!(
        got,
        [
            "spec.cron: Invalid value: \"x\": spec.cron in body should match '^[0-9]+$'",
            "spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long",
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ]
    );
}

#[test]
fn printer_columns_follow_the_crd_table_convertor() {
    let ver = json!({"additionalPrinterColumns": [
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Since", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Flag", "type": "boolean", "jsonPath": ".spec.replicas"},
    ]});
    let columns = printer_columns(&ver);
    let obj = json!({
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": 3},
        "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
    });
    let now: jiff::Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
    let cells: Vec<Value> = columns.iter().map(|c| c.cell(&obj, now)).collect();
    assert_eq!(cells, [json!("True"), json!(3), json!("5m"), Value::Null]);
    let defaults = printer_columns(&json!({}));
    assert_eq!(defaults.len(), 1);
    assert_eq!(
        (defaults[0].name.as_str(), defaults[0].ty.as_str()),
        ("Age", "date")
    );
}

// Properties of the schema functions over generated schemas and objects
// (tenant input): nothing panics, pruning and defaulting are idempotent,
// and what pruning keeps is what the schema specifies.
mod properties {
    use super::super::schema;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z0-9 ]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn schema_node() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(json!({"type": "string"})),
            Just(json!({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3})),
            Just(json!({"type": "integer", "minimum": 0, "maximum": 5, "default": 1})),
            Just(json!({"type": "number", "multipleOf": 0.5})),
            Just(json!({"type": "boolean", "nullable": true})),
            Just(json!({"x-kubernetes-int-or-string": true})),
            Just(json!({"type": "string", "enum": ["a", "b"], "default": "a"})),
            Just(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-d]", inner.clone(), 0..4).prop_map(|m| {
                    json!({"type": "object", "properties": m, "required": ["a"]})
                }),
                inner.clone().prop_map(|i| json!({"type": "array", "items": i, "maxItems": 2})),
                inner.clone().prop_map(|i| json!({"type": "object", "additionalProperties": i})),
                inner.prop_map(|i| json!({"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": i}})),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn schema_functions_never_panic_and_settle(s in schema_node(), v in json_value()) {
            let root = json!({"type": "object", "properties": {"spec": s}});
            let _ = schema::validate_schema(&root, "s");
            let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "spec": v});
            let _ = schema::prune(&mut obj, &root);
            prop_assert!(schema::prune(&mut obj.clone(), &root).is_empty(), "pruning twice removes more: {obj}");
            schema::apply_defaults(&mut obj, &root);
            let once = obj.clone();
            schema::apply_defaults(&mut obj, &root);
            prop_assert_eq!(&once, &obj);
            let _ = schema::validate(&obj, &root, &schema::patterns(&root));
        }
    }
}
