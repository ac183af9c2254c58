//! HTTPS without a reverse proxy (`--tls-cert`, `--tls-key`): browsers on other machines of a
//! LAN may only use camera and microphone on a secure origin.
//!
//! rustls (with *ring*) terminates TLS in front of the same router. Handshakes run in their own
//! tasks with a time limit, so a client that opens a connection and says nothing holds no one
//! else up; only finished handshakes reach axum. The certificate files are read again when they
//! change (a renewed certificate needs no restart); a broken renewal keeps the old certificate
//! and says why in the log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::{self, crypto::CryptoProvider, server::ResolvesServerCert, sign::CertifiedKey};
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;

/// A client gets this long to finish its handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond that new connections wait in the kernel's backlog.
const HANDSHAKES_AT_ONCE: usize = 256;
/// How often the certificate files are checked for a renewal.
pub const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// Why a certificate or key cannot be used; said at start-up (and by `plenum check`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable private key (PEM PKCS#8, PKCS#1 or SEC1): {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch { cert: PathBuf, key: PathBuf, reason: String },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsFiles {
    /// Reads and checks both files: a chain, a key, and that the two belong together.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Read { path: self.cert.clone(), reason: e.to_string() })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { path: self.cert.clone() });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key { path: self.key.clone(), reason: e.to_string() })?;
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Mismatch {
            cert: self.cert.clone(),
            key: self.key.clone(),
            reason: e.to_string(),
        })
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let at = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((at(&self.cert)?, at(&self.key)?))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read { path: path.to_path_buf(), reason: e.to_string() })
}

/// The certificate in use, swapped when the files are renewed.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// A TCP listener that hands axum finished TLS connections.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Loads the certificate (an error if it is unusable), starts accepting on `tcp` and
    /// watching the files for renewal.
    pub fn start(tcp: TcpListener, files: TlsFiles) -> Result<Self, TlsError> {
        let current = Arc::new(Current(RwLock::new(Arc::new(files.load()?))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let local = tcp.local_addr().map_err(|e| TlsError::Setup(e.to_string()))?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, acceptor, tx));
        tokio::spawn(watch_renewals(files, current));
        Ok(Self { local, ready })
    }
}

async fn accept_loop(tcp: TcpListener, acceptor: tokio_rustls::TlsAcceptor, ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    let slots = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accepting a TLS connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    drop(slot);
                    let _ = ready.send((tls, peer)).await;
                }
                // Plain HTTP on the HTTPS port, a scanner, a client that gave up: not ours to log
                // above debug (and never with its address at info).
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}

async fn watch_renewals(files: TlsFiles, current: Arc<Current>) {
    let mut seen = files.modified();
    loop {
        tokio::time::sleep(RELOAD_CHECK).await;
        let now = files.modified();
        if now == seen {
            continue;
        }
        // A renewal writes two files; a half-written pair fails the key check and is tried
        // again at the next look.
        match files.load() {
            Ok(key) => {
                *current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                seen = now;
                tracing::info!("TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "renewed TLS certificate not usable yet; keeping the old one"),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends with the runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plenum-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn unusable_files_say_what_is_wrong() {
        let d = dir("bad");
        let missing = TlsFiles { cert: d.join("none.pem"), key: d.join("none.key") };
        assert!(matches!(missing.load(), Err(TlsError::Read { .. })));
        std::fs::write(d.join("empty.pem"), "not a certificate\n").unwrap();
        std::fs::write(d.join("empty.key"), "not a key\n").unwrap();
        let empty = TlsFiles { cert: d.join("empty.pem"), key: d.join("empty.key") };
        let e = empty.load().unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().contains("empty.pem"), "{e}");
    }
}
