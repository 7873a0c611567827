//! The process boundary of the CLI: standard streams, environment and
//! terminal detection, kept behind one type so commands can also run
//! against in-memory buffers (tests, embedding) with identical output.

use std::collections::BTreeMap;
use std::io::{self, BufRead, IsTerminal, Read, Write};

enum Stream {
    Real,
    Buffer(Vec<u8>),
}

enum Input {
    Real,
    Buffer(io::Cursor<Vec<u8>>),
}

/// Standard streams plus a snapshot of the environment.
pub struct Console {
    stdout: Stream,
    stderr: Stream,
    stdin: Input,
    env: BTreeMap<String, String>,
}

impl Console {
    /// The real process streams and environment.
    pub fn real() -> Self {
        // Variables that are not valid UTF-8 cannot hold anything this CLI
        // reads, so skipping them beats failing on them.
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self {
            stdout: Stream::Real,
            stderr: Stream::Real,
            stdin: Input::Real,
            env,
        }
    }

    /// In-memory streams; nothing is treated as a terminal.
    pub fn captured(env: BTreeMap<String, String>, stdin: Vec<u8>) -> Self {
        Self {
            stdout: Stream::Buffer(Vec::new()),
            stderr: Stream::Buffer(Vec::new()),
            stdin: Input::Buffer(io::Cursor::new(stdin)),
            env,
        }
    }

    /// An environment variable, with empty values treated as unset.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set.
    pub fn env_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.env(n))
    }

    /// Writes `text` and a newline to standard output.
    pub fn out(&mut self, text: &str) {
        self.out_raw(text);
        self.out_raw("\n");
    }

    /// Writes `text` to standard output as is.
    pub fn out_raw(&mut self, text: &str) {
        // A closed pipe (`mayfly read ... | head`) is not worth a panic.
        match &mut self.stdout {
            Stream::Real => {
                let mut lock = io::stdout().lock();
                let _ = lock.write_all(text.as_bytes());
                let _ = lock.flush();
            }
            Stream::Buffer(buf) => buf.extend_from_slice(text.as_bytes()),
        }
    }

    /// Writes `text` and a newline to standard error.
    pub fn err(&mut self, text: &str) {
        self.err_raw(text);
        self.err_raw("\n");
    }

    fn err_raw(&mut self, text: &str) {
        match &mut self.stderr {
            Stream::Real => {
                let mut lock = io::stderr().lock();
                let _ = lock.write_all(text.as_bytes());
                let _ = lock.flush();
            }
            Stream::Buffer(buf) => buf.extend_from_slice(text.as_bytes()),
        }
    }

    pub fn stdout_is_terminal(&self) -> bool {
        matches!(self.stdout, Stream::Real) && io::stdout().is_terminal()
    }

    fn stdin_is_terminal(&self) -> bool {
        matches!(self.stdin, Input::Real) && io::stdin().is_terminal()
    }

    /// Reads standard input to its end.
    pub fn read_stdin(&mut self) -> io::Result<String> {
        let mut text = String::new();
        match &mut self.stdin {
            Input::Real => {
                io::stdin().lock().read_to_string(&mut text)?;
            }
            Input::Buffer(cursor) => {
                cursor.read_to_string(&mut text)?;
            }
        }
        Ok(text)
    }

    /// Asks for a secret. On a terminal the input is not echoed; otherwise
    /// one line is read from standard input so keys can be piped in.
    pub fn read_secret(&mut self, prompt: &str) -> io::Result<String> {
        if self.stdin_is_terminal() {
            return rpassword::prompt_password(prompt).map(|s| s.trim().to_string());
        }
        self.err_raw(prompt);
        let mut line = String::new();
        match &mut self.stdin {
            Input::Real => {
                io::stdin().lock().read_line(&mut line)?;
            }
            Input::Buffer(cursor) => {
                cursor.read_line(&mut line)?;
            }
        }
        self.err_raw("\n");
        Ok(line.trim().to_string())
    }

    /// The captured standard output and standard error, when captured.
    pub fn into_captured(self) -> (String, String) {
        let take = |s: Stream| match s {
            Stream::Buffer(b) => String::from_utf8_lossy(&b).into_owned(),
            Stream::Real => String::new(),
        };
        (take(self.stdout), take(self.stderr))
    }
}
