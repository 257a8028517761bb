//! The outbox sender: a background task that delivers queued mail over SMTP (lettre), with
//! retries and exponential backoff. RPCs only queue mail in their own transaction; none waits
//! on SMTP. Without `mail.smtp_url` mail stays in the outbox (`hearth mail list`).
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;

use crate::domain::model::Mail;
use crate::domain::outbox::Outbox;
use crate::domain::state::jobs::Job;
use crate::domain::state::StoreError;
use crate::domain::Services;

/// Longest wait between attempts at one mail.
const MAX_BACKOFF_MS: u64 = 3600 * 1000;
/// Time allowed for one SMTP conversation.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds the SMTP transport from `[mail]`: `smtps://` is TLS from the start, `smtp://`
/// upgrades with STARTTLS when the server offers it; credentials come from the URL or from
/// `smtp_username`/`smtp_password`.
pub fn transport(mail: &crate::config::Mail) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let url = mail.smtp_url.as_deref().unwrap_or_default();
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| format!("config key `mail.smtp_url`: {e}"))?;
    let builder = if url.starts_with("smtp://") && !url.contains("tls=") {
        let host = url
            .trim_start_matches("smtp://")
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .split([':', '/', '?'])
            .next()
            .unwrap_or_default()
            .to_owned();
        let params =
            TlsParameters::new(host).map_err(|e| format!("config key `mail.smtp_url`: {e}"))?;
        builder.tls(Tls::Opportunistic(params))
    } else {
        builder
    };
    let builder = match (&mail.smtp_username, &mail.smtp_password) {
        (Some(user), Some(password)) => {
            builder.credentials(Credentials::new(user.clone(), password.clone()))
        }
        _ => builder,
    };
    Ok(builder.timeout(Some(SMTP_TIMEOUT)).build())
}

/// Delay before the next attempt after `attempts` failures.
pub fn backoff_ms(attempts: u32) -> u64 {
    (5_000u64 << attempts.min(20)).min(MAX_BACKOFF_MS)
}

fn message(from: &Mailbox, m: &Mail) -> Result<Message, String> {
    let to: Mailbox = m.recipient.parse().map_err(|e| format!("recipient: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(m.subject.clone())
        .body(m.body.clone())
        .map_err(|e| e.to_string())
}

/// Starts the sender; it stops when `stop` changes.
pub fn spawn(
    services: Arc<Services>,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    services.config().mail.smtp_url.as_ref()?;
    let transport = match transport(&services.config().mail) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("{e}; mail stays in the outbox");
            return None;
        }
    };
    let from: Mailbox = match services.config().mail.from.parse() {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("config key `mail.from`: {e}; mail stays in the outbox");
            return None;
        }
    };
    let outbox = services.outbox.clone();
    let jobs = services.state().jobs.clone();
    let wakeup = outbox.wakeup();
    Some(tokio::spawn(async move {
        loop {
            if jobs.hold(Job::MailSender).await {
                if let Err(e) = send_due(&outbox, &transport, &from).await {
                    tracing::warn!(error = %e, "mail outbox");
                }
            }
            tokio::select! {
                () = wakeup.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    }))
}

async fn send_due(
    outbox: &Outbox,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
) -> Result<(), StoreError> {
    let due = outbox.due(20).await?;
    for mail in due {
        let result = match message(from, &mail) {
            Ok(msg) => transport
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let id = mail.id;
        match result {
            Ok(()) => {
                tracing::info!(id, "mail sent");
                outbox.sent(id).await?;
            }
            Err(error) => {
                let next = outbox.now() + backoff_ms(mail.attempts);
                tracing::warn!(id, attempts = mail.attempts + 1, %error, "mail delivery failed; will retry");
                outbox.failed(id, error, next).await?;
            }
        }
    }
    Ok(())
}
