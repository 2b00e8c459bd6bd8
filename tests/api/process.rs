//! The real binary as a child process, for tests that need what only a process has: its
//! command line, environment, standard error, signals, and dying with `kill -9`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fhir-salesforce-proxy");

/// A port free on 127.0.0.1 when asked.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `serve`, killed when dropped, with every line it wrote to standard error.
pub struct Proxy {
    child: Child,
    /// Standard error, line by line, as far as it has been read.
    pub lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// The port it listens on.
    pub port: u16,
}

impl Proxy {
    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the child with SIGKILL (`kill -9`: no drain, no clean-up) and waits for it to die.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the child and returns all its lines (the reader ends when the pipe closes).
    pub fn finish(mut self) -> Vec<String> {
        self.kill_9();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fhir-salesforce-proxy {global_args} serve --config {config}` with `env` set, and
/// waits until it logs "proxy started", draining standard error on a thread for the whole run.
/// `port` is the one the configuration listens on.
pub async fn serve(config: &Path, port: u16, global_args: &[&str], env: &[(&str, &str)]) -> Proxy {
    let mut command = Command::new(BIN);
    command
        .args(global_args)
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (started, ready) = tokio::sync::oneshot::channel();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        let mut started = Some(started);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let is_start = line.contains("proxy started");
            sink.lock().unwrap().push(line);
            if is_start && let Some(s) = started.take() {
                let _ = s.send(());
            }
        }
    });
    let proxy = Proxy {
        child,
        lines,
        reader: Some(reader),
        port,
    };
    // Err: timed out, or the reader ended (the child exited) without the line.
    if !matches!(
        tokio::time::timeout(Duration::from_secs(60), ready).await,
        Ok(Ok(()))
    ) {
        panic!(
            "the proxy did not start:\n{}",
            proxy.lines.lock().unwrap().join("\n")
        );
    }
    proxy
}
