//! TLS to PostgreSQL (RDS requires it) with rustls, under libpq's `sslmode` and
//! `sslrootcert` rules, which every PostgreSQL user already knows. tokio-postgres itself
//! parses only `disable`, `prefer` and `require`, so [`split`] takes both parameters out of
//! the URL and [`connector`] builds what the mode asks for:
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | if the server offers it | no (the chain, with `sslrootcert`) |
//! | `require` | always | no (the chain, with `sslrootcert`) |
//! | `verify-ca` | always | the chain, against `sslrootcert` |
//! | `verify-full` | always | the chain and the host name |
//!
//! `sslrootcert=FILE` is a PEM bundle (RDS's `global-bundle.pem`), `sslrootcert=system` the
//! public web's roots; without it the `verify-*` modes read `~/.postgresql/root.crt`, as
//! libpq does, and say so when it is missing. A Unix socket never carries TLS (the server
//! declines), so a local socket works in every mode but the `verify-*` ones need no file.

use std::{
    future::Future,
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::{
    Socket,
    tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream},
};
use tokio_rustls::{
    TlsConnector,
    rustls::{
        self, CertificateError, DigitallySignedStruct, SignatureScheme,
        client::{
            WebPkiServerVerifier,
            danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        },
        crypto::CryptoProvider,
        pki_types::{CertificateDer, ServerName, UnixTime},
    },
};

/// libpq's `sslmode`, spelled once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, else plain (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (unless `sslrootcert` is given).
    Require,
    /// TLS with the certificate's chain checked against `sslrootcert`.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The URL's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether TLS is a must.
    fn required(self) -> bool {
        !matches!(self, Self::Disable | Self::Prefer)
    }
}

impl std::str::FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Disable,
            Self::Prefer,
            Self::Require,
            Self::VerifyCa,
            Self::VerifyFull,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| {
            format!(
                "sslmode={s:?} is not one of disable, prefer, require, verify-ca, verify-full \
                 (libpq's `allow` is not supported: use prefer)"
            )
        })
    }
}

/// Where the CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file.
    File(PathBuf),
    /// The public web's roots (`sslrootcert=system`).
    System,
}

/// What the URL says about TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`.
    pub root_cert: Option<RootCert>,
}

/// Takes `sslmode` and `sslrootcert` out of a database URL (`postgres://…?sslmode=…`) or a
/// `key=value` connection string, and gives the rest to tokio-postgres.
pub fn split(url: &str) -> Result<(String, TlsSettings), String> {
    let mut settings = TlsSettings::default();
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => settings.mode = value.parse()?,
            "sslrootcert" => {
                settings.root_cert = Some(if value == "system" {
                    RootCert::System
                } else {
                    RootCert::File(PathBuf::from(value))
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.contains("://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, &percent_decode(value))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, value.trim_matches('\''))? {
                kept.push(pair);
            }
        }
        kept.join(" ")
    };
    Ok((rest, settings))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// tokio-postgres's own mode for ours: the `verify-*` modes are `require` to it (the checks
/// are the verifier's).
pub fn driver_mode(mode: SslMode) -> tokio_postgres::config::SslMode {
    use tokio_postgres::config::SslMode as Driver;
    match mode {
        SslMode::Disable => Driver::Disable,
        SslMode::Prefer => Driver::Prefer,
        _ => Driver::Require,
    }
}

fn roots(root: &RootCert) -> Result<rustls::RootCertStore, String> {
    match root {
        RootCert::System => Ok(crate::tls::public_roots()),
        RootCert::File(path) => {
            let mut roots = rustls::RootCertStore::empty();
            crate::tls::add_pem(&mut roots, path).map_err(|e| format!("sslrootcert {e}"))?;
            Ok(roots)
        }
    }
}

/// The root certificates a mode checks against, libpq's way.
fn root_for(settings: &TlsSettings, home: Option<&Path>) -> Result<Option<RootCert>, String> {
    if let Some(root) = &settings.root_cert {
        return Ok(Some(root.clone()));
    }
    if !matches!(settings.mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        return Ok(None);
    }
    let default = home.map(|h| h.join(".postgresql/root.crt"));
    match default {
        Some(path) if path.is_file() => Ok(Some(RootCert::File(path))),
        _ => Err(format!(
            "sslmode={} needs the server's CA: add sslrootcert=FILE to the database URL (for \
             RDS, its global-bundle.pem), or sslrootcert=system for a publicly signed \
             certificate (~/.postgresql/root.crt does not exist)",
            settings.mode.as_str()
        )),
    }
}

/// The connector for these settings.
pub fn connector(settings: &TlsSettings) -> Result<MakeRustls, String> {
    if settings.mode == SslMode::Disable {
        return Ok(MakeRustls { config: None });
    }
    let provider = crate::tls::provider();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let chain = match root_for(settings, home.as_deref())? {
        Some(root) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots(&root)?), provider.clone())
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?,
        ),
        None => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match chain {
        Some(chain) if settings.mode == SslMode::VerifyFull => chain,
        chain => Arc::new(Lenient {
            chain,
            provider: provider.clone(),
        }),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustls {
        config: Some(Arc::new(config)),
    })
}

/// The modes short of `verify-full`. With `chain` (`verify-ca`, or `sslrootcert` given to
/// `prefer` / `require`), the chain must lead to a trusted CA but the name is not checked;
/// without it (`prefer` / `require` alone), encryption without authentication, as libpq
/// gives. The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Makes a TLS connector per connection (tokio-postgres's seam); `None`: `sslmode=disable`.
#[derive(Clone)]
pub struct MakeRustls {
    config: Option<Arc<rustls::ClientConfig>>,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = PgTls;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        // A Unix socket has no host name; the server declines TLS there, so the name is
        // never used.
        let name = if domain.is_empty() {
            "localhost"
        } else {
            domain
        };
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {e}")))?;
        Ok(Connect {
            config: self.config.clone(),
            name,
        })
    }
}

/// One connection's handshake.
pub struct Connect {
    config: Option<Arc<rustls::ClientConfig>>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for Connect {
    type Stream = PgTls;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTls>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("sslmode=disable: no TLS"))?;
            let tls = TlsConnector::from(config)
                .connect(self.name, stream)
                .await?;
            Ok(PgTls(Box::new(tls)))
        })
    }
}

/// A TLS connection to PostgreSQL.
pub struct PgTls(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for PgTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl TlsStream for PgTls {
    /// No channel binding: SCRAM then runs without `-PLUS`, which every server accepts (the
    /// end-point hash depends on the certificate's signature algorithm).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// A start-up failure in words that name the cause (the driver's own are terse), with what to
/// change.
pub fn explain(error: &str, mode: SslMode) -> String {
    let hint = if error.contains("no encryption") || error.contains("no pg_hba.conf entry") {
        if mode.required() {
            ""
        } else {
            " — the server accepts only TLS connections here: use sslmode=verify-full (with \
             sslrootcert=FILE) or at least sslmode=require"
        }
    } else if error.contains("UnknownIssuer") || error.contains("unknown issuer") {
        " — the server's certificate is not signed by a CA in sslrootcert (wrong CA bundle?)"
    } else if error.contains("NotValidForName") || error.contains("not valid for name") {
        " — the server's certificate does not name the host in the URL (sslmode=verify-full \
         checks it; connect by the name on the certificate, e.g. the RDS endpoint)"
    } else if error.contains("server does not support TLS") {
        " — the server offers no TLS, but the URL's sslmode requires it"
    } else {
        ""
    };
    format!("{error}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_come_out_of_the_url_and_the_rest_stays() {
        let (rest, s) = split(
            "postgres://farm:pw@db.example:5432/chat?sslmode=verify-full&sslrootcert=%2Fetc%2Frds.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://farm:pw@db.example:5432/chat?application_name=x"
        );
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(RootCert::File("/etc/rds.pem".into())));
        let (rest, s) = split("postgres:///chat?host=/tmp/pg").unwrap();
        assert_eq!(
            (rest.as_str(), s.mode),
            ("postgres:///chat?host=/tmp/pg", SslMode::Prefer)
        );
        let (rest, s) = split("host=db sslmode=require sslrootcert=system user=farm").unwrap();
        assert_eq!(rest, "host=db user=farm");
        assert_eq!(
            (s.mode, s.root_cert),
            (SslMode::Require, Some(RootCert::System))
        );
        assert!(split("postgres://db/x?sslmode=allow").is_err());
        assert!(split("postgres://db/x?sslmode=bogus").is_err());
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(mode.parse::<SslMode>().unwrap().as_str(), mode);
        }
    }

    #[test]
    fn the_verify_modes_need_a_ca_and_say_where_to_put_it() {
        let settings = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: None,
        };
        let err = root_for(&settings, Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(err.contains("sslrootcert=FILE"), "{err}");
        let require = TlsSettings {
            mode: SslMode::Require,
            root_cert: None,
        };
        assert_eq!(root_for(&require, None).unwrap(), None);
        assert!(connector(&require).is_ok());
        let missing = TlsSettings {
            mode: SslMode::VerifyCa,
            root_cert: Some(RootCert::File("/nonexistent/ca.pem".into())),
        };
        assert!(connector(&missing).is_err());
    }

    #[test]
    fn failures_name_their_cause() {
        let refused = explain(
            "db error: FATAL: no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"x\", no encryption",
            SslMode::Disable,
        );
        assert!(refused.contains("accepts only TLS"), "{refused}");
        let ca = explain(
            "error performing TLS handshake: invalid peer certificate: UnknownIssuer",
            SslMode::VerifyFull,
        );
        assert!(ca.contains("not signed by a CA in sslrootcert"), "{ca}");
        let name = explain(
            "error performing TLS handshake: invalid peer certificate: certificate not valid for name \"127.0.0.2\"",
            SslMode::VerifyFull,
        );
        assert!(name.contains("does not name the host"), "{name}");
    }
}
