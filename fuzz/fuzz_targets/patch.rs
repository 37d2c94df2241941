//! PATCH bodies of the three dialects (JSON patch, merge patch, strategic
//! merge patch with a Pod's merge keys) applied to a document from the
//! input. The first byte picks the dialect; the rest is `DOC \0 PATCH`.
//! Beyond not panicking: a patch that fails leaves the document exactly
//! as it was (no half-applied write), and one that applies gives a
//! document that serializes.
#![no_main]

use apiserver_shim::rest::patch::Patch;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MEDIA_TYPES: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fuzz_target!(|input: &[u8]| {
    let Some((&which, rest)) = input.split_first() else {
        return;
    };
    let Some(split) = rest.iter().position(|b| *b == 0) else {
        return;
    };
    let (doc, body) = (&rest[..split], &rest[split + 1..]);
    let Ok(original) = serde_json::from_slice::<Value>(doc) else {
        return;
    };
    if !original.is_object() {
        return;
    }
    let pods = apiserver_shim::registry::lookup("", "v1", "pods").expect("pods are served");
    let media_type = MEDIA_TYPES[usize::from(which) % MEDIA_TYPES.len()];
    let Ok(patch) = Patch::parse(media_type, body, pods) else {
        return;
    };
    let mut patched = original.clone();
    match patch.apply(&mut patched) {
        Ok(()) => {
            serde_json::to_vec(&patched).expect("a patched document serializes");
        }
        Err(e) => {
            assert!(e.code == 422, "{media_type}: {} {}", e.code, e.message);
            assert_eq!(
                patched, original,
                "{media_type}: a failed patch changed the document"
            );
        }
    }
});
