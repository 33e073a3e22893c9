use crate::Platform;

/// How to find a blob in its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlobLocation {
    /// By digest: `blobs/sha256/<hex>` in a layout or archive.
    Digest(String),
    /// By member path in a `docker save` archive (`<id>/layer.tar`).
    ArchivePath(String),
}

impl BlobLocation {
    /// The path of the blob inside a layout or archive.
    pub fn member_path(&self) -> Result<String, crate::Error> {
        match self {
            BlobLocation::Digest(d) => Ok(format!("blobs/sha256/{}", crate::sha256_hex_of(d)?)),
            BlobLocation::ArchivePath(p) => Ok(clean_member(p)),
        }
    }
}

/// An archive member name without `./` or leading `/`, as the archive index keys it.
pub(crate) fn clean_member(p: &str) -> String {
    p.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

/// A link target as a member name: hard links name a member; symlinks are
/// relative to the link's directory. `..` never climbs above the archive root.
pub(crate) fn resolve_link(name: &str, target: &str, symlink: bool) -> String {
    if !symlink || target.starts_with('/') {
        return clean_member(target);
    }
    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// One layer of an image, and what its bytes must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Position, 0 = bottom.
    pub index: usize,
    /// Where its blob is.
    pub location: BlobLocation,
    /// Digest the stored blob must have (absent for classic docker-archive layers).
    pub digest: Option<String>,
    /// Digest the uncompressed tar must have (`rootfs.diff_ids`).
    pub diff_id: Option<String>,
    /// Media type from the manifest.
    pub media_type: Option<String>,
    /// Size the manifest declares for the blob.
    pub size: Option<u64>,
    /// The history line that made it.
    pub created_by: Option<String>,
}

impl Layer {
    /// The digest that names this layer in reports: the blob digest, else the diff id.
    pub fn display_digest(&self) -> Option<&str> {
        self.digest.as_deref().or(self.diff_id.as_deref())
    }
}

/// The process an image starts, from its config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageProcess {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`.
    pub env: Vec<String>,
    /// `WorkingDir`, where relative paths of the command start.
    pub working_dir: Option<String>,
    /// Every history `created_by` line, bottom first, empty layers (`ENV`,
    /// `CMD`, ...) included.
    pub history: Vec<HistoryLine>,
}

impl ImageProcess {
    /// The command the image runs: `Entrypoint` then `Cmd`, word by word.
    pub fn command(&self) -> Vec<&str> {
        self.entrypoint
            .iter()
            .chain(&self.cmd)
            .map(String::as_str)
            .collect()
    }
}

/// One line of the config's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryLine {
    /// The `created_by` command.
    pub created_by: String,
    /// Index of the layer it made; `None` for an empty layer (`ENV`, `CMD`).
    pub layer: Option<usize>,
}

/// One image (one platform) ready to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Tag or name it was found under.
    pub reference: Option<String>,
    /// Manifest digest.
    pub manifest_digest: Option<String>,
    /// Config digest.
    pub config_digest: Option<String>,
    /// Platform, from the index or else the config.
    pub platform: Option<Platform>,
    /// The raw config JSON (for detectors that read entrypoint and env).
    pub config: Vec<u8>,
    /// The process it starts.
    pub process: ImageProcess,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_links_inside_the_archive() {
        assert_eq!(
            resolve_link("a/b/layer.tar", "../../blobs/sha256/x", true),
            "blobs/sha256/x"
        );
        assert_eq!(
            resolve_link("a/layer.tar", "../../../../etc/passwd", true),
            "etc/passwd"
        );
        assert_eq!(resolve_link("a/layer.tar", "x", false), "x");
        assert_eq!(resolve_link("a/layer.tar", "/blobs/x", true), "blobs/x");
    }
}
