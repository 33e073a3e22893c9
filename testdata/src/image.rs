//! Image specs and building them into blobs: layers, config and manifest.

use serde::Serialize;

use crate::blob::{Blob, sha256_digest};
use crate::compress::{decompress_layer, gzip, zstd};
use crate::document::{Config, Descriptor, History, Manifest, RootFs, RunConfig, to_json};
use crate::layer::{Compression, Layer, tar_bytes};
use crate::media_type as mt;

/// The platform an image is for. Serializes as an OCI `platform` object.
// Fields in key order: see `document`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// CPU architecture, GOARCH style: `amd64`, `arm64`.
    pub architecture: String,
    /// Operating system, GOOS style: `linux`.
    pub os: String,
    /// CPU variant, e.g. `v8` for arm64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux` on `architecture`, with an optional variant.
    pub fn linux(architecture: &str, variant: Option<&str>) -> Self {
        Self {
            architecture: architecture.to_owned(),
            os: "linux".to_owned(),
            variant: variant.map(str::to_owned),
        }
    }
}

impl Default for Platform {
    /// linux/amd64.
    fn default() -> Self {
        Self::linux("amd64", None)
    }
}

/// Which family of media types the built image uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MediaTypes {
    /// `application/vnd.oci.image.*`.
    #[default]
    Oci,
    /// `application/vnd.docker.*`, as `docker push` wrote them before OCI.
    Docker,
}

impl MediaTypes {
    fn manifest(self) -> &'static str {
        match self {
            Self::Oci => mt::OCI_MANIFEST,
            Self::Docker => mt::DOCKER_MANIFEST,
        }
    }

    fn config(self) -> &'static str {
        match self {
            Self::Oci => mt::OCI_CONFIG,
            Self::Docker => mt::DOCKER_CONFIG,
        }
    }

    pub(crate) fn layer(self, compression: Compression) -> &'static str {
        match (self, compression) {
            (Self::Oci, Compression::Gzip) => mt::OCI_LAYER_GZIP,
            (Self::Oci, Compression::Zstd) => mt::OCI_LAYER_ZSTD,
            (Self::Oci, Compression::None) => mt::OCI_LAYER_TAR,
            (Self::Docker, Compression::Gzip) => mt::DOCKER_LAYER_GZIP,
            (Self::Docker, Compression::Zstd) => mt::DOCKER_LAYER_ZSTD,
            (Self::Docker, Compression::None) => mt::DOCKER_LAYER_TAR,
        }
    }
}

/// What an image holds: its layers, platform and run config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSpec {
    /// Layers, base first.
    pub layers: Vec<Layer>,
    /// The platform, written to the config (and to multi-platform indexes).
    pub platform: Platform,
    /// Config `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// Config `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// Config `Env`, `NAME=value` strings.
    pub env: Vec<String>,
    /// Config `WorkingDir`.
    pub working_dir: Option<String>,
}

/// An image built from an [`ImageSpec`]: every blob with its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltImage {
    /// The image manifest.
    pub manifest: Blob,
    /// The config blob.
    pub config: Blob,
    /// The layer blobs, compressed as the spec says, base first.
    pub layers: Vec<Blob>,
    /// `sha256:` of each layer's uncompressed tar, as the config lists them.
    pub diff_ids: Vec<String>,
    /// The platform the config names.
    pub platform: Platform,
}

impl BuiltImage {
    /// The config and layer blobs: what the manifest points at.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// The uncompressed tar of layer `index`.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn layer_tar(&self, index: usize) -> std::io::Result<Vec<u8>> {
        let layer = &self.layers[index];
        decompress_layer(&layer.media_type, &layer.bytes)
    }
}

impl ImageSpec {
    /// Builds the image with OCI media types.
    pub fn build(&self) -> BuiltImage {
        self.build_with(MediaTypes::Oci)
    }

    /// Builds the image with the given family of media types. The config bytes
    /// are the same either way; only descriptors change.
    pub fn build_with(&self, media_types: MediaTypes) -> BuiltImage {
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut diff_ids = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let tar = tar_bytes(&layer.entries);
            diff_ids.push(sha256_digest(&tar));
            let bytes = match layer.compression {
                Compression::Gzip => gzip(&tar),
                Compression::Zstd => zstd(&tar),
                Compression::None => tar,
            };
            layers.push(Blob::new(media_types.layer(layer.compression), bytes));
        }
        self.assemble(media_types, layers, diff_ids)
    }

    /// Builds the image (OCI media types) around layer blobs made elsewhere,
    /// such as streamed bombs too big to list as entries; `diff_ids[i]` is the
    /// digest of layer `i` uncompressed. History lines come from `self.layers`
    /// where there is one, else are empty.
    pub fn build_around(&self, layers: Vec<Blob>, diff_ids: Vec<String>) -> BuiltImage {
        self.assemble(MediaTypes::Oci, layers, diff_ids)
    }

    fn assemble(
        &self,
        media_types: MediaTypes,
        layers: Vec<Blob>,
        diff_ids: Vec<String>,
    ) -> BuiltImage {
        let config = Config {
            architecture: &self.platform.architecture,
            config: RunConfig {
                cmd: self.cmd.as_deref(),
                entrypoint: self.entrypoint.as_deref(),
                env: &self.env,
                working_dir: self.working_dir.as_deref(),
            },
            history: (0..layers.len())
                .map(|i| History {
                    created_by: self.layers.get(i).map_or("", |l| &l.created_by),
                })
                .collect(),
            os: &self.platform.os,
            rootfs: RootFs {
                diff_ids: &diff_ids,
                kind: "layers",
            },
            variant: self.platform.variant.as_deref(),
        };
        let config = Blob::new(media_types.config(), to_json(&config));

        let manifest = Manifest {
            config: Descriptor::of(&config),
            layers: layers.iter().map(Descriptor::of).collect(),
            media_type: media_types.manifest().to_owned(),
            schema_version: 2,
        };
        let manifest = Blob::new(media_types.manifest(), to_json(&manifest));

        BuiltImage {
            manifest,
            config,
            layers,
            diff_ids,
            platform: self.platform.clone(),
        }
    }
}
