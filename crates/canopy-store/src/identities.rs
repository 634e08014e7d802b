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
    /// Started by `canopy login --sso`: the loopback port the CLI listens
    /// on and the PKCE challenge (S256) of the CLI's verifier.
    pub cli: Option<(u16, String)>,
}

/// A one-time code handed to the CLI, as it is redeemed.
#[derive(Debug, Clone)]
pub struct CliGrant {
    pub user_id: Uuid,
    pub challenge: String,
    pub expires_at: OffsetDateTime,
}

impl Tx {
    /// The account the provider `issuer` names `subject`, if any.
    pub async fn user_by_identity(&mut self, issuer: &str, subject: &str) -> Result<Option<UserRecord>> {
        let sql = format!(
            "{USER_WITH_ROLES} WHERE u.id = (SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2)"
        );
        let rows = crate::db::query(sql).bind(issuer).bind(subject).fetch_all(self.conn()).await?;
        user_with_roles(&rows)
    }

    /// The identity providers an account signs in through (their issuers).
    pub async fn identity_issuers(&mut self, user_id: Uuid) -> Result<Vec<String>> {
        let rows = crate::db::query("SELECT issuer FROM user_identities WHERE user_id = $1 ORDER BY issuer")
            .bind(user_id.to_string())
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(|r| r.text("issuer")).collect()
    }

    /// Remember that the provider `issuer` names the account `user_id` `subject`.
    pub async fn insert_identity(
        &mut self,
        issuer: &str,
        subject: &str,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<()> {
        crate::db::query("INSERT INTO user_identities (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4)")
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
        crate::db::query("DELETE FROM oidc_logins WHERE expires_at <= $1")
            .bind(to_us(now))
            .execute(self.conn())
            .await?;
        crate::db::query(
            "INSERT INTO oidc_logins (state_hash, pkce_verifier, nonce, next_path, expires_at, cli_port, cli_challenge) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(state_hash)
        .bind(&login.pkce_verifier)
        .bind(&login.nonce)
        .bind(&login.next_path)
        .bind(to_us(login.expires_at))
        .bind(login.cli.as_ref().map(|(port, _)| i64::from(*port)))
        .bind(login.cli.as_ref().map(|(_, challenge)| challenge.clone()))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// How many sign-ins sent to the provider wait for it at `now`.
    pub async fn count_oidc_logins(&mut self, now: OffsetDateTime) -> Result<i64> {
        let row = crate::db::query("SELECT COUNT(*) AS n FROM oidc_logins WHERE expires_at > $1")
            .bind(to_us(now))
            .fetch_one(self.conn())
            .await?;
        row.int("n")
    }

    /// Take the sign-in kept under `state_hash`: it is deleted, so that a
    /// second callback with the same `state` finds nothing.
    pub async fn take_oidc_login(&mut self, state_hash: &str) -> Result<Option<PendingOidcLogin>> {
        let row = crate::db::query(
            "DELETE FROM oidc_logins WHERE state_hash = $1 \
             RETURNING pkce_verifier, nonce, next_path, expires_at, cli_port, cli_challenge",
        )
        .bind(state_hash)
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            let cli = match (r.int_opt("cli_port")?, r.text_opt("cli_challenge")?) {
                (Some(port), Some(challenge)) => Some((
                    u16::try_from(port).map_err(|_| crate::StoreError::Corrupt(format!("cli_port {port}")))?,
                    challenge,
                )),
                _ => None,
            };
            Ok(PendingOidcLogin {
                pkce_verifier: r.text("pkce_verifier")?,
                nonce: r.text("nonce")?,
                next_path: r.text("next_path")?,
                expires_at: from_us(r.int("expires_at")?)?,
                cli,
            })
        })
        .transpose()
    }

    /// Keep a one-time code for the CLI under its hash, and forget those
    /// whose time is up.
    pub async fn insert_cli_grant(&mut self, code_hash: &str, grant: &CliGrant, now: OffsetDateTime) -> Result<()> {
        crate::db::query("DELETE FROM cli_grants WHERE expires_at <= $1").bind(to_us(now)).execute(self.conn()).await?;
        crate::db::query("INSERT INTO cli_grants (code_hash, user_id, challenge, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(code_hash)
            .bind(grant.user_id.to_string())
            .bind(&grant.challenge)
            .bind(to_us(grant.expires_at))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Whether a code is kept under `code_hash`.
    pub async fn cli_grant_exists(&mut self, code_hash: &str) -> Result<bool> {
        let row = crate::db::query("SELECT 1 AS found FROM cli_grants WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.is_some())
    }

    /// Take the code kept under `code_hash`: deleted, so it is redeemed once.
    pub async fn take_cli_grant(&mut self, code_hash: &str) -> Result<Option<CliGrant>> {
        let row =
            crate::db::query("DELETE FROM cli_grants WHERE code_hash = $1 RETURNING user_id, challenge, expires_at")
                .bind(code_hash)
                .fetch_optional(self.conn())
                .await?;
        row.map(|r| {
            Ok(CliGrant {
                user_id: r.uuid("user_id")?,
                challenge: r.text("challenge")?,
                expires_at: from_us(r.int("expires_at")?)?,
            })
        })
        .transpose()
    }
}
