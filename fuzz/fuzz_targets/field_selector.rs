//! `FieldSelector::parse` (`?fieldSelector=`, with kube's `\,` `\=` `\\`
//! escapes). Beyond not panicking: a parsed selector's printed text (kube's
//! `String()`, `==` printed as `=`) parses to a selector with the same
//! requirements, which selects the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vkube_core::fields::FieldSelector;

/// The selector's requirements as printed, sorted.
fn requirements(selector: &FieldSelector) -> Vec<String> {
    let mut all: Vec<String> = selector
        .requirements()
        .iter()
        .map(ToString::to_string)
        .collect();
    all.sort();
    all
}

fuzz_target!(|text: &str| {
    let Ok(selector) = FieldSelector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let again = FieldSelector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e:?}"));
    // The same requirements, maybe in another order: apimachinery orders
    // them while parsing (fields by raw term text, labels by key), so a
    // reprint need not be character for character the same.
    assert_eq!(
        requirements(&again),
        requirements(&selector),
        "{text:?} → {printed:?}"
    );
    for value in text.split([',', '=']) {
        let get = |_: &str| Some(value.to_string());
        assert_eq!(
            selector.matches(get),
            again.matches(get),
            "{text:?} on {value:?}"
        );
    }
});
