//! The layout rules of docs/ARCHITECTURE.md, checked on the source: no file under `src/`
//! over 400 lines, no function over 80, no `too_many_arguments` allowance, and no module
//! that imports from a module that imports it (directly or through others).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 400;
const MAX_FN_LINES: usize = 80;

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The module path of a file: `src/losses/cross_entropy/mod.rs` is `losses::cross_entropy`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src/").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The source without `#[cfg(test)] mod tests { … }` blocks and comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest module of `modules` that `path` (a `::` path) starts with.
fn resolve(modules: &BTreeSet<String>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// Identifier paths following `prefix` in `code`, with `use prefix{a, b::c}` groups expanded.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let path = path.trim_end_matches(':').to_string();
        if rest[path.len()..].trim_start_matches(':').starts_with('{') {
            let group = &rest[path.len()..];
            let group = &group[group.find('{').unwrap_or(0) + 1..group.find('}').unwrap_or(0)];
            for item in group.split(',') {
                let item = item.trim();
                let joined = if path.is_empty() {
                    item.to_string()
                } else {
                    format!("{path}::{item}")
                };
                paths.push(joined);
            }
        } else {
            paths.push(path);
        }
    }
    paths
}

/// Module → modules it imports (`crate::…`, `super::…`, and its own submodules by name).
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(src);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let code = code_of(&std::fs::read_to_string(file).expect("readable"));
        let parent = module.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_string());
        let mut deps = BTreeSet::new();
        let mut targets: Vec<String> = paths_after(&code, "crate::");
        if !module.is_empty() {
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{parent}::")
            };
            targets.extend(
                paths_after(&code, "super::")
                    .into_iter()
                    .map(|p| format!("{prefix}{p}")),
            );
        }
        for child in modules.iter().filter_map(|m| {
            let rest = if module.is_empty() {
                Some(m.as_str())
            } else {
                m.strip_prefix(&format!("{module}::"))
            };
            rest.filter(|r| !r.is_empty() && !r.contains("::")).map(str::to_string)
        }) {
            if code.contains(&format!("{child}::")) && !code.contains(&format!("crate::{child}::")) {
                targets.push(if module.is_empty() {
                    child
                } else {
                    format!("{module}::{child}")
                });
            }
        }
        for target in targets {
            match resolve(&modules, &target) {
                Some(dep) if dep != module => {
                    deps.insert(dep);
                }
                None if !target.contains("::") && !parent.is_empty() => {
                    deps.insert(parent.clone());
                }
                _ => {}
            }
        }
        graph.insert(module, deps);
    }
    graph
}

/// A cycle through `start`, if any, as the list of modules on it.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_from_a_module_that_imports_it() {
    let graph = import_graph(Path::new("src"));
    assert!(
        graph.contains_key("losses::cross_entropy::gpu"),
        "the graph reads the tree: {graph:?}"
    );
    let cycles: Vec<Vec<String>> = graph.keys().filter_map(|m| cycle_from(&graph, m)).collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    // Guards the check itself: two modules that import each other are reported.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert_eq!(cycle_from(&graph, "a"), Some(vec!["a".to_string(), "b".to_string()]));
    let code = "use crate::gpu::{io::read, window};\nuse super::spec::Spec;";
    assert_eq!(paths_after(code, "crate::"), ["gpu::io::read", "gpu::window"]);
    assert_eq!(paths_after(code, "super::"), ["spec::Spec"]);
}

#[test]
fn files_and_functions_stay_small() {
    let mut long = Vec::new();
    for file in sources(Path::new("src")) {
        let text = std::fs::read_to_string(&file).expect("readable");
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > MAX_FILE_LINES {
            long.push(format!("{}: {} lines", file.display(), lines.len()));
        }
        assert!(
            !text.contains(&["too_many", "_arguments"].concat()),
            "{}: bundle the arguments into a type instead of allowing too_many_arguments",
            file.display()
        );
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "async fn ",
                "pub(crate) async fn ",
                "pub async fn ",
            ]
            .iter()
            .any(|p| trimmed.starts_with(p));
            if !is_fn || trimmed.ends_with(';') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let end = lines[start..]
                .iter()
                .position(|l| l.len() > indent && l[..indent].trim().is_empty() && l[indent..].starts_with('}'))
                .map_or(0, |n| n + 1);
            if end > MAX_FN_LINES {
                long.push(format!("{}:{}: fn of {end} lines", file.display(), start + 1));
            }
        }
    }
    assert!(long.is_empty(), "over the size limits:\n{}", long.join("\n"));
}
