//! CRD schemas and the custom resources they check: the input is
//! `SCHEMA \0 OBJECT` (two JSON documents). A schema the structural-schema
//! check accepts is then used as the apiextensions server uses it:
//! defaulting then pruning (the order of the apiextensions decoder) and
//! validating the object. Beyond not panicking: that pass is idempotent,
//! so an object read back and written again is what was stored.
#![no_main]

use apiserver_shim::crd::schema::{apply_defaults, patterns, prune, validate, validate_schema};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|input: &[u8]| {
    let Some(split) = input.iter().position(|b| *b == 0) else {
        return;
    };
    let (Ok(schema), Ok(mut obj)) = (
        serde_json::from_slice::<Value>(&input[..split]),
        serde_json::from_slice::<Value>(&input[split + 1..]),
    ) else {
        return;
    };
    let path = "spec.versions[0].schema.openAPIV3Schema";
    if !validate_schema(&schema, path).is_empty() {
        return;
    }
    let patterns = patterns(&schema);
    let pass = |obj: &mut Value| {
        apply_defaults(obj, &schema);
        prune(obj, &schema);
    };
    pass(&mut obj);
    let once = obj.clone();
    pass(&mut obj);
    assert_eq!(
        obj, once,
        "a second defaulting and pruning changed the object"
    );
    let _ = validate(&obj, &schema, &patterns);
});
