use std::path::PathBuf;

/// Why signatures could not be loaded or a file could not be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rule file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A YARA rule file does not compile; the message names file, line and column.
    #[error("rule file {} does not compile:\n{message}", path.display())]
    RuleCompile {
        /// The rule file (or `signatures/...` for a bundled one).
        path: PathBuf,
        /// yara-x's report, with `--> file:line:column`.
        message: String,
    },
    /// `--rules` named a directory holding no `.yar` / `.yara` file.
    #[error("no .yar or .yara file in {}", path.display())]
    NoRules {
        /// The directory.
        path: PathBuf,
    },
    /// A hash list line is malformed.
    #[error("{}:{line}: {message}", path.display())]
    HashList {
        /// The hash list file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A YARA scan failed (for example it ran past its time limit).
    #[error("YARA scan failed")]
    Scan(#[source] yara_x::ScanError),
}

impl Error {
    /// Whether the rules ran past their time limit on the file.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Scan(yara_x::ScanError::Timeout))
    }
}
