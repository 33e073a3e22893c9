//! Embeds the bundled signature set: every `signatures/yara/*.yar` file, every
//! `signatures/hashes/*.tsv` file and `signatures/VERSION`, so the binary works
//! offline and a new rule file needs no code change.
use std::{env, fs, path::Path};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../signatures");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::new();
    for (dir, ext, name) in [
        ("yara", "yar", "BUNDLED_RULES"),
        ("hashes", "tsv", "BUNDLED_HASHES"),
    ] {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        files.sort();
        out.push_str(&format!("pub(crate) const {name}: &[(&str, &str)] = &[\n"));
        for file in files {
            println!("cargo:rerun-if-changed={}", file.display());
            let abs = file.canonicalize().unwrap();
            let label = format!(
                "signatures/{}",
                abs.strip_prefix(root.canonicalize().unwrap())
                    .unwrap()
                    .display()
            );
            out.push_str(&format!(
                "    ({label:?}, include_str!({:?})),\n",
                abs.display().to_string()
            ));
        }
        out.push_str("];\n");
    }
    let version = root.join("VERSION");
    println!("cargo:rerun-if-changed={}", version.display());
    out.push_str(&format!(
        "pub(crate) const BUNDLED_VERSION: &str = {:?};\n",
        fs::read_to_string(&version)
            .expect("signatures/VERSION")
            .trim()
    ));
    fs::write(
        Path::new(&env::var("OUT_DIR").unwrap()).join("bundled.rs"),
        out,
    )
    .unwrap();
}
