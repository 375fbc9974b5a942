//! What every TLS client of the server shares (PostgreSQL, Redis, the model endpoints, the
//! JWKS endpoint): rustls on one crypto provider, and CA bundles read from PEM files.

use std::{path::Path, sync::Arc};

use tokio_rustls::rustls::{
    self, RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, pem::PemObject},
};

/// The crypto provider of every TLS connection the server opens.
#[expect(
    deprecated,
    reason = "ring has no post-quantum key exchange; aws-lc-rs has, but needs cmake and a C build of libcrypto on every CI machine"
)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process's default, for libraries that build their own rustls
/// configuration (the Redis client). Idempotent.
pub fn install_default_provider() {
    let _ = CryptoProvider::install_default((*provider()).clone());
}

/// The public web's roots (Mozilla's, built in: a container needs no CA bundle).
pub fn public_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// Adds every certificate of the PEM file `path` to `roots`; a file with none is an error.
pub fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    let mut added = 0;
    for cert in
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?
    {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(())
}
