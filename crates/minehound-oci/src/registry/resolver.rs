//! Tags to digests, many times over: one client per registry host, kept with
//! its credentials, its tokens and whether the host speaks plain HTTP, for a
//! caller that resolves a reference on every request (an admission
//! webhook). A client per look-up would read the system's CA certificates
//! and probe the registry again each time, hundreds of milliseconds under
//! load for one manifest request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{
    ACCEPTED_MANIFESTS, RegistryOptions, auth, client_config, install_crypto_provider, is_loopback,
    is_transport_error, oci_client,
};
use crate::{Error, digest};

/// Resolves image references to the digest of the manifest or index they
/// name now, reusing one client per registry host. Credentials come from
/// the Docker config (and podman's file) for each host, as pulls take them;
/// [`RegistryOptions::credentials`] and `bearer_token` are not used, since
/// they were given for one registry and references name many.
pub struct DigestResolver {
    options: RegistryOptions,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

impl std::fmt::Debug for DigestResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestResolver")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What is kept for one registry host.
struct Host {
    auth: RegistryAuth,
    /// HTTPS, and plain HTTP once HTTPS failed on a host that may use it.
    https: Client,
    http: Option<Client>,
    plain_http: Mutex<bool>,
}

impl DigestResolver {
    /// A resolver with these options (CA files, insecure hosts, timeouts).
    pub fn new(options: RegistryOptions) -> DigestResolver {
        install_crypto_provider();
        DigestResolver {
            options,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The digest `reference` names now, as its registry serves it (the
    /// manifest fetched and hashed). Needs a tokio runtime; bound it with a
    /// timeout, as it makes no retries.
    pub async fn resolve(&self, reference: &str) -> Result<String, Error> {
        let parsed: Reference = reference.parse().map_err(|e| Error::InvalidTarget {
            target: reference.to_string(),
            reason: format!("not an image reference: {e}"),
        })?;
        let registry = parsed.resolve_registry().to_string();
        let host = self.host(&registry)?;
        let fetch = |client: &Client| {
            let (client, parsed, auth) = (client.clone(), parsed.clone(), host.auth.clone());
            async move {
                client
                    .pull_manifest_raw(&parsed, &auth, ACCEPTED_MANIFESTS)
                    .await
            }
        };
        let error = |source: oci_client::errors::OciDistributionError| Error::Registry {
            registry: registry.clone(),
            repository: parsed.repository().to_string(),
            step: format!(
                "fetching manifest {}",
                parsed.digest().or(parsed.tag()).unwrap_or("latest")
            ),
            source: Box::new(source),
        };
        let plain = *host.plain_http.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = match (&host.http, plain) {
            (Some(http), true) => fetch(http).await.map_err(error)?.0,
            (http, _) => match fetch(&host.https).await {
                Ok((bytes, _)) => bytes,
                // Docker's rule: plain HTTP only where HTTPS cannot connect,
                // and only for loopback and insecure hosts.
                Err(e) if http.is_some() && is_transport_error(&e) => {
                    let bytes = fetch(http.as_ref().unwrap_or(&host.https))
                        .await
                        .map_err(error)?
                        .0;
                    *host.plain_http.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    bytes
                }
                Err(e) => return Err(error(e)),
            },
        };
        let found = digest::digest_of(&bytes);
        if let Some(expected) = parsed.digest()
            && expected != found
        {
            return Err(Error::DigestMismatch {
                what: parsed.whole(),
                expected: expected.to_string(),
                actual: found,
            });
        }
        Ok(found)
    }

    /// The kept clients of `registry`, made on first use.
    fn host(&self, registry: &str) -> Result<Arc<Host>, Error> {
        if let Some(host) = self
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(registry)
        {
            return Ok(Arc::clone(host));
        }
        let options = &self.options;
        let insecure = options.insecure_registries.iter().any(|h| h == registry);
        let may_use_http = insecure || is_loopback(registry);
        let auth = auth::resolve_auth(registry, None, options.use_config_files)?;
        let https = oci_client(client_config(options, insecure, false)?)?;
        let http = if may_use_http {
            Some(oci_client(client_config(options, insecure, true)?)?)
        } else {
            None
        };
        let host = Arc::new(Host {
            auth,
            https,
            http,
            plain_http: Mutex::new(false),
        });
        // Two first look-ups at once may both make one; either serves.
        self.hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(registry.to_string(), Arc::clone(&host));
        Ok(host)
    }
}
