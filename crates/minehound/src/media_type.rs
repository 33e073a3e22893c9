//! Which media types name layers, and which name documents.

/// Media types of layers minehound reads: OCI layers (plain, gzip, zstd,
/// non-distributable) and Docker's.
const LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Whether `media_type` is one of the OCI or Docker layer media types (plain
/// tar, gzip or zstd; non-distributable and foreign layers included).
/// Parameters (`; foo=bar`), surrounding space and case are ignored.
///
/// A blob stored under a generic type (`application/octet-stream`, none at
/// all) may be a layer too: [`Scanner::scan_layer`](crate::Scanner::scan_layer)
/// reads every media type but a document's by the blob's first bytes.
///
/// ```
/// assert!(minehound::is_layer_media_type("application/vnd.oci.image.layer.v1.tar+zstd"));
/// assert!(minehound::is_layer_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"));
/// assert!(!minehound::is_layer_media_type("application/octet-stream"));
/// assert!(!minehound::is_layer_media_type("application/vnd.oci.image.config.v1+json"));
/// ```
pub fn is_layer_media_type(media_type: &str) -> bool {
    let essence = essence(media_type);
    LAYER_MEDIA_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&essence))
}

/// Whether `media_type` names a JSON document (a manifest, an index, a
/// config, a signature): never a layer, whatever its bytes.
pub(crate) fn is_document_media_type(media_type: &str) -> bool {
    let essence = essence(media_type).to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json") || essence.ends_with(".json")
}

/// The type without parameters or surrounding space.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_json_and_layers_are_listed() {
        for doc in [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/json; charset=utf-8",
        ] {
            assert!(is_document_media_type(doc), "{doc}");
            assert!(!is_layer_media_type(doc), "{doc}");
        }
        for generic in [
            "",
            "application/octet-stream",
            "application/x-tar",
            "binary/whatever",
        ] {
            assert!(!is_document_media_type(generic), "{generic}");
            assert!(!is_layer_media_type(generic), "{generic}");
        }
        assert!(is_layer_media_type(
            " Application/VND.oci.image.layer.v1.tar+gzip ; annotation=1"
        ));
    }
}
