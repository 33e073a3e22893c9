//! Pushing scanned images to a registry through `oci-client`: the second half
//! of `minehound push`. Blobs stream from the source store (never whole in
//! memory); blobs the registry already has are not sent again; manifests go up
//! byte for byte, so their digests (and any signatures over them) survive.

use std::io::Read;

use bytes::Bytes;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::json;

use super::{Endpoint, RegistryOptions, client_config, is_transport_error, oci_client};
use crate::{BlobLocation, BlobStore, Error, Image, digest};

/// Bytes per upload chunk (one PATCH request each).
const CHUNK: usize = 4 << 20;
/// Largest manifest read from the source.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The destination as given.
    pub reference: String,
    /// Digest of the manifest or index the destination tag now names.
    pub digest: String,
    /// Manifests pushed (one per platform).
    pub manifests: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_present: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
}

/// Pushes `images` (read from `store`) to `destination`. One image goes up as
/// its own manifest under the tag; several (the platforms of one image) go up
/// by digest, with a new OCI index listing them under the tag.
pub fn push_images(
    store: &dyn BlobStore,
    images: &[Image],
    destination: &str,
    options: &RegistryOptions,
) -> Result<Pushed, Error> {
    if images.is_empty() {
        return Err(Error::NoImage(store.name()));
    }
    let Endpoint {
        reference,
        auth,
        runtime,
        insecure,
        may_use_http,
    } = Endpoint::new(destination, options, "minehound-push")?;
    let mut pusher = Pusher {
        runtime,
        client: oci_client(client_config(options, insecure, false)?)?,
        reference,
        auth,
        pushed: Pushed {
            reference: destination.to_string(),
            digest: String::new(),
            manifests: 0,
            blobs_uploaded: 0,
            blobs_present: 0,
            bytes_uploaded: 0,
        },
    };
    match pusher.authenticate() {
        Err(Error::Registry { source, .. })
            if may_use_http && is_transport_error(source.as_ref()) =>
        {
            pusher.client = oci_client(client_config(options, insecure, true)?)?;
            pusher.authenticate()?;
        }
        other => other?,
    }

    if let [image] = images {
        let (bytes, media_type) = pusher.push_image(store, image)?;
        pusher.put_manifest(&pusher.reference.clone(), bytes, &media_type)?;
    } else {
        let mut entries = Vec::new();
        for image in images {
            let (bytes, media_type) = pusher.push_image(store, image)?;
            let digest = digest::digest_of(&bytes);
            let by_digest = Reference::with_digest(
                pusher.reference.registry().to_string(),
                pusher.reference.repository().to_string(),
                digest.clone(),
            );
            let size = bytes.len();
            pusher.put_manifest(&by_digest, bytes, &media_type)?;
            let mut entry = json!({ "mediaType": media_type, "digest": digest, "size": size });
            if let Some(p) = &image.platform {
                entry["platform"] = json!({ "os": p.os, "architecture": p.architecture });
                if let Some(v) = &p.variant {
                    entry["platform"]["variant"] = json!(v);
                }
            }
            entries.push(entry);
        }
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries });
        let bytes = serde_json::to_vec_pretty(&index).expect("an index is plain JSON");
        pusher.put_manifest(&pusher.reference.clone(), bytes, OCI_INDEX)?;
    }
    Ok(pusher.pushed)
}

struct Pusher {
    runtime: tokio::runtime::Runtime,
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
    pushed: Pushed,
}

impl Pusher {
    fn error(&self, step: impl Into<String>, source: OciDistributionError) -> Error {
        Error::Registry {
            registry: self.reference.resolve_registry().to_string(),
            repository: self.reference.repository().to_string(),
            step: step.into(),
            source: Box::new(source),
        }
    }

    fn authenticate(&self) -> Result<(), Error> {
        self.runtime
            .block_on(
                self.client
                    .auth(&self.reference, &self.auth, RegistryOperation::Push),
            )
            .map(|_| ())
            .map_err(|e| self.error("authenticating for push", e))
    }

    /// Uploads an image's config and layers; returns its manifest and media type.
    fn push_image(
        &mut self,
        store: &dyn BlobStore,
        image: &Image,
    ) -> Result<(Vec<u8>, String), Error> {
        let config_digest = image
            .config_digest
            .clone()
            .unwrap_or_else(|| digest::digest_of(&image.config));
        if !self.exists(&config_digest)? {
            let data = Bytes::from(image.config.clone());
            self.runtime
                .block_on(self.client.push_blob(&self.reference, data, &config_digest))
                .map_err(|e| self.error(format!("uploading config {config_digest}"), e))?;
            self.pushed.blobs_uploaded += 1;
            self.pushed.bytes_uploaded += image.config.len() as u64;
        }

        let mut layers = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            let (digest, size, media_type) = match (&layer.digest, layer.size) {
                (Some(digest), Some(size)) if self.exists(digest)? => {
                    (digest.clone(), size, layer.media_type.clone())
                }
                (Some(digest), _) => {
                    let (_, size) = self.upload(store, &layer.location, Some(digest))?;
                    (digest.clone(), size, layer.media_type.clone())
                }
                // A `docker save` layer: no blob digest and no size. A plain
                // tar's digest is its diff id; a compressed one's is computed
                // on the way up. Either way it is uploaded (the registry
                // keeps one copy) so its size is known.
                (None, _) => {
                    let media_type = sniff_layer_type(store, &layer.location)?;
                    let expected = match media_type {
                        OCI_LAYER_TAR => layer.diff_id.as_deref(),
                        _ => None,
                    };
                    let (digest, size) = self.upload(store, &layer.location, expected)?;
                    (digest, size, Some(media_type.to_string()))
                }
            };
            layers.push(json!({
                "mediaType": media_type.as_deref().unwrap_or(OCI_LAYER_TAR),
                "digest": digest,
                "size": size,
            }));
        }

        match &image.manifest_digest {
            Some(d) => {
                let bytes = store.read_manifest(d, MAX_MANIFEST_BYTES)?;
                let actual = digest::digest_of(&bytes);
                if &actual != d {
                    return Err(Error::DigestMismatch {
                        what: format!("manifest in {}", store.name()),
                        expected: d.clone(),
                        actual,
                    });
                }
                let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["mediaType"].as_str().map(str::to_string))
                    .unwrap_or_else(|| OCI_MANIFEST.to_string());
                Ok((bytes, media_type))
            }
            None => {
                let manifest = json!({
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": image.config.len() },
                    "layers": layers,
                });
                let bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest is plain JSON");
                Ok((bytes, OCI_MANIFEST.to_string()))
            }
        }
    }

    fn exists(&mut self, digest: &str) -> Result<bool, Error> {
        let present = self
            .runtime
            .block_on(self.client.blob_exists(&self.reference, digest))
            .map_err(|e| self.error(format!("checking blob {digest}"), e))?;
        if present {
            self.pushed.blobs_present += 1;
        }
        Ok(present)
    }

    /// Streams one blob from the store to the registry, which checks its
    /// digest; returns its digest and size. Without an expected digest, the
    /// digest is computed on the way and the registry told it at the end.
    fn upload(
        &mut self,
        store: &dyn BlobStore,
        location: &BlobLocation,
        expected: Option<&str>,
    ) -> Result<(String, u64), Error> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, OciDistributionError>>(2);
        let what = format!("uploading blob {}", expected.unwrap_or("(layer)"));
        let (read, sent) = std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> Result<u64, Error> {
                let mut input = store.open(location)?;
                let mut total = 0u64;
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let n = read_full(&mut input, &mut buf).map_err(|source| Error::Io {
                        path: format!("{}/{location:?}", store.name()).into(),
                        source,
                    })?;
                    if n == 0 {
                        return Ok(total);
                    }
                    total += n as u64;
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return Ok(total);
                    }
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            let sent = match expected {
                Some(d) => self
                    .runtime
                    .block_on(
                        self.client
                            .push_blob_stream(&self.reference, stream, d, None),
                    )
                    .map(|_| d.to_string()),
                None => self
                    .runtime
                    .block_on(
                        self.client
                            .push_blob_stream_chunked(&self.reference, stream),
                    )
                    .map(|r| r.blob_digest),
            };
            (reader.join(), sent)
        });
        // A read error explains a failed upload better than the registry's
        // digest complaint that follows it.
        let size = match read {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Io {
                    path: store.name().into(),
                    source: std::io::Error::other("blob reader panicked"),
                });
            }
        };
        let digest = sent.map_err(|e| self.error(what, e))?;
        self.pushed.blobs_uploaded += 1;
        self.pushed.bytes_uploaded += size;
        Ok((digest, size))
    }

    fn put_manifest(
        &mut self,
        to: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<(), Error> {
        let content_type = media_type.parse().map_err(|_| Error::InvalidTarget {
            target: to.whole(),
            reason: format!("manifest media type {media_type:?} is not a header value"),
        })?;
        let digest = digest::digest_of(&bytes);
        self.runtime
            .block_on(self.client.push_manifest_raw(to, bytes, content_type))
            .map_err(|e| self.error(format!("pushing manifest {}", to.whole()), e))?;
        self.pushed.manifests += 1;
        self.pushed.digest = digest;
        Ok(())
    }
}

/// The media type of a layer blob that has none, by its first bytes.
fn sniff_layer_type(store: &dyn BlobStore, location: &BlobLocation) -> Result<&'static str, Error> {
    let mut head = [0u8; 4];
    let n = read_full(&mut store.open(location)?, &mut head).map_err(|source| Error::Io {
        path: format!("{}/{location:?}", store.name()).into(),
        source,
    })?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => OCI_LAYER_TAR,
    })
}

/// Fills `buf` unless the input ends first; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
