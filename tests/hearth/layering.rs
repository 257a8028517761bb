//! The invariants ARCHITECTURE.md promises about the source tree. The layers themselves are
//! the crate graph's to enforce: `hearth-core` (domain, identity, config) may not depend on a
//! transport or a driver, and `hearth-store` on no transport, checked here on the resolved
//! dependency graph, so adding one to a manifest fails the tests just as importing one without
//! it fails the build. Checked on the source: no import cycle between the modules of any
//! crate (or between the domain's own modules), `api` never reaching the store, SQL only in
//! the store, files of a readable size, and a `//!` line on every file.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's crates: name and source folder.
fn crates() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("hearth", root().join("src")),
        ("hearth-core", root().join("crates/hearth-core/src")),
        ("hearth-store", root().join("crates/hearth-store/src")),
    ]
}

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

/// Every source file of every crate: (crate, path relative to its `src/`, text).
fn sources() -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for (name, dir) in crates() {
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for (path, text) in files {
            let rel = path[dir.display().to_string().len() + 1..].to_owned();
            out.push((name, rel, text));
        }
    }
    assert!(out.len() > 100, "found only {} source files", out.len());
    out
}

/// Code lines only: comments and doc comments are not imports.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names `code` reaches under `prefix` (e.g. `crate::`): `crate::a::b`, and every
/// top-level member of a group, `use crate::{a, b::c, d::{e}}` → a, b, d.
fn reached(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0, 0);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

#[test]
fn the_reach_of_an_import_is_read_from_groups_too() {
    let code =
        "use crate::{store, api::x, domain::{a, b}};\nlet x = crate::node::f();\nmy_crate::z";
    let got: Vec<String> = reached(code, "crate::").into_iter().collect();
    assert_eq!(got, ["api", "domain", "node", "store"]);
}

/// A cycle in `edges`, as `a -> b -> a`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| p == m) {
            return Some(path[i..].join(" -> ") + " -> " + m);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

#[test]
fn a_cycle_is_found() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&edges).as_deref(), Some("a -> b -> c -> a"));
}

/// The module a file belongs to at `depth` levels below `src/` (`api`, `domain/flows`).
fn module_of(rel: &str, depth: usize) -> String {
    let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
    parts[..parts.len().min(depth)].join("/")
}

/// Edges between a crate's top-level modules, from `crate::x` paths.
fn module_graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files
        .iter()
        .filter(|(c, rel, _)| *c == krate && rel.as_str() != "lib.rs" && rel.as_str() != "main.rs")
        .map(|(_, rel, _)| module_of(rel, 1))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, rel, text) in files.iter().filter(|(c, _, _)| *c == krate) {
        let from = module_of(rel, 1);
        if !modules.contains(&from) {
            continue;
        }
        for to in reached(&code(text), "crate::") {
            if to != from && modules.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    for (krate, _) in crates() {
        let edges = module_graph(krate);
        if let Some(c) = cycle(&edges) {
            panic!("import cycle between the modules of {krate}: {c}");
        }
    }
}

/// Edges between the children of folder `dir` of `krate` (`domain`, `domain/flows`): from
/// `crate::domain::x` paths and `super::x` written in a child. The folder's `mod.rs` is its
/// composition root and may name every child.
fn folder_graph(krate: &str, dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let prefix = format!("{dir}/");
    let inside = |rel: &str| rel.starts_with(&prefix) && rel != format!("{dir}/mod.rs");
    let child = |rel: &str| module_of(&rel[prefix.len()..], 1);
    let modules: BTreeSet<String> = files
        .iter()
        .filter(|(c, rel, _)| *c == krate && inside(rel))
        .map(|(_, rel, _)| child(rel))
        .collect();
    let depth = dir.split('/').count();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, rel, text) in files
        .iter()
        .filter(|(c, rel, _)| *c == krate && inside(rel))
    {
        let code = code(text);
        // The file's module path; `super::` k times names the folder when it is k deep.
        let mut path: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
        if path.last() == Some(&"mod") {
            path.pop();
        }
        let mut to = reached(&code, &format!("crate::{}::", dir.replace('/', "::")));
        if path.len() > depth {
            to.extend(reached(&code, &"super::".repeat(path.len() - depth)));
        }
        let from = child(rel);
        for t in to.into_iter().filter(|t| t != &from && modules.contains(t)) {
            edges.entry(from.clone()).or_default().insert(t);
        }
    }
    edges
}

#[test]
fn no_folder_has_an_import_cycle_between_its_modules() {
    let mut folders = BTreeSet::new();
    for (krate, rel, _) in sources() {
        let parts: Vec<&str> = rel.split('/').collect();
        for n in 1..parts.len() {
            folders.insert((krate, parts[..n].join("/")));
        }
    }
    assert!(folders.len() > 10, "{folders:?}");
    for (krate, dir) in &folders {
        if let Some(c) = cycle(&folder_graph(krate, dir)) {
            panic!("import cycle between the modules of {krate}'s {dir}/: {c}");
        }
    }
    let domain = folder_graph("hearth-core", "domain");
    assert!(
        domain.len() > 5,
        "read only {} domain modules' imports",
        domain.len()
    );
    assert!(
        domain.get("codes").is_none_or(|e| !e.contains("accounts")),
        "codes must not depend on accounts"
    );
}

/// The packages `package` depends on, directly or not (normal dependencies: what it builds
/// with), from `cargo metadata` on the workspace.
fn dependency_closure(package: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let deps_of: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .map(|n| {
            let normal = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (n["id"].as_str().unwrap(), normal)
        })
        .collect();
    let start = name_of
        .iter()
        .find(|(_, n)| n.as_str() == package)
        .map(|(id, _)| id.clone())
        .unwrap();
    let (mut seen, mut todo) = (BTreeSet::new(), vec![start.clone()]);
    while let Some(id) = todo.pop() {
        for d in deps_of.get(id.as_str()).into_iter().flatten() {
            if seen.insert(d.to_string()) {
                todo.push(d.to_string());
            }
        }
    }
    seen.iter().map(|id| name_of[id].clone()).collect()
}

const TRANSPORTS: &[&str] = &[
    "tonic",
    "prost",
    "axum",
    "hyper",
    "reqwest",
    "hickory-resolver",
    "lettre",
    "hearth",
];
const DRIVERS: &[&str] = &["rusqlite", "postgres", "tokio-postgres", "hearth-store"];

#[test]
fn the_core_crate_depends_on_no_transport_or_driver() {
    let deps = dependency_closure("hearth-core");
    assert!(deps.contains("argon2"), "read the wrong graph: {deps:?}");
    for banned in TRANSPORTS.iter().chain(DRIVERS) {
        assert!(!deps.contains(*banned), "hearth-core depends on {banned}");
    }
}

#[test]
fn the_store_crate_depends_on_no_transport() {
    let deps = dependency_closure("hearth-store");
    assert!(
        deps.contains("rusqlite") && deps.contains("hearth-core"),
        "{deps:?}"
    );
    for banned in TRANSPORTS {
        assert!(!deps.contains(*banned), "hearth-store depends on {banned}");
    }
}

#[test]
fn api_never_reaches_the_store() {
    for (_, rel, text) in sources()
        .iter()
        .filter(|(c, rel, _)| *c == "hearth" && rel.starts_with("api/"))
    {
        let code = code(text);
        assert!(
            !reached(&code, "crate::").contains("store"),
            "api/{rel} reaches the store"
        );
        for b in ["hearth_store", "rusqlite", "domain::state::store::Backend"] {
            assert!(!code.contains(b), "{rel} mentions {b}");
        }
    }
}

#[test]
fn sql_and_the_driver_live_only_in_the_store() {
    for (krate, rel, text) in sources().iter().filter(|(c, _, _)| *c != "hearth-store") {
        let code = code(text);
        for sql in ["SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "rusqlite"] {
            assert!(!code.contains(sql), "{krate}: {rel} contains {sql}");
        }
    }
}

#[test]
fn hand_written_files_stay_under_about_600_lines() {
    for (krate, rel, text) in sources()
        .iter()
        .filter(|(_, rel, _)| !rel.ends_with("pb.rs"))
    {
        let lines = text.lines().count();
        assert!(lines <= 600, "{krate}: {rel} has {lines} lines; split it");
    }
}

#[test]
fn every_source_file_says_what_it_owns() {
    for (krate, rel, text) in sources() {
        assert!(
            text.starts_with("//!"),
            "{krate}: {rel} does not open with a //! line"
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
