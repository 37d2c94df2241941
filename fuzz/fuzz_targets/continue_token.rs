//! Continue tokens (`?continue=`): tenant-chosen strings decoded by the
//! list handler. Beyond not panicking: a token that decodes re-encodes to
//! one that decodes to the same revision and key, a token never decodes
//! to a key outside the listed prefix, and any revision and key survive
//! encoding.
#![no_main]

use apiserver_shim::rest::continuation::{decode_continue, encode_continue};
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "/core/pods/default/";

fuzz_target!(|input: (&str, u64, &str)| {
    let (token, revision, name) = input;
    if let Ok((rv, key)) = decode_continue(token, PREFIX) {
        assert!(
            key.starts_with(PREFIX),
            "{token:?} decoded to foreign key {key:?}"
        );
        assert_eq!(
            decode_continue(&encode_continue(rv, &key), PREFIX).ok(),
            Some((rv, key))
        );
    } else if let Err(e) = decode_continue(token, PREFIX) {
        assert_eq!(e.code, 400);
    }
    let key = format!("{PREFIX}{name}");
    assert_eq!(
        decode_continue(&encode_continue(revision, &key), PREFIX).ok(),
        Some((revision, key))
    );
});
