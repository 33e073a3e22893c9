//! Independent readers and checkers. They use flate2, zstd, tar and sha2
//! directly rather than the crate's own helpers, so a bug is not checked
//! against itself.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn json(bytes: &[u8]) -> Value {
    assert_sorted_keys(bytes);
    serde_json::from_slice(bytes).expect("valid JSON")
}

/// Uncompresses a layer blob as its media type says.
pub fn uncompress(media_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
    } else if media_type.ends_with("zstd") {
        zstd::stream::read::Decoder::new(bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = bytes.to_vec();
    }
    out
}

/// name -> (entry type, contents) of every member of a tar.
pub fn tar_members(tar: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let mut members = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let kind = entry.header().entry_type();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert!(
            members.insert(name.clone(), (kind, data)).is_none(),
            "duplicate member {name}"
        );
    }
    members
}

/// The regular files of a tar, by path.
pub fn tar_files(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    tar_members(tar)
        .into_iter()
        .filter(|(_, (kind, _))| kind.is_file())
        .map(|(name, (_, data))| (name, data))
        .collect()
}

/// Every file under `dir`, by `/`-separated relative path.
pub fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A fresh, empty directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a layout check found: each image manifest reached, with its platform
/// from the index (if any) and the tag annotation of its top-level entry.
#[derive(Debug)]
pub struct FoundImage {
    pub manifest: Value,
    pub platform: Option<Value>,
    pub tag: Option<String>,
    /// Uncompressed tars of the layers, base first.
    pub layer_tars: Vec<Vec<u8>>,
    pub config: Value,
}

/// Checks an OCI image layout given as its files: `oci-layout` says 1.0.0,
/// `index.json` is an image index, and every descriptor reached from it
/// (nested indexes, manifests, configs, layers) names a blob that is present
/// with that digest and size. Checks each config's diff_ids against its layers.
pub fn check_layout(files: &BTreeMap<String, Vec<u8>>) -> Vec<FoundImage> {
    let layout = json(&files["oci-layout"]);
    assert_eq!(layout, serde_json::json!({"imageLayoutVersion": "1.0.0"}));
    let index = json(&files["index.json"]);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );

    let mut found = Vec::new();
    for top in index["manifests"].as_array().unwrap() {
        let tag = top["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .map(str::to_owned);
        let mut stack = vec![top.clone()];
        while let Some(descriptor) = stack.pop() {
            let bytes = blob(files, &descriptor);
            let media_type = descriptor["mediaType"].as_str().unwrap();
            let doc = json(bytes);
            assert_eq!(
                doc["mediaType"], media_type,
                "document says its own media type"
            );
            assert_eq!(doc["schemaVersion"], 2);
            if media_type.ends_with("index.v1+json")
                || media_type.ends_with("manifest.list.v2+json")
            {
                stack.extend(doc["manifests"].as_array().unwrap().iter().rev().cloned());
                continue;
            }
            let config = json(blob(files, &doc["config"]));
            let layer_tars: Vec<Vec<u8>> = doc["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|layer| uncompress(layer["mediaType"].as_str().unwrap(), blob(files, layer)))
                .collect();
            let diff_ids: Vec<String> = layer_tars.iter().map(|tar| sha256(tar)).collect();
            assert_eq!(config["rootfs"]["type"], "layers");
            assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
            assert_eq!(
                config["history"].as_array().unwrap().len(),
                layer_tars.len()
            );
            let platform = descriptor.get("platform").cloned();
            if let Some(platform) = &platform {
                assert_eq!(platform["architecture"], config["architecture"]);
                assert_eq!(platform["os"], config["os"]);
            }
            found.push(FoundImage {
                manifest: doc,
                platform,
                tag: tag.clone(),
                layer_tars,
                config,
            });
        }
    }
    found
}

/// The blob a descriptor names, checked against its digest and size.
pub fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, descriptor: &Value) -> &'a [u8] {
    let digest = descriptor["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = files
        .get(&format!("blobs/sha256/{hex}"))
        .unwrap_or_else(|| panic!("blob {digest} missing"));
    assert_eq!(sha256(bytes), digest, "blob content matches its digest");
    assert_eq!(
        descriptor["size"].as_u64().unwrap(),
        bytes.len() as u64,
        "size of {digest}"
    );
    bytes
}

/// Fails unless every JSON object in `bytes` has its keys in sorted order, as
/// written (serde_json's `Value` would sort them and hide the problem).
pub fn assert_sorted_keys(bytes: &[u8]) {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    SortedJson::deserialize(&mut de)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)));
}

struct SortedJson;

impl<'de> Deserialize<'de> for SortedJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SortedVisitor)
    }
}

struct SortedVisitor;

impl<'de> Visitor<'de> for SortedVisitor {
    type Value = SortedJson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<SortedJson, E> {
        Ok(SortedJson)
    }

    fn visit_i64<E>(self, _: i64) -> Result<SortedJson, E> {
        Ok(SortedJson)
    }

    fn visit_u64<E>(self, _: u64) -> Result<SortedJson, E> {
        Ok(SortedJson)
    }

    fn visit_f64<E>(self, _: f64) -> Result<SortedJson, E> {
        Ok(SortedJson)
    }

    fn visit_str<E>(self, _: &str) -> Result<SortedJson, E> {
        Ok(SortedJson)
    }

    fn visit_unit<E>(self) -> Result<SortedJson, E> {
        Ok(SortedJson)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SortedJson, A::Error> {
        while seq.next_element::<SortedJson>()?.is_some() {}
        Ok(SortedJson)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SortedJson, A::Error> {
        let mut previous: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if let Some(previous) = previous.as_ref().filter(|p| **p >= key) {
                return Err(de::Error::custom(format!("key {key:?} after {previous:?}")));
            }
            map.next_value::<SortedJson>()?;
            previous = Some(key);
        }
        Ok(SortedJson)
    }
}
