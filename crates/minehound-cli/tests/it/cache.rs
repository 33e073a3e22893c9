//! The layer cache as a user meets it: `--cache-dir`, `--no-cache`, shared
//! base layers, several processes at once, and damaged entries.

use std::fs;
use std::process::Stdio;

use super::*;

fn cached_scan(cache: &Path, target: &str, extra: &[&str], code: i32) -> Value {
    let mut cmd = minehound();
    cmd.env_remove("MINEHOUND_NO_CACHE")
        .args(["scan", "-q", "-f", "json", "--cache-dir"])
        .arg(cache)
        .args(extra)
        .arg(target);
    json_of(&cmd.assert().code(code).get_output().stdout)
}

/// The demo's base layer under a new application layer.
fn derived_layout(dir: &Path) -> String {
    let demo = demo_image();
    let image = ImageSpec {
        layers: vec![
            demo.layers[0].clone(),
            Layer::gzip(
                "COPY app /app",
                vec![Entry::file("/app/run.sh", "#!/bin/sh\necho hi\n")],
            ),
        ],
        ..demo
    }
    .build();
    write_oci_layout(dir, &[(&image, None)]).unwrap();
    format!("oci:{}", dir.display())
}

/// The blob file of layer `index` of the report's first image, in a layout.
fn layer_blob(layout: &Path, report: &Value, index: usize) -> std::path::PathBuf {
    let digest = report["images"][0]["layers"][index]["digest"]
        .as_str()
        .unwrap();
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// An edited blob is read again, and fails its digest: the scan is an error.
fn assert_layer_1_rejected(cache: &Path, target: &str) {
    minehound()
        .env_remove("MINEHOUND_NO_CACHE")
        .args(["scan", "-q", "--cache-dir"])
        .arg(cache)
        .arg(target)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("layer 1"));
}

#[test]
fn a_second_scan_reads_no_layer_and_shared_base_layers_are_scanned_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let demo = demo_layout(&dir.path().join("demo"));

    let first = cached_scan(&cache, &demo, &[], 1);
    assert_eq!(first["stats"]["layers_cached"], 0);
    let again = cached_scan(&cache, &demo, &[], 1);
    assert_eq!(again["stats"]["layers_cached"], 3);
    assert_eq!(
        again["findings"], first["findings"],
        "same verdict from the cache"
    );
    assert_eq!(again["stats"]["files"], first["stats"]["files"]);

    let derived = cached_scan(&cache, &derived_layout(&dir.path().join("derived")), &[], 0);
    assert_eq!(
        derived["stats"]["layers_cached"], 1,
        "only the new layer is read"
    );

    // Another signature set or other limits: nothing from the cache applies.
    let rules = dir.path().join("extra.yar");
    fs::write(&rules, "rule never { condition: false }\n").unwrap();
    let other = cached_scan(&cache, &demo, &["--rules", rules.to_str().unwrap()], 1);
    assert_eq!(other["stats"]["layers_cached"], 0);
    let other = cached_scan(&cache, &demo, &["--max-depth", "1"], 1);
    assert_eq!(other["stats"]["layers_cached"], 0);

    // A local blob edited after it was cached is read, and caught.
    let blob = layer_blob(&dir.path().join("demo"), &first, 1);
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    assert_layer_1_rejected(&cache, &demo);
    bytes[last] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();

    // --no-cache neither reads nor writes.
    let fresh = dir.path().join("unused");
    minehound()
        .env_remove("MINEHOUND_NO_CACHE")
        .args(["scan", "-q", "--no-cache", "--cache-dir"])
        .arg(&fresh)
        .arg(&demo)
        .assert()
        .code(1);
    assert!(!fresh.exists());
}

/// Stamp files under the cache: local blob files known to hash to their digest.
fn stamps(cache: &Path) -> usize {
    let Ok(fan_out) = fs::read_dir(cache.join("stamps-v1")) else {
        return 0;
    };
    fan_out
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .count()
}

#[test]
fn a_blob_file_is_trusted_by_its_stamp_only_while_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let demo = demo_layout(&dir.path().join("demo"));

    // Files written in the last seconds get no stamp: a second write in the
    // same clock tick would not change it.
    let first = cached_scan(&cache, &demo, &[], 1);
    assert_eq!(stamps(&cache), 0, "fresh files are hashed every time");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let again = cached_scan(&cache, &demo, &[], 1);
    assert_eq!(again["stats"]["layers_cached"], 3);
    assert_eq!(stamps(&cache), 3, "settled files are stamped once hashed");
    assert_eq!(
        cached_scan(&cache, &demo, &[], 1)["findings"],
        first["findings"]
    );

    // Same size, modification time put back: the change time still tells.
    let blob = layer_blob(&dir.path().join("demo"), &first, 1);
    let modified = fs::metadata(&blob).unwrap().modified().unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&blob)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert_layer_1_rejected(&cache, &demo);
}

#[test]
fn processes_share_one_cache_and_a_damaged_cache_costs_only_a_rescan() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let demo = demo_layout(&dir.path().join("demo"));
    let derived = derived_layout(&dir.path().join("derived"));

    // Four scans at once, two per image, one cache.
    let bin = assert_cmd::cargo::cargo_bin("minehound");
    let children: Vec<_> = [&demo, &derived, &demo, &derived]
        .iter()
        .map(|target| {
            std::process::Command::new(&bin)
                .args(["scan", "-q", "-f", "json", "--cache-dir"])
                .arg(&cache)
                .arg(target)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (child, expected) in children.into_iter().zip([1, 0, 1, 0]) {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(expected));
        json_of(&out.stdout);
    }
    assert_eq!(
        cached_scan(&cache, &demo, &[], 1)["stats"]["layers_cached"],
        3
    );
    assert_eq!(
        cached_scan(&cache, &derived, &[], 0)["stats"]["layers_cached"],
        2
    );
    let good = cached_scan(&cache, &demo, &[], 1);

    // Damage every entry: the scan still succeeds, with the same verdict,
    // and rewrites them.
    let mut entries = Vec::new();
    for fan_out in fs::read_dir(cache.join("layers-v1")).unwrap() {
        for entry in fs::read_dir(fan_out.unwrap().path()).unwrap() {
            entries.push(entry.unwrap().path());
        }
    }
    assert!(entries.len() >= 4, "one entry per unique layer");
    // And the compiled rules: a damaged set is compiled again.
    for fan_out in fs::read_dir(cache.join("rules-v1")).unwrap() {
        for entry in fs::read_dir(fan_out.unwrap().path()).unwrap() {
            entries.push(entry.unwrap().path());
        }
    }
    assert_eq!(entries.len(), 5, "four layers and one compiled rule set");
    for (i, path) in entries.iter().enumerate() {
        let mut bytes = fs::read(path).unwrap();
        match i % 3 {
            0 => bytes.truncate(bytes.len() / 2),
            1 => {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x20;
            }
            _ => bytes = b"not an entry".to_vec(),
        }
        fs::write(path, bytes).unwrap();
    }
    let after = cached_scan(&cache, &demo, &[], 1);
    assert_eq!(after["findings"], good["findings"]);
    assert_eq!(
        after["signatures"], good["signatures"],
        "the same signatures"
    );
    assert_eq!(
        after["stats"]["layers_cached"], 0,
        "damaged entries are misses"
    );
    assert_eq!(
        cached_scan(&cache, &demo, &[], 1)["stats"]["layers_cached"],
        3
    );
}

fn cache_command(cache: &Path, args: &[&str]) -> String {
    let out = minehound()
        .arg("cache")
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .assert()
        .success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

#[test]
fn pruning_drops_the_least_recently_used_layers_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let demo = demo_layout(&dir.path().join("demo"));
    let derived = derived_layout(&dir.path().join("derived"));

    cached_scan(&cache, &demo, &[], 1);
    std::thread::sleep(std::time::Duration::from_secs(3));
    // Uses the shared base layer again and adds its own layer.
    cached_scan(&cache, &derived, &[], 0);
    let info = cache_command(&cache, &["info"]);
    assert!(
        info.contains(": 4 layer results"),
        "three demo layers and the derived image's own: {info}"
    );
    assert!(
        info.contains(" 1 compiled rule sets"),
        "the bundled rules, once: {info}"
    );

    let pruned = cache_command(&cache, &["prune", "--older-than", "2s"]);
    assert!(pruned.starts_with("removed 2 layer results"), "{pruned}");
    let demo_again = cached_scan(&cache, &demo, &[], 1);
    assert_eq!(
        demo_again["stats"]["layers_cached"], 1,
        "the base layer, used recently, stayed"
    );

    let cleared = cache_command(&cache, &["clear"]);
    assert!(cleared.starts_with("removed 4 layer results"), "{cleared}");
    let info = cache_command(&cache, &["info"]);
    assert!(
        info.contains(": 0 layer results, 0 file stamps, 0 compiled rule sets"),
        "{info}"
    );

    minehound()
        .args(["cache", "prune", "--cache-dir"])
        .arg(&cache)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-size, --older-than"));
}
