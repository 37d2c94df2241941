//! Continue tokens (`?continue=`): tenant-chosen strings decoded by the
//! list handler. Beyond not panicking: a token that decodes re-encodes to
//! one that decodes to the same revision and key, a token only decodes to
//! a clean key (no empty, `.` or `..` segments) under the listed prefix,
//! and any revision but 0 and any name survive encoding.
#![no_main]

use apiserver_shim::rest::continuation::{decode_continue, encode_continue, is_clean_key};
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "/core/pods/default/";

fuzz_target!(|input: (&str, u64, &str)| {
    let (token, revision, name) = input;
    if let Ok((rv, key)) = decode_continue(token, PREFIX) {
        assert!(
            key.starts_with(PREFIX) && is_clean_key(&key),
            "{token:?} decoded to key {key:?}"
        );
        assert_eq!(
            decode_continue(&encode_continue(rv, &key), PREFIX).ok(),
            Some((rv, key))
        );
    } else if let Err(e) = decode_continue(token, PREFIX) {
        assert_eq!(e.code, 400);
    }
    let key = format!("{PREFIX}{name}");
    let decoded = decode_continue(&encode_continue(revision, &key), PREFIX).ok();
    if revision != 0 && is_clean_key(&key) {
        assert_eq!(decoded, Some((revision, key)));
    } else {
        assert_eq!(decoded, None, "revision {revision}, key {key:?}");
    }
});
