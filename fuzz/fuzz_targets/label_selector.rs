//! `LabelSelector::parse` (`?labelSelector=`). Beyond not panicking: a
//! parsed selector's printed text (kube's `String()`) parses to a selector
//! with the same requirements, which selects the same labels (taken from
//! the input).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vkube_core::labels::LabelSelector;

/// The selector's requirements as printed, sorted.
fn requirements(selector: &LabelSelector) -> Vec<String> {
    let mut all: Vec<String> = selector
        .requirements()
        .iter()
        .map(ToString::to_string)
        .collect();
    all.sort();
    all
}

fuzz_target!(|text: &str| {
    let Ok(selector) = LabelSelector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let again = LabelSelector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e:?}"));
    // The same requirements, maybe in another order: apimachinery orders
    // them while parsing (fields by raw term text, labels by key), so a
    // reprint need not be character for character the same.
    assert_eq!(
        requirements(&again),
        requirements(&selector),
        "{text:?} → {printed:?}"
    );
    let labels: BTreeMap<String, String> = text
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    assert_eq!(
        selector.matches(&labels),
        again.matches(&labels),
        "{text:?} on {labels:?}"
    );
});
