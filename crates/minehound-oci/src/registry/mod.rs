//! Images straight from a registry, through `oci-client`: no daemon, no full
//! download first. Manifests are fetched and verified like those of a
//! layout; layers stream into the scanner as they download, or, a large one
//! that several threads inflate, arrive in a temporary file by several range
//! requests at once and are read while they arrive.

mod auth;
mod blob;
mod push;
mod resolver;
mod spool;

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

pub use auth::Credentials;
pub use push::{Pushed, push_images};
pub use resolver::DigestResolver;
pub use spool::{SpooledBlob, SpooledReader};

use crate::{BlobLocation, BlobStore, Error, Image, PlatformChoice, digest};

/// Manifest media types minehound asks registries for.
const ACCEPTED_MANIFESTS: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How to reach registries. Its `Debug` hides the secrets.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Credentials given on the command line; they win over config files.
    pub credentials: Option<Credentials>,
    /// A bearer token sent as is, as registries such as Harbor hand to their
    /// scanners; wins over `credentials` and config files.
    pub bearer_token: Option<String>,
    /// Whether to read the Docker config, credential helpers and podman's file.
    pub use_config_files: bool,
    /// Hosts (`host[:port]`) that may use plain HTTP or unverified TLS.
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM) to trust.
    pub ca_files: Vec<PathBuf>,
    /// Attempts after the first for a failed request.
    pub retries: u32,
    /// Longest wait for a connection, and for data on an open one; a blob
    /// download that makes less than 16 KiB of progress in this time is stalled.
    pub timeout: Duration,
    /// Range requests fetching one large layer at once, into a temporary
    /// file several threads inflate from (where the scanner inflates layers
    /// from several offsets); 1 streams every layer.
    pub connections: usize,
    /// The smallest layer (compressed bytes) fetched that way.
    pub spool_from: u64,
}

impl RegistryOptions {
    /// Layers this large and more always stream: a spool file takes their
    /// whole size in TMPDIR.
    pub const SPOOL_UP_TO: u64 = 16 << 30;
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("credentials", &self.credentials)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<hidden>"),
            )
            .field("use_config_files", &self.use_config_files)
            .field("insecure_registries", &self.insecure_registries)
            .field("ca_files", &self.ca_files)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .field("connections", &self.connections)
            .field("spool_from", &self.spool_from)
            .finish()
    }
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            credentials: None,
            bearer_token: None,
            use_config_files: true,
            insecure_registries: Vec::new(),
            ca_files: Vec::new(),
            retries: 4,
            timeout: Duration::from_secs(30),
            connections: 4,
            spool_from: 64 << 20,
        }
    }
}

/// Whether `s` reads as an image reference rather than a path.
pub fn looks_like_reference(s: &str) -> bool {
    !s.starts_with(['/', '.', '~']) && s.parse::<Reference>().is_ok()
}

/// A registry repository as a [`BlobStore`].
pub struct RegistryStore {
    runtime: tokio::runtime::Runtime,
    client: Arc<Client>,
    /// Set once the protocol is known (after the first manifest).
    fetcher: Option<Arc<blob::BlobFetcher>>,
    reference: Reference,
    auth: RegistryAuth,
    retries: u32,
    /// The connection and read timeout; manifests get four of it in all.
    timeout: Duration,
    /// Manifests already fetched, by digest.
    manifests: Mutex<HashMap<String, Vec<u8>>>,
    connections: usize,
    spool_from: u64,
}

impl std::fmt::Debug for RegistryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryStore")
            .field("reference", &self.reference.whole())
            .finish()
    }
}

/// What pulling from and pushing to a registry both start with: the parsed
/// reference, its credentials, a runtime, and whether plain HTTP may be tried.
struct Endpoint {
    reference: Reference,
    auth: RegistryAuth,
    runtime: tokio::runtime::Runtime,
    insecure: bool,
    may_use_http: bool,
}

impl Endpoint {
    fn new(reference: &str, options: &RegistryOptions, threads: &str) -> Result<Endpoint, Error> {
        install_crypto_provider();
        let reference: Reference = reference.parse().map_err(|e| Error::InvalidTarget {
            target: reference.to_string(),
            reason: format!("not an image reference: {e}"),
        })?;
        let registry = reference.resolve_registry().to_string();
        let auth = match &options.bearer_token {
            Some(token) => RegistryAuth::Bearer(token.clone()),
            None => auth::resolve_auth(
                &registry,
                options.credentials.as_ref(),
                options.use_config_files,
            )?,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name(threads)
            .build()
            .map_err(|source| Error::Io {
                path: "tokio runtime".into(),
                source,
            })?;
        // Docker's rule: HTTPS first; plain HTTP only for loopback hosts and
        // hosts the user named insecure.
        let insecure = options.insecure_registries.iter().any(|h| h == &registry);
        let may_use_http = insecure || is_loopback(&registry);
        Ok(Endpoint {
            reference,
            auth,
            runtime,
            insecure,
            may_use_http,
        })
    }
}

/// An image reference normalised as `docker pull` normalises it: `ubuntu` is
/// `docker.io/library/ubuntu:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// The registry host (`docker.io`, `registry.example.com:5000`).
    pub registry: String,
    /// The repository (`library/ubuntu`).
    pub repository: String,
    /// The tag, when the reference names one (`latest` when it names neither
    /// a tag nor a digest).
    pub tag: Option<String>,
    /// The manifest digest, when the reference pins one.
    pub digest: Option<String>,
}

impl ImageName {
    /// Parses and normalises `reference`.
    pub fn parse(reference: &str) -> Result<ImageName, Error> {
        let parsed: Reference = reference.parse().map_err(|e| Error::InvalidTarget {
            target: reference.to_string(),
            reason: format!("not an image reference: {e}"),
        })?;
        Ok(ImageName {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image pinned to `digest`: `registry/repository@digest`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A store for `reference` whose root manifest (or index) has been fetched:
/// HTTPS first, plain HTTP only where Docker allows it. Returns the store,
/// the root's bytes, and the HTTP client options blob downloads need.
fn connect(
    reference: &str,
    options: &RegistryOptions,
) -> Result<(RegistryStore, Vec<u8>, bool, bool), Error> {
    let Endpoint {
        reference,
        auth,
        runtime,
        insecure,
        may_use_http,
    } = Endpoint::new(reference, options, "minehound-net")?;
    let https = Arc::new(oci_client(client_config(options, insecure, false)?)?);
    let mut store = RegistryStore {
        runtime,
        client: https,
        fetcher: None,
        reference: reference.clone(),
        auth,
        retries: options.retries,
        timeout: options.timeout,
        manifests: Mutex::new(HashMap::new()),
        connections: options.connections,
        spool_from: options.spool_from,
    };
    // Probe HTTPS once without retries where plain HTTP is allowed, so a
    // plain-HTTP registry costs no backoff.
    let first_try = if may_use_http {
        store.fetch_manifest_with_retries(&reference, 0)
    } else {
        store.fetch_manifest(&reference)
    };
    let mut plain_http = false;
    let root = match first_try {
        Err(Error::Registry { source, .. })
            if may_use_http && is_transport_error(source.as_ref()) =>
        {
            store.client = Arc::new(oci_client(client_config(options, insecure, true)?)?);
            plain_http = true;
            store.fetch_manifest(&reference)?
        }
        other => other?,
    };
    let root_digest = digest::digest_of(&root);
    if let Some(expected) = reference.digest()
        && expected != root_digest
    {
        return Err(Error::DigestMismatch {
            what: reference.whole(),
            expected: expected.to_string(),
            actual: root_digest,
        });
    }
    Ok((store, root, plain_http, insecure))
}

/// The images `reference` names, for `platform`, and a store to stream their
/// layers from.
pub fn open_registry(
    reference: &str,
    options: &RegistryOptions,
    platform: &PlatformChoice,
) -> Result<(RegistryStore, Vec<Image>), Error> {
    let (mut store, root, plain_http, insecure) = connect(reference, options)?;
    let reference = store.reference.clone();
    let scheme = if plain_http { "http" } else { "https" };
    store.fetcher = Some(Arc::new(blob::BlobFetcher::new(
        http_client(options, insecure)?,
        Arc::clone(&store.client),
        reference.clone(),
        store.auth.clone(),
        format!("{scheme}://{}", reference.resolve_registry()),
        options.retries,
        options.timeout,
    )));
    let root_digest = digest::digest_of(&root);
    store
        .manifests
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(root_digest.clone(), root);
    let name = reference.whole();
    let mut images = crate::resolve::images_from_root_manifest(&store, &root_digest, platform)?;
    for image in &mut images {
        image.reference = Some(name.clone());
    }
    Ok((store, images))
}

impl RegistryStore {
    fn error(&self, step: &str, source: OciDistributionError) -> Error {
        Error::Registry {
            registry: self.reference.resolve_registry().to_string(),
            repository: self.reference.repository().to_string(),
            step: step.to_string(),
            source: Box::new(source),
        }
    }

    /// Fetches a manifest or index, retrying transient faults.
    fn fetch_manifest(&self, reference: &Reference) -> Result<Vec<u8>, Error> {
        self.fetch_manifest_with_retries(reference, self.retries)
    }

    fn fetch_manifest_with_retries(
        &self,
        reference: &Reference,
        retries: u32,
    ) -> Result<Vec<u8>, Error> {
        let step = format!(
            "fetching manifest {}",
            reference.digest().or(reference.tag()).unwrap_or("latest")
        );
        // Reads alone never time out on a registry that trickles a byte at a
        // time; a manifest is kilobytes, so it gets a deadline as a whole.
        let deadline = self.timeout.saturating_mul(4);
        let mut attempt = 0;
        loop {
            // The timer needs the runtime: start it inside.
            let result = self.runtime.block_on(async {
                let pull = self
                    .client
                    .pull_manifest_raw(reference, &self.auth, ACCEPTED_MANIFESTS);
                tokio::time::timeout(deadline, pull).await
            });
            match result {
                Ok(Ok((bytes, _))) => return Ok(bytes.to_vec()),
                Ok(Err(err)) if blob::retryable(&err) && attempt < retries => {
                    attempt += 1;
                    std::thread::sleep(blob::backoff(attempt));
                }
                Ok(Err(err)) => return Err(self.error(&step, err)),
                Err(_) if attempt < retries => {
                    attempt += 1;
                    std::thread::sleep(blob::backoff(attempt));
                }
                Err(_) => {
                    return Err(Error::Registry {
                        registry: self.reference.resolve_registry().to_string(),
                        repository: self.reference.repository().to_string(),
                        step,
                        source: Box::new(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no complete manifest within {} s", deadline.as_secs_f32()),
                        )),
                    });
                }
            }
        }
    }
}

impl BlobStore for RegistryStore {
    fn content_addressed(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        format!(
            "{}/{}",
            self.reference.resolve_registry(),
            self.reference.repository()
        )
    }

    fn open(&self, location: &BlobLocation) -> Result<Box<dyn Read + Send + '_>, Error> {
        let BlobLocation::Digest(digest) = location else {
            return Err(Error::MissingBlob(format!("{location:?}")));
        };
        crate::sha256_hex_of(digest)?;
        let fetcher = self
            .fetcher
            .as_ref()
            .ok_or_else(|| Error::MissingBlob(digest.clone()))?;
        Ok(Box::new(blob::open(
            &self.runtime,
            Arc::clone(fetcher),
            digest.clone(),
        )))
    }

    fn read_member(&self, _path: &str, _limit: u64) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }

    fn spool(&self, location: &BlobLocation, size: u64) -> Option<SpooledBlob> {
        let BlobLocation::Digest(digest) = location else {
            return None;
        };
        if self.connections < 2
            || size < self.spool_from.max(1)
            || size >= RegistryOptions::SPOOL_UP_TO
        {
            return None;
        }
        crate::sha256_hex_of(digest).ok()?;
        let fetcher = self.fetcher.as_ref()?;
        spool::start(&self.runtime, fetcher, digest, size, self.connections)
    }

    fn read_manifest(&self, digest: &str, limit: u64) -> Result<Vec<u8>, Error> {
        crate::sha256_hex_of(digest)?;
        if let Some(bytes) = self
            .manifests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(digest)
        {
            return Ok(bytes.clone());
        }
        let reference = Reference::with_digest(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            digest.to_string(),
        );
        let bytes = self.fetch_manifest(&reference)?;
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: digest.to_string(),
                limit,
            });
        }
        Ok(bytes)
    }
}

fn client_config(
    options: &RegistryOptions,
    insecure: bool,
    plain_http: bool,
) -> Result<ClientConfig, Error> {
    let certificates = read_ca_files(options)?
        .into_iter()
        .map(|(_, data)| Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        })
        .collect();
    Ok(ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: insecure,
        extra_root_certificates: certificates,
        // minehound picks platforms itself (variants included).
        platform_resolver: None,
        connect_timeout: Some(options.timeout),
        read_timeout: Some(options.timeout),
        user_agent: concat!("minehound/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    })
}

/// The oci-client for `config`; a bad CA file is an error, not a silent
/// fallback to defaults.
fn oci_client(config: ClientConfig) -> Result<Client, Error> {
    Client::try_from(config).map_err(|e| Error::InvalidTarget {
        target: "registry client".into(),
        reason: e.to_string(),
    })
}

/// The `--ca-file` certificates, read once per client.
fn read_ca_files(options: &RegistryOptions) -> Result<Vec<(PathBuf, Vec<u8>)>, Error> {
    options
        .ca_files
        .iter()
        .map(|path| {
            std::fs::read(path)
                .map(|pem| (path.clone(), pem))
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })
        })
        .collect()
}

/// The HTTP client for blob downloads, with the same trust as oci-client's.
fn http_client(options: &RegistryOptions, insecure: bool) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .danger_accept_invalid_certs(insecure)
        .connect_timeout(options.timeout)
        .read_timeout(options.timeout)
        .user_agent(concat!("minehound/", env!("CARGO_PKG_VERSION")));
    let mut certificates = Vec::new();
    for (path, pem) in read_ca_files(options)? {
        certificates.push(reqwest::Certificate::from_pem(&pem).map_err(|e| {
            Error::InvalidTarget {
                target: path.display().to_string(),
                reason: format!("not a PEM certificate: {e}"),
            }
        })?);
    }
    if !certificates.is_empty() {
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().map_err(|e| Error::InvalidTarget {
        target: "registry client".into(),
        reason: e.to_string(),
    })
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A failure to connect or to speak TLS (as opposed to an HTTP answer).
fn is_transport_error(err: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(
        err.downcast_ref::<OciDistributionError>(),
        Some(OciDistributionError::RequestError(e)) if e.is_connect() || e.is_request()
    )
}

/// rustls needs one crypto provider per process; minehound uses ring.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.8.9.1"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn names_are_normalised_as_docker_pull_does() {
        let name = ImageName::parse("ubuntu").unwrap();
        assert_eq!(name.to_string(), "docker.io/library/ubuntu:latest");
        assert_eq!(name.name(), "docker.io/library/ubuntu");
        let digest = format!("sha256:{}", "a".repeat(64));
        let name = ImageName::parse(&format!("localhost:5000/team/app@{digest}")).unwrap();
        assert_eq!(
            (name.registry.as_str(), name.repository.as_str()),
            ("localhost:5000", "team/app")
        );
        assert_eq!(
            (name.tag, name.digest.as_deref()),
            (None, Some(digest.as_str()))
        );
        assert_eq!(
            ImageName::parse("quay.io/org/x:1").unwrap().pinned(&digest),
            format!("quay.io/org/x@{digest}")
        );
        assert!(ImageName::parse("has space").is_err());
        assert!(ImageName::parse("app@sha256:abc").is_err());
        assert!(ImageName::parse("").is_err());
    }

    #[test]
    fn references_are_told_from_paths() {
        assert!(looks_like_reference("alpine"));
        assert!(looks_like_reference("localhost:5000/team/app:1.4"));
        assert!(!looks_like_reference("./image.tar"));
        assert!(!looks_like_reference("/srv/image"));
        assert!(!looks_like_reference(""));
        assert!(!looks_like_reference("has space"));
    }
}
