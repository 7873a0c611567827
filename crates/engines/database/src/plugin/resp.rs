//! A minimal RESP2 client: enough of the Redis protocol to log in and manage ACL users, over
//! TCP or TLS. A full Redis client would bring far more than these few commands need.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// Longest bulk reply accepted; ACL replies are small, so anything larger is a broken peer.
const MAX_BULK: usize = 16 * 1024 * 1024;
const MAX_ARRAY: usize = 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    /// An error reply (`-ERR …`, `-WRONGPASS …`).
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("timed out talking to the server")]
    Timeout,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct RespConn {
    stream: BufReader<Box<dyn Stream>>,
    broken: bool,
}

impl RespConn {
    /// Connects over TCP, wrapping the stream in TLS when a configuration is given.
    pub async fn connect(
        host: &str,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, RespError> {
        let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| RespError::Timeout)??;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|err| RespError::Protocol(format!("invalid host name: {err}")))?;
                let tls = tokio_rustls::TlsConnector::from(config);
                let stream = tokio::time::timeout(IO_TIMEOUT, tls.connect(name, tcp))
                    .await
                    .map_err(|_| RespError::Timeout)??;
                Box::new(stream)
            }
        };
        Ok(RespConn {
            stream: BufReader::new(stream),
            broken: false,
        })
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends one command and reads its reply. Any I/O or protocol failure leaves the
    /// connection marked broken.
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let result = tokio::time::timeout(IO_TIMEOUT, self.round_trip(args)).await;
        let result = result.unwrap_or(Err(RespError::Timeout));
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    async fn round_trip(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&frame).await?;
        self.stream.get_mut().flush().await?;
        read_reply(&mut self.stream).await
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Result<String, RespError> {
    let mut line = Vec::new();
    let read = reader.read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Err(RespError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(RespError::Protocol("line without CRLF".to_owned()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| RespError::Protocol("non-UTF-8 line".to_owned()))
}

fn length(text: &str) -> Result<Option<usize>, RespError> {
    let n: i64 = text
        .parse()
        .map_err(|_| RespError::Protocol(format!("bad length {text:?}")))?;
    Ok(usize::try_from(n).ok())
}

fn read_reply<'a, R: AsyncBufReadExt + AsyncReadExt + Unpin + Send>(
    reader: &'a mut R,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, RespError>> + Send + 'a>> {
    Box::pin(async move {
        let line = read_line(reader).await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            "+" => Ok(Reply::Simple(rest.to_owned())),
            "-" => Ok(Reply::Error(rest.to_owned())),
            ":" => rest
                .parse()
                .map(Reply::Int)
                .map_err(|_| RespError::Protocol(format!("bad integer {rest:?}"))),
            "$" => match length(rest)? {
                None => Ok(Reply::Bulk(None)),
                Some(n) if n > MAX_BULK => Err(RespError::Protocol("bulk reply too large".into())),
                Some(n) => {
                    let mut data = vec![0u8; n + 2];
                    reader.read_exact(&mut data).await?;
                    data.truncate(n);
                    Ok(Reply::Bulk(Some(data)))
                }
            },
            "*" => match length(rest)? {
                None => Ok(Reply::Array(None)),
                Some(n) if n > MAX_ARRAY => {
                    Err(RespError::Protocol("array reply too large".into()))
                }
                Some(n) => {
                    let mut items = Vec::with_capacity(n.min(64));
                    for _ in 0..n {
                        items.push(read_reply(reader).await?);
                    }
                    Ok(Reply::Array(Some(items)))
                }
            },
            other => Err(RespError::Protocol(format!("unknown reply type {other:?}"))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, RespError> {
        let mut reader = BufReader::new(bytes);
        read_reply(&mut reader).await
    }

    #[tokio::test]
    async fn parses_every_reply_type() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Reply::Simple("OK".into()));
        assert_eq!(
            parse(b"-WRONGPASS invalid\r\n").await.unwrap(),
            Reply::Error("WRONGPASS invalid".into())
        );
        assert_eq!(parse(b":3\r\n").await.unwrap(), Reply::Int(3));
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$3\r\nabc\r\n:1\r\n").await.unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Int(1)
            ]))
        );
        assert!(parse(b"?x\r\n").await.is_err());
        assert!(parse(b"$5\r\nab").await.is_err());
    }
}
