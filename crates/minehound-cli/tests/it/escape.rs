//! No escape from the input: credentials stay out of every output, foreign
//! layer URLs are never fetched, the cache is private to its user. (Symlinks
//! out of a `dir:` root: `bombs::link_loops_in_a_directory_are_not_followed`.)

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;

use minehound_testdata::hostile;
use minehound_testdata::registry::base64;

use super::registry::{PASSWORD, scan_cmd, secure_registry};
use super::*;

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), fs::read(&path).unwrap()));
        }
    }
    out
}

#[test]
fn credentials_appear_in_no_output_and_the_cache_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let secure = secure_registry(dir.path());
    let empty = dir.path().join("empty-config");
    let out = dir.path().join("out");
    fs::create_dir_all(&empty).unwrap();
    fs::create_dir_all(&out).unwrap();
    let cache = out.join("cache");
    let reports = [
        "--report".to_string(),
        format!("json={}", out.join("report.json").display()),
        "--report".to_string(),
        format!("sarif={}", out.join("report.sarif").display()),
        "--output".to_string(),
        out.join("stdout-report.json").display().to_string(),
        "--cache-dir".to_string(),
        cache.display().to_string(),
    ];
    let mut outputs = Vec::new();
    // A passing login, then a wrong password (for the error path), each
    // writing every report there is.
    for (password, code) in [(PASSWORD, 1), ("not-the-pa55word", 2)] {
        let run = scan_cmd(&secure, &empty)
            .env_remove("MINEHOUND_NO_CACHE")
            .args(["--username", "robot", "--password-stdin", "-f", "table"])
            .args(&reports)
            .write_stdin(format!("{password}\n"))
            .assert()
            .code(code)
            .get_output()
            .clone();
        outputs.push(("stdout".into(), run.stdout));
        outputs.push(("stderr".into(), run.stderr));
    }
    let written = files_under(&out);
    assert!(written.len() >= 4, "{written:?}");
    outputs.extend(written.iter().cloned());
    let secrets = [
        PASSWORD.to_string(),
        "not-the-pa55word".to_string(),
        base64(format!("robot:{PASSWORD}").as_bytes(), false),
        base64(format!("robot:{PASSWORD}").as_bytes(), true),
    ];
    for (place, bytes) in &outputs {
        let text = String::from_utf8_lossy(bytes);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} holds a secret",
                place.display()
            );
        }
    }

    let cached: Vec<_> = written
        .iter()
        .filter(|(p, _)| p.starts_with(&cache))
        .collect();
    assert!(!cached.is_empty(), "the passing scan filled the cache");
    let mut paths: Vec<_> = cached.iter().map(|(p, _)| p.clone()).collect();
    paths.extend(
        cached
            .iter()
            .flat_map(|(p, _)| p.ancestors().skip(1))
            .filter(|p| p.starts_with(&cache))
            .map(Path::to_path_buf),
    );
    for path in paths {
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
}

#[test]
fn foreign_layer_urls_are_never_fetched() {
    // Where the URLs point: any connection here would be a fetch.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "http://{}/foreign/layer.tar.gz",
        listener.local_addr().unwrap()
    );

    // The blob is in the layout: it is read from there.
    let dir = tempfile::tempdir().unwrap();
    hostile::write_foreign_layer_layout(dir.path(), std::slice::from_ref(&url), true).unwrap();
    let report = scan_json(
        &["scan", "-q", &format!("oci:{}", dir.path().display())],
        None,
        0,
    );
    assert_eq!(report["stats"]["files"], 1);

    // It is not: a clear error naming the blob, not a download.
    let dir = tempfile::tempdir().unwrap();
    hostile::write_foreign_layer_layout(dir.path(), &[url], false).unwrap();
    minehound()
        .args(["scan", "-q", &format!("oci:{}", dir.path().display())])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sha256:"));

    let contacted = listener.accept();
    assert!(
        matches!(&contacted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the foreign URL was contacted: {contacted:?}"
    );
}
