//! Real registry processes for tests: CNCF Distribution (Debian's
//! `docker-registry`) started on 127.0.0.1 with the storage, TLS and auth a
//! test asks for, and a small pusher that uploads built images to it.
//!
//! Several registry processes may share one storage directory: tests push to a
//! plain-HTTP one and read through a TLS or authenticated one.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Blob, BuiltImage, platform_index};

/// The registry binary: `$MINEHOUND_REGISTRY_BIN` or Debian's `docker-registry`.
pub fn registry_binary() -> PathBuf {
    std::env::var_os("MINEHOUND_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
}

/// Certificates for a TLS registry: a CA and a server certificate it signed
/// for 127.0.0.1 and localhost.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA certificate (PEM) clients must trust.
    pub ca_cert: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server key (PEM).
    pub key: PathBuf,
}

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// HTTP basic auth against an htpasswd file (bcrypt).
    Htpasswd(PathBuf),
}

/// A registry process; killed when dropped.
#[derive(Debug)]
pub struct RegistryProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The registry's log (stdout and stderr).
    pub log: PathBuf,
}

impl RegistryProcess {
    /// Starts a registry over `storage` in `work` and waits until it answers.
    pub fn start(work: &Path, storage: &Path, tls: Option<&Tls>, auth: &Auth) -> io::Result<Self> {
        std::fs::create_dir_all(work)?;
        let port = free_port()?;
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            storage.display()
        );
        if let Some(tls) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                tls.cert.display(),
                tls.key.display()
            ));
        }
        if let Auth::Htpasswd(path) = auth {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: minehound-test\n    path: {}\n",
                path.display()
            ));
        }
        let config_path = work.join(format!("registry-{port}.yml"));
        std::fs::write(&config_path, config)?;
        let log = work.join(format!("registry-{port}.log"));
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config_path)
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start {} (apt-get install docker-registry): {e}",
                        registry_binary().display()
                    ),
                )
            })?;
        let mut process = RegistryProcess { child, host, log };
        process.wait_ready()?;
        Ok(process)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "registry exited ({status}): {log}"
                )));
            }
            if TcpStream::connect(&self.host).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "registry did not start",
        ))
    }

    /// Stops the process now (a registry that dies mid-scan).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Makes a CA and a server certificate for 127.0.0.1 / localhost with `openssl`.
pub fn generate_tls(dir: &Path) -> io::Result<Tls> {
    std::fs::create_dir_all(dir)?;
    let path = |name: &str| dir.join(name);
    let run = |args: &[&str]| -> io::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=minehound test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(
        path("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ])?;
    Ok(Tls {
        ca_cert: path("ca.pem"),
        cert: path("server.pem"),
        key: path("server.key"),
    })
}

/// Writes an htpasswd file (bcrypt, as Distribution requires) with `htpasswd`.
pub fn htpasswd_file(dir: &Path, user: &str, password: &str) -> io::Result<PathBuf> {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("htpasswd (apt-get install apache2-utils): {e}"),
            )
        })?;
    if !out.status.success() {
        return Err(io::Error::other("htpasswd failed"));
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, out.stdout)?;
    Ok(path)
}

/// Pushes `image` to `repo:tag` on a plain-HTTP, anonymous registry.
pub fn push_image(host: &str, repo: &str, tag: &str, image: &BuiltImage) -> io::Result<()> {
    for blob in image.blobs() {
        push_blob(host, repo, blob)?;
    }
    push_manifest(host, repo, tag, &image.manifest)
}

/// Pushes several single-platform images as one multi-platform `repo:tag`.
pub fn push_multi_platform(
    host: &str,
    repo: &str,
    tag: &str,
    images: &[&BuiltImage],
) -> io::Result<()> {
    for image in images {
        for blob in image.blobs() {
            push_blob(host, repo, blob)?;
        }
        push_manifest(host, repo, &image.manifest.digest, &image.manifest)?;
    }
    push_manifest(host, repo, tag, &platform_index(images))
}

/// Uploads one blob (monolithic POST then PUT).
pub fn push_blob(host: &str, repo: &str, blob: &Blob) -> io::Result<()> {
    let response = http(
        host,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        &[],
    )?;
    expect(&response, 202, "start upload")?;
    let location = response
        .header("location")
        .ok_or_else(|| io::Error::other("no Location"))?;
    let path = location
        .strip_prefix(&format!("http://{host}"))
        .unwrap_or(location)
        .to_string();
    let separator = if path.contains('?') { '&' } else { '?' };
    let response = http(
        host,
        "PUT",
        &format!("{path}{separator}digest={}", blob.digest),
        &[("Content-Type", "application/octet-stream")],
        &blob.bytes,
    )?;
    expect(&response, 201, "finish upload")
}

/// Puts a manifest (or index) under a tag or digest.
pub fn push_manifest(host: &str, repo: &str, reference: &str, manifest: &Blob) -> io::Result<()> {
    let response = http(
        host,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", manifest.media_type.as_str())],
        &manifest.bytes,
    )?;
    expect(&response, 201, "put manifest")
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn expect(response: &Response, status: u16, step: &str) -> io::Result<()> {
    if response.status == status {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{step}: HTTP {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )))
    }
}

/// One HTTP/1.1 request on its own connection; enough for a test pusher.
fn http(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("malformed status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}
