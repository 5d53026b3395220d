//! The real `holdfast serve` binary as a child process (crash and log tests), and a TCP proxy
//! that can cut the service off from its database (outage tests).

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// A running `holdfast serve`, its stdout and stderr captured line by line.
pub struct ServerProcess {
    child: Child,
    pub address: String,
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Start the binary with JSON logs on a free port and wait until it listens.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_holdfast"));
        command.arg("serve");
        Self::spawn(command, env)
    }

    /// `start`, with SIGXFSZ ignored (set by a shell that then execs the binary: same pid), so
    /// a write past a lowered `RLIMIT_FSIZE` fails with EFBIG, like a full disk, instead of
    /// killing the process.
    pub fn start_ignoring_file_size_signal(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new("sh");
        command.args(["-c", "trap '' XFSZ; exec \"$0\" serve", env!("CARGO_BIN_EXE_holdfast")]);
        Self::spawn(command, env)
    }

    fn spawn(mut command: Command, env: &[(&str, &str)]) -> Self {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOLDFAST_BIND", "127.0.0.1:0")
            .env("HOLDFAST_LOG_FORMAT", "json")
            // Stripe's example events are test-mode events.
            .env("HOLDFAST_STRIPE_MODE", "test")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("holdfast binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let readers = vec![capture(stdout, output.clone(), Some(port_tx.clone())), capture(stderr, output.clone(), None)];
        drop(port_tx);
        let port = match port_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("holdfast did not start listening:\n{}", output.lock().expect("log lock").join("\n"));
            }
        };
        Self { child, address: format!("http://127.0.0.1:{port}"), output, readers }
    }

    /// The child's process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown hook runs, in-flight requests die with the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("child reaped");
    }

    /// Kill the process and return everything it wrote, to the last line.
    pub fn stop_and_collect(mut self) -> String {
        self.kill();
        for reader in std::mem::take(&mut self.readers) {
            reader.join().expect("output reader");
        }
        self.output()
    }

    /// Everything the process wrote so far (stdout and stderr interleaved by line).
    pub fn output(&self) -> String {
        self.output.lock().expect("log lock").join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collect lines; report the port of the "holdfast listening" line.
fn capture(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    port: Option<mpsc::Sender<u16>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &port
                && let Ok(json) = serde_json::from_str::<Value>(&line)
                && json["message"] == "holdfast listening"
                && let Some(p) = json["port"].as_u64()
            {
                let _ = tx.send(u16::try_from(p).expect("port fits u16"));
            }
            into.lock().expect("log lock").push(line);
        }
    })
}

/// A TCP proxy to `upstream` that can be cut (every connection dropped, new ones closed on
/// accept, as if the database host went away) and restored.
pub struct CuttableProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    /// Connections refused while cut.
    refused: Arc<AtomicUsize>,
}

impl CuttableProxy {
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (cut2, open2, refused2) = (cut.clone(), open.clone(), refused.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                // Check the flag and register the connection under the lock `cut` takes, so a
                // connection accepted just before a cut is either refused or shut by it, never
                // left open through the outage.
                let mut open = open2.lock().expect("proxy lock");
                if cut2.load(Ordering::SeqCst) {
                    drop(client);
                    refused2.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                pipe(&client, &server, &mut open);
            }
        });
        Self { addr, cut, open, refused }
    }

    /// How many connections were refused while cut, so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Drop every connection and refuse new ones.
    pub fn cut(&self) {
        let mut open = self.open.lock().expect("proxy lock");
        self.cut.store(true, Ordering::SeqCst);
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(client: &TcpStream, server: &TcpStream, open: &mut Vec<TcpStream>) {
    let streams = [client, server].map(|s| s.try_clone().expect("clone stream"));
    open.extend(streams);
    for (from, to) in [(client, server), (server, client)] {
        let (mut from, mut to) = (from.try_clone().expect("clone stream"), to.try_clone().expect("clone stream"));
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
}
