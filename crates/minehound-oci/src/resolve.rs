//! From a layout's `index.json` or a docker archive's `manifest.json` to the
//! images to scan: pick by tag or digest, walk nested indexes, pick platforms,
//! read and verify manifests and configs, and line layers up with history.

use std::collections::HashSet;

use crate::docs::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ANNOTATION_REFERENCE_TYPE, ConfigFile, Descriptor,
    DockerArchiveEntry, Index, Manifest, ManifestKind, parse_manifest,
};
use crate::image::clean_member;
use crate::{
    BlobLocation, BlobStore, Error, HistoryLine, Image, ImageProcess, ImageRef, Layer, Platform,
    PlatformChoice, digest, sha256_hex_of,
};

/// Largest index or manifest accepted.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Largest image config accepted.
const MAX_CONFIG_BYTES: u64 = 32 * 1024 * 1024;
/// Most layers one image may have.
pub const MAX_LAYERS: usize = 4096;
/// How deep indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

/// The images an OCI layout (directory or archive) holds for this request.
pub fn images_from_layout(
    store: &dyn BlobStore,
    wanted: Option<&ImageRef>,
    platform: &PlatformChoice,
) -> Result<Vec<Image>, Error> {
    let bytes = store
        .read_member("index.json", MAX_MANIFEST_BYTES)?
        .ok_or_else(|| Error::NoImage(store.name()))?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        what: format!("{}/index.json", store.name()),
        kind: "OCI image index",
        source,
    })?;
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| !is_attestation(d))
        .collect();

    let chosen: Vec<&Descriptor> = match wanted {
        Some(ImageRef::Digest(d)) => images.iter().copied().filter(|m| &m.digest == d).collect(),
        Some(ImageRef::Tag(tag)) => images
            .iter()
            .copied()
            .filter(|m| ref_names(m).any(|name| name_matches(name, tag)))
            .collect(),
        None => images.clone(),
    };
    if chosen.is_empty() {
        return match wanted {
            Some(reference) => Err(Error::NoSuchReference {
                source_name: store.name(),
                reference: reference.to_string(),
                choices: describe_choices(&images),
            }),
            None => Err(Error::NoImage(store.name())),
        };
    }

    // Several entries are one multi-platform image only when they share one name
    // (or have none) and each is a single-platform manifest; otherwise the user
    // must say which image.
    let one_name = chosen
        .iter()
        .map(|d| ref_name(d))
        .collect::<HashSet<_>>()
        .len()
        == 1;
    let all_platform_manifests = chosen.len() > 1
        && one_name
        && chosen
            .iter()
            .all(|d| d.platform.is_some() && !is_index_type(d.media_type.as_deref()));
    if chosen.len() > 1 && !all_platform_manifests {
        return Err(Error::Ambiguous {
            source_name: store.name(),
            count: chosen.len(),
            choices: describe_choices(&chosen),
        });
    }

    let reference = chosen.iter().find_map(|d| ref_name(d)).map(str::to_string);
    let mut resolver = Resolver {
        store,
        platform,
        manifests_read: 0,
    };
    if all_platform_manifests {
        // index.json itself is the multi-platform index (as BuildKit writes it).
        let owned: Vec<Descriptor> = chosen.into_iter().cloned().collect();
        let mut images = resolver.pick_platforms(&owned, 0)?;
        for image in &mut images {
            image.reference = reference.clone();
        }
        return Ok(images);
    }
    let mut images = resolver.descriptor(chosen[0], None, 0)?;
    for image in &mut images {
        image.reference = reference.clone();
    }
    Ok(images)
}

/// The images under one manifest or index, given by digest (a registry's
/// answer for a tag).
pub(crate) fn images_from_root_manifest(
    store: &dyn BlobStore,
    digest: &str,
    platform: &PlatformChoice,
) -> Result<Vec<Image>, Error> {
    let root = Descriptor {
        media_type: None,
        digest: digest.to_string(),
        size: None,
        platform: None,
        annotations: Default::default(),
    };
    Resolver {
        store,
        platform,
        manifests_read: 0,
    }
    .descriptor(&root, None, 0)
}

/// The image of a `docker save` archive (classic or OCI-style).
pub fn images_from_docker_archive(
    store: &dyn BlobStore,
    wanted: Option<&ImageRef>,
    platform: &PlatformChoice,
) -> Result<Vec<Image>, Error> {
    let bytes = store
        .read_member("manifest.json", MAX_MANIFEST_BYTES)?
        .ok_or_else(|| Error::NoImage(store.name()))?;
    let entries: Vec<DockerArchiveEntry> =
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: format!("{}/manifest.json", store.name()),
            kind: "docker-archive manifest.json",
            source,
        })?;
    let tags = |e: &DockerArchiveEntry| e.repo_tags.clone().unwrap_or_default();
    let choices = || {
        entries
            .iter()
            .map(|e| {
                let t = tags(e);
                if t.is_empty() {
                    e.config.clone()
                } else {
                    t.join(", ")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let entry = match wanted {
        Some(reference) => {
            let name = match reference {
                ImageRef::Tag(t) => t.clone(),
                ImageRef::Digest(d) => d.clone(),
            };
            entries
                .iter()
                .find(|e| match reference {
                    ImageRef::Tag(_) => tags(e).iter().any(|t| name_matches(t, &name)),
                    ImageRef::Digest(d) => {
                        digest_in_name(&clean_member(&e.config)).as_ref() == Some(d)
                    }
                })
                .ok_or_else(|| Error::NoSuchReference {
                    source_name: store.name(),
                    reference: reference.to_string(),
                    choices: choices(),
                })?
        }
        None => match entries.as_slice() {
            [one] => one,
            [] => return Err(Error::NoImage(store.name())),
            many => {
                return Err(Error::Ambiguous {
                    source_name: store.name(),
                    count: many.len(),
                    choices: choices(),
                });
            }
        },
    };
    if entry.layers.len() > MAX_LAYERS {
        return Err(Error::TooLarge {
            what: "layer list".into(),
            limit: MAX_LAYERS as u64,
        });
    }

    let config_path = clean_member(&entry.config);
    let config_bytes = store
        .read_member(&config_path, MAX_CONFIG_BYTES)?
        .ok_or_else(|| Error::MissingBlob(config_path.clone()))?;
    // Classic archives name the config `<sha256>.json`, OCI-style ones
    // `blobs/sha256/<sha256>`: either way the name is its digest.
    let config_digest = digest_in_name(&config_path);
    if let Some(expected) = &config_digest {
        digest::verify(&config_path, &config_bytes, expected)?;
    }
    let config = parse_config(&config_path, &config_bytes)?;
    let image_platform = config_platform(&config);
    if let (PlatformChoice::Only(want), Some(have)) = (platform, &image_platform)
        && !have.satisfies(want)
    {
        return Err(Error::NoMatchingPlatform {
            wanted: want.to_string(),
            available: have.to_string(),
        });
    }
    let descriptors: Vec<(BlobLocation, Option<String>)> = entry
        .layers
        .iter()
        .map(|path| {
            let path = clean_member(path);
            let digest = digest_in_name(&path).filter(|_| path.starts_with("blobs/"));
            (BlobLocation::ArchivePath(path), digest)
        })
        .collect();
    let layers = layers_with_history(&config, descriptors, None)?;
    Ok(vec![Image {
        reference: tags(entry).into_iter().next(),
        manifest_digest: None,
        config_digest,
        platform: image_platform,
        process: process_of(&config),
        config: config_bytes,
        layers,
    }])
}

struct Resolver<'a> {
    store: &'a dyn BlobStore,
    platform: &'a PlatformChoice,
    /// Manifests and indexes read so far: a hostile index cannot fan out forever.
    manifests_read: usize,
}

/// Most manifests and indexes one target may make minehound read.
const MAX_MANIFESTS: usize = 1024;

impl Resolver<'_> {
    /// Resolves one descriptor: an index (recursing) or a manifest (one image).
    fn descriptor(
        &mut self,
        desc: &Descriptor,
        platform: Option<Platform>,
        depth: usize,
    ) -> Result<Vec<Image>, Error> {
        // An index that contains itself runs into the depth limit.
        if depth > MAX_INDEX_DEPTH {
            return Err(Error::IndexTooDeep(MAX_INDEX_DEPTH));
        }
        self.manifests_read += 1;
        if self.manifests_read > MAX_MANIFESTS {
            return Err(Error::TooLarge {
                what: "number of manifests and indexes".into(),
                limit: MAX_MANIFESTS as u64,
            });
        }
        sha256_hex_of(&desc.digest)?;
        let bytes = self.store.read_manifest(&desc.digest, MAX_MANIFEST_BYTES)?;
        digest::verify(&desc.digest, &bytes, &desc.digest)?;
        check_size(&desc.digest, desc.size, bytes.len() as u64)?;
        match parse_manifest(&desc.digest, &bytes)? {
            ManifestKind::Index(index) => {
                let manifests: Vec<Descriptor> = index
                    .manifests
                    .into_iter()
                    .filter(|d| !is_attestation(d))
                    .collect();
                self.pick_platforms(&manifests, depth + 1)
            }
            ManifestKind::Manifest(manifest) => {
                Ok(vec![self.manifest(&desc.digest, manifest, platform)?])
            }
        }
    }

    fn pick_platforms(
        &mut self,
        manifests: &[Descriptor],
        depth: usize,
    ) -> Result<Vec<Image>, Error> {
        let platform_of = |d: &Descriptor| d.platform.as_ref().map(Platform::from);
        let chosen: Vec<&Descriptor> = match self.platform {
            PlatformChoice::All => manifests.iter().collect(),
            PlatformChoice::Only(want) => manifests
                .iter()
                .filter(|d| platform_of(d).is_some_and(|p| p.satisfies(want)))
                .take(1)
                .collect(),
            PlatformChoice::Host => {
                let host = Platform::host();
                let matching: Vec<&Descriptor> = manifests
                    .iter()
                    .filter(|d| platform_of(d).is_some_and(|p| p.satisfies(&host)))
                    .take(1)
                    .collect();
                if matching.is_empty() && manifests.len() == 1 {
                    manifests.iter().collect()
                } else {
                    matching
                }
            }
        };
        if chosen.is_empty() {
            let wanted = match self.platform {
                PlatformChoice::Only(p) => p.to_string(),
                _ => Platform::host().to_string(),
            };
            let available = manifests
                .iter()
                .map(|d| platform_of(d).map_or_else(|| "unknown".to_string(), |p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::NoMatchingPlatform { wanted, available });
        }
        let mut images = Vec::new();
        for desc in chosen {
            images.extend(self.descriptor(desc, platform_of(desc), depth)?);
        }
        Ok(images)
    }

    fn manifest(
        &self,
        manifest_digest: &str,
        manifest: Manifest,
        platform: Option<Platform>,
    ) -> Result<Image, Error> {
        if manifest.layers.len() > MAX_LAYERS {
            return Err(Error::TooLarge {
                what: format!("layer list of {manifest_digest}"),
                limit: MAX_LAYERS as u64,
            });
        }
        let config_desc = &manifest.config;
        sha256_hex_of(&config_desc.digest)?;
        let config_bytes = self.store.read_small(
            &BlobLocation::Digest(config_desc.digest.clone()),
            MAX_CONFIG_BYTES,
        )?;
        digest::verify(&config_desc.digest, &config_bytes, &config_desc.digest)?;
        check_size(
            &config_desc.digest,
            config_desc.size,
            config_bytes.len() as u64,
        )?;
        let config = parse_config(&config_desc.digest, &config_bytes)?;
        let mut descriptors = Vec::new();
        let mut media_types = Vec::new();
        let mut sizes = Vec::new();
        for layer in &manifest.layers {
            sha256_hex_of(&layer.digest)?;
            let size = match layer.size {
                Some(s) if s < 0 => {
                    return Err(Error::Inconsistent(format!(
                        "layer {} declares a negative size",
                        layer.digest
                    )));
                }
                s => s.map(|s| s as u64),
            };
            descriptors.push((
                BlobLocation::Digest(layer.digest.clone()),
                Some(layer.digest.clone()),
            ));
            media_types.push(layer.media_type.clone());
            sizes.push(size);
        }
        let mut layers = layers_with_history(&config, descriptors, Some(manifest_digest))?;
        for (layer, (media_type, size)) in layers.iter_mut().zip(media_types.into_iter().zip(sizes))
        {
            layer.media_type = media_type;
            layer.size = size;
        }
        let platform = platform.or_else(|| config_platform(&config));
        // A single-platform image asked for by platform must be that platform.
        if let (PlatformChoice::Only(want), Some(have)) = (self.platform, &platform)
            && !have.satisfies(want)
        {
            return Err(Error::NoMatchingPlatform {
                wanted: want.to_string(),
                available: have.to_string(),
            });
        }
        Ok(Image {
            reference: None,
            manifest_digest: Some(manifest_digest.to_string()),
            config_digest: Some(config_desc.digest.clone()),
            platform,
            process: process_of(&config),
            config: config_bytes,
            layers,
        })
    }
}

/// Pairs layers with `rootfs.diff_ids` and the non-empty history lines.
fn layers_with_history(
    config: &ConfigFile,
    descriptors: Vec<(BlobLocation, Option<String>)>,
    manifest: Option<&str>,
) -> Result<Vec<Layer>, Error> {
    let diff_ids = config
        .rootfs
        .as_ref()
        .map(|r| r.diff_ids.clone())
        .unwrap_or_default();
    if diff_ids.len() != descriptors.len() {
        return Err(Error::Inconsistent(format!(
            "image config lists {} diff_ids for {} layers{}",
            diff_ids.len(),
            descriptors.len(),
            manifest
                .map(|m| format!(" in manifest {m}"))
                .unwrap_or_default()
        )));
    }
    for id in &diff_ids {
        sha256_hex_of(id)?;
    }
    let history: Vec<Option<String>> = config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.clone())
        .collect();
    Ok(descriptors
        .into_iter()
        .zip(diff_ids)
        .enumerate()
        .map(|(index, ((location, digest), diff_id))| Layer {
            index,
            location,
            digest,
            diff_id: Some(diff_id),
            media_type: None,
            size: None,
            created_by: history.get(index).cloned().flatten(),
        })
        .collect())
}

fn parse_config(what: &str, bytes: &[u8]) -> Result<ConfigFile, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: what.to_string(),
        kind: "image config",
        source,
    })
}

fn config_platform(config: &ConfigFile) -> Option<Platform> {
    Some(Platform {
        os: config.os.clone()?,
        architecture: config.architecture.clone()?,
        variant: config.variant.clone().filter(|v| !v.is_empty()),
    })
}

fn process_of(config: &ConfigFile) -> ImageProcess {
    let process = config.config.clone().unwrap_or_default();
    ImageProcess {
        entrypoint: process.entrypoint.unwrap_or_default(),
        cmd: process.cmd.unwrap_or_default(),
        env: process.env.unwrap_or_default(),
        working_dir: process.working_dir.filter(|dir| dir.starts_with('/')),
        history: config
            .history
            .iter()
            .scan(0, |next_layer, h| {
                let layer = (!h.empty_layer).then(|| {
                    *next_layer += 1;
                    *next_layer - 1
                });
                Some((h, layer))
            })
            .filter_map(|(h, layer)| {
                Some(HistoryLine {
                    created_by: h.created_by.clone()?,
                    layer,
                })
            })
            .collect(),
    }
}

fn check_size(what: &str, declared: Option<i64>, actual: u64) -> Result<(), Error> {
    match declared {
        Some(size) if size != actual as i64 => Err(Error::SizeMismatch {
            what: what.to_string(),
            expected: size.max(0) as u64,
            actual,
        }),
        _ => Ok(()),
    }
}

/// `sha256:<hex>` when a member name is `…/<hex>` or `<hex>.json`.
fn digest_in_name(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let hex = name.strip_suffix(".json").unwrap_or(name);
    let digest = format!("sha256:{hex}");
    sha256_hex_of(&digest).ok()?;
    Some(digest)
}

/// Every name a layout gives an image: the OCI ref name (often just the tag)
/// and containerd's full image name, as Docker 25+ writes both.
fn ref_names(desc: &Descriptor) -> impl Iterator<Item = &str> {
    [ANNOTATION_REF_NAME, ANNOTATION_IMAGE_NAME]
        .into_iter()
        .filter_map(|key| desc.annotations.get(key).map(String::as_str))
}

/// The name to show for an image: containerd's full name if present.
fn ref_name(desc: &Descriptor) -> Option<&str> {
    ref_names(desc).last()
}

/// Whether an image named `name` is the one the user asked for: `latest`
/// matches `app:latest`; `app:1.4` matches `docker.io/library/app:1.4`; `app`
/// matches `app:latest`.
fn name_matches(name: &str, wanted: &str) -> bool {
    let implicit_latest = (!wanted.contains(':')).then(|| format!("{wanted}:latest"));
    [Some(wanted), implicit_latest.as_deref()]
        .into_iter()
        .flatten()
        .any(|w| name == w || name.ends_with(&format!(":{w}")) || name.ends_with(&format!("/{w}")))
}

fn is_attestation(desc: &Descriptor) -> bool {
    desc.annotations
        .get(ANNOTATION_REFERENCE_TYPE)
        .is_some_and(|t| t == "attestation-manifest")
        || desc
            .platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

fn is_index_type(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| m.contains("image.index") || m.contains("manifest.list"))
}

fn describe_choices(descs: &[&Descriptor]) -> String {
    descs
        .iter()
        .map(|d| match ref_name(d) {
            Some(name) => format!("{name} ({})", d.digest),
            None => d.digest.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn names_match_as_docker_reads_them() {
        assert!(name_matches("latest", "latest"));
        assert!(name_matches("app:latest", "latest"));
        assert!(name_matches("docker.io/library/app:1.4", "app:1.4"));
        assert!(name_matches("registry.example.com/team/app:latest", "app"));
        assert!(!name_matches("app:1.4", "app:1.5"));
        assert!(!name_matches("app:v1", "1"));
        assert!(!name_matches("myapp:latest", "app"));
    }
}
