//! Sign-in throttling counters and the addresses accounts signed in from
//! (the rules: `canopy_domain::signin`).

use canopy_domain::signin::{Counter, KNOWN_ADDRESS_FOR};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, RowExt, Tx, to_us};

/// At most this many addresses are remembered per account (the most recent).
const ADDRESSES_KEPT: i64 = 20;

impl Tx {
    /// The counter under `key`, locked until the transaction ends (created
    /// empty when missing), so that parallel attempts are counted one after
    /// the other.
    pub async fn lock_sign_in_counter(&mut self, key: &str, now: OffsetDateTime) -> Result<Counter> {
        let row = crate::db::query(
            "INSERT INTO sign_in_counters (key, failures, locked_until, last_at) VALUES ($1, 0, NULL, $2) \
             ON CONFLICT (key) DO UPDATE SET key = excluded.key \
             RETURNING failures, locked_until, last_at",
        )
        .bind(key)
        .bind(to_us(now))
        .fetch_one(self.conn())
        .await?;
        let failures = row.int("failures")?;
        // a row just made holds no attempt yet
        let last_at = if failures == 0 { None } else { Some(row.time("last_at")?) };
        Ok(Counter { failures, locked_until: row.time_opt("locked_until")?, last_at })
    }

    /// The counter under `key` as it stands (empty when missing), without
    /// writing or locking anything.
    pub async fn sign_in_counter(&mut self, key: &str) -> Result<Counter> {
        let row = crate::db::query("SELECT failures, locked_until, last_at FROM sign_in_counters WHERE key = $1")
            .bind(key)
            .fetch_optional(self.conn())
            .await?;
        let Some(row) = row else { return Ok(Counter::default()) };
        let failures = row.int("failures")?;
        let last_at = if failures == 0 { None } else { Some(row.time("last_at")?) };
        Ok(Counter { failures, locked_until: row.time_opt("locked_until")?, last_at })
    }

    pub async fn save_sign_in_counter(&mut self, key: &str, c: &Counter, now: OffsetDateTime) -> Result<()> {
        crate::db::query("UPDATE sign_in_counters SET failures = $2, locked_until = $3, last_at = $4 WHERE key = $1")
            .bind(key)
            .bind(c.failures)
            .bind(c.locked_until.map(to_us))
            .bind(to_us(c.last_at.unwrap_or(now)))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Forget counters whose last attempt is before `before` and that lock
    /// nothing at `now`: the table holds at most an hour of attempts.
    pub async fn forget_sign_in_counters(&mut self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64> {
        let r = crate::db::query(
            "DELETE FROM sign_in_counters WHERE last_at < $1 AND (locked_until IS NULL OR locked_until <= $2)",
        )
        .bind(to_us(before))
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected())
    }

    /// Whether `user` signed in from `address` within the last
    /// [`KNOWN_ADDRESS_FOR`] before `now`.
    pub async fn is_known_address(&mut self, user: Uuid, address: &str, now: OffsetDateTime) -> Result<bool> {
        let row = crate::db::query(
            "SELECT 1 AS one FROM sign_in_addresses WHERE user_id = $1 AND address = $2 AND last_at > $3",
        )
        .bind(user.to_string())
        .bind(address)
        .bind(to_us(now - KNOWN_ADDRESS_FOR))
        .fetch_optional(self.conn())
        .await?;
        Ok(row.is_some())
    }

    /// Remember that `user` signed in from `address` at `now`, keeping the
    /// most recent `ADDRESSES_KEPT` (20).
    pub async fn remember_address(&mut self, user: Uuid, address: &str, now: OffsetDateTime) -> Result<()> {
        crate::db::query(
            "INSERT INTO sign_in_addresses (user_id, address, last_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, address) DO UPDATE SET last_at = excluded.last_at",
        )
        .bind(user.to_string())
        .bind(address)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        crate::db::query(
            "DELETE FROM sign_in_addresses WHERE user_id = $1 AND address NOT IN \
             (SELECT address FROM sign_in_addresses WHERE user_id = $1 ORDER BY last_at DESC LIMIT CAST($2 AS BIGINT))",
        )
        .bind(user.to_string())
        .bind(ADDRESSES_KEPT)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
