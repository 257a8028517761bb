//! The invariants ARCHITECTURE.md promises about the source tree, checked on the source:
//! the layering `api -> domain -> store` (the domain free of driver, transport and
//! generated types; `api` never reaching the store), SQL only in the store, no import
//! cycles between domain modules, and a `//!` line on every file.
use std::collections::{BTreeMap, BTreeSet};
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

/// Code lines only: comments and doc comments are not imports.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_domain_never_sees_drivers_transport_or_generated_types() {
    let banned = [
        "rusqlite",
        "tonic",
        "prost",
        "axum",
        "reqwest",
        "hickory",
        "hyper",
        "crate::pb",
        "crate::api",
        "crate::store",
        "crate::federation::",
        "lettre",
    ];
    for (path, text) in src().iter().filter(|(p, _)| p.contains("/src/domain/")) {
        let code = code(text);
        for b in banned {
            assert!(!code.contains(b), "{path} mentions {b}");
        }
    }
}

#[test]
fn identity_is_pure() {
    for (path, text) in src().iter().filter(|(p, _)| p.contains("/src/identity/")) {
        let code = code(text);
        for b in ["std::fs", "tokio", "crate::domain", "crate::store", "tonic"] {
            assert!(!code.contains(b), "{path} mentions {b}");
        }
    }
}

#[test]
fn api_never_imports_the_store() {
    for (path, text) in src().iter().filter(|(p, _)| p.contains("/src/api/")) {
        let code = code(text);
        for b in ["crate::store", "rusqlite", "domain::state::store::Backend"] {
            assert!(!code.contains(b), "{path} mentions {b}");
        }
    }
}

#[test]
fn sql_and_the_driver_live_only_in_the_store() {
    for (path, text) in src().iter().filter(|(p, _)| !p.contains("/src/store/")) {
        let code = code(text);
        for sql in ["SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "rusqlite"] {
            assert!(!code.contains(sql), "{path} contains {sql}");
        }
    }
}

/// The domain module a file belongs to: `accounts`, `federation`, `state`, …
fn domain_module(path: &str) -> Option<String> {
    let rest = path.split("/src/domain/").nth(1)?;
    let first = rest.split('/').next()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

#[test]
fn domain_modules_do_not_import_each_other_in_cycles() {
    let files = src();
    let modules: BTreeSet<String> = files.iter().filter_map(|(p, _)| domain_module(p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        let Some(from) = domain_module(path) else {
            continue;
        };
        if from == "mod" {
            continue; // the composition root builds every service
        }
        let code = code(text);
        for to in &modules {
            let uses = [
                format!("super::{to}::"),
                format!("super::{to}::{{"),
                format!("crate::domain::{to}::"),
                format!("super::super::{to}::"),
            ];
            if to != &from && to != "mod" && uses.iter().any(|u| code.contains(u.as_str())) {
                edges.entry(from.clone()).or_default().insert(to.clone());
            }
        }
    }
    // Depth-first search for a cycle.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!(
                "import cycle between domain modules: {}",
                path[i..].join(" -> ") + " -> " + m
            );
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
        done.insert(m.to_owned());
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        visit(m, &edges, &mut Vec::new(), &mut done);
    }
    assert!(
        edges.get("codes").is_none_or(|e| !e.contains("accounts")),
        "codes must not depend on accounts"
    );
}

#[test]
fn hand_written_files_stay_under_about_600_lines() {
    for (path, text) in src().iter().filter(|(p, _)| !p.ends_with("pb.rs")) {
        let lines = text.lines().count();
        assert!(lines <= 650, "{path} has {lines} lines; split it");
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

#[test]
fn every_rpc_in_proto_says_what_it_does() {
    fn protos(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                protos(&path, out);
            } else if path.extension().is_some_and(|e| e == "proto") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    protos(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("proto"),
        &mut files,
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("rpc ") {
                assert!(
                    i > 0 && lines[i - 1].trim_start().starts_with("//"),
                    "{}: `{}` has no comment",
                    file.display(),
                    line.trim()
                );
            }
        }
    }
}
