//! What the service keeps across restarts: jobs, their reports and the latest
//! verdict per image digest, one JSON file each under the state directory.
//!
//! Each file is written aside and renamed into place (the layer cache does the
//! same), so a crash never leaves a half-written record and a damaged file
//! costs only that record: it is logged and skipped, never a failed start.
//! Registry credentials are never written.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The state directory's layout.
#[derive(Debug, Clone)]
pub struct Store {
    jobs: PathBuf,
    reports: PathBuf,
    images: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `dir`, private to this user.
    pub fn open(dir: &Path) -> io::Result<Store> {
        let store = Store {
            jobs: dir.join("jobs-v1"),
            reports: dir.join("reports-v1"),
            images: dir.join("images-v1"),
        };
        for d in [dir, &store.jobs, &store.reports, &store.images] {
            create_private_dir(d)?;
        }
        Ok(store)
    }

    /// Whether the store can take a write now (for `/readyz`).
    pub fn writable(&self) -> bool {
        let probe = self.jobs.join(".probe");
        let ok = fs::write(&probe, b"ok").is_ok();
        let _ = fs::remove_file(probe);
        ok
    }

    /// The file of job `id`'s record.
    pub fn job_path(&self, id: &str) -> PathBuf {
        self.jobs.join(format!("{id}.json"))
    }

    /// The file of job `id`'s minehound report.
    pub fn report_path(&self, id: &str) -> PathBuf {
        self.reports.join(format!("{id}.json"))
    }

    /// The file of the verdict for image `digest` (`sha256:…`).
    pub fn image_path(&self, digest: &str) -> PathBuf {
        self.images
            .join(format!("{}.json", digest.replace(':', "-")))
    }

    /// Every record in the jobs directory; damaged ones are logged and left out.
    pub fn load_jobs<T: DeserializeOwned>(&self) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.jobs)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match read_json(&path) {
                Ok(Some(record)) => out.push(record),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a damaged job record")
                }
            }
        }
        Ok(out)
    }

    /// Removes jobs, reports and verdicts last written before `max_age` ago.
    /// Returns how many files went.
    pub fn prune(&self, max_age: Duration) -> io::Result<usize> {
        let Some(limit) = SystemTime::now().checked_sub(max_age) else {
            return Ok(0);
        };
        let mut removed = 0;
        for dir in [&self.jobs, &self.reports, &self.images] {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < limit);
                if old && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Reads a JSON record: `Ok(None)` when there is no such file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `value` as JSON to `path`: into a private temporary file beside
/// it, then renamed into place (as the layer cache writes its entries). No
/// fsync: a record lost to a power cut only costs a scan (Harbor asks again;
/// a damaged file is skipped), and accepting a job must stay cheap.
pub fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let mut staged = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new(".")))?;
    staged.write_all(&bytes)?;
    staged.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_records_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        write_json(&store.job_path("a"), &serde_json::json!({"id": "a"})).unwrap();
        fs::write(store.job_path("b"), b"{\"id\": \"b\", trunc").unwrap();
        let jobs: Vec<serde_json::Value> = store.load_jobs().unwrap();
        assert_eq!(jobs, vec![serde_json::json!({"id": "a"})]);
        assert!(store.writable());
        assert!(
            read_json::<serde_json::Value>(&store.job_path("none"))
                .unwrap()
                .is_none()
        );
    }
}
