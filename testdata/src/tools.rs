//! Third-party tools the tests run, fetched from their package registry at a
//! pinned version into the sample cache.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::samples::cache_dir;

/// Microsoft's SARIF validator, from npm.
const SARIF_MULTITOOL: &str = "@microsoft/sarif-multitool@5.7.0";

/// What the SARIF multitool said about a file.
#[derive(Debug)]
pub struct SarifVerdict {
    /// `level: ruleId: message` of each error.
    pub errors: Vec<String>,
    /// Same, for warnings.
    pub warnings: Vec<String>,
}

/// Validates `sarif` with `sarif-multitool validate --rule-kind "Gh;Sarif"`:
/// the SARIF schema plus GitHub code scanning's ingestion rules.
pub fn validate_sarif(sarif: &Path) -> io::Result<SarifVerdict> {
    let tool = sarif_multitool()?;
    let out_dir = tempfile::tempdir()?;
    let out = out_dir.path().join("validation.sarif");
    let status = Command::new(&tool)
        .args(["validate", "--rule-kind", "Gh;Sarif", "-o"])
        .arg(&out)
        .arg(sarif)
        .status()?;
    if !status.success() || !out.is_file() {
        return Err(io::Error::other(format!(
            "sarif-multitool failed on {} ({status})",
            sarif.display()
        )));
    }
    let log: serde_json::Value = serde_json::from_slice(&fs::read(&out)?)?;
    let mut verdict = SarifVerdict {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    for run in log["runs"].as_array().into_iter().flatten() {
        for result in run["results"].as_array().into_iter().flatten() {
            let level = result["level"].as_str().unwrap_or("warning");
            let line = format!("{level}: {}: {}", result["ruleId"], result["message"]);
            match level {
                "error" => verdict.errors.push(line),
                "warning" => verdict.warnings.push(line),
                _ => {}
            }
        }
    }
    Ok(verdict)
}

/// The multitool's native binary, installed with npm on first use.
fn sarif_multitool() -> io::Result<PathBuf> {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let prefix = cache_dir().join("sarif-multitool-5.7.0");
    let binary = prefix.join("node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool");
    if !binary.is_file() {
        let staging = cache_dir().join(format!(".npm-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        let status = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
            ])
            .arg(&staging)
            .arg(SARIF_MULTITOOL)
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "npm install {SARIF_MULTITOOL} failed ({status}); the npm registry must be reachable"
            )));
        }
        let _ = fs::remove_dir_all(&prefix);
        fs::rename(&staging, &prefix)?;
    }
    Ok(binary)
}
