//! Which credentials go to which registry: the user's flags first, then the
//! Docker config (with its credential helpers), then podman's auth file.

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use crate::Error;

/// A user name and password (or token) for one registry. Never printed: its
/// `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The keys a Docker or podman config may file a registry's credentials under.
fn config_keys(registry: &str) -> Vec<String> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        return vec![
            "https://index.docker.io/v1/".to_string(),
            "index.docker.io".to_string(),
            "docker.io".to_string(),
        ];
    }
    vec![registry.to_string(), format!("https://{registry}")]
}

/// The authorization for `registry`: explicit credentials, else the first
/// config that has some, else anonymous. Credentials are looked up by the
/// registry's own name only, so they never go to another host.
pub(crate) fn resolve_auth(
    registry: &str,
    explicit: Option<&Credentials>,
    use_config_files: bool,
) -> Result<RegistryAuth, Error> {
    if let Some(c) = explicit {
        return Ok(RegistryAuth::Basic(c.username.clone(), c.password.clone()));
    }
    if !use_config_files {
        return Ok(RegistryAuth::Anonymous);
    }
    for key in config_keys(registry) {
        for lookup in [
            docker_credential::get_credential as fn(&str) -> _,
            docker_credential::get_podman_credential,
        ] {
            match lookup(&key) {
                Ok(DockerCredential::UsernamePassword(username, password)) => {
                    return Ok(RegistryAuth::Basic(username, password));
                }
                // An identity token is an OAuth refresh token: registries that
                // take one also take it as a bearer credential.
                Ok(DockerCredential::IdentityToken(token)) => {
                    return Ok(RegistryAuth::Bearer(token));
                }
                Err(
                    CredentialRetrievalError::NoCredentialConfigured
                    | CredentialRetrievalError::ConfigNotFound
                    | CredentialRetrievalError::ConfigReadError,
                ) => {}
                // Say which helper failed, but not what it printed: its output
                // may hold secrets.
                Err(CredentialRetrievalError::HelperFailure { helper, .. }) => {
                    return Err(Error::Credentials {
                        registry: registry.to_string(),
                        reason: format!("credential helper {helper} failed"),
                    });
                }
                Err(other) => {
                    return Err(Error::Credentials {
                        registry: registry.to_string(),
                        reason: other.to_string(),
                    });
                }
            }
        }
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(config_keys("docker.io")[0], "https://index.docker.io/v1/");
        assert_eq!(config_keys("localhost:5000")[0], "localhost:5000");
    }
}
