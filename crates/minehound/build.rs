//! Keeps only the section headings of `signatures/README.md` for
//! `rule_docs`: the document itself quotes miners' strings, which must not
//! end up inside a binary that links this library (a scan of that binary
//! would find them).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let readme =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../signatures/README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = fs::read_to_string(&readme).expect("signatures/README.md");
    let headings: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(|heading| format!("{heading:?}"))
        .collect();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("rule_headings.rs");
    fs::write(
        out,
        format!(
            "/// The `### ` headings of `signatures/README.md`.\nconst RULE_HEADINGS: &[&str] = &[{}];\n",
            headings.join(", ")
        ),
    )
    .unwrap();
}
