//! Tidy checks over the product sources, run with the tests (in the manner
//! of rust-analyzer's `tidy`): what the project's rules forbid stays out.

use std::path::{Path, PathBuf};

fn product_sources() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut out = Vec::new();
    let mut dirs = vec![crates];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                // tests and the test kit may unwrap; everything else is product code
                if !matches!(name.as_str(), "tests" | "target" | "canopy-testkit") {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    assert!(out.len() > 20, "found the sources: {out:?}");
    out
}

/// The text of a source file before its `#[cfg(test)]` module.
fn product_part(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[test]
fn tidy_no_stubs_debug_prints_or_unwraps_in_product_code() {
    let forbidden = ["todo!(", "unimplemented!(", "dbg!(", ".unwrap()", ".expect(\""];
    let mut found = Vec::new();
    for path in product_sources() {
        for (n, line) in product_part(&path).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in forbidden {
                if code.contains(f) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "forbidden in product code:\n{}", found.join("\n"));
}

/// Every extractor's rejection is problem details (issue 11, finding 12):
/// routes take their input through `canopy_server::extract`, never through
/// axum's own extractors, whose rejections are plain text.
#[test]
fn tidy_routes_read_input_only_through_problem_extractors() {
    let forbidden = ["extract::{Path", "extract::Path", "extract::Query", "extract::Form", "extract::Json", "): Json<"];
    let mut found = Vec::new();
    for path in product_sources() {
        if !path.to_string_lossy().contains("canopy-server/src/routes") {
            continue;
        }
        for (n, line) in product_part(&path).lines().enumerate() {
            if forbidden.iter().any(|f| line.contains(f)) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "use ApiPath, ApiQuery, ApiJson instead:\n{}", found.join("\n"));
}

#[test]
fn tidy_every_crate_documents_itself() {
    for path in product_sources() {
        let name = path.file_name().unwrap().to_string_lossy();
        if name == "lib.rs" || name == "main.rs" {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("//!"), "{} starts without a //! crate doc", path.display());
        }
    }
}

/// Route modules are peers (issue 12): what two of them share lives in the
/// application layer (`canopy-app`) or in the server's `mapping`, never in
/// one route module that another imports.
#[test]
fn tidy_route_modules_never_import_each_other() {
    let routes = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("canopy-server/src/routes");
    let modules: Vec<String> = std::fs::read_dir(&routes)
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "mod")
        .collect();
    assert!(modules.len() > 10, "found the route modules: {modules:?}");
    let mut found = Vec::new();
    for module in &modules {
        let text = std::fs::read_to_string(routes.join(format!("{module}.rs"))).unwrap();
        for other in modules.iter().filter(|o| *o != module) {
            for pattern in [format!("routes::{other}::"), format!("routes::{{{other}"), format!("super::{other}::")] {
                if text.contains(&pattern) {
                    found.push(format!("routes/{module}.rs uses {pattern}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "route modules import each other:\n{}", found.join("\n"));
}

/// Handlers are thin (issue 12): every route module reaches the database
/// only through a use case of `canopy_app`, never through a transaction of
/// its own; the readiness probe alone asks the store whether it answers.
#[test]
fn tidy_route_handlers_call_use_cases_not_the_store() {
    let routes = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("canopy-server/src/routes");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&routes).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "health.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for pattern in ["store.read()", "store.write()", "canopy_store::Tx", "&mut Tx", "tx."] {
            if text.contains(pattern) {
                found.push(format!("routes/{name} uses {pattern}"));
            }
        }
    }
    assert!(found.is_empty(), "route handlers reach the store themselves:\n{}", found.join("\n"));
}

/// The HTTP crate reaches platforms only through the application layer's
/// port (issue 12): it depends on neither the engine nor the adapters.
#[test]
fn tidy_the_server_depends_on_the_application_layer_not_the_engine() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("canopy-server/Cargo.toml");
    let text = std::fs::read_to_string(manifest).unwrap();
    assert!(text.contains("canopy-app"), "canopy-server depends on canopy-app");
    for forbidden in ["canopy-engine", "canopy-platforms"] {
        assert!(!text.contains(forbidden), "canopy-server must not depend on {forbidden}");
    }
}

/// The table of history events (`docs/history-events.md`) is generated from
/// `canopy_domain::events`, so what the documentation says each kind records
/// is what the code records. `CANOPY_BLESS=1` rewrites it.
#[test]
fn tidy_history_events_table_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(canopy_domain::events::TABLE_PATH);
    let table = canopy_domain::events::markdown_table();
    if std::env::var("CANOPY_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &table).unwrap();
        return;
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == table,
        "{} is stale (an event's fields or documentation changed); rewrite it with\n    \
         CANOPY_BLESS=1 cargo test -p canopy --test e2e tidy_history_events_table",
        path.display()
    );
}

/// A bound `LIMIT $n` makes SQLite prepare its statement again at every
/// execution (its planner treats the limit as a constant and marks the
/// statement stale whenever the parameter is bound): the store binds
/// limits through `CAST($n AS BIGINT)` instead, which the planner leaves
/// alone (issue 13: a tenth of a page read went to re-parsing).
#[test]
fn tidy_sql_limits_are_never_a_bare_parameter() {
    let mut found = Vec::new();
    for path in product_sources() {
        for (n, line) in product_part(&path).lines().enumerate() {
            if line.contains("LIMIT $") {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "bind limits as LIMIT CAST($n AS BIGINT):\n{}", found.join("\n"));
}
