//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through the same entry
//! point its fuzz target calls, on stable Rust and without fuzzing: an input that once crashed
//! a parser (kept in the corpus after its fix) keeps being tried by every test run.

use std::path::Path;

use cf_service_key_exporter::fuzzing::TARGETS;

#[test]
fn every_fuzz_corpus_file_goes_through_its_parser_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, entry) in TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{target}: no seed in {}", dir.display());
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| entry(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panicked", file.display());
        }
    }
}

#[test]
fn every_fuzz_target_has_a_corpus_and_a_target_file() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for (target, _) in TARGETS {
        assert!(
            fuzz.join(format!("fuzz_targets/{target}.rs")).is_file(),
            "{target}"
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target}"
        );
    }
    let files = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .unwrap()
        .count();
    assert_eq!(
        files,
        TARGETS.len(),
        "a fuzz target without an entry in TARGETS"
    );
}
