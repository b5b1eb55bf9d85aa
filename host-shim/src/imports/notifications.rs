//! The `notifications` import: email to DAM users and other people.
//!
//! Every accepted message becomes a real RFC 5322 message, written durably to an
//! outbox directory as `<unix-millis>-<random>.eml` (which any mail client opens, and
//! which tests read). When SMTP is configured, the message is also handed to the
//! relay before the call returns; the outbox then holds what was sent.
//!
//! SMTP is plain text only: the workspace builds lettre without a TLS feature, so the
//! relay must be trusted and near (loopback or a private network), and `starttls`
//! is refused at start-up rather than silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message as Email};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use crate::db::unix_millis;

/// Longest subject, in characters (from the WIT).
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Largest body, in bytes (a host limit: notifications are short texts).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Notification settings (`[notifications]` in the host's config).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Where `.eml` files are written. Default `outbox`.
    pub outbox_dir: PathBuf,
    /// The `From` mailbox. Default `Frame.io connector <noreply@dam.localhost>`.
    pub from: String,
    /// An SMTP relay to send through as well; default none (outbox only).
    pub smtp: Option<SmtpConfig>,
    /// DAM user ids and their email addresses; `dam-user` recipients not listed here
    /// are refused. Default empty.
    pub users: BTreeMap<String, String>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            outbox_dir: PathBuf::from("outbox"),
            from: "Frame.io connector <noreply@dam.localhost>".into(),
            smtp: None,
            users: BTreeMap::new(),
        }
    }
}

/// An SMTP relay, reached without TLS (see the module documentation).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name or address of the relay.
    pub host: String,
    /// Port of the relay. Default 25.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Must stay `false`: this build has no TLS for SMTP. Default `false`.
    #[serde(default)]
    pub starttls: bool,
    /// User name for SMTP AUTH, with `password`; sent in clear text.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for SMTP AUTH, with `username`.
    #[serde(default)]
    pub password: Option<String>,
}

fn default_smtp_port() -> u16 {
    25
}

impl fmt::Debug for SmtpConfig {
    /// Like the derived form, with the password masked: configs end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("starttls", &self.starttls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Who receives a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// A DAM user, by id; their address comes from the config's `users`.
    DamUser(String),
    /// An email address (`name@host`).
    Email(String),
}

/// A message to send.
#[derive(Clone, Debug)]
pub struct Message {
    /// Who receives it.
    pub to: Recipient,
    /// One line, at most 200 characters.
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// A link appended to the body, if any (absolute `http`/`https` URL).
    pub link: Option<String>,
}

/// A message the host accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Its `Message-ID`, with the angle brackets.
    pub message_id: String,
    /// The `.eml` file in the outbox.
    pub eml_path: PathBuf,
    /// Whether an SMTP relay accepted it too.
    pub sent_via_smtp: bool,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotifyError {
    /// The recipient is unknown or its address is malformed.
    #[error("unknown recipient: {0}")]
    UnknownRecipient(String),
    /// The subject, body or link was refused (the WIT's `invalid-message`); not
    /// worth retrying.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The outbox or the relay failed; safe to retry.
    #[error("notifications unavailable: {0}")]
    Unavailable(String),
}

/// Sends messages to the outbox and, if configured, through SMTP.
#[derive(Clone)]
pub struct Notifier {
    outbox_dir: PathBuf,
    from: Mailbox,
    users: BTreeMap<String, Address>,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Notifier {
    /// A notifier for `config`: creates the outbox and checks every address up front,
    /// so that a typo in the config stops the host rather than a later message.
    pub fn new(config: NotificationsConfig) -> anyhow::Result<Notifier> {
        std::fs::create_dir_all(&config.outbox_dir).with_context(|| format!("creating {}", config.outbox_dir.display()))?;
        let from: Mailbox =
            config.from.parse().with_context(|| format!("notifications.from {:?} is not a mailbox", config.from))?;
        let users = config
            .users
            .iter()
            .map(|(user, email)| {
                let address =
                    email.parse().with_context(|| format!("notifications.users.{user}: {email:?} is not an address"))?;
                Ok((user.clone(), address))
            })
            .collect::<anyhow::Result<_>>()?;
        let smtp = config.smtp.as_ref().map(smtp_transport).transpose()?;
        Ok(Notifier { outbox_dir: config.outbox_dir, from, users, smtp })
    }

    /// Accepts a message durably: it is in the outbox (and with the relay, if there
    /// is one) when this returns `Ok`.
    pub async fn send(&self, msg: Message) -> Result<Delivered, NotifyError> {
        let to = self.recipient(&msg.to)?;
        check_message(&msg)?;
        let stamp = format!("{}-{}", unix_millis(), hex::encode(rand::random::<[u8; 8]>()));
        let message_id = format!("<{stamp}@{}>", self.from.email.domain());
        let email = self.build(&msg, to, &message_id)?;
        let eml_path = self.outbox_dir.join(format!("{stamp}.eml"));
        write_durably(&eml_path, email.formatted())
            .await
            .map_err(|e| NotifyError::Unavailable(format!("writing the outbox: {e}")))?;
        if let Some(smtp) = &self.smtp
            && let Err(e) = smtp.send(email).await
        {
            // The outbox lists accepted messages only; the caller will retry.
            let _ = tokio::fs::remove_file(&eml_path).await;
            return Err(NotifyError::Unavailable(format!("the SMTP relay refused the message: {e}")));
        }
        Ok(Delivered { message_id, eml_path, sent_via_smtp: self.smtp.is_some() })
    }

    fn recipient(&self, to: &Recipient) -> Result<Mailbox, NotifyError> {
        let address = match to {
            Recipient::DamUser(user) => self
                .users
                .get(user)
                .cloned()
                .ok_or_else(|| NotifyError::UnknownRecipient(format!("DAM user {user:?} has no email address")))?,
            Recipient::Email(email) => {
                email.parse().map_err(|e| NotifyError::UnknownRecipient(format!("{email:?} is not an email address: {e}")))?
            }
        };
        Ok(Mailbox::new(None, address))
    }

    fn build(&self, msg: &Message, to: Mailbox, message_id: &str) -> Result<Email, NotifyError> {
        let text = match &msg.link {
            Some(link) => format!("{}\n\n{link}\n", msg.body.trim_end()),
            None => msg.body.clone(),
        };
        Email::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.as_str())
            .date_now()
            .message_id(Some(message_id.to_string()))
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| NotifyError::Invalid(format!("the message could not be built: {e}")))
    }
}

fn smtp_transport(config: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    anyhow::ensure!(!config.host.is_empty(), "notifications.smtp.host is empty");
    anyhow::ensure!(
        !config.starttls,
        "notifications.smtp.starttls: this build has no TLS for SMTP; use a trusted relay without TLS"
    );
    // Without TLS, `builder_dangerous` is the only builder: it speaks plain SMTP.
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
        .port(config.port)
        .timeout(Some(SMTP_TIMEOUT));
    match (&config.username, &config.password) {
        (Some(user), Some(password)) => builder = builder.credentials(Credentials::new(user.clone(), password.clone())),
        (None, None) => {}
        _ => anyhow::bail!("notifications.smtp: username and password go together"),
    }
    Ok(builder.build())
}

/// Refuses what would break the message or its headers: a subject with line breaks
/// could inject headers, and the WIT caps it at 200 characters.
fn check_message(msg: &Message) -> Result<(), NotifyError> {
    if msg.subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(NotifyError::Invalid(format!("the subject is longer than {MAX_SUBJECT_CHARS} characters")));
    }
    if msg.subject.chars().any(char::is_control) {
        return Err(NotifyError::Invalid("the subject must be one line without control characters".into()));
    }
    if msg.body.len() > MAX_BODY_BYTES {
        return Err(NotifyError::Invalid(format!("the body is larger than {MAX_BODY_BYTES} bytes")));
    }
    if let Some(link) = &msg.link {
        let url = url::Url::parse(link).map_err(|e| NotifyError::Invalid(format!("the link is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || link.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(NotifyError::Invalid("the link must be one absolute http or https URL".into()));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` so that a reader sees the whole file or none: a `.tmp`
/// sibling is written and fsynced, renamed into place, and the directory fsynced.
async fn write_durably(path: &Path, bytes: Vec<u8>) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let dir = path.parent().ok_or_else(|| std::io::Error::other("the outbox path has no directory"))?;
        let tmp = path.with_extension("tmp");
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    use super::*;

    fn config(dir: &Path) -> NotificationsConfig {
        NotificationsConfig {
            outbox_dir: dir.join("outbox"),
            users: BTreeMap::from([("dana".to_string(), "dana@dam.test".to_string())]),
            ..NotificationsConfig::default()
        }
    }

    fn message(to: Recipient) -> Message {
        Message {
            to,
            subject: "Spot.mov was imported".into(),
            body: "Version 2 is in Marketing.".into(),
            link: Some("http://dam.test/documents/doc-1".into()),
        }
    }

    /// The headers (unfolded, names lowercased) and the body of an RFC 5322 message.
    fn parse_eml(raw: &str) -> (BTreeMap<String, String>, String) {
        let (head, body) = raw.split_once("\r\n\r\n").expect("a blank line ends the headers");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        let headers = unfolded
            .split("\r\n")
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header line has a colon");
                (name.to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        (headers, body.to_string())
    }

    #[tokio::test]
    async fn writes_a_complete_rfc5322_message_to_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::new(config(dir.path())).unwrap();
        let delivered = notifier.send(message(Recipient::DamUser("dana".into()))).await.unwrap();
        assert!(!delivered.sent_via_smtp);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files, vec![delivered.eml_path.clone()], "one .eml and no temporary file");

        let raw = std::fs::read_to_string(&delivered.eml_path).unwrap();
        let (headers, body) = parse_eml(&raw);
        assert_eq!(headers["from"], "\"Frame.io connector\" <noreply@dam.localhost>");
        assert_eq!(headers["to"], "dana@dam.test");
        assert_eq!(headers["subject"], "Spot.mov was imported");
        assert_eq!(headers["message-id"], delivered.message_id);
        assert!(delivered.message_id.ends_with("@dam.localhost>"));
        assert!(headers.contains_key("date"));
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(body.replace("\r\n", "\n"), "Version 2 is in Marketing.\n\nhttp://dam.test/documents/doc-1\n");
    }

    #[tokio::test]
    async fn email_recipients_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::new(config(dir.path())).unwrap();
        let ok = notifier.send(message(Recipient::Email("guest@example.test".into()))).await.unwrap();
        let (headers, _) = parse_eml(&std::fs::read_to_string(ok.eml_path).unwrap());
        assert_eq!(headers["to"], "guest@example.test");
        for bad in ["not-an-address", "a@b\r\nBcc: victim@x.test", "", "Name <a@b.test>"] {
            let result = notifier.send(message(Recipient::Email(bad.into()))).await;
            assert!(matches!(result, Err(NotifyError::UnknownRecipient(_))), "{bad:?}: {result:?}");
        }
    }

    #[tokio::test]
    async fn unknown_dam_users_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::new(config(dir.path())).unwrap();
        let result = notifier.send(message(Recipient::DamUser("mallory".into()))).await;
        assert!(matches!(result, Err(NotifyError::UnknownRecipient(who)) if who.contains("mallory")));
        assert_eq!(std::fs::read_dir(dir.path().join("outbox")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn header_injection_and_oversized_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::new(config(dir.path())).unwrap();
        let to = || Recipient::DamUser("dana".into());
        let bad = [
            Message { subject: "Hi\r\nBcc: everyone@x.test".into(), ..message(to()) },
            Message { subject: "Hi\nX-Evil: 1".into(), ..message(to()) },
            Message { subject: "é".repeat(201), ..message(to()) },
            Message { body: "x".repeat(MAX_BODY_BYTES + 1), ..message(to()) },
            Message { link: Some("javascript:alert(1)".into()), ..message(to()) },
            Message { link: Some("http://a.test/\r\nX: y".into()), ..message(to()) },
        ];
        for msg in bad {
            let shown = format!("{:?}", (&msg.subject.get(..20), &msg.link));
            assert!(matches!(notifier.send(msg).await, Err(NotifyError::Invalid(_))), "{shown}");
        }
        assert_eq!(std::fs::read_dir(dir.path().join("outbox")).unwrap().count(), 0);
        let longest = Message { subject: "é".repeat(200), link: None, ..message(to()) };
        assert!(notifier.send(longest).await.is_ok(), "200 characters are allowed");
    }

    #[test]
    fn config_is_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let with = |f: &dyn Fn(&mut NotificationsConfig)| {
            let mut c = config(dir.path());
            f(&mut c);
            Notifier::new(c)
        };
        assert!(with(&|c| c.from = "nobody".into()).is_err());
        assert!(with(&|c| c.users.insert("x".into(), "broken".into()).map(drop).unwrap_or(())).is_err());
        let smtp = |starttls, username: Option<&str>, password: Option<&str>| SmtpConfig {
            host: "127.0.0.1".into(),
            port: 2525,
            starttls,
            username: username.map(String::from),
            password: password.map(String::from),
        };
        assert!(with(&|c| c.smtp = Some(smtp(true, None, None))).is_err());
        assert!(with(&|c| c.smtp = Some(smtp(false, Some("u"), None))).is_err());
        assert!(with(&|c| c.smtp = Some(smtp(false, Some("u"), Some("p")))).is_ok());
        let shown = format!("{:?}", smtp(false, Some("u"), Some("secret")));
        assert!(!shown.contains("secret"), "{shown}");

        let parsed: NotificationsConfig = toml::from_str("[smtp]\nhost = \"localhost\"").unwrap();
        assert_eq!(parsed.smtp.map(|s| (s.port, s.starttls)), Some((25, false)));
        assert_eq!(parsed.from, "Frame.io connector <noreply@dam.localhost>");
    }

    /// What the fake relay saw.
    struct Received {
        mail_from: String,
        rcpt_to: String,
        data: String,
    }

    /// A one-connection SMTP server that accepts one message.
    async fn fake_relay() -> (u16, oneshot::Receiver<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 relay.test ESMTP\r\n").await.unwrap();
            let mut received = Received { mail_from: String::new(), rcpt_to: String::new(), data: String::new() };
            while let Some(line) = lines.next_line().await.unwrap() {
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250 relay.test\r\n",
                    "MAIL" => {
                        received.mail_from = line;
                        b"250 OK\r\n"
                    }
                    "RCPT" => {
                        received.rcpt_to = line;
                        b"250 OK\r\n"
                    }
                    "DATA" => {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        while let Some(data) = lines.next_line().await.unwrap() {
                            if data == "." {
                                break;
                            }
                            received.data.push_str(&data);
                            received.data.push('\n');
                        }
                        b"250 queued\r\n"
                    }
                    "QUIT" => {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    }
                    _ => b"502 unknown\r\n",
                };
                write.write_all(reply).await.unwrap();
            }
            let _ = tx.send(received);
        });
        (port, rx)
    }

    #[tokio::test]
    async fn sends_through_smtp_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        let (port, received) = fake_relay().await;
        let smtp = SmtpConfig { host: "127.0.0.1".into(), port, starttls: false, username: None, password: None };
        let notifier = Notifier::new(NotificationsConfig { smtp: Some(smtp), ..config(dir.path()) }).unwrap();
        let delivered = notifier.send(message(Recipient::DamUser("dana".into()))).await.unwrap();
        assert!(delivered.sent_via_smtp);
        assert!(delivered.eml_path.exists());
        // Without lettre's pool, the transport closes the connection after each
        // message, which ends the relay's loop and hands over what it saw.
        let got = tokio::time::timeout(Duration::from_secs(10), received).await.unwrap().unwrap();
        assert_eq!(got.mail_from, "MAIL FROM:<noreply@dam.localhost>");
        assert_eq!(got.rcpt_to, "RCPT TO:<dana@dam.test>");
        assert!(got.data.contains("Subject: Spot.mov was imported\n"), "{}", got.data);
        assert!(got.data.contains(&format!("Message-ID: {}\n", delivered.message_id)), "{}", got.data);
        assert!(got.data.contains("http://dam.test/documents/doc-1"));
    }

    #[tokio::test]
    async fn relay_failure_is_unavailable_and_leaves_no_eml() {
        let dir = tempfile::tempdir().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let smtp = SmtpConfig { host: "127.0.0.1".into(), port, starttls: false, username: None, password: None };
        let notifier = Notifier::new(NotificationsConfig { smtp: Some(smtp), ..config(dir.path()) }).unwrap();
        let result = notifier.send(message(Recipient::DamUser("dana".into()))).await;
        assert!(matches!(result, Err(NotifyError::Unavailable(_))), "{result:?}");
        assert_eq!(std::fs::read_dir(dir.path().join("outbox")).unwrap().count(), 0);
    }
}
