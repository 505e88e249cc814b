//! The modules of `src/` depend only downwards: each top-level module may name (through a
//! `crate::` path) only the modules listed before it in [`LAYERS`]. That makes import cycles
//! impossible and keeps the result model at the bottom, below the collectors, the runner
//! and the reporters. `docs/architecture.md` draws the same layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules, lowest layer first; within a line, a module may use the ones
/// before it on the same line.
const LAYERS: &[&[&str]] = &[
    // Foundations: no knowledge of images or VMs.
    &[
        "exit",
        "units",
        "named",
        "interrupt",
        "wait",
        "scratch",
        "helper",
        "encoding",
        "fuzz",
    ],
    // The result model: facts, the check catalogue over them, the report and its events.
    &["facts", "checks", "report"],
    // Readers and collectors: each fills facts from one source.
    &[
        "fs",
        "disk",
        "console",
        "metadata",
        "guest",
        "cloudinit",
        "offline",
    ],
    // Machinery: the sparse copier, QEMU, the image builder.
    &["sparsecopy", "vm", "fsmaker"],
    // Orchestration.
    &["run", "matrix"],
    // The command lines: the only module that knows flags or prints.
    &["cli"],
];

/// Every `crate::NAME` a top-level module's files mention (comments ignored), by module.
fn uses(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if ["bin", "lib"].contains(&module.as_str()) {
                continue;
            }
            let names = out.entry(module.clone()).or_default();
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let code = line.split("//").next().unwrap_or("");
                names.extend(crate_paths(code).into_iter().filter(|n| *n != module));
            }
        }
    }
    out
}

/// The modules named by `crate::x` and `crate::{x, y::z}` in one line of code.
fn crate_paths(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `mycrate::` is not ours (`$crate::`, in macros, is)
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            names.extend(top_level_items(group).into_iter().filter_map(|g| {
                let g = g.trim().split("::").next()?.trim();
                (!g.is_empty()).then(|| g.to_string())
            }));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
}

/// The comma-separated items of a `{...}` group (its opening brace already taken), nested
/// groups kept whole.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

#[test]
fn modules_depend_only_on_the_layers_below() {
    let order: Vec<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    let rank = |m: &str| order.iter().position(|o| *o == m);
    let uses = uses(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut wrong = Vec::new();
    for (module, names) in &uses {
        let Some(r) = rank(module) else {
            wrong.push(format!("{module} is in no layer: add it to LAYERS"));
            continue;
        };
        for n in names {
            match rank(n) {
                Some(rn) if rn < r => {}
                Some(_) => wrong.push(format!("{module} uses {n}, which is not below it")),
                None if uses.contains_key(n) => {
                    wrong.push(format!("{module} uses {n}, which is in no layer"))
                }
                None => {} // not a module of ours (e.g. a crate-level item)
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    for m in &order {
        assert!(uses.contains_key(*m), "LAYERS names {m}, which src/ lacks");
    }
}

#[test]
fn crate_paths_are_found_in_every_form() {
    assert_eq!(crate_paths("use crate::facts::Facts;"), ["facts"]);
    assert_eq!(
        crate_paths("use crate::{checks::Need, report, vm::{self, X}};"),
        ["checks", "report", "vm"]
    );
    assert_eq!(
        crate_paths("let x = crate::run::go(); $crate::named::Named; mycrate::x"),
        ["run", "named"]
    );
}
