//! The outbox of e-mails to send.

use crate::db::Row;
use canopy_domain::mail::Mail;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, RowExt, Store, Tx, new_id, to_us};

/// An e-mail claimed for sending.
#[derive(Debug, Clone)]
pub struct MailRecord {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

fn mail_from_row(r: &Row) -> Result<MailRecord> {
    Ok(MailRecord {
        id: r.uuid("id")?,
        recipient: r.text("recipient")?,
        subject: r.text("subject")?,
        body: r.text("body")?,
        attempts: r.int("attempts")?,
    })
}

impl Tx {
    /// Queue an e-mail in this transaction: it is sent only if the change that causes it commits.
    /// Tell everyone a binding's change affects (its user, or each member
    /// of its group; active accounts only) by e-mail (AC11).
    pub async fn notify_access(
        &mut self,
        subject: canopy_domain::Subject,
        notice: &canopy_domain::mail::AccessNotice<'_>,
        now: OffsetDateTime,
    ) -> Result<()> {
        // this runs inside every binding's write: a user's mail is queued by
        // the statement that reads the address (checked when it was entered;
        // the sender refuses one it cannot parse, and retries it later)
        let (title, body) = canopy_domain::mail::access_changed(notice);
        if subject.kind == canopy_domain::SubjectKind::User {
            crate::db::query(
                "INSERT INTO outbox_mails (id, recipient, subject, body, created_at, attempts, next_attempt_at) \
                 SELECT $1, email, $2, $3, $4, 0, $4 FROM users WHERE id = $5 AND active = 1",
            )
            .bind(new_id())
            .bind(&title)
            .bind(&body)
            .bind(to_us(now))
            .bind(subject.id.to_string())
            .execute(self.conn())
            .await?;
            return Ok(());
        }
        let rows = crate::db::query(
            "SELECT u.email FROM group_members m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id = $1 AND u.active = 1 ORDER BY u.username",
        )
        .bind(subject.id.to_string())
        .fetch_all(self.conn())
        .await?;
        for row in &rows {
            // an address the domain cannot parse is not mailed (it was checked on entry)
            if let Ok(to) = canopy_domain::Email::parse(row.str("email")?) {
                let mail = Mail { to, subject: title.clone(), body: body.clone() };
                self.enqueue_mail(&mail, now).await?;
            }
        }
        Ok(())
    }

    pub async fn enqueue_mail(&mut self, mail: &Mail, now: OffsetDateTime) -> Result<()> {
        crate::db::query(
            "INSERT INTO outbox_mails (id, recipient, subject, body, created_at, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $5)",
        )
        .bind(new_id())
        .bind(mail.to.as_str())
        .bind(&mail.subject)
        .bind(&mail.body)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

impl Store {
    /// Claim the next unsent e-mail due at `now`, leasing it until `lease_until`.
    /// The conditional update makes the claim atomic on both backends.
    pub async fn claim_mail(&self, now: OffsetDateTime, lease_until: OffsetDateTime) -> Result<Option<MailRecord>> {
        loop {
            let mut tx = self.write().await?;
            let Some(candidate) = crate::db::query(
                "SELECT id FROM outbox_mails WHERE sent_at IS NULL AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at, id LIMIT 1",
            )
            .bind(to_us(now))
            .fetch_optional(tx.conn())
            .await?
            else {
                return Ok(None);
            };
            let id = candidate.text("id")?;
            let claimed = crate::db::query(
                "UPDATE outbox_mails SET next_attempt_at = $3, attempts = attempts + 1 \
                 WHERE id = $1 AND sent_at IS NULL AND next_attempt_at <= $2 \
                 RETURNING id, recipient, subject, body, attempts",
            )
            .bind(&id)
            .bind(to_us(now))
            .bind(to_us(lease_until))
            .fetch_optional(tx.conn())
            .await?;
            tx.commit().await?;
            if let Some(row) = claimed {
                return mail_from_row(&row).map(Some);
            }
            // another sender claimed it between our read and our update: look again
        }
    }

    pub async fn mail_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<()> {
        let mut tx = self.write().await?;
        crate::db::query("UPDATE outbox_mails SET sent_at = $2, last_error = NULL WHERE id = $1")
            .bind(id.to_string())
            .bind(to_us(now))
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    pub async fn mail_failed(&self, id: Uuid, error: &str, retry_at: OffsetDateTime) -> Result<()> {
        let mut tx = self.write().await?;
        crate::db::query("UPDATE outbox_mails SET next_attempt_at = $2, last_error = $3 WHERE id = $1")
            .bind(id.to_string())
            .bind(to_us(retry_at))
            .bind(error)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Unsent e-mails with their last error, oldest first (for operators and tests).
    pub async fn pending_mails(&self) -> Result<Vec<(MailRecord, Option<String>)>> {
        let mut tx = self.read().await?;
        let rows = crate::db::query(
            "SELECT id, recipient, subject, body, attempts, last_error FROM outbox_mails \
             WHERE sent_at IS NULL ORDER BY created_at, id",
        )
        .fetch_all(tx.conn())
        .await?;
        rows.iter().map(|r| Ok((mail_from_row(r)?, r.text_opt("last_error")?))).collect()
    }
}
