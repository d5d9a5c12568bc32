//! The shape of the code, checked: imports between the library's top-level
//! modules form no cycle, the library never uses the tooling (simulator,
//! test kit, bench/demo/chaos, which live in the binary), and the crates
//! point one way (events ← store ← projections ← app; stripe beside
//! projections; sim and testkit beside the app).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules of the binary crate, not of the library.
const BINARY_ONLY: &[&str] = &["main", "cli", "tooling"];

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
        if from == "lib" || BINARY_ONLY.contains(&from.as_str()) {
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
    let edges = module_imports();
    if let Some(cycle) = find_cycle(&edges) {
        panic!("module cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_library_never_uses_the_tooling() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for module in BINARY_ONLY {
        assert!(
            !lib.contains(&format!("mod {module};")),
            "lib.rs declares the binary's module {module}"
        );
    }
    let mut files = vec![];
    rust_files(&src, &mut files);
    for file in files {
        if BINARY_ONLY.contains(&top_module(&src, &file).as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for tooling in ["payledger_sim", "payledger_testkit", "crate::tooling"] {
            assert!(
                !text.contains(tooling),
                "{} uses {tooling}: tooling belongs to the binary",
                file.display()
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
            "payledger-stripe",
            "payledger-sim",
            "payledger-testkit",
            "payledger",
        ]
        .into_iter()
        .filter(|d| text.contains(&format!("\n{d} =")))
        .collect()
    };
    assert_eq!(deps("events"), Vec::<&str>::new());
    assert_eq!(deps("store"), ["payledger-events"]);
    assert_eq!(deps("projections"), ["payledger-events", "payledger-store"]);
    assert_eq!(deps("stripe"), ["payledger-events", "payledger-store"]);
    assert_eq!(deps("sim"), ["payledger-events", "payledger-stripe"]);
    assert_eq!(
        deps("testkit"),
        [
            "payledger-events",
            "payledger-projections",
            "payledger-stripe"
        ]
    );
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
        if module == "audit" || BINARY_ONLY.contains(&module.as_str()) {
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

/// The library's files, `.rs` and `.sql`, except the auditor's: the audit
/// reads the raw log and the tables with its own SQL on purpose, as an
/// independent check of what the rest of the code says.
fn library_sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    for dir in ["reactors", "reconcile", "support", "pages", "webhook"] {
        if let Ok(entries) = std::fs::read_dir(src.join(dir)) {
            files.extend(
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "sql")),
            );
        }
    }
    files
        .into_iter()
        .filter(|f| {
            let module = top_module(&src, f);
            module != "audit" && !BINARY_ONLY.contains(&module.as_str())
        })
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

#[test]
fn the_app_reads_the_log_and_the_read_models_only_through_their_doors() {
    for (file, text) in library_sources() {
        for forbidden in [".pool()", "payload", "SELECT *", "event_with("] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden:?}: read the log through the store crate and the read models through payledger_projections::read",
                file.display()
            );
        }
        let own_tables = file.components().any(|c| {
            let c = c.as_os_str();
            c == "reactors" || c == "reconcile"
        });
        assert!(
            own_tables || !text.contains("connection_for_own_tables"),
            "{} takes a raw connection: only reactors and the reconciliation schedule own tables",
            file.display()
        );
    }
}

#[test]
fn state_names_are_written_only_by_their_enums() {
    use payledger_projections::states::*;
    let mut names: Vec<&str> = vec![];
    names.extend(PaymentState::ALL.iter().map(|s| s.as_str()));
    names.extend(SubscriptionStatus::ALL.iter().map(|s| s.as_str()));
    names.extend(EmailStatus::ALL.iter().map(|s| s.as_str()));
    names.extend(DiscrepancyStatus::ALL.iter().map(|s| s.as_str()));
    names.extend(DiscrepancyKind::ALL.iter().map(|s| s.as_str()));
    names.extend(ProjectionState::ALL.iter().map(|s| s.as_str()));
    names.extend(LedgerPaymentState::ALL.iter().map(|s| s.as_str()));
    let projections = Path::new(env!("CARGO_MANIFEST_DIR")).join("projections/src");
    let mut projection_files = vec![];
    rust_files(&projections, &mut projection_files);
    projection_files.extend(
        std::fs::read_dir(&projections)
            .unwrap()
            .map(|e| e.unwrap().path())
            // The access view is DDL, which takes no parameters.
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .filter(|p| !p.ends_with("payledger_access.sql")),
    );
    let projection_sources = projection_files
        .into_iter()
        .filter(|f| !f.ends_with("states.rs"))
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        });
    for (file, text) in library_sources().into_iter().chain(projection_sources) {
        for name in &names {
            // As SQL writes them, and as a Rust comparison or match arm would.
            for shape in [
                format!("'{name}'"),
                format!("== \"{name}\""),
                format!("\"{name}\" =>"),
            ] {
                assert!(
                    !text.contains(&shape),
                    "{} spells the state {shape}: use the enum in payledger_projections::states",
                    file.display()
                );
            }
        }
    }
}
