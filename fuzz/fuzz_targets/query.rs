//! The request query string (`resourceVersion`, `limit`, `watch`,
//! `timeoutSeconds`, selectors, `dryRun`, `fieldValidation`, …): parsed for
//! every request. Beyond not panicking: anything refused is a `400`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if let Err(e) = apiserver_shim::request::Query::parse(Some(raw)) {
        assert_eq!(e.code, 400, "{raw:?}: {}", e.message);
    }
});
