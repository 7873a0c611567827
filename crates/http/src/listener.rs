//! Accepts connections (plain or TLS), serves HTTP/1.1 and HTTP/2 on them, and on shutdown
//! stops accepting and lets in-flight requests finish.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use mayfly_sdk::inline_wake::{Gate, InlineWakes};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;

use crate::handler::{HttpState, handle};

/// How long a connection may wait for the complete headers of its next request.
///
/// hyper starts this clock as soon as a connection is ready for a new request, so it is also
/// the idle keep-alive timeout. Clients and agents that pool connections expect them to
/// survive five minutes of silence (Go's and Vault's idle timeout), hence a little more; it
/// still bounds how long a client that trickles its headers can hold a connection.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(330);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closed connection keeps discarding what the client still sends.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let in_flight = Arc::new(AtomicUsize::new(0));
    // hyper's body channel wakes a connection's own task when its handler reads the request
    // body; tokio answers that by waking an idle worker. With other requests in flight that
    // wake spreads them over the cores; with this one alone it only costs a futex wake on the
    // request's path, and often a move to the other core.
    let alone: Gate = {
        let in_flight = in_flight.clone();
        Arc::new(move || in_flight.load(Ordering::Relaxed) <= 1)
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %err, "Failed to accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = LingeringStream(Some(stream));
        let state = state.clone();
        let in_flight = in_flight.clone();
        let service = service_fn(move |req| {
            let counted = InFlight::enter(&in_flight);
            // Boxed: the handler's future is large, and hyper and this wrapper would each move
            // it by value.
            let answer = Box::pin(handle(state.clone(), remote, req));
            async move {
                let _counted = counted;
                answer.await
            }
        });
        match &acceptor {
            None => {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = InlineWakes::gated(graceful.watch(conn.into_owned()), alone.clone());
                tokio::spawn(async move {
                    if let Err(err) = conn.await {
                        tracing::debug!(error = %err, "Connection ended with an error.");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let alone = alone.clone();
                tokio::spawn(async move {
                    let tls_stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls_stream)) => tls_stream,
                            Ok(Err(err)) => {
                                tracing::debug!(error = %err, "TLS handshake failed.");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                    let conn = InlineWakes::gated(watcher.watch(conn.into_owned()), alone);
                    if let Err(err) = conn.await {
                        tracing::debug!(error = %err, "Connection ended with an error.");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("Gave up waiting for connections to drain.");
        }
    }
    Ok(())
}

/// Counts a request from the moment its handler starts until its answer is ready (or the
/// request is dropped).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream that closes the way Go's server (and so Vault) does: when dropped, it shuts
/// down its write side and discards what the client is still sending for a moment before
/// closing. Closing a socket with unread input makes the kernel send a reset, which destroys
/// a response the client has not read yet: a client still uploading an oversized body would
/// get "connection reset" instead of the 413 sent before the body was read.
struct LingeringStream(Option<TcpStream>);

impl LingeringStream {
    fn inner(&mut self) -> io::Result<&mut TcpStream> {
        self.0
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.inner()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.inner()?).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.inner()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.inner()?).poll_shutdown(cx)
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let Some(mut stream) = self.0.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = stream.shutdown().await;
            let discard = async {
                let mut buf = [0u8; 8192];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            };
            let _ = tokio::time::timeout(LINGER_TIMEOUT, discard).await;
        });
    }
}
