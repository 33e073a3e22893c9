//! TLS to the database as libpq users expect it: the `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` of the connection string.
//!
//! | `sslmode` | TLS | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `allow`, `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given (then as `verify-ca`) |
//! | `verify-ca` | always | chains to `sslrootcert` |
//! | `verify-full` | always | chains to `sslrootcert` and names the host |
//!
//! `sslrootcert=system` trusts the system's CAs. tokio-postgres knows only
//! `disable`, `prefer` and `require`, so these keys are taken out of the
//! string here and the rest is handed on.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// `sslmode`, as libpq spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What the connection string says about TLS.
#[derive(Debug)]
pub(crate) struct Settings {
    pub mode: Mode,
    root_cert: Option<String>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// Splits the TLS keys off `url` (either form): the string tokio-postgres
/// reads, and the settings.
pub(crate) fn split(url: &str) -> Result<(String, Settings), String> {
    let mut settings = Settings {
        mode: Mode::Prefer,
        root_cert: None,
        client_cert: None,
        client_key: None,
    };
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => {
                settings.mode = match value {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                        ));
                    }
                }
            }
            "sslrootcert" => settings.root_cert = Some(percent_decode(value)),
            "sslcert" => settings.client_cert = Some(percent_decode(value).into()),
            "sslkey" => settings.client_key = Some(percent_decode(value).into()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, v)? {
                        kept.push(pair);
                    }
                }
                match kept.is_empty() {
                    true => base.to_string(),
                    false => format!("{base}?{}", kept.join("&")),
                }
            }
            None => url.to_string(),
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k.trim(), v.trim())? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    if settings.client_cert.is_some() != settings.client_key.is_some() {
        return Err("sslcert and sslkey go together".into());
    }
    if matches!(settings.mode, Mode::VerifyCa | Mode::VerifyFull) && settings.root_cert.is_none() {
        return Err(format!(
            "sslmode={} needs sslrootcert: the CA certificate file (PEM) the server's certificate chains to, or sslrootcert=system",
            if settings.mode == Mode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        ));
    }
    // What tokio-postgres itself should do.
    let mode = match settings.mode {
        Mode::Disable => "disable",
        Mode::Prefer => "prefer",
        _ => "require",
    };
    let rest = match (
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        rest.contains('?'),
    ) {
        (true, true) => format!("{rest}&sslmode={mode}"),
        (true, false) => format!("{rest}?sslmode={mode}"),
        (false, _) => format!("{rest} sslmode={mode}"),
    };
    Ok((rest, settings))
}

/// `%2F` and friends, for paths in a URL's query.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Settings {
    /// The rustls client configuration for these settings.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let verifier: Arc<dyn ServerCertVerifier> = match (&self.root_cert, self.mode) {
            (None, _) => Arc::new(Unchecked(provider)),
            (Some(roots), mode) => {
                let roots = Arc::new(load_roots(roots)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| e.to_string())?;
                match mode {
                    Mode::VerifyFull => webpki,
                    _ => Arc::new(AnyName(webpki)),
                }
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect())
                    .map_err(|e| format!("sslcert {}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("sslcert/sslkey: {e}"))
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }
}

/// The CAs `sslrootcert` names: a PEM file, or `system`.
fn load_roots(root_cert: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if root_cert == "system" {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    } else {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(root_cert)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("sslrootcert {root_cert}: {e}"))?;
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {root_cert}: no CA certificate in it"));
    }
    Ok(roots)
}

/// `require` without `sslrootcert`: encrypted, the certificate not checked
/// (libpq's meaning), though the handshake's signatures still are.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the host name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_keys_are_taken_out_and_mapped() {
        let (rest, s) = split("postgres://u:p@db/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=a").unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@db/x?application_name=a&sslmode=require"
        );
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (rest, s) = split("host=db user=u sslmode=disable").unwrap();
        assert_eq!(rest, "host=db user=u sslmode=disable");
        assert_eq!(s.mode, Mode::Disable);
        let (rest, s) = split("postgres://db/x").unwrap();
        assert_eq!(rest, "postgres://db/x?sslmode=prefer");
        assert_eq!(s.mode, Mode::Prefer);
        assert!(
            split("postgres://db/x?sslmode=verify-ca")
                .unwrap_err()
                .contains("sslrootcert")
        );
        assert!(split("postgres://db/x?sslmode=bogus").is_err());
        assert!(
            split("postgres://db/x?sslcert=a.pem")
                .unwrap_err()
                .contains("sslkey")
        );
    }
}
