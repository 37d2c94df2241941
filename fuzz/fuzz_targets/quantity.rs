//! `Quantity::parse` (resource requests, limits, quotas: tenant input).
//! Beyond not panicking: a parsed quantity's canonical text parses back to
//! the same value, and is its own canonical text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vkube_core::quantity::Quantity;

fuzz_target!(|text: &str| {
    let Ok(q) = Quantity::parse(text) else {
        return;
    };
    let canonical = q.to_string();
    let again = Quantity::parse(&canonical)
        .unwrap_or_else(|e| panic!("{text:?} gave {canonical:?}, which does not parse: {e:?}"));
    assert_eq!(again, q, "{text:?} → {canonical:?}");
    assert_eq!(again.to_string(), canonical, "{text:?}: not canonical");
});
