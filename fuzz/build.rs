//! The CLI's argument module names the signature version, which the CLI's own
//! build script provides; the config-file target compiles that module in.
fn main() {
    println!("cargo:rustc-env=MINEHOUND_SIGNATURES_VERSION=fuzz");
}
