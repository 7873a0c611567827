//! The `socket` device: sends lines over TCP, UDP or a Unix stream socket, reconnecting when
//! the connection drops. Each new connection starts with a header, so the receiver can check
//! the chain of what it got.

use std::{io, time::Duration};

use async_trait::async_trait;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, UdpSocket, UnixStream},
};

use super::device::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketType {
    Tcp,
    Udp,
    Unix,
}

impl SocketType {
    pub(crate) fn parse(text: &str) -> Option<SocketType> {
        match text {
            "tcp" => Some(SocketType::Tcp),
            "udp" => Some(SocketType::Udp),
            "unix" => Some(SocketType::Unix),
            _ => None,
        }
    }
}

enum Connection {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Unix(UnixStream),
}

pub(crate) struct SocketSink {
    address: String,
    kind: SocketType,
    /// How long a connect or a write may take before the device counts as failed.
    timeout: Duration,
    connection: Option<Connection>,
}

impl SocketSink {
    pub(crate) fn new(address: String, kind: SocketType, timeout: Duration) -> SocketSink {
        SocketSink {
            address,
            kind,
            timeout,
            connection: None,
        }
    }

    async fn connect(&self) -> io::Result<Connection> {
        Ok(match self.kind {
            SocketType::Tcp => {
                let stream = TcpStream::connect(&self.address).await?;
                stream.set_nodelay(true)?;
                Connection::Tcp(stream)
            }
            SocketType::Udp => {
                let local = if self.address.starts_with('[') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let socket = UdpSocket::bind(local).await?;
                socket.connect(&self.address).await?;
                Connection::Udp(socket)
            }
            SocketType::Unix => Connection::Unix(UnixStream::connect(&self.address).await?),
        })
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "audit socket timed out")
}

#[async_trait]
impl Sink for SocketSink {
    async fn open(&mut self) -> io::Result<bool> {
        if self.connection.is_some() {
            return Ok(false);
        }
        let connection = tokio::time::timeout(self.timeout, self.connect())
            .await
            .map_err(|_| timed_out())??;
        self.connection = Some(connection);
        Ok(true)
    }

    async fn write(&mut self, line: &[u8]) -> io::Result<()> {
        let timeout = self.timeout;
        let connection = self
            .connection
            .as_mut()
            .ok_or_else(|| io::Error::other("audit socket is not connected"))?;
        let work = async {
            match connection {
                Connection::Tcp(stream) => stream.write_all(line).await,
                Connection::Unix(stream) => stream.write_all(line).await,
                Connection::Udp(socket) => socket.send(line).await.map(drop),
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| timed_out())?
    }

    fn close(&mut self) {
        self.connection = None;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncBufReadExt;

    use super::*;

    #[tokio::test]
    async fn tcp_lines_arrive_and_a_dropped_peer_is_noticed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let mut sink = SocketSink::new(address, SocketType::Tcp, Duration::from_secs(2));
        assert!(sink.open().await.unwrap());
        let (peer, _) = listener.accept().await.unwrap();
        sink.write(b"hello\n").await.unwrap();
        let mut reader = tokio::io::BufReader::new(peer);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert_eq!(line, "hello\n");
        drop(reader);
        drop(listener);
        // Writes to a closed peer fail sooner or later; a reconnect then fails outright.
        let mut failed = false;
        for _ in 0..50 {
            if sink.write(b"more\n").await.is_err() {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(failed);
        sink.close();
        assert!(sink.open().await.is_err());
    }

    #[tokio::test]
    async fn udp_sends_one_datagram_per_line() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = receiver.local_addr().unwrap().to_string();
        let mut sink = SocketSink::new(address, SocketType::Udp, Duration::from_secs(2));
        sink.open().await.unwrap();
        sink.write(b"a line\n").await.unwrap();
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..n], b"a line\n");
    }
}
