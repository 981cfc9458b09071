//! One HTTP/1.1 connection per request to the engine: over its unix socket, TCP, TLS (rustls,
//! with the client certificate the engine asks for), or ssh, where `ssh HOST docker system
//! dial-stdio` carries the connection, as the docker CLI does it. bollard's requests and our
//! own (`/system/df`) go through the same transport, so every kind of host works for both.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::endpoint::{Endpoint, Tls};
use cachekeeper_core::config::Host;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How requests reach one engine.
#[derive(Clone)]
pub(crate) struct Transport {
    host: Host,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why a request did not get an answer: the connection (an `io::Error`, which says whether
/// the engine is absent or refused us) or HTTP.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    // Not transparent: the io::Error itself is the source, where classification finds it.
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

impl From<TransportError> for bollard::errors::Error {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Io(err) => bollard::errors::Error::IOError { err },
            TransportError::Http(err) => bollard::errors::Error::HyperResponseError { err },
        }
    }
}

impl Transport {
    /// The transport to `endpoint`; fails when its TLS files cannot be read.
    pub fn new(endpoint: &Endpoint) -> Result<Transport, String> {
        let tls = match (&endpoint.host, &endpoint.tls) {
            (Host::Tcp(_), Some(t)) => Some(Arc::new(tls_config(t)?)),
            _ => None,
        };
        Ok(Transport {
            host: endpoint.host.clone(),
            tls,
        })
    }

    async fn connect(&self) -> io::Result<Box<dyn Io>> {
        Ok(match &self.host {
            Host::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
            Host::Tcp(addr) => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                match &self.tls {
                    None => Box::new(tcp),
                    Some(config) => {
                        let name = server_name(addr)?;
                        let tls = tokio_rustls::TlsConnector::from(Arc::clone(config));
                        Box::new(tls.connect(name, tcp).await?)
                    }
                }
            }
            Host::Ssh(dest) => Box::new(SshIo::dial(dest)?),
        })
    }

    /// Sends `request` on a new connection and returns the answer's head (its body streams
    /// while the connection lives).
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<Incoming>, TransportError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        // On the connection itself, the target is the path (origin form).
        let (mut parts, body) = request.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", hyper::http::uri::PathAndQuery::as_str)
            .to_string();
        parts.uri = target
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        parts.headers.insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("docker"),
        );
        Ok(sender
            .send_request(Request::from_parts(parts, body))
            .await?)
    }
}

/// The name the engine's certificate must carry: the host of `host:port` (an IP, or a name).
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))
}

fn pem_error(path: &std::path::Path, e: impl std::fmt::Display) -> String {
    format!("cannot read {}: {e}", path.display())
}

/// A rustls client config from a context's or `$DOCKER_CERT_PATH`'s files.
fn tls_config(t: &Tls) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if t.verify {
        let ca =
            t.ca.as_ref()
                .ok_or("TLS verification needs ca.pem beside the client certificate")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| pem_error(ca, e))? {
            roots
                .add(cert.map_err(|e| pem_error(ca, e))?)
                .map_err(|e| pem_error(ca, e))?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    };
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| pem_error(cert, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(cert, e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// A context with `SkipTLSVerify`: encrypted, the engine's certificate not checked (as the
/// docker CLI does for such a context). Signatures are still verified.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `ssh [-p PORT] [USER@]HOST docker system dial-stdio`: the remote docker CLI connects its
/// stdio to the remote engine; the child's stdout and stdin are our connection. The child is
/// killed with the connection.
struct SshIo {
    _child: tokio::process::Child,
    io: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
}

impl SshIo {
    fn dial(dest: &str) -> io::Result<SshIo> {
        let (target, port) = match dest.rsplit_once(':') {
            Some((t, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (t, Some(p)),
            _ => (dest, None),
        };
        let mut cmd = tokio::process::Command::new("ssh");
        // Never prompt: a daemon has no one to answer.
        cmd.args(["-o", "BatchMode=yes"]);
        if let Some(p) = port {
            cmd.args(["-p", p]);
        }
        cmd.args(["--", target, "docker", "system", "dial-stdio"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            return Err(io::Error::other("ssh started without its pipes"));
        };
        Ok(SshIo {
            _child: child,
            io: tokio::io::join(stdout, stdin),
        })
    }
}

impl AsyncRead for SshIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
