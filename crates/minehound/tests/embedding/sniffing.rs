//! Layers stored as opaque blobs: gzip, zstd and plain tar told apart by
//! their first bytes; the findings a layer scan gives are a report's.

use minehound::{LayerRequest, ScanRequest, Severity, Status, is_layer_media_type};
use minehound_testdata::{
    Compression, DEMO_CONFIG_PATH, DEMO_DROPPER_PATH, ImageSpec, Layer, demo_image, gzip,
    tar_bytes, write_oci_layout, zstd,
};

use crate::{scanner, serial};

#[test]
fn octet_stream_layers_of_each_compression_are_scanned_by_sniffing() {
    let _serial = serial();
    let tar = tar_bytes(&demo_image().layers[1].entries);
    let blobs = [
        ("gzip", gzip(&tar)),
        ("zstd", zstd(&tar)),
        ("tar", tar.clone()),
    ];
    // Generic, missing, unknown, and a layer type that names another
    // compression: the bytes decide.
    let media_types = [
        "application/octet-stream",
        "",
        "binary/octet-stream; charset=binary",
        "application/x-unknown-blob",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ];
    let mut expected = None;
    for (compression, blob) in &blobs {
        for media_type in media_types {
            let request = LayerRequest::new(media_type).size(blob.len() as u64);
            let scan = scanner()
                .scan_layer_with(&blob[..], &request)
                .unwrap_or_else(|e| panic!("{compression} as {media_type:?}: {}", e.chain()));
            assert_eq!(scan.compressed_bytes, blob.len() as u64);
            assert_eq!(scan.uncompressed_bytes, tar.len() as u64, "{compression}");
            assert_eq!(scan.diff_id, minehound_testdata::sha256_digest(&tar));
            let mut found: Vec<(String, String)> = scan
                .findings()
                .into_iter()
                .filter(|f| f.severity >= Severity::High)
                .map(|f| (f.path, f.rule))
                .collect();
            found.sort();
            assert!(
                found.iter().any(|(path, _)| path == DEMO_DROPPER_PATH),
                "{compression} as {media_type:?}: {found:?}"
            );
            assert!(found.iter().any(|(path, _)| path == DEMO_CONFIG_PATH));
            // Every compression and media type finds the same.
            assert_eq!(expected.get_or_insert_with(|| found.clone()), &found);
        }
    }
    assert!(is_layer_media_type(
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ));
    assert!(!is_layer_media_type("application/octet-stream"));
    // Documents are refused, whatever their bytes.
    for document in [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.config.v1+json",
        "application/json",
    ] {
        let err = scanner().scan_layer(&tar[..], document).unwrap_err();
        assert_eq!(err.kind(), minehound::ErrorKind::Input, "{document}");
    }
}

#[test]
fn a_layer_scan_gives_the_findings_an_image_report_holds() {
    let _serial = serial();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let image = ImageSpec {
            layers: vec![Layer {
                compression,
                ..demo_image().layers[1].clone()
            }],
            ..ImageSpec::default()
        }
        .build();
        let scan = scanner()
            .scan_layer(&image.layers[0].bytes[..], "application/octet-stream")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_oci_layout(dir.path(), &[(&image, Some("latest"))]).unwrap();
        let target = format!("oci:{}", dir.path().display());
        let report = scanner()
            .scan(&ScanRequest::new(target.parse().unwrap(), &target))
            .unwrap();
        // The layer's findings are the report's file findings, but for what
        // only the image knows: the layer's history line and the platform.
        let mut from_report: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.path != minehound::IMAGE_CONFIG_PATH)
            .cloned()
            .map(|mut f| {
                assert_eq!(f.layer.created_by.as_deref(), Some("COPY app/ /"));
                assert_eq!(f.platform.as_deref(), Some("linux/amd64"));
                f.layer.created_by = None;
                f.platform = None;
                f
            })
            .collect();
        let mut from_layer = scan.findings();
        assert!(!from_layer.is_empty());
        for f in &from_layer {
            assert_eq!(f.status, Status::Present);
            assert_eq!(
                f.layer.digest.as_deref(),
                Some(image.layers[0].digest.as_str())
            );
            // Every finding of a bundled rule links to its documentation.
            let url = minehound::rule_reference(&f.rule)
                .unwrap_or_else(|| panic!("{} has no reference", f.rule));
            assert!(url.starts_with(minehound::RULES_DOC_URL), "{url}");
            assert!(url.contains('#'), "{url}");
        }
        let key = |f: &minehound::Finding| (f.path.clone(), f.rule.clone());
        from_report.sort_by_key(key);
        from_layer.sort_by_key(key);
        assert_eq!(from_layer, from_report, "{compression:?}");
        assert_eq!(Status::Deleted.to_string(), "deleted");
    }
}
