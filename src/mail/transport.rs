//! Delivery of one rendered email: SMTP through lettre when `SMTP_URL` is set, else `.eml`
//! files in `HOLDFAST_MAIL_DIR` so a default run needs no mail server. Always multipart
//! text + HTML, with our own stable Message-ID (a retried row keeps its id, so a receiver
//! can drop a duplicate).

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::MailSettings;
use crate::mail::EmailContent;

/// One SMTP conversation may not hold a worker longer than this.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The SMTP URL carries a password: never show it.
            Self::Smtp(_) => f.write_str("Transport::Smtp"),
            Self::Files(_, dir) => write!(f, "Transport::Files({})", dir.display()),
        }
    }
}

/// A configured sender.
#[derive(Clone, Debug)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

/// An email to deliver now.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub to: &'a str,
    pub message_id: &'a str,
    pub content: &'a EmailContent,
    /// For marketing mail: `List-Unsubscribe` + `List-Unsubscribe-Post` (RFC 8058).
    pub unsubscribe_url: Option<&'a str>,
}

/// How a send failed, which decides what the outbox does next. Each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server refused the address for good (5xx): suppress it, don't retry.
    #[error("permanently rejected: {0}")]
    Permanent(#[source] lettre::transport::smtp::Error),
    /// The SMTP server is down, timed out or answered 4xx: retry later.
    #[error("temporary failure: {0}")]
    Transient(#[source] lettre::transport::smtp::Error),
    /// The mail folder could not be written: retry later.
    #[error("could not write the mail file: {0}")]
    File(#[source] lettre::transport::file::Error),
    /// The recipient is not an email address: retrying won't help.
    #[error("invalid recipient: {0}")]
    Recipient(#[source] lettre::address::AddressError),
    /// The row can't become a message: retrying won't help.
    #[error("invalid message: {0}")]
    Message(#[source] lettre::error::Error),
}

impl SendError {
    /// What the outbox does next: suppress the address, drop the row, or retry.
    pub fn kind(&self) -> SendFailure {
        match self {
            Self::Permanent(_) => SendFailure::Permanent,
            Self::Transient(_) | Self::File(_) => SendFailure::Transient,
            Self::Recipient(_) | Self::Message(_) => SendFailure::Invalid,
        }
    }
}

/// The three things the outbox can do about a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    Permanent,
    Transient,
    Invalid,
}

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("SMTP_URL is not a usable SMTP URL")]
    SmtpUrl,
    #[error("EMAIL_FROM / EMAIL_REPLY_TO is not a valid mailbox")]
    Mailbox,
    #[error("HOLDFAST_MAIL_DIR can't be created")]
    MailDir(#[source] std::io::Error),
}

impl Mailer {
    /// The transport `settings` ask for.
    pub fn new(settings: &MailSettings) -> Result<Self, MailerError> {
        let transport = match &settings.smtp_url {
            Some(url) => {
                // lettre's error could echo the URL; report only that it was refused.
                let builder =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url.0.expose_secret()).map_err(|_| MailerError::SmtpUrl)?;
                Transport::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build())
            }
            None => {
                std::fs::create_dir_all(&settings.mail_dir).map_err(MailerError::MailDir)?;
                Transport::Files(AsyncFileTransport::new(&settings.mail_dir), settings.mail_dir.clone())
            }
        };
        let from = settings.from.parse().map_err(|_| MailerError::Mailbox)?;
        let reply_to = settings.reply_to.as_deref().map(str::parse).transpose().map_err(|_| MailerError::Mailbox)?;
        Ok(Self { transport, from, reply_to })
    }

    /// The domain of the From address, for Message-IDs.
    pub fn domain(&self) -> &str {
        self.from.email.domain()
    }

    /// Deliver one email.
    pub async fn send(&self, mail: Outgoing<'_>) -> Result<(), SendError> {
        let message = self.build(&mail)?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| if e.is_permanent() { SendError::Permanent(e) } else { SendError::Transient(e) }),
            Transport::Files(files, _) => files.send(message).await.map(|_| ()).map_err(SendError::File),
        }
    }

    fn build(&self, mail: &Outgoing<'_>) -> Result<Message, SendError> {
        let to: Mailbox = mail.to.parse().map_err(SendError::Recipient)?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.content.subject.clone())
            .message_id(Some(mail.message_id.to_owned()));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        if let Some(url) = mail.unsubscribe_url {
            // RFC 8058: an HTTPS URI the receiver may POST `List-Unsubscribe=One-Click` to.
            builder = builder
                .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), format!("<{url}>")))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(mail.content.text.clone(), mail.content.html.clone()))
            .map_err(SendError::Message)
    }
}
