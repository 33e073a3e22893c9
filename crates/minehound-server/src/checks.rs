//! Checks of what callers name: digests, job ids, repositories and registry
//! URLs are validated once here, for requests and stored records alike.

use crate::harbor::Artifact;

/// Whether `digest` is `sha256:` and 64 lower-case hex digits (what the
/// OpenAPI pattern says).
pub fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Whether a stored job id can name a file: letters, digits and dashes
/// (ids are UUIDs).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An error and its causes, each once: "a: b: c".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The image reference of `artifact` in the registry at `registry_url`, the
/// registry's `host[:port]`, and whether it speaks plain HTTP.
pub fn reference(
    registry_url: &str,
    artifact: &Artifact,
) -> Result<(String, String, bool), String> {
    let url = registry_url.strip_suffix('/').unwrap_or(registry_url);
    let (plain_http, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (false, rest)
    } else {
        return Err(format!(
            "registry.url {registry_url:?} must start with http:// or https://"
        ));
    };
    let host_ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !host_ok {
        return Err(format!(
            "registry.url {registry_url:?} must be a base URL: scheme, host and port only"
        ));
    }
    if !valid_repository(&artifact.repository) {
        return Err(format!(
            "artifact.repository {:?} is not a repository name",
            artifact.repository
        ));
    }
    if !valid_digest(&artifact.digest) {
        return Err(format!(
            "artifact.digest {:?} is not a sha256 digest",
            artifact.digest
        ));
    }
    if let Some(mime) = &artifact.mime_type
        && !mime.is_empty()
        && !crate::harbor::CONSUMES.contains(&mime.as_str())
    {
        return Err(format!(
            "artifact.mime_type {mime:?} is not an image manifest or index"
        ));
    }
    Ok((
        format!("{rest}/{}@{}", artifact.repository, artifact.digest),
        rest.to_string(),
        plain_http,
    ))
}

/// A repository name as the distribution spec allows (and the OpenAPI
/// pattern says): components of lower-case letters and digits, joined inside
/// by `.`, `_`, `__` or a run of `-`, split by `/`; at most 255 bytes.
fn valid_repository(name: &str) -> bool {
    name.len() <= 255
        && name.split('/').all(|component| {
            let bytes = component.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
                return false;
            }
            // Every run of separators must be one the grammar allows.
            component
                .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                .all(|sep| {
                    sep.is_empty()
                        || sep == "."
                        || sep == "_"
                        || sep == "__"
                        || sep.bytes().all(|b| b == b'-')
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(repository: &str, digest: &str) -> Artifact {
        Artifact {
            repository: repository.into(),
            digest: digest.into(),
            ..Artifact::default()
        }
    }

    #[test]
    fn references_come_from_the_registry_url_and_the_artifact() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let (image, host, plain) =
            reference("http://core:8080/", &artifact("library/app", &digest)).unwrap();
        assert_eq!(image, format!("core:8080/library/app@{digest}"));
        assert_eq!(host, "core:8080");
        assert!(plain);
        assert!(!reference_ok("https://h", "library/app", &digest).2);
        reference_ok("http://h", "a__b/c--d/e.f_g", &digest);
        for (url, repo, digest) in [
            ("ftp://h", "a", digest.as_str()),
            ("http://h/path", "a", digest.as_str()),
            ("http://h", "UPPER", digest.as_str()),
            ("http://h", "a//b", digest.as_str()),
            ("http://h", "a..b", digest.as_str()),
            ("http://h", "a___b", digest.as_str()),
            (" http://h", "a", digest.as_str()),
            ("http://h", "a", "sha256:abc"),
            ("http://h", "a", "latest"),
        ] {
            assert!(
                reference(url, &artifact(repo, digest)).is_err(),
                "{url} {repo} {digest}"
            );
        }
    }

    fn reference_ok(url: &str, repo: &str, digest: &str) -> (String, String, bool) {
        reference(url, &artifact(repo, digest)).unwrap()
    }
}
