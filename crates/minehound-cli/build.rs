//! Puts the bundled signature set's version into `minehound --version`.
fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../signatures/VERSION");
    println!("cargo:rerun-if-changed={path}");
    let version = std::fs::read_to_string(path).expect("signatures/VERSION");
    println!(
        "cargo:rustc-env=MINEHOUND_SIGNATURES_VERSION={}",
        version.trim()
    );
}
