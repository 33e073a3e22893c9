//! Embeds the bundled signature set: every `signatures/yara/*.yar` file, every
//! `signatures/hashes/*.tsv` file and `signatures/VERSION`, so the binary works
//! offline and a new rule file needs no code change.
//!
//! The rule and hash files are embedded masked (see `mask`), never as plain
//! text: the rules' own strings (option tables, pool protocols, algorithm
//! names) would otherwise sit in the binary verbatim, and minehound, or any
//! YARA scanner with similar rules, would find a miner in minehound itself
//! and refuse its image.
use std::{env, fs, path::Path};

/// Defines `mask` here and keeps its source in `MASK` for the generated code,
/// so masking and unmasking cannot drift apart.
macro_rules! with_source {
    ($($item:tt)*) => {
        $($item)*
        const MASK: &str = stringify!($($item)*);
    };
}

with_source! {
    /// The mask byte at position `i`: it changes with the position, so neither
    /// the embedded bytes nor any single-byte XOR of them (YARA's `xor`
    /// modifier) nor their base64 holds the rules' strings.
    fn mask(i: usize) -> u8 {
        (i.wrapping_mul(167).wrapping_add(0x5b) ^ (i >> 7)) as u8
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../signatures");
    let out_dir = Path::new(&env::var("OUT_DIR").unwrap()).join("bundled");
    fs::create_dir_all(&out_dir).unwrap();
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::from(
        "/// A bundled file: its label and the function that unmasks its text (once).\n\
         type Entry = (&'static str, fn() -> &'static str);\n\n\
         /// Bundled files, iterated as (label, text).\n\
         #[derive(Clone, Copy)]\n\
         pub(crate) struct Bundled(&'static [Entry]);\n\n\
         impl IntoIterator for Bundled {\n    \
             type Item = (&'static str, &'static str);\n    \
             type IntoIter = std::iter::Map<std::slice::Iter<'static, Entry>, fn(&Entry) -> Self::Item>;\n\n    \
             fn into_iter(self) -> Self::IntoIter {\n        \
                 self.0.iter().map(|(label, text)| (*label, text()))\n    \
             }\n\
         }\n\n",
    );
    out.push_str(MASK);
    out.push_str(
        "\n\nfn unmask(bytes: &[u8]) -> String {\n    \
             let text: Vec<u8> = bytes.iter().enumerate().map(|(i, b)| b ^ mask(i)).collect();\n    \
             String::from_utf8(text).expect(\"bundled signature files are UTF-8\")\n\
         }\n\n",
    );
    let mut n = 0;
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
        let mut entries = String::new();
        for file in files {
            println!("cargo:rerun-if-changed={}", file.display());
            let abs = file.canonicalize().unwrap();
            let label = format!(
                "signatures/{}",
                abs.strip_prefix(root.canonicalize().unwrap())
                    .unwrap()
                    .display()
            );
            let text = fs::read_to_string(&abs)
                .unwrap_or_else(|e| panic!("reading {}: {e}", abs.display()));
            let masked: Vec<u8> = text.bytes().enumerate().map(|(i, b)| b ^ mask(i)).collect();
            let blob = out_dir.join(format!("{n}.bin"));
            fs::write(&blob, masked).unwrap();
            out.push_str(&format!(
                "fn text_{n}() -> &'static str {{\n    \
                     static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();\n    \
                     TEXT.get_or_init(|| unmask(include_bytes!({:?})))\n\
                 }}\n\n",
                blob.display().to_string()
            ));
            entries.push_str(&format!("    ({label:?}, text_{n}),\n"));
            n += 1;
        }
        out.push_str(&format!(
            "pub(crate) const {name}: Bundled = Bundled(&[\n{entries}]);\n\n"
        ));
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
