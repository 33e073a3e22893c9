//! The JSON documents of an image: descriptors, manifests, indexes, configs
//! and docker-archive metadata.
//!
//! serde_json writes struct fields in declaration order, so every struct here
//! declares its fields in sorted key order: the output is canonical without
//! depending on serde_json's `preserve_order` feature being off.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Blob, Platform};

/// Canonical compact JSON of `value`.
pub(crate) fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("these documents always serialize")
}

#[derive(Clone, Serialize)]
pub(crate) struct Descriptor {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    pub size: u64,
}

impl Descriptor {
    pub fn of(blob: &Blob) -> Self {
        Self {
            annotations: BTreeMap::new(),
            digest: blob.digest.clone(),
            media_type: blob.media_type.clone(),
            platform: None,
            size: blob.size(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
}

#[derive(Serialize)]
pub(crate) struct Index {
    pub manifests: Vec<Descriptor>,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
}

#[derive(Serialize)]
pub(crate) struct Config<'a> {
    pub architecture: &'a str,
    pub config: RunConfig<'a>,
    pub history: Vec<History<'a>>,
    pub os: &'a str,
    pub rootfs: RootFs<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct RunConfig<'a> {
    #[serde(rename = "Cmd", skip_serializing_if = "Option::is_none")]
    pub cmd: Option<&'a [String]>,
    #[serde(rename = "Entrypoint", skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<&'a [String]>,
    #[serde(rename = "Env", skip_serializing_if = "<[String]>::is_empty")]
    pub env: &'a [String],
    #[serde(rename = "WorkingDir", skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct History<'a> {
    pub created_by: &'a str,
}

#[derive(Serialize)]
pub(crate) struct RootFs<'a> {
    pub diff_ids: &'a [String],
    #[serde(rename = "type")]
    pub kind: &'a str,
}

/// `{"imageLayoutVersion": "1.0.0"}`, the `oci-layout` file.
#[derive(Serialize)]
pub(crate) struct OciLayout {
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: &'static str,
}

/// One element of a docker-archive `manifest.json`.
#[derive(Serialize)]
pub(crate) struct DockerManifestItem {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
    #[serde(rename = "RepoTags")]
    pub repo_tags: Vec<String>,
}

/// A classic docker-archive `<id>/json`: the legacy v1 layer config.
#[derive(Serialize)]
pub(crate) struct LegacyLayerJson<'a> {
    pub architecture: &'a str,
    pub created: &'static str,
    pub id: &'a str,
    pub os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<&'a str>,
}

/// A docker-archive `repositories` file: name -> tag -> top layer id.
pub(crate) type Repositories = BTreeMap<String, BTreeMap<String, String>>;
