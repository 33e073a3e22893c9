use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An image platform: `os/architecture[/variant]`, as in OCI indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system, such as `linux`.
    pub os: String,
    /// CPU architecture in Go's naming, such as `amd64` or `arm64`.
    pub architecture: String,
    /// CPU variant, such as `v7` for `arm`.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine minehound runs on, in Go's naming.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        let variant = (architecture == "arm").then(|| "v7".to_string());
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant,
        }
    }

    /// Whether an image built for `self` satisfies a request for `wanted`. A
    /// request without a variant accepts any variant; `arm64` and `arm64/v8` are
    /// the same thing.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        match (&wanted.variant, &self.variant) {
            (None, _) => true,
            (Some(w), Some(s)) => w == s,
            (Some(w), None) => self.architecture == "arm64" && w == "v8",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || !(2..=3).contains(&parts.len()) {
            return Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant]"
            ));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

/// Which platforms of a multi-platform image to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The host's platform; an image with one platform is scanned whatever it is.
    Host,
    /// Exactly this platform; an error if the image has no such manifest.
    Only(Platform),
    /// Every platform of the index.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches_variants() {
        let arm: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(arm.to_string(), "linux/arm/v7");
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert!(arm64.satisfies(&"linux/arm64/v8".parse().unwrap()));
        assert!(arm.satisfies(&"linux/arm".parse().unwrap()));
        assert!(!arm.satisfies(&"linux/arm/v6".parse().unwrap()));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//".parse::<Platform>().is_err());
    }
}
