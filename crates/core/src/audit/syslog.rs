//! The `syslog` device: sends each line as one message to the local syslog daemon over its
//! Unix datagram socket, in the traditional `<PRI>TIMESTAMP TAG[PID]: MESSAGE` form.

use std::{io, path::PathBuf};

use async_trait::async_trait;
use time::{OffsetDateTime, macros::format_description};
use tokio::net::UnixDatagram;

use super::device::Sink;

/// Where local syslog daemons listen, in the order they are tried.
pub(crate) const SOCKET_PATHS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];

/// Severity of every audit message: informational.
const SEVERITY_INFO: u8 = 6;

/// A syslog facility by its name (`AUTH`, `local0`…), as Vault accepts them.
pub(crate) fn facility_code(name: &str) -> Option<u8> {
    Some(match name.to_ascii_uppercase().as_str() {
        "KERN" => 0,
        "USER" => 1,
        "MAIL" => 2,
        "DAEMON" => 3,
        "AUTH" => 4,
        "SYSLOG" => 5,
        "LPR" => 6,
        "NEWS" => 7,
        "UUCP" => 8,
        "CRON" => 9,
        "AUTHPRIV" => 10,
        "FTP" => 11,
        "LOCAL0" => 16,
        "LOCAL1" => 17,
        "LOCAL2" => 18,
        "LOCAL3" => 19,
        "LOCAL4" => 20,
        "LOCAL5" => 21,
        "LOCAL6" => 22,
        "LOCAL7" => 23,
        _ => return None,
    })
}

pub(crate) struct SyslogSink {
    candidates: Vec<PathBuf>,
    priority: u8,
    tag: String,
    socket: Option<UnixDatagram>,
}

impl SyslogSink {
    pub(crate) fn new(candidates: Vec<PathBuf>, facility: u8, tag: String) -> SyslogSink {
        SyslogSink {
            candidates,
            priority: facility * 8 + SEVERITY_INFO,
            tag,
            socket: None,
        }
    }

    fn message(&self, line: &[u8]) -> Vec<u8> {
        let stamp = OffsetDateTime::now_utc()
            .format(format_description!(
                "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let mut message = format!(
            "<{}>{stamp} {}[{}]: ",
            self.priority,
            self.tag,
            std::process::id()
        )
        .into_bytes();
        message.extend_from_slice(line);
        message
    }
}

#[async_trait]
impl Sink for SyslogSink {
    async fn open(&mut self) -> io::Result<bool> {
        if self.socket.is_some() {
            return Ok(false);
        }
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no syslog socket found");
        for path in &self.candidates {
            let socket = UnixDatagram::unbound()?;
            match socket.connect(path) {
                Ok(()) => {
                    self.socket = Some(socket);
                    return Ok(true);
                }
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    async fn write(&mut self, line: &[u8]) -> io::Result<()> {
        let message = self.message(line);
        let socket = self
            .socket
            .as_ref()
            .ok_or_else(|| io::Error::other("syslog is not connected"))?;
        socket.send(&message).await.map(drop)
    }

    fn close(&mut self) {
        self.socket = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_carry_priority_tag_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let facility = facility_code("local0").unwrap();
        let mut sink = SyslogSink::new(
            vec![dir.path().join("missing"), path],
            facility,
            "vault".into(),
        );
        assert!(sink.open().await.unwrap());
        sink.write(b"{\"type\":\"request\"}\n").await.unwrap();
        let mut buffer = vec![0u8; 512];
        let n = receiver.recv(&mut buffer).await.unwrap();
        let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
        assert!(text.starts_with("<134>"), "{text}");
        assert!(
            text.ends_with(&format!(
                "vault[{}]: {{\"type\":\"request\"}}",
                std::process::id()
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn no_daemon_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = SyslogSink::new(vec![dir.path().join("none")], 4, "vault".into());
        assert!(sink.open().await.is_err());
        assert_eq!(facility_code("bogus"), None);
        assert_eq!(facility_code("AUTH"), Some(4));
    }
}
