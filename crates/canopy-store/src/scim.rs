//! Accounts and groups provisioned through SCIM 2.0 (ID2): the link of each
//! to its SCIM resource, the document the identity provider wrote, and the
//! version its entity tag names. Lists are found in SQL by the attributes
//! identity providers look resources up by, and paged by offset in a stable
//! order (SCIM pages by `startIndex`).

use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::{GROUP_SELECT, USER_WITH_ROLES, group_from_row, user_with_roles};
use crate::{GroupRecord, Result, RowExt, Tx, UserRecord, to_us};

/// A provisioned account with its SCIM resource.
#[derive(Debug, Clone)]
pub struct ScimUserRecord {
    pub user: UserRecord,
    pub user_name: String,
    pub external_id: Option<String>,
    /// The kept document, as JSON.
    pub document: String,
    pub version: i64,
    /// Deactivated in Canopy by an admin or an emergency revocation: SCIM
    /// may not reactivate it.
    pub held: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A provisioned group with its SCIM resource.
#[derive(Debug, Clone)]
pub struct ScimGroupRecord {
    pub group: GroupRecord,
    pub external_id: Option<String>,
    pub document: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What a SCIM resource is written with.
#[derive(Debug, Clone, Copy)]
pub struct ScimLink<'a> {
    /// A user's `userName` (a group's display name is its own column).
    pub name: &'a str,
    pub external_id: Option<&'a str>,
    pub document: &'a str,
}

/// Which provisioned users a list holds: the lookups identity providers
/// make, answered by an index each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimUserQuery {
    All,
    Id(Uuid),
    /// `userName eq` (any case).
    UserName(String),
    ExternalId(String),
    /// `emails.value eq` (any case).
    Email(String),
}

/// Which provisioned groups a list holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimGroupQuery {
    All,
    Id(Uuid),
    /// `displayName eq` (any case).
    DisplayName(String),
    ExternalId(String),
    /// `members.value eq`: the groups a user is a member of.
    Member(Uuid),
}

const SCIM_USER_COLS: &str =
    "s.user_name, s.external_id, s.document, s.version, s.held, s.created_at AS scim_created_at, s.updated_at";

fn scim_user_where(q: &ScimUserQuery) -> (&'static str, Option<String>) {
    match q {
        ScimUserQuery::All => ("$1 IS NULL", None),
        ScimUserQuery::Id(id) => ("s.user_id = $1", Some(id.to_string())),
        ScimUserQuery::UserName(n) => ("s.user_name_key = $1", Some(n.to_lowercase())),
        ScimUserQuery::ExternalId(e) => ("s.external_id = $1", Some(e.clone())),
        // the account's address, or any other of its addresses in the kept
        // document (a superset: the filter itself decides each)
        ScimUserQuery::Email(e) => (
            "(s.user_id IN (SELECT id FROM users WHERE email = $1) OR LOWER(s.document) LIKE '%' || $1 || '%')",
            Some(e.to_lowercase()),
        ),
    }
}

fn scim_group_where(q: &ScimGroupQuery) -> (&'static str, Option<String>) {
    match q {
        ScimGroupQuery::All => ("$1 IS NULL", None),
        ScimGroupQuery::Id(id) => ("s.group_id = $1", Some(id.to_string())),
        ScimGroupQuery::DisplayName(n) => ("s.display_name_key = $1", Some(n.to_lowercase())),
        ScimGroupQuery::ExternalId(e) => ("s.external_id = $1", Some(e.clone())),
        ScimGroupQuery::Member(u) => {
            ("s.group_id IN (SELECT group_id FROM group_members WHERE user_id = $1)", Some(u.to_string()))
        }
    }
}

impl Tx {
    /// Link a new account to its SCIM resource (version 1).
    pub async fn insert_scim_user(&mut self, user_id: Uuid, link: ScimLink<'_>, now: OffsetDateTime) -> Result<()> {
        let written = crate::db::query(
            "INSERT INTO scim_users (user_id, user_name, user_name_key, external_id, document, version, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
        )
        .bind(user_id.to_string())
        .bind(link.name)
        .bind(link.name.to_lowercase())
        .bind(link.external_id)
        .bind(link.document)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_scim_user");
        Ok(())
    }

    /// Write a provisioned account's SCIM resource anew (its next version).
    pub async fn update_scim_user(&mut self, user_id: Uuid, link: ScimLink<'_>, now: OffsetDateTime) -> Result<()> {
        let written = crate::db::query(
            "UPDATE scim_users SET user_name = $2, user_name_key = $3, external_id = $4, document = $5, \
             version = version + 1, updated_at = $6 WHERE user_id = $1",
        )
        .bind(user_id.to_string())
        .bind(link.name)
        .bind(link.name.to_lowercase())
        .bind(link.external_id)
        .bind(link.document)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "update_scim_user");
        Ok(())
    }

    /// Forget an account's SCIM resource (the account stays).
    pub async fn delete_scim_user(&mut self, user_id: Uuid) -> Result<()> {
        let written = crate::db::query("DELETE FROM scim_users WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "delete_scim_user");
        Ok(())
    }

    /// Hold a provisioned account deactivated by an admin or an emergency
    /// revocation (SCIM may not reactivate it), or release it; nothing for
    /// a local account.
    pub async fn hold_scim_user(&mut self, user_id: Uuid, held: bool) -> Result<()> {
        crate::db::query("UPDATE scim_users SET held = $2 WHERE user_id = $1")
            .bind(user_id.to_string())
            .bind(i64::from(held))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Lock a provisioned account's SCIM row until the transaction ends, so
    /// that two changes made from one version wait in turn (`If-Match`).
    pub async fn lock_scim_user(&mut self, user_id: Uuid) -> Result<()> {
        if self.only_writer() {
            return Ok(());
        }
        crate::db::query("UPDATE scim_users SET version = version WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Lock a provisioned group's SCIM row until the transaction ends.
    pub async fn lock_scim_group(&mut self, group_id: Uuid) -> Result<()> {
        if self.only_writer() {
            return Ok(());
        }
        crate::db::query("UPDATE scim_groups SET version = version WHERE group_id = $1")
            .bind(group_id.to_string())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The provisioned groups a user is a member of.
    pub async fn scim_groups_of_user(&mut self, user_id: Uuid) -> Result<Vec<Uuid>> {
        let rows = crate::db::query(
            "SELECT m.group_id FROM group_members m JOIN scim_groups s ON s.group_id = m.group_id \
             WHERE m.user_id = $1 ORDER BY m.group_id",
        )
        .bind(user_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| r.uuid("group_id")).collect()
    }

    /// Whether an identity provider provisioned the account.
    pub async fn is_scim_user(&mut self, user_id: Uuid) -> Result<bool> {
        let row = crate::db::query("SELECT 1 AS one FROM scim_users WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_optional(self.conn())
            .await?;
        Ok(row.is_some())
    }

    /// One provisioned account.
    pub async fn scim_user(&mut self, user_id: Uuid) -> Result<Option<ScimUserRecord>> {
        Ok(self.scim_users(&ScimUserQuery::Id(user_id), 0, 1).await?.into_iter().next())
    }

    /// How many provisioned accounts `q` finds.
    pub async fn count_scim_users(&mut self, q: &ScimUserQuery) -> Result<i64> {
        let (cond, arg) = scim_user_where(q);
        let row = crate::db::query(format!("SELECT COUNT(*) AS n FROM scim_users s WHERE {cond}"))
            .bind(arg)
            .fetch_one(self.conn())
            .await?;
        row.int("n")
    }

    /// Provisioned accounts `q` finds, `count` from the `offset`th, in the
    /// order of their ids.
    pub async fn scim_users(&mut self, q: &ScimUserQuery, offset: i64, count: i64) -> Result<Vec<ScimUserRecord>> {
        let (cond, arg) = scim_user_where(q);
        // the page's ids by the index, each user with one row per role
        let sql = format!(
            "{} JOIN scim_users s ON s.user_id = u.id WHERE u.id IN (SELECT s.user_id FROM scim_users s WHERE {cond} \
             ORDER BY s.user_id LIMIT CAST($2 AS BIGINT) OFFSET CAST($3 AS BIGINT)) ORDER BY u.id",
            USER_WITH_ROLES.replacen(" FROM ", &format!(", {SCIM_USER_COLS} FROM "), 1)
        );
        let rows = crate::db::query(sql).bind(arg).bind(count).bind(offset).fetch_all(self.conn()).await?;
        let mut out = Vec::new();
        for chunk in rows.chunk_by(|a, b| a.text("id").ok() == b.text("id").ok()) {
            let (Some(user), Some(r)) = (user_with_roles(chunk)?, chunk.first()) else { continue };
            out.push(ScimUserRecord {
                user,
                user_name: r.text("user_name")?,
                external_id: r.text_opt("external_id")?,
                document: r.text("document")?,
                version: r.int("version")?,
                held: r.flag("held")?,
                created_at: r.time("scim_created_at")?,
                updated_at: r.time("updated_at")?,
            });
        }
        Ok(out)
    }

    /// Link a new group to its SCIM resource (version 1).
    pub async fn insert_scim_group(&mut self, group_id: Uuid, link: ScimLink<'_>, now: OffsetDateTime) -> Result<()> {
        let written = crate::db::query(
            "INSERT INTO scim_groups (group_id, display_name_key, external_id, document, version, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5)",
        )
        .bind(group_id.to_string())
        .bind(link.name.to_lowercase())
        .bind(link.external_id)
        .bind(link.document)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_scim_group");
        Ok(())
    }

    /// Write a provisioned group's SCIM resource anew (its next version).
    pub async fn update_scim_group(&mut self, group_id: Uuid, link: ScimLink<'_>, now: OffsetDateTime) -> Result<()> {
        let written = crate::db::query(
            "UPDATE scim_groups SET display_name_key = $2, external_id = $3, document = $4, version = version + 1, \
             updated_at = $5 WHERE group_id = $1",
        )
        .bind(group_id.to_string())
        .bind(link.name.to_lowercase())
        .bind(link.external_id)
        .bind(link.document)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "update_scim_group");
        Ok(())
    }

    /// One provisioned group.
    pub async fn scim_group(&mut self, group_id: Uuid) -> Result<Option<ScimGroupRecord>> {
        Ok(self.scim_groups(&ScimGroupQuery::Id(group_id), 0, 1).await?.into_iter().next())
    }

    /// How many provisioned groups `q` finds.
    pub async fn count_scim_groups(&mut self, q: &ScimGroupQuery) -> Result<i64> {
        let (cond, arg) = scim_group_where(q);
        let row = crate::db::query(format!("SELECT COUNT(*) AS n FROM scim_groups s WHERE {cond}"))
            .bind(arg)
            .fetch_one(self.conn())
            .await?;
        row.int("n")
    }

    /// Provisioned groups `q` finds, `count` from the `offset`th, in the
    /// order of their ids.
    pub async fn scim_groups(&mut self, q: &ScimGroupQuery, offset: i64, count: i64) -> Result<Vec<ScimGroupRecord>> {
        let (cond, arg) = scim_group_where(q);
        let rows = crate::db::query(format!(
            "{} JOIN scim_groups s ON s.group_id = g.id WHERE {cond} ORDER BY s.group_id \
             LIMIT CAST($2 AS BIGINT) OFFSET CAST($3 AS BIGINT)",
            GROUP_SELECT.replacen(
                " FROM user_groups g",
                ", s.external_id AS scim_external_id, s.document AS scim_document, s.version AS scim_version, \
                 s.created_at AS scim_created_at, s.updated_at AS scim_updated_at FROM user_groups g",
                1
            )
        ))
        .bind(arg)
        .bind(count)
        .bind(offset)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ScimGroupRecord {
                    group: group_from_row(r)?,
                    external_id: r.text_opt("scim_external_id")?,
                    document: r.text("scim_document")?,
                    version: r.int("scim_version")?,
                    created_at: r.time("scim_created_at")?,
                    updated_at: r.time("scim_updated_at")?,
                })
            })
            .collect()
    }

    /// A provisioned group's members by id.
    pub async fn scim_group_members(&mut self, group_id: Uuid) -> Result<Vec<Uuid>> {
        let rows = crate::db::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
            .bind(group_id.to_string())
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(|r| r.uuid("user_id")).collect()
    }
}
