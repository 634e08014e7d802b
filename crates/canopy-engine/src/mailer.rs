//! Sending the e-mails of the outbox over SMTP.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use canopy_domain::clock::Clock;
use canopy_domain::mail::retry_delay;
use canopy_store::{MailRecord, Store, StoreError};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a claimed e-mail is reserved for one sender.
const LEASE: Duration = Duration::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    #[error("invalid sender address {0:?}: {1}")]
    From(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An SMTP connection and the sender address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `smtp://host:port` (plain, e.g. a local relay), `smtp://host:587?tls=required`
    /// (STARTTLS) or `smtps://host:465`, with optional `user:password@`.
    pub fn new(smtp_url: &str, from: &str) -> Result<Self, MailerError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| MailerError::Url(e.to_string()))?
            .timeout(Some(StdDuration::from_secs(20)))
            .build();
        let from = from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailerError::From(from.to_owned(), e.to_string()))?;
        Ok(Self { transport, from })
    }

    async fn send(&self, mail: &MailRecord) -> Result<(), String> {
        let to: Mailbox = mail.recipient.parse().map_err(|e| format!("recipient {:?}: {e}", mail.recipient))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .body(mail.body.clone())
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// What one delivery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u64,
    pub failed: u64,
}

/// Send every e-mail that is due now, once. A failed one is retried later
/// with a growing delay ([`retry_delay`]) and keeps its last error.
pub async fn deliver_due(store: &Store, mailer: &Mailer, clock: &dyn Clock) -> Result<Delivery, MailerError> {
    deliver(store, mailer, clock, &CancellationToken::new()).await
}

/// [`deliver_due`], taking no further mail once `stop` is cancelled: the
/// mail being sent then finishes (or, cut, is sent again when its lease
/// runs out: at least once).
async fn deliver(
    store: &Store,
    mailer: &Mailer,
    clock: &dyn Clock,
    stop: &CancellationToken,
) -> Result<Delivery, MailerError> {
    let mut delivery = Delivery::default();
    // mails that fall due while this pass runs wait for the next pass; each
    // claim's lease starts when it is taken
    let started = clock.now();
    while !stop.is_cancelled()
        && let Some(mail) = store.claim_mail(started, clock.now() + LEASE).await?
    {
        match mailer.send(&mail).await {
            Ok(()) => {
                store.mail_sent(mail.id, clock.now()).await?;
                delivery.sent += 1;
            }
            Err(error) => {
                tracing::warn!(to = %mail.recipient, attempts = mail.attempts, %error, "could not send an e-mail; will retry");
                store.mail_failed(mail.id, &error, clock.now() + retry_delay(mail.attempts)).await?;
                delivery.failed += 1;
            }
        }
    }
    Ok(delivery)
}

/// Deliver due e-mails every `interval` until `stop` is cancelled; then
/// stop between two mails.
pub async fn run(store: Store, mailer: Mailer, clock: Arc<dyn Clock>, interval: StdDuration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match deliver(&store, &mailer, clock.as_ref(), &stop).await {
            Ok(d) if d.sent + d.failed > 0 => tracing::info!(sent = d.sent, failed = d.failed, "e-mail delivery"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "e-mail delivery pass failed"),
        }
    }
    tracing::info!("e-mail delivery stopped");
}
