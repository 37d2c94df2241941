//! The protobuf request decoder (`application/vnd.kubernetes.protobuf`
//! bodies, decoded by hand into JSON). Beyond not panicking or running
//! away on nesting: what decodes is a JSON object that serializes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(object) = vkube_core::protobuf::decode(body) else {
        return;
    };
    assert!(object.is_object(), "decoded to a non-object: {object}");
    serde_json::to_vec(&object).expect("a decoded object serializes");
});
