use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

/// Which image of a source the user means: a tag (or image name) or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A tag or full name, matched against `org.opencontainers.image.ref.name`
    /// or docker `RepoTags`.
    Tag(String),
    /// A manifest digest, `sha256:…`.
    Digest(String),
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Tag(t) => write!(f, ":{t}"),
            ImageRef::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// Where to find the image, in the transport names skopeo and podman use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `oci:PATH[:TAG|@DIGEST]`: an OCI image layout directory.
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// Which image of the layout.
        image: Option<ImageRef>,
    },
    /// `oci-archive:FILE[:TAG|@DIGEST]`: an OCI layout as a tar.
    OciArchive {
        /// The tar file.
        path: PathBuf,
        /// Which image of the layout.
        image: Option<ImageRef>,
    },
    /// `docker-archive:FILE[:NAME:TAG]`: `docker save` output.
    DockerArchive {
        /// The tar file.
        path: PathBuf,
        /// Which image of the archive, by one of its `RepoTags`.
        image: Option<ImageRef>,
    },
    /// `docker://REFERENCE` or a bare reference: an image in a registry.
    Registry(String),
    /// `-`: a docker-archive or oci-archive on standard input.
    Stdin,
    /// `dir:PATH`: a root filesystem directory.
    Dir(PathBuf),
    /// A bare path, judged by its content when opened; a bare string that is no
    /// file and reads as an image reference means that image in its registry.
    Path(PathBuf),
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| Error::InvalidTarget {
            target: s.to_string(),
            reason: reason.to_string(),
        };
        if s == "-" {
            return Ok(Target::Stdin);
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, image) = split_image_ref(rest);
            return non_empty(path, &invalid).map(|path| Target::OciLayout { path, image });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, image) = split_image_ref(rest);
            return non_empty(path, &invalid).map(|path| Target::OciArchive { path, image });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            // docker-archive:FILE[:name:tag] — the path ends at the first colon.
            let (path, image) = match rest.split_once(':') {
                Some((path, name)) if !name.is_empty() => {
                    (path, Some(ImageRef::Tag(name.to_string())))
                }
                _ => (rest, None),
            };
            return non_empty(path, &invalid).map(|path| Target::DockerArchive { path, image });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            if rest.is_empty() {
                return Err(invalid("no image reference given"));
            }
            return Ok(Target::Registry(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("dir:") {
            return non_empty(rest, &invalid).map(Target::Dir);
        }
        if s.is_empty() {
            return Err(invalid("empty target"));
        }
        Ok(Target::Path(PathBuf::from(s)))
    }
}

fn non_empty(path: &str, invalid: &dyn Fn(&str) -> Error) -> Result<PathBuf, Error> {
    if path.is_empty() {
        Err(invalid("no path given"))
    } else {
        Ok(PathBuf::from(path))
    }
}

/// Splits `PATH[:TAG|@DIGEST]`. A colon only starts a tag when what follows
/// has no `/`, so `./dir:with/colon` stays a path.
fn split_image_ref(rest: &str) -> (&str, Option<ImageRef>) {
    if let Some(at) = rest.rfind("@sha256:") {
        return (
            &rest[..at],
            Some(ImageRef::Digest(rest[at + 1..].to_string())),
        );
    }
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.is_empty() && !tag.contains('/') && !path.is_empty() => {
            (path, Some(ImageRef::Tag(tag.to_string())))
        }
        _ => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn parses_transport_names() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse("oci:./out"),
            Target::OciLayout {
                path: "./out".into(),
                image: None
            }
        );
        assert_eq!(
            parse("oci:./out:v1.2"),
            Target::OciLayout {
                path: "./out".into(),
                image: Some(ImageRef::Tag("v1.2".into()))
            }
        );
        assert_eq!(
            parse(&format!("oci-archive:img.tar@{digest}")),
            Target::OciArchive {
                path: "img.tar".into(),
                image: Some(ImageRef::Digest(digest.clone()))
            }
        );
        assert_eq!(
            parse("docker-archive:app.tar:registry/app:1.0"),
            Target::DockerArchive {
                path: "app.tar".into(),
                image: Some(ImageRef::Tag("registry/app:1.0".into()))
            }
        );
        assert_eq!(parse("-"), Target::Stdin);
        assert_eq!(
            parse("docker://localhost:5000/app:1"),
            Target::Registry("localhost:5000/app:1".into())
        );
        assert_eq!(parse("dir:/srv/rootfs"), Target::Dir("/srv/rootfs".into()));
        assert_eq!(parse("./image.tar"), Target::Path("./image.tar".into()));
        assert!("oci:".parse::<Target>().is_err());
        assert!("".parse::<Target>().is_err());
    }
}
