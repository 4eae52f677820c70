#![no_main]
//! Fuzzes `cf_service_key_exporter::fuzzing::cache` (see that function for what it feeds).

libfuzzer_sys::fuzz_target!(|data: &[u8]| cf_service_key_exporter::fuzzing::cache(data));
