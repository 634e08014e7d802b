//! Project roles and project bindings.

use std::collections::{BTreeMap, BTreeSet};

use crate::db::Row;
use canopy_domain::{Binding, Subject, SubjectKind};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{PRIORITY_NORMAL, Reach, Result, RowExt, StoreError, Tx, new_id, to_us};

#[derive(Debug, Clone)]
pub struct ProjectRoleRecord {
    pub id: Uuid,
    pub identifier: String,
    pub display_name: String,
    pub description: String,
}

fn role_from_row(r: &Row) -> Result<ProjectRoleRecord> {
    Ok(ProjectRoleRecord {
        id: r.uuid("id")?,
        identifier: r.text("identifier")?,
        display_name: r.text("display_name")?,
        description: r.text("description")?,
    })
}

/// A binding with the names a reader needs.
#[derive(Debug, Clone)]
pub struct BindingRecord {
    pub binding: Binding,
    /// Username or group identifier.
    pub subject_name: String,
    pub subject_display_name: String,
    pub role_identifier: String,
    pub justification: Option<String>,
    pub granted_by: String,
    pub granted_at: OffsetDateTime,
}

impl BindingRecord {
    /// The e-mail notice of a change to this binding (AC11): its role, its
    /// expiration, and the group it is for when it is a group's.
    pub fn notice<'a>(
        &'a self,
        change: canopy_domain::mail::AccessChange,
        workspace: &'a str,
        project: &'a str,
        by: &'a str,
    ) -> canopy_domain::mail::AccessNotice<'a> {
        let via = (self.binding.subject.kind == SubjectKind::Group).then_some(self.subject_name.as_str());
        canopy_domain::mail::AccessNotice {
            change,
            workspace,
            project,
            role: &self.role_identifier,
            expires_at: self.binding.expires_at,
            via,
            by,
        }
    }
}

/// A new binding.
#[derive(Debug, Clone)]
pub struct NewBinding<'a> {
    pub project_id: Uuid,
    pub subject: Subject,
    pub role_id: Uuid,
    pub expires_at: Option<OffsetDateTime>,
    pub justification: Option<&'a str>,
    pub granted_by: &'a str,
}

/// The statement behind [`Tx::next_expiry`]: the first entry of
/// `bindings_due` (the condition repeats the index's so that both backends
/// may use it). Not `MIN(expires_at)`: PostgreSQL may plan that as an
/// aggregate over the whole index when its statistics say the table is
/// small, and a generic plan keeps what it chose.
pub const NEXT_EXPIRY: &str = "SELECT expires_at AS next FROM bindings \
     WHERE ended_at IS NULL AND expires_at IS NOT NULL ORDER BY expires_at LIMIT 1";

/// The columns and joins of every read of bindings: a macro, so that the
/// statements built on it can be constants that tests explain.
macro_rules! binding_select {
    () => {
        concat!(binding_columns!(), binding_joins!())
    };
}

macro_rules! binding_columns {
    () => {
        "SELECT b.id, b.project_id, b.user_id, b.group_id, b.role_id, b.expires_at, \
           b.justification, b.granted_by, b.granted_at, r.identifier AS role_identifier, \
           COALESCE(u.username, g.identifier) AS subject_name, \
           COALESCE(u.first_name || ' ' || u.last_name, g.display_name) AS subject_display_name"
    };
}

macro_rules! binding_joins {
    () => {
        " FROM bindings b JOIN project_roles r ON r.id = b.role_id \
         LEFT JOIN users u ON u.id = b.user_id LEFT JOIN user_groups g ON g.id = b.group_id"
    };
}

/// Bindings that expire, with their project's and workspace's names, up to
/// an instant, after a cursor `(expires_at, id)`: [`Tx::expiring_bindings`]
/// over the installation (through `bindings_expiry`) or in one workspace
/// (`EXPIRING_IN_WORKSPACE`, through `bindings_workspace_expiry`).
macro_rules! expiring {
    ($workspace:literal) => {
        concat!(
            binding_columns!(),
            ", (SELECT p.identifier FROM projects p WHERE p.id = b.project_id) AS project_identifier, \
             (SELECT w.identifier FROM workspaces w WHERE w.id = b.workspace_id) AS workspace_identifier",
            binding_joins!(),
            " WHERE b.expires_at IS NOT NULL AND b.expires_at <= $1",
            $workspace,
            " AND (b.expires_at, b.id) > ($2, $3) ORDER BY b.expires_at, b.id LIMIT CAST($4 AS BIGINT)"
        )
    };
}

const EXPIRING: &str = expiring!("");
const EXPIRING_IN_WORKSPACE: &str = expiring!(" AND b.workspace_id = $5");

const BINDING_SELECT: &str = binding_select!();

/// The statement behind [`Tx::due_expiries`] (through `bindings_due`).
pub const DUE_EXPIRIES: &str = concat!(
    binding_select!(),
    " WHERE b.ended_at IS NULL AND b.expires_at <= $1 ORDER BY b.expires_at, b.id LIMIT CAST($2 AS BIGINT)"
);

/// The statement behind [`Tx::due_expiry_notices`] (through `bindings_notice`,
/// which holds only the bindings whose notice is not out yet).
pub const DUE_EXPIRY_NOTICES: &str = concat!(
    binding_select!(),
    " WHERE b.expiry_notice_at IS NULL AND b.expires_at > $1 AND b.expires_at <= $2 \
     ORDER BY b.expires_at, b.id LIMIT CAST($3 AS BIGINT)"
);

fn binding_from_row(r: &Row) -> Result<BindingRecord> {
    // read in the order of `binding_select!`'s columns (`Row::value` looks
    // for the next column first)
    let (id, project_id) = (r.uuid("id")?, r.uuid("project_id")?);
    let subject = match (r.uuid_opt("user_id")?, r.uuid_opt("group_id")?) {
        (Some(u), None) => Subject::user(u),
        (None, Some(g)) => Subject::group(g),
        _ => return Err(StoreError::Corrupt("binding without exactly one subject".into())),
    };
    let (role_id, expires_at) = (r.uuid("role_id")?, r.time_opt("expires_at")?);
    Ok(BindingRecord {
        binding: Binding { id, project_id, subject, role_id, expires_at },
        justification: r.text_opt("justification")?,
        granted_by: r.text("granted_by")?,
        granted_at: r.time("granted_at")?,
        role_identifier: r.text("role_identifier")?,
        subject_name: r.text("subject_name")?,
        subject_display_name: r.str("subject_display_name")?.trim().to_owned(),
    })
}

impl Tx {
    // ------------------------------------------------------------ project roles

    pub async fn insert_project_role(
        &mut self,
        identifier: &str,
        display_name: &str,
        description: &str,
        now: OffsetDateTime,
    ) -> Result<ProjectRoleRecord> {
        let written = crate::db::query(
            "INSERT INTO project_roles (id, identifier, display_name, description, position, created_at) \
             VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(position), 0) + 1 FROM project_roles), $5)",
        )
        .bind(new_id())
        .bind(identifier)
        .bind(display_name)
        .bind(description)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_project_role");
        self.project_role(identifier).await?.ok_or(StoreError::Conflict)
    }

    pub async fn project_role(&mut self, identifier: &str) -> Result<Option<ProjectRoleRecord>> {
        let row = crate::db::query(
            "SELECT id, identifier, display_name, description FROM project_roles WHERE identifier = $1",
        )
        .bind(identifier)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(role_from_row).transpose()
    }

    pub async fn list_project_roles(&mut self) -> Result<Vec<ProjectRoleRecord>> {
        let rows =
            crate::db::query("SELECT id, identifier, display_name, description FROM project_roles ORDER BY position")
                .fetch_all(self.conn())
                .await?;
        rows.iter().map(role_from_row).collect()
    }

    pub async fn update_project_role(&mut self, id: Uuid, display_name: &str, description: &str) -> Result<()> {
        let written = crate::db::query("UPDATE project_roles SET display_name = $2, description = $3 WHERE id = $1")
            .bind(id.to_string())
            .bind(display_name)
            .bind(description)
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "update_project_role");
        Ok(())
    }

    pub async fn count_bindings_with_role(&mut self, role_id: Uuid) -> Result<i64> {
        let r = crate::db::query("SELECT COUNT(*) AS n FROM bindings WHERE role_id = $1")
            .bind(role_id.to_string())
            .fetch_one(self.conn())
            .await?;
        r.int("n")
    }

    pub async fn delete_project_role(&mut self, id: Uuid) -> Result<()> {
        let written = crate::db::query("DELETE FROM project_roles WHERE id = $1")
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "delete_project_role");
        Ok(())
    }

    // ------------------------------------------------------------ bindings

    pub async fn insert_binding(&mut self, b: NewBinding<'_>, now: OffsetDateTime) -> Result<BindingRecord> {
        let NewBinding { project_id, subject, role_id, expires_at, justification, granted_by } = b;
        let id = new_id();
        let (user, group) = match subject.kind {
            SubjectKind::User => (Some(subject.id.to_string()), None),
            SubjectKind::Group => (None, Some(subject.id.to_string())),
        };
        // the new binding as `binding_select!` reads one, from the insert
        // itself rather than a second statement
        let row = crate::db::query(
            "INSERT INTO bindings (id, project_id, user_id, group_id, role_id, expires_at, justification, granted_by, granted_at, \
             workspace_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT workspace_id FROM projects WHERE id = $2)) \
             RETURNING id, project_id, user_id, group_id, role_id, expires_at, justification, granted_by, granted_at, \
               (SELECT r.identifier FROM project_roles r WHERE r.id = bindings.role_id) AS role_identifier, \
               COALESCE((SELECT u.username FROM users u WHERE u.id = bindings.user_id), \
                 (SELECT g.identifier FROM user_groups g WHERE g.id = bindings.group_id)) AS subject_name, \
               COALESCE((SELECT u.first_name || ' ' || u.last_name FROM users u WHERE u.id = bindings.user_id), \
                 (SELECT g.display_name FROM user_groups g WHERE g.id = bindings.group_id)) AS subject_display_name",
        )
        .bind(&id)
        .bind(project_id.to_string())
        .bind(user)
        .bind(group)
        .bind(role_id.to_string())
        .bind(expires_at.map(to_us))
        .bind(justification)
        .bind(granted_by)
        .bind(to_us(now))
        .fetch_one(self.conn())
        .await?;
        self.changed(1, "insert_binding");
        let inserted = binding_from_row(&row)?;
        self.mark_dirty(Reach::Project(project_id), PRIORITY_NORMAL, now).await?;
        Ok(inserted)
    }

    pub async fn binding(&mut self, id: &str) -> Result<Option<BindingRecord>> {
        let row = crate::db::query(concat!(binding_select!(), " WHERE b.id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(binding_from_row).transpose()
    }

    /// One page of a project's bindings in id order, after `after`: `limit`
    /// rows at most, read through the `(project_id, id)` index whatever the
    /// project's size.
    pub async fn project_bindings_page(
        &mut self,
        project_id: Uuid,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<BindingRecord>> {
        let rows = crate::db::query(concat!(
            binding_select!(),
            " WHERE b.project_id = $1 AND b.id > $2 ORDER BY b.id LIMIT CAST($3 AS BIGINT)"
        ))
        .bind(project_id.to_string())
        .bind(after.unwrap_or_default())
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// The bindings of a project, ordered by subject and role.
    pub async fn project_bindings(&mut self, project_id: Uuid) -> Result<Vec<BindingRecord>> {
        let rows = crate::db::query(format!(
            "{BINDING_SELECT} WHERE b.project_id = $1 ORDER BY subject_name, role_identifier"
        ))
        .bind(project_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// The binding of `subject` to `role_id` on a project, if any.
    pub async fn find_binding(
        &mut self,
        project_id: Uuid,
        subject: Subject,
        role_id: Uuid,
    ) -> Result<Option<BindingRecord>> {
        let sql = match subject.kind {
            SubjectKind::User => {
                concat!(binding_select!(), " WHERE b.project_id = $1 AND b.user_id = $2 AND b.role_id = $3")
            }
            SubjectKind::Group => {
                concat!(binding_select!(), " WHERE b.project_id = $1 AND b.group_id = $2 AND b.role_id = $3")
            }
        };
        let row = crate::db::query(sql)
            .bind(project_id.to_string())
            .bind(subject.id.to_string())
            .bind(role_id.to_string())
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(binding_from_row).transpose()
    }

    pub async fn update_binding(
        &mut self,
        id: Uuid,
        role_id: Uuid,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<()> {
        // a new expiration is ended and announced again when it comes (AC7);
        // the same one keeps its marks (the right-hand sides read the old row)
        let written = crate::db::query(
            "UPDATE bindings SET role_id = $2, \
               ended_at = CASE WHEN COALESCE(expires_at, -1) = COALESCE($3, -1) THEN ended_at ELSE NULL END, \
               expiry_notice_at = CASE WHEN COALESCE(expires_at, -1) = COALESCE($3, -1) THEN expiry_notice_at ELSE NULL END, \
               expires_at = $3 WHERE id = $1 RETURNING project_id",
        )
        .bind(id.to_string())
        .bind(role_id.to_string())
        .bind(expires_at.map(to_us))
        .fetch_optional(self.conn())
        .await?;
        self.changed(u64::from(written.is_some()), "update_binding");
        self.mark_project_of_dirty(written, now).await
    }

    /// Bindings (of one workspace, or all) that expire at or before `until`,
    /// in expiration order after the cursor `(expires_at, id)`, at most
    /// `limit`; each with its workspace and project identifiers.
    ///
    /// The cursor is one row-value comparison with a value bound for it
    /// always (the earliest time and the empty id when there is none), so
    /// that both databases start the index range at the cursor: written as
    /// `$2 IS NULL OR ...`, PostgreSQL's plan walked every binding of the
    /// workspace that expired before it, the ended ones of years included,
    /// on every `/me` of a manager. The project's and the workspace's names
    /// are looked up per row rather than joined: PostgreSQL plans this
    /// statement at every run (its plan depends on the times bound), and
    /// six joined tables took it about three times as long to plan.
    pub async fn expiring_bindings(
        &mut self,
        workspace: Option<Uuid>,
        until: OffsetDateTime,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: i64,
    ) -> Result<Vec<(BindingRecord, String, String)>> {
        let mut q = crate::db::query(if workspace.is_some() { EXPIRING_IN_WORKSPACE } else { EXPIRING })
            .bind(to_us(until))
            .bind(after.map_or(i64::MIN, |(t, _)| to_us(t)))
            .bind(after.map(|(_, id)| id.to_string()).unwrap_or_default())
            .bind(limit);
        if let Some(ws) = workspace {
            q = q.bind(ws.to_string());
        }
        let rows = q.fetch_all(self.conn()).await?;
        rows.iter()
            .map(|r| Ok((binding_from_row(r)?, r.text("workspace_identifier")?, r.text("project_identifier")?)))
            .collect()
    }

    /// Bindings whose expiration passed by `now` and that the expiry job has
    /// not ended yet, earliest first, at most `limit`.
    pub async fn due_expiries(&mut self, now: OffsetDateTime, limit: i64) -> Result<Vec<BindingRecord>> {
        let rows = crate::db::query(DUE_EXPIRIES).bind(to_us(now)).bind(limit).fetch_all(self.conn()).await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// Record that the expiry job ended the binding, and mark its project's
    /// tenants dirty. False when it was ended already (by another node) or
    /// its expiration changed meanwhile.
    pub async fn end_expired_binding(
        &mut self,
        id: Uuid,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let done = crate::db::query(
            "UPDATE bindings SET ended_at = $3 WHERE id = $1 AND expires_at = $2 AND ended_at IS NULL \
             RETURNING project_id",
        )
        .bind(id.to_string())
        .bind(to_us(expires_at))
        .bind(to_us(now))
        .fetch_optional(self.conn())
        .await?;
        let ended = done.is_some();
        self.changed(u64::from(ended), "end_expired_binding");
        self.mark_project_of_dirty(done, now).await?;
        Ok(ended)
    }

    /// Bindings in force at `now` that expire by `until` and whose
    /// soon-expiring notice was not sent, earliest first, at most `limit`.
    pub async fn due_expiry_notices(
        &mut self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<BindingRecord>> {
        let rows = crate::db::query(DUE_EXPIRY_NOTICES)
            .bind(to_us(now))
            .bind(to_us(until))
            .bind(limit)
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// Record that the binding's soon-expiring notice was queued; false when
    /// another node did, or the expiration changed meanwhile.
    pub async fn mark_expiry_notice(
        &mut self,
        id: Uuid,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let done = crate::db::query(
            "UPDATE bindings SET expiry_notice_at = $3 WHERE id = $1 AND expires_at = $2 AND expiry_notice_at IS NULL",
        )
        .bind(id.to_string())
        .bind(to_us(expires_at))
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The earliest expiration the expiry job has yet to end.
    pub async fn next_expiry(&mut self) -> Result<Option<OffsetDateTime>> {
        let row = crate::db::query(NEXT_EXPIRY).fetch_optional(self.conn()).await?;
        row.map_or(Ok(None), |row| row.time_opt("next"))
    }

    /// Lock a binding's row until the transaction ends (before its
    /// project's tenant work, as the expiry job does; history chains come
    /// last, at commit).
    pub async fn lock_binding(&mut self, id: Uuid) -> Result<()> {
        if self.only_writer() {
            return Ok(());
        }
        crate::db::query("UPDATE bindings SET id = id WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        Ok(())
    }

    /// Delete a binding, its project's tenants marked dirty first: an
    /// emergency revocation marks tenant work before it deletes bindings,
    /// and the two must take their locks in one order.
    pub async fn delete_binding(&mut self, id: Uuid, now: OffsetDateTime) -> Result<()> {
        let project = crate::db::query("SELECT project_id FROM bindings WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.conn())
            .await?;
        self.mark_project_of_dirty(project, now).await?;
        let written =
            crate::db::query("DELETE FROM bindings WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_binding");
        Ok(())
    }

    /// A binding changed or ends: the project its statement returned
    /// (`RETURNING project_id`, or a look-up; none when no row matched)
    /// converges again.
    async fn mark_project_of_dirty(&mut self, changed: Option<Row>, now: OffsetDateTime) -> Result<()> {
        if let Some(r) = changed {
            self.mark_dirty(Reach::Project(r.uuid("project_id")?), PRIORITY_NORMAL, now).await?;
        }
        Ok(())
    }

    /// Every binding of a subject in the projects of one workspace (WS6).
    pub async fn subject_bindings_in_workspace(
        &mut self,
        workspace_id: Uuid,
        subject: Subject,
    ) -> Result<Vec<BindingRecord>> {
        let col = match subject.kind {
            SubjectKind::User => "b.user_id",
            SubjectKind::Group => "b.group_id",
        };
        let rows = crate::db::query(format!(
            "{BINDING_SELECT} WHERE {col} = $2 AND b.project_id IN (SELECT id FROM projects WHERE workspace_id = $1) \
             ORDER BY b.project_id, role_identifier"
        ))
        .bind(workspace_id.to_string())
        .bind(subject.id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// Bindings that may give a user access: their own and their groups'.
    pub async fn bindings_reaching_user(&mut self, user_id: Uuid) -> Result<Vec<BindingRecord>> {
        let rows = crate::db::query(format!(
            // two index lookups (an OR makes PostgreSQL scan every binding)
            "{BINDING_SELECT} WHERE b.user_id = $1 \
             UNION ALL {BINDING_SELECT} WHERE b.group_id IN (SELECT group_id FROM group_members WHERE user_id = $1)"
        ))
        .bind(user_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// The members of each group, for group expansion (AC3).
    /// The people a binding of `subject` reaches now: the user, or the group's members.
    pub async fn people_reached(&mut self, subject: Subject) -> Result<BTreeSet<Uuid>> {
        let groups = match subject.kind {
            SubjectKind::User => BTreeSet::new(),
            SubjectKind::Group => BTreeSet::from([subject.id]),
        };
        let members = self.group_memberships(&groups).await?;
        Ok(canopy_domain::access::people_reached(subject, &members))
    }

    pub async fn group_memberships(&mut self, groups: &BTreeSet<Uuid>) -> Result<BTreeMap<Uuid, BTreeSet<Uuid>>> {
        let mut out = BTreeMap::new();
        for g in groups {
            let rows = crate::db::query("SELECT user_id FROM group_members WHERE group_id = $1")
                .bind(g.to_string())
                .fetch_all(self.conn())
                .await?;
            let members = rows.iter().map(|r| r.uuid("user_id")).collect::<Result<BTreeSet<_>>>()?;
            out.insert(*g, members);
        }
        Ok(out)
    }
}
