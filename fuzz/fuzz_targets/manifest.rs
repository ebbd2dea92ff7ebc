//! A manifest as a user writes it: parsed, validated, planned. Any text is either a
//! manifest that plans or an error that names where; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match apiary_core::Manifest::from_toml_str(text) {
        // Loaded means validated: every dependency exists and there is no cycle.
        Ok(manifest) => {
            manifest.plan().expect("a loaded manifest plans");
        }
        Err(e) => assert!(!e.message().is_empty(), "an error says what is wrong"),
    }
});
