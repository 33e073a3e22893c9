//! CNCF Distribution's notifications: the registry POSTs an envelope of
//! events after pushes and pulls; each push of a manifest becomes a scan.
//!
//! Distribution retries a delivery until it gets a 2xx, so a full queue is
//! answered with 503 and the events come back later; an event whose digest
//! is already queued or running is not queued twice (retries repeat events).

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use crate::harbor::{Artifact, CONSUMES};

/// The media type Distribution sends envelopes as.
pub const ENVELOPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// A notification envelope.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// The events, oldest first.
    #[serde(deserialize_with = "objects")]
    pub events: Vec<Event>,
}

/// One registry event.
#[derive(Debug, Deserialize)]
pub struct Event {
    /// `push`, `pull`, `mount` or `delete`.
    #[serde(default)]
    pub action: String,
    /// What the event is about.
    #[serde(default, deserialize_with = "object_or_null")]
    pub target: Option<EventTarget>,
    /// The request that caused it.
    #[serde(default, deserialize_with = "object_or_null")]
    pub request: Option<EventRequest>,
}

/// The content an event is about.
#[derive(Debug, Deserialize)]
pub struct EventTarget {
    /// The content's media type.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// Its digest.
    #[serde(default)]
    pub digest: String,
    /// The repository.
    #[serde(default)]
    pub repository: String,
    /// Where the registry serves it (`http://host:port/v2/…`).
    #[serde(default)]
    pub url: String,
    /// The tag pushed, if any.
    #[serde(default)]
    pub tag: Option<String>,
}

/// The request behind an event.
#[derive(Debug, Deserialize)]
pub struct EventRequest {
    /// The `Host` the client used.
    #[serde(default)]
    pub host: String,
}

/// A push of a manifest worth scanning: the registry's base URL and the artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// `http://host:port`.
    pub registry: String,
    /// What was pushed.
    pub artifact: Artifact,
}

/// A JSON object (or null) as `T`: serde would also build a struct from an
/// array of its fields, which the envelope's schema does not allow.
fn object_or_null<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        value @ serde_json::Value::Object(_) => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected an object, found {other}"
        ))),
    }
}

/// An array of JSON objects as `Vec<T>` (see [`object_or_null`]).
fn objects<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    let items = Vec::<serde_json::Value>::deserialize(d)?;
    items
        .into_iter()
        .map(|item| match item {
            serde_json::Value::Object(_) => serde_json::from_value(item).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected an event object, found {other}"
            ))),
        })
        .collect()
}

/// The manifest pushes among `envelope`'s events. `registry` overrides where
/// they are pulled from; otherwise the event's own URL says.
pub fn pushed_manifests(envelope: &Envelope, registry: Option<&str>) -> Vec<PushedManifest> {
    envelope
        .events
        .iter()
        .filter(|e| e.action == "push")
        .filter_map(|event| {
            let target = event.target.as_ref()?;
            if !CONSUMES.contains(&target.media_type.as_str()) {
                return None;
            }
            let registry = match registry {
                Some(r) => r.to_string(),
                None => base_url(&target.url).or_else(|| {
                    let host = &event.request.as_ref()?.host;
                    (!host.is_empty()).then(|| format!("https://{host}"))
                })?,
            };
            Some(PushedManifest {
                registry,
                artifact: Artifact {
                    repository: target.repository.clone(),
                    digest: target.digest.clone(),
                    tag: target.tag.clone().filter(|t| !t.is_empty()),
                    mime_type: Some(target.media_type.clone()),
                },
            })
        })
        .collect()
}

/// `scheme://host[:port]` of a URL.
fn base_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_their_parts_are_objects() {
        for text in [
            r#"{"events": [{"action": "push", "request": []}]}"#,
            r#"{"events": [{"action": "push", "target": ["x"]}]}"#,
            r#"{"events": [["push"]]}"#,
        ] {
            assert!(serde_json::from_str::<Envelope>(text).is_err(), "{text}");
        }
        let fine: Envelope =
            serde_json::from_str(r#"{"events": [{"action": "pull", "request": null}]}"#).unwrap();
        assert_eq!(fine.events.len(), 1);
    }

    #[test]
    fn only_manifest_pushes_become_scans() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"events": [
              {"action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:aa", "repository": "team/app", "tag": "1.0",
                "url": "http://127.0.0.1:5000/v2/team/app/manifests/sha256:aa"},
               "request": {"host": "127.0.0.1:5000"}},
              {"action": "push", "target": {"mediaType": "application/octet-stream",
                "digest": "sha256:bb", "repository": "team/app"}},
              {"action": "pull", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:cc", "repository": "team/app", "url": "http://h/v2/"}},
              {"action": "push", "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": "sha256:dd", "repository": "x"}, "request": {"host": "reg.example.com"}}
            ]}"#,
        )
        .unwrap();
        let pushed = pushed_manifests(&envelope, None);
        assert_eq!(pushed.len(), 2);
        assert_eq!(pushed[0].registry, "http://127.0.0.1:5000");
        assert_eq!(pushed[0].artifact.tag.as_deref(), Some("1.0"));
        assert_eq!(pushed[1].registry, "https://reg.example.com");
        let overridden = pushed_manifests(&envelope, Some("http://registry:5000"));
        assert!(
            overridden
                .iter()
                .all(|p| p.registry == "http://registry:5000")
        );
    }
}
