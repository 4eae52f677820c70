//! The product crate's modules depend on each other in one direction only.
//!
//! The graph is read from the source: an edge `a → b` for every `crate::b` path (in a `use` or
//! inline) in the files of the top-level module `a` (`src/a.rs` or `src/a/`), leaving out
//! comments and each file's `#[cfg(test)] mod tests`. A path to an item of the crate root
//! (`crate::run`) is an edge to `lib`, which itself depends on every module. The test fails on
//! any cycle, and when the README's module graph is not this graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

const LIB: &str = "lib";

/// The top-level modules `lib.rs` declares: `pub mod a;` (or `mod a;`, `pub(crate) mod a;`) and
/// the names in its `modules!(a, b, ...)` list; not the binary's source, which the dead-code
/// check compiles in as a module (`#[path = "main.rs"]`).
fn declared_modules(lib: &str) -> BTreeSet<String> {
    let code: String = code_lines(lib).collect::<Vec<_>>().join("\n");
    let listed = code
        .find("modules!(")
        .map(|at| &code[at + "modules!(".len()..])
        .and_then(|rest| Some(&rest[..rest.find(')')?]))
        .into_iter()
        .flat_map(|list| list.split(','))
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    let lines: Vec<&str> = code.lines().collect();
    let declared = lines.iter().enumerate().filter_map(|(at, line)| {
        if at > 0 && lines[at - 1].starts_with("#[path = \"main.rs\"]") {
            return None;
        }
        let rest = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .or_else(|| line.strip_prefix("pub(crate) mod "))?;
        Some(rest.strip_suffix(';')?.trim().to_owned())
    });
    // `mod $name;` in the macro's body is no module.
    listed
        .chain(declared)
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect()
}

/// The lines of `text` without comments and without its test module.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end].lines().map(|line| {
        let line = line.trim_start();
        if line.starts_with("//") {
            ""
        } else {
            line
        }
    })
}

/// The modules named by `crate::` paths in `text` (`crate::a::b`, `crate::{a, b::c}`).
fn referenced(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for line in code_lines(text) {
        for (at, _) in line.match_indices("crate::") {
            let preceded = line[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if preceded {
                continue; // `my_crate::`, not `crate::`
            }
            let rest = &line[at + "crate::".len()..];
            let names: Vec<String> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split(',')
                    .map(|part| ident(part.trim()))
                    .filter(|n| !n.is_empty())
                    .collect(),
                None => vec![ident(rest)],
            };
            for name in names {
                out.insert(if modules.contains(&name) {
                    name
                } else {
                    LIB.to_owned()
                });
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module graph of the crate in `src`.
fn module_graph(src: &Path) -> Graph {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let modules = declared_modules(&lib);
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    graph.insert(LIB.to_owned(), modules.clone());
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a file name");
        let first = first.as_os_str().to_string_lossy();
        let module = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
        if module == "main" || module == "lib" {
            continue; // main is the binary; lib depends on everything already
        }
        assert!(
            modules.contains(&module),
            "{} belongs to no module lib.rs declares",
            relative.display()
        );
        let text = std::fs::read_to_string(&file).expect("readable source");
        let edges = graph.get_mut(&module).expect("declared");
        edges.extend(referenced(&text, &modules));
        edges.remove(&module);
    }
    graph
}

/// A cycle of `graph` (its first module repeated at the end), if it has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The graph the README draws: the lines `module → a, b` of the block after its
/// `<!-- module graph -->` marker (`module → (none)` for a leaf).
fn readme_graph(readme: &str) -> Graph {
    let start = readme
        .find("<!-- module graph -->")
        .expect("the README has a module graph");
    let block = &readme[start..];
    let block = &block[block.find("```").expect("a code block") + 3..];
    let block = &block[block.find('\n').expect("a fence line") + 1..];
    let block = &block[..block.find("```").expect("the end of the block")];
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (module, deps) = line
                .split_once('→')
                .unwrap_or_else(|| panic!("`module → deps`: {line}"));
            let deps = deps
                .split(',')
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty() && d != "(none)")
                .collect();
            (module.trim().to_owned(), deps)
        })
        .collect()
}

fn render(graph: &Graph) -> String {
    graph
        .iter()
        .filter(|(m, _)| m.as_str() != LIB)
        .map(|(m, deps)| {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            let deps = if deps.is_empty() {
                "(none)".to_owned()
            } else {
                deps.join(", ")
            };
            format!("{m} → {deps}\n")
        })
        .collect()
}

#[test]
fn the_modules_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = module_graph(&root.join("src"));
    // The reader sees the edges that exist (else the check below could not fail).
    assert!(graph["refresher"].contains("cf"), "{graph:?}");
    assert!(graph["server"].contains("metrics"), "{graph:?}");
    assert_eq!(find_cycle(&graph), None, "the module graph has a cycle");
}

#[test]
fn the_readme_draws_the_module_graph() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = module_graph(&root.join("src"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut drawn = readme_graph(&readme);
    drawn.insert(LIB.to_owned(), graph[LIB].clone());
    assert!(
        drawn == graph,
        "the README's module graph is not the code's; the code's is:\n{}",
        render(&graph)
    );
}

#[test]
fn the_reader_finds_declared_modules() {
    let lib = "macro_rules! modules {\n    (...) => { pub mod $name; }\n}\n\
               modules!(\n    cache, cf,\n    web,\n);\n// pub mod commented;\npub mod fuzzing;\n\
               #[cfg(test)]\npub mod testing;\npub mod binary {\n    pub mod cli {}\n}\n\
               #[path = \"main.rs\"]\npub mod main_rs;\n";
    assert_eq!(
        declared_modules(lib),
        ["cache", "cf", "web", "fuzzing", "testing"]
            .map(String::from)
            .into()
    );
}

#[test]
fn the_reader_finds_edges_and_cycles() {
    let modules: BTreeSet<String> = ["cf", "metrics", "snapshot"].map(String::from).into();
    let text = "use crate::cf::CfError;\n\
                // crate::snapshot in a comment\n\
                use crate::{metrics::Exposition, vocab};\n\
                let x = other_crate::cf::X; crate::run();\n\
                #[cfg(test)]\nmod tests {\n    use crate::snapshot::test_record;\n}\n";
    assert_eq!(
        referenced(text, &modules),
        ["cf", "metrics", LIB].map(String::from).into()
    );
    let graph = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("a", "c"), ("b", "c")])),
        None
    );
}
