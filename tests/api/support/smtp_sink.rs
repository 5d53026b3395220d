//! A real SMTP server inside the suite: speaks enough ESMTP for lettre (EHLO, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT), records every accepted message, and can be told to be down
//! (421), to reject given recipients permanently (550), or to stall (accept connections and
//! say nothing until released: a slow or hung mail server).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    down: bool,
    bounce: HashSet<String>,
    stalled: bool,
    /// Connections currently held by a stall.
    stuck: usize,
}

/// A running sink; stops when dropped with the runtime.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    state: Arc<Mutex<State>>,
    /// Released stalls; signalled stalls.
    release: Arc<tokio::sync::Notify>,
    stalled_one: Arc<tokio::sync::Notify>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let (release, stalled_one) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let (r, s) = (release.clone(), stalled_one.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, shared.clone(), r.clone(), s.clone()));
            }
        });
        Self { port, state, release, stalled_one }
    }

    /// New connections hang before the greeting until `release`.
    pub fn stall(&self) {
        self.state.lock().expect("lock").stalled = true;
    }

    /// Stop stalling and let every held connection go on.
    pub fn release(&self) {
        self.state.lock().expect("lock").stalled = false;
        self.release.notify_waiters();
    }

    /// Wait until at least one connection is held by a stall.
    pub async fn wait_stuck(&self) {
        loop {
            let signalled = self.stalled_one.notified();
            if self.state.lock().expect("lock").stuck > 0 {
                return;
            }
            signalled.await;
        }
    }

    /// `SMTP_URL` for this sink (plain SMTP on localhost).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("lock").down = down;
    }

    pub fn bounce(&self, address: &str) {
        self.state.lock().expect("lock").bounce.insert(address.to_ascii_lowercase());
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().expect("lock").messages.clone()
    }

    pub fn parsed(&self) -> Vec<Email> {
        self.messages().iter().map(|m| Email::parse(&m.data)).collect()
    }
}

/// A stalled sink holds a new connection (counted as stuck, signalled on `stalled_one`) until
/// `release`; otherwise it goes on at once.
async fn hold_while_stalled(state: &Mutex<State>, release: &tokio::sync::Notify, stalled_one: &tokio::sync::Notify) {
    let released = release.notified();
    let stalled = {
        let mut s = state.lock().expect("lock");
        if s.stalled {
            s.stuck += 1;
        }
        s.stalled
    };
    if stalled {
        stalled_one.notify_waiters();
        released.await;
        state.lock().expect("lock").stuck -= 1;
    }
}

/// The greeting: 421 when the sink is down (the session then ends), else 220. Whether the
/// session goes on.
async fn greet(write: &mut tokio::net::tcp::OwnedWriteHalf, down: bool) -> std::io::Result<bool> {
    if down {
        write.write_all(b"421 sink unavailable\r\n").await?;
        return Ok(false);
    }
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    Ok(true)
}

async fn session(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    release: Arc<tokio::sync::Notify>,
    stalled_one: Arc<tokio::sync::Notify>,
) -> std::io::Result<()> {
    hold_while_stalled(&state, &release, &stalled_one).await;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let down = || state.lock().expect("lock").down;
    if !greet(&mut write, down()).await? {
        return Ok(());
    }
    let (mut from, mut rcpt) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("RSET") {
            from.clear();
            rcpt.clear();
            b"250 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            if down() {
                b"421 sink unavailable\r\n"
            } else {
                from = address(&line);
                b"250 ok\r\n"
            }
        } else if upper.starts_with("RCPT TO:") {
            let to = address(&line);
            if state.lock().expect("lock").bounce.contains(&to.to_ascii_lowercase()) {
                b"550 5.1.1 no such user\r\n"
            } else {
                rcpt.push(to);
                b"250 ok\r\n"
            }
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let data = read_data(&mut lines).await?;
            let received = Received { mail_from: std::mem::take(&mut from), rcpt_to: std::mem::take(&mut rcpt), data };
            state.lock().expect("lock").messages.push(received);
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 || line == ".\r\n" || line == ".\n" {
            return Ok(data);
        }
        // Undo dot-stuffing.
        data.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
    }
}

fn address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end].to_owned()
}

/// A received message, split into headers and decoded text/HTML parts.
#[derive(Debug, Clone)]
pub struct Email {
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub html: String,
    pub content_type: String,
}

impl Email {
    pub fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let headers = unfold(head);
        let content_type = header(&headers, "Content-Type").unwrap_or_default();
        let boundary =
            content_type.split("boundary=").nth(1).map(|b| b.trim_matches('"').to_owned()).expect("multipart boundary");
        let (mut text, mut html) = (String::new(), String::new());
        for part in body.split(&format!("--{boundary}")) {
            let Some((phead, pbody)) = part.trim_start_matches('\n').split_once("\n\n") else { continue };
            let ph = unfold(phead);
            let decoded = decode(header(&ph, "Content-Transfer-Encoding").as_deref(), pbody.trim_end_matches('\n'));
            match header(&ph, "Content-Type").unwrap_or_default() {
                t if t.starts_with("text/plain") => text = decoded,
                t if t.starts_with("text/html") => html = decoded,
                _ => {}
            }
        }
        Self { headers, text, html, content_type }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name)
    }

    /// The HTML with minijinja's `&#x2f;` turned back into `/` (how a browser reads it).
    pub fn html_unescaped(&self) -> String {
        self.html.replace("&#x2f;", "/").replace("&amp;", "&")
    }
}

fn unfold(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

fn decode(encoding: Option<&str>, body: &str) -> String {
    match encoding.map(str::to_ascii_lowercase).as_deref() {
        Some("base64") => {
            let joined: String = body.split_whitespace().collect();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(joined).expect("base64")).expect("utf8")
        }
        Some("quoted-printable") => {
            let bytes = quoted_printable::decode(body.as_bytes(), quoted_printable::ParseMode::Robust).expect("qp");
            String::from_utf8(bytes).expect("utf8")
        }
        _ => body.to_owned(),
    }
}
