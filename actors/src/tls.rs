//! TLS for project connections, with libpq's `sslmode` meanings.
//!
//! tokio-postgres parses `sslmode` only as `disable`, `prefer` or `require`,
//! and neither `verify-ca`, `verify-full` nor `sslrootcert`; Supabase and
//! most operators use those. So they are taken out of the connection string
//! here and mapped onto a rustls connector (ring provider):
//!
//! | sslmode | encrypted | certificate chain checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | | |
//! | `prefer` (default) | if the server offers it | no | no |
//! | `require` | yes | only when `sslrootcert` is given (as libpq) | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! Roots: the file named by `sslrootcert`, else Mozilla's (webpki-roots).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, all five values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<TlsMode, String> {
        Ok(match value {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(format!(
                    "has sslmode={other:?}; expected disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    /// What tokio-postgres is told: whether to ask for TLS at all.
    pub fn driver_mode(self) -> SslMode {
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }
}

/// A connection's TLS settings, taken out of its connection string.
#[derive(Clone, Default)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub root_cert: Option<PathBuf>,
    connector: Option<MakeRustlsConnect>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

impl TlsSettings {
    /// The connector to give the driver.
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector
            .clone()
            .unwrap_or_else(|| build(TlsMode::Prefer, None).expect("no file to read"))
    }
}

/// Removes `sslmode` and `sslrootcert` from a connection string (URL or
/// `key=value` form) and builds the matching connector. Errors name the
/// parameter and what is expected; they never contain the string itself.
pub fn split_tls_params(url: &str) -> Result<(String, TlsSettings), String> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => {
                mode = Some(TlsMode::parse(value)?);
                Ok(true)
            }
            "sslrootcert" => {
                root = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let cleaned = if url.contains("://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, &percent_decode(v))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            let (k, v) = token.split_once('=').unwrap_or((token, ""));
            if !take(k.trim(), v.trim_matches('\''))? {
                kept.push(token);
            }
        }
        kept.join(" ")
    };
    let mode = mode.unwrap_or_default();
    let connector = build(mode, root.as_ref())?;
    Ok((
        cleaned,
        TlsSettings {
            mode,
            root_cert: root,
            connector: Some(connector),
        },
    ))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(&h), Some(&l)) = (bytes[i], bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(mode: TlsMode, root: Option<&PathBuf>) -> Result<MakeRustlsConnect, String> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    match root {
        Some(path) if path.as_os_str() != "system" => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("has sslrootcert={}, which cannot be read ({e}); expected a PEM file of CA certificates", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("has sslrootcert={}, which is not valid PEM ({e}); expected a PEM file of CA certificates", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "has sslrootcert={}, which holds no certificate; expected a PEM file of CA certificates",
                    path.display()
                ));
            }
        }
        _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let verify_chain = matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull)
        || (mode == TlsMode::Require && root.is_some());
    let webpki = if verify_chain {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot set up TLS verification: {e}"))?;
        Some(verifier)
    } else {
        None
    };
    let config = match webpki {
        Some(webpki) if mode == TlsMode::VerifyFull => {
            builder.with_webpki_verifier(webpki).with_no_client_auth()
        }
        chain => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient {
                chain,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The modes that check less than rustls would: `verify-ca` (`chain`: the
/// chain must lead to a trusted root, the name may differ), and `prefer`
/// and `require` without a root file (no `chain`: encrypted, not
/// authenticated, libpq's meaning). The handshake signatures are always
/// checked.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_tls_parameters_out_of_urls() {
        let (url, tls) =
            split_tls_params("postgres://u:p@h/db?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(url, "postgres://u:p@h/db?application_name=x");
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        let (url, tls) = split_tls_params("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://u@h/db");
        assert_eq!(tls.mode, TlsMode::Disable);
        let (url, tls) = split_tls_params("host=h sslmode=require user=u").unwrap();
        assert_eq!(url, "host=h user=u");
        assert_eq!(tls.mode, TlsMode::Require);
        assert_eq!(
            split_tls_params("postgres://h/db").unwrap().1.mode,
            TlsMode::Prefer
        );
    }

    #[test]
    fn refuses_unknown_modes_and_missing_root_files() {
        assert!(
            split_tls_params("postgres://h/db?sslmode=sometimes")
                .unwrap_err()
                .contains("verify-full")
        );
        let e =
            split_tls_params("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap_err();
        assert!(
            e.contains("sslrootcert=/nonexistent/ca.pem") && e.contains("expected"),
            "{e}"
        );
    }
}
