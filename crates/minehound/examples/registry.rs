//! A registry embedding minehound: the pattern to copy.
//!
//! - **Upload time**: each layer is scanned as its body streams in, stored
//!   as an opaque blob (`application/octet-stream`): the format is told by
//!   its first bytes. The scan is checked against the upload's digest and
//!   fills the layer cache. Bad input is refused; an engine failure is not
//!   the uploader's fault.
//! - **Manifest time**: the image is scanned from the registry's own async
//!   storage, blobs fetched lazily; the layers scanned at upload come from
//!   the cache, unread.
//! - **Verdicts** are stored with the scanner's version and trusted only
//!   while it is the running scanner's; otherwise the image is scanned again.
//! - **Cancellation**: an upload whose scan takes too long is dropped, which
//!   cancels the scan.
//!
//! ```text
//! cargo run --release -p minehound --example registry
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use minehound::{
    AsyncBlob, AsyncImageSource, BoxFuture, ErrorKind, FileFinding, LayerCache, LayerRequest,
    Progress, Scanner, ScannerBuilder, Severity, SourceError, SourceRequest, digest_of, render,
    rule_reference,
};

/// The registry's blob store: content-addressed, async, in memory here (in
/// a real registry: object storage or files).
#[derive(Default)]
struct Blobs(RwLock<HashMap<String, Arc<Vec<u8>>>>);

impl Blobs {
    fn put(&self, bytes: Vec<u8>) -> String {
        let digest = digest_of(&bytes);
        self.0
            .write()
            .unwrap()
            .insert(digest.clone(), Arc::new(bytes));
        digest
    }

    fn get(&self, digest: &str) -> Result<Arc<Vec<u8>>, SourceError> {
        self.0
            .read()
            .unwrap()
            .get(digest)
            .cloned()
            .ok_or_else(|| SourceError::MissingBlob(digest.to_string()))
    }
}

/// A body or a blob, a chunk at a time, as storage or the network gives it.
struct Chunks {
    bytes: Arc<Vec<u8>>,
    at: usize,
}

impl AsyncBlob for Chunks {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        Box::pin(async move {
            tokio::task::yield_now().await; // as a network read would
            let end = (self.at + 256 * 1024).min(self.bytes.len());
            let chunk = self.bytes[self.at..end].to_vec();
            self.at = end;
            Ok((!chunk.is_empty()).then_some(chunk))
        })
    }
}

/// How minehound reads the registry's storage.
impl AsyncImageSource for Blobs {
    fn name(&self) -> String {
        "example registry".into()
    }

    fn manifest<'a>(
        &'a self,
        digest: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, SourceError>> {
        Box::pin(async move {
            let bytes = self.get(digest)?;
            if bytes.len() as u64 > limit {
                return Err(SourceError::TooLarge {
                    what: digest.to_string(),
                    limit,
                });
            }
            Ok(bytes.to_vec())
        })
    }

    fn blob<'a>(
        &'a self,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn AsyncBlob + 'a>, SourceError>> {
        Box::pin(async move {
            let bytes = self.get(digest)?;
            Ok(Box::new(Chunks { bytes, at: 0 }) as Box<dyn AsyncBlob>)
        })
    }

    /// This registry checks every upload against its digest and alone
    /// writes its storage, so a layer scanned at upload is not read again.
    fn verifies_digests(&self) -> bool {
        true
    }
}

/// Logs scan events, as a registry would record them.
struct Log;

impl Progress for Log {
    fn finding(&self, layer: &str, finding: &FileFinding) {
        for d in &finding.detections {
            println!("    {layer}: {} {} in {}", d.severity, d.rule, finding.path);
        }
    }
}

/// What the registry keeps per digest.
#[derive(Debug, Clone)]
struct Verdict {
    /// Pulls are refused.
    blocked: bool,
    /// The scanner that judged: [`Scanner::version`]'s key.
    version: String,
}

struct Registry {
    scanner: Scanner,
    blobs: Blobs,
    verdicts: Mutex<HashMap<String, Verdict>>,
}

impl Registry {
    fn judge(&self, digest: &str, highest: Option<Severity>) -> Verdict {
        let verdict = Verdict {
            blocked: highest >= Some(Severity::High),
            version: self.scanner.version().key(),
        };
        self.verdicts
            .lock()
            .unwrap()
            .insert(digest.to_string(), verdict.clone());
        verdict
    }

    /// The stored verdict, if the running scanner made it: one made by
    /// another engine, signature set or limits calls for a rescan.
    fn current_verdict(&self, digest: &str) -> Option<Verdict> {
        let verdict = self.verdicts.lock().unwrap().get(digest).cloned()?;
        (verdict.version == self.scanner.version().key()).then_some(verdict)
    }

    /// A blob upload: scan the body as it streams in, then store it.
    async fn upload(&self, body: Vec<u8>, digest: &str) -> Result<(), String> {
        let body = Arc::new(body);
        let request = LayerRequest::new("application/octet-stream")
            .digest(digest)
            .size(body.len() as u64);
        let stream = Chunks {
            bytes: Arc::clone(&body),
            at: 0,
        };
        match self.scanner.scan_layer_stream(stream, request).await {
            Ok(scan) => {
                for f in scan.findings() {
                    println!(
                        "    {} {} in {}\n      see {}",
                        f.severity,
                        f.rule,
                        f.path,
                        rule_reference(&f.rule).unwrap_or_default()
                    );
                }
                let verdict = self.judge(digest, scan.highest_severity());
                let blocked = if verdict.blocked { "blocked" } else { "clean" };
                println!("  upload {digest}: {} files, {blocked}", scan.files);
            }
            // Corrupt, truncated, not matching its digest: refuse it.
            Err(err) if err.kind() == ErrorKind::Input => {
                return Err(format!("upload refused: {}", err.chain()));
            }
            // Storage or engine trouble: keep the blob, mark it unscanned,
            // retry later (here: just say so).
            Err(err) => println!("  upload {digest}: not scanned ({})", err.chain()),
        }
        self.blobs.put(Arc::unwrap_or_clone(body));
        Ok(())
    }

    /// A manifest push: scan the image from storage, layers from the cache.
    async fn push_manifest(&self, manifest: Vec<u8>, reference: &str) -> Result<Verdict, String> {
        let digest = self.blobs.put(manifest);
        let request = SourceRequest::new(reference).progress(Arc::new(Log));
        let report = self
            .scanner
            .scan_async_source(&self.blobs, &digest, request)
            .await
            .map_err(|err| format!("[{}] {}", err.kind(), err.chain()))?;
        print!("{}", render::table(&report));
        println!(
            "  {} of {} layers from the upload scans, unread",
            report.stats.layers_cached, report.stats.layers
        );
        let verdict = self.judge(&digest, report.findings.iter().map(|f| f.severity).max());
        println!("  manifest {digest}: blocked {}", verdict.blocked);
        Ok(verdict)
    }
}

/// A gzip-compressed layer tar of `files`, and its diff id (what the
/// client writes in the config).
fn layer(files: &[(&str, &[u8])]) -> std::io::Result<(Vec<u8>, String)> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, path, *data)?;
    }
    let tar = tar.into_inner()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    Ok((gz.finish()?, digest_of(&tar)))
}

/// A huge plain-tar body generated as it is read: one file of 64 GiB.
struct Endless {
    header: Option<Vec<u8>>,
}

impl AsyncBlob for Endless {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(Some(
                self.header.take().unwrap_or_else(|| vec![0; 256 * 1024]),
            ))
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache_dir = std::env::temp_dir().join(format!("minehound-example-{}", std::process::id()));
    // Build once, share everywhere: rules, workers, task threads, cache.
    let scanner = ScannerBuilder::new()
        .cache(LayerCache::open(&cache_dir)?)
        .build()?;
    println!("scanner {}", scanner.version());
    let registry = Registry {
        scanner,
        blobs: Blobs::default(),
        verdicts: Mutex::new(HashMap::new()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        // 1. Layer uploads, as `docker push` sends them.
        let base = layer(&[("etc/motd", b"welcome\n")])?;
        let app = layer(&[(
            "opt/start.sh",
            b"#!/bin/sh\nxmrig -o stratum+tcp://pool.example.com:3333 --donate-level 1 -u WALLET\n",
        )])?;
        let mut diff_ids = Vec::new();
        let mut descriptors = Vec::new();
        for (body, diff_id) in [base, app] {
            let digest = digest_of(&body);
            println!("upload {digest}");
            diff_ids.push(diff_id);
            descriptors.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": body.len(),
            }));
            registry.upload(body, &digest).await?;
        }
        // A corrupt upload is refused.
        let corrupt = vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7];
        if let Err(refused) = registry.upload(corrupt.clone(), &digest_of(&corrupt)).await {
            println!("  {refused}");
        }

        // 2. The manifest push.
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "ADD base /"}, {"created_by": "COPY start.sh /opt/"}],
        }))?;
        let config_descriptor = serde_json::json!({
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(&config),
            "size": config.len(),
        });
        registry.blobs.put(config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_descriptor,
            "layers": descriptors,
        }))?;
        let manifest_digest = digest_of(&manifest);
        println!("manifest {manifest_digest} pushed as example/app:1");
        let verdict = registry.push_manifest(manifest, "example/app:1").await?;

        // 3. A pull: the stored verdict holds while the scanner is the same.
        match registry.current_verdict(&manifest_digest) {
            Some(v) if v.blocked => println!("pull of example/app:1 refused"),
            Some(_) => println!("pull of example/app:1 allowed"),
            None => println!("verdict out of date: scan again"),
        }
        assert!(verdict.blocked);

        // 4. An upload whose scan takes too long: dropping its future (here
        //    by a timeout) cancels the scan on the scanner's threads.
        let mut header = tar::Header::new_gnu();
        header.set_path("var/huge.img")?;
        header.set_size(64 << 30);
        header.set_cksum();
        let endless = Endless {
            header: Some(header.as_bytes().to_vec()),
        };
        let scan = registry
            .scanner
            .scan_layer_stream(endless, LayerRequest::new("application/octet-stream"));
        if tokio::time::timeout(Duration::from_millis(300), scan)
            .await
            .is_err()
        {
            println!("a 64 GiB upload's scan passed its budget and was cancelled");
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    std::fs::remove_dir_all(&cache_dir)?;
    Ok(())
}
