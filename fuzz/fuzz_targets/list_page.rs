#![no_main]
//! Fuzzes `cf_service_key_exporter::fuzzing::list_page` (see that function for what it feeds).

libfuzzer_sys::fuzz_target!(|data: &[u8]| cf_service_key_exporter::fuzzing::list_page(data));
