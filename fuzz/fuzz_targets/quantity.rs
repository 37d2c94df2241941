//! `Quantity::parse` (resource requests, limits, quotas: tenant input).
//! Beyond not panicking: a parsed quantity's canonical text parses back to
//! the same value, and canonicalizing settles after one round. Not at
//! once: as in apimachinery, `62.5Ki` prints as `64000` (a binary quantity
//! that is no whole number of Ki), which parses as decimal and then
//! prints as `64k`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vkube_core::quantity::Quantity;

fn reprint(text: &str, canonical: &str) -> (Quantity, String) {
    let again = Quantity::parse(canonical)
        .unwrap_or_else(|e| panic!("{text:?} gave {canonical:?}, which does not parse: {e:?}"));
    let printed = again.to_string();
    (again, printed)
}

fuzz_target!(|text: &str| {
    let Ok(q) = Quantity::parse(text) else {
        return;
    };
    let canonical = q.to_string();
    let (again, settled) = reprint(text, &canonical);
    assert_eq!(again, q, "{text:?} → {canonical:?}");
    let (third, printed) = reprint(text, &settled);
    assert_eq!(third, q, "{text:?} → {canonical:?} → {settled:?}");
    assert_eq!(printed, settled, "{text:?}: canonical text does not settle");
});
