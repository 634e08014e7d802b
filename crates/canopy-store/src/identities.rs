//! Accounts signed in through an OpenID Connect provider (ID1): the
//! (issuer, subject) each is known by, and the sign-ins sent to the provider
//! and not yet back.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::{USER_WITH_ROLES, user_with_roles};
use crate::{Result, RowExt, Tx, UserRecord, from_us, to_us};

/// A sign-in sent to the provider, as its callback takes it back.
#[derive(Debug, Clone)]
pub struct PendingOidcLogin {
    pub pkce_verifier: String,
    pub nonce: String,
    pub next_path: String,
    pub expires_at: OffsetDateTime,
}

impl Tx {
    /// The account the provider `issuer` names `subject`, if any.
    pub async fn user_by_identity(&mut self, issuer: &str, subject: &str) -> Result<Option<UserRecord>> {
        let sql = format!(
            "{USER_WITH_ROLES} WHERE u.id = (SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2)"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(issuer).bind(subject).fetch_all(self.conn()).await?;
        user_with_roles(&rows)
    }

    /// Remember that the provider `issuer` names the account `user_id` `subject`.
    pub async fn insert_identity(
        &mut self,
        issuer: &str,
        subject: &str,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("INSERT INTO user_identities (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(issuer)
            .bind(subject)
            .bind(user_id.to_string())
            .bind(to_us(now))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Keep a sign-in sent to the provider under the hash of its `state`,
    /// and forget those whose time is up.
    pub async fn insert_oidc_login(
        &mut self,
        state_hash: &str,
        login: &PendingOidcLogin,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("DELETE FROM oidc_logins WHERE expires_at <= $1").bind(to_us(now)).execute(self.conn()).await?;
        sqlx::query(
            "INSERT INTO oidc_logins (state_hash, pkce_verifier, nonce, next_path, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(state_hash)
        .bind(&login.pkce_verifier)
        .bind(&login.nonce)
        .bind(&login.next_path)
        .bind(to_us(login.expires_at))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Take the sign-in kept under `state_hash`: it is deleted, so that a
    /// second callback with the same `state` finds nothing.
    pub async fn take_oidc_login(&mut self, state_hash: &str) -> Result<Option<PendingOidcLogin>> {
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state_hash = $1 \
             RETURNING pkce_verifier, nonce, next_path, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            Ok(PendingOidcLogin {
                pkce_verifier: r.text("pkce_verifier")?,
                nonce: r.text("nonce")?,
                next_path: r.text("next_path")?,
                expires_at: from_us(r.int("expires_at")?)?,
            })
        })
        .transpose()
    }
}
