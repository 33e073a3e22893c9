//! HTTPS: the API server calls webhooks over TLS only. The certificate and
//! key are read from files and read again when they change (cert-manager
//! rotates them in place), without a restart and without dropping
//! connections. Handshakes run on their own tasks, so a slow client never
//! holds up the others.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often, at most, the files are checked for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// A certificate chain and key read from PEM files, read again once they change.
#[derive(Debug)]
pub struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamp: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl ReloadingCertificate {
    /// Reads the files now; an unusable pair is an error here (at start),
    /// and only a logged warning on a later change (the old pair stays).
    pub fn load(cert_path: &Path, key_path: &Path) -> io::Result<ReloadingCertificate> {
        let key = read_pair(cert_path, key_path)?;
        Ok(ReloadingCertificate {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            state: Mutex::new(Loaded {
                key,
                stamp: stamp(cert_path, key_path),
                checked: Instant::now(),
            }),
        })
    }

    /// The pair in force, read again first if the files changed.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= CHECK_EVERY {
            state.checked = Instant::now();
            let now = stamp(&self.cert_path, &self.key_path);
            if now != state.stamp {
                match read_pair(&self.cert_path, &self.key_path) {
                    Ok(key) => {
                        tracing::info!(cert = %self.cert_path.display(), "TLS certificate read again");
                        state.key = key;
                        state.stamp = now;
                    }
                    // Mid-rotation the two files may not match yet: keep
                    // the old pair and look again on the next handshake.
                    Err(e) => tracing::warn!(
                        cert = %self.cert_path.display(),
                        error = %e,
                        "the changed TLS certificate cannot be used yet; keeping the previous one"
                    ),
                }
            }
        }
        Arc::clone(&state.key)
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamp(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    // Kubernetes updates a mounted Secret by swapping a symlink: the
    // target's time changes, and metadata follows links.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

fn read_pair(cert_path: &Path, key_path: &Path) -> io::Result<Arc<CertifiedKey>> {
    let invalid = |what: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", what.display()),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| invalid(cert_path, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(cert_path, &e))?;
    if certs.is_empty() {
        return Err(invalid(cert_path, &"no PEM certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| invalid(key_path, &e))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| invalid(key_path, &e))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        invalid(
            cert_path,
            &format!("the certificate does not match the key: {e}"),
        )
    })?;
    Ok(Arc::new(certified))
}

/// The server's TLS configuration over a reloading certificate; HTTP/1.1
/// (what the API server speaks to webhooks).
pub fn server_config(certificate: Arc<ReloadingCertificate>) -> io::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS listener for `axum::serve`: accepts TCP connections, finishes each
/// handshake on a task of its own, and hands over the connections that
/// complete one.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`. Needs a tokio runtime.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, go on.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { accepted, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(pair) => pair,
            // The accept task only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
