//! The invariants ARCHITECTURE.md promises about the source tree, checked on the source.
use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
}

fn src() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files
}

#[test]
fn domain_code_never_sees_transport_or_generated_types() {
    for (path, text) in src().iter().filter(|(p, _)| p.contains("/src/domain/")) {
        for banned in ["tonic::", "prost::", "axum::", "crate::pb", "crate::api"] {
            assert!(!text.contains(banned), "{path} mentions {banned}");
        }
    }
}

#[test]
fn sql_lives_only_in_the_store() {
    for (path, text) in src().iter().filter(|(p, _)| !p.contains("/src/store/")) {
        for sql in ["SELECT ", "INSERT ", "UPDATE ", "DELETE FROM"] {
            assert!(!text.contains(sql), "{path} contains SQL ({sql})");
        }
    }
}

#[test]
fn every_source_file_says_what_it_owns() {
    for (path, text) in src() {
        assert!(
            text.starts_with("//!"),
            "{path} does not open with a //! line"
        );
    }
}
