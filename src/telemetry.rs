//! Logging: `tracing` to stdout, human-readable or JSON (`HOLDFAST_LOG_FORMAT=json`),
//! filtered by `RUST_LOG` (default `info`); coloured only when stdout is a terminal and
//! `NO_COLOR` is unset. Tests log only with `TEST_LOG` set.
//!
//! Lines go through [`BufferedStdout`]: a `write(2)` per line was the largest single cost of a
//! webhook under load (one line per request), so lines are collected in memory and a
//! background thread writes them in one call every few milliseconds.

use std::io::{IsTerminal, Write};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Install the global subscriber once; later calls do nothing.
pub fn init(json: bool) {
    init_with_default(json, "info,sqlx=warn");
}

/// `init` with another filter when RUST_LOG is unset (the demo keeps its printed links
/// readable by logging only warnings).
pub fn init_with_default(json: bool, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colours only for a person at a terminal: in a file or a log collector the escape codes
    // are noise, and drawing them was ~3 % of an accepted webhook's CPU (one line each).
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(BufferedStdout::global());
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}

/// A stable stand-in for a capability (a cancel-session id, a token) wherever it would
/// otherwise be written down — log fields, idempotency keys sent to Stripe (which its client
/// and Stripe's dashboard show): the first 16 hex digits of its SHA-256. Lines about one
/// session can still be correlated, but no line grants what the id grants.
pub fn capability_ref(capability: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest: [u8; 32] = Sha256::digest(capability.as_bytes()).into();
    hex::encode(&digest[..8])
}

/// Write out the log lines still buffered; call before the process exits.
pub fn flush() {
    if let Some(b) = BUFFER.get() {
        b.write_out();
    }
}

static BUFFER: OnceLock<BufferedStdout> = OnceLock::new();

/// How long the writer thread gathers lines before one `write(2)`: a line reaches stdout at
/// most this late (and a SIGKILL loses at most this much log).
const GATHER: Duration = Duration::from_millis(10);
/// Above this many buffered bytes (stdout blocked or slow) a logging thread writes the buffer
/// itself, so memory stays bounded and logging pushes back as it did unbuffered.
const MAX_BUFFERED: usize = 1 << 20;

/// Log lines waiting for the writer thread.
pub struct BufferedStdout {
    lines: Mutex<Vec<u8>>,
    ready: Condvar,
    /// Held while writing to stdout, so lines keep their order.
    out: Mutex<()>,
}

impl BufferedStdout {
    fn global() -> &'static Self {
        BUFFER.get_or_init(|| {
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(|| {
                    let b = BUFFER.wait();
                    loop {
                        b.wait_for_lines();
                        std::thread::sleep(GATHER);
                        b.write_out();
                    }
                })
                .map(|_| ())
                .unwrap_or_else(|e| eprintln!("holdfast: no log writer thread ({e}); logging synchronously"));
            Self::new()
        })
    }

    fn new() -> Self {
        Self { lines: Mutex::new(Vec::with_capacity(64 * 1024)), ready: Condvar::new(), out: Mutex::new(()) }
    }

    fn wait_for_lines(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while lines.is_empty() {
            lines = self.ready.wait(lines).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn write_out(&self) {
        let _out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let pending = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        if !pending.is_empty() {
            let mut stdout = std::io::stdout().lock();
            // Nowhere to report a failed log write.
            let _ = stdout.write_all(&pending).and_then(|()| stdout.flush());
        }
    }

    fn push(&self, line: &[u8]) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = lines.is_empty();
        lines.extend_from_slice(line);
        let full = lines.len() > MAX_BUFFERED;
        drop(lines);
        if full {
            self.write_out();
        } else if was_empty {
            self.ready.notify_one();
        }
    }
}

impl<'a> MakeWriter<'a> for &'static BufferedStdout {
    type Writer = LineSink;

    fn make_writer(&'a self) -> LineSink {
        LineSink(self)
    }
}

/// One event's writer: `tracing-subscriber` formats the whole line, then writes it here once.
pub struct LineSink(&'static BufferedStdout);

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The per-request root span, like tracing-actix-web's default but without the query string
/// and with the route template instead of the raw path: links carry signed tokens and emails
/// (`/c/<token>?email=…`), and a 4xx on such a request would log them.
pub struct RedactedRootSpan;

impl tracing_actix_web::RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let request_id = request.extensions().get::<tracing_actix_web::RequestId>().copied();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.flavor = ?request.version(),
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{} {route}", request.method()),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = request_id.map(tracing::field::display),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
