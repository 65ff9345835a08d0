//! The crate's layers, checked: every `crate::` path in `src/` names a
//! module of the same layer or one below, the modules of one layer import
//! each other without cycles, and the pure core names no runtime, database
//! or socket crate. See the layer list in `src/lib.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/`, by layer, lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    ("core", &["model", "field", "value", "record", "relation", "change", "filter", "error", "protocol", "typescript"]),
    ("sql", &["sql"]),
    ("store", &["store"]),
    ("fan-out", &["fanout", "presence"]),
    ("brokers", &["broker"]),
    ("app", &["auth", "budget", "live", "route", "router", "session", "write_order"]),
    (
        "transport",
        &[
            "app_core",
            "outbox",
            "coalesce",
            "wire",
            "socket",
            "stop",
            "config",
            "connection",
            "metrics",
            "health",
            "origin",
            "cors",
            "listener",
            "server",
            "builder",
            "bench",
            "harness",
        ],
    ),
];

/// Crates the core may not use.
const NOT_IN_CORE: &[&str] = &["tokio", "diesel", "warp", "hyper", "tungstenite", "redis", "r2d2", "libsqlite3"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

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

/// The top-level module a file of `src/` belongs to (`None` for lib.rs);
/// `x_tests.rs` holds the unit tests of `x` (`#[path]`), so it is `x`'s.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first);
    let name = name.strip_suffix("_tests").unwrap_or(name).to_owned();
    (name != "lib").then_some(name)
}

/// The text with line comments (and so doc comments and their examples) removed.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules code names through `crate::` (in `use` lists
/// too: `use crate::{a, b::c}`).
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            // `crate::{a, b::{..}}`: the first segment of each item at depth 0.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in list.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        found.insert(ident(&list[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

/// What lib.rs re-exports at the crate root (`pub use module::{A, B}`),
/// by name: `crate::Model` is `crate::model::Model`.
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let mut exports = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else { continue };
        let Some((module, items)) = rest.trim_end_matches(';').split_once("::") else { continue };
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or_default().to_owned();
            exports.entry(name).or_insert_with(|| module.to_owned());
        }
    }
    exports
}

#[test]
fn imports_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let exports = root_exports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let Some(layer) = layer_of(&module) else {
            problems.push(format!("{}: module `{module}` is in no layer (add it to LAYERS)", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let code = without_comments(&text);
        for used in crate_references(&code) {
            let used = exports.get(&used).cloned().unwrap_or(used);
            if used == module || used.is_empty() {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l > layer => problems.push(format!(
                    "{}: `{module}` ({}) uses `{used}` ({}), a layer above it",
                    file.display(),
                    LAYERS[layer].0,
                    LAYERS[l].0
                )),
                Some(_) => {
                    uses.entry(module.clone()).or_default().insert(used);
                }
                None => problems.push(format!("{}: `crate::{used}` is in no layer", file.display())),
            }
        }
        if layer == 0 {
            for krate in NOT_IN_CORE {
                if code.contains(&format!("{krate}::")) {
                    problems.push(format!("{}: the pure core uses `{krate}`", file.display()));
                }
            }
        }
    }
    // No cycles among the modules of one layer.
    fn visit(
        m: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            return Some(path[at..].to_vec());
        }
        if !done.insert(m.to_owned()) {
            return None;
        }
        path.push(m.to_owned());
        for next in uses.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, uses, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in uses.keys() {
        if let Some(cycle) = visit(m, &uses, &mut Vec::new(), &mut done) {
            problems.push(format!("modules import each other in a circle: {}", cycle.join(" -> ")));
        }
    }
    assert!(problems.is_empty(), "layering violations:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_use_lists_and_paths() {
    let code =
        without_comments("use crate::{model::Value, fanout::{a, b}};\nfn f() { crate::store::x(); } // crate::server");
    let refs = crate_references(&code);
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["fanout", "model", "store"]);
}
