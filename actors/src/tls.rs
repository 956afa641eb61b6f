//! TLS for project connections, with libpq's `sslmode` meanings.
//!
//! tokio-postgres parses `sslmode` only as `disable`, `prefer` or `require`,
//! and neither `verify-ca`, `verify-full` nor `sslrootcert`; Supabase and
//! most operators use those. So they are taken out of the connection string
//! ([`crate::conninfo`]) and mapped here onto a rustls connector (ring
//! provider):
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
    /// Every value, as libpq spells it.
    pub const NAMES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

    /// Reads an `sslmode` value. The error does not repeat it (in a
    /// malformed string it may be a piece of a password).
    pub fn parse(value: &str) -> Result<TlsMode, String> {
        Ok(match value {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                let hint = crate::spelling::nearest(other, Self::NAMES, 2)
                    .map(|near| format!(" (perhaps {near}, misspelled?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "has an sslmode that is not one of libpq's{hint}; expected disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    /// The value as libpq spells it.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
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

impl TlsSettings {
    /// The settings for `mode` and `root_cert` (a PEM file of CA
    /// certificates), with their connector built: an unreadable or empty
    /// file is an error that names it.
    pub fn new(mode: TlsMode, root_cert: Option<PathBuf>) -> Result<TlsSettings, String> {
        let connector = build(mode, root_cert.as_ref())?;
        Ok(TlsSettings {
            mode,
            root_cert,
            connector: Some(connector),
        })
    }
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
    fn refuses_unknown_modes_and_missing_root_files() {
        let e = TlsMode::parse("sometimes").unwrap_err();
        assert!(e.contains("verify-full") && !e.contains("sometimes"), "{e}");
        let e = TlsSettings::new(TlsMode::VerifyFull, Some("/nonexistent/ca.pem".into()))
            .err()
            .unwrap();
        assert!(
            e.contains("sslrootcert=/nonexistent/ca.pem") && e.contains("expected"),
            "{e}"
        );
    }
}
