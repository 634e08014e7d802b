//! Users, installation roles, sessions, API keys and groups.

use std::collections::BTreeSet;

use crate::db::Row;
use canopy_domain::InstallationRole;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{PRIORITY_NORMAL, PRIORITY_URGENT, Reach, Result, RowExt, Tx, new_id, page_limit, to_us};

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: Option<String>,
    pub active: bool,
    pub created_at: OffsetDateTime,
    pub installation_roles: BTreeSet<InstallationRole>,
}

/// How a person is shown: first and last name, either of which may be empty.
pub fn person_display_name(first: &str, last: &str) -> String {
    format!("{first} {last}").trim().to_owned()
}

impl UserRecord {
    pub fn display_name(&self) -> String {
        person_display_name(&self.first_name, &self.last_name)
    }
}

/// A new local account.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub installation_roles: &'a BTreeSet<InstallationRole>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub password_hash: Option<String>,
    pub active: Option<bool>,
    pub installation_roles: Option<BTreeSet<InstallationRole>>,
}

const USER_COLS: &str = "id, username, email, first_name, last_name, password_hash, active, created_at";

/// A user with their installation roles, in one statement: the user's
/// columns on every row, one row per role (one with a NULL role without any).
/// The columns of a user with their installation roles (one row per role).
macro_rules! user_columns {
    () => {
        "SELECT u.id, u.username, u.email, u.first_name, u.last_name, u.password_hash, \
         u.active, u.created_at, r.role AS installation_role"
    };
}
/// Where [`user_columns`] reads from.
macro_rules! users_with_roles {
    () => {
        "users u LEFT JOIN user_installation_roles r ON r.user_id = u.id"
    };
}
pub(crate) const USER_WITH_ROLES: &str = concat!(user_columns!(), " FROM ", users_with_roles!());

/// The user of rows read with [`USER_WITH_ROLES`], `None` without rows.
pub(crate) fn user_with_roles(rows: &[Row]) -> Result<Option<UserRecord>> {
    let Some(first) = rows.first() else { return Ok(None) };
    let mut user = user_from_row(first)?;
    for r in rows {
        if let Some(role) = r.text_opt("installation_role")? {
            user.installation_roles
                .insert(role.parse().map_err(|_| crate::StoreError::Corrupt(format!("installation role {role:?}")))?);
        }
    }
    Ok(Some(user))
}

async fn user_by(conn: &mut crate::db::Conn, col: &'static str, value: &str) -> Result<Option<UserRecord>> {
    let sql = match col {
        "id" => concat!(user_columns!(), " FROM ", users_with_roles!(), " WHERE u.id = $1"),
        "username" => concat!(user_columns!(), " FROM ", users_with_roles!(), " WHERE u.username = $1"),
        _ => concat!(user_columns!(), " FROM ", users_with_roles!(), " WHERE u.email = $1"),
    };
    let rows = crate::db::query(sql).bind(value).fetch_all(conn).await?;
    user_with_roles(&rows)
}

/// Credentials resolved outside any transaction, on a pooled connection: a
/// request authenticates in as few round trips to the database as possible.
impl crate::Store {
    /// The account a session token's hash signs in, while the session lasts
    /// (before its end and, for a session of the web UI, before it has been
    /// left unused too long), with when it would end unused: one statement.
    pub async fn session_account(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(UserRecord, Option<OffsetDateTime>)>> {
        const SQL: &str = concat!(
            user_columns!(),
            ", s.idle_until FROM ",
            users_with_roles!(),
            " JOIN sessions s ON s.user_id = u.id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND (s.idle_until IS NULL OR s.idle_until > $2)"
        );
        let rows = crate::db::query(SQL).bind(token_hash).bind(to_us(now)).fetch_all(self.pool()).await?;
        let idle_until = rows.first().map(|r| r.time_opt("idle_until")).transpose()?.flatten();
        Ok(user_with_roles(&rows)?.map(|u| (u, idle_until)))
    }

    /// Keep a session of the web UI alive until `idle_until` (it is in use).
    pub async fn touch_session(&self, token_hash: &str, idle_until: OffsetDateTime) -> Result<()> {
        let mut tx = self.write().await?;
        crate::db::query("UPDATE sessions SET idle_until = $2 WHERE token_hash = $1 AND idle_until IS NOT NULL")
            .bind(token_hash)
            .bind(to_us(idle_until))
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// The API key a token's hash names, while it lasts, with its creator's
    /// account (if it still exists) and, for a key scoped to a workspace, the
    /// creator's roles there: one statement each, outside any transaction.
    pub async fn api_key_account(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(ApiKeyRecord, Option<UserRecord>)>> {
        let mut conn = self.pool().acquire().await?;
        let Some(row) = crate::db::query(format!(
            "{KEY_SELECT} WHERE k.token_hash = $1 AND (k.expires_at IS NULL OR k.expires_at > $2)"
        ))
        .bind(token_hash)
        .bind(to_us(now))
        .fetch_optional(&mut conn)
        .await?
        else {
            return Ok(None);
        };
        let key = key_from_row(&row)?;
        let creator = match key.created_by_id {
            Some(id) => user_by(&mut conn, "id", &id.to_string()).await?,
            None => None,
        };
        Ok(Some((key, creator)))
    }
}

fn user_from_row(r: &Row) -> Result<UserRecord> {
    Ok(UserRecord {
        id: r.uuid("id")?,
        username: r.text("username")?,
        email: r.text("email")?,
        first_name: r.text("first_name")?,
        last_name: r.text("last_name")?,
        password_hash: r.text_opt("password_hash")?,
        active: r.flag("active")?,
        created_at: r.time("created_at")?,
        installation_roles: BTreeSet::new(),
    })
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub name: String,
    pub workspace_id: Option<Uuid>,
    pub workspace_identifier: Option<String>,
    pub role: String,
    pub created_by_id: Option<Uuid>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

/// A new API key; only the hash of its secret is stored.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub token_hash: &'a str,
    pub workspace_id: Option<Uuid>,
    pub role: &'a str,
    pub created_by_id: Option<Uuid>,
    pub created_by: &'a str,
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub id: Uuid,
    pub identifier: String,
    pub display_name: String,
    pub created_at: OffsetDateTime,
    pub member_count: i64,
    /// Provisioned by an identity provider through SCIM, which owns it:
    /// admins see it and do not change it.
    pub provisioned: bool,
}

const KEY_SELECT: &str = "SELECT k.id, k.name, k.workspace_id, w.identifier AS workspace_identifier, k.role, \
     k.created_by_id, k.created_by, k.created_at, k.expires_at \
     FROM api_keys k LEFT JOIN workspaces w ON w.id = k.workspace_id";

fn key_from_row(r: &Row) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.uuid("id")?,
        name: r.text("name")?,
        workspace_id: r.uuid_opt("workspace_id")?,
        workspace_identifier: r.text_opt("workspace_identifier")?,
        role: r.text("role")?,
        created_by_id: r.uuid_opt("created_by_id")?,
        created_by: r.text("created_by")?,
        created_at: r.time("created_at")?,
        expires_at: r.time_opt("expires_at")?,
    })
}

pub(crate) const GROUP_SELECT: &str = "SELECT g.id, g.identifier, g.display_name, g.created_at, \
     (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS member_count, \
     (SELECT COUNT(*) FROM scim_groups p WHERE p.group_id = g.id) AS provisioned FROM user_groups g";

pub(crate) fn group_from_row(r: &Row) -> Result<GroupRecord> {
    Ok(GroupRecord {
        id: r.uuid("id")?,
        identifier: r.text("identifier")?,
        display_name: r.text("display_name")?,
        created_at: r.time("created_at")?,
        member_count: r.int("member_count")?,
        provisioned: r.flag("provisioned")?,
    })
}

impl Tx {
    // ------------------------------------------------------------ users

    pub async fn count_users(&mut self) -> Result<i64> {
        let r = crate::db::query("SELECT COUNT(*) AS n FROM users").fetch_one(self.conn()).await?;
        r.int("n")
    }

    pub async fn insert_user(&mut self, u: NewUser<'_>, now: OffsetDateTime) -> Result<UserRecord> {
        let id = new_id();
        let written = crate::db::query(
            "INSERT INTO users (id, username, email, first_name, last_name, password_hash, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7)",
        )
        .bind(&id)
        .bind(u.username)
        .bind(u.email)
        .bind(u.first_name)
        .bind(u.last_name)
        .bind(u.password_hash)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_user");
        self.replace_installation_roles(&id, u.installation_roles).await?;
        self.user_by("id", &id).await?.ok_or(crate::StoreError::Conflict)
    }

    async fn replace_installation_roles(&mut self, user_id: &str, roles: &BTreeSet<InstallationRole>) -> Result<()> {
        let written = crate::db::query("DELETE FROM user_installation_roles WHERE user_id = $1")
            .bind(user_id)
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "replace_installation_roles");
        for role in roles {
            let written = crate::db::query("INSERT INTO user_installation_roles (user_id, role) VALUES ($1, $2)")
                .bind(user_id)
                .bind(role.as_str())
                .execute(self.conn())
                .await?;
            self.changed(written.rows_affected(), "replace_installation_roles");
        }
        Ok(())
    }

    async fn user_by(&mut self, col: &'static str, value: &str) -> Result<Option<UserRecord>> {
        user_by(self.conn(), col, value).await
    }

    pub async fn installation_roles(&mut self, user_id: Uuid) -> Result<BTreeSet<InstallationRole>> {
        let rows = crate::db::query("SELECT role FROM user_installation_roles WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(|r| r.parse::<InstallationRole>("role")).collect()
    }

    pub async fn user_by_id(&mut self, id: Uuid) -> Result<Option<UserRecord>> {
        self.user_by("id", &id.to_string()).await
    }

    pub async fn user_by_username(&mut self, username: &str) -> Result<Option<UserRecord>> {
        self.user_by("username", username).await
    }

    pub async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>> {
        self.user_by("email", email).await
    }

    /// Users whose username, e-mail, first or last name contains `q`
    /// (case-insensitive), ordered by username, after `cursor` (a username).
    pub async fn list_users(&mut self, q: Option<&str>, cursor: Option<&str>, limit: u32) -> Result<Vec<UserRecord>> {
        let pattern = q.map(like_pattern);
        let rows = crate::db::query(
            "SELECT id, username, email, first_name, last_name, password_hash, active, created_at \
             FROM users WHERE ($1 IS NULL OR LOWER(username) LIKE $1 ESCAPE '\\' OR LOWER(email) LIKE $1 ESCAPE '\\' \
             OR LOWER(first_name) LIKE $1 ESCAPE '\\' OR LOWER(last_name) LIKE $1 ESCAPE '\\') \
             AND username > $2 ORDER BY username LIMIT CAST($3 AS BIGINT)",
        )
        .bind(pattern)
        .bind(cursor.unwrap_or_default())
        .bind(page_limit(limit))
        .fetch_all(self.conn())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut u = user_from_row(r)?;
            u.installation_roles = self.installation_roles(u.id).await?;
            out.push(u);
        }
        Ok(out)
    }

    pub async fn update_user(&mut self, id: Uuid, c: &UserChanges, now: OffsetDateTime) -> Result<()> {
        let id_s = id.to_string();
        let written = crate::db::query(
            "UPDATE users SET email = COALESCE($2, email), first_name = COALESCE($3, first_name), \
             last_name = COALESCE($4, last_name), password_hash = COALESCE($5, password_hash), \
             active = COALESCE($6, active) WHERE id = $1",
        )
        .bind(&id_s)
        .bind(c.email.as_deref())
        .bind(c.first_name.as_deref())
        .bind(c.last_name.as_deref())
        .bind(c.password_hash.as_deref())
        .bind(c.active.map(i64::from))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "update_user");
        // what SCIM shows of a provisioned account changed: its next version
        crate::db::query("UPDATE scim_users SET version = version + 1, updated_at = $2 WHERE user_id = $1")
            .bind(&id_s)
            .bind(to_us(now))
            .execute(self.conn())
            .await?;
        if let Some(active) = c.active {
            // AC10: a deactivated account leaves every tenant, before other work;
            // a reactivated one returns
            let priority = if active { PRIORITY_NORMAL } else { PRIORITY_URGENT };
            self.mark_dirty(Reach::User(id), priority, now).await?;
        }
        if let Some(roles) = &c.installation_roles {
            self.replace_installation_roles(&id_s, roles).await?;
        }
        Ok(())
    }

    /// Lock a user's row until the transaction ends.
    pub async fn lock_user(&mut self, id: Uuid) -> Result<()> {
        if self.only_writer() {
            return Ok(());
        }
        crate::db::query("UPDATE users SET active = active WHERE id = $1")
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Lock the rows of every admin until the transaction ends, so that
    /// checks over the set of admins (such as "keeps an active admin") are
    /// not raced.
    pub async fn lock_admins(&mut self) -> Result<()> {
        if self.only_writer() {
            return Ok(());
        }
        crate::db::query(
            "UPDATE users SET active = active \
             WHERE id IN (SELECT user_id FROM user_installation_roles WHERE role = 'admin')",
        )
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// How many active accounts hold the admin role.
    pub async fn count_active_admins(&mut self) -> Result<i64> {
        let r = crate::db::query(
            "SELECT COUNT(*) AS n FROM users u JOIN user_installation_roles r ON r.user_id = u.id \
             WHERE r.role = 'admin' AND u.active = 1",
        )
        .fetch_one(self.conn())
        .await?;
        r.int("n")
    }

    /// The active accounts that hold the admin role.
    pub async fn active_admins(&mut self) -> Result<Vec<crate::PersonRecord>> {
        let rows = crate::db::query(
            "SELECT u.id, u.username, u.email FROM users u JOIN user_installation_roles r ON r.user_id = u.id \
             WHERE r.role = 'admin' AND u.active = 1 ORDER BY u.username",
        )
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(crate::workspaces::person_from_row).collect()
    }

    pub async fn delete_user(&mut self, id: Uuid, now: OffsetDateTime) -> Result<()> {
        // before the bindings go with the user, so the tenants they reached are known
        self.mark_dirty(Reach::User(id), PRIORITY_URGENT, now).await?;
        // the provisioned groups it leaves show other members now
        crate::db::query(
            "UPDATE scim_groups SET version = version + 1, updated_at = $2 \
             WHERE group_id IN (SELECT group_id FROM group_members WHERE user_id = $1)",
        )
        .bind(id.to_string())
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        let written =
            crate::db::query("DELETE FROM users WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_user");
        Ok(())
    }

    // ------------------------------------------------------------ sessions

    pub async fn insert_session(
        &mut self,
        token_hash: &str,
        user_id: Uuid,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        idle_until: Option<OffsetDateTime>,
    ) -> Result<()> {
        crate::db::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, idle_until) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(to_us(now))
        .bind(to_us(expires_at))
        .bind(idle_until.map(to_us))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The user a session token belongs to, if the session has not expired at `now`.
    pub async fn session_user(&mut self, token_hash: &str, now: OffsetDateTime) -> Result<Option<Uuid>> {
        let row = crate::db::query("SELECT user_id FROM sessions WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash)
            .bind(to_us(now))
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| r.uuid("user_id")).transpose()
    }

    /// End every session of a user (sign-out everywhere, deactivation,
    /// password change); how many there were.
    pub async fn delete_sessions_of(&mut self, user_id: Uuid) -> Result<u64> {
        let r = crate::db::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(self.conn())
            .await?;
        Ok(r.rows_affected())
    }

    /// End one session (sign-out); whether it existed.
    pub async fn delete_session(&mut self, token_hash: &str) -> Result<bool> {
        let r = crate::db::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.conn())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn delete_expired_sessions(&mut self, now: OffsetDateTime) -> Result<u64> {
        let r = crate::db::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(to_us(now))
            .execute(self.conn())
            .await?;
        Ok(r.rows_affected())
    }

    // ------------------------------------------------------------ API keys

    pub async fn insert_api_key(&mut self, k: NewApiKey<'_>, now: OffsetDateTime) -> Result<ApiKeyRecord> {
        let NewApiKey { name, token_hash, workspace_id, role, created_by_id, created_by, expires_at } = k;
        let id = new_id();
        let written = crate::db::query(
            "INSERT INTO api_keys (id, name, token_hash, workspace_id, role, created_by_id, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(name)
        .bind(token_hash)
        .bind(workspace_id.map(|w| w.to_string()))
        .bind(role)
        .bind(created_by_id.map(|u| u.to_string()))
        .bind(created_by)
        .bind(to_us(now))
        .bind(expires_at.map(to_us))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_api_key");
        self.api_key(&id).await?.ok_or(crate::StoreError::Conflict)
    }

    pub async fn api_key(&mut self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let row =
            crate::db::query(format!("{KEY_SELECT} WHERE k.id = $1")).bind(id).fetch_optional(self.conn()).await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// The key with this secret's hash, if it has not expired at `now`.
    pub async fn api_key_by_hash(&mut self, token_hash: &str, now: OffsetDateTime) -> Result<Option<ApiKeyRecord>> {
        let row = crate::db::query(format!(
            "{KEY_SELECT} WHERE k.token_hash = $1 AND (k.expires_at IS NULL OR k.expires_at > $2)"
        ))
        .bind(token_hash)
        .bind(to_us(now))
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Keys created by `created_by` and/or scoped to `workspace` (every key
    /// when both are `None`), by id, after `cursor` (an id). Only the
    /// filters given are in the statement, so that each reaches its index
    /// (`(created_by_id, id)`, `(workspace_id, id)`).
    pub async fn list_api_keys(
        &mut self,
        created_by: Option<Uuid>,
        workspace: Option<Uuid>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ApiKeyRecord>> {
        let mut sql = format!("{KEY_SELECT} WHERE k.id > $1");
        let mut n = 1;
        for (given, column) in [(created_by.is_some(), "created_by_id"), (workspace.is_some(), "workspace_id")] {
            if given {
                n += 1;
                sql.push_str(&format!(" AND k.{column} = ${n}"));
            }
        }
        sql.push_str(&format!(" ORDER BY k.id LIMIT CAST(${} AS BIGINT)", n + 1));
        let mut q = crate::db::query(sql).bind(cursor.unwrap_or_default());
        for id in [created_by, workspace].into_iter().flatten() {
            q = q.bind(id.to_string());
        }
        let rows = q.bind(page_limit(limit)).fetch_all(self.conn()).await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Every key `user` created, by id.
    pub async fn api_keys_created_by(&mut self, user: Uuid) -> Result<Vec<ApiKeyRecord>> {
        let rows = crate::db::query(format!("{KEY_SELECT} WHERE k.created_by_id = $1 ORDER BY k.id"))
            .bind(user.to_string())
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn delete_api_key(&mut self, id: Uuid) -> Result<()> {
        let written =
            crate::db::query("DELETE FROM api_keys WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_api_key");
        Ok(())
    }

    // ------------------------------------------------------------ groups

    pub async fn insert_group(
        &mut self,
        identifier: &str,
        display_name: &str,
        now: OffsetDateTime,
    ) -> Result<GroupRecord> {
        let written = crate::db::query(
            "INSERT INTO user_groups (id, identifier, display_name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(new_id())
        .bind(identifier)
        .bind(display_name)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_group");
        self.group_by_identifier(identifier).await?.ok_or(crate::StoreError::Conflict)
    }

    pub async fn group_by_identifier(&mut self, identifier: &str) -> Result<Option<GroupRecord>> {
        let row = crate::db::query(format!("{GROUP_SELECT} WHERE g.identifier = $1"))
            .bind(identifier)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    pub async fn group_by_id(&mut self, id: Uuid) -> Result<Option<GroupRecord>> {
        let row = crate::db::query(format!("{GROUP_SELECT} WHERE g.id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    pub async fn list_groups(&mut self, cursor: Option<&str>, limit: u32) -> Result<Vec<GroupRecord>> {
        let rows = crate::db::query(format!(
            "{GROUP_SELECT} WHERE g.identifier > $1 ORDER BY g.identifier LIMIT CAST($2 AS BIGINT)"
        ))
        .bind(cursor.unwrap_or_default())
        .bind(page_limit(limit))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    pub async fn rename_group(&mut self, id: Uuid, display_name: &str) -> Result<()> {
        let written = crate::db::query("UPDATE user_groups SET display_name = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(display_name)
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "rename_group");
        Ok(())
    }

    pub async fn delete_group(&mut self, id: Uuid, now: OffsetDateTime) -> Result<()> {
        self.mark_dirty(Reach::Group(id), PRIORITY_NORMAL, now).await?;
        let written =
            crate::db::query("DELETE FROM user_groups WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_group");
        Ok(())
    }

    /// One page of a group's members by username, after `after`.
    pub async fn group_members_page(
        &mut self,
        group_id: Uuid,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UserRecord>> {
        let rows = crate::db::query(format!(
            "SELECT {} FROM users u JOIN group_members m ON m.user_id = u.id \
             WHERE m.group_id = $1 AND u.username > $2 ORDER BY u.username LIMIT CAST($3 AS BIGINT)",
            USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(group_id.to_string())
        .bind(after.unwrap_or_default())
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn group_members(&mut self, group_id: Uuid) -> Result<Vec<UserRecord>> {
        let rows = crate::db::query(format!(
            "SELECT {} FROM users u JOIN group_members m ON m.user_id = u.id WHERE m.group_id = $1 ORDER BY u.username",
            USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(group_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn is_group_member(&mut self, group_id: Uuid, user_id: Uuid) -> Result<bool> {
        let row = crate::db::query("SELECT 1 AS one FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(self.conn())
            .await?;
        Ok(row.is_some())
    }

    pub async fn add_group_member(&mut self, group_id: Uuid, user_id: Uuid, now: OffsetDateTime) -> Result<()> {
        let written = crate::db::query("INSERT INTO group_members (group_id, user_id, added_at) VALUES ($1, $2, $3)")
            .bind(group_id.to_string())
            .bind(user_id.to_string())
            .bind(to_us(now))
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "add_group_member");
        self.mark_dirty(Reach::Group(group_id), PRIORITY_NORMAL, now).await?;
        self.bump_scim_group(group_id, now).await
    }

    /// A provisioned group's next version: its members changed (whoever
    /// changed them: SCIM, an emergency revocation, an account's deletion).
    async fn bump_scim_group(&mut self, group_id: Uuid, now: OffsetDateTime) -> Result<()> {
        crate::db::query("UPDATE scim_groups SET version = version + 1, updated_at = $2 WHERE group_id = $1")
            .bind(group_id.to_string())
            .bind(to_us(now))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn remove_group_member(&mut self, group_id: Uuid, user_id: Uuid, now: OffsetDateTime) -> Result<()> {
        let written = crate::db::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id.to_string())
            .bind(user_id.to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "remove_group_member");
        self.mark_dirty(Reach::Group(group_id), PRIORITY_NORMAL, now).await?;
        self.bump_scim_group(group_id, now).await
    }

    /// The groups a user belongs to.
    pub async fn groups_of_user(&mut self, user_id: Uuid) -> Result<Vec<Uuid>> {
        let rows = crate::db::query("SELECT group_id FROM group_members WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(|r| r.uuid("group_id")).collect()
    }
}

/// A case-insensitive `LIKE` pattern matching `q` anywhere, with `%`, `_` and `\` escaped.
pub(crate) fn like_pattern(q: &str) -> String {
    let mut p = String::from("%");
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}
