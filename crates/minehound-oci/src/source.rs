//! Opening a [`Target`]: what kind of source it is and which images it holds.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::registry::RegistryOptions;
use crate::{
    BlobStore, Error, Image, ImageRef, LayoutDir, PlatformChoice, TarArchive, Target,
    images_from_docker_archive, images_from_layout,
};

/// An opened target, ready for the scanner.
pub enum Opened {
    /// Images whose blobs can be read in any order (and so in parallel).
    Images {
        /// Where the blobs are.
        store: Box<dyn BlobStore>,
        /// The images chosen by reference and platform.
        images: Vec<Image>,
    },
    /// An archive that can only be read front to back: stdin, or a compressed
    /// archive. Read it with [`crate::read_archive_stream`].
    Stream {
        /// The (still compressed) bytes.
        reader: Box<dyn Read + Send>,
        /// Name for messages.
        name: String,
        /// Which image, if the user named one.
        image: Option<ImageRef>,
        /// Whether a non-image stream may be scanned as a plain file instead.
        fallback_file: Option<PathBuf>,
    },
    /// A root filesystem directory.
    Dir(PathBuf),
    /// One file (an ELF, a script, an archive of files…).
    File(PathBuf),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Images { store, images } => f
                .debug_struct("Images")
                .field("store", &store.name())
                .field("images", &images.len())
                .finish(),
            Opened::Stream { name, .. } => f.debug_struct("Stream").field("name", name).finish(),
            Opened::Dir(p) => f.debug_tuple("Dir").field(p).finish(),
            Opened::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// Opens `target` and resolves the images it holds for `platform`.
pub fn open(
    target: &Target,
    platform: &PlatformChoice,
    registry: &RegistryOptions,
) -> Result<Opened, Error> {
    match target {
        Target::Registry(reference) => open_registry_images(reference, platform, registry),
        Target::OciLayout { path, image } => {
            let store = LayoutDir::new(path);
            let images = images_from_layout(&store, image.as_ref(), platform)?;
            Ok(Opened::Images {
                store: Box::new(store),
                images,
            })
        }
        Target::OciArchive { path, image } | Target::DockerArchive { path, image } => {
            open_archive_file(path, image.clone(), platform, None)
        }
        Target::Stdin => Ok(Opened::Stream {
            reader: Box::new(io::stdin()),
            name: "stdin".to_string(),
            image: None,
            fallback_file: None,
        }),
        Target::Dir(path) => {
            let meta = fs::metadata(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(Error::InvalidTarget {
                    target: format!("dir:{}", path.display()),
                    reason: "not a directory".into(),
                });
            }
            Ok(Opened::Dir(path.clone()))
        }
        Target::Path(path) => {
            let text = path.to_string_lossy();
            if !path.exists() && crate::registry::looks_like_reference(&text) {
                return open_registry_images(&text, platform, registry);
            }
            open_bare_path(path, platform)
        }
    }
}

fn open_registry_images(
    reference: &str,
    platform: &PlatformChoice,
    options: &RegistryOptions,
) -> Result<Opened, Error> {
    let (store, images) = crate::registry::open_registry(reference, options, platform)?;
    Ok(Opened::Images {
        store: Box::new(store),
        images,
    })
}

/// A bare path, judged by content: a layout directory, a rootfs directory, an
/// image archive, or any other single file.
fn open_bare_path(path: &Path, platform: &PlatformChoice) -> Result<Opened, Error> {
    let meta = fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        if path.join("oci-layout").is_file() || path.join("index.json").is_file() {
            return open(
                &Target::OciLayout {
                    path: path.to_path_buf(),
                    image: None,
                },
                platform,
                &RegistryOptions::default(),
            );
        }
        return Ok(Opened::Dir(path.to_path_buf()));
    }
    let head = read_head(path)?;
    if is_tar(&head) || is_compressed(&head) {
        return open_archive_file(path, None, platform, Some(path.to_path_buf()));
    }
    Ok(Opened::File(path.to_path_buf()))
}

fn open_archive_file(
    path: &Path,
    image: Option<ImageRef>,
    platform: &PlatformChoice,
    fallback_file: Option<PathBuf>,
) -> Result<Opened, Error> {
    let head = read_head(path)?;
    if is_compressed(&head) {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Opened::Stream {
            reader: Box::new(file),
            name: path.display().to_string(),
            image,
            fallback_file,
        });
    }
    if !is_tar(&head) {
        return Err(Error::InvalidTarget {
            target: path.display().to_string(),
            reason: "not a tar archive".into(),
        });
    }
    let archive = TarArchive::open(path)?;
    let images = match images_from_archive(&archive, image.as_ref(), platform) {
        Err(Error::NoImage(_)) if fallback_file.is_some() => {
            return Ok(Opened::File(path.to_path_buf()));
        }
        other => other?,
    };
    Ok(Opened::Images {
        store: Box::new(archive),
        images,
    })
}

/// The images of an archive's members: an OCI layout if it has `index.json`,
/// else a classic `docker save` archive with `manifest.json`.
pub fn images_from_archive(
    store: &dyn BlobStore,
    image: Option<&ImageRef>,
    platform: &PlatformChoice,
) -> Result<Vec<Image>, Error> {
    if store.read_member("index.json", 4 * 1024 * 1024)?.is_some() {
        images_from_layout(store, image, platform)
    } else if store
        .read_member("manifest.json", 4 * 1024 * 1024)?
        .is_some()
    {
        images_from_docker_archive(store, image, platform)
    } else {
        Err(Error::NoImage(store.name()))
    }
}

fn read_head(path: &Path) -> Result<Vec<u8>, Error> {
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(head)
}

fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}
