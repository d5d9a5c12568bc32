//! The shape of the code, checked: imports between the library's top-level
//! modules form no cycle, production code never imports the tooling, and
//! the crates point one way (events ← store ← projections ← app).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const TOOLING: &[&str] = &["bench", "demo", "chaos", "fuzz_targets"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/pages/status.rs` → `pages`; `src/http.rs` → `http`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Edges `from → to` between the library's top-level modules.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = top_module(&src, &file);
        if ["main", "cli", "lib"].contains(&from.as_str()) {
            continue; // the binary and the crate root sit above everything
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let to: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(c) = visit(node, edges, &mut vec![], &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn imports_between_modules_form_no_cycle() {
    let edges: BTreeMap<String, BTreeSet<String>> = module_imports()
        .into_iter()
        .filter(|(from, _)| !TOOLING.contains(&from.as_str()))
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        panic!("module cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn production_code_never_imports_the_tooling() {
    for (from, tos) in module_imports() {
        if TOOLING.contains(&from.as_str()) {
            continue;
        }
        for to in tos {
            assert!(
                !TOOLING.contains(&to.as_str()),
                "{from} imports the tooling module {to}"
            );
        }
    }
}

#[test]
fn the_crates_point_one_way() {
    let manifest = |krate: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(krate)
                .join("Cargo.toml"),
        )
        .unwrap()
    };
    let deps = |krate: &str| -> Vec<&'static str> {
        let text = manifest(krate);
        [
            "payledger-events",
            "payledger-store",
            "payledger-projections",
        ]
        .into_iter()
        .filter(|d| text.contains(&format!("\n{d} =")))
        .collect()
    };
    assert_eq!(deps("events"), Vec::<&str>::new());
    assert_eq!(deps("store"), ["payledger-events"]);
    assert_eq!(deps("projections"), ["payledger-events", "payledger-store"]);
}

#[test]
fn only_the_store_and_the_auditor_touch_the_log_tables() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let sql = std::fs::read_dir(src.join("reactors"))
        .unwrap()
        .chain(std::fs::read_dir(src.join("reconcile")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"));
    files.extend(sql);
    for file in files {
        let module = top_module(&src, &file);
        // The auditor checks the log with its own SQL and role, on purpose:
        // an independent reading. Tooling builds test databases.
        if ["audit", "bench", "demo", "chaos", "fuzz_targets"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for table in ["events", "event_chain"] {
            for verb in ["FROM", "INTO", "JOIN", "UPDATE"] {
                let needle = format!("{verb} {table} ");
                let at_end = format!("{verb} {table}\n");
                assert!(
                    !text.contains(&needle) && !text.contains(&at_end),
                    "{} reads or writes {table} directly: go through the store crate",
                    file.display()
                );
            }
        }
    }
}
