//! Keeps the layering of the design notes: which module of the crate may use which.
//!
//! `proto` depends on nothing else of the crate but `chunks` (the buffers packets live in, which `io`
//! shares); `wire` only on `proto`'s types; `sim` on `proto`, `wire` and the pure merge of
//! `multiring` (its Multi-Ring checker judges the merge that runs), never on `io` or `node`; `io` on
//! nothing else of the crate but `chunks`; `storage` on `proto`'s types; `multiring` on `proto` (the
//! merge) and on `node` and `io` (it runs a node per ring); `node` on `io`, `proto`, `wire` and
//! `storage`; `smr` on nothing else of the crate (its workers take batches through a small
//! delivery interface); `apps` (the services) on `smr`; `service` (replica processes and the client
//! library) on `smr`, `apps`, `multiring`, `node`, `io` and `proto`. Unsafe code appears only in `io`. It reads the sources (every `crate::` path,
//! including `use crate::{a, b}` groups) rather than trusting a picture of them.

use std::fs;
use std::path::{Path, PathBuf};

/// For each layer, the layers it may name. `temp_dir` is a unit tests' scratch directory (compiled
/// only for tests), which the layers that write files use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("chunks", &["chunks"]),
    ("proto", &["proto", "chunks"]),
    ("wire", &["wire", "proto"]),
    ("sim", &["sim", "proto", "wire", "multiring"]),
    ("io", &["io", "chunks"]),
    ("storage", &["storage", "proto", "temp_dir"]),
    ("multiring", &["multiring", "proto", "node", "io", "temp_dir"]),
    ("node", &["node", "io", "proto", "wire", "storage", "chunks", "temp_dir"]),
    ("smr", &["smr"]),
    ("apps", &["apps", "smr"]),
    ("service", &["service", "smr", "multiring", "node", "io", "proto", "apps", "temp_dir"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source file names through `crate::`.
fn crate_modules_named(source: &str) -> Vec<String> {
    let mut named = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let module: String =
                    item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                named.push(module);
            }
        } else {
            named.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    named.retain(|m| !m.is_empty());
    named
}

#[test]
fn layers_only_use_what_they_may() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (layer, allowed) in ALLOWED {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "layer {layer} has no sources");
        for file in files {
            let source = fs::read_to_string(&file).unwrap();
            for module in crate_modules_named(&source) {
                if !allowed.contains(&module.as_str()) {
                    violations.push(format!("{} uses crate::{module}", file.display()));
                }
            }
            // All unsafe code of the crate lives in `io`, each block with its SAFETY comment.
            if *layer != "io" && source.contains("unsafe ") {
                violations.push(format!("{} has unsafe code outside io", file.display()));
            }
            if *layer == "io"
                && source.matches("unsafe {").count() > source.matches("// SAFETY:").count()
            {
                violations
                    .push(format!("{} has an unsafe block without // SAFETY:", file.display()));
            }
            if *layer == "proto" {
                for forbidden in
                    ["std::net", "std::time::Instant", "SystemTime", "std::thread", "unsafe "]
                {
                    if source.contains(forbidden) {
                        violations.push(format!(
                            "{} (sans-IO core) mentions `{forbidden}`",
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "layering broken:\n{}", violations.join("\n"));
}

#[test]
fn the_scanner_sees_grouped_and_plain_paths() {
    let named =
        crate_modules_named("use crate::{proto::Msg, wire};\nlet x = crate::io::Reactor::new();");
    assert_eq!(named, vec!["proto", "wire", "io"]);
}
