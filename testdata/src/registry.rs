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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// The bearer-token flow, with tokens from a [`TokenIssuer`].
    Token(TokenConfig),
}

/// What a registry needs to trust a [`TokenIssuer`].
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Where clients get tokens: `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The `service` (audience) of the tokens.
    pub service: String,
    /// The `iss` of the tokens.
    pub issuer: String,
    /// The certificate whose key signs the tokens.
    pub cert: PathBuf,
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
        Self::start_with(work, storage, tls, auth, "")
    }

    /// Starts a registry that POSTs notification envelopes of its events to
    /// `endpoint` (with `headers`, such as an `Authorization`), as an
    /// operator configures Distribution to call a scanner.
    pub fn start_notifying(
        work: &Path,
        storage: &Path,
        auth: &Auth,
        endpoint: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<Self> {
        let mut extra = format!(
            "notifications:\n  endpoints:\n    - name: scanner\n      url: {endpoint}\n      timeout: 2s\n      threshold: 3\n      backoff: 1s\n"
        );
        if !headers.is_empty() {
            extra.push_str("      headers:\n");
            for (name, value) in headers {
                extra.push_str(&format!("        {name}: [\"{value}\"]\n"));
            }
        }
        Self::start_with(work, storage, None, auth, &extra)
    }

    fn start_with(
        work: &Path,
        storage: &Path,
        tls: Option<&Tls>,
        auth: &Auth,
        extra: &str,
    ) -> io::Result<Self> {
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
        match auth {
            Auth::None => {}
            Auth::Htpasswd(path) => config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: minehound-test\n    path: {}\n",
                path.display()
            )),
            Auth::Token(token) => config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm,
                token.service,
                token.issuer,
                token.cert.display()
            )),
        }
        config.push_str(extra);
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

/// Stops a background server when dropped.
#[derive(Debug)]
struct ServerGuard(Arc<AtomicBool>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Accepts connections on a background thread until the guard is dropped.
fn serve(listener: TcpListener, mut handle: impl FnMut(TcpStream) + Send + 'static) -> ServerGuard {
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    std::thread::spawn(move || {
        while !thread_stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => handle(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
    });
    ServerGuard(stop)
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A small token issuer for the bearer-token flow: it checks HTTP basic
/// credentials and answers with an RS256 JWT (signed by `openssl`) granting
/// what the `scope` asks for. Runs on its own thread until dropped.
#[derive(Debug)]
pub struct TokenIssuer {
    /// What the registry's `auth: token` section needs.
    pub config: TokenConfig,
    _server: ServerGuard,
    /// Requests answered with a token.
    pub issued: Arc<AtomicUsize>,
}

impl TokenIssuer {
    /// Starts an issuer that accepts `user` / `password`.
    pub fn start(dir: &Path, user: &str, password: &str) -> io::Result<TokenIssuer> {
        std::fs::create_dir_all(dir)?;
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=minehound token issuer",
                "-keyout",
                "token.key",
                "-out",
                "token.pem",
            ],
        )?;
        let der = Command::new("openssl")
            .args(["x509", "-in", "token.pem", "-outform", "DER"])
            .current_dir(dir)
            .output()?;
        let signer = Signer {
            key: dir.join("token.key"),
            cert_der: base64(&der.stdout, false),
        };
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let config = TokenConfig {
            realm: format!("http://127.0.0.1:{port}/token"),
            service: "minehound-test-registry".into(),
            issuer: "minehound-test-issuer".into(),
            cert: dir.join("token.pem"),
        };
        let issued = Arc::new(AtomicUsize::new(0));
        let expected = format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes(), false)
        );
        let (thread_issued, thread_config) = (issued.clone(), config.clone());
        let server = serve(listener, move |stream| {
            if answer_token_request(stream, &expected, &thread_config, &signer).unwrap_or(false) {
                thread_issued.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(TokenIssuer {
            config,
            _server: server,
            issued,
        })
    }
}

struct Signer {
    key: PathBuf,
    cert_der: String,
}

impl Signer {
    /// A JWT with the certificate in `x5c`, which Distribution checks against
    /// its `rootcertbundle`.
    fn token(&self, config: &TokenConfig, access: &[String]) -> io::Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let header = format!(
            r#"{{"typ":"JWT","alg":"RS256","x5c":["{}"]}}"#,
            self.cert_der
        );
        let claims = format!(
            r#"{{"iss":"{}","sub":"robot","aud":"{}","exp":{},"nbf":{},"iat":{},"jti":"{now}","access":[{}]}}"#,
            config.issuer,
            config.service,
            now + 3600,
            now - 60,
            now - 60,
            access.join(",")
        );
        let input = format!(
            "{}.{}",
            base64(header.as_bytes(), true),
            base64(claims.as_bytes(), true)
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-binary", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())?;
        let signature = child.wait_with_output()?.stdout;
        Ok(format!("{input}.{}", base64(&signature, true)))
    }
}

/// Answers one token request; `Ok(true)` when a token was issued.
fn answer_token_request(
    mut stream: TcpStream,
    expected_auth: &str,
    config: &TokenConfig,
    signer: &Signer,
) -> io::Result<bool> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let authorized = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("authorization") && v.trim() == expected_auth
        })
    });
    if !authorized {
        stream.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(false);
    }
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let access: Vec<String> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .filter_map(|scope| {
            // repository:NAME:ACTIONS
            let scope = percent_decode(scope);
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<String> = actions.split(',').map(|a| format!("\"{a}\"")).collect();
            Some(format!(
                r#"{{"type":"{kind}","name":"{name}","actions":[{}]}}"#,
                actions.join(",")
            ))
        })
        .collect();
    let token = signer.token(config, &access)?;
    let body = format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":3600}}"#);
    stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )?;
    Ok(true)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard (padded) or URL-safe (unpadded) base64.
pub fn base64(bytes: &[u8], url_safe: bool) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    if url_safe {
        URL_SAFE_NO_PAD.encode(bytes)
    } else {
        STANDARD.encode(bytes)
    }
}

fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
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
}

/// Makes a CA and a server certificate for 127.0.0.1 / localhost with `openssl`.
pub fn generate_tls(dir: &Path) -> io::Result<Tls> {
    std::fs::create_dir_all(dir)?;
    let path = |name: &str| dir.join(name);
    let run = |args: &[&str]| openssl(dir, args);
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

/// An HTTP answer, as [`http`] reads it.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
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

/// One HTTP/1.1 request on its own connection; enough for a test pusher
/// or a test client of a service (bodies with a length, not chunked).
pub fn http(
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

/// What a [`FaultProxy`] does to blob downloads (`GET …/blobs/sha256:…`), or
/// to manifests for [`Fault::TrickleManifests`]; every other request is
/// forwarded untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers the first `count` blob requests with `429 Too Many Requests`
    /// and `Retry-After: retry_after_secs`.
    TooManyRequests {
        /// How many requests are refused.
        count: usize,
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Drops the connection of the first `count` blob downloads after
    /// `after_bytes` bytes of body.
    DropMidBlob {
        /// How many downloads are cut.
        count: usize,
        /// Body bytes relayed before the cut.
        after_bytes: usize,
    },
    /// Relays every blob body one byte per `interval`.
    Trickle {
        /// The pause between bytes.
        interval: Duration,
    },
    /// Relays every manifest (`GET …/manifests/…`) one byte per `interval`;
    /// the only fault that touches manifests.
    TrickleManifests {
        /// The pause between bytes.
        interval: Duration,
    },
    /// Adds `delta` to the `Content-Length` of every blob response, then
    /// relays the real body and closes.
    WrongContentLength {
        /// Bytes added (or, negative, taken away).
        delta: i64,
    },
    /// Answers every blob request with `307 Temporary Redirect` to the same
    /// path on `to` (`host:port`), as registries do to their storage.
    RedirectTo {
        /// The other host.
        to: String,
    },
    /// Drops the `Range` header of every request, as servers that do not
    /// serve ranges answer: the whole blob, `200 OK`.
    IgnoreRanges,
}

impl Fault {
    /// How many blob requests get the fault.
    fn count(&self) -> usize {
        match self {
            Fault::TooManyRequests { count, .. } | Fault::DropMidBlob { count, .. } => *count,
            _ => usize::MAX,
        }
    }
}

/// A TCP proxy in front of a registry that injects a [`Fault`] into blob
/// downloads and records every request head. One request per connection (it
/// asks the upstream for `Connection: close`).
#[derive(Debug)]
pub struct FaultProxy {
    /// `127.0.0.1:PORT` to point clients at.
    pub host: String,
    _server: ServerGuard,
    /// Blob requests the fault was applied to so far.
    pub faults: Arc<AtomicUsize>,
    /// The head (request line and headers) of every request, in arrival order.
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` that throttles `too_many` blob requests.
    pub fn start(upstream: &str, too_many: usize, retry_after_secs: u64) -> io::Result<FaultProxy> {
        Self::with_fault(
            upstream,
            Fault::TooManyRequests {
                count: too_many,
                retry_after_secs,
            },
        )
    }

    /// Starts a proxy to `upstream` that applies `fault` to blob downloads.
    pub fn with_fault(upstream: &str, fault: Fault) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let host = listener.local_addr()?.to_string();
        listener.set_nonblocking(true)?;
        let faults = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = Arc::new(ProxyState {
            upstream: upstream.to_string(),
            fault,
            faults: faults.clone(),
            requests: requests.clone(),
        });
        let server = serve(listener, move |client| {
            let state = shared.clone();
            std::thread::spawn(move || {
                let _ = proxy_one(client, &state);
            });
        });
        Ok(FaultProxy {
            host,
            _server: server,
            faults,
            requests,
        })
    }

    /// Recorded request heads that contain `needle` (case-insensitive).
    pub fn requests_with(&self, needle: &str) -> Vec<String> {
        let needle = needle.to_ascii_lowercase();
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|head| head.to_ascii_lowercase().contains(&needle))
            .cloned()
            .collect()
    }
}

struct ProxyState {
    upstream: String,
    fault: Fault,
    faults: Arc<AtomicUsize>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ProxyState {
    /// Counts one more faulty answer, unless the fault's count is used up.
    fn take_fault(&self) -> bool {
        self.faults
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.fault.count()).then_some(n + 1)
            })
            .is_ok()
    }
}

/// Reads up to the end of an HTTP head; returns the bytes read and where the
/// head ends, or `None` if the peer closed first.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some((raw, i + 4)));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        raw.extend_from_slice(&buf[..n]);
        // A TLS handshake (a client trying HTTPS first): this proxy speaks HTTP.
        if raw[0] == 0x16 {
            return Ok(None);
        }
    }
}

fn proxy_one(mut client: TcpStream, state: &ProxyState) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some((raw, head_end)) = read_head(&mut client)? else {
        return Ok(());
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    state
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(head.clone());
    let request_line = head.lines().next().unwrap_or("");
    let target = match state.fault {
        Fault::TrickleManifests { .. } => "/manifests/",
        _ => "/blobs/sha256:",
    };
    let faulted_get = request_line.starts_with("GET ") && request_line.contains(target);
    // A cut only counts where there is something to cut: decided on the response.
    let cut = matches!(state.fault, Fault::DropMidBlob { .. });
    let fault = (faulted_get && (cut || state.take_fault())).then_some(&state.fault);
    match fault {
        Some(Fault::TooManyRequests {
            retry_after_secs, ..
        }) => {
            return client.write_all(
                format!("HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after_secs}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
        Some(Fault::RedirectTo { to }) => {
            let path = request_line.split(' ').nth(1).unwrap_or("/");
            return client.write_all(
                format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
        _ => {}
    }
    // Forward with `Connection: close`, so the upstream ends the exchange.
    let dropped = |line: &str| {
        let line = line.to_ascii_lowercase();
        line.starts_with("connection:")
            || (matches!(state.fault, Fault::IgnoreRanges) && line.starts_with("range:"))
    };
    let mut forwarded: Vec<u8> = head
        .split("\r\n")
        .filter(|l| !dropped(l) && !l.is_empty())
        .flat_map(|l| [l.as_bytes(), b"\r\n"].concat())
        .collect();
    forwarded.extend_from_slice(b"Connection: close\r\n\r\n");
    forwarded.extend_from_slice(&raw[head_end..]);
    let mut server = TcpStream::connect(&state.upstream)?;
    server.write_all(&forwarded)?;
    // Request bodies (none for pulls) beyond what was read are not relayed.
    let Some(fault) = fault else {
        io::copy(&mut server, &mut client)?;
        return Ok(());
    };
    let Some((response, head_end)) = read_head(&mut server)? else {
        return Ok(());
    };
    let mut body = response[head_end..].to_vec();
    server.read_to_end(&mut body)?;
    let response_head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    match fault {
        Fault::DropMidBlob { after_bytes, .. }
            if body.len() > *after_bytes && state.take_fault() =>
        {
            client.write_all(response_head.as_bytes())?;
            client.write_all(&body[..(*after_bytes).min(body.len())])?;
            client.shutdown(std::net::Shutdown::Both)
        }
        Fault::Trickle { interval } | Fault::TrickleManifests { interval } => {
            client.write_all(response_head.as_bytes())?;
            for byte in body {
                client.write_all(&[byte])?;
                std::thread::sleep(*interval);
            }
            Ok(())
        }
        Fault::WrongContentLength { delta } => {
            let lying: String = response_head
                .split("\r\n")
                .map(|line| match line.split_once(':') {
                    Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                        let real: i64 = value.trim().parse().unwrap_or(0);
                        format!("Content-Length: {}", (real + delta).max(0))
                    }
                    _ => line.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\r\n");
            client.write_all(lying.as_bytes())?;
            client.write_all(&body)
        }
        _ => {
            client.write_all(response_head.as_bytes())?;
            client.write_all(&body)
        }
    }
}
