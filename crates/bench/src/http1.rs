//! One keep-alive HTTP/1.1 connection per load client, driven on the client's own task.
//!
//! The database suite sets a server's latency beside a database driver's, which holds one
//! connection per client and does no more per query than frame it. A pooled client such as
//! reqwest adds a URL parse, a pool checkout and a hand-off to a separate connection task on
//! every request: about 20 µs of the load generator's time per request on a 2-core VM, counted
//! against the server. This client does what the driver does: one connection, requests
//! written in order, the connection polled by the task that waits for the answer.

use std::{future::Future, pin::Pin, task::Poll};

use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, StatusCode,
    body::{Bytes, Incoming},
    client::conn::http1::{self, Connection, SendRequest},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Vault's token header; both servers take it.
const TOKEN_HEADER: &str = "X-Vault-Token";

type Driver = Connection<TokioIo<TcpStream>, Full<Bytes>>;

pub struct HttpConn {
    base: String,
    authority: String,
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended: a finished connection future is not polled again.
    driver: Option<Pin<Box<Driver>>>,
}

impl HttpConn {
    /// Connects to `base` (`http://host:port`).
    pub async fn connect(base: &str) -> Result<HttpConn, String> {
        let authority = base
            .strip_prefix("http://")
            .ok_or_else(|| format!("{base}: only plain http is supported"))?
            .trim_end_matches('/')
            .to_owned();
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("connecting to {authority}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("connecting to {authority}: {e}"))?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("connecting to {authority}: {e}"))?;
        Ok(HttpConn {
            base: base.to_owned(),
            authority,
            sender,
            driver: Some(Box::pin(driver)),
        })
    }

    /// Sends one request to `/v1/<path>` and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        self.reopen_if_closed().await?;
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("/v1/{path}"))
            .header(hyper::header::HOST, &self.authority)
            .header(TOKEN_HEADER, token);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let response = drive(&mut self.driver, self.sender.send_request(request))
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let body = drive(&mut self.driver, read_body(response.into_body()))
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        Ok((status, body))
    }
}

/// Runs `work` while polling the connection, which moves the bytes.
async fn drive<T>(
    slot: &mut Option<Pin<Box<Driver>>>,
    work: impl Future<Output = T>,
) -> Result<T, String> {
    let Some(driver) = slot.as_mut() else {
        return Err("the connection has ended".to_owned());
    };
    let ended = tokio::select! {
        biased;
        out = work => return Ok(out),
        ended = driver.as_mut() => ended,
    };
    *slot = None;
    Err(match ended {
        Ok(()) => "the server closed the connection".to_owned(),
        Err(e) => format!("the connection failed: {e}"),
    })
}

impl HttpConn {
    /// A server may close a keep-alive connection that sat idle (OpenBao did, in a level whose
    /// raw turn ran long while deadlocked transactions were retried); the
    /// connection is not polled between requests, so it is looked at once before each, and
    /// opened again if it has ended. A pooled client does the same.
    async fn reopen_if_closed(&mut self) -> Result<(), String> {
        let ended = match self.driver.as_mut() {
            None => true,
            Some(driver) => {
                std::future::poll_fn(|cx| Poll::Ready(driver.as_mut().poll(cx).is_ready())).await
            }
        };
        if ended || self.sender.is_closed() {
            *self = HttpConn::connect(&self.base).await?;
        }
        Ok(())
    }
}

async fn read_body(body: Incoming) -> Result<Vec<u8>, hyper::Error> {
    Ok(body.collect().await?.to_bytes().to_vec())
}
