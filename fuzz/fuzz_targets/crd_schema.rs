//! CRD schemas and the custom resources they check: the input is
//! `SCHEMA \0 OBJECT` (two JSON documents). A schema the structural-schema
//! check accepts is then used as the apiextensions server uses it:
//! pruning, defaulting and validating the object. Beyond not panicking:
//! pruning and defaulting are idempotent (a second pass prunes nothing and
//! defaults nothing), so an object read back is what was stored.
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
    prune(&mut obj, &schema);
    apply_defaults(&mut obj, &schema);
    prune(&mut obj, &schema);
    let settled = obj.clone();
    let pruned = prune(&mut obj, &schema);
    assert!(pruned.is_empty(), "a second pruning removed {pruned:?}");
    apply_defaults(&mut obj, &schema);
    assert_eq!(obj, settled, "a second defaulting changed the object");
    let _ = validate(&obj, &schema, &patterns);
});
