//! A registry embedding minehound: it scans each layer as it is uploaded,
//! before any manifest names it, then scans the image from its own blob
//! store when the manifest is pushed, and blocks pulls of what fails.
//!
//! ```text
//! cargo run --release -p minehound --example registry
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, RwLock};

use minehound::{
    FileFinding, ImageSource, Progress, ScannerBuilder, Severity, SourceError, SourceRequest,
    digest_of, render,
};

/// The registry's blob store: content-addressed bytes in memory.
#[derive(Default)]
struct Blobs(RwLock<HashMap<String, Vec<u8>>>);

impl Blobs {
    fn put(&self, bytes: Vec<u8>) -> String {
        let digest = digest_of(&bytes);
        self.0.write().unwrap().insert(digest.clone(), bytes);
        digest
    }

    fn get(&self, digest: &str) -> Result<Vec<u8>, SourceError> {
        self.0
            .read()
            .unwrap()
            .get(digest)
            .cloned()
            .ok_or_else(|| SourceError::MissingBlob(digest.to_string()))
    }
}

/// How minehound reads the registry's store.
impl ImageSource for Blobs {
    fn name(&self) -> String {
        "example registry".into()
    }

    fn manifest(&self, digest: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let bytes = self.get(digest)?;
        if bytes.len() as u64 > limit {
            return Err(SourceError::TooLarge {
                what: digest.to_string(),
                limit,
            });
        }
        Ok(bytes)
    }

    fn blob(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        Ok(Box::new(std::io::Cursor::new(self.get(digest)?)))
    }
}

/// Logs scan events, as a registry would record them.
struct Log;

impl Progress for Log {
    fn layer_started(&self, layer: &str, total: Option<u64>) {
        println!("  layer {layer}: started ({} bytes)", total.unwrap_or(0));
    }
    fn finding(&self, layer: &str, finding: &FileFinding) {
        for d in &finding.detections {
            println!(
                "  layer {layer}: {} {} in {}",
                d.severity, d.rule, finding.path
            );
        }
    }
    fn layer_finished(&self, layer: &str) {
        println!("  layer {layer}: done");
    }
}

/// A gzip-compressed layer tar of `files`.
fn layer(files: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, path, *data)?;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar.into_inner()?)?;
    gz.finish()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Build once, share everywhere: compiled rules and the worker pool.
    let scanner = ScannerBuilder::new().build()?;
    let blobs = Blobs::default();

    // 1. A layer upload: scan the stream before accepting it.
    let media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    let upload = layer(&[
        ("etc/motd", b"welcome\n"),
        (
            "opt/start.sh",
            b"#!/bin/sh\nxmrig -o stratum+tcp://pool.example.com:3333 --donate-level 1 -u WALLET\n",
        ),
    ])?;
    let scan = scanner.scan_layer(&upload[..], media_type)?;
    println!(
        "upload {}: {} files, {} with findings, highest severity {}",
        scan.digest,
        scan.files,
        scan.findings.len(),
        scan.highest_severity()
            .map_or("none".to_string(), |s| s.to_string())
    );
    let layer_digest = blobs.put(upload);

    // 2. The manifest push: scan the image from the registry's own store.
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/opt/start.sh"]},
        "rootfs": {"type": "layers", "diff_ids": [scan.diff_id]},
        "history": [{"created_by": "COPY start.sh /opt/"}],
    });
    let config = serde_json::to_vec(&config)?;
    let config_size = config.len();
    let config_digest = blobs.put(config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{"mediaType": media_type, "digest": layer_digest, "size": scan.compressed_bytes}],
    });
    let manifest_digest = blobs.put(serde_json::to_vec(&manifest)?);
    println!("manifest {manifest_digest} pushed as example/app:1; scanning");
    let request = SourceRequest::new("example/app:1").progress(Arc::new(Log));
    let report = scanner.scan_source(&blobs, &manifest_digest, &request)?;
    print!("{}", render::table(&report));
    if report.fails(Severity::High) {
        println!("verdict: block pulls of example/app:1");
    }
    Ok(())
}
